//! The number format of products' operands: float32, or bf16 with float32
//! accumulation (mixed-precision training, as PyTorch's bf16 autocast).
//!
//! Like the thread count and the instruction-set limit, the precision belongs
//! to the calling thread ([`with_precision`]) and travels with a call's tasks
//! to helper threads. Under [`Precision::Bf16`] every product of
//! [`crate::sgemm`], [`crate::sgemm_bias`], [`crate::sgemm_shared_a`] and
//! [`crate::gemm_packed`] (with a [`crate::PackedB`] packed under it) takes
//! its operands rounded to bf16 (round to nearest, ties to even) and sums
//! their products in float32; what is not a product (biases, the bias
//! gradient's row sums, every elementwise pass) stays float32.
//!
//! Which kernel computes such a product is [`Bf16Kernel`]: every variant
//! gives the float32 product of the rounded operands, up to the order of the
//! float32 sums. [`Bf16Kernel::Emulated`] (round, then the float32 kernels)
//! runs on any CPU and is the tests' reference, but it is slower than
//! float32, so a trainer asked for bf16 on a CPU with no bf16 instructions
//! trains in float32 ([`usable`]) unless a variant is forced
//! ([`force_bf16_kernel`]).

use std::cell::Cell;

use serde::{Deserialize, Serialize};

use crate::gemm::Trans;
use crate::view::MatRef;

/// The format products take their operands in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float32 operands (the default).
    #[default]
    F32,
    /// bf16 operands, float32 sums.
    Bf16,
}

impl Precision {
    /// `f32` or `bf16`, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Precision, String> {
        match s {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            other => Err(format!("unknown precision {other:?}: use f32 or bf16")),
        }
    }
}

/// How a bf16 product is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bf16Kernel {
    /// Operands rounded to bf16 in memory, then summed by the float32
    /// kernels: any CPU; the reference every other variant must match.
    Emulated,
    /// Operands packed as bf16 pairs and summed two at a time in plain Rust,
    /// in `vdpbf16ps`'s order: any CPU (slowly); it runs the pair kernels'
    /// packing and tiling on machines without their instructions.
    Pairs,
    /// AVX512-BF16's `vdpbf16ps` on bf16 pairs (Intel Cooper Lake and
    /// Sapphire Rapids on, AMD Zen 4 on).
    Avx512Bf16,
}

impl Bf16Kernel {
    /// Every variant, in the order [`Bf16Kernel::name`] lists them.
    pub const ALL: [Bf16Kernel; 3] = [
        Bf16Kernel::Emulated,
        Bf16Kernel::Pairs,
        Bf16Kernel::Avx512Bf16,
    ];

    /// The variant's name, as `RECURRENT_BF16_KERNEL` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Bf16Kernel::Emulated => "emulated",
            Bf16Kernel::Pairs => "pairs",
            Bf16Kernel::Avx512Bf16 => "avx512bf16",
        }
    }

    /// Whether this CPU (and this thread's instruction-set limit) can run it.
    pub fn available(self) -> bool {
        match self {
            Bf16Kernel::Emulated | Bf16Kernel::Pairs => true,
            Bf16Kernel::Avx512Bf16 => has_avx512_bf16(),
        }
    }
}

impl std::str::FromStr for Bf16Kernel {
    type Err = String;

    fn from_str(s: &str) -> Result<Bf16Kernel, String> {
        Bf16Kernel::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Bf16Kernel::ALL.iter().map(|k| k.name()).collect();
                format!("unknown bf16 kernel {s:?}: use one of {}", names.join(", "))
            })
    }
}

/// Whether the CPU has AVX512-BF16 (with the AVX-512 the kernels use) and
/// this thread's instruction-set limit allows AVX-512.
pub fn has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::simd::has_avx512() && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

thread_local! {
    static PRECISION: Cell<Precision> = const { Cell::new(Precision::F32) };
    static FORCED: Cell<Option<Bf16Kernel>> = const { Cell::new(None) };
    /// Scratch for rounded operands, reused from call to call.
    static ROUNDED: [Cell<Vec<f32>>; 3] = const { [const { Cell::new(Vec::new()) }; 3] };
}

/// This thread's precision (see [`with_precision`]); float32 unless set.
pub fn precision() -> Precision {
    PRECISION.with(Cell::get)
}

/// Sets this thread's precision; tasks a call hands to helper threads follow it.
pub fn set_precision(p: Precision) {
    PRECISION.with(|c| c.set(p));
}

