//! Hyper-parameter search: train many configurations of a language model,
//! compare them on held-out text or by K-fold cross-validation, stop poor
//! ones early, and keep the best as a normal run folder.
//!
//! - [`Space`]: which training options vary, over lists and ranges;
//! - [`Sampler`]: grid, random, or TPE after a random start, seeded;
//! - [`Asha`]: asynchronous successive halving, in training tokens or seconds;
//! - [`Study`]: runs trials through [`crate::lm::Training`] into a study
//!   folder with an append-only log, so an interrupted study resumes.
//!
//! docs/TUNE.md describes the algorithms and the outputs.
//!
//! ```no_run
//! use recurrent::tune::{AshaOptions, Limits, SamplerKind, Space, Study, StudyOptions, Validation};
//!
//! let space = Space::from_specs(&["hidden=64..512:log", "lr=1e-4..1e-2:log"])?;
//! let mut options = StudyOptions::new("input.txt", space, 1e6);
//! options.sampler = SamplerKind::Tpe;
//! options.validation = Validation::Folds { k: 3 };
//! options.asha = Some(AshaOptions { min_budget: 1e5, reduction: 3 });
//! let mut study = Study::create("study", options)?;
//! let limits = Limits { trials: Some(30), parallel: 2, ..Limits::default() };
//! let summary = study.run(&limits, &recurrent::Quiet)?;
//! println!("best: {:?}", summary.rows[0].params);
//! # Ok::<(), recurrent::tune::TuneError>(())
//! ```

mod asha;
mod folds;
mod hparams;
mod log;
mod outputs;
mod plot;
mod sampler;
pub mod space;
mod study;
mod tpe;

use std::path::PathBuf;

use thiserror::Error;

pub use asha::{Asha, Job, Rungs};
pub use folds::{fold_ranges, mean_std, Validation};
pub use hparams::METRICS as HPARAMS_METRICS;
pub use log::{Event, LOG_FILE};
pub use outputs::{train_flags, Row, Status};
pub use sampler::{Observation, Sampler, SamplerKind, DEFAULT_TPE_STARTUP};
pub use space::{Domain, Param, Params, Space, Value};
pub use study::{
    AshaOptions, Budget, Limits, Study, StudyOptions, StudyProgress, StudySummary, DEFAULT_TRIALS,
};

/// What can go wrong in a study; fields name the parameter or file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TuneError {
    /// A parameter's values cannot be read.
    #[error("parameter {name}: {spec:?} is not valid; expected {expected}")]
    BadSpec {
        /// The parameter.
        name: String,
        /// Its text.
        spec: String,
        /// What is accepted.
        expected: String,
    },
    /// A study cannot vary this option.
    #[error("parameter {name} is not a training option a study can vary; known: {known}")]
    UnknownParam {
        /// The name given.
        name: String,
        /// The names a study knows.
        known: String,
    },
    /// A parameter is given twice.
    #[error("parameter {name} is given twice")]
    Duplicate {
        /// The parameter.
        name: String,
    },
    /// The space file is not TOML.
    #[error("the space file is not valid TOML: {message}")]
    Toml {
        /// The parser's message.
        message: String,
    },
    /// A grid needs every parameter to have a finite list of values.
    #[error("parameter {name} is a float range, which has no grid; list its values instead")]
    NoGrid {
        /// The parameter.
        name: String,
    },
    /// The grid has too many configurations.
    #[error("the grid has {size} configurations, more than {max}")]
    GridTooLarge {
        /// Its size.
        size: usize,
        /// The most allowed.
        max: usize,
    },
    /// Searching only works from fresh models.
    #[error("a study trains fresh models; it cannot fine-tune")]
    FineTuning,
    /// A study option is outside its range.
    #[error("{field} must be {expected}, got {value}")]
    InvalidOption {
        /// The option's field in [`StudyOptions`].
        field: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// The folder already holds a study.
    #[error("{} already holds a study", path.display())]
    StudyExists {
        /// The folder.
        path: PathBuf,
    },
    /// The folder holds no study to resume.
    #[error("{} holds no study to resume", path.display())]
    NoStudy {
        /// The folder.
        path: PathBuf,
    },
    /// The study log cannot be read.
    #[error("{} line {line}: {message}", path.display())]
    BadLog {
        /// The log.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A trial's training failed.
    #[error("trial {trial}: {source}")]
    Trial {
        /// The trial's number.
        trial: usize,
        /// The cause.
        #[source]
        source: Box<crate::Error>,
    },
    /// Setting up a study's training failed.
    #[error(transparent)]
    Run(#[from] crate::Error),
}

/// Shorthand for a study's results.
pub type Result<T, E = TuneError> = std::result::Result<T, E>;
