//! Activation regularization (AR) and temporal activation regularization
//! (TAR) of AWD-LSTM (Merity et al. 2017): penalties on a recurrent layer's
//! outputs `y: [T*B, H]` (time-major) that are added to the loss.
//!
//! * AR, `alpha * mean(y²)`, keeps activations small;
//! * TAR, `beta * mean((y_t - y_{t-1})²)` over the steps of the block, keeps
//!   them from changing quickly.
//!
//! Each forward returns the penalty; each backward *adds* its gradient into `dy`.

/// AR forward: `alpha * mean(y²)` over all elements (0 for an empty `y`).
pub fn ar_forward(y: &[f32], alpha: f32) -> f64 {
    if y.is_empty() {
        return 0.0;
    }
    let sum: f64 = y.iter().map(|&v| (v as f64) * (v as f64)).sum();
    alpha as f64 * sum / y.len() as f64
}

/// Backward of [`ar_forward`]: `dy += 2 * alpha * y / N`.
pub fn ar_backward(y: &[f32], alpha: f32, dy: &mut [f32]) {
    if y.is_empty() {
        return;
    }
    let scale = 2.0 * alpha / y.len() as f32;
    for (d, &v) in dy.iter_mut().zip(y) {
        *d += scale * v;
    }
}

/// TAR forward: `beta * mean((y_t - y_{t-1})²)` over the `t - 1` differences
/// of consecutive steps, each `bh = B*H` wide (0 when `t < 2`: no pair).
pub fn tar_forward(y: &[f32], t: usize, bh: usize, beta: f32) -> f64 {
    if t < 2 || bh == 0 {
        return 0.0;
    }
    let mut sum = 0.0f64;
    for s in 1..t {
        let (prev, cur) = (&y[(s - 1) * bh..s * bh], &y[s * bh..(s + 1) * bh]);
        for (&a, &b) in cur.iter().zip(prev) {
            let d = (a - b) as f64;
            sum += d * d;
        }
    }
    beta as f64 * sum / ((t - 1) * bh) as f64
}

/// Backward of [`tar_forward`]: each difference `d = y_t - y_{t-1}` adds
/// `2 * beta * d / M` to `dy_t` and subtracts it from `dy_{t-1}`.
pub fn tar_backward(y: &[f32], t: usize, bh: usize, beta: f32, dy: &mut [f32]) {
    if t < 2 || bh == 0 {
        return;
    }
    let scale = 2.0 * beta / ((t - 1) * bh) as f32;
    for s in 1..t {
        for j in 0..bh {
            let g = scale * (y[s * bh + j] - y[(s - 1) * bh + j]);
            dy[s * bh + j] += g;
            dy[(s - 1) * bh + j] -= g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, random_vec};
    use recurrent_kernels::Rng;

    #[test]
    fn ar_value_and_gradient() {
        assert_eq!(ar_forward(&[1.0, -3.0], 2.0), 10.0);
        let y = random_vec(&mut Rng::new(1), 12);
        let mut dy = vec![0.5; 12];
        ar_backward(&y, 2.0, &mut dy);
        // The backward adds: subtract what was there.
        dy.iter_mut().for_each(|d| *d -= 0.5);
        check("AR", &y, &dy, |y| ar_forward(y, 2.0));
    }

    #[test]
    fn tar_value_and_gradient() {
        // Two steps of one unit: (3 - 1)² / 1.
        assert_eq!(tar_forward(&[1.0, 3.0], 2, 1, 1.0), 4.0);
        assert_eq!(tar_forward(&[1.0, 3.0], 1, 2, 1.0), 0.0);
        let (t, bh) = (4, 6);
        let y = random_vec(&mut Rng::new(2), t * bh);
        let mut dy = vec![0.0; t * bh];
        tar_backward(&y, t, bh, 1.5, &mut dy);
        check("TAR", &y, &dy, |y| tar_forward(y, t, bh, 1.5));
    }
}
