//! The single matrix-multiply entry point. Every layer calls [`sgemm`]; the
//! backend behind it can change without touching a layer: with AVX-512 or
//! AVX2+FMA, the blocked kernel (module `blocked`) for all but tiny products;
//! otherwise (and for `alpha != 1` or general `beta`) the `gemm` crate.

use std::cell::Cell;

use crate::blocked::Init;
#[cfg(target_arch = "x86_64")]
use crate::packed::TileKernel;
use crate::precision::Route;
use crate::threads::threads;
use crate::view::{MatMut, MatRef, ShapeError};

/// Whether an operand is used as stored (`N`) or transposed (`T`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trans {
    /// As stored.
    N,
    /// Transposed.
    T,
}

/// `C = alpha * op(A) · op(B) + beta * C`: `op(A)` is `[m, k]`, `op(B)`
/// `[k, n]` and `C` `[m, n]` (views carry the transposes and strides).
///
/// With `beta == 0` the old contents of `C` are ignored (NaNs included), as
/// in BLAS. Runs on [`threads()`](crate::threads::threads) threads.
///
/// # Panics
/// If the shapes do not fit together ([`check_product`] says why without
/// panicking).
///
/// ```
/// use recurrent_kernels::{sgemm, MatMut, MatRef};
///
/// // C[2, 2] = A[2, 3] · B[2, 3]ᵀ: `B` stored as `[n, k]`, used transposed.
/// let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let b = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0];
/// let mut c = [f32::NAN; 4];
/// sgemm(1.0, MatRef::new(&a, 2, 3), MatRef::new(&b, 2, 3).t(), 0.0, MatMut::new(&mut c, 2, 2));
/// assert_eq!(c, [1.0, 5.0, 4.0, 11.0]);
/// ```
#[track_caller]
pub fn sgemm(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, mut c: MatMut<'_>) {
    check("sgemm", &a, &b, &c);
    match crate::precision::route() {
        Route::F32 => {}
        Route::Pairs(kernel) if alpha == 1.0 && (beta == 0.0 || beta == 1.0) => {
            let init = if beta == 0.0 { Init::Zero } else { Init::Keep };
            return crate::pairs::gemm_route(a, b, init, c, kernel);
        }
        // Scaled products (no layer asks for them) take the reference path.
        Route::Pairs(_) | Route::Emulate => {
            return crate::precision::with_rounded(a, b, |a, b| sgemm(alpha, a, b, beta, c));
        }
    }
    let (m, n, k) = (a.rows(), b.cols(), a.cols());
    if m == 0 || n == 0 {
        return;
    }
    let ldc = c.ld();
    if k == 0 {
        scale(c.data(), m, n, ldc, beta);
        return;
    }
    let (lda, ldb) = (a.ld(), b.ld());
    // (row stride, column stride) of op(X) in elements.
    let (a_rs, a_cs) = if a.trans() == Trans::N {
        (lda, 1)
    } else {
        (1, lda)
    };
    let (b_rs, b_cs) = if b.trans() == Trans::N {
        (ldb, 1)
    } else {
        (1, ldb)
    };
    let flops = 2 * m * n * k;
    let t = threads();
    #[cfg(target_arch = "x86_64")]
    if let Some(kernel) =
        blocked_kernel(m, n, k).filter(|_| alpha == 1.0 && (beta == 0.0 || beta == 1.0))
    {
        let init = if beta == 0.0 { Init::Zero } else { Init::Keep };
        // SAFETY: `blocked_kernel` checked the CPU, and the views their slices.
        unsafe { crate::blocked::gemm_blocked(kernel, a, b, init, c, t) };
        return;
    }
    let par = if t > 1 && flops >= 1 << 17 {
        gemm::Parallelism::Rayon(t)
    } else {
        gemm::Parallelism::None
    };
    let c = c.data();
    // SAFETY: the views hold every element `gemm` touches; `c` is borrowed
    // mutably, so it cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            beta != 0.0,
            a.data().as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.data().as_ptr(),
            b_cs as isize,
            b_rs as isize,
            // `gemm` computes dst = alpha*dst + beta*lhs*rhs: the names are swapped.
            beta,
            alpha,
            false,
            false,
            false,
            par,
        );
    }
}

