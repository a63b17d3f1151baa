//! [`LayerCache`]: what the forward keeps for the backward, and the
//! backward's own buffers.

use recurrent_kernels::PackedB;

use super::{CellKind, GateGrads, RecurrentLayer};

/// Activations kept from the forward pass for the backward pass, and the
/// backward pass's own buffers; sized once per `(T, B)` and reused.
#[derive(Default)]
pub struct LayerCache {
    pub(super) steps: usize,
    pub(super) batch: usize,
    /// `[T*B, G*H]` activated gates (RNN: the output before copying).
    pub(super) gates: Vec<f32>,
    /// `[T*B, H]` outputs `h_t`.
    pub h: Vec<f32>,
    /// `[T*B, H]` the state each step started from (after document resets).
    pub(super) hprev: Vec<f32>,
    /// LSTM: `[T*B, H]` cell states and the cell state each step started from.
    pub(super) c: Vec<f32>,
    pub(super) cprev: Vec<f32>,
    /// LSTM: `[T*B, H]` `tanh(c_t)`, which the forward computes anyway and the
    /// backward would otherwise compute again (about a third of its
    /// elementwise work).
    pub(super) tanh_c: Vec<f32>,
    /// GRU: `[T*B, H]` the hidden part of the candidate, `W_hn h + b_hn`.
    pub(super) hh_n: Vec<f32>,
    /// GRU: `[B, 3H]` the hidden projection of the current step.
    pub(super) hh: Vec<f32>,
    /// Backward: gate pre-activation gradients on the hidden side `[T*B, G*H]`,
    /// and (GRU only, where they differ) on the input side.
    pub(super) dg_hh: Vec<f32>,
    pub(super) dg_ih: Vec<f32>,
    pub(super) dh: Vec<f32>,
    pub(super) dh_next: Vec<f32>,
    pub(super) dc: Vec<f32>,
    /// `W_hhᵀ` packed for the forward steps' `h · W_hhᵀ`, and `W_hh` for the
    /// backward steps' `dgates · W_hh`: packed once per block, used at every step.
    pub(super) w_hh_t_packed: PackedB,
    pub(super) w_hh_packed: PackedB,
    /// `[G*H]` the bias the input projection adds (`b_ih`, plus `b_hh` but for GRU),
    /// and the backward's column sums of the gate gradients.
    pub(super) bias: Vec<f32>,
    /// Input by table ([`RecurrentLayer::forward_table`]): `[V, G*H]` each
    /// input row's projection (bias included), then in the backward each
    /// row's summed input-side gate gradients.
    pub(super) table: Vec<f32>,
}

impl LayerCache {
    pub(super) fn ensure(
        &mut self,
        layer: &RecurrentLayer,
        t: usize,
        b: usize,
        for_backward: bool,
    ) {
        let h = layer.hidden_size;
        let gh = layer.cell.gates() * h;
        let n = t * b;
        grow(&mut self.gates, n * gh);
        grow(&mut self.h, n * h);
        grow(&mut self.hprev, n * h);
        if layer.cell == CellKind::Lstm {
            grow(&mut self.c, n * h);
            grow(&mut self.cprev, n * h);
            grow(&mut self.tanh_c, n * h);
        }
        if layer.cell == CellKind::Gru {
            grow(&mut self.hh_n, n * h);
            grow(&mut self.hh, b * gh);
        }
        if for_backward {
            grow(&mut self.dg_hh, n * gh);
            if layer.cell == CellKind::Gru {
                grow(&mut self.dg_ih, n * gh);
            }
            grow(&mut self.dh, b * h);
            grow(&mut self.dh_next, b * h);
            grow(&mut self.dc, b * h);
        }
        self.steps = t;
        self.batch = b;
    }

    /// The output at the last step, `[B, H]` (the new hidden state).
    pub fn last_h(&self, hidden: usize) -> &[f32] {
        last_step(&self.h, self.steps, self.batch, hidden)
    }

    /// The LSTM cell state at the last step, `[B, H]`.
    pub fn last_c(&self, hidden: usize) -> &[f32] {
        last_step(&self.c, self.steps, self.batch, hidden)
    }

    /// Outputs of the last forward, `[T*B, H]`.
    pub fn output(&self, hidden: usize) -> &[f32] {
        &self.h[..self.steps * self.batch * hidden]
    }

    /// What the weight gradients of the last backward are made of:
    /// `h_prev [T*B, H]`, `dG_hh [T*B, G*H]` and `dG_ih [T*B, G*H]`, `dG_ih` being
    /// `dG_hh` for every cell but GRU. See [`RecurrentLayer::weight_grads`].
    pub fn backward_parts(&self, layer: &RecurrentLayer) -> GateGrads<'_> {
        let n = self.steps * self.batch;
        let (h, gh) = (layer.hidden_size, layer.gate_rows());
        let dg_hh = &self.dg_hh[..n * gh];
        let dg_ih = if layer.cell == CellKind::Gru {
            &self.dg_ih[..n * gh]
        } else {
            dg_hh
        };
        GateGrads {
            hprev: &self.hprev[..n * h],
            dg_hh,
            dg_ih,
        }
    }
}

/// The rows of the last of `steps` steps of a time-major `[T*B, w]` buffer.
pub(crate) fn last_step(buf: &[f32], steps: usize, batch: usize, w: usize) -> &[f32] {
    &buf[(steps - 1) * batch * w..steps * batch * w]
}

pub(super) fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}
