//! A numeric series as training data: per-column normalisation fitted on the
//! training part only, the chronological split, and windows.
//!
//! Rows are time steps, columns the series' variables. A window whose
//! *origin* is row `o` reads rows `o - window .. o` and predicts rows
//! `o .. o + horizon` of every column. The training windows' targets lie in
//! the training part, the validation windows' in the validation part and the
//! test windows' in the test part; a window's inputs may reach back into the
//! part before it, as a forecaster at that origin would see them. A window is
//! read relative to its last row, and predicts the change from it
//! ([`relative_window`]).

use std::ops::Range;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a series cannot be used as it is.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum SeriesDataError {
    /// A size that must be at least 1 is 0.
    #[error("{field} must be at least 1, got 0")]
    Zero {
        /// The size (`window`, `horizon`, `columns`).
        field: &'static str,
    },
    /// The values do not fill whole rows of the given width.
    #[error("{values} values do not make whole rows of {columns} columns")]
    Ragged {
        /// Values given.
        values: usize,
        /// Columns per row.
        columns: usize,
    },
    /// A part of the split is too short for one window.
    #[error(
        "the {part} part has {rows} rows, too few for a window of {window} and a horizon of \
         {horizon} (it needs at least {needed}); use more rows, a smaller window or horizon, \
         or a larger {part} fraction"
    )]
    TooFewRows {
        /// Which part: "training", "validation" or "test".
        part: &'static str,
        /// Rows in the part.
        rows: usize,
        /// Rows of input per window.
        window: usize,
        /// Rows predicted per window.
        horizon: usize,
        /// Rows the part needs.
        needed: usize,
    },
    /// A fraction of the split is outside its range.
    #[error("{field} must be in [0, 0.5], got {value}")]
    Fraction {
        /// `valid_fraction` or `test_fraction`.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// A value is NaN or infinite.
    #[error("row {row}, column {column} is {value}, not a finite number")]
    NotFinite {
        /// Its 1-based row.
        row: usize,
        /// Its 1-based column.
        column: usize,
        /// The value.
        value: f32,
    },
}

/// Per-column mean and standard deviation, fitted on the training rows and
/// applied to every row: `z = (v - mean) / std`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Each column's mean over the training rows.
    pub mean: Vec<f64>,
    /// Each column's standard deviation over the training rows (1 for a
    /// constant column, which then only loses its mean).
    pub std: Vec<f64>,
}

impl Normalization {
    /// Fitted on the first `rows` rows of `values: [N, F]`.
    pub fn fit(values: &[f32], columns: usize, rows: usize) -> Normalization {
        let mut mean = vec![0.0f64; columns];
        let mut sq = vec![0.0f64; columns];
        let n = rows.max(1) as f64;
        for row in values.chunks_exact(columns).take(rows) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        for row in values.chunks_exact(columns).take(rows) {
            for ((s, &v), m) in sq.iter_mut().zip(row).zip(&mean) {
                *s += (v as f64 - m).powi(2);
            }
        }
        let std = sq
            .iter()
            .map(|s| {
                let sd = (s / n).sqrt();
                if sd > 1e-12 && sd.is_finite() {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        Normalization { mean, std }
    }

    /// `values: [N, F]` normalised.
    pub fn apply(&self, values: &[f32]) -> Vec<f32> {
        let f = self.mean.len();
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| ((v as f64 - self.mean[i % f]) / self.std[i % f]) as f32)
            .collect()
    }

    /// Column `column`'s normalised value `z` in the data's own units.
    pub fn restore(&self, column: usize, z: f32) -> f64 {
        z as f64 * self.std[column] + self.mean[column]
    }
}

/// Rows in each part of a chronological split: training first, then
/// validation, then test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Rows of the training part.
    pub train: usize,
    /// Rows of the validation part.
    pub valid: usize,
    /// Rows of the test part (the held-out tail).
    pub test: usize,
}

impl Split {
    /// `rows` split chronologically: the last `test_fraction` is the test
    /// part, the `valid_fraction` before it the validation part (each
    /// rounded down), the rest trains.
    pub fn new(
        rows: usize,
        valid_fraction: f64,
        test_fraction: f64,
    ) -> Result<Split, SeriesDataError> {
        for (field, value) in [
            ("valid_fraction", valid_fraction),
            ("test_fraction", test_fraction),
        ] {
            if !(0.0..=0.5).contains(&value) {
                return Err(SeriesDataError::Fraction { field, value });
            }
        }
        let test = (rows as f64 * test_fraction) as usize;
        let valid = (rows as f64 * valid_fraction) as usize;
        Ok(Split {
            train: rows - test - valid,
            valid,
            test,
        })
    }

