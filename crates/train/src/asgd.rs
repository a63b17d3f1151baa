//! Non-monotonically triggered averaged SGD (NT-ASGD, Merity et al. 2017,
//! "Regularizing and Optimizing LSTM Language Models"): train with plain SGD
//! until validation stops improving, then keep a running average of the
//! weights from that step on; evaluation and the saved best model use the
//! average.

/// Whether to start averaging: the new validation loss is worse than the best
/// of all validations except the last `nonmono` ones (AWD-LSTM's rule).
/// `history` holds the earlier scheduled validation losses, oldest first.
pub fn should_start(history: &[f64], current: f64, nonmono: usize) -> bool {
    history.len() > nonmono
        && history[..history.len() - nonmono]
            .iter()
            .fold(f64::INFINITY, |m, &x| m.min(x))
            < current
}

/// The running average of the parameters since averaging started.
#[derive(Clone, Debug, PartialEq)]
pub struct Averager {
    /// The average, same layout as the parameters.
    pub average: Vec<f32>,
    /// How many parameter vectors it averages.
    pub count: u64,
}

impl Averager {
    /// An empty average over `n` parameters.
    pub fn new(n: usize) -> Averager {
        Averager {
            average: vec![0.0; n],
            count: 0,
        }
    }

    /// Adds the parameters after one more step: `avg += (p - avg) / count`,
    /// the update of PyTorch's `ASGD` with `lambd = 0`, `t0` = the switch.
    pub fn update(&mut self, params: &[f32]) {
        self.count += 1;
        let mu = 1.0 / self.count as f32;
        for (a, &p) in self.average.iter_mut().zip(params) {
            *a += (p - *a) * mu;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_only_when_worse_than_the_best_before_the_window() {
        // Fewer validations than the window: never.
        assert!(!should_start(&[3.0, 2.0], 5.0, 2));
        // Better than everything before the window: no switch.
        assert!(!should_start(&[3.0, 2.0, 2.5, 2.4], 1.9, 2));
        // Worse than the best before the window (2.0), though better than the window's: switch.
        assert!(should_start(&[3.0, 2.0, 2.5, 2.4], 2.1, 2));
        // Equal to it is not worse.
        assert!(!should_start(&[3.0, 2.0, 2.5, 2.4], 2.0, 2));
    }

    #[test]
    fn averages_every_vector_since_the_switch() {
        let mut avg = Averager::new(2);
        for p in [[1.0, -2.0], [3.0, 0.0], [5.0, 8.0]] {
            avg.update(&p);
        }
        assert_eq!(avg.count, 3);
        assert!((avg.average[0] - 3.0).abs() < 1e-6 && (avg.average[1] - 2.0).abs() < 1e-6);
    }
}
