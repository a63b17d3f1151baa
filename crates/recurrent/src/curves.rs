//! The loss-curve picture of a run: training loss (averaged into at most a
//! thousand points) and validation loss against the step, written as
//! `loss.svg` into the run folder after every validation.

use std::path::{Path, PathBuf};

use recurrent_checkpoint::{atomic_write, CheckpointError};
use recurrent_report::{loss_curve_svg, Series};

use crate::error::Result;
use crate::run::RunFolder;

/// The file name inside the run folder.
pub const FILE: &str = "loss.svg";

/// Losses seen so far in a run.
#[derive(Default)]
pub(crate) struct Curves {
    train: Vec<(f64, f64)>,
    val: Vec<(f64, f64)>,
}

impl Curves {
    /// The curves recorded in a run folder's metrics.jsonl, so a resumed
    /// run's picture covers the whole run; none when the file is missing or
    /// cannot be drawn (the run then draws what it records from now on).
    pub fn from_metrics(path: &Path) -> Curves {
        Curves::read_metrics(path).unwrap_or_default()
    }

    /// The curves of a `metrics.jsonl`, read strictly for a plot: every line
    /// must be a JSON object (but an unfinished last line, the trace of a
    /// killed run, is left out), and there must be at least one training or
    /// validation record with a step and a loss.
    pub fn read_metrics(path: &Path) -> Result<Curves, MetricsError> {
        let text = std::fs::read_to_string(path).map_err(|source| MetricsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut curves = Curves::default();
        let lines: Vec<&str> = text.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let unfinished = i + 1 == lines.len();
            let v = match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) if v.is_object() => v,
                _ if unfinished => break,
                Ok(_) => return Err(MetricsError::bad_line(path, i, line, "not a JSON object")),
                Err(e) => return Err(MetricsError::bad_line(path, i, line, &e.to_string())),
            };
            let (Some(step), Some(loss)) = (v["step"].as_f64(), v["loss"].as_f64()) else {
                continue;
            };
            match v["kind"].as_str() {
                Some("train") => curves.train.push((step, loss)),
                Some("val") => curves.val.push((step, loss)),
                _ => {}
            }
        }
        if curves.train.is_empty() && curves.val.is_empty() {
            return Err(MetricsError::NoRecords {
                path: path.to_path_buf(),
            });
        }
        Ok(curves)
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

/// A `metrics.jsonl` that cannot be drawn.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a JSON object.
    #[error("{}, line {line}: not a metrics record ({reason}): {text}", path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// The line's 1-based number.
        line: usize,
        /// Its first characters.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No line is a training or validation record with a step and a loss.
    #[error("{} has no training or validation records to draw", path.display())]
    NoRecords {
        /// The file.
        path: PathBuf,
    },
}

impl MetricsError {
    fn bad_line(path: &Path, index: usize, line: &str, reason: &str) -> MetricsError {
        const SHOWN: usize = 60;
        let mut text: String = line.chars().take(SHOWN).collect();
        if line.chars().nth(SHOWN).is_some() {
            text.push_str("...");
        }
        MetricsError::BadLine {
            path: path.to_path_buf(),
            line: index + 1,
            text: format!("{text:?}"),
            reason: reason.to_string(),
        }
    }
}

impl RunFolder {
    /// Draws the loss plot from `metrics.jsonl` into `out` (default: the
    /// run's `loss.svg`), as `recurrent plot` does: a line that is not a
    /// record, or a file without records, is an error naming the file (and
    /// the line), and nothing is written.
    pub fn plot_metrics(&self, out: Option<&Path>) -> Result<PathBuf> {
        let out = out.map_or_else(|| self.loss_plot_path(), Path::to_path_buf);
        Curves::read_metrics(&self.metrics_path())?.write_to(&out)?;
        Ok(out)
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

    fn metrics(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn garbage_and_empty_metrics_are_errors_naming_the_file_and_line() {
        let good = r#"{"kind":"train","step":1,"loss":2.5}"#;
        let (_d, path) = metrics(&format!("{good}\ngarbage\n"));
        let err = Curves::read_metrics(&path).err().unwrap().to_string();
        assert!(err.contains("metrics.jsonl, line 2"), "{err}");
        assert!(err.contains("\"garbage\""), "{err}");
        let (_d, path) = metrics("[1, 2]\n");
        let err = Curves::read_metrics(&path).err().unwrap().to_string();
        assert!(
            err.contains("line 1: not a metrics record (not a JSON object)"),
            "{err}"
        );
        for empty in ["", "\n\n", r#"{"kind":"note"}"#] {
            let (_d, path) = metrics(empty);
            let err = Curves::read_metrics(&path).err().unwrap().to_string();
            assert!(
                err.contains("has no training or validation records"),
                "{err}"
            );
        }
        // A killed run's unfinished last line is left out.
        let (_d, path) = metrics(&format!("{good}\n{{\"kind\":\"tr"));
        let curves = Curves::read_metrics(&path).unwrap();
        assert_eq!(curves.train, [(1.0, 2.5)]);
    }

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
