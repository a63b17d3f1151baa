//! Recurrent layers (PyTorch `nn.RNN`, `nn.LSTM`, `nn.GRU`, one layer of them)
//! over a whole time block, forward and backward.
//!
//! Forward, for a block of `T` steps and `B` streams:
//! 1. one GEMM projects every input at once: `gates[T*B, G*H] = x · W_ihᵀ + b_ih` (+ `b_hh`
//!    for RNN/LSTM, whose hidden bias is never gated);
//! 2. per step, one GEMM adds `h_{t-1} · W_hhᵀ` and one fused pass applies the cell's
//!    nonlinearities, keeping the activated gates for the backward pass.
//!
//! Backward walks the steps in reverse with one small GEMM per step
//! (`dh_{t-1} = dgates_t · W_hh`), then forms `dW_hh`, `dW_ih`, the biases and `dx`
//! as large GEMMs over the whole block.

mod backward;
mod cache;
mod forward;
mod layer;
mod packed;
mod params;
mod row_split;
mod weight_grads;

pub(crate) use self::cache::last_step;
pub use self::cache::LayerCache;
pub use self::layer::RecurrentLayer;
pub use self::packed::PackedLayer;
pub use self::params::{LayerGrads, LayerParams};
pub use crate::cell::CellKind;

#[cfg(test)]
mod tests;