/// Runs `f` with this thread's products in precision `p`, then restores the
/// previous one (also when `f` panics).
pub fn with_precision<R>(p: Precision, f: impl FnOnce() -> R) -> R {
    crate::threads::with_setting(precision(), p, set_precision, f)
}

/// Makes this thread's bf16 products use `kernel` (even where it is slower
/// than float32), or with `None` the best the CPU has. Tests force each
/// variant; `RECURRENT_BF16_KERNEL` forces one from the command line.
pub fn force_bf16_kernel(kernel: Option<Bf16Kernel>) {
    FORCED.with(|c| c.set(kernel));
}

/// This thread's forced variant, if any (see [`force_bf16_kernel`]).
pub fn forced_bf16_kernel() -> Option<Bf16Kernel> {
    FORCED.with(Cell::get)
}

/// The fastest bf16 kernel this CPU has instructions for, if any (AMX is to
/// come: docs/ROADMAP.md).
pub fn native_bf16_kernel() -> Option<Bf16Kernel> {
    has_avx512_bf16().then_some(Bf16Kernel::Avx512Bf16)
}

/// The variant this thread's bf16 products run on: the forced one if the CPU
/// can run it, else the CPU's native one; `None` when bf16 would only be
/// emulated.
pub fn bf16_kernel() -> Option<Bf16Kernel> {
    forced_bf16_kernel()
        .filter(|k| k.available())
        .or_else(native_bf16_kernel)
}

/// The precision a trainer asked for `requested` runs its products in: bf16
/// only where a bf16 kernel pays (or one is forced), float32 otherwise.
pub fn usable(requested: Precision) -> Precision {
    match requested {
        Precision::Bf16 if bf16_kernel().is_some() => Precision::Bf16,
        _ => Precision::F32,
    }
}

/// How this thread's products run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// float32.
    F32,
    /// bf16, by rounding the operands in memory for the float32 kernels.
    Emulate,
    /// bf16, on pair panels.
    Pairs(crate::pairs::PairKernel),
}

/// The route of this thread's products: its precision and bf16 kernel (a
/// forced kernel the CPU lacks falls back to the emulated one).
pub(crate) fn route() -> Route {
    use crate::pairs::PairKernel;
    if precision() == Precision::F32 {
        return Route::F32;
    }
    match bf16_kernel() {
        Some(Bf16Kernel::Pairs) => Route::Pairs(PairKernel::Portable),
        Some(Bf16Kernel::Avx512Bf16) if has_avx512_bf16() => Route::Pairs(PairKernel::Avx512Bf16),
        _ => Route::Emulate,
    }
}

/// Whether this thread's products must round their operands in memory
/// before the float32 kernels run (bf16 on the emulated variant).
pub(crate) fn emulate() -> bool {
    route() == Route::Emulate
}

/// `x` rounded to bf16 (round to nearest, ties to even; NaN stays NaN),
/// as float32.
pub fn round_bf16(x: f32) -> f32 {
    crate::panel::round_bf16(x)
}

/// Runs `f` on copies of `a` and `b` rounded to bf16 (same shapes, strides
/// and transposes), in float32, so the products inside sum exactly the
/// rounded operands. Only the elements the views span are copied.
pub(crate) fn with_rounded<R>(
    a: MatRef<'_>,
    b: MatRef<'_>,
    f: impl FnOnce(MatRef<'_>, MatRef<'_>) -> R,
) -> R {
    with_rounded_slot(0, a, |a| with_rounded_slot(1, b, |b| f(a, b)))
}

/// [`with_rounded`] for one operand.
/// (It has a buffer of its own, so [`with_rounded`] may run inside it.)
pub(crate) fn with_rounded_a<R>(a: MatRef<'_>, f: impl FnOnce(MatRef<'_>) -> R) -> R {
    with_rounded_slot(2, a, f)
}

/// Rounds `x` into this thread's scratch buffer `slot` for the call of `f`.
fn with_rounded_slot<R>(slot: usize, x: MatRef<'_>, f: impl FnOnce(MatRef<'_>) -> R) -> R {
    let mut buf = ROUNDED.with(|r| r[slot].take());
    let out = with_precision(Precision::F32, || f(rounded_like(x, &mut buf)));
    ROUNDED.with(|r| r[slot].set(buf));
    out
}

