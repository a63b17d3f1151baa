//! The library's one error type.

use std::path::PathBuf;

use thiserror::Error;

/// What went wrong, with the field or file it concerns and the error it came
/// from. Front ends render it in their own words (the CLI names its flags).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// An option is outside its range.
    #[error("{field} must be {expected}, got {value}")]
    InvalidOption {
        /// The option's field name in the options struct (`lr`, `batch`, ...).
        field: &'static str,
        /// The value given, as text.
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// The text has characters the checkpoint being fine-tuned does not know.
    #[error("the text has {count} character(s) that {} does not know: {shown}", path.display())]
    UnknownChars {
        /// The checkpoint.
        path: PathBuf,
        /// How many characters are unknown.
        count: usize,
        /// The first of them, quoted.
        shown: String,
    },
    /// The learning-rate schedule's text cannot be parsed (the option is
    /// `schedule`; the error names the part of its text that is wrong).
    #[error("bad schedule: {0}")]
    Schedule(#[source] recurrent_train::schedule::ScheduleError),
    /// Two options cannot be used together.
    #[error("{0}")]
    Conflict(String),
    /// The folder already holds a run.
    #[error("{} already holds a run", path.display())]
    RunExists {
        /// The run folder.
        path: PathBuf,
    },
    /// The folder holds no run to resume.
    #[error("{} is not a run folder: {reason}", path.display())]
    NotARun {
        /// The folder.
        path: PathBuf,
        /// What is missing.
        reason: &'static str,
    },
    /// A saved run cannot be resumed.
    #[error("{} cannot be resumed: {reason}", path.display())]
    NotResumable {
        /// The checkpoint folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Reading or writing a file or folder failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("create the run folder", ...).
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The text or the pairs could not be read or tokenized.
    #[error(transparent)]
    Text(#[from] recurrent_text::TextError),
    /// The sentence pairs could not be read or split.
    #[error(transparent)]
    Pairs(#[from] recurrent_text::PairsError),
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] recurrent_checkpoint::CheckpointError),
    /// The model rejected its configuration or input.
    #[error(transparent)]
    Model(#[from] recurrent_model::ModelError),
    /// The seq2seq model rejected its configuration or input.
    #[error(transparent)]
    Seq2Seq(#[from] recurrent_model::seq2seq::Seq2SeqError),
    /// Training stopped with an error; the last good checkpoint is kept.
    #[error(transparent)]
    Train(#[from] recurrent_train::TrainError),
    /// The data cannot be cut into batches.
    #[error(transparent)]
    Batch(#[from] recurrent_train::batch::BatchError),
    /// Generation could not start.
    #[error(transparent)]
    Generate(#[from] recurrent_generate::GenerateError),
    /// Decoding (beam search, greedy, sampling) failed.
    #[error(transparent)]
    Decode(#[from] recurrent_generate::beam::DecodeError),
    /// A picture could not be drawn.
    #[error(transparent)]
    Report(#[from] recurrent_report::ReportError),
    /// A model cannot be written as ONNX.
    #[error(transparent)]
    Onnx(#[from] recurrent_onnx::OnnxError),
    /// A sentence could not be encoded, at a position the message gives.
    #[error("{what} {line}: {source}")]
    Line {
        /// What the line is ("source line", "training pair", ...).
        what: String,
        /// Its 1-based number.
        line: usize,
        /// Why it failed.
        #[source]
        source: recurrent_text::TextError,
    },
    /// The run cannot fit in the memory available (both figures in the message).
    #[error(transparent)]
    Memory(Box<crate::memory::MemoryError>),
    /// A source sentence is longer than the model translates (see
    /// [`crate::Seq2SeqCheckpoint::max_source_tokens`]).
    #[error(
        "{what} {line} has {tokens} source tokens, more than the {limit} this model translates ({})",
        source_limit_reason(*.trained)
    )]
    SourceTooLong {
        /// What the line is ("source line", "pair").
        what: String,
        /// Its 1-based number.
        line: usize,
        /// Its source tokens.
        tokens: usize,
        /// The most accepted.
        limit: usize,
        /// The longest source of training, when recorded.
        trained: Option<usize>,
    },
    /// A `metrics.jsonl` cannot be drawn (a bad line, or no records).
    #[error(transparent)]
    Metrics(#[from] crate::curves::MetricsError),
    /// A saved trainer state that this version cannot read.
    #[error("{}/trainer_state.json is not a trainer state of this version: {source}", path.display())]
    TrainerState {
        /// The checkpoint folder.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

impl From<crate::memory::MemoryError> for Error {
    fn from(e: crate::memory::MemoryError) -> Error {
        // Boxed: the estimate's parts would make every `Result` larger.
        Error::Memory(Box::new(e))
    }
}

/// Where a translation's source limit comes from, for [`Error::SourceTooLong`].
fn source_limit_reason(trained: Option<usize>) -> String {
    match trained {
        Some(n) => format!(
            "{} times the {n} tokens of the longest sentences it was trained on",
            crate::translate::SOURCE_LENGTH_FACTOR
        ),
        None => "the limit for a model that does not record its training length".into(),
    }
}

/// `Result` with the library's [`Error`](enum@Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A range check: `Err(InvalidOption)` unless `ok`.
pub(crate) fn check(
    ok: bool,
    field: &'static str,
    value: impl ToString,
    expected: &'static str,
) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidOption {
            field,
            value: value.to_string(),
            expected: expected.to_string(),
        })
    }
}
