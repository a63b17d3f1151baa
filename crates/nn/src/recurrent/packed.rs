//! [`PackedLayer`]: a layer's weights packed once for many short calls.

use recurrent_kernels::{MatRef, PackedB};

use super::{CellKind, LayerParams, RecurrentLayer};

/// A layer's weights packed once for many short forward and backward calls
/// ([`RecurrentLayer::forward_packed`], [`RecurrentLayer::backward_packed`]):
/// a decoder steps every layer one token at a time with the same weights, and
/// repacking them at each step cost about as much as the products themselves.
#[derive(Default)]
pub struct PackedLayer {
    /// `W_ihᵀ` for `x · W_ihᵀ`, `W_hhᵀ` for `h · W_hhᵀ`, `W_hh` for
    /// `dgates · W_hh`, `W_ih` for `dgates · W_ih`.
    pub(super) w_ih_t: PackedB,
    pub(super) w_hh_t: PackedB,
    pub(super) w_hh: PackedB,
    pub(super) w_ih: PackedB,
    /// The input projection's bias: `b_ih`, plus `b_hh` but for GRU.
    pub(super) bias: Vec<f32>,
}

impl PackedLayer {
    /// Packs `p` for `layer` (reusing the buffers); `for_backward` also packs
    /// what the backward pass needs.
    pub fn pack(&mut self, layer: &RecurrentLayer, p: LayerParams<'_>, for_backward: bool) {
        let (i, h, gh) = (layer.input_size, layer.hidden_size, layer.gate_rows());
        self.w_ih_t.pack(MatRef::new(p.w_ih, gh, i).t());
        self.w_hh_t.pack(MatRef::new(p.w_hh, gh, h).t());
        if for_backward {
            self.w_hh.pack(MatRef::new(p.w_hh, gh, h));
            self.w_ih.pack(MatRef::new(p.w_ih, gh, i));
        }
        self.bias.clear();
        self.bias.extend_from_slice(p.b_ih);
        if layer.cell != CellKind::Gru {
            for (r, &bh) in self.bias.iter_mut().zip(p.b_hh) {
                *r += bh;
            }
        }
    }
}
