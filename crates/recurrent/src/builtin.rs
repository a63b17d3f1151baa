//! The built-in default corpus: this project's own documentation, embedded in
//! the binary so the first `recurrent train` works offline with no input.

/// Name shown for the built-in corpus.
pub const NAME: &str = "built-in corpus (recurrent's own documentation)";

/// The text: the README and the user guide.
pub fn text() -> String {
    [
        include_str!("../../../README.md"),
        include_str!("../../../docs/GUIDE.md"),
        include_str!("../../../docs/CHECKPOINTS.md"),
    ]
    .join("\n")
}
