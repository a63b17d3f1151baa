//! [`SeriesError`]: what goes wrong reading, training on or forecasting a
//! numeric series.

use std::path::PathBuf;

use recurrent_train::series::data::SeriesDataError;
use recurrent_train::series::trainer::SeriesTrainError;
use thiserror::Error;

/// Why a series could not be read, trained on, forecast or evaluated. Names
/// the file, line, column and value concerned; front ends render it in their
/// own words.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SeriesError {
    /// The CSV file cannot be read or parsed as CSV.
    #[error("cannot read {}: {source}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The CSV reader's error.
        #[source]
        source: csv::Error,
    },
    /// The file has no header or no data rows.
    #[error("{} has no data rows (the first line must name the columns)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A column asked for is not in the header.
    #[error("{} has no column '{column}' (its columns: {})", path.display(), available.join(", "))]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// The header's columns.
        available: Vec<String>,
    },
    /// The target is not one of the columns the model reads.
    #[error("the target '{target}' is not one of the columns ({})", columns.join(", "))]
    TargetNotAColumn {
        /// The target asked for.
        target: String,
        /// The columns.
        columns: Vec<String>,
    },
    /// A cell is not a number.
    #[error("{} line {line}, column '{column}': '{value}' is not a number", path.display())]
    NotNumeric {
        /// The file.
        path: PathBuf,
        /// Its 1-based line in the file (the header is line 1).
        line: u64,
        /// The column's name.
        column: String,
        /// The cell's text.
        value: String,
    },
    /// The series cannot be cut into windows.
    #[error(transparent)]
    Data(#[from] SeriesDataError),
    /// Training could not start or resume.
    #[error(transparent)]
    Train(#[from] SeriesTrainError),
    /// Too few rows before a forecast's origin.
    #[error(
        "forecasting needs the last {needed} rows before its start, but there are only {rows}"
    )]
    TooFewRowsToForecast {
        /// Rows available.
        rows: usize,
        /// Rows needed (the window).
        needed: usize,
    },
    /// A direct forecast longer than the horizon the model was trained for.
    #[error(
        "a direct forecast of {steps} steps is longer than the horizon of {horizon} the model \
         was trained for (forecast recursively, or train with a longer horizon)"
    )]
    BeyondHorizon {
        /// Steps asked for.
        steps: usize,
        /// The model's horizon.
        horizon: usize,
    },
    /// Anything the rest of the library reports (options, files, checkpoints).
    #[error(transparent)]
    Library(#[from] crate::Error),
}

impl From<recurrent_checkpoint::CheckpointError> for SeriesError {
    fn from(e: recurrent_checkpoint::CheckpointError) -> SeriesError {
        SeriesError::Library(e.into())
    }
}

impl From<recurrent_model::ModelError> for SeriesError {
    fn from(e: recurrent_model::ModelError) -> SeriesError {
        SeriesError::Library(e.into())
    }
}

impl From<recurrent_train::TrainError> for SeriesError {
    fn from(e: recurrent_train::TrainError) -> SeriesError {
        SeriesError::Library(e.into())
    }
}
