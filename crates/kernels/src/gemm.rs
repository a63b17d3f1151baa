//! The single matrix-multiply entry point. Every layer calls [`sgemm`]; the
//! backend behind it can change without touching a layer: with AVX-512, the
//! blocked kernel of [`crate::blocked`] for all but tiny products; otherwise
//! (and for `alpha != 1` or general `beta`) the `gemm` crate, which picks
//! AVX2/FMA at run time.

use crate::threads::threads;

/// Whether an operand is used as stored (`N`) or transposed (`T`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trans {
    N,
    T,
}

/// `C[m,n] = alpha * op(A)[m,k] · op(B)[k,n] + beta * C[m,n]`, all row-major.
///
/// `A` is stored as `[m, lda]` when `ta == N` and as `[k, lda]` when `ta == T`;
/// likewise `B` as `[k, ldb]` or `[n, ldb]`; `C` as `[m, ldc]`. With `beta == 0`
/// the old contents of `C` are ignored (NaNs included), as in BLAS.
pub fn sgemm(
    ta: Trans,
    tb: Trans,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    check(ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
    if k == 0 {
        scale(c, m, n, ldc, beta);
        return;
    }
    // (row stride, column stride) of op(X) in elements.
    let (a_rs, a_cs) = if ta == Trans::N { (lda, 1) } else { (1, lda) };
    let (b_rs, b_cs) = if tb == Trans::N { (ldb, 1) } else { (1, ldb) };
    let flops = 2 * m * n * k;
    let t = threads();
    #[cfg(target_arch = "x86_64")]
    if alpha == 1.0 && (beta == 0.0 || beta == 1.0) && blocked_pays(m, n, k) {
        let init = if beta == 0.0 {
            crate::blocked::Init::Zero
        } else {
            crate::blocked::Init::Keep
        };
        crate::blocked::gemm_blocked(ta, tb, m, n, k, a, lda, b, ldb, init, c, ldc, t);
        return;
    }
    let par = if t > 1 && flops >= 1 << 17 {
        gemm::Parallelism::Rayon(t)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every element `gemm` touches inside the
    // slices; `c` is borrowed mutably, so it cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            beta != 0.0,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
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

/// Panics unless every element the product touches lies inside the slices.
fn check(
    ta: Trans,
    tb: Trans,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &[f32],
    ldc: usize,
) {
    let (a_rows, a_cols) = if ta == Trans::N { (m, k) } else { (k, m) };
    let (b_rows, b_cols) = if tb == Trans::N { (k, n) } else { (n, k) };
    assert!(
        lda >= a_cols && ldb >= b_cols && ldc >= n,
        "sgemm: leading dimension too small"
    );
    assert!(
        a_rows == 0 || a.len() >= (a_rows - 1) * lda + a_cols,
        "sgemm: A too short"
    );
    assert!(
        b_rows == 0 || b.len() >= (b_rows - 1) * ldb + b_cols,
        "sgemm: B too short"
    );
    assert!(c.len() >= (m - 1) * ldc + n, "sgemm: C too short");
}

/// `C[m, n] = op(A)[m, k] · op(B)[k, n] + bias[n]` (the bias added to every row),
/// strides as in [`sgemm`]: a layer's affine map without a separate pass that
/// fills `C` with the bias first.
pub fn sgemm_bias(
    ta: Trans,
    tb: Trans,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    bias: &[f32],
    c: &mut [f32],
    ldc: usize,
) {
    assert!(bias.len() >= n, "sgemm_bias: bias too short");
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if k > 0 && blocked_pays(m, n, k) {
        check(ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
        let init = crate::blocked::Init::Row(&bias[..n]);
        crate::blocked::gemm_blocked(ta, tb, m, n, k, a, lda, b, ldb, init, c, ldc, threads());
        return;
    }
    for row in c.chunks_mut(ldc).take(m) {
        row[..n].copy_from_slice(&bias[..n]);
    }
    sgemm(ta, tb, m, n, k, 1.0, a, lda, b, ldb, 1.0, c, ldc);
}

/// Whether an `m x n x k` product goes to the blocked AVX-512 kernel: it
/// needs AVX-512, and below about 64k FLOPs its packing does not pay.
#[cfg(target_arch = "x86_64")]
fn blocked_pays(m: usize, n: usize, k: usize) -> bool {
    2 * m * n * k >= 1 << 16 && crate::simd::has_avx512() && !gemm_crate_forced()
}

/// `RECURRENT_GEMM=crate` sends every product to the `gemm` crate, for A/B
/// timing of the two backends.
fn gemm_crate_forced() -> bool {
    use std::sync::OnceLock;
    static FORCED: OnceLock<bool> = OnceLock::new();
    *FORCED.get_or_init(|| std::env::var("RECURRENT_GEMM").is_ok_and(|v| v == "crate"))
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
    use crate::Rng;

    fn naive(
        ta: Trans,
        tb: Trans,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
    ) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    let av = if ta == Trans::N {
                        a[i * lda + p]
                    } else {
                        a[p * lda + i]
                    };
                    let bv = if tb == Trans::N {
                        b[p * ldb + j]
                    } else {
                        b[j * ldb + p]
                    };
                    s += av as f64 * bv as f64;
                }
                c[i * n + j] = s as f32;
            }
        }
        c
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
                    let want = naive(ta, tb, m, n, k, &a, lda, &b, ldb);
                    let mut c = c0.clone();
                    sgemm(ta, tb, m, n, k, 0.5, &a, lda, &b, ldb, 2.0, &mut c, n);
                    for i in 0..m * n {
                        let w = 0.5 * want[i] + 2.0 * c0[i];
                        assert!(
                            (c[i] - w).abs() <= 1e-4 * (1.0 + w.abs()),
                            "{ta:?}{tb:?} {m}x{n}x{k}: {} vs {w}",
                            c[i]
                        );
                    }
                    let mut c = vec![f32::NAN; m * n];
                    sgemm(ta, tb, m, n, k, 1.0, &a, lda, &b, ldb, 0.0, &mut c, n);
                    for i in 0..m * n {
                        assert!((c[i] - want[i]).abs() <= 1e-4 * (1.0 + want[i].abs()));
                    }
                }
            }
        }
    }

    #[test]
    fn bias_product_and_baseline_fallback_match_naive() {
        // Once with the dispatch the CPU offers, once forced to the fallback
        // (the `gemm` crate, as without AVX-512).
        for forced in [false, true] {
            crate::simd::force_baseline(forced);
            let mut rng = Rng::new(3);
            for &(m, n, k) in &[(5, 7, 3), (70, 65, 130), (33, 100, 600)] {
                let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
                let b: Vec<f32> = (0..n * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
                let bias: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
                let want = naive(Trans::N, Trans::T, m, n, k, &a, k, &b, k);
                let mut c = vec![f32::NAN; m * n];
                sgemm_bias(Trans::N, Trans::T, m, n, k, &a, k, &b, k, &bias, &mut c, n);
                for i in 0..m * n {
                    let w = want[i] + bias[i % n];
                    assert!(
                        (c[i] - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "forced {forced}"
                    );
                }
                let mut c = vec![f32::NAN; m * n];
                sgemm(
                    Trans::N,
                    Trans::T,
                    m,
                    n,
                    k,
                    1.0,
                    &a,
                    k,
                    &b,
                    k,
                    0.0,
                    &mut c,
                    n,
                );
                for i in 0..m * n {
                    assert!((c[i] - want[i]).abs() <= 1e-4 * (1.0 + want[i].abs()));
                }
                let mut p = crate::PackedB::default();
                p.pack(Trans::T, k, n, &b, k);
                let mut c = vec![f32::NAN; m * n];
                crate::gemm_packed(m, &a, k, &p, false, &mut c, n, 2);
                for i in 0..m * n {
                    assert!((c[i] - want[i]).abs() <= 1e-4 * (1.0 + want[i].abs()));
                }
            }
        }
        crate::simd::force_baseline(false);
    }
}
