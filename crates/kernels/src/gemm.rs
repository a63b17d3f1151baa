//! The single matrix-multiply entry point. Every layer calls [`sgemm`]; the
//! backend behind it (the `gemm` crate, which picks AVX-512/AVX2/FMA at run time)
//! can change without touching a layer.

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
    if k == 0 {
        scale(c, m, n, ldc, beta);
        return;
    }
    // (row stride, column stride) of op(X) in elements.
    let (a_rs, a_cs) = if ta == Trans::N { (lda, 1) } else { (1, lda) };
    let (b_rs, b_cs) = if tb == Trans::N { (ldb, 1) } else { (1, ldb) };
    let flops = 2 * m * n * k;
    let t = threads();
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
}
