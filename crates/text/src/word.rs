//! The word tokenizer: one token per word, `<eos>` per newline, `<unk>` for
//! the words left out of the vocabulary.
//!
//! This is the scheme of the Mikolov Penn Treebank files and of PyTorch's
//! `word_language_model`, where every line ends with `<eos>`. Encoding never
//! fails; decoding joins words with single spaces and turns `<eos>` back into
//! a newline, so text round-trips as its whitespace-normalized form (each
//! line's words separated by one space, no leading or trailing blanks).

use std::collections::HashMap;

use unicode_segmentation::UnicodeSegmentation;

use crate::{TextError, TokenizerKind, TokenizerOptions, Vocab, WordSegmentation, DOC_BOUNDARY};

/// The token standing for every word outside the vocabulary.
pub const UNK: &str = "<unk>";
/// The token emitted for every newline.
pub const EOS: &str = "<eos>";

/// One unit of segmented text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit<'a> {
    Word(&'a str),
    /// A newline.
    Eol,
}

/// Calls `f` with the words of `text` in order and [`Unit::Eol`] at each
/// newline. Only `\n` ends a line (a `\r` before it is whitespace), so a last
/// line without a newline gets no `<eos>`, and decoding can restore that.
pub(crate) fn segment<'a>(text: &'a str, seg: WordSegmentation, mut f: impl FnMut(Unit<'a>)) {
    // `split` yields one more piece than there are newlines: an Eol goes before
    // every piece but the first.
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            f(Unit::Eol);
        }
        match seg {
            WordSegmentation::Whitespace => line.split_whitespace().for_each(|w| f(Unit::Word(w))),
            WordSegmentation::Unicode => {
                for piece in line.split_word_bounds() {
                    // Whitespace runs are segments of their own; a combining
                    // mark after a space joins the space's segment, so trim.
                    let w = piece.trim();
                    if !w.is_empty() {
                        f(Unit::Word(w));
                    }
                }
            }
        }
    }
}

/// The vocabulary of the word tokenizer built from documents' text:
/// `<unk>`, `<eos>`, `<doc>` when there are several documents, then the words
/// by decreasing count, ties in byte order of the word so the result never
/// depends on hashing. Words seen fewer than `min_count` times are dropped,
/// and the list is cut so the whole vocabulary has at most `vocab_size` tokens.
pub(crate) fn build_vocab(
    texts: &[&str],
    options: &TokenizerOptions,
) -> Result<Vec<String>, TextError> {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for text in texts {
        count_words(text, options.word_segmentation, &mut counts);
    }
    vocab_from_counts(counts, texts.len() > 1, options)
}

/// Adds the words of `text` to `counts` (the counting pass of [`build_vocab`],
/// which a corpus larger than memory runs piece by piece).
pub(crate) fn count_words<'a>(
    text: &'a str,
    segmentation: WordSegmentation,
    counts: &mut HashMap<&'a str, u64>,
) {
    segment(text, segmentation, |unit| {
        if let Unit::Word(w) = unit {
            *counts.entry(w).or_default() += 1;
        }
    });
}

/// The vocabulary of [`build_vocab`] from word counts: `several_docs` adds
/// `<doc>`; the order never depends on the map's.
pub(crate) fn vocab_from_counts<W: AsRef<str> + Ord>(
    counts: HashMap<W, u64>,
    several_docs: bool,
    options: &TokenizerOptions,
) -> Result<Vec<String>, TextError> {
    let mut tokens = vec![UNK.to_string(), EOS.to_string()];
    if several_docs {
        tokens.push(DOC_BOUNDARY.to_string());
    }
    let room = match options.vocab_size {
        // One word at least, or every id would be a special token.
        Some(size) if size <= tokens.len() => {
            return Err(TextError::VocabTooSmall {
                kind: TokenizerKind::Word,
                size,
                min: tokens.len() + 1,
            })
        }
        Some(size) => size - tokens.len(),
        None => usize::MAX,
    };
    let mut words: Vec<(W, u64)> = counts
        .into_iter()
        // A literal `<unk>` in the text (PTB has many) is the unknown token.
        .filter(|(w, n)| {
            let w = w.as_ref();
            *n >= options.min_count as u64 && !is_reserved(w) && w != UNK
        })
        .collect();
    words.sort_unstable_by(|(a, m), (b, n)| n.cmp(m).then_with(|| a.cmp(b)));
    tokens.extend(
        words
            .into_iter()
            .take(room)
            .map(|(w, _)| w.as_ref().to_string()),
    );
    Ok(tokens)
}

