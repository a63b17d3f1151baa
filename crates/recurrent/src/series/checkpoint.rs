//! [`SeriesCheckpoint`]: a trained series model loaded to forecast
//! (recursively or directly) and to be evaluated against a seasonal-naive
//! baseline (MSE, MAE, MASE).

use std::path::{Path, PathBuf};

use recurrent_checkpoint::series::{self as ckpt, SeriesInfo};
use recurrent_model::series::{SeriesModel, SeriesWorkspace};
use recurrent_train::series::data::{relative_window, Normalization};

use super::csv::{read_csv, Table};
use super::error::SeriesError;
use crate::error::check;
use crate::threads::{resolve_threads, with_threads};

/// The longest forecast [`SeriesCheckpoint::forecast`] makes.
pub const MAX_FORECAST_STEPS: usize = 1_000_000;

/// How forecasts longer than one step are made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForecastMethod {
    /// One prediction of all `horizon` rows at once (at most the horizon).
    #[default]
    Direct,
    /// One row at a time, each fed back as the next input (any length).
    Recursive,
}

impl std::str::FromStr for ForecastMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "direct" => Ok(ForecastMethod::Direct),
            "recursive" => Ok(ForecastMethod::Recursive),
            _ => Err(format!(
                "unknown forecast method '{s}' (expected direct or recursive)"
            )),
        }
    }
}

/// A forecast: `steps` rows of every column, in the data's own units.
#[derive(Clone, Debug, PartialEq)]
pub struct Forecast {
    /// The columns, in order.
    pub columns: Vec<String>,
    /// The values, `[steps, columns]` row-major.
    pub values: Vec<f64>,
}

impl Forecast {
    /// Rows forecast.
    pub fn steps(&self) -> usize {
        self.values.len() / self.columns.len().max(1)
    }
}

/// Errors of a set of forecasts against what happened.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    /// Mean squared error, in the target's units squared.
    pub mse: f64,
    /// Mean absolute error, in the target's units.
    pub mae: f64,
    /// MAE over the in-sample MAE of the seasonal-naive forecast one season
    /// ahead on the training rows (Hyndman and Koehler's MASE).
    pub mase: f64,
}

/// How a model's forecasts of the held-out rows compare with the seasonal-naive ones.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesEvaluation {
    /// The column scored.
    pub target: String,
    /// Forecast origins scored (each forecasts `horizon` rows).
    pub origins: usize,
    /// Rows forecast from each origin.
    pub horizon: usize,
    /// The season length of the baseline and of MASE's scale.
    pub season: usize,
    /// The model's forecasts.
    pub model: Scores,
    /// The seasonal-naive forecasts: each row as the row one season before,
    /// from the rows before the origin.
    pub naive: Scores,
    /// The model's MAE at each step ahead, 1 to `horizon`.
    pub mae_by_step: Vec<f64>,
}

/// What [`SeriesCheckpoint::evaluate`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvaluateOptions {
    /// The season length of the baseline and of MASE's scale (1: naive).
    pub season: usize,
    /// How the model forecasts.
    pub method: ForecastMethod,
    /// Threads for the kernels (default: all cores).
    pub threads: Option<usize>,
}

impl Default for EvaluateOptions {
    fn default() -> Self {
        EvaluateOptions {
            season: 1,
            method: ForecastMethod::Direct,
            threads: None,
        }
    }
}

/// A trained series model with what it needs to read a series.
pub struct SeriesCheckpoint {
    /// The checkpoint folder it came from.
    pub path: PathBuf,
    /// The model.
    pub model: SeriesModel,
    /// Columns, target, window, horizon, normalisation and split.
    pub info: SeriesInfo,
}

impl SeriesCheckpoint {
    /// Loads a series checkpoint folder, or the `best/` (else `last/`) one of
    /// a run folder.
    pub fn load(path: &Path) -> Result<SeriesCheckpoint, SeriesError> {
        let saved = ckpt::load(path)?;
        Ok(SeriesCheckpoint {
            path: saved.path,
            model: saved.model,
            info: saved.info,
        })
    }

    /// The model's columns of the CSV file at `path`.
    pub fn read(&self, path: &Path) -> Result<Table, SeriesError> {
        read_csv(path, &self.info.columns)
    }

    fn normalization(&self) -> Normalization {
        Normalization {
            mean: self.info.mean.clone(),
            std: self.info.std.clone(),
        }
    }

    fn target_index(&self) -> usize {
        let i = &self.info;
        i.columns.iter().position(|c| *c == i.target).unwrap_or(0)
    }

    /// The `steps` rows after the end of `history` (rows `[N, F]` in the
    /// data's units, at least a window of them).
    pub fn forecast(
        &self,
        history: &Table,
        steps: usize,
        method: ForecastMethod,
        threads: Option<usize>,
    ) -> Result<Forecast, SeriesError> {
        self.check_forecast(steps, method)?;
        let n = history.rows();
        let origin = [n];
        let values = self.forecast_at(history, &origin, steps, method, threads)?;
        Ok(Forecast {
            columns: self.info.columns.clone(),
            values,
        })
    }

    fn check_forecast(&self, steps: usize, method: ForecastMethod) -> Result<(), SeriesError> {
        check(
            (1..=MAX_FORECAST_STEPS).contains(&steps),
            "steps",
            steps,
            "between 1 and 1000000",
        )?;
        if method == ForecastMethod::Direct && steps > self.info.horizon {
            return Err(SeriesError::BeyondHorizon {
                steps,
                horizon: self.info.horizon,
            });
        }
        Ok(())
    }

