//! Generation-time stepping: one token per stream through the network, with
//! the weights prepared once.
//!
//! [`LanguageModel::step`] runs the training forward pass with `T = 1`, which
//! packs every `W_hh` and sets up GEMMs for each token. A [`StepModel`] does
//! that work once:
//!
//! * Every weight matrix is packed for [`recurrent_kernels::panel`] products,
//!   whose cost at batch 1 is streaming the weights once (a matrix-vector
//!   product) and at batch 64 a small-`M` GEMM. The gate rows of a recurrent
//!   layer are interleaved so that one panel holds every gate of 16 hidden
//!   units (64 units for the one-gate RNNs): the cell update runs right after
//!   the panel's product, on sums still in L1, and threads that split the
//!   panels never need each other's gates.
//! * Layer 0's input side is a table lookup when that is cheaper: one-hot
//!   inputs pick a column of `W_ih`, and a small vocabulary's embeddings are
//!   multiplied by `W_ih` ahead of time (`[V, G*H]`, bias included).
//! * The steps reuse the buffers of a [`StepWorkspace`]: no allocation per token.
//! * Layer-normalized layers (`--layer-norm`) keep PyTorch's row order (the
//!   normalization needs a whole row of sums before any cell can update):
//!   their panels only compute the two projections, and a pass per row
//!   normalizes them and runs the cell. With a table, layer 0's input side
//!   is stored normalized.
//!
//! Threads: at small batch each layer's panels are split between the threads,
//! so each core streams its half of the weights (the limit at batch 1); from
//! [`ROWS_PER_THREAD`] rows per thread on, each thread runs the whole network
//! for its own streams, with no hand-off between layers. Every output is one
//! sum in a fixed order either way, so results depend neither on the thread
//! count nor on the batch size: stream `i` of a batch gets exactly the logits
//! it would get alone. They differ from [`LanguageModel::step`]'s only by the
//! rounding of the sums (about 1e-6 relative).
//!
//! Where things are: packing the weights (gate order, bf16 rounding, the
//! input tables) in `pack.rs`; one step and its thread split in `step.rs`;
//! the layer-normalized layers' row pass in `ln.rs`; the reused buffers and
//! the step's shared views of them in `workspace.rs`.

mod ln;
mod pack;
mod step;
mod workspace;

use recurrent_kernels::threads::threads;

use self::pack::{InputSide, Linear, StepLayer};
pub use self::workspace::StepWorkspace;
use crate::check;
use crate::{LanguageModel, ModelConfig, ModelError, State};
pub use recurrent_kernels::panel::WeightFormat;

/// Rows per thread from which threads split the batch instead of the panels:
/// two full register tiles. By then a step is bound by arithmetic, not by
/// streaming the weights, so each thread reading all of them costs little
/// (both splits measured the same from batch 8 on, about 200 GFLOP/s on two
/// Zen 4 cores), and one hand-off per step instead of one per layer is less
/// exposed to a helper thread that lost its core to other work.
pub const ROWS_PER_THREAD: usize = 2 * recurrent_kernels::panel::TILE_ROWS;

/// Below this many multiply-adds per step the threads' hand-offs cost more than they save.
const MIN_PARALLEL_MACS: usize = 1 << 16;

/// A language model prepared for stepping: see the module documentation.
///
/// ```
/// use recurrent_kernels::Rng;
/// use recurrent_model::infer::{StepModel, StepWorkspace};
/// use recurrent_model::{CellKind, LanguageModel, ModelConfig, State};
///
/// let config = ModelConfig {
///     cell: CellKind::Gru,
///     vocab_size: 10,
///     embed: 8,
///     hidden: 16,
///     layers: 1,
///     dense: 0,
///     dropout: 0.0,
///     tie: false,
///     layer_norm: false,
///     last_hidden: 0,
/// };
/// let model = LanguageModel::new(config.clone(), &mut Rng::new(1), None).unwrap();
/// let stepper = StepModel::new(&model); // packs the weights once
/// let mut ws = StepWorkspace::default();
/// let mut state = State::zeros(&config, 2); // two streams
/// let mut tokens = vec![3, 7];
/// for _ in 0..4 {
///     let logits = stepper.step(&mut ws, &tokens, &mut state).unwrap(); // [2, 10]
///     // Greedy: feed each stream its most likely next token.
///     for (tok, row) in tokens.iter_mut().zip(logits.chunks_exact(10)) {
///         *tok = (0..10).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap() as u32;
///     }
/// }
/// assert!(tokens.iter().all(|&t| t < 10));
/// // A token outside the vocabulary is an error, not a panic.
/// assert!(stepper.step(&mut ws, &[3, 10], &mut state).is_err());
/// ```
pub struct StepModel {
    config: ModelConfig,
    format: WeightFormat,
    layers: Vec<StepLayer>,
    input: InputSide,
    dense: Option<Linear>,
    decoder: Linear,
}

impl StepModel {
    /// Packs `model`'s weights for stepping (a copy: the model may change or
    /// go away afterwards without affecting this one).
    pub fn new(model: &LanguageModel) -> StepModel {
        Self::with_format(model, WeightFormat::F32)
    }

    /// [`StepModel::new`] with the weights stored in `format`. With
    /// [`WeightFormat::Bf16`] the steps compute the model whose weight
    /// matrices are rounded to bfloat16
    /// ([`LanguageModel::round_weights_to_bf16`]), with half the bytes to
    /// stream per token: at batch 1 about twice as fast when the weights do
    /// not fit in L2, at the cost of a small change in the logits.
    pub fn with_format(model: &LanguageModel, format: WeightFormat) -> StepModel {
        Self::build(model, Self::embedding_table_pays(&model.config), format)
    }

    /// The configuration of the model this was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// How the weight matrices are stored.
    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// Bytes of prepared weights.
    pub fn weight_bytes(&self) -> usize {
        let lin = |l: &Linear| l.w.bytes() + 4 * l.bias.len();
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                l.w_x.as_ref().map_or(0, |w| w.bytes())
                    + l.w_h.bytes()
                    + 4 * (l.bias_x.len() + l.bias_h.len())
            })
            .sum();
        let input = match &self.input {
            InputSide::Table(t) | InputSide::Embedding(t) => 4 * t.len(),
        };
        layers + input + self.dense.as_ref().map_or(0, lin) + lin(&self.decoder)
    }

    /// One generation step for `B` streams, as [`LanguageModel::step`]: feeds
    /// `tokens: [B]`, advances `state` (`[L, B, H]`) and returns the next-token
    /// logits `[B, V]`.
    ///
    /// # Errors
    /// [`ModelError`] when `tokens` is empty or holds an id outside the
    /// vocabulary, or `state` is not `B` streams of this model.
    pub fn step<'w>(
        &self,
        ws: &'w mut StepWorkspace,
        tokens: &[u32],
        state: &mut State,
    ) -> Result<&'w [f32], ModelError> {
        let cfg = &self.config;
        check::nonzero("batch", tokens.len())?;
        check::tokens("tokens", tokens, cfg.vocab_size)?;
        check::state(cfg, state, tokens.len())?;
        let small = self.macs_per_row() * tokens.len() < MIN_PARALLEL_MACS;
        let t = if small { 1 } else { threads() };
        Ok(self.step_on(ws, tokens, state, t))
    }
}

#[cfg(test)]
mod tests;
