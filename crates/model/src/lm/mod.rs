//! The language model's forward and backward passes over a `[T, B]` block of
//! tokens, and single steps for generation.
//!
//! Where things are: building a model and moving its tensors in
//! `construct.rs`; how the configuration maps to each layer's parameters in
//! `layers.rs`; the forward pass (and evaluation, reference steps) in
//! `forward.rs`; the backward pass in `backward.rs`; a training block in
//! `train.rs` (and the [`GradientSink`] it can hand finished gradients to
//! in `gradient_sink.rs`); AWD-LSTM's regularizers in `regularization.rs`; the carried
//! [`State`] in `state.rs`; the reused buffers in `workspace.rs`.

mod backward;
mod block;
mod construct;
mod forward;
mod gradient_sink;
mod layers;
mod regularization;
mod state;
pub mod trace;
mod train;
mod workspace;

pub use self::block::TokenBlock;
pub use self::gradient_sink::GradientSink;
pub use self::regularization::Regularization;
pub use self::state::State;
pub use self::workspace::Workspace;
use self::workspace::{grow, layer_output};

use crate::config::ModelConfig;
use crate::params::ParamLayout;

/// A language model: its configuration, parameter layout and parameters.
///
/// ```
/// use recurrent_kernels::Rng;
/// use recurrent_model::{CellKind, LanguageModel, ModelConfig, State, TokenBlock, Workspace};
///
/// let config = ModelConfig {
///     cell: CellKind::Lstm,
///     vocab_size: 10,
///     embed: 8,
///     hidden: 16,
///     layers: 2,
///     dense: 0,
///     dropout: 0.0,
///     tie: false,
///     layer_norm: false,
///     last_hidden: 0,
/// };
/// let model = LanguageModel::new(config.clone(), &mut Rng::new(1), None).unwrap();
/// // A block of 5 steps for 2 streams, time-major; predict each next token.
/// let (t, b) = (5, 2);
/// let tokens: Vec<u32> = (0..(t * b) as u32).map(|i| i % 10).collect();
/// let targets: Vec<u32> = tokens.iter().map(|&x| (x + 1) % 10).collect();
/// let mut state = State::zeros(&config, b);
/// let mut ws = Workspace::default();
/// let stats = model
///     .evaluate_block(&mut ws, TokenBlock::new(&tokens, &targets, t, b), &mut state)
///     .unwrap();
/// // An untrained model is close to uniform: about ln(10) nats per token.
/// assert!((stats.loss - 10f64.ln()).abs() < 0.5);
/// assert_eq!(stats.tokens, t * b);
/// // A block whose state has another batch is an error, not a panic.
/// let wrong = State::zeros(&config, 3);
/// let block = TokenBlock::new(&tokens, &targets, t, b);
/// assert!(model.evaluate_block(&mut ws, block, &mut wrong.clone()).is_err());
/// ```
#[derive(Clone, Debug)]
pub struct LanguageModel {
    /// The architecture.
    pub config: ModelConfig,
    /// Where each named tensor lives in `params`.
    pub layout: ParamLayout,
    /// Every parameter, in `layout` order (PyTorch's `state_dict` order).
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
    /// The TAR penalty (0 when off).
    pub tar: f64,
}

#[cfg(test)]
mod shape_tests;
#[cfg(test)]
mod tests;
