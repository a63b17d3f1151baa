//! Training a sequence-regression model on a numeric series: the data
//! (per-column normalisation fitted on the training rows, the chronological
//! split, windows) in [`data`], and [`SeriesTrainer`], a [`Task`](crate::Task)
//! of the one engine, in [`trainer`].
//!
//! Like the other trainers it is run by the [engine](crate::engine) and does
//! no I/O: reading a CSV file is the facade's.

pub mod data;

pub use data::{Normalization, Part, SeriesData, SeriesDataError, Split};
pub mod trainer;

pub use trainer::{SeriesTrainConfig, SeriesTrainError, SeriesTrainer, SeriesTrainerState};
