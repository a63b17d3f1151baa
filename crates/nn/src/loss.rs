//! Softmax cross-entropy fused with its gradient (PyTorch `F.cross_entropy`
//! with mean reduction). Computing the loss and `dlogits` in one pass over the
//! `[N, V]` logits means only one such buffer ever exists.

/// Mean cross-entropy in nats of `logits: [N, V]` against `targets: [N]`,
/// and the count of rows whose argmax equals the target.
///
/// When `dlogits` is given it receives `(softmax(logits) - onehot(target)) * scale`
/// (the gradient of `scale * N * mean loss`); it may be the logits buffer's copy.
/// The sum is accumulated in f64 so long blocks do not lose precision.
pub fn softmax_cross_entropy(
    logits: &[f32],
    targets: &[u32],
    v: usize,
    mut dlogits: Option<&mut [f32]>,
    scale: f32,
) -> (f64, usize) {
    let mut total = 0.0f64;
    let mut correct = 0;
    for (n, (row, &target)) in logits.chunks_exact(v).zip(targets).enumerate() {
        let target = target as usize;
        let (mut max, mut argmax) = (f32::NEG_INFINITY, 0);
        for (j, &z) in row.iter().enumerate() {
            if z > max {
                max = z;
                argmax = j;
            }
        }
        correct += usize::from(argmax == target);
        let sum: f32 = row.iter().map(|&z| (z - max).exp()).sum();
        let log_sum = sum.ln();
        total += (log_sum - (row[target] - max)) as f64;
        if let Some(d) = dlogits.as_deref_mut() {
            let d = &mut d[n * v..(n + 1) * v];
            let inv = scale / sum;
            for (g, &z) in d.iter_mut().zip(row) {
                *g = (z - max).exp() * inv;
            }
            d[target] -= scale;
        }
    }
    (total / targets.len().max(1) as f64, correct)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, random_vec};
    use recurrent_kernels::Rng;

    #[test]
    fn uniform_logits_give_log_v() {
        let (loss, _) = softmax_cross_entropy(&[0.0; 8], &[3, 1], 4, None, 1.0);
        assert!((loss - 4f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (n, v) = (3, 6);
        let mut rng = Rng::new(9);
        let logits: Vec<f32> = random_vec(&mut rng, n * v)
            .iter()
            .map(|x| 3.0 * x)
            .collect();
        let targets = [5u32, 0, 2];
        let mut d = vec![0.0; n * v];
        softmax_cross_entropy(&logits, &targets, v, Some(&mut d), 1.0 / n as f32);
        check("softmax-ce", &logits, &d, |l| {
            softmax_cross_entropy(l, &targets, v, None, 1.0).0
        });
    }

    #[test]
    fn large_logits_do_not_overflow() {
        let (loss, correct) = softmax_cross_entropy(&[1000.0, 0.0], &[0], 2, None, 1.0);
        assert!(loss.is_finite() && loss < 1e-6);
        assert_eq!(correct, 1);
    }
}
