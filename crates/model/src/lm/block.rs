//! [`TokenBlock`]: one block of a language model's data, in one value.

/// `steps` (`T`) time steps of `batch` (`B`) streams of tokens, time-major
/// (`[T*B]`), the next-token targets, and where streams start a new document.
#[derive(Clone, Copy, Debug)]
pub struct TokenBlock<'a> {
    /// The inputs, `[T*B]`.
    pub tokens: &'a [u32],
    /// What to predict after each input, `[T*B]` (unread by a forward alone).
    pub targets: &'a [u32],
    /// Time steps, `T`.
    pub steps: usize,
    /// Streams, `B`.
    pub batch: usize,
    /// `[T*B]`, 0 where a stream starts a new document at that step: its
    /// state is reset to zero before the step.
    pub keep: Option<&'a [f32]>,
}

impl<'a> TokenBlock<'a> {
    /// `steps x batch` tokens and their targets, with no resets.
    pub fn new(tokens: &'a [u32], targets: &'a [u32], steps: usize, batch: usize) -> Self {
        TokenBlock {
            tokens,
            targets,
            steps,
            batch,
            keep: None,
        }
    }

    /// The same block with the reset mask `keep`.
    pub fn with_keep(self, keep: Option<&'a [f32]>) -> Self {
        TokenBlock { keep, ..self }
    }
}
