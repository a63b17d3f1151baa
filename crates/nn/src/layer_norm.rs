//! Layer normalization (Ba et al. 2016) over the rows of a matrix, forward
//! and backward, as PyTorch's `nn.LayerNorm(d)` (biased variance, `eps` 1e-5).
//!
//! `y = x̂ ⊙ γ + β` with `x̂ = (x - mean(x)) / sqrt(var(x) + eps)` per row.

/// PyTorch's default `eps`.
pub const EPS: f32 = 1e-5;

use recurrent_kernels::gemm::Trans;
use recurrent_kernels::MatRef;

/// Normalizes each of the `n` rows of `x: [n, d]` into `y` with gain `γ: [d]`
/// and bias `β: [d]`, keeping `x̂: [n, d]` and `1/σ: [n]` for the backward.
///
/// # Panics
/// If `x` is transposed or its rows are not dense (`ld != d`), or a buffer
/// is shorter than its shape above.
pub fn forward(
    x: MatRef<'_>,
    gain: &[f32],
    bias: &[f32],
    y: &mut [f32],
    xhat: &mut [f32],
    rstd: &mut [f32],
) {
    let (n, d, x) = dense_rows(x);
    for r in 0..n {
        let row = &x[r * d..(r + 1) * d];
        let (m, s) = row_stats(row);
        rstd[r] = s;
        let (out, xh) = (&mut y[r * d..(r + 1) * d], &mut xhat[r * d..(r + 1) * d]);
        for j in 0..d {
            xh[j] = (row[j] - m) * s;
            out[j] = xh[j] * gain[j] + bias[j];
        }
    }
}

/// `(mean, 1/σ)` of one row, as [`forward`] normalizes it: `x̂ = (x - mean) · (1/σ)`.
pub fn row_stats(row: &[f32]) -> (f32, f32) {
    let d = row.len() as f64;
    // Sums in f64: rows are short (a few thousand) and cancellation in the
    // variance of near-constant rows is what makes LayerNorm fragile.
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d;
    let var = row
        .iter()
        .map(|&v| {
            let c = v as f64 - mean;
            c * c
        })
        .sum::<f64>()
        / d;
    (mean as f32, (1.0 / (var + EPS as f64).sqrt()) as f32)
}

/// Normalizes one row in place: `x = (x - mean) · (1/σ) · γ + β`, the same
/// numbers [`forward`] writes to `y` (for generation, which keeps no `x̂`).
pub fn normalize_row(row: &mut [f32], gain: &[f32], bias: &[f32]) {
    let (m, s) = row_stats(row);
    for ((v, &g), &b) in row.iter_mut().zip(gain).zip(bias) {
        *v = (*v - m) * s * g + b;
    }
}

/// Backward of [`forward`]: from `dy: [n, d]` writes `dx: [n, d]` (or adds
/// into it when `accumulate`) and adds into the gain and bias gradients `g`.
///
/// `dx = (1/σ) (dx̂ - mean(dx̂) - x̂ mean(dx̂ ⊙ x̂))` with `dx̂ = dy ⊙ γ`.
///
/// # Panics
/// As [`forward`], for `dy` and the buffers.
pub fn backward(
    dy: MatRef<'_>,
    xhat: &[f32],
    rstd: &[f32],
    gain: &[f32],
    dx: &mut [f32],
    accumulate: bool,
    g: NormGrads<'_>,
) {
    let (n, d, dy) = dense_rows(dy);
    let NormGrads {
        gain: dgain,
        bias: dbias,
    } = g;
    for r in 0..n {
        let (g, xh) = (&dy[r * d..(r + 1) * d], &xhat[r * d..(r + 1) * d]);
        let (mut sum, mut dot) = (0.0f64, 0.0f64);
        for j in 0..d {
            dgain[j] += g[j] * xh[j];
            dbias[j] += g[j];
            let dxh = (g[j] * gain[j]) as f64;
            sum += dxh;
            dot += dxh * xh[j] as f64;
        }
        let (mean_d, mean_dx) = ((sum / d as f64) as f32, (dot / d as f64) as f32);
        let out = &mut dx[r * d..(r + 1) * d];
        for j in 0..d {
            let v = rstd[r] * (g[j] * gain[j] - mean_d - xh[j] * mean_dx);
            if accumulate {
                out[j] += v;
            } else {
                out[j] = v;
            }
        }
    }
}

/// Gradient accumulators of a normalization's gain and bias, `[d]` each;
/// [`backward`] adds into them.
pub struct NormGrads<'a> {
    /// Of the gain `γ`.
    pub gain: &'a mut [f32],
    /// Of the bias `β`.
    pub bias: &'a mut [f32],
}

/// `(n, d, elements)` of a matrix whose rows are `d` apart (the loops index it densely).
#[track_caller]
fn dense_rows(x: MatRef<'_>) -> (usize, usize, &[f32]) {
    assert!(
        x.trans() == Trans::N && x.ld() == x.cols(),
        "layer_norm: rows must be stored densely"
    );
    (x.rows(), x.cols(), x.data())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, random_vec};
    use recurrent_kernels::Rng;

    #[test]
    fn rows_are_normalized() {
        let (n, d) = (3, 8);
        let x = random_vec(&mut Rng::new(1), n * d);
        let (ones, zeros) = (vec![1.0; d], vec![0.0; d]);
        let (mut y, mut xh, mut rs) = (vec![0.0; n * d], vec![0.0; n * d], vec![0.0; n]);
        forward(
            MatRef::new(&x, n, d),
            &ones,
            &zeros,
            &mut y,
            &mut xh,
            &mut rs,
        );
        for row in y.chunks(d) {
            let mean: f32 = row.iter().sum::<f32>() / d as f32;
            let var: f32 = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
            assert!(
                mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-3,
                "{mean} {var}"
            );
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (n, d) = (3, 6);
        let mut rng = Rng::new(2);
        let x = random_vec(&mut rng, n * d);
        let gain = random_vec(&mut rng, d);
        let bias = random_vec(&mut rng, d);
        let r = random_vec(&mut rng, n * d);
        let loss = |x: &[f32], gain: &[f32], bias: &[f32]| {
            let (mut y, mut xh, mut rs) = (vec![0.0; n * d], vec![0.0; n * d], vec![0.0; n]);
            forward(MatRef::new(x, n, d), gain, bias, &mut y, &mut xh, &mut rs);
            y.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum::<f64>()
        };
        let (mut y, mut xh, mut rs) = (vec![0.0; n * d], vec![0.0; n * d], vec![0.0; n]);
        forward(
            MatRef::new(&x, n, d),
            &gain,
            &bias,
            &mut y,
            &mut xh,
            &mut rs,
        );
        let (mut dx, mut dg, mut db) = (vec![0.0; n * d], vec![0.0; d], vec![0.0; d]);
        let g = NormGrads {
            gain: &mut dg,
            bias: &mut db,
        };
        backward(MatRef::new(&r, n, d), &xh, &rs, &gain, &mut dx, false, g);
        check("x", &x, &dx, |v| loss(v, &gain, &bias));
        check("gain", &gain, &dg, |v| loss(&x, v, &bias));
        check("bias", &bias, &db, |v| loss(&x, &gain, v));
    }
}