    /// Rows in all parts.
    pub fn rows(&self) -> usize {
        self.train + self.valid + self.test
    }
}

/// Which part of the split a set of windows predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The training rows.
    Train,
    /// The validation rows.
    Valid,
    /// The test rows.
    Test,
}

/// A normalised series cut into windows.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesData {
    /// Normalised values, `[N, F]`.
    pub values: Vec<f32>,
    /// `F`, columns per row.
    pub columns: usize,
    /// Rows of input per window, `T`.
    pub window: usize,
    /// Rows predicted per window.
    pub horizon: usize,
    /// The chronological split.
    pub split: Split,
}

impl SeriesData {
    /// Normalised `values: [N, F]` (already normalised by the caller) cut
    /// into windows; every part that has rows must hold at least one window.
    pub fn new(
        values: Vec<f32>,
        columns: usize,
        window: usize,
        horizon: usize,
        split: Split,
    ) -> Result<SeriesData, SeriesDataError> {
        for (field, v) in [
            ("columns", columns),
            ("window", window),
            ("horizon", horizon),
        ] {
            if v == 0 {
                return Err(SeriesDataError::Zero { field });
            }
        }
        if !values.len().is_multiple_of(columns) || values.len() / columns != split.rows() {
            return Err(SeriesDataError::Ragged {
                values: values.len(),
                columns,
            });
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(SeriesDataError::NotFinite {
                row: i / columns + 1,
                column: i % columns + 1,
                value: values[i],
            });
        }
        let too_few = |part, rows, needed| SeriesDataError::TooFewRows {
            part,
            rows,
            window,
            horizon,
            needed,
        };
        let needed = window.saturating_add(horizon);
        if split.train < needed {
            return Err(too_few("training", split.train, needed));
        }
        for (part, rows) in [("validation", split.valid), ("test", split.test)] {
            if rows > 0 && rows < horizon {
                return Err(too_few(part, rows, horizon));
            }
        }
        Ok(SeriesData {
            values,
            columns,
            window,
            horizon,
            split,
        })
    }

    /// The origins of `part`'s windows (see the module docs), oldest first.
    pub fn origins(&self, part: Part) -> Range<usize> {
        let s = &self.split;
        let (start, end) = match part {
            Part::Train => (self.window, s.train),
            Part::Valid => (s.train, s.train + s.valid),
            Part::Test => (s.train + s.valid, s.rows()),
        };
        // Every origin needs `horizon` rows of its part ahead of it.
        let last = (end + 1).saturating_sub(self.horizon);
        start..last.max(start)
    }

    /// Values a window predicts: every column of `horizon` rows.
    pub fn outputs(&self) -> usize {
        self.horizon * self.columns
    }

