//! Layers of `recurrent` as forward/backward pairs over flat, row-major `f32`
//! buffers: embedding, the recurrent cells (RNN tanh/ReLU, LSTM, GRU), linear,
//! dropout and the fused softmax cross-entropy loss, the regression losses
//! (MSE, MAE, Huber), AWD-LSTM's activation
//! penalties (AR, TAR), layer normalization and layer-normalized LSTM/GRU
//! layers, and attention.
//!
//! Each cell's equations live once, in [`cell`] (one file per cell, forward
//! and backward side by side); the recurrent layers ([`recurrent`],
//! [`ln_recurrent`]) run them over time blocks, and `recurrent-model`'s packed
//! inference step runs the same functions one token at a time.
//!
//! This crate knows nothing of files, text, models or front ends: a layer
//! sees shapes and slices of numbers, and the products, threads and SIMD
//! dispatch come from `recurrent-kernels`.
//!
//! Shapes follow PyTorch: a recurrent layer's `w_ih` is `[G*H, I]` and `w_hh`
//! is `[G*H, H]` with gate rows in PyTorch's order (LSTM `i f g o`, GRU `r z n`),
//! and sequences are time-major (`x: [T, B, I]`, stored as `[T*B, I]`).
//! Every backward pass *adds* into its parameter gradients, so shared (tied)
//! parameters and gradient accumulation work without special cases. Each layer's
//! gradient check against finite differences sits in its own tests.

#![deny(missing_docs)]

pub mod activation_reg;
pub mod attention;
pub mod cell;
pub mod dropout;
pub mod embedding;
pub mod layer_norm;
pub mod linear;
pub mod ln_recurrent;
pub mod loss;
pub mod recurrent;
pub mod regression;

#[cfg(test)]
pub(crate) mod gradcheck;

pub use ln_recurrent::{LnCache, LnRecurrentLayer};
pub use recurrent::{CellKind, LayerCache, PackedLayer, RecurrentLayer};