    /// Forecasts of `steps` rows from each origin (the row after each
    /// window), `[origins, steps, F]` in the data's units.
    fn forecast_at(
        &self,
        table: &Table,
        origins: &[usize],
        steps: usize,
        method: ForecastMethod,
        threads: Option<usize>,
    ) -> Result<Vec<f64>, SeriesError> {
        let (t, f) = (self.info.window, self.info.columns.len());
        if table.columns != self.info.columns {
            return Err(crate::Error::Conflict(format!(
                "the series has the columns {}, but the model reads {}",
                table.columns.join(","),
                self.info.columns.join(",")
            ))
            .into());
        }
        if let Some(&o) = origins.iter().find(|&&o| o < t) {
            return Err(SeriesError::TooFewRowsToForecast { rows: o, needed: t });
        }
        let norm = self.normalization();
        let z = norm.apply(&table.values);
        let threads = resolve_threads(threads)?;
        let mut out = Vec::with_capacity(origins.len() * steps * f);
        with_threads(threads, || -> Result<(), SeriesError> {
            let mut ws = SeriesWorkspace::default();
            for chunk in origins.chunks(256) {
                let b = chunk.len();
                // Each window's rows, oldest first, [B][T, F]; recursion appends to them.
                let mut windows: Vec<Vec<f32>> = chunk
                    .iter()
                    .map(|&o| z[(o - t) * f..o * f].to_vec())
                    .collect();
                let mut preds: Vec<Vec<f32>> = vec![Vec::with_capacity(steps * f); b];
                let mut x = vec![0.0; t * b * f];
                let rounds = match method {
                    ForecastMethod::Direct => 1,
                    ForecastMethod::Recursive => steps,
                };
                for _ in 0..rounds {
                    for (k, w) in windows.iter().enumerate() {
                        let start = w.len() - t * f;
                        let last = &w[w.len() - f..];
                        for step in 0..t {
                            let row = &w[start + step * f..start + (step + 1) * f];
                            let dst = &mut x[(step * b + k) * f..(step * b + k + 1) * f];
                            relative_window(row, last, dst);
                        }
                    }
                    let y = self.model.predict(&mut ws, &x, t, b)?;
                    let o = self.model.config.outputs;
                    for k in 0..b {
                        // The model predicts changes from the window's last row.
                        let last = windows[k][windows[k].len() - f..].to_vec();
                        let row = &y[k * o..(k + 1) * o];
                        let take = match method {
                            ForecastMethod::Direct => steps * f,
                            ForecastMethod::Recursive => f,
                        };
                        let absolute: Vec<f32> = row[..take]
                            .iter()
                            .enumerate()
                            .map(|(i, d)| d + last[i % f])
                            .collect();
                        preds[k].extend_from_slice(&absolute);
                        if method == ForecastMethod::Recursive {
                            windows[k].extend_from_slice(&absolute);
                        }
                    }
                }
                for p in preds {
                    out.extend(p.iter().enumerate().map(|(i, &v)| norm.restore(i % f, v)));
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Scores forecasts of the target over the held-out tail of `table`:
    /// every origin from the end of the validation rows on whose `horizon`
    /// rows are all in the table; against the seasonal-naive forecast.
    pub fn evaluate(
        &self,
        table: &Table,
        options: &EvaluateOptions,
    ) -> Result<SeriesEvaluation, SeriesError> {
        let i = &self.info;
        let (season, h) = (options.season, i.horizon);
        check(season >= 1, "season", season, "at least 1")?;
        let n = table.rows();
        let train = i.split.train.min(n);
        if train <= season {
            return Err(crate::Error::InvalidOption {
                field: "season",
                value: season.to_string(),
                expected: format!("below the {train} training rows"),
            }
            .into());
        }
        let start = i.split.train + i.split.valid;
        let origins: Vec<usize> =
            (start.max(i.window).max(season)..(n + 1).saturating_sub(h)).collect();
        if origins.is_empty() {
            return Err(SeriesError::TooFewRowsToForecast {
                rows: n,
                needed: start.max(i.window).max(season) + h,
            });
        }
        let preds = self.forecast_at(table, &origins, h, options.method, options.threads)?;
        let f = i.columns.len();
        let col = self.target_index();
        let y = table.column(col);
        // MASE's scale: the in-sample seasonal-naive MAE on the training rows.
        let scale = (season..train)
            .map(|t| (y[t] as f64 - y[t - season] as f64).abs())
            .sum::<f64>()
            / (train - season) as f64;
        let mut model = Sums::default();
        let mut naive = Sums::default();
        let mut by_step = vec![0.0; h];
        for (k, &o) in origins.iter().enumerate() {
            for step in 0..h {
                let actual = y[o + step] as f64;
                let predicted = preds[(k * h + step) * f + col];
                // The row one season before, from the rows before the origin.
                let back = season * (step / season + 1);
                let baseline = y[o + step - back] as f64;
                model.add(predicted - actual);
                naive.add(baseline - actual);
                by_step[step] += (predicted - actual).abs() / origins.len() as f64;
            }
        }
        Ok(SeriesEvaluation {
            target: i.target.clone(),
            origins: origins.len(),
            horizon: h,
            season,
            model: model.scores(scale),
            naive: naive.scores(scale),
            mae_by_step: by_step,
        })
    }
}

/// Running sums of errors.
#[derive(Default)]
struct Sums {
    sq: f64,
    abs: f64,
    n: usize,
}

impl Sums {
    fn add(&mut self, error: f64) {
        self.sq += error * error;
        self.abs += error.abs();
        self.n += 1;
    }

    fn scores(&self, scale: f64) -> Scores {
        let n = self.n.max(1) as f64;
        Scores {
            mse: self.sq / n,
            mae: self.abs / n,
            mase: self.abs / n / scale,
        }
    }
}
