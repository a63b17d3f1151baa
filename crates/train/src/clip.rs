//! Gradient clipping by global L2 norm, as `torch.nn.utils.clip_grad_norm_`.
//!
//! RNNs are prone to exploding gradients through time, so the trainer clips
//! the whole flat gradient buffer before every optimizer step. The norm of
//! the flat buffer equals PyTorch's norm of the per-tensor norms.

/// Global L2 norm of `grads`, accumulated in f64 so that millions of squared
/// f32 values do not lose precision; the result is rounded to f32.
pub fn grad_norm(grads: &[f32]) -> f32 {
    sum_of_squares(grads).sqrt() as f32
}

/// Scale `grads` so their global L2 norm is at most `max_norm` (PyTorch
/// `clip_grad_norm_` semantics); returns the norm before clipping.
///
/// The scale is `max_norm / (norm + 1e-6)`, applied only when it is below 1,
/// so gradients under the limit are left bit for bit as they were. If the
/// norm is not finite the gradients are left alone too (PyTorch would turn
/// them into NaN and zeros): check the returned norm and skip the step.
pub fn clip_grad_norm(grads: &mut [f32], max_norm: f32) -> f32 {
    let norm = grad_norm(grads);
    // f32 arithmetic, as PyTorch does on its f32 norm tensor.
    let coef = max_norm / (norm + 1e-6);
    if norm.is_finite() && coef < 1.0 {
        for g in grads {
            *g *= coef;
        }
    }
    norm
}

/// Sum of squares in f64 with four independent accumulators, which lets the
/// compiler keep several additions in flight.
fn sum_of_squares(xs: &[f32]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = xs.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f64::from(x) * f64::from(x);
        }
    }
    let tail: f64 = tail.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norm_of_known_vector() {
        assert_eq!(grad_norm(&[3.0, 4.0]), 5.0);
        assert_eq!(grad_norm(&[]), 0.0);
        assert_eq!(grad_norm(&[1.0; 9]), 3.0);
    }

    #[test]
    fn clips_norm_ten_to_one() {
        // 100 entries of 1.0 have norm 10.
        let mut g = vec![1.0f32; 100];
        let before = clip_grad_norm(&mut g, 1.0);
        assert_eq!(before, 10.0);
        let after = grad_norm(&g);
        assert!((after - 1.0).abs() < 1e-6, "norm after clipping {after}");
    }

    #[test]
    fn under_the_limit_is_unchanged_bit_for_bit() {
        let orig: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 0.1).collect();
        let mut g = orig.clone();
        let norm = clip_grad_norm(&mut g, 5.0);
        assert!(norm < 5.0);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&g), bits(&orig));
    }

    #[test]
    fn non_finite_norm_leaves_grads_alone() {
        let mut g = vec![1.0, f32::INFINITY, 2.0];
        assert_eq!(clip_grad_norm(&mut g, 1.0), f32::INFINITY);
        assert_eq!(g, [1.0, f32::INFINITY, 2.0]);
        let mut g = vec![1.0, f32::NAN];
        assert!(clip_grad_norm(&mut g, 1.0).is_nan());
        assert_eq!(g[0], 1.0);
    }
}
