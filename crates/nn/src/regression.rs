//! Regression losses over predictions `[rows, F]`: mean squared error, mean
//! absolute error and Huber (PyTorch `MSELoss`, `L1Loss`, `HuberLoss` with
//! mean reduction), each fused with its gradient.
//!
//! An optional weight per element (a mask is weights of 0 and 1) makes the
//! loss `Σ wᵢ·ℓ(pᵢ - tᵢ) / Σ wᵢ`; without weights every element weighs 1,
//! which is PyTorch's mean. Sums are taken in f64 in element order, so the
//! result does not depend on threads or batch splits.

use serde::{Deserialize, Serialize};

/// Which loss compares a prediction with its target.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum RegressionLoss {
    /// Squared error `(p - t)²` (PyTorch `MSELoss`).
    Mse,
    /// Absolute error `|p - t|` (PyTorch `L1Loss`; gradient 0 where `p == t`).
    Mae,
    /// `½x²` for `|x| ≤ δ`, else `δ(|x| - ½δ)`, with `x = p - t` (PyTorch `HuberLoss`).
    Huber {
        /// The threshold `δ` between the quadratic and the linear part (> 0).
        delta: f32,
    },
}

impl RegressionLoss {
    /// The loss of one element whose error is `x = p - t`, and its derivative in `x`.
    fn value_and_slope(self, x: f64) -> (f64, f64) {
        match self {
            RegressionLoss::Mse => (x * x, 2.0 * x),
            RegressionLoss::Mae => (x.abs(), sign(x)),
            RegressionLoss::Huber { delta } => {
                let d = delta as f64;
                if x.abs() <= d {
                    (0.5 * x * x, x)
                } else {
                    (d * (x.abs() - 0.5 * d), d * sign(x))
                }
            }
        }
    }

    /// The loss's name as the command line and config files write it.
    pub fn name(self) -> &'static str {
        match self {
            RegressionLoss::Mse => "mse",
            RegressionLoss::Mae => "mae",
            RegressionLoss::Huber { .. } => "huber",
        }
    }
}

