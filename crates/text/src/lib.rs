//! Text handling for `recurrent`: reading a training corpus from a file or a
//! folder, building a character or byte vocabulary from it, and turning text
//! into token ids and back (including a streaming decoder for generation).
//!
//! Two tokenizers are offered, as in char-rnn and torch-rnn:
//!
//! * `char`: one token per Unicode scalar value seen in the corpus, sorted by
//!   code point. Small vocabularies, but the corpus must be valid UTF-8 and
//!   every character to encode must be in the vocabulary.
//! * `byte`: the 256 byte values. Works on any file, never meets an unknown
//!   token, at the cost of longer sequences for non-ASCII text.
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
//! Nothing here panics on bad input: every failure is a [`TextError`] whose
//! message is one line naming the problem and, where there is one, the file.

mod corpus;
mod error;
mod stream;
mod tokenizer;
mod vocab;

pub use corpus::{Corpus, Document};
pub use error::TextError;
pub use stream::StreamDecoder;
pub use tokenizer::{Tokenizer, TokenizerKind, DOC_BOUNDARY};
pub use vocab::{byte_token, Vocab};