/// The shape contract of every product here: `op(A)` `[m, k]`, `op(B)`
/// `[k, n]` and `C` `[m, n]` (the views themselves hold their elements). A
/// caller with shapes from outside checks them with this before calling
/// [`sgemm`], [`sgemm_bias`] or [`sgemm_shared_a`], which panic instead.
///
/// # Errors
/// [`ShapeError::Product`] naming `what` and the three shapes.
pub fn check_product(
    what: &'static str,
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    c: &MatMut<'_>,
) -> Result<(), ShapeError> {
    if a.cols() == b.rows() && a.rows() == c.rows() && b.cols() == c.cols() {
        Ok(())
    } else {
        Err(ShapeError::Product {
            what,
            a: (a.rows(), a.cols()),
            b: (b.rows(), b.cols()),
            c: (c.rows(), c.cols()),
        })
    }
}

/// [`check_product`] for the panicking entry points.
#[track_caller]
fn check(what: &'static str, a: &MatRef<'_>, b: &MatRef<'_>, c: &MatMut<'_>) {
    if let Err(e) = check_product(what, a, b, c) {
        panic!("{e}");
    }
}

/// `C = op(A) · op(B) + bias` (the bias, `n` long, added to every row),
/// shapes as in [`sgemm`]: a layer's affine map without a separate pass that
/// fills `C` with the bias first.
///
/// # Panics
/// If the shapes do not fit together ([`check_product`]) or `bias` is
/// shorter than `n`.
#[track_caller]
pub fn sgemm_bias(a: MatRef<'_>, b: MatRef<'_>, bias: &[f32], mut c: MatMut<'_>) {
    check("sgemm_bias", &a, &b, &c);
    match crate::precision::route() {
        Route::F32 => {}
        Route::Pairs(kernel) => {
            return crate::pairs::gemm_route(a, b, Init::Row(bias), c, kernel);
        }
        Route::Emulate => {
            return crate::precision::with_rounded(a, b, |a, b| sgemm_bias(a, b, bias, c));
        }
    }
    let (m, n, k) = (a.rows(), b.cols(), a.cols());
    assert!(
        bias.len() >= n,
        "sgemm_bias: bias of {} for {n} columns",
        bias.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(kernel) = blocked_kernel(m, n, k).filter(|_| k > 0) {
        let init = Init::Row(&bias[..n]);
        let t = threads();
        // SAFETY: `blocked_kernel` checked the CPU, and the views their slices.
        unsafe { crate::blocked::gemm_blocked(kernel, a, b, init, c, t) };
        return;
    }
    let ldc = c.ld();
    for row in c.data().chunks_mut(ldc).take(m) {
        row[..n].copy_from_slice(&bias[..n]);
    }
    sgemm(1.0, a, b, 1.0, c);
}

/// One product of [`sgemm_shared_a`]: `C += op(A) · op(B)`.
pub struct Product<'a> {
    /// The right-hand operand, `op(B)` `[k, n]`.
    pub b: MatRef<'a>,
    /// The output, `[m, n]`, added to.
    pub c: MatMut<'a>,
}