/// `sign(x)` with `sign(0) = 0`, as PyTorch's `L1Loss` gradient.
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Mean loss of `pred` against `target` (both `[rows, F]`, flat), weighted by
/// `weights` (same shape) when given.
///
/// When `dpred` is given it receives `scale ×` the gradient of the returned
/// mean with respect to `pred` (overwritten, not added into). The mean is 0
/// (and the gradient zero) when every weight is 0.
///
/// # Panics
/// If `target`, `weights` or `dpred` has another length than `pred`: the
/// callers (the models' entry points) check their arguments once per call.
pub fn regression_loss(
    kind: RegressionLoss,
    pred: &[f32],
    target: &[f32],
    weights: Option<&[f32]>,
    dpred: Option<&mut [f32]>,
    scale: f32,
) -> f64 {
    let n = pred.len();
    assert_eq!(target.len(), n, "regression_loss: target length");
    if let Some(w) = weights {
        assert_eq!(w.len(), n, "regression_loss: weights length");
    }
    let weight = |i: usize| weights.map_or(1.0, |w| w[i] as f64);
    let total_weight: f64 = (0..n).map(weight).sum();
    if total_weight <= 0.0 {
        if let Some(d) = dpred {
            assert_eq!(d.len(), n, "regression_loss: dpred length");
            d.fill(0.0);
        }
        return 0.0;
    }
    let mut sum = 0.0f64;
    let mut d = dpred;
    if let Some(d) = d.as_deref() {
        assert_eq!(d.len(), n, "regression_loss: dpred length");
    }
    let grad_scale = scale as f64 / total_weight;
    for i in 0..n {
        let w = weight(i);
        let (value, slope) = kind.value_and_slope(pred[i] as f64 - target[i] as f64);
        sum += w * value;
        if let Some(d) = d.as_deref_mut() {
            d[i] = (w * slope * grad_scale) as f32;
        }
    }
    sum / total_weight
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, random_vec};
    use recurrent_kernels::Rng;

    const KINDS: [RegressionLoss; 4] = [
        RegressionLoss::Mse,
        RegressionLoss::Mae,
        RegressionLoss::Huber { delta: 1.0 },
        RegressionLoss::Huber { delta: 0.3 },
    ];

    /// Predictions kept away from their targets by more than the
    /// finite-difference step, where MAE and Huber have no kink.
    fn away_from_kinks(rng: &mut Rng, target: &[f32]) -> Vec<f32> {
        target
            .iter()
            .map(|&t| {
                let off = rng.uniform(0.05, 1.5);
                if rng.uniform(0.0, 1.0) < 0.5 {
                    t + off
                } else {
                    t - off
                }
            })
            .collect()
    }

    #[test]
    fn gradients_match_finite_differences_with_and_without_weights() {
        let (rows, f) = (5, 3);
        let mut rng = Rng::new(4);
        let target = random_vec(&mut rng, rows * f);
        let mask: Vec<f32> = (0..rows * f).map(|i| (i % 4 != 1) as u8 as f32).collect();
        let weights: Vec<f32> = (0..rows * f).map(|_| rng.uniform(0.1, 2.0)).collect();
        for kind in KINDS {
            let pred = away_from_kinks(&mut rng, &target);
            // Huber with δ = 0.3 sees errors on both sides of δ; keep them off it too.
            let pred: Vec<f32> = pred
                .iter()
                .zip(&target)
                .map(|(&p, &t)| {
                    if ((p - t).abs() - 0.3).abs() < 0.03 {
                        p + 0.1
                    } else {
                        p
                    }
                })
                .collect();
            for w in [None, Some(&mask[..]), Some(&weights[..])] {
                let mut d = vec![0.0; rows * f];
                regression_loss(kind, &pred, &target, w, Some(&mut d), 1.0);
                check(&format!("{kind:?} {}", w.is_some()), &pred, &d, |p| {
                    regression_loss(kind, p, &target, w, None, 1.0)
                });
            }
        }
    }

    #[test]
    fn values_match_the_definitions() {
        let pred = [1.0, -2.0, 0.5, 3.0];
        let target = [0.0, 0.0, 0.5, 1.0];
        // Errors 1, -2, 0, 2.
        let mse = regression_loss(RegressionLoss::Mse, &pred, &target, None, None, 1.0);
        assert!((mse - (1.0 + 4.0 + 0.0 + 4.0) / 4.0).abs() < 1e-12);
        let mae = regression_loss(RegressionLoss::Mae, &pred, &target, None, None, 1.0);
        assert!((mae - 5.0 / 4.0).abs() < 1e-12);
        let huber = RegressionLoss::Huber { delta: 1.0 };
        let h = regression_loss(huber, &pred, &target, None, None, 1.0);
        assert!((h - (0.5 + 1.5 + 0.0 + 1.5) / 4.0).abs() < 1e-12);
        // A mask leaves out the masked elements, numerator and denominator.
        let mask = [1.0, 0.0, 1.0, 0.0];
        let m = regression_loss(RegressionLoss::Mse, &pred, &target, Some(&mask), None, 1.0);
        assert!((m - 0.5).abs() < 1e-12);
        let none = [0.0; 4];
        let mut d = [9.0; 4];
        let z = regression_loss(
            RegressionLoss::Mse,
            &pred,
            &target,
            Some(&none),
            Some(&mut d),
            1.0,
        );
        assert_eq!((z, d), (0.0, [0.0; 4]));
    }

    #[test]
    fn the_gradient_is_scaled_and_zero_at_a_perfect_mae_prediction() {
        let pred = [1.0, 2.0];
        let target = [1.0, 0.0];
        let mut d = [0.0; 2];
        regression_loss(RegressionLoss::Mae, &pred, &target, None, Some(&mut d), 3.0);
        assert_eq!(d, [0.0, 1.5]);
        regression_loss(RegressionLoss::Mse, &pred, &target, None, Some(&mut d), 1.0);
        assert_eq!(d, [0.0, 2.0]);
    }
}
