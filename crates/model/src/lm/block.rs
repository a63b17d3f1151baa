//! [`TokenBlock`]: one block of a language model's data, in one value.

use super::State;
use crate::check;
use crate::config::{ModelConfig, ModelError};

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

impl TokenBlock<'_> {
    /// Checks the block against `config` and the carried `state`: `T*B`
    /// tokens (and targets when `with_targets`) inside the vocabulary, a
    /// `[T*B]` reset mask, and a state of `B` streams.
    pub(crate) fn check(
        &self,
        config: &ModelConfig,
        state: &State,
        with_targets: bool,
    ) -> Result<(), ModelError> {
        check::nonzero("steps", self.steps)?;
        check::nonzero("batch", self.batch)?;
        // Saturating: no slice is that long, so an overflow fails the length check.
        let n = self.steps.saturating_mul(self.batch);
        check::len("tokens", n, self.tokens.len())?;
        check::tokens("tokens", self.tokens, config.vocab_size)?;
        if with_targets {
            check::len("targets", n, self.targets.len())?;
            check::tokens("targets", self.targets, config.vocab_size)?;
        }
        if let Some(keep) = self.keep {
            check::len("keep", n, keep.len())?;
        }
        check::state(config, state, self.batch)
    }
}