/// `C_j += op(A) · op(B_j)` for two products with the same `op(A)` `[m, k]`:
/// each thread packs `A` once for both, where two [`sgemm`] calls would pack
/// it twice. The results are bit for bit those of the two calls. A recurrent
/// layer's `dW_hh += dGᵀ·h_prev` and `dW_ih += dGᵀ·x` are such a pair.
///
/// With `row_sums` (`m` long) it also sets `row_sums[r] = Σ_k op(A)[r, k]`,
/// summed in `k` order (the bias gradient: column sums of `dG`), from the
/// packed copy of `A` while it is in cache rather than in a pass of its own
/// over `A` (which cost about 3% of a small LSTM's training step).
///
/// # Panics
/// If a product's shapes do not fit together ([`check_product`]) or
/// `row_sums` is shorter than `m`.
#[track_caller]
pub fn sgemm_shared_a(a: MatRef<'_>, products: [Product<'_>; 2], row_sums: Option<&mut [f32]>) {
    for p in &products {
        check("sgemm_shared_a", &a, &p.b, &p.c);
    }
    let (m, k) = (a.rows(), a.cols());
    if m == 0 {
        return;
    }
    if let Some(s) = &row_sums {
        assert!(
            s.len() >= m,
            "sgemm_shared_a: row_sums of {} for {m} rows",
            s.len()
        );
    }
    let route = crate::precision::route();
    if route != Route::F32 {
        // The bias gradient is a sum, not a product: from the float32 `A`.
        if let Some(sums) = row_sums {
            sum_rows(a, &mut sums[..m]);
        }
        if let Route::Pairs(kernel) = route {
            return crate::pairs::gemm_route_shared_a(a, products, kernel);
        }
        let [p, q] = products;
        return crate::precision::with_rounded_a(a, |a| {
            crate::precision::with_rounded(p.b, q.b, |b1, b2| {
                let products = [Product { b: b1, c: p.c }, Product { b: b2, c: q.c }];
                sgemm_shared_a(a, products, None)
            })
        });
    }
    #[cfg(target_arch = "x86_64")]
    let [n1, n2] = [products[0].b.cols(), products[1].b.cols()];
    // Threads split the rows, so each product needs no more columns than rows.
    let fits = k > 0 && (1..=m).contains(&n1) && (1..=m).contains(&n2);
    if let Some(kernel) = blocked_kernel(m, n1, k)
        .and(blocked_kernel(m, n2, k))
        .filter(|_| fits)
    {
        let t = threads();
        // SAFETY: `blocked_kernel` checked the CPU, the views their slices and
        // the assert above the length of `row_sums`.
        unsafe { crate::blocked::gemm_blocked_shared_a(kernel, a, products, row_sums, t) };
        return;
    }
    if let Some(sums) = row_sums {
        sum_rows(a, &mut sums[..m]);
    }
    for p in products {
        sgemm(1.0, a, p.b, 1.0, p.c);
    }
}

/// `sums[r] = Σ_k op(A)[r, k]`, in `k` order (as the blocked kernel sums them).
fn sum_rows(a: MatRef<'_>, sums: &mut [f32]) {
    sums.fill(0.0);
    for kk in 0..a.cols() {
        for (r, s) in sums.iter_mut().enumerate() {
            *s += a.at(r, kk);
        }
    }
}

/// The register tile an `m x n x k` product runs on in the blocked kernel,
/// if it goes there: it needs AVX-512 or AVX2+FMA (and [`force_gemm_crate`]
/// off), and below about 64k FLOPs its packing does not pay.
#[cfg(target_arch = "x86_64")]
fn blocked_kernel(m: usize, n: usize, k: usize) -> Option<TileKernel> {
    if 2 * m * n * k < 1 << 16 || gemm_crate_forced() {
        return None;
    }
    TileKernel::detect()
}

/// The register tile this thread's training products run on: `"avx512"`,
/// `"avx2"` (AVX2 and FMA), or `"gemm crate"` on CPUs with neither (or when
/// [`force_gemm_crate`] is on), for benchmarks to say what they measured.
pub fn tile_kernel_name() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if let Some(kernel) = TileKernel::detect().filter(|_| !gemm_crate_forced()) {
        return kernel.name();
    }
    "gemm crate"
}

thread_local! {
    static GEMM_CRATE: Cell<bool> = const { Cell::new(false) };
}

/// Sends the products [`sgemm`] runs on this thread to the `gemm` crate, as on
/// a CPU without AVX-512 (`on`), or lets the dispatch choose again: for testing
/// and timing both backends. Tasks handed to helper threads follow their caller.
pub fn force_gemm_crate(on: bool) {
    GEMM_CRATE.with(|g| g.set(on));
}

/// Whether [`force_gemm_crate`] is on for this thread.
pub fn gemm_crate_forced() -> bool {
    GEMM_CRATE.with(Cell::get)
}