/// `x`'s stored elements rounded into `buf`, viewed as `x` is.
fn rounded_like<'b>(x: MatRef<'_>, buf: &'b mut Vec<f32>) -> MatRef<'b> {
    let (rows, cols) = match x.trans() {
        Trans::N => (x.rows(), x.cols()),
        Trans::T => (x.cols(), x.rows()),
    };
    let span = if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * x.ld() + cols
    };
    buf.clear();
    buf.extend(x.data()[..span].iter().map(|&v| round_bf16(v)));
    let stored = MatRef::with_ld(buf, rows, cols, x.ld().max(cols));
    match x.trans() {
        Trans::N => stored,
        Trans::T => stored.t(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{sgemm, sgemm_bias, sgemm_shared_a, MatMut, PackedB, Product, Rng};

    fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
    }

    fn rounded(x: &[f32]) -> Vec<f32> {
        x.iter().map(|&v| round_bf16(v)).collect()
    }

    /// Every entry point under bf16 gives, bit for bit, the float32 product
    /// of the rounded operands on the same kernels (the emulated variant).
    #[test]
    fn bf16_products_are_the_float32_products_of_rounded_operands() {
        force_bf16_kernel(Some(Bf16Kernel::Emulated));
        let mut rng = Rng::new(7);
        for &(m, n, k) in &[(3, 5, 7), (40, 70, 130), (64, 33, 600)] {
            let a = random(&mut rng, m * k);
            let b = random(&mut rng, n * k);
            let bias = random(&mut rng, n);
            let (ra, rb) = (rounded(&a), rounded(&b));
            // op(B) = Bᵀ: B stored [n, k].
            let view = |a: &[f32], b: &[f32], f: &mut dyn FnMut(MatRef<'_>, MatRef<'_>)| {
                f(MatRef::new(a, m, k), MatRef::new(b, n, k).t())
            };
            let mut want = vec![0.0; m * n];
            view(&ra, &rb, &mut |a, b| {
                sgemm(1.0, a, b, 0.0, MatMut::new(&mut want, m, n))
            });
            let mut got = vec![f32::NAN; m * n];
            with_precision(Precision::Bf16, || {
                view(&a, &b, &mut |a, b| {
                    sgemm(1.0, a, b, 0.0, MatMut::new(&mut got, m, n))
                })
            });
            assert_eq!(got, want, "sgemm {m}x{n}x{k}");
            // Not rounded in float32: the same call differs.
            let mut f32_product = vec![0.0; m * n];
            view(&a, &b, &mut |a, b| {
                sgemm(1.0, a, b, 0.0, MatMut::new(&mut f32_product, m, n))
            });
            assert_ne!(f32_product, want, "float32 is not bf16 {m}x{n}x{k}");

            let mut want_bias = vec![0.0; m * n];
            view(&ra, &rb, &mut |a, b| {
                sgemm_bias(a, b, &bias, MatMut::new(&mut want_bias, m, n))
            });
            let mut got = vec![f32::NAN; m * n];
            with_precision(Precision::Bf16, || {
                view(&a, &b, &mut |a, b| {
                    sgemm_bias(a, b, &bias, MatMut::new(&mut got, m, n))
                })
            });
            assert_eq!(got, want_bias, "sgemm_bias {m}x{n}x{k}");

            let mut packed = PackedB::default();
            let mut got = vec![f32::NAN; m * n];
            with_precision(Precision::Bf16, || {
                packed.pack(MatRef::new(&b, n, k).t());
                crate::gemm_packed(
                    MatRef::new(&a, m, k),
                    &packed,
                    false,
                    MatMut::new(&mut got, m, n),
                    2,
                )
            });
            let mut want_packed = vec![0.0; m * n];
            let mut packed_rounded = PackedB::default();
            packed_rounded.pack(MatRef::new(&rb, n, k).t());
            crate::gemm_packed(
                MatRef::new(&ra, m, k),
                &packed_rounded,
                false,
                MatMut::new(&mut want_packed, m, n),
                2,
            );
            assert_eq!(got, want_packed, "gemm_packed {m}x{n}x{k}");
        }
        force_bf16_kernel(None);
    }

    /// The shared-A pair rounds its products' operands but sums the bias
    /// gradient's rows from the float32 `A`.
    #[test]
    fn shared_a_rounds_products_not_row_sums() {
        force_bf16_kernel(Some(Bf16Kernel::Emulated));
        let mut rng = Rng::new(9);
        let (m, k, n1, n2) = (48, 300, 16, 24);
        let a = random(&mut rng, k * m); // dG stored [k, m], used transposed
        let (b1, b2) = (random(&mut rng, k * n1), random(&mut rng, k * n2));
        let run = |a: &[f32], b1: &[f32], b2: &[f32], p: Precision| {
            let (mut c1, mut c2, mut sums) = (vec![0.0; m * n1], vec![0.0; m * n2], vec![0.0; m]);
            with_precision(p, || {
                sgemm_shared_a(
                    MatRef::new(a, k, m).t(),
                    [
                        Product {
                            b: MatRef::new(b1, k, n1),
                            c: MatMut::new(&mut c1, m, n1),
                        },
                        Product {
                            b: MatRef::new(b2, k, n2),
                            c: MatMut::new(&mut c2, m, n2),
                        },
                    ],
                    Some(&mut sums),
                )
            });
            (c1, c2, sums)
        };
        let got = run(&a, &b1, &b2, Precision::Bf16);
        let of_rounded = run(&rounded(&a), &rounded(&b1), &rounded(&b2), Precision::F32);
        let of_f32 = run(&a, &b1, &b2, Precision::F32);
        assert_eq!(got.0, of_rounded.0);
        assert_eq!(got.1, of_rounded.1);
        assert_eq!(got.2, of_f32.2, "row sums in float32");
        assert_ne!(got.2, of_rounded.2);
        force_bf16_kernel(None);
    }

    /// On the pair kernels the shared-A pair (one packing of `A`) gives
    /// each product the bits of its own `sgemm` call, and float32 row sums.
    #[test]
    fn shared_a_on_pairs_equals_two_products() {
        force_bf16_kernel(Some(Bf16Kernel::Pairs));
        let mut rng = Rng::new(13);
        let (m, k, n1, n2) = (40, 90, 16, 24);
        let a = random(&mut rng, k * m);
        let (b1, b2) = (random(&mut rng, k * n1), random(&mut rng, k * n2));
        let (old1, old2) = (random(&mut rng, m * n1), random(&mut rng, m * n2));
        let av = MatRef::new(&a, k, m).t();
        let (mut c1, mut c2, mut sums) = (old1.clone(), old2.clone(), vec![0.0; m]);
        let (mut w1, mut w2, mut want_sums) = (old1, old2, vec![0.0f32; m]);
        with_precision(Precision::Bf16, || {
            sgemm_shared_a(
                av,
                [
                    Product {
                        b: MatRef::new(&b1, k, n1),
                        c: MatMut::new(&mut c1, m, n1),
                    },
                    Product {
                        b: MatRef::new(&b2, k, n2),
                        c: MatMut::new(&mut c2, m, n2),
                    },
                ],
                Some(&mut sums),
            );
            sgemm(
                1.0,
                av,
                MatRef::new(&b1, k, n1),
                1.0,
                MatMut::new(&mut w1, m, n1),
            );
            sgemm(
                1.0,
                av,
                MatRef::new(&b2, k, n2),
                1.0,
                MatMut::new(&mut w2, m, n2),
            );
        });
        // Float32 row sums of `op(A)`, each in `k` order.
        for (r, s) in want_sums.iter_mut().enumerate() {
            *s = (0..k).fold(0.0, |acc, kk| acc + av.at(r, kk));
        }
        assert_eq!((c1, c2), (w1, w2));
        assert_eq!(sums, want_sums, "row sums in float32");
        force_bf16_kernel(None);
    }

    #[test]
    fn float32_is_untouched_and_the_setting_is_per_thread() {
        assert_eq!(precision(), Precision::F32);
        with_precision(Precision::Bf16, || {
            assert_eq!(precision(), Precision::Bf16);
            std::thread::spawn(|| assert_eq!(precision(), Precision::F32))
                .join()
                .unwrap();
        });
        assert_eq!(precision(), Precision::F32);
        // Without a bf16 kernel a trainer is told to stay in float32.
        force_bf16_kernel(None);
        assert_eq!(
            usable(Precision::Bf16),
            if native_bf16_kernel().is_some() {
                Precision::Bf16
            } else {
                Precision::F32
            }
        );
        force_bf16_kernel(Some(Bf16Kernel::Emulated));
        assert_eq!(usable(Precision::Bf16), Precision::Bf16);
        // A forced kernel the CPU (or this thread's limit) cannot run is not used.
        crate::simd::with_isa_limit(crate::simd::Isa::Avx2, || {
            force_bf16_kernel(Some(Bf16Kernel::Avx512Bf16));
            assert_eq!(bf16_kernel(), None);
            assert_eq!(usable(Precision::Bf16), Precision::F32);
        });
        force_bf16_kernel(None);
        assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
        assert!("fp8"
            .parse::<Precision>()
            .unwrap_err()
            .contains("f32 or bf16"));
    }
}