/// The structural tokens: they come from newlines and document ends, never
/// from a word in the text, so a literal `<eos>` or `<doc>` encodes as `<unk>`.
fn is_reserved(word: &str) -> bool {
    word == EOS || word == DOC_BOUNDARY
}

/// What the word tokenizer needs besides the vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WordCodec {
    pub(crate) segmentation: WordSegmentation,
    pub(crate) unk: u32,
    pub(crate) eos: u32,
}

impl WordCodec {
    /// Checks a saved word vocabulary: it must have `<unk>` and `<eos>`, and
    /// no token may be blank or have surrounding whitespace (segmentation
    /// never yields one, and it catches a char or byte vocabulary given by mistake).
    pub(crate) fn new(vocab: &Vocab, segmentation: WordSegmentation) -> Result<Self, TextError> {
        for (id, token) in vocab.tokens().iter().enumerate() {
            if token.trim() != token || token.is_empty() {
                return Err(TextError::InvalidVocab {
                    reason: format!(
                        "word token {id} ({token:?}) has whitespace around it; \
                         is this a char or byte vocabulary?"
                    ),
                });
            }
        }
        let need = |name: &str| {
            vocab.id(name).ok_or_else(|| TextError::InvalidVocab {
                reason: format!("a word vocabulary needs the {name} token"),
            })
        };
        Ok(WordCodec {
            segmentation,
            unk: need(UNK)?,
            eos: need(EOS)?,
        })
    }

    /// Appends the ids of `text`: a word's id, or `<unk>`'s; `<eos>` per newline.
    pub(crate) fn encode_into(&self, vocab: &Vocab, text: &str, ids: &mut Vec<u32>) {
        segment(text, self.segmentation, |unit| {
            ids.push(match unit {
                Unit::Eol => self.eos,
                Unit::Word(w) if is_reserved(w) => self.unk,
                Unit::Word(w) => vocab.id(w).unwrap_or(self.unk),
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(text: &str, seg: WordSegmentation) -> Vec<String> {
        let mut out = Vec::new();
        segment(text, seg, |u| {
            out.push(match u {
                Unit::Word(w) => w.to_string(),
                Unit::Eol => "\n".to_string(),
            })
        });
        out
    }

    #[test]
    fn whitespace_segmentation_marks_every_newline() {
        let got = units(" the cat  sat \n\n a\r\nb", WordSegmentation::Whitespace);
        assert_eq!(got, ["the", "cat", "sat", "\n", "\n", "a", "\n", "b"]);
        assert_eq!(units("x\n", WordSegmentation::Whitespace), ["x", "\n"]);
        assert!(units("", WordSegmentation::Whitespace).is_empty());
    }

    #[test]
    fn unicode_segmentation_splits_punctuation_and_ideographs() {
        let got = units("Hello, wörld! 中文 can't\n", WordSegmentation::Unicode);
        assert_eq!(got, ["Hello", ",", "wörld", "!", "中", "文", "can't", "\n"]);
    }

    #[test]
    fn vocab_ties_are_broken_by_word() {
        let opts = TokenizerOptions::default();
        let v = build_vocab(&["b a c b\nc a d"], &opts).unwrap();
        assert_eq!(v, ["<unk>", "<eos>", "a", "b", "c", "d"]);
    }
}
