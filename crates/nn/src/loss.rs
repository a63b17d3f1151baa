//! Softmax cross-entropy fused with its gradient (PyTorch `F.cross_entropy`
//! with mean reduction). Computing the loss and `dlogits` in one pass over the
//! `[N, V]` logits means only one such buffer ever exists.

use recurrent_kernels::activation::exp;
use recurrent_kernels::multiversion;
use recurrent_kernels::threads::{parallel_for, threads};
use std::sync::Mutex;

/// Mean cross-entropy in nats of `logits: [N, V]` against `targets: [N]`,
/// and the count of rows whose argmax equals the target.
///
/// When `dlogits` is given it receives `(softmax(logits) - onehot(target)) * scale`
/// (the gradient of `scale * N * mean loss`); it may be the logits buffer's copy.
///
/// Rows are shared among the kernels' threads and each is vectorized (one
/// pass for the max, one for `exp` and its sum, one to scale). Every row's
/// loss is kept and summed in f64 in row order, so the result does not depend
/// on the thread count.
///
/// # Panics
/// If `logits` (or `dlogits`) holds fewer than `N * V` values or a target is
/// not below `v`: callers check a user's tokens once per block (the model's
/// entry points do), not here on every row.
pub fn softmax_cross_entropy(
    logits: &[f32],
    targets: &[u32],
    v: usize,
    dlogits: Option<&mut [f32]>,
    scale: f32,
) -> (f64, usize) {
    let n = targets.len();
    assert!(
        logits.len() >= n * v,
        "softmax_cross_entropy: logits too short"
    );
    let mut rows = vec![RowLoss::default(); n];
    let parts = threads().clamp(1, n.max(1));
    let per = n.div_ceil(parts.max(1)).max(1);
    let mut d_parts: Vec<Option<&mut [f32]>> = match dlogits {
        Some(d) => d[..n * v].chunks_mut(per * v).map(Some).collect(),
        None => (0..parts).map(|_| None).collect(),
    };
    let work: Vec<Mutex<RowsTask>> = rows
        .chunks_mut(per)
        .zip(d_parts.iter_mut())
        .enumerate()
        .map(|(i, (r, d))| Mutex::new((i * per, r, d.take())))
        .collect();
    parallel_for(work.len(), &|i| {
        let mut guard = work[i].lock().unwrap_or_else(|e| e.into_inner());
        let (first, out, d) = &mut *guard;
        for (k, row_out) in out.iter_mut().enumerate() {
            let r = *first + k;
            let row = &logits[r * v..(r + 1) * v];
            let d_row = d.as_deref_mut().map(|d| &mut d[k * v..(k + 1) * v]);
            *row_out = row_loss(row, targets[r] as usize, d_row, scale);
        }
    });
    drop(work);
    let total: f64 = rows.iter().map(|r| r.loss as f64).sum();
    let correct = rows.iter().filter(|r| r.correct).count();
    (total / n.max(1) as f64, correct)
}

/// A task's rows: the index of the first, their results and their gradient.
type RowsTask<'a> = (usize, &'a mut [RowLoss], Option<&'a mut [f32]>);

/// One row's loss and whether its argmax is the target.
#[derive(Clone, Copy, Default)]
struct RowLoss {
    loss: f32,
    correct: bool,
}

/// The loss of one row, writing its gradient into `d` when given.
fn row_loss(row: &[f32], target: usize, d: Option<&mut [f32]>, scale: f32) -> RowLoss {
    let mut max = f32::NEG_INFINITY;
    row_max(row, &mut max);
    // The first index holding the max counts as the argmax, as in PyTorch.
    let correct = row[target] == max && !row[..target].contains(&max);
    let mut sum = 0.0;
    match d {
        Some(d) => {
            exp_shifted_into(row, max, d, &mut sum);
            scale_in_place(d, scale / sum);
            d[target] -= scale;
        }
        None => exp_shifted_sum(row, max, &mut sum),
    }
    RowLoss {
        loss: sum.ln() - (row[target] - max),
        correct,
    }
}

/// Independent accumulators in the vectorized reductions: two AVX-512
/// registers, so the adds do not wait on each other.
const LANES: usize = 32;

multiversion! {
    /// `max = max(row)` (NaNs are skipped, as `>` is false for them).
    fn row_max(row: &[f32], max: &mut f32) => row_max_body
}

#[inline(always)]
fn row_max_body(row: &[f32], max: &mut f32) {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &z) in acc.iter_mut().zip(c) {
            *a = if z > *a { z } else { *a };
        }
    }
    for &z in tail.iter().chain(&acc) {
        *max = if z > *max { z } else { *max };
    }
}

