//! One module per subcommand.

pub mod convert;
pub mod eval;
pub mod info;
pub mod sample;
pub mod train;
