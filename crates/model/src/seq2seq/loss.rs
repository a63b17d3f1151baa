//! Softmax cross-entropy over the decoder's logits with padded rows masked out
//! and optional label smoothing (PyTorch `F.cross_entropy(..., ignore_index,
//! label_smoothing=ε)`: the target distribution is `(1-ε)·onehot + ε/V`).

use recurrent_kernels::activation::exp;
use recurrent_kernels::gemm::Trans;
use recurrent_kernels::MatRef;

/// Sums over the valid rows of one batch's logits.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct LossSums {
    /// Σ of the (label-smoothed) objective.
    pub loss: f64,
    /// Σ of `-log p(target)`.
    pub nll: f64,
    /// Valid rows whose argmax is the target.
    pub correct: usize,
    /// Valid rows.
    pub tokens: usize,
}

/// Loss of `logits: [N, V]` (dense rows) against `targets: [N]` over the rows with `valid[n]`.
///
/// `dlogits` (if given) receives `scale · (softmax − q)` for valid rows and exactly
/// 0 for the others; `row_nll` (if given) receives each valid row's `-log p(target)`.
pub(crate) fn masked_cross_entropy(
    logits: MatRef<'_>,
    targets: &[u32],
    valid: &[bool],
    smoothing: f32,
    mut dlogits: Option<&mut [f32]>,
    scale: f32,
    mut row_nll: Option<&mut [f64]>,
) -> LossSums {
    assert!(
        logits.trans() == Trans::N && logits.ld() == logits.cols(),
        "masked_cross_entropy: logits rows must be stored densely"
    );
    let (v, logits) = (logits.cols(), logits.data());
    let mut sums = LossSums::default();
    let eps = smoothing;
    // Each row's exponentials go to its gradient row, or here without one.
    let mut scratch = if dlogits.is_some() {
        Vec::new()
    } else {
        vec![0.0; v]
    };
    for (n, row) in logits.chunks_exact(v).enumerate().take(targets.len()) {
        if !valid[n] {
            if let Some(d) = dlogits.as_deref_mut() {
                d[n * v..(n + 1) * v].fill(0.0);
            }
            continue;
        }
        let target = targets[n] as usize;
        let (mut max, mut argmax) = (f32::NEG_INFINITY, 0);
        for (j, &z) in row.iter().enumerate() {
            if z > max {
                max = z;
                argmax = j;
            }
        }
        let e = match dlogits.as_deref_mut() {
            Some(d) => &mut d[n * v..(n + 1) * v],
            None => &mut scratch[..],
        };
        for (e, &z) in e.iter_mut().zip(row) {
            *e = exp(z - max);
        }
        let sum: f32 = e.iter().sum();
        let log_sum = sum.ln();
        // -log p_j = max + log_sum - z_j
        let nll = (max + log_sum - row[target]) as f64;
        let mut loss = nll;
        if eps > 0.0 {
            let mean_z = row.iter().map(|&z| z as f64).sum::<f64>() / v as f64;
            let uniform = (max + log_sum) as f64 - mean_z; // -(1/V) Σ_j log p_j
            loss = (1.0 - eps as f64) * nll + eps as f64 * uniform;
        }
        sums.loss += loss;
        sums.nll += nll;
        sums.correct += usize::from(argmax == target);
        sums.tokens += 1;
        if let Some(r) = row_nll.as_deref_mut() {
            r[n] = nll;
        }
        if let Some(d) = dlogits.as_deref_mut() {
            // d = scale · (softmax − (1-ε)·onehot − ε/V); the row holds exp(z − max).
            let d = &mut d[n * v..(n + 1) * v];
            let inv = scale / sum;
            let off = scale * eps / v as f32;
            for g in d.iter_mut() {
                *g = *g * inv - off;
            }
            d[target] -= scale * (1.0 - eps);
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;
    use recurrent_kernels::Rng;

    #[test]
    fn smoothed_gradient_matches_finite_differences_and_masked_rows_are_zero() {
        let (n, v) = (3, 5);
        let mut rng = Rng::new(4);
        let logits: Vec<f32> = (0..n * v).map(|_| rng.uniform(-2.0, 2.0)).collect();
        let targets = [4u32, 1, 0];
        let valid = [true, false, true];
        let mut d = vec![9.0; n * v];
        masked_cross_entropy(
            MatRef::new(&logits, targets.len(), v),
            &targets,
            &valid,
            0.2,
            Some(&mut d),
            1.0,
            None,
        );
        assert!(d[v..2 * v].iter().all(|&g| g == 0.0));
        for j in 0..n * v {
            let f = |h: f32| {
                let mut l = logits.clone();
                l[j] += h;
                masked_cross_entropy(
                    MatRef::new(&l, targets.len(), v),
                    &targets,
                    &valid,
                    0.2,
                    None,
                    1.0,
                    None,
                )
                .loss
            };
            let num = (f(1e-2) - f(-1e-2)) / 2e-2;
            assert!((num - d[j] as f64).abs() < 1e-3, "{j}: {num} vs {}", d[j]);
        }
    }

    #[test]
    fn without_smoothing_the_loss_is_the_nll() {
        let logits = [0.0, 1.0, 2.0, 3.0];
        let s = masked_cross_entropy(
            MatRef::new(&logits, 2, 2),
            &[1, 0],
            &[true, true],
            0.0,
            None,
            1.0,
            None,
        );
        assert_eq!(s.loss, s.nll);
        assert_eq!(s.tokens, 2);
        assert_eq!(s.correct, 1);
    }
}
