//! The one error type of this crate.
//!
//! Every message is a single line that names the file or folder involved, so
//! the user knows what to fix. The underlying I/O, JSON, tokenizer or model
//! error is kept as [`source`](std::error::Error::source) rather than folded
//! into the message, so a front end can print the chain (`anyhow`'s `{:#}`
//! gives `cannot read x/config.json: Permission denied (os error 13)`) or
//! inspect it.

use std::io;
use std::path::PathBuf;

use recurrent_model::seq2seq::Seq2SeqError;
use recurrent_model::{CellKind, ModelError};
use recurrent_text::TextError;

/// Everything that can go wrong reading or writing checkpoint files.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// An operating-system call on `path` failed (`action` is e.g. "read", "write", "rename").
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What we were doing, as a verb phrase.
        action: &'static str,
        /// The file or folder involved.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        cause: io::Error,
    },

    /// A file that was asked for by name does not exist.
    #[error("{} does not exist", path.display())]
    NotFound {
        /// The missing file.
        path: PathBuf,
    },

    /// A folder holds none of the required checkpoint files (or does not exist).
    #[error(
        "no checkpoint at {} (expected config.json, model.safetensors, vocab.json)",
        path.display()
    )]
    NoCheckpoint {
        /// The folder that was searched.
        path: PathBuf,
    },

    /// A path is neither a checkpoint folder nor a run folder with `best/` or `last/`.
    #[error(
        "no checkpoint at {} (expected config.json, model.safetensors, vocab.json, or a run folder with best/ or last/)",
        path.display()
    )]
    NoCheckpointOrRun {
        /// The path that was given.
        path: PathBuf,
    },

    /// A safetensors file could not be parsed: cut short, overwritten, or not safetensors at all.
    #[error("{} is truncated or corrupt ({reason})", path.display())]
    Corrupt {
        /// The bad file.
        path: PathBuf,
        /// What is wrong, in a few words.
        reason: String,
        /// The safetensors parser's error, when it found the problem.
        #[source]
        source: Option<safetensors::SafeTensorError>,
    },

    /// A tensor in a safetensors file has an element type we cannot turn into f32.
    #[error(
        "{}: tensor `{tensor}` has dtype {dtype}, expected F32 (F64, F16 and BF16 are converted)",
        path.display()
    )]
    WrongDtype {
        /// The file holding the tensor.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The dtype found, as written in the header (e.g. "I32").
        dtype: String,
    },

    /// A tensor holds a NaN or an infinity: weights of a diverged run.
    #[error(
        "{}: tensor `{tensor}` holds {value} at index {}; weights that are not finite numbers \
         cannot be used (the run that wrote them had diverged)",
        path.display(),
        position(*index, shape)
    )]
    NonFinite {
        /// The file holding the tensor.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// Its shape.
        shape: Vec<usize>,
        /// The flat (row-major) index of its first value that is not finite.
        index: usize,
        /// That value.
        value: f32,
    },

    /// A JSON file did not parse, or did not have the expected shape.
    #[error("{} is not {expected}", path.display())]
    BadJson {
        /// The bad file.
        path: PathBuf,
        /// What the file should have held, e.g. "valid JSON".
        expected: &'static str,
        /// The parser's complaint (includes line and column).
        #[source]
        cause: serde_json::Error,
    },

    /// A tensor handed to us for saving is malformed (a bug in the caller, not bad input).
    #[error("cannot save tensor `{name}`: {reason}")]
    InvalidTensor {
        /// The tensor's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The tensors cannot be encoded as safetensors for a reason not tied to one tensor.
    #[error("cannot encode tensors as safetensors: {reason}")]
    Encode {
        /// What went wrong.
        reason: String,
        /// The encoder's error, when it raised one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// A checkpoint folder cannot be written at `path` for a reason other than I/O.
    #[error("cannot save checkpoint to {}: {reason}", path.display())]
    CannotSave {
        /// The requested checkpoint folder.
        path: PathBuf,
        /// Why not.
        reason: String,
    },

    /// The files of a checkpoint disagree with each other (or with PyTorch weights).
    #[error("{}: {reason}", path.display())]
    Mismatch {
        /// The checkpoint folder or file.
        path: PathBuf,
        /// What disagrees.
        reason: String,
    },

    /// A vocabulary or tokenizer file does not make a tokenizer.
    #[error("{}: {file} does not make a tokenizer", path.display())]
    Tokenizer {
        /// The checkpoint folder, or the vocabulary file given on its own.
        path: PathBuf,
        /// The file at fault, e.g. "vocab.json" or "target_tokenizer.json".
        file: String,
        /// Why not.
        #[source]
        source: TextError,
    },

    /// A language model's weights do not fit its configuration.
    #[error("{}: {what}", path.display())]
    Model {
        /// The checkpoint folder or weights file.
        path: PathBuf,
        /// What was being built, e.g. "model.safetensors does not match config.json".
        what: &'static str,
        /// The model's complaint.
        #[source]
        source: ModelError,
    },

    /// A sequence-to-sequence model's weights do not fit its configuration.
    #[error("{}: {what}", path.display())]
    Seq2Seq {
        /// The checkpoint folder.
        path: PathBuf,
        /// What was being built, e.g. "model.safetensors does not match config.json".
        what: &'static str,
        /// The model's complaint.
        #[source]
        source: Seq2SeqError,
    },

    /// A model and a tokenizer that do not belong together were to be saved.
    #[error(
        "cannot save checkpoint to {}: the {which} has {tokens} tokens but the model's \
         vocabulary has {model_vocab}",
        path.display()
    )]
    VocabSize {
        /// The requested checkpoint folder.
        path: PathBuf,
        /// Which tokenizer: "tokenizer", "source tokenizer" or "target tokenizer"
        /// (the last two count BOS and EOS).
        which: &'static str,
        /// Its vocabulary size.
        tokens: usize,
        /// The model's vocabulary size on that side.
        model_vocab: usize,
    },

    /// A checkpoint of one kind of model was loaded as the other kind.
    #[error("{}: this is a {found}, not a {expected}", path.display())]
    WrongModelKind {
        /// The checkpoint folder.
        path: PathBuf,
        /// The kind it holds.
        found: ModelKind,
        /// The kind the loader reads.
        expected: ModelKind,
    },

    /// PyTorch recurrent weights whose row count does not fit the cell named for them.
    #[error(
        "{}: rnn.weight_hh_l0 has {rows} rows for hidden size {hidden}: that is {} gate blocks, \
         but a {cell} layer has {}",
        path.display(),
        *rows as f64 / *hidden as f64,
        cell.gates()
    )]
    WrongCell {
        /// The weights file.
        path: PathBuf,
        /// The cell the caller named.
        cell: CellKind,
        /// Rows of `rnn.weight_hh_l0`.
        rows: usize,
        /// Its columns: the hidden size.
        hidden: usize,
    },

    /// Another process (or another lock in this one) is training into a run folder.
    #[error(
        "run folder {} is in use by {} (lock file {}); wait for that run to end or stop it",
        folder.display(),
        holder(*pid),
        lock_file.display()
    )]
    RunLocked {
        /// The run folder.
        folder: PathBuf,
        /// Its lock file.
        lock_file: PathBuf,
        /// The process holding the lock, when its lock file names it yet.
        pid: Option<u32>,
    },
}

/// The holder of a lock, in words.
fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("process {pid}"),
        None => "another process".to_string(),
    }
}

/// The kinds of model a checkpoint can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// A language model ([`crate::lm`]).
    LanguageModel,
    /// An encoder-decoder ([`crate::seq2seq`]).
    Seq2Seq,
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::LanguageModel => "language model",
            ModelKind::Seq2Seq => "sequence-to-sequence model",
        })
    }
}

/// A flat row-major index as coordinates in `shape`: `[3, 17]`.
fn position(index: usize, shape: &[usize]) -> String {
    let mut rest = index;
    let mut coords = vec![0; shape.len()];
    for (c, &d) in coords.iter_mut().zip(shape).rev() {
        *c = rest % d.max(1);
        rest /= d.max(1);
    }
    format!("{coords:?}")
}

impl CheckpointError {
    /// Wrap an I/O error with the action and path it came from.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, cause: io::Error) -> Self {
        CheckpointError::Io {
            action,
            path: path.into(),
            cause,
        }
    }
}
