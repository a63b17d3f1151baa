//! Finite-difference gradient checking shared by the layer tests.

use recurrent_kernels::Rng;

/// Values uniform in [-1, 1).
pub fn random_vec(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

/// Checks `analytic` (d loss / d x) against central differences of `loss` at `x`.
/// The loss is evaluated in f32 by the layers and accumulated in f64; with
/// h = 1e-2 the truncation and rounding errors stay well below the tolerance.
pub fn check(what: &str, x: &[f32], analytic: &[f32], loss: impl Fn(&[f32]) -> f64) {
    assert_eq!(x.len(), analytic.len(), "{what}: gradient length");
    let h = 1e-2f32;
    let mut worst = 0.0f64;
    for i in 0..x.len() {
        let mut xp = x.to_vec();
        xp[i] += h;
        let lp = loss(&xp);
        xp[i] = x[i] - h;
        let lm = loss(&xp);
        let numeric = (lp - lm) / (2.0 * h as f64);
        let a = analytic[i] as f64;
        let err = (numeric - a).abs() / (1e-2 + numeric.abs().max(a.abs()));
        worst = worst.max(err);
        assert!(
            err < 2e-2,
            "{what}[{i}]: analytic {a:.6} vs numeric {numeric:.6}"
        );
    }
    assert!(worst.is_finite());
}
