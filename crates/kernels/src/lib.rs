//! Numeric kernels for `recurrent`: the one GEMM entry point every layer calls,
//! the elementwise activation functions, and a small reproducible random number
//! generator whose whole state fits in a checkpoint.
//!
//! This crate knows nothing of models, files or the command line: everything
//! here works on flat, row-major `f32` buffers whose shapes are given by the caller.

pub mod activation;
mod blocked;
pub mod gemm;
pub mod packed;
pub mod panel;
pub mod profile;
pub mod rng;
pub mod shared;
pub mod simd;
pub mod threads;

pub use gemm::{sgemm, sgemm_bias, sgemm_shared_a, Product, Trans};
pub use packed::{gemm_packed, PackedB};
pub use rng::Rng;
pub use shared::SharedMut;
