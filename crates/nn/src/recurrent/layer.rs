//! [`RecurrentLayer`]: the shape of one layer, and what its forward and
//! backward share.

use super::params::LayerParams;
use super::CellKind;

/// The shape of one recurrent layer; [`RecurrentLayer::forward`] and
/// [`RecurrentLayer::backward`] run it over a block of time steps.
///
/// ```
/// use recurrent_nn::recurrent::{Block, LayerParams, RecurrentLayer};
/// use recurrent_nn::{CellKind, LayerCache};
///
/// let layer = RecurrentLayer { cell: CellKind::Lstm, input_size: 3, hidden_size: 2 };
/// let (t, b, gh) = (4, 1, layer.gate_rows()); // 4 steps, 1 stream, 4 gates * 2 units
/// let (w_ih, w_hh, bias) = (vec![0.1; gh * 3], vec![0.1; gh * 2], vec![0.0; gh]);
/// let p = LayerParams { w_ih: &w_ih, w_hh: &w_hh, b_ih: &bias, b_hh: &bias };
/// let x = vec![1.0; t * b * 3]; // time-major [T*B, I]
/// let (h0, c0) = (vec![0.0; b * 2], vec![0.0; b * 2]);
/// let mut cache = LayerCache::default();
/// layer.forward(p, &x, Block::new(t, b, &h0, &c0), &mut cache, false);
/// let y = cache.output(2); // [T*B, H]
/// assert_eq!(y.len(), t * b * 2);
/// assert!(y.iter().all(|v| v.abs() < 1.0));
/// assert_eq!(cache.last_h(2), &y[(t - 1) * 2..]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecurrentLayer {
    /// The cell every step runs.
    pub cell: CellKind,
    /// `I`, the width of an input row.
    pub input_size: usize,
    /// `H`, the width of the state and of an output row.
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
