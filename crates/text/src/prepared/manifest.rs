//! `manifest.json`: what a prepared data folder holds, and how to check it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{TokenizerKind, WordSegmentation};

use super::PreparedError;

/// The manifest's file name in a prepared data folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The training tokens' file name.
pub const TRAIN_FILE: &str = "train.bin";
/// The validation tokens' file name.
pub const VAL_FILE: &str = "val.bin";
/// The vocabulary's file name (every tokenizer kind).
pub const VOCAB_FILE: &str = "vocab.json";
/// The BPE tokenizer's file name (BPE only).
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// What `format` says in every manifest.
pub const FORMAT_NAME: &str = "recurrent-tokens";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Bytes per token in a token file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenWidth {
    /// Little-endian `u16`: vocabularies of at most 65,536 tokens.
    U16,
    /// Little-endian `u32`: larger vocabularies.
    U32,
}

impl TokenWidth {
    /// The narrowest width that holds every id of a vocabulary of `vocab_size` tokens.
    pub fn for_vocab(vocab_size: usize) -> TokenWidth {
        if vocab_size <= 1 << 16 {
            TokenWidth::U16
        } else {
            TokenWidth::U32
        }
    }

    /// Bytes per token: 2 or 4.
    pub fn bytes(self) -> usize {
        match self {
            TokenWidth::U16 => 2,
            TokenWidth::U32 => 4,
        }
    }
}

/// One file of the folder with its size and checksum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// The file's name inside the folder.
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// XXH3-64 of its bytes, as 16 hex digits.
    pub xxh3: String,
}

/// A token file: a [`FileRecord`] and its token count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitRecord {
    /// The file, its size and checksum.
    #[serde(flatten)]
    pub file: FileRecord,
    /// Tokens in it (`bytes / token width`).
    pub tokens: u64,
}

/// How the tokenizer was built, and where it is saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizerRecord {
    /// Char, byte, word or BPE.
    pub kind: TokenizerKind,
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// The vocabulary size asked for (word and BPE), if any.
    pub requested_vocab_size: Option<usize>,
    /// The minimum count asked for (word and BPE).
    pub min_count: usize,
    /// The word segmentation (word only).
    pub word_segmentation: Option<WordSegmentation>,
    /// The id of the document-boundary token, when the vocabulary has one.
    pub boundary: Option<u32>,
    /// `vocab.json`, and `tokenizer.json` for BPE.
    pub files: Vec<FileRecord>,
}

/// Everything about a prepared data folder (`manifest.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`] when written by this build.
    pub version: u32,
    /// The tokenizer and its files.
    pub tokenizer: TokenizerRecord,
    /// Bytes per token in both token files.
    pub token_width: TokenWidth,
    /// The documents the corpus had (files of a folder; 1 for a file).
    pub documents: usize,
    /// Bytes of text read.
    pub input_bytes: u64,
    /// The input path, as given.
    pub source: String,
    /// The fraction of the tokens held out for validation (the last ones).
    pub val_fraction: f64,
    /// The training tokens.
    pub train: SplitRecord,
    /// The validation tokens, unless the split left fewer than 2.
    pub val: Option<SplitRecord>,
}

impl Manifest {
    /// Reads and checks the manifest in `dir`: present, this format, a
    /// version this build reads, and well formed.
    pub fn read(dir: &Path) -> Result<Manifest, PreparedError> {
        let path = dir.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PreparedError::NoManifest {
                    dir: dir.to_path_buf(),
                })
            }
            Err(source) => return Err(PreparedError::Read { path, source }),
        };
        let invalid = |source| PreparedError::InvalidManifest {
            path: path.clone(),
            source,
        };
        // The version first, so a newer format gets its own error, not a parse error.
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
        let header: Header = serde_json::from_str(&text).map_err(invalid)?;
        if header.format != FORMAT_NAME || header.version != FORMAT_VERSION {
            return Err(PreparedError::UnknownVersion {
                path,
                format: header.format,
                version: header.version,
            });
        }
        serde_json::from_str(&text).map_err(invalid)
    }
}

/// XXH3-64 as the manifest writes it.
pub(crate) fn hex(hash: u64) -> String {
    format!("{hash:016x}")
}
