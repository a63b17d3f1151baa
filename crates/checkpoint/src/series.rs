//! A sequence-regression model and what it needs to read a series (column
//! names, normalisation, window) as a checkpoint folder, and back.
//!
//! Same folder as a language model's (see the crate docs), with:
//!
//! ```text
//! config.json   format "recurrent-series", the model, columns, target, window,
//!               horizon, per-column mean and std, loss, split
//! vocab.json    the column names, in the model's input order
//! ```

use std::path::{Path, PathBuf};

use recurrent_model::series::{SeriesConfig, SeriesModel};
use recurrent_nn::regression::RegressionLoss;
use serde::{Deserialize, Serialize};

use crate::layout::CONFIG_FILE;
use crate::lm::{named_tensors, unnamed, ResumeState};
use crate::{Checkpoint, CheckpointError};

/// The `format` field of a series config.json.
pub const FORMAT: &str = "recurrent-series";
/// The config.json layout version this build writes and reads.
pub const VERSION: u32 = 1;

/// Rows in each part of the chronological split the model was trained with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitRows {
    /// Training rows (the normalisation was fitted on them).
    pub train: usize,
    /// Validation rows.
    pub valid: usize,
    /// Test rows: the held-out tail.
    pub test: usize,
}

/// How the model reads a series: everything besides the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesInfo {
    /// The columns the model reads, in order.
    pub columns: Vec<String>,
    /// The column forecasts are reported for.
    pub target: String,
    /// Rows of input per prediction.
    pub window: usize,
    /// Rows predicted at once (every column).
    pub horizon: usize,
    /// Each column's mean over the training rows.
    pub mean: Vec<f64>,
    /// Each column's standard deviation over the training rows.
    pub std: Vec<f64>,
    /// The training loss.
    pub loss: RegressionLoss,
    /// The split of the data it was trained on.
    pub split: SplitRows,
}

/// config.json of a series checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesConfigFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// The layout version, at most [`VERSION`] for this build to read it.
    pub version: u32,
    /// The architecture.
    pub model: SeriesConfig,
    /// How it reads a series.
    #[serde(flatten)]
    pub info: SeriesInfo,
}

/// A loaded series checkpoint.
pub struct SavedSeries {
    /// The checkpoint folder it came from (a run folder's `best/` or `last/`).
    pub path: PathBuf,
    /// The model, weights loaded.
    pub model: SeriesModel,
    /// How it reads a series.
    pub info: SeriesInfo,
    /// Optimizer and trainer state, when the folder can resume training.
    pub resume: Option<ResumeState>,
}

/// Writes `model` with `info` (and the resume state) to the folder `dir`,
/// atomically. `info` must fit the model ([`CheckpointError::Mismatch`]).
pub fn save(
    dir: &Path,
    model: &SeriesModel,
    info: &SeriesInfo,
    resume: Option<&ResumeState>,
) -> Result<(), CheckpointError> {
    check(dir, &model.config, info)?;
    let config = SeriesConfigFile {
        format: FORMAT.into(),
        version: VERSION,
        model: model.config.clone(),
        info: info.clone(),
    };
    let checkpoint = Checkpoint {
        config: serde_json::to_value(&config).expect("config serializes"),
        weights: named_tensors(model.to_tensors()),
        vocab: info.columns.clone(),
        optimizer: resume.map(ResumeState::optimizer_tensors),
        trainer_state: resume.map(|r| r.trainer_state.clone()),
        ..Checkpoint::default()
    };
    checkpoint.save(dir)
}

/// Whether the folder `path` (a checkpoint, or a run folder's `best/` or
/// `last/`) holds a series checkpoint, judged by its config.json alone.
pub fn is_series(path: &Path) -> bool {
    let Ok(dir) = Checkpoint::resolve(path) else {
        return false;
    };
    let Ok(text) = std::fs::read_to_string(dir.join(CONFIG_FILE)) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("format")?.as_str().map(|f| f == FORMAT))
        .unwrap_or(false)
}

