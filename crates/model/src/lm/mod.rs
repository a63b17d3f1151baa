//! The language model's forward and backward passes over a `[T, B]` block of
//! tokens, and single steps for generation.

mod backward;
mod construct;
mod forward;
mod layers;
mod regularization;
mod state;
mod train;
mod workspace;

pub use self::regularization::Regularization;
pub use self::state::State;
pub use self::workspace::Workspace;
use self::workspace::{grow, layer_output};

use crate::config::ModelConfig;
use crate::params::ParamLayout;

/// A language model: its configuration, parameter layout and parameters.
#[derive(Clone, Debug)]
pub struct LanguageModel {
    pub config: ModelConfig,
    pub layout: ParamLayout,
    pub params: Vec<f32>,
}

/// Loss statistics of one block.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BlockStats {
    /// Mean cross-entropy in nats per predicted token.
    pub loss: f64,
    /// Predictions whose argmax was the target.
    pub correct: usize,
    /// Predicted tokens.
    pub tokens: usize,
    /// The AR and TAR penalties added to the training loss (0 when off);
    /// `loss` stays the cross-entropy.
    pub ar: f64,
    pub tar: f64,
}

#[cfg(test)]
mod tests;
