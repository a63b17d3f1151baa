//! The buffers a step reuses ([`StepWorkspace`]), and the views the threads
//! of one step share them through ([`Bufs`]).

use std::ops::Range;

use recurrent_kernels::{MatRef, SharedMut, SharedRows};

use super::StepModel;
use crate::{CellKind, ModelConfig, State};

/// Buffers for stepping, sized on first use for a batch and reused.
#[derive(Default)]
pub struct StepWorkspace {
    pub(super) batch: usize,
    /// `[B, E]` the embedding rows of the step's tokens (without a table).
    pub(super) x: Vec<f32>,
    /// `[B, n]` a layer's gate sums (GRU: input side), packed column order,
    /// `n` the widest layer's gate columns for every layer.
    pub(super) gates: Vec<f32>,
    /// The row stride `n` of `gates` and `hidden_sums`.
    pub(super) gates_ld: usize,
    /// GRU and layer-normalized layers: `[B, n]` the hidden-side sums.
    pub(super) hidden_sums: Vec<f32>,
    /// `[L, B, H]` the new hidden states (swapped into the [`State`] after the step).
    pub(super) h_new: Vec<f32>,
    /// `[B, D]` the dense layer's output.
    pub(super) dense: Vec<f32>,
    /// `[B, V]` the logits.
    pub(super) logits: Vec<f32>,
}

impl StepWorkspace {
    /// Sizes the buffers for `model` at batch `b` (allocates only when they grow).
    pub(super) fn ensure(&mut self, model: &StepModel, b: usize) {
        let cfg = &model.config;
        let n = model
            .layers
            .iter()
            .map(|l| l.gates.cols())
            .max()
            .unwrap_or(0);
        let grow = |v: &mut Vec<f32>, len: usize| {
            if v.len() != len {
                v.resize(len, 0.0);
            }
        };
        grow(&mut self.x, b * cfg.embed);
        self.gates_ld = n;
        grow(&mut self.gates, b * n);
        if cfg.cell == CellKind::Gru || cfg.layer_norm {
            grow(&mut self.hidden_sums, b * n);
        }
        grow(&mut self.h_new, cfg.state_len(b));
        grow(&mut self.dense, b * cfg.dense);
        grow(&mut self.logits, b * cfg.vocab_size);
        self.batch = b;
    }
}

/// One step's buffers as the threads that split it see them: the inputs as
/// slices, the outputs as shared views that the tasks write at disjoint
/// places — their own rows, or their own panels' columns and units of the
/// same rows, which is why the sums and the head's outputs are
/// [`SharedRows`] (strided) and the states [`SharedMut`] (a row's units are
/// contiguous). Every view borrows the workspace, the state or the tokens
/// for `'a`, so none can go away while a task runs.
pub(super) struct Bufs<'a> {
    pub(super) batch: usize,
    pub(super) tokens: &'a [u32],
    /// `[B, E]` the step's embedding rows (read only).
    pub(super) x: &'a [f32],
    /// Gate sums, `[B, ld]`: one row stride for every layer, the widest
    /// layer's, so that threads on different layers and rows never overlap.
    pub(super) gates: SharedRows<'a, f32>,
    /// GRU and layer-normalized layers: the hidden-side sums, as `gates`.
    pub(super) hidden_sums: SharedRows<'a, f32>,
    /// `[L, B, H]` the state the step starts from (read only).
    pub(super) h_old: &'a [f32],
    /// `[L, B, H]` the new hidden states.
    pub(super) h_new: SharedMut<'a, f32>,
    /// `[L, B, H]` the LSTM cell states, updated in place.
    pub(super) c: SharedMut<'a, f32>,
    /// `[B, D]` the dense layer's output.
    pub(super) dense: SharedRows<'a, f32>,
    /// `[B, V]` the logits.
    pub(super) logits: SharedRows<'a, f32>,
}

impl<'a> Bufs<'a> {
    /// Views of `ws` (sized by [`StepWorkspace::ensure`]), `state` and `tokens`.
    pub(super) fn new(
        ws: &'a mut StepWorkspace,
        state: &'a mut State,
        tokens: &'a [u32],
        config: &ModelConfig,
    ) -> Bufs<'a> {
        let ld = ws.gates_ld;
        Bufs {
            batch: ws.batch,
            tokens,
            x: &ws.x,
            gates: SharedRows::new(&mut ws.gates, ld),
            hidden_sums: SharedRows::new(&mut ws.hidden_sums, ld),
            h_old: &state.h,
            h_new: SharedMut::new(&mut ws.h_new),
            c: SharedMut::new(&mut state.c),
            dense: SharedRows::new(&mut ws.dense, config.dense),
            logits: SharedRows::new(&mut ws.logits, config.vocab_size),
        }
    }

    /// The top layer's new hidden state for `rows` (`[rows, H_top]`).
    ///
    /// # Safety
    /// The top layer must be done with these rows, and nothing may write
    /// them while the view lives.
    pub(super) unsafe fn top(&self, cfg: &ModelConfig, rows: Range<usize>) -> MatRef<'a> {
        let h = cfg.top_hidden();
        let from = cfg.state_range(cfg.layers - 1, self.batch).start + rows.start * h;
        // SAFETY: the caller's promise.
        let x = unsafe { self.h_new.read(from..from + rows.len() * h) };
        MatRef::new(x, rows.len(), h)
    }
}
