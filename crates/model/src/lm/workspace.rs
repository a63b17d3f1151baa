//! [`Workspace`]: the buffers of one block shape, reused.

use recurrent_nn::{LayerCache, LnCache};

use super::Regularization;

/// Buffers for one `(T, B)` shape, allocated on first use and reused, so the
/// training loop allocates nothing per step.
#[derive(Default)]
pub struct Workspace {
    /// Input of each layer `[T*B, I_k]` (embedding or one-hot for layer 0, the
    /// dropped-out output of the layer below for the others), and the input of the head.
    pub(super) inputs: Vec<Vec<f32>>,
    pub(super) masks: Vec<Vec<f32>>,
    pub(super) caches: Vec<LayerCache>,
    /// The layers' caches instead of `caches` when the cells are layer-normalized.
    pub(super) ln_caches: Vec<LnCache>,
    pub(super) dense_out: Vec<f32>,
    pub(super) logits: Vec<f32>,
    pub(super) dlogits: Vec<f32>,
    pub(super) dhead: Vec<f32>,
    pub(super) dy: Vec<f32>,
    pub(super) dx: Vec<f32>,
    pub(super) dh0: Vec<f32>,
    pub(super) dc0: Vec<f32>,
    /// The regularization the last forward applied, for its backward.
    pub(super) reg: Regularization,
    /// Locked dropout masks `[B, W]`: layer 0's input, then each layer's output.
    pub(super) locked: Vec<Vec<f32>>,
    /// Embedding dropout's mask per word, `[V]`.
    pub(super) word_mask: Vec<f32>,
    /// Weight drop: each layer's dropped `W_hh` and its mask, and the gradient
    /// w.r.t. the dropped `W_hh` before it goes through the mask.
    pub(super) w_hh_dropped: Vec<Vec<f32>>,
    pub(super) w_hh_mask: Vec<Vec<f32>>,
    pub(super) dw_hh_dropped: Vec<f32>,
    /// Whether the last forward fed layer 0 by table (see
    /// [`LanguageModel::input_table_pays`]); tests can turn the table off.
    pub(super) table_input: bool,
    pub(super) no_table: bool,
}

pub(super) fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// Layer `k`'s outputs `[T*B, H]` from whichever cache the last forward used.
pub(super) fn layer_output<'a>(
    caches: &'a [LayerCache],
    ln_caches: &'a [LnCache],
    layer_norm: bool,
    k: usize,
    h: usize,
) -> &'a [f32] {
    if layer_norm {
        ln_caches[k].output(h)
    } else {
        caches[k].output(h)
    }
}