multiversion! {
    /// `sum = Σ e^(row - max)`.
    fn exp_shifted_sum(row: &[f32], max: f32, sum: &mut f32) => exp_shifted_sum_body
}

#[inline(always)]
fn exp_shifted_sum_body(row: &[f32], max: f32, sum: &mut f32) {
    let mut acc = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &z) in acc.iter_mut().zip(c) {
            *a += exp(z - max);
        }
    }
    *sum = tail.iter().map(|&z| exp(z - max)).sum::<f32>() + acc.iter().sum::<f32>();
}

multiversion! {
    /// `d = e^(row - max)` and `sum = Σ d`.
    fn exp_shifted_into(row: &[f32], max: f32, d: &mut [f32], sum: &mut f32) => exp_shifted_into_body
}

#[inline(always)]
fn exp_shifted_into_body(row: &[f32], max: f32, d: &mut [f32], sum: &mut f32) {
    let d = &mut d[..row.len()];
    let mut acc = [0.0f32; LANES];
    let mut rows = row.chunks_exact(LANES);
    let mut outs = d.chunks_exact_mut(LANES);
    for (c, o) in (&mut rows).zip(&mut outs) {
        for ((a, o), &z) in acc.iter_mut().zip(o.iter_mut()).zip(c) {
            *o = exp(z - max);
            *a += *o;
        }
    }
    let mut tail = 0.0;
    for (o, &z) in outs.into_remainder().iter_mut().zip(rows.remainder()) {
        *o = exp(z - max);
        tail += *o;
    }
    *sum = tail + acc.iter().sum::<f32>();
}

multiversion! {
    /// `d *= s`.
    fn scale_in_place(d: &mut [f32], s: f32) => scale_in_place_body
}

#[inline(always)]
fn scale_in_place_body(d: &mut [f32], s: f32) {
    for x in d {
        *x *= s;
    }
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

    /// The vectorized, threaded loss against a plain f64 one, on rows whose
    /// width is not a multiple of the lane count, with a tie for the argmax;
    /// the result is bit-identical at 1 and 2 threads.
    #[test]
    fn matches_a_plain_reference_at_any_thread_count() {
        let (n, v) = (37, 1003);
        let mut rng = Rng::new(4);
        let mut logits: Vec<f32> = random_vec(&mut rng, n * v)
            .iter()
            .map(|x| 8.0 * x)
            .collect();
        let mut targets: Vec<u32> = (0..n).map(|_| rng.below(v as u64) as u32).collect();
        // Row 0: the target ties an earlier max, so it is not counted correct;
        // row 1: the target is the max.
        targets[0] = 10;
        logits[10] = 100.0;
        logits[5] = 100.0;
        logits[v + targets[1] as usize] = 100.0;
        let mut want_loss = 0.0;
        let mut want_correct = 0;
        let mut want_d = vec![0.0f64; n * v];
        for (r, row) in logits.chunks_exact(v).enumerate() {
            let t = targets[r] as usize;
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let first_max = row.iter().position(|&z| z as f64 == max).unwrap();
            want_correct += usize::from(first_max == t);
            let sum: f64 = row.iter().map(|&z| (z as f64 - max).exp()).sum();
            want_loss += sum.ln() - (row[t] as f64 - max);
            for (j, &z) in row.iter().enumerate() {
                want_d[r * v + j] = ((z as f64 - max).exp() / sum - f64::from(j == t)) * 0.5;
            }
        }
        want_loss /= n as f64;
        let mut results = Vec::new();
        for t in [1, 2] {
            recurrent_kernels::threads::set_this_thread(t);
            let mut d = vec![0.0; n * v];
            let (loss, correct) = softmax_cross_entropy(&logits, &targets, v, Some(&mut d), 0.5);
            assert!(
                (loss - want_loss).abs() < 1e-5 * want_loss,
                "{loss} vs {want_loss}"
            );
            assert_eq!(correct, want_correct);
            for (g, w) in d.iter().zip(&want_d) {
                assert!((*g as f64 - w).abs() < 1e-6, "{g} vs {w}");
            }
            let (eval_loss, _) = softmax_cross_entropy(&logits, &targets, v, None, 1.0);
            assert_eq!(eval_loss, loss);
            results.push((loss.to_bits(), d));
        }
        assert!(results[0] == results[1], "thread count changed the result");
    }

    #[test]
    fn large_logits_do_not_overflow() {
        let (loss, correct) = softmax_cross_entropy(&[1000.0, 0.0], &[0], 2, None, 1.0);
        assert!(loss.is_finite() && loss < 1e-6);
        assert_eq!(correct, 1);
    }
}
