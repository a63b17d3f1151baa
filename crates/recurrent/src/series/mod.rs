//! Numeric sequences: reading a series from CSV, training an RNN, LSTM or
//! GRU regression model on its windows ([`Training`]), and forecasting and
//! evaluating with it ([`SeriesCheckpoint`]: recursive and direct forecasts,
//! MSE, MAE and MASE against a seasonal-naive baseline).
//!
//! The model itself takes `[T, B, F]` arrays, for sequence-to-vector and
//! sequence-to-sequence regression of any data: [`SeriesModel`] (re-exported
//! from `recurrent-model`) with [`SeriesBatch`] and a [`RegressionLoss`].

mod checkpoint;
mod csv;
mod error;
mod training;

pub use self::csv::{parse_csv, read_csv, Table};
pub use checkpoint::{
    EvaluateOptions, Forecast, ForecastMethod, Scores, SeriesCheckpoint, SeriesEvaluation,
};
pub use error::SeriesError;
pub use recurrent_checkpoint::series::{SeriesInfo, SplitRows};
pub use recurrent_model::series::{
    SeriesBatch, SeriesConfig, SeriesModel, SeriesOutput, SeriesWorkspace,
};
pub use recurrent_nn::regression::RegressionLoss;
pub use recurrent_train::series::SeriesTrainer;
pub use training::{ResumeOptions, TrainOptions, Training};
