//! Text handling for `recurrent`: reading a training corpus from a file or a
//! folder, building a vocabulary from it, and turning text into token ids and
//! back (including a streaming decoder for generation).
//!
//! Four tokenizers are offered:
//!
//! * `char`: one token per Unicode scalar value seen in the corpus, sorted by
//!   code point (as in char-rnn). Small vocabularies, but the corpus must be
//!   valid UTF-8 and every character to encode must be in the vocabulary.
//! * `byte`: the 256 byte values. Works on any file, never meets an unknown
//!   token, at the cost of longer sequences for non-ASCII text.
//! * `word`: one token per word (split at whitespace, or at Unicode word
//!   boundaries), [`EOS`] for each newline and [`UNK`] for words outside
//!   the vocabulary, as in the Penn Treebank files; the vocabulary is capped
//!   by size or minimum count ([`TokenizerOptions`]). Text comes back with
//!   its whitespace normalized.
//! * `bpe`: a byte-level BPE trained on the corpus with Hugging Face's
//!   `tokenizers`; exact round trips for any UTF-8 text, and a
//!   `tokenizer.json` ([`Tokenizer::to_tokenizer_json`]) that Python loads.
//!
//! A checkpoint stores the vocabulary ([`Vocab::to_json`]) for every kind, the
//! word segmentation for `word`, and `tokenizer.json` for `bpe`, which is
//! reloaded with [`Tokenizer::from_tokenizer_json`] (its vocabulary alone is
//! not enough to encode). For bits per character, [`Tokenizer::chars_in`]
//! counts the characters that ids stand for.
//!
//! When a corpus has several documents, a special [`DOC_BOUNDARY`] token is
//! added to the vocabulary and placed between documents, so a model learns
//! where one ends and the next begins.
//!
//! ```
//! use recurrent_text::{Corpus, Tokenizer, TokenizerKind};
//!
//! let corpus = Corpus::from_text("input.txt", "hello, wörld\n");
//! let tok = Tokenizer::build(TokenizerKind::Char, &corpus)?;
//! let ids = tok.encode_corpus(&corpus)?;
//! assert_eq!(tok.decode(&ids), "hello, wörld\n");
//!
//! // Generation prints as it samples; the decoder never splits a character.
//! let mut out = tok.decoder();
//! let text: String = ids.iter().map(|&id| out.push(id)).collect();
//! assert_eq!(text + &out.finish(), "hello, wörld\n");
//! # Ok::<(), recurrent_text::TextError>(())
//! ```
//!
//! Word and BPE vocabularies are built with [`Tokenizer::build_with`]:
//!
//! ```
//! use recurrent_text::{Corpus, Tokenizer, TokenizerKind, TokenizerOptions};
//!
//! let corpus = Corpus::from_text("input.txt", "the cat sat on the mat\nthe dog sat\n");
//! let options = TokenizerOptions { vocab_size: Some(300), ..TokenizerOptions::default() };
//! let bpe = Tokenizer::build_with(TokenizerKind::Bpe, &corpus, &options)?;
//! // A checkpoint keeps tokenizer.json; loading it gives the same tokenizer.
//! let json = bpe.to_tokenizer_json().expect("a BPE tokenizer has one");
//! let bpe = Tokenizer::from_tokenizer_json(&json)?;
//! let ids = bpe.encode("naïve 中文 😀")?; // never seen, still exact
//! assert_eq!(bpe.decode(&ids), "naïve 中文 😀");
//! assert_eq!(bpe.chars_in(&ids), 10);
//!
//! let words = Tokenizer::build_with(TokenizerKind::Word, &corpus, &TokenizerOptions::default())?;
//! let ids = words.encode(" the  cow sat \n")?;
//! assert_eq!(words.decode(&ids), "the <unk> sat\n");
//! # Ok::<(), recurrent_text::TextError>(())
//! ```
//!
//! A corpus larger than memory is tokenized once into memory-mapped token
//! files by [`prepared::prepare`] and read back with [`prepared::PreparedData`].
//!
//! For sequence-to-sequence models, [`pairs`] reads sentence pairs from a
//! tab-separated file and splits them into training, validation and test sets,
//! and [`PairTokenizers`] holds a model's source and target tokenizers with
//! the target's BOS and EOS ids.
//!
//! This crate knows nothing of models, training or front ends: it turns text
//! into ids and back. Nothing here panics on bad input: every failure is a
//! [`TextError`] (or a [`PairsError`]) whose message is one line naming the
//! problem and, where there is one, the file, with any underlying I/O or
//! parser error kept as its source.

#![deny(missing_docs)]

mod bpe;
mod corpus;
mod error;
mod options;
mod pair_tokenizers;
pub mod pairs;
pub mod prepared;
mod stream;
mod tokenizer;
mod vocab;
mod word;

pub use corpus::{Corpus, Document};
pub use error::{TextError, TokenizerOption};
pub use options::{TokenizerOptions, WordSegmentation, DEFAULT_BPE_VOCAB_SIZE};
pub use pair_tokenizers::{PairTokenizers, BOS_TOKEN, EOS_TOKEN};
pub use pairs::{
    parse_pairs, read_pairs, split_pairs, Pair, PairColumns, PairSplit, PairsError, SplitFractions,
};
pub use stream::StreamDecoder;
pub use tokenizer::{Tokenizer, TokenizerKind, DOC_BOUNDARY};
pub use vocab::{byte_token, Vocab};
pub use word::{EOS, UNK};
