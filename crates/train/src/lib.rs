//! Training for recurrent: batches with carried state, optimizers, schedules,
//! clipping, and the one [engine] that runs every model's trainer (the
//! language model's [`trainer::Trainer`], the [`seq2seq::Seq2SeqTrainer`],
//! the [`series::SeriesTrainer`]).
//!
//! Nothing here reads files or prints: a run reports to an
//! [`engine::Observer`], which shows progress and writes checkpoints.

#![deny(missing_docs)]

pub mod asgd;
pub mod batch;
pub mod clip;
pub mod collective;
pub mod data_parallel;
pub mod divergence;
pub mod engine;
pub mod error;
pub mod optim;
pub mod schedule;
pub mod seq2seq;
pub mod series;
pub mod trainer;

pub use collective::{Collective, LocalGroup, PendingSum, SingleProcess};
pub use divergence::{DivergenceReason, DivergenceWatch, OnDivergence};
pub use engine::{
    DataFingerprint, EvalRecord, EvalReport, Observer, Plan, RunProgress, SaveError, Slot,
    StepReport, StopReason, StopRule, Task,
};
pub use error::{DataError, ParallelError, ResumeError, TrainError, TrainingData};
