//! Prepared corpora: a corpus tokenized once into token files that training
//! memory-maps, so a corpus larger than memory trains with flat memory.
//!
//! A prepared data folder holds:
//!
//! * `train.bin`, `val.bin`: the token ids, little-endian `u16` when the
//!   vocabulary has at most 65,536 tokens, else `u32`, with no header (as
//!   nanoGPT's `prepare.py` writes them: `numpy.memmap(path, dtype=numpy.uint16)`
//!   reads them). Documents are separated by the [`DOC_BOUNDARY`](crate::DOC_BOUNDARY)
//!   token when there are several; the validation file is the last
//!   `val_fraction` of the tokens.
//! * `vocab.json` (and `tokenizer.json` for BPE): the tokenizer, in the
//!   files a checkpoint uses.
//! * `manifest.json` ([`Manifest`]): the format version, the tokenizer's
//!   settings, and every file's size and XXH3-64 checksum.
//!
//! [`prepare`] writes a folder; [`PreparedData::open`] reads one, with a
//! cheap size check by default or a full checksum pass ([`Verify`]).
//!
//! Vocabularies are learned by streaming the corpus: char and word
//! vocabularies are a counting pass (memory grows with the distinct chars or
//! words, not the text); BPE merges are learned by the `tokenizers` trainer
//! fed from an iterator of pieces, which keeps only the counts of distinct
//! pre-tokenized words. The result is the tokenizer that
//! [`Tokenizer::build_with`](crate::Tokenizer::build_with) builds from the same text.
//!
//! ```
//! use recurrent_text::prepared::{prepare, PrepareOptions, PreparedData, Verify};
//! use recurrent_text::TokenizerKind;
//!
//! let dir = tempfile::tempdir()?;
//! let input = dir.path().join("input.txt");
//! std::fs::write(&input, "to be or not to be\n".repeat(50))?;
//! let options = PrepareOptions { kind: TokenizerKind::Char, ..PrepareOptions::default() };
//! let manifest = prepare(&input, &dir.path().join("data"), &options, &|_| {})?;
//! assert_eq!(manifest.train.tokens + manifest.val.as_ref().map_or(0, |v| v.tokens), 950);
//!
//! let data = PreparedData::open(&dir.path().join("data"), Verify::Full)?;
//! let ids = data.train().ids().to_vec();
//! assert_eq!(data.tokenizer().decode(&ids[..6]), "to be ");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod manifest;
mod pieces;
mod reader;
mod writer;

pub use error::PreparedError;
pub use manifest::{
    FileRecord, Manifest, SplitRecord, TokenWidth, TokenizerRecord, FORMAT_NAME, FORMAT_VERSION,
    MANIFEST_FILE, TOKENIZER_FILE, TRAIN_FILE, VAL_FILE, VOCAB_FILE,
};
pub use reader::{PreparedData, TokenFile, TokenIds, Verify};
pub use writer::{prepare, Phase, PrepareOptions, Progress, DEFAULT_BLOCK_BYTES};
