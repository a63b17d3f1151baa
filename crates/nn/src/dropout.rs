//! Inverted dropout (PyTorch `nn.Dropout`): during training each element is
//! zeroed with probability `p` and survivors are scaled by `1/(1-p)`, so nothing
//! changes at evaluation time. The mask is kept for the backward pass.

use recurrent_kernels::Rng;

/// Draws a fresh mask (`0` or `1/(1-p)` per element) into `mask`.
pub fn sample_mask(mask: &mut [f32], p: f32, rng: &mut Rng) {
    let scale = 1.0 / (1.0 - p);
    for m in mask {
        *m = if rng.next_f32() < p { 0.0 } else { scale };
    }
}

/// Forward in place: `x *= mask`.
pub fn forward(x: &mut [f32], mask: &[f32]) {
    for (v, &m) in x.iter_mut().zip(mask) {
        *v *= m;
    }
}

/// Backward in place: `dx = dy * mask` (the same product as the forward).
pub fn backward(dy: &mut [f32], mask: &[f32]) {
    forward(dy, mask);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_expected_fraction_and_mean() {
        let mut rng = Rng::new(5);
        let mut mask = vec![0.0; 100_000];
        sample_mask(&mut mask, 0.3, &mut rng);
        let zeros = mask.iter().filter(|&&m| m == 0.0).count() as f64 / mask.len() as f64;
        let mean = mask.iter().map(|&m| m as f64).sum::<f64>() / mask.len() as f64;
        assert!((zeros - 0.3).abs() < 0.01, "dropped fraction {zeros}");
        assert!((mean - 1.0).abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn backward_is_the_masked_gradient() {
        let mask = [0.0, 2.0, 2.0];
        let mut x = [1.0, 2.0, 3.0];
        forward(&mut x, &mask);
        assert_eq!(x, [0.0, 4.0, 6.0]);
        let mut dy = [1.0, 1.0, 1.0];
        backward(&mut dy, &mask);
        assert_eq!(dy, [0.0, 2.0, 2.0]);
    }
}