    /// The windows at `origins` as a batch: inputs `x: [T, B, F]` and
    /// targets `[B, horizon × F]` (row `b` is the `horizon` rows after its
    /// window, one after the other), both relative to the window's last row
    /// (see [`relative_window`]).
    pub fn fill(&self, origins: &[usize], x: &mut Vec<f32>, target: &mut Vec<f32>) {
        let (f, t, b) = (self.columns, self.window, origins.len());
        x.clear();
        x.resize(t * b * f, 0.0);
        target.clear();
        for (k, &o) in origins.iter().enumerate() {
            let last = &self.values[(o - 1) * f..o * f];
            for step in 0..t {
                let row = o - t + step;
                let dst = &mut x[(step * b + k) * f..(step * b + k + 1) * f];
                relative_window(&self.values[row * f..(row + 1) * f], last, dst);
            }
            for row in self.values[o * f..(o + self.horizon) * f].chunks_exact(f) {
                target.extend(row.iter().zip(last).map(|(v, l)| v - l));
            }
        }
    }
}

/// One row of a window as the model reads it: `row - last`, `last` being the
/// window's last row. Reading every window relative to where it ends (and
/// predicting the change from there) lets the model follow a trend past the
/// range of its training rows, which absolute values would saturate.
pub fn relative_window(row: &[f32], last: &[f32], out: &mut [f32]) {
    for ((o, v), l) in out.iter_mut().zip(row).zip(last) {
        *o = v - l;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_is_fitted_on_the_training_rows_only() {
        // Column 0 trains on 1, 2, 3; column 1 is constant there.
        let values = [1.0, 5.0, 2.0, 5.0, 3.0, 5.0, 100.0, 7.0];
        let n = Normalization::fit(&values, 2, 3);
        assert_eq!(n.mean, [2.0, 5.0]);
        assert!((n.std[0] - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(n.std[1], 1.0);
        let z = n.apply(&values);
        assert_eq!(z[1], 0.0);
        assert_eq!(z[7], 2.0);
        assert!((n.restore(0, z[6]) - 100.0).abs() < 1e-4);
    }

    #[test]
    fn windows_predict_rows_of_their_own_part() {
        let split = Split::new(20, 0.25, 0.25).unwrap();
        assert_eq!(
            split,
            Split {
                train: 10,
                valid: 5,
                test: 5
            }
        );
        let values: Vec<f32> = (0..40).map(|v| v as f32).collect();
        let data = SeriesData::new(values, 2, 4, 2, split).unwrap();
        assert_eq!(data.origins(Part::Train), 4..9);
        assert_eq!(data.origins(Part::Valid), 10..14);
        assert_eq!(data.origins(Part::Test), 15..19);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        data.fill(&[4, 8], &mut x, &mut y);
        // Step 0 of both windows: rows 0 and 4, less their last rows 3 and 7;
        // the targets rows 4-5 and 8-9, less the same.
        assert_eq!(x[..4], [-6.0, -6.0, -6.0, -6.0]);
        assert_eq!(x[3 * 4..], [0.0; 4]);
        assert_eq!(x.len(), 4 * 2 * 2);
        assert_eq!(y, [2.0, 2.0, 4.0, 4.0, 2.0, 2.0, 4.0, 4.0]);
    }

    #[test]
    fn too_few_rows_and_bad_values_are_errors_that_say_so() {
        let split = Split::new(10, 0.2, 0.2).unwrap();
        let values = vec![0.0; 10];
        let err = SeriesData::new(values.clone(), 1, 5, 2, split).unwrap_err();
        assert_eq!(
            err,
            SeriesDataError::TooFewRows {
                part: "training",
                rows: 6,
                window: 5,
                horizon: 2,
                needed: 7
            }
        );
        assert!(err.to_string().contains("needs at least 7"), "{err}");
        let err = SeriesData::new(values.clone(), 1, 2, 3, split).unwrap_err();
        assert!(matches!(
            err,
            SeriesDataError::TooFewRows {
                part: "validation",
                ..
            }
        ));
        let mut bad = values;
        bad[3] = f32::NAN;
        let err = SeriesData::new(bad, 1, 2, 1, split).unwrap_err();
        assert!(err.to_string().contains("row 4, column 1"), "{err}");
        assert!(Split::new(10, 0.7, 0.1).is_err());
    }
}
