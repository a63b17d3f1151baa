//! The one error type of this crate.
//!
//! Every message is a single line that names the file or folder involved, because
//! the CLI prints it as `error: {msg}` and the user must know what to fix. The
//! underlying I/O or JSON error is folded into the message rather than exposed as
//! `source()`, so chain-printing reporters do not repeat it.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong reading or writing checkpoint files.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// An operating-system call on `path` failed (`action` is e.g. "read", "write", "rename").
    #[error("cannot {action} {}: {cause}", path.display())]
    Io {
        /// What we were doing, as a verb phrase.
        action: &'static str,
        /// The file or folder involved.
        path: PathBuf,
        /// The operating-system error.
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
        /// What the parser found wrong.
        reason: String,
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

    /// A JSON file did not parse, or did not have the expected shape.
    #[error("{} is not {expected}: {cause}", path.display())]
    BadJson {
        /// The bad file.
        path: PathBuf,
        /// What the file should have held, e.g. "valid JSON".
        expected: &'static str,
        /// The parser's complaint (includes line and column).
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
