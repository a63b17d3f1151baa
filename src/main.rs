//! The `recurrent` command-line tool.
fn main() {}
