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
//!
//! Where things are: the cells' equations in [`crate::cell`]; the layer's
//! shape in `layer.rs`; the block, upstream and downstream structs the
//! forward and backward take in `block.rs`; its parameters in `params.rs`; the time loops in
//! `forward.rs` and `backward.rs`; what the forward keeps for the backward in
//! `cache.rs`; how a time loop's batch rows are split among threads in
//! `row_split.rs`; the weight and bias gradients in `weight_grads.rs`; the
//! weights packed once for a decoder's many short calls in `packed.rs`.

mod backward;
mod block;
mod cache;
mod forward;
mod layer;
mod packed;
mod params;
mod row_split;
mod trace;
mod weight_grads;

pub use self::block::{Block, Downstream, GateGrads, TableInput, Upstream};
pub(crate) use self::cache::last_step;
pub use self::cache::LayerCache;
pub use self::layer::RecurrentLayer;
pub use self::packed::PackedLayer;
pub use self::params::{LayerGrads, LayerParams};
pub use crate::cell::CellKind;

#[cfg(test)]
mod tests;
