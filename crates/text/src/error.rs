//! The one error type of this crate.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::TokenizerKind;

/// Everything that can go wrong reading a corpus or tokenizing text.
///
/// Each message is a single line naming the field, value or file at fault;
/// an underlying error (I/O, JSON, the `tokenizers` library) is kept as the
/// [`source`](std::error::Error::source), not repeated in the message.
/// Messages never name command-line flags: a front end matches on the
/// variant to word settings its own way.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// The corpus path does not exist.
    #[error("{}: no such file or folder", path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },

    /// A file or folder exists but could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file or folder that failed.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        err: io::Error,
    },

    /// A corpus file given directly has no bytes.
    #[error("{} is empty", path.display())]
    EmptyFile {
        /// The empty file.
        path: PathBuf,
    },

    /// A corpus folder has no non-empty, non-hidden files.
    #[error("folder {} contains no text files", path.display())]
    EmptyFolder {
        /// The folder.
        path: PathBuf,
    },

    /// There was no text at all to build a vocabulary from.
    #[error("the corpus contains no text")]
    EmptyCorpus,

    /// Text that must be UTF-8 (for the char tokenizer) is not.
    #[error(
        "{name} is not valid UTF-8 (first invalid byte at offset {offset}); \
         the byte tokenizer reads any bytes"
    )]
    InvalidUtf8 {
        /// The document (file name) or "text" for bare input.
        name: String,
        /// Byte offset of the first byte that is not part of valid UTF-8.
        offset: usize,
    },

    /// Text has characters the char vocabulary cannot encode.
    #[error(
        "{origin}: {} not in the vocabulary: {}",
        count_chars(chars.len()),
        list_chars(chars)
    )]
    UnknownChars {
        /// The distinct missing characters, sorted by code point.
        chars: Vec<char>,
        /// Where they were found: a file name, or "text".
        origin: String,
    },

    /// A tokenizer name other than `char`, `byte`, `word` or `bpe`.
    #[error("unknown tokenizer '{name}' (expected 'char', 'byte', 'word' or 'bpe')")]
    UnknownTokenizer {
        /// The name that was given.
        name: String,
    },

    /// A word segmentation other than `whitespace` or `unicode`.
    #[error("unknown word segmentation '{name}' (expected 'whitespace' or 'unicode')")]
    UnknownSegmentation {
        /// The name that was given.
        name: String,
    },

    /// A vocabulary option given for a tokenizer that has no use for it.
    #[error("{option} does not apply to the {kind} tokenizer")]
    OptionNotApplicable {
        /// The option that was set.
        option: TokenizerOption,
        /// The tokenizer it was given for.
        kind: TokenizerKind,
    },

    /// A vocabulary size too small to hold the tokens every vocabulary of the kind has.
    #[error(
        "vocabulary size {size} is too small for the {kind} tokenizer (it needs at least {min})"
    )]
    VocabTooSmall {
        /// The tokenizer.
        kind: TokenizerKind,
        /// The size asked for.
        size: usize,
        /// The smallest size that works.
        min: usize,
    },

    /// A vocabulary that is empty, has duplicates, or does not fit its tokenizer.
    #[error("invalid vocabulary: {reason}")]
    InvalidVocab {
        /// What is wrong with it.
        reason: String,
    },

    /// `vocab.json` text that is not a JSON array of strings.
    #[error("vocab.json is not a JSON array of strings")]
    VocabJson {
        /// The JSON parser's complaint (with line and column).
        #[source]
        source: serde_json::Error,
    },

    /// Only char vocabularies grow; the others already encode every input.
    #[error("cannot extend a {kind} vocabulary: {}", why_not_extend(*kind))]
    CannotExtend {
        /// The tokenizer whose vocabulary was to grow.
        kind: TokenizerKind,
    },

    /// A BPE tokenizer was to be made from vocab.json alone.
    #[error("a bpe tokenizer needs its tokenizer.json, not just its vocabulary")]
    NeedsTokenizerJson,

    /// `tokenizer.json` text that is not a byte-level BPE this crate can use exactly.
    #[error("tokenizer.json is not a usable byte-level BPE tokenizer: {reason}")]
    TokenizerJson {
        /// What is wrong with it.
        reason: String,
    },

    /// `tokenizer.json` text that the `tokenizers` library cannot parse.
    #[error("tokenizer.json does not parse as a tokenizer")]
    TokenizerJsonParse {
        /// The library's complaint.
        #[source]
        source: tokenizers::Error,
    },

    /// The `tokenizers` library failed to train or encode.
    #[error("the BPE tokenizer failed to {action}")]
    Bpe {
        /// What it was doing: "train" or "encode".
        action: &'static str,
        /// The library's error.
        #[source]
        source: tokenizers::Error,
    },

    /// A prepared data folder cannot be written, read or trusted.
    #[error(transparent)]
    Prepared(#[from] crate::prepared::PreparedError),
}

