//! What can be wrong with a prepared data folder.

use std::io;
use std::path::PathBuf;

use super::manifest::{FORMAT_NAME, FORMAT_VERSION};

/// A prepared data folder that cannot be written, read or trusted. Each
/// message names the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum PreparedError {
    /// The folder has no `manifest.json` (not prepared, or preparing it failed).
    #[error("{} has no manifest.json: it is not a prepared data folder", dir.display())]
    NoManifest {
        /// The folder.
        dir: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// `manifest.json` is not valid JSON of the expected shape.
    #[error("{} is not a valid manifest", path.display())]
    InvalidManifest {
        /// The manifest.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The manifest is of another format or version.
    #[error(
        "{} is {format:?} version {version}; this build reads {FORMAT_NAME:?} version {FORMAT_VERSION}",
        path.display()
    )]
    UnknownVersion {
        /// The manifest.
        path: PathBuf,
        /// The format it names.
        format: String,
        /// The version it names.
        version: u32,
    },
    /// A file is shorter than the manifest says.
    #[error("{} is truncated: {found} bytes, the manifest says {expected}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the manifest records.
        expected: u64,
        /// Bytes the file has.
        found: u64,
    },
    /// A file is longer than the manifest says.
    #[error("{} has {found} bytes, the manifest says {expected}", path.display())]
    TooLong {
        /// The file.
        path: PathBuf,
        /// Bytes the manifest records.
        expected: u64,
        /// Bytes the file has.
        found: u64,
    },
    /// A file's checksum is not the manifest's: it changed since it was written.
    #[error("{} is corrupt: its XXH3 checksum is {found}, the manifest says {expected}", path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The manifest's checksum.
        expected: String,
        /// The file's.
        found: String,
    },
    /// The manifest's sizes do not agree with each other.
    #[error("{} is inconsistent: {reason}", path.display())]
    Inconsistent {
        /// The manifest.
        path: PathBuf,
        /// What disagrees.
        reason: String,
    },
    /// A token id is outside the vocabulary.
    #[error(
        "{}: token {id} at position {position} is outside the vocabulary of {vocab_size} tokens",
        path.display()
    )]
    TokenOutOfRange {
        /// The token file.
        path: PathBuf,
        /// The id found.
        id: u32,
        /// Its index in the file.
        position: u64,
        /// Tokens in the vocabulary.
        vocab_size: usize,
    },
    /// The tokenizer is not the one the tokens were made with.
    #[error("{} does not match the tokenizer: {reason}", path.display())]
    TokenizerMismatch {
        /// The prepared tokenizer's file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// The corpus gave fewer than two tokens.
    #[error("{} gives {tokens} token(s); at least 2 are needed", path.display())]
    TooFewTokens {
        /// The input.
        path: PathBuf,
        /// Tokens it gave.
        tokens: u64,
    },
    /// A setting is out of range.
    #[error("{field} must be {expected}, got {value}")]
    InvalidSetting {
        /// The setting's field in [`super::PrepareOptions`].
        field: &'static str,
        /// The value given, as text.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// Token files are little-endian; this machine is not.
    #[error("prepared token files are little-endian; this machine is big-endian")]
    BigEndian,
}
