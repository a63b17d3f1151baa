//! [`RecurrentLayer`]: the shape of one layer, and what its forward and
//! backward share.

use super::params::LayerParams;
use super::CellKind;

/// The shape of one recurrent layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecurrentLayer {
    pub cell: CellKind,
    pub input_size: usize,
    pub hidden_size: usize,
}

impl RecurrentLayer {
    /// Gate rows, `G*H`.
    pub fn gate_rows(&self) -> usize {
        self.cell.gates() * self.hidden_size
    }

    /// The bias the input projection adds: `b_ih`, plus `b_hh` but for GRU
    /// (whose `b_hh` stays on the hidden side).
    pub(super) fn fold_bias(&self, p: LayerParams<'_>, bias: &mut Vec<f32>) {
        bias.clear();
        bias.extend_from_slice(p.b_ih);
        if self.cell != CellKind::Gru {
            for (r, &bh) in bias.iter_mut().zip(p.b_hh) {
                *r += bh;
            }
        }
    }
}