/// A setting of [`crate::TokenizerOptions`], named in
/// [`TextError::OptionNotApplicable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerOption {
    /// [`crate::TokenizerOptions::vocab_size`].
    VocabSize,
    /// [`crate::TokenizerOptions::min_count`].
    MinCount,
    /// [`crate::TokenizerOptions::word_segmentation`].
    WordSegmentation,
}

impl TokenizerOption {
    /// The field's name in [`crate::TokenizerOptions`].
    pub fn field_name(self) -> &'static str {
        match self {
            TokenizerOption::VocabSize => "vocab_size",
            TokenizerOption::MinCount => "min_count",
            TokenizerOption::WordSegmentation => "word_segmentation",
        }
    }
}

impl fmt::Display for TokenizerOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field_name())
    }
}

fn why_not_extend(kind: TokenizerKind) -> &'static str {
    match kind {
        TokenizerKind::Byte | TokenizerKind::Bpe => "it already covers every byte",
        TokenizerKind::Word => "unknown words are encoded as <unk>",
        TokenizerKind::Char => "it can",
    }
}

/// How many missing characters we spell out before summarising the rest;
/// a Chinese corpus against an English model could miss thousands.
const MAX_LISTED: usize = 30;

fn count_chars(n: usize) -> String {
    if n == 1 {
        "1 character".to_string()
    } else {
        format!("{n} characters")
    }
}

/// Quote and escape each char so invisible ones (newline, combining marks) show.
fn list_chars(chars: &[char]) -> String {
    let mut out: Vec<String> = chars
        .iter()
        .take(MAX_LISTED)
        .map(|c| format!("'{}'", c.escape_debug()))
        .collect();
    if chars.len() > MAX_LISTED {
        out.push(format!("... and {} more", chars.len() - MAX_LISTED));
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_chars_message_escapes_and_counts() {
        let e = TextError::UnknownChars {
            chars: vec!['\n', 'é', '中', '\u{301}'],
            origin: "data/a.txt".into(),
        };
        let msg = e.to_string();
        assert_eq!(
            msg,
            "data/a.txt: 4 characters not in the vocabulary: '\\n', 'é', '中', '\\u{301}'"
        );
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn unknown_chars_message_truncates_long_lists() {
        let chars: Vec<char> = ('一'..).take(100).collect();
        let msg = TextError::UnknownChars {
            chars,
            origin: "text".into(),
        }
        .to_string();
        assert!(msg.starts_with("text: 100 characters not in the vocabulary: '一'"));
        assert!(msg.ends_with("... and 70 more"), "{msg}");
    }

    #[test]
    fn io_errors_keep_their_source_and_path() {
        use std::error::Error;
        let e = TextError::Read {
            path: "data/a.txt".into(),
            err: io::Error::new(io::ErrorKind::PermissionDenied, "denied"),
        };
        assert_eq!(e.to_string(), "cannot read data/a.txt");
        assert_eq!(e.source().unwrap().to_string(), "denied");
    }

    #[test]
    fn single_char_is_singular() {
        let msg = TextError::UnknownChars {
            chars: vec!['x'],
            origin: "text".into(),
        }
        .to_string();
        assert_eq!(msg, "text: 1 character not in the vocabulary: 'x'");
    }
}
