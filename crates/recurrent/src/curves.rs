//! The loss-curve picture of a run: training loss (averaged into at most a
//! thousand points) and validation loss against the step, written as
//! `loss.svg` into the run folder after every validation.

use std::path::Path;

use recurrent_checkpoint::{atomic_write, CheckpointError};
use recurrent_report::{loss_curve_svg, Series};

/// The file name inside the run folder.
pub const FILE: &str = "loss.svg";

/// Losses seen so far in a run.
#[derive(Default)]
pub(crate) struct Curves {
    train: Vec<(f64, f64)>,
    val: Vec<(f64, f64)>,
}

impl Curves {
    /// The curves recorded in a run folder's metrics.jsonl (empty if there is none),
    /// so a resumed run's picture covers the whole run.
    pub fn from_metrics(path: &Path) -> Curves {
        let mut curves = Curves::default();
        let Ok(text) = std::fs::read_to_string(path) else {
            return curves;
        };
        for v in text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        {
            let (Some(step), Some(loss)) = (v["step"].as_f64(), v["loss"].as_f64()) else {
                continue;
            };
            match v["kind"].as_str() {
                Some("train") => curves.train.push((step, loss)),
                Some("val") => curves.val.push((step, loss)),
                _ => {}
            }
        }
        curves
    }

    /// Records a training step's loss.
    pub fn train(&mut self, step: u64, loss: f64) {
        self.train.push((step as f64, loss));
    }

    /// Records a validation loss.
    pub fn val(&mut self, step: u64, loss: f64) {
        self.val.push((step as f64, loss));
    }

    /// Writes the picture atomically to `path`.
    pub fn write_to(&self, path: &Path) -> Result<(), CheckpointError> {
        let series = [
            Series::new("training (mean per bucket)", downsample(&self.train, 1000)),
            Series::new("validation", self.val.clone()),
        ];
        let svg = loss_curve_svg(&series, "Loss", "step", "loss (nats per token)");
        atomic_write(path, svg.as_bytes())
    }
}

/// At most `max` points: consecutive points averaged in equal buckets.
fn downsample(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    let per = points.len().div_ceil(max).max(1);
    points
        .chunks(per)
        .map(|c| {
            let n = c.len() as f64;
            (
                c.iter().map(|p| p.0).sum::<f64>() / n,
                c.iter().map(|p| p.1).sum::<f64>() / n,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_averages_buckets_and_keeps_short_series() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, i as f64 * 2.0)).collect();
        assert_eq!(downsample(&pts, 20), pts);
        let d = downsample(&pts, 5);
        assert_eq!(d.len(), 5);
        assert_eq!(d[0], (0.5, 1.0));
        assert_eq!(d[4], (8.5, 17.0));
    }
}
