//! How a vocabulary is built: its size, the minimum count of a word or
//! merge, and the word segmentation, for [`Tokenizer::build_with`](crate::Tokenizer::build_with).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{TextError, TokenizerKind, TokenizerOption};

/// The BPE vocabulary size when none is given: small enough for a recurrent
/// model on a few megabytes of text (GPT-2's 50k would leave most tokens
/// unseen), large enough that common words are single tokens.
pub const DEFAULT_BPE_VOCAB_SIZE: usize = 1024;

/// How the `word` tokenizer splits a line into words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WordSegmentation {
    /// Words are the runs of non-whitespace, as in the Mikolov PTB files and
    /// PyTorch's `word_language_model` (`line.split()`): punctuation stays
    /// attached unless the text was tokenized beforehand.
    #[default]
    Whitespace,
    /// Unicode word boundaries (UAX #29): punctuation becomes its own token
    /// and each CJK ideograph is a word, so raw prose and unspaced scripts
    /// work; decoding then puts spaces around punctuation.
    Unicode,
}

impl WordSegmentation {
    /// The name used on the command line and in saved configs.
    pub fn as_str(self) -> &'static str {
        match self {
            WordSegmentation::Whitespace => "whitespace",
            WordSegmentation::Unicode => "unicode",
        }
    }
}

impl fmt::Display for WordSegmentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WordSegmentation {
    type Err = TextError;

    fn from_str(s: &str) -> Result<Self, TextError> {
        match s {
            "whitespace" => Ok(WordSegmentation::Whitespace),
            "unicode" => Ok(WordSegmentation::Unicode),
            _ => Err(TextError::UnknownSegmentation {
                name: s.to_string(),
            }),
        }
    }
}

/// Settings for building a vocabulary from a corpus.
///
/// `vocab_size` and `min_count` apply to `word` and `bpe`; `word_segmentation`
/// to `word` only. Setting one for a tokenizer it does not apply to is an
/// error ([`TextError::OptionNotApplicable`]) rather than silently ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenizerOptions {
    /// The largest vocabulary, special tokens included. Word: the most
    /// frequent words are kept (default: every word). BPE: merges are learned
    /// until the vocabulary has this many tokens, 256 byte tokens included
    /// (default [`DEFAULT_BPE_VOCAB_SIZE`]).
    pub vocab_size: Option<usize>,
    /// Word: words seen fewer times than this become `<unk>`. BPE: pairs seen
    /// fewer times than this are not merged. 0 and 1 both mean no minimum.
    pub min_count: usize,
    /// How the word tokenizer finds words.
    pub word_segmentation: WordSegmentation,
}

impl Default for TokenizerOptions {
    fn default() -> Self {
        TokenizerOptions {
            vocab_size: None,
            min_count: 1,
            word_segmentation: WordSegmentation::Whitespace,
        }
    }
}

impl TokenizerOptions {
    /// The vocabulary a BPE tokenizer trained on `text_bytes` bytes of text
    /// aims for: `vocab_size` (default [`DEFAULT_BPE_VOCAB_SIZE`]), but no
    /// more than the text can produce: the 256 byte tokens, `<doc>`, and at
    /// most one merge per byte of text. The trainer sizes its tables for
    /// this many tokens, so an absurd size must not reach it.
    pub fn bpe_vocab_size(&self, text_bytes: usize) -> usize {
        let most = text_bytes.saturating_add(257);
        self.vocab_size.unwrap_or(DEFAULT_BPE_VOCAB_SIZE).min(most)
    }

    /// Errors if an option was set that `kind` has no use for.
    pub(crate) fn check_applies_to(&self, kind: TokenizerKind) -> Result<(), TextError> {
        let sized = matches!(kind, TokenizerKind::Word | TokenizerKind::Bpe);
        let unused = if self.vocab_size.is_some() && !sized {
            Some(TokenizerOption::VocabSize)
        } else if self.min_count > 1 && !sized {
            Some(TokenizerOption::MinCount)
        } else if self.word_segmentation != WordSegmentation::default()
            && kind != TokenizerKind::Word
        {
            Some(TokenizerOption::WordSegmentation)
        } else {
            None
        };
        match unused {
            Some(option) => Err(TextError::OptionNotApplicable { option, kind }),
            None => Ok(()),
        }
    }
}