fn scale(c: &mut [f32], m: usize, n: usize, ldc: usize, beta: f32) {
    for row in c.chunks_mut(ldc).take(m) {
        for v in &mut row[..n] {
            *v = if beta == 0.0 { 0.0 } else { *v * beta };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::op;
    use crate::Rng;

    fn naive(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f32> {
        let (m, n, k) = (a.rows(), b.cols(), a.cols());
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k).map(|p| a.at(i, p) as f64 * b.at(p, j) as f64).sum();
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    #[test]
    fn the_tile_kernel_is_named_by_what_the_thread_may_use() {
        use crate::simd::{has_avx2, has_avx512, with_isa_limit, Isa};
        assert_eq!(
            with_isa_limit(Isa::Baseline, tile_kernel_name),
            "gemm crate"
        );
        let avx2 = with_isa_limit(Isa::Avx2, || (has_avx2(), tile_kernel_name()));
        assert_eq!(avx2.1, if avx2.0 { "avx2" } else { "gemm crate" });
        if has_avx512() {
            assert_eq!(tile_kernel_name(), "avx512");
        }
        force_gemm_crate(true);
        let forced = tile_kernel_name();
        force_gemm_crate(false);
        assert_eq!(forced, "gemm crate");
    }

    #[test]
    fn product_shapes_are_checked_without_panicking() {
        let (a, b) = ([0.0; 6], [0.0; 6]);
        let mut c = [0.0; 4];
        let (a, b) = (MatRef::new(&a, 2, 3), MatRef::new(&b, 2, 3));
        let err = check_product("sgemm", &a, &b, &MatMut::new(&mut c, 2, 2)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sgemm: [2, 3] · [2, 3] does not give [2, 2]"
        );
        assert!(check_product("sgemm", &a, &b.t(), &MatMut::new(&mut c, 2, 2)).is_ok());
    }

    #[test]
    #[should_panic(expected = "sgemm: [2, 3] · [2, 3] does not give [2, 2]")]
    fn sgemm_panics_on_a_shape_check_product_rejects() {
        let (a, b) = ([0.0; 6], [0.0; 6]);
        let mut c = [0.0; 4];
        let (a, b) = (MatRef::new(&a, 2, 3), MatRef::new(&b, 2, 3));
        sgemm(1.0, a, b, 0.0, MatMut::new(&mut c, 2, 2));
    }

    #[test]
    fn matches_naive_for_all_transposes_and_beta() {
        let mut rng = Rng::new(7);
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (17, 33, 9), (64, 40, 129)] {
            for ta in [Trans::N, Trans::T] {
                for tb in [Trans::N, Trans::T] {
                    let lda = if ta == Trans::N { k + 2 } else { m + 1 };
                    let ldb = if tb == Trans::N { n + 3 } else { k };
                    let a_rows = if ta == Trans::N { m } else { k };
                    let b_rows = if tb == Trans::N { k } else { n };
                    let a: Vec<f32> = (0..a_rows * lda).map(|_| rng.uniform(-1.0, 1.0)).collect();
                    let b: Vec<f32> = (0..b_rows * ldb).map(|_| rng.uniform(-1.0, 1.0)).collect();
                    let c0: Vec<f32> = (0..m * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
                    let (av, bv) = (op(&a, ta, m, k, lda), op(&b, tb, k, n, ldb));
                    let want = naive(av, bv);
                    let mut c = c0.clone();
                    sgemm(0.5, av, bv, 2.0, MatMut::new(&mut c, m, n));
                    for i in 0..m * n {
                        let w = 0.5 * want[i] + 2.0 * c0[i];
                        assert!(
                            (c[i] - w).abs() <= 1e-4 * (1.0 + w.abs()),
                            "{ta:?}{tb:?} {m}x{n}x{k}: {} vs {w}",
                            c[i]
                        );
                    }
                    let mut c = vec![f32::NAN; m * n];
                    sgemm(1.0, av, bv, 0.0, MatMut::new(&mut c, m, n));
                    for i in 0..m * n {
                        assert!((c[i] - want[i]).abs() <= 1e-4 * (1.0 + want[i].abs()));
                    }
                }
            }
        }
    }

    #[test]
    fn shared_a_pair_gives_the_bits_of_two_calls() {
        let mut rng = Rng::new(11);
        let mut v = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect() };
        // dW-like shapes (K over several blocks, one narrow product), one
        // where A has fewer rows than B columns (two plain calls), and tiny ones.
        for &(m, k, n1, n2) in &[(96, 1100, 40, 64), (20, 300, 33, 8), (5, 3, 2, 1)] {
            for ta in [Trans::N, Trans::T] {
                for tb in [Trans::N, Trans::T] {
                    let lda = if ta == Trans::N { k + 1 } else { m + 2 };
                    let a = v(if ta == Trans::N { m } else { k } * lda);
                    let ldb = |n: usize| if tb == Trans::N { n + 3 } else { k };
                    let b_len = |n: usize| if tb == Trans::N { k } else { n } * ldb(n);
                    let (b1, b2) = (v(b_len(n1)), v(b_len(n2)));
                    let (c1, c2) = (v(m * n1), v(m * n2));
                    let (mut w1, mut w2) = (c1.clone(), c2.clone());
                    let av = op(&a, ta, m, k, lda);
                    let bv1 = op(&b1, tb, k, n1, ldb(n1));
                    let bv2 = op(&b2, tb, k, n2, ldb(n2));
                    sgemm(1.0, av, bv1, 1.0, MatMut::new(&mut w1, m, n1));
                    sgemm(1.0, av, bv2, 1.0, MatMut::new(&mut w2, m, n2));
                    let (mut g1, mut g2) = (c1.clone(), c2.clone());
                    // The row sums of op(A), in k order.
                    let at = |r: usize, kk: usize| match ta {
                        Trans::N => a[r * lda + kk],
                        Trans::T => a[kk * lda + r],
                    };
                    let want_sums: Vec<f32> = (0..m)
                        .map(|r| (0..k).fold(0.0f32, |s, kk| s + at(r, kk)))
                        .collect();
                    let mut sums = vec![f32::NAN; m];
                    sgemm_shared_a(
                        av,
                        [
                            Product {
                                b: bv1,
                                c: MatMut::new(&mut g1, m, n1),
                            },
                            Product {
                                b: bv2,
                                c: MatMut::new(&mut g2, m, n2),
                            },
                        ],
                        Some(&mut sums),
                    );
                    assert_eq!(sums, want_sums, "{m}x{k} {ta:?}{tb:?}: row sums");
                    assert_eq!(g1, w1, "{m}x{k} {ta:?}{tb:?}: first product");
                    assert_eq!(g2, w2, "{m}x{k} {ta:?}{tb:?}: second product");
                }
            }
        }
    }

    #[test]
    fn bias_product_and_every_forced_variant_match_naive() {
        // With the dispatch the CPU offers, then with each fallback forced:
        // the `gemm` crate behind `sgemm`, and lower instruction sets.
        use crate::simd::Isa;
        for forced in [
            (Isa::Avx512, false),
            (Isa::Avx512, true),
            (Isa::Avx2, false),
            (Isa::Baseline, false),
        ] {
            crate::simd::limit_isa(forced.0);
            force_gemm_crate(forced.1);
            let mut rng = Rng::new(3);
            for &(m, n, k) in &[(5, 7, 3), (70, 65, 130), (33, 100, 600)] {
                let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
                let b: Vec<f32> = (0..n * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
                let bias: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
                let (av, bv) = (MatRef::new(&a, m, k), MatRef::new(&b, n, k).t());
                let want = naive(av, bv);
                let mut c = vec![f32::NAN; m * n];
                sgemm_bias(av, bv, &bias, MatMut::new(&mut c, m, n));
                for i in 0..m * n {
                    let w = want[i] + bias[i % n];
                    assert!(
                        (c[i] - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "forced {forced:?}"
                    );
                }
                let mut c = vec![f32::NAN; m * n];
                sgemm(1.0, av, bv, 0.0, MatMut::new(&mut c, m, n));
                for i in 0..m * n {
                    assert!((c[i] - want[i]).abs() <= 1e-4 * (1.0 + want[i].abs()));
                }
                let mut p = crate::PackedB::default();
                p.pack(bv);
                let mut c = vec![f32::NAN; m * n];
                crate::gemm_packed(av, &p, false, MatMut::new(&mut c, m, n), 2);
                for i in 0..m * n {
                    assert!((c[i] - want[i]).abs() <= 1e-4 * (1.0 + want[i].abs()));
                }
            }
        }
        crate::simd::limit_isa(Isa::Avx512);
        force_gemm_crate(false);
    }
}
