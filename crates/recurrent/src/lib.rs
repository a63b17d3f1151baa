//! `recurrent`, as a library: train recurrent neural networks (vanilla RNN,
//! LSTM, GRU) on your own data, and generate from them.
//!
//! This crate is the product; the `recurrent` command-line tool is a thin
//! shell over it. It owns what a program needs to drive training and
//! generation:
//!
//! - [`RunFolder`]: a run's checkpoints (`best/`, `last/`), `metrics.jsonl`
//!   and loss plot, which the library and the command line both resume;
//! - [`lm::Training`] and [`seq2seq::Training`]: start or resume a run from an
//!   options value, and train it while an [`Observer`] watches (the command
//!   line's progress bar is one);
//! - [`LanguageCheckpoint`], [`Seq2SeqCheckpoint`], [`AnyCheckpoint`]: load any
//!   checkpoint or run folder;
//! - [`Generator`]: a language model packed once, sampled from many times;
//! - [`start_streams`]: a [`StreamEngine`] that steps many requests as one
//!   batch they join and leave at any step, for servers;
//! - [`evaluate_file`] / [`evaluate_text`]: loss, perplexity and bits per
//!   character on held-out text; [`translate`] with beam search;
//! - [`series`]: numeric sequences from CSV: an RNN, LSTM or GRU regression
//!   model trained on windows, direct and recursive forecasts, and MSE, MAE
//!   and MASE against a seasonal-naive baseline; the model on `[T, B, F]`
//!   arrays for sequence-to-vector and sequence-to-sequence regression;
//! - [`memory`]: whether a run fits in the memory available, checked
//!   before training allocates;
//! - [`CheckpointSummary`]: what a checkpoint is and how it was trained;
//!   [`import_pytorch`] / [`export_pytorch`]: weights to and from PyTorch.
//! - [`sizing`]: defaults that fit the corpus: the width, depth, embedding,
//!   batch and learning rate a scaling law fitted to measurements predicts
//!   best for the text, its vocabulary, the threads and the time budget;
//! - [`tune`]: hyper-parameter search (grid, random, TPE; ASHA; held-out or
//!   K-fold validation) over many runs, resumable from its study folder.
//!
//! Every entry point takes its thread count (default: all cores) and runs its
//! kernels with exactly that many, with no process-wide setting.
//!
//! The focused crates it is built from are re-exported as modules, for what
//! the facade does not wrap: [`kernels`] (GEMM, threads), [`nn`] (layers as
//! forward/backward pairs), [`text`] (tokenizers), [`model`] (the language
//! model and seq2seq), [`train`] (the engine, optimizers, schedules),
//! [`generate`] (samplers, beam search), [`checkpoint`] (folders,
//! safetensors, PyTorch names) and [`report`] (BLEU, chrF, SVG plots).
//!
//! Train a character LSTM on a string and sample from it:
//!
//! ```
//! use recurrent::lm::{TrainOptions, Training, TextSource};
//! use recurrent::{GenerateOptions, Generator, GeneratorOptions, Quiet, RunFolder, StopRule};
//!
//! let dir = tempfile::tempdir()?;
//! let mut options = TrainOptions {
//!     input: TextSource::text("abc", "abcabcabcabc\n".repeat(40)),
//!     stop: StopRule { steps: Some(30), ..StopRule::default() },
//!     seq_len: 20,
//!     batch: 4,
//!     lr: 1e-2,
//!     threads: Some(1),
//!     ..TrainOptions::default()
//! };
//! let mut training = Training::start(&options, RunFolder::create(dir.path().join("run"))?)?;
//! let outcome = training.run(&mut Quiet)?;
//! assert_eq!(outcome.steps, 30);
//!
//! let generator = Generator::from_model(
//!     training.model(),
//!     training.tokenizer().clone(),
//!     GeneratorOptions { threads: Some(1), ..GeneratorOptions::default() },
//! )?;
//! let sample = GenerateOptions { prime: "ab".into(), length: 10, seed: 1, ..GenerateOptions::default() };
//! let texts = generator.generate(&sample, |_, _| {})?;
//! assert_eq!(texts.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod builtin;
mod curves;
mod error;
mod evaluate;
mod generator;
pub mod inspect;
pub mod lm;
mod load;
pub mod memory;
mod onnx;
mod pytorch;
mod recorder;
mod run;
mod runs;
pub mod seq2seq;
pub mod series;
pub mod sizing;
mod streams;
mod summary;
mod tensorboard;
mod threads;
mod translate;
pub mod tune;

pub use recurrent_checkpoint as checkpoint;
pub use recurrent_generate as generate;
pub use recurrent_kernels as kernels;
pub use recurrent_model as model;
pub use recurrent_nn as nn;
pub use recurrent_report as report;
pub use recurrent_text as text;
pub use recurrent_train as train;

pub use curves::MetricsError;
pub use error::{Error, Result};
pub use evaluate::{evaluate_corpus, evaluate_file, evaluate_text, EvalOptions, Evaluation};
pub use generator::{Generator, GeneratorOptions};
pub use inspect::{inspect, InspectOptions, Inspection};
pub use load::{AnyCheckpoint, LanguageCheckpoint, Seq2SeqCheckpoint};
pub use onnx::{export_onnx, onnx_step_path, OnnxError, OnnxFiles, ONNX_OPSET};
pub use pytorch::{export_pytorch, import_pytorch, PytorchWeights};
pub use recurrent_generate::{GenerateOptions, SamplingConfig};
pub use recurrent_kernels::Precision;
pub use recurrent_model::infer::WeightFormat;
pub use recurrent_model::seq2seq::{AttentionKind, Bridge, Seq2SeqConfig};
pub use recurrent_model::{CellKind, LanguageModel, ModelConfig};
pub use recurrent_text::{Tokenizer, TokenizerKind, TokenizerOptions};
pub use recurrent_train::optim::{OptimizerConfig, OptimizerKind};
pub use recurrent_train::{
    Collective, EvalRecord, EvalReport, LocalGroup, Observer, SingleProcess, Slot, StepReport,
    StopReason, StopRule,
};
pub use run::RunFolder;
pub use runs::{list_runs, ListedModel, RunListing};
pub use streams::{
    start_streams, Cancel, EngineStats, FinishReason, Sink, StreamEngine, StreamError, StreamEvent,
    StreamOptions, StreamRequest, TokenLogprob,
};
pub use summary::{
    CheckpointSummary, ModelDescription, TensorShape, TrainingSummary, VocabularyPreview,
    VocabularyRole, PREVIEW_TOKENS, RECENT_VALIDATIONS,
};
pub use tensorboard::{Tee, TensorBoard};
pub use threads::MAX_THREADS;
pub use translate::{
    attention_map_svg, score_pairs, translate, translate_with, DecodeOptions, PairScores,
    Translation, DEFAULT_MAX_SOURCE_TOKENS, SOURCE_LENGTH_FACTOR,
};

/// How a training run ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    /// Why it stopped.
    pub reason: StopReason,
    /// Optimizer steps done over the whole run.
    pub steps: u64,
    /// Epochs done over the whole run.
    pub epochs: u64,
    /// Seconds trained over the whole run.
    pub elapsed_secs: f64,
    /// The lowest validation loss, saved in `best/`.
    pub best_val_loss: Option<f64>,
}

/// An observer that watches nothing: train without progress output.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;

impl<T: ?Sized> Observer<T> for Quiet {}

/// The built-in corpus (this project's documentation): its name and text.
pub fn builtin_corpus() -> (&'static str, String) {
    (builtin::NAME, builtin::text())
}