/// Loads a series checkpoint folder, or the `best/` (else `last/`) one of a
/// run folder, checking that config, weights and column names agree.
pub fn load(path: &Path) -> Result<SavedSeries, CheckpointError> {
    let dir = Checkpoint::resolve(path)?;
    let checkpoint = Checkpoint::load(&dir)?;
    let mismatch = |reason: String| CheckpointError::Mismatch {
        path: dir.clone(),
        reason,
    };
    let field = |name: &str| checkpoint.config.get(name);
    let format = field("format").and_then(|f| f.as_str());
    let version = field("version").and_then(|v| v.as_u64());
    if format != Some(FORMAT) || version.is_none_or(|v| v > VERSION.into()) {
        let shown = |v: Option<&serde_json::Value>| v.map_or("none".into(), |v| v.to_string());
        return Err(mismatch(format!(
            "config.json has format {} version {}, this build reads '{FORMAT}' (a series \
             checkpoint) up to version {VERSION}",
            shown(field("format")),
            shown(field("version")),
        )));
    }
    let config: SeriesConfigFile =
        serde_json::from_value(checkpoint.config.clone()).map_err(|cause| {
            CheckpointError::BadJson {
                path: dir.join(CONFIG_FILE),
                expected: "a recurrent series config",
                cause,
            }
        })?;
    check(&dir, &config.model, &config.info)?;
    if checkpoint.vocab != config.info.columns {
        return Err(mismatch(format!(
            "vocab.json names the columns {:?} but config.json {:?}",
            checkpoint.vocab, config.info.columns
        )));
    }
    let model = SeriesModel::from_tensors(config.model, &unnamed(checkpoint.weights)).map_err(
        |source| CheckpointError::Model {
            path: dir.clone(),
            what: "model.safetensors does not match config.json",
            source,
        },
    )?;
    Ok(SavedSeries {
        path: dir,
        model,
        info: config.info,
        resume: ResumeState::from_files(checkpoint.optimizer, checkpoint.trainer_state),
    })
}

/// `Err(Mismatch)` unless `info` fits `model`.
fn check(dir: &Path, model: &SeriesConfig, info: &SeriesInfo) -> Result<(), CheckpointError> {
    let f = info.columns.len();
    let problem = if f != model.inputs {
        Some(format!("{f} columns, but the model reads {}", model.inputs))
    } else if info.mean.len() != f || info.std.len() != f {
        Some(format!(
            "{} means and {} standard deviations for {f} columns",
            info.mean.len(),
            info.std.len()
        ))
    } else if !info.columns.contains(&info.target) {
        Some(format!("the target '{}' is not a column", info.target))
    } else if info.window == 0 || info.horizon * f != model.outputs {
        Some(format!(
            "window {} and horizon {} × {f} columns do not fit a model predicting {} values",
            info.window, info.horizon, model.outputs
        ))
    } else if info.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
        || info.mean.iter().any(|m| !m.is_finite())
    {
        Some("a mean or standard deviation is not a finite positive number".into())
    } else {
        None
    };
    match problem {
        Some(reason) => Err(CheckpointError::Mismatch {
            path: dir.to_path_buf(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recurrent_kernels::Rng;
    use recurrent_model::series::SeriesOutput;
    use recurrent_model::CellKind;

    fn example() -> (SeriesModel, SeriesInfo) {
        let config = SeriesConfig {
            cell: CellKind::Gru,
            inputs: 2,
            hidden: 4,
            layers: 2,
            outputs: 6,
            output: SeriesOutput::Last,
        };
        let model = SeriesModel::new(config, &mut Rng::new(1)).unwrap();
        let info = SeriesInfo {
            columns: vec!["a".into(), "b".into()],
            target: "b".into(),
            window: 8,
            horizon: 3,
            mean: vec![1.0, -2.0],
            std: vec![0.5, 3.0],
            loss: RegressionLoss::Huber { delta: 1.0 },
            split: SplitRows {
                train: 70,
                valid: 15,
                test: 15,
            },
        };
        (model, info)
    }

    #[test]
    fn a_series_checkpoint_round_trips_with_its_resume_state() {
        let (model, info) = example();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("best");
        let resume = ResumeState {
            optimizer: vec![("exp_avg".into(), vec![0.5; model.num_params()])],
            trainer_state: serde_json::json!({"step": 3}),
        };
        save(&path, &model, &info, Some(&resume)).unwrap();
        assert!(is_series(dir.path()) && is_series(&path));
        let saved = load(dir.path()).unwrap();
        assert_eq!(saved.path, path);
        assert_eq!(saved.model.params, model.params);
        assert_eq!(saved.info, info);
        assert_eq!(saved.resume.unwrap().trainer_state["step"], 3);
        let text = std::fs::read_to_string(path.join("config.json")).unwrap();
        assert!(text.contains("\"format\": \"recurrent-series\""), "{text}");
    }

    #[test]
    fn info_that_does_not_fit_the_model_is_refused() {
        let (model, mut info) = example();
        let dir = tempfile::tempdir().unwrap();
        info.horizon = 2;
        let err = save(&dir.path().join("x"), &model, &info, None).unwrap_err();
        assert!(err.to_string().contains("horizon 2"), "{err}");
        info.horizon = 3;
        info.target = "c".into();
        let err = save(&dir.path().join("x"), &model, &info, None).unwrap_err();
        assert!(err.to_string().contains("'c' is not a column"), "{err}");
    }
}
