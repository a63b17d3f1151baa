//! Numeric kernels for `recurrent`: the one GEMM entry point every layer calls
//! ([`sgemm`], with its packed and panel variants for per-step and generation
//! products), the elementwise activation functions, the thread pool that runs
//! a call's parallel parts ([`threads`]), run-time instruction-set dispatch
//! ([`simd`]), and a small reproducible random number generator whose whole
//! state fits in a checkpoint.
//!
//! This crate knows nothing of models, layers, files or the command line:
//! everything here works on flat, row-major `f32` buffers whose shapes travel
//! with them in typed views ([`MatRef`], [`MatMut`]), checked where a view is made. The thread count and instruction-set limit belong to
//! the calling thread ([`threads::with_threads`], [`simd::limit_isa`]), never
//! to the process, and results are bit-for-bit the same for a given thread count.
//!
//! ```
//! use recurrent_kernels::{sgemm, threads, MatMut, MatRef};
//!
//! // C[2, 2] = A[2, 3] · B[3, 2], on two threads.
//! let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
//! let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
//! let mut c = [0.0; 4];
//! threads::with_threads(2, || {
//!     let (a, b) = (MatRef::new(&a, 2, 3), MatRef::new(&b, 3, 2));
//!     sgemm(1.0, a, b, 0.0, MatMut::new(&mut c, 2, 2))
//! });
//! assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
//! ```

#![deny(missing_docs)]

pub mod activation;
mod blocked;
pub mod gemm;
pub mod packed;
pub mod pairs;
pub mod panel;
pub mod precision;
pub mod profile;
pub mod rng;
pub mod shared;
pub mod simd;
pub mod threads;
pub mod view;

pub use gemm::{check_product, sgemm, sgemm_bias, sgemm_shared_a, Product, Trans};
pub use packed::{gemm_packed, PackedB};
pub use precision::{with_precision, Precision};
pub use rng::Rng;
pub use shared::{SharedMut, SharedRows};
pub use view::{MatMut, MatRef, ShapeError};
