//! The tokenizer: building a vocabulary from a corpus, encoding text to ids
//! and decoding ids to text. Char and byte live here; word and BPE have their
//! own modules ([`crate::word`], [`crate::bpe`]) and are dispatched from here.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::bpe::Bpe;
use crate::vocab::byte_token;
use crate::word::{self, WordCodec};
use crate::{Corpus, StreamDecoder, TextError, TokenizerOptions, Vocab, WordSegmentation};

/// The special token placed between documents when a corpus has several.
pub const DOC_BOUNDARY: &str = "<doc>";

/// Which unit of text a token stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerKind {
    /// One token per Unicode scalar value (char-rnn style).
    Char,
    /// One token per byte; works on any input.
    Byte,
    /// One token per word, `<eos>` per newline, `<unk>` for rare words.
    Word,
    /// Byte-level BPE trained on the corpus (Hugging Face `tokenizers`).
    Bpe,
}

impl TokenizerKind {
    /// The name used on the command line and in saved configs.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenizerKind::Char => "char",
            TokenizerKind::Byte => "byte",
            TokenizerKind::Word => "word",
            TokenizerKind::Bpe => "bpe",
        }
    }

    /// Whether the text must be UTF-8 (every kind but `byte`).
    pub fn needs_utf8(self) -> bool {
        self != TokenizerKind::Byte
    }
}

impl fmt::Display for TokenizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenizerKind {
    type Err = TextError;

    fn from_str(s: &str) -> Result<Self, TextError> {
        match s {
            "char" => Ok(TokenizerKind::Char),
            "byte" => Ok(TokenizerKind::Byte),
            "word" => Ok(TokenizerKind::Word),
            "bpe" => Ok(TokenizerKind::Bpe),
            _ => Err(TextError::UnknownTokenizer {
                name: s.to_string(),
            }),
        }
    }
}

/// What one token id decodes to, as stored (see [`PieceRef`] for the data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    Char(char),
    Byte(u8),
    /// A word: the token string itself.
    Word,
    /// The end of a line: a newline.
    Eos,
    /// A BPE token: a span of the BPE tokenizer's byte buffer.
    Bytes {
        start: u32,
        end: u32,
    },
    /// A special token such as [`DOC_BOUNDARY`]: decodes to nothing.
    Special,
}

/// What one token id decodes to, with the word or bytes borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PieceRef<'a> {
    Char(char),
    Byte(u8),
    Word(&'a str),
    Eos,
    Bytes(&'a [u8]),
    Special,
}

/// Marks an ASCII char absent from the vocabulary in the fast lookup table.
const NO_ID: u32 = u32::MAX;

/// A vocabulary together with the rule that maps text onto it.
#[derive(Clone, Debug)]
pub struct Tokenizer {
    kind: TokenizerKind,
    vocab: Vocab,
    /// `pieces[id]` is what `id` decodes to, so decoding never parses strings.
    pieces: Vec<Piece>,
    /// Char mode: ids of ASCII chars by code, the common case without hashing.
    ascii_ids: [u32; 128],
    /// Char mode: ids of all other chars.
    char_ids: HashMap<char, u32>,
    /// Word mode: segmentation and the ids of `<unk>` and `<eos>`.
    word: Option<WordCodec>,
    /// BPE mode: the library tokenizer (boxed: it is large and often absent).
    bpe: Option<Box<Bpe>>,
}

impl Tokenizer {
    /// Builds the vocabulary of `kind` from a corpus with default options
    /// (see [`Tokenizer::build_with`]).
    pub fn build(kind: TokenizerKind, corpus: &Corpus) -> Result<Tokenizer, TextError> {
        Tokenizer::build_with(kind, corpus, &TokenizerOptions::default())
    }

    /// Builds the vocabulary of `kind` from a corpus.
    ///
    /// Char: the distinct chars of all documents sorted by code point, plus
    /// [`DOC_BOUNDARY`] at the end when there is more than one document; the
    /// corpus must be valid UTF-8. Byte: the 256 byte tokens (id = byte value),
    /// plus [`DOC_BOUNDARY`] (id 256) when there is more than one document.
    ///
    /// Word: [`UNK`](crate::UNK), [`EOS`](crate::EOS), [`DOC_BOUNDARY`] when
    /// there is more than one document, then the words by decreasing count
    /// (ties in byte order), capped by `options.vocab_size` (all tokens
    /// counted) and `options.min_count`. BPE: trains a byte-level BPE of
    /// `options.vocab_size` tokens; its ids are the library's. Word and BPE
    /// need UTF-8. Options a kind has no use for are an error.
    pub fn build_with(
        kind: TokenizerKind,
        corpus: &Corpus,
        options: &TokenizerOptions,
    ) -> Result<Tokenizer, TextError> {
        options.check_applies_to(kind)?;
        if corpus.total_bytes() == 0 {
            return Err(TextError::EmptyCorpus);
        }
        match kind {
            TokenizerKind::Word => {
                let tokens = word::build_vocab(&texts(corpus)?, options)?;
                Tokenizer::from_word_vocab(Vocab::from_tokens(tokens)?, options.word_segmentation)
            }
            TokenizerKind::Bpe => Tokenizer::from_bpe(Bpe::train(&texts(corpus)?, options)?),
            TokenizerKind::Char | TokenizerKind::Byte => {
                let mut tokens = if kind == TokenizerKind::Byte {
                    (0..=255u8).map(byte_token).collect()
                } else {
                    distinct_chars(corpus)?
                };
                if corpus.docs.len() > 1 {
                    tokens.push(DOC_BOUNDARY.to_string());
                }
                Tokenizer::from_vocab(kind, Vocab::from_tokens(tokens)?)
            }
        }
    }

    /// Wraps a saved vocabulary, checking it fits `kind`: a char vocabulary
    /// holds single chars or special `<...>` tokens; a byte vocabulary has the
    /// 256 byte tokens at ids 0..=255 and only special tokens after them; a
    /// word vocabulary is read with whitespace segmentation (see
    /// [`Tokenizer::from_word_vocab`]). A BPE tokenizer cannot be rebuilt
    /// from its token list: use [`Tokenizer::from_tokenizer_json`].
    pub fn from_vocab(kind: TokenizerKind, vocab: Vocab) -> Result<Tokenizer, TextError> {
        match kind {
            TokenizerKind::Word => {
                return Tokenizer::from_word_vocab(vocab, WordSegmentation::Whitespace)
            }
            TokenizerKind::Bpe => return Err(TextError::NeedsTokenizerJson),
            TokenizerKind::Char | TokenizerKind::Byte => {}
        }
        let mut pieces = Vec::with_capacity(vocab.len());
        for (id, token) in vocab.tokens().iter().enumerate() {
            pieces.push(if kind == TokenizerKind::Char {
                char_piece(id, token)?
            } else {
                byte_piece(id, token)?
            });
        }
        if kind == TokenizerKind::Byte && pieces.len() < 256 {
            return Err(TextError::InvalidVocab {
                reason: format!(
                    "a byte vocabulary needs the 256 byte tokens, this one has {} tokens",
                    pieces.len()
                ),
            });
        }
        Ok(Tokenizer::assemble(kind, vocab, pieces, None, None))
    }

    /// Wraps a saved word vocabulary: it must hold [`UNK`](crate::UNK) and
    /// [`EOS`](crate::EOS) and no blank or space-padded token. `<eos>` decodes
    /// to a newline, `<doc>` to nothing, every other token (`<unk>` too) to itself.
    /// `segmentation` must be the one the vocabulary was built with.
    pub fn from_word_vocab(
        vocab: Vocab,
        segmentation: WordSegmentation,
    ) -> Result<Tokenizer, TextError> {
        let codec = WordCodec::new(&vocab, segmentation)?;
        let pieces = vocab
            .tokens()
            .iter()
            .map(|t| match t.as_str() {
                word::EOS => Piece::Eos,
                DOC_BOUNDARY => Piece::Special,
                _ => Piece::Word,
            })
            .collect();
        Ok(Tokenizer::assemble(
            TokenizerKind::Word,
            vocab,
            pieces,
            Some(codec),
            None,
        ))
    }

    /// Loads a BPE tokenizer from the text of its `tokenizer.json` (as
    /// written by [`Tokenizer::to_tokenizer_json`]). It must be a byte-level
    /// BPE with no normalizer, no prefix space and a byte-level decoder, so
    /// that decoding is exact; anything else is [`TextError::TokenizerJson`].
    pub fn from_tokenizer_json(json: &str) -> Result<Tokenizer, TextError> {
        Tokenizer::from_bpe(Bpe::from_json(json)?)
    }

    pub(crate) fn from_bpe(bpe: Bpe) -> Result<Tokenizer, TextError> {
        let vocab = Vocab::from_tokens(bpe.tokens().to_vec())?;
        let pieces = bpe.pieces().to_vec();
        Ok(Tokenizer::assemble(
            TokenizerKind::Bpe,
            vocab,
            pieces,
            None,
            Some(Box::new(bpe)),
        ))
    }

    fn assemble(
        kind: TokenizerKind,
        vocab: Vocab,
        pieces: Vec<Piece>,
        word: Option<WordCodec>,
        bpe: Option<Box<Bpe>>,
    ) -> Tokenizer {
        let mut tok = Tokenizer {
            kind,
            vocab,
            pieces: Vec::with_capacity(pieces.len()),
            ascii_ids: [NO_ID; 128],
            char_ids: HashMap::new(),
            word,
            bpe,
        };
        for (id, piece) in pieces.into_iter().enumerate() {
            tok.add_piece(id as u32, piece);
        }
        tok
    }

    /// The `tokenizer.json` of a BPE tokenizer (store it beside vocab.json;
    /// Python's `tokenizers.Tokenizer.from_str` reads it); `None` for the
    /// other kinds, which vocab.json describes fully.
    pub fn to_tokenizer_json(&self) -> Option<String> {
        self.bpe.as_ref().map(|b| b.to_json())
    }

    /// How a word tokenizer splits lines into words; `None` for other kinds.
    /// Save it with the vocabulary and give it back to [`Tokenizer::from_word_vocab`].
    pub fn word_segmentation(&self) -> Option<WordSegmentation> {
        self.word.map(|w| w.segmentation)
    }

    /// Records what `id` decodes to and, for chars, how to encode it.
    fn add_piece(&mut self, id: u32, piece: Piece) {
        debug_assert_eq!(id as usize, self.pieces.len());
        if let Piece::Char(c) = piece {
            if c.is_ascii() {
                self.ascii_ids[c as usize] = id;
            } else {
                self.char_ids.insert(c, id);
            }
        }
        self.pieces.push(piece);
    }

    /// Char, byte, word or BPE.
    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }

    /// The vocabulary (save it with [`Vocab::to_json`]).
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The id of [`DOC_BOUNDARY`], if the vocabulary has it as a special token.
    pub fn boundary(&self) -> Option<u32> {
        // A BPE could in principle learn the text "<doc>" as an ordinary token.
        self.vocab
            .id(DOC_BOUNDARY)
            .filter(|&id| self.pieces.get(id as usize) == Some(&Piece::Special))
    }

    /// The id that encodes a lone newline, if one token does: what generation
    /// can start from when there is no boundary token. Word: `<eos>`.
    pub fn newline(&self) -> Option<u32> {
        match self.kind {
            TokenizerKind::Word => self.word.map(|w| w.eos),
            _ => match self.encode("\n").ok()?.as_slice() {
                [id] => Some(*id),
                _ => None,
            },
        }
    }

    /// What `id` decodes to, or `None` when it is out of range.
    pub(crate) fn piece(&self, id: u32) -> Option<PieceRef<'_>> {
        Some(match *self.pieces.get(id as usize)? {
            Piece::Char(c) => PieceRef::Char(c),
            Piece::Byte(b) => PieceRef::Byte(b),
            Piece::Word => PieceRef::Word(self.vocab.token(id)?),
            Piece::Eos => PieceRef::Eos,
            Piece::Bytes { start, end } => PieceRef::Bytes(self.bpe.as_ref()?.bytes(start, end)),
            Piece::Special => PieceRef::Special,
        })
    }

    /// The id of a char in char mode.
    fn char_id(&self, c: char) -> Option<u32> {
        if c.is_ascii() {
            Some(self.ascii_ids[c as usize]).filter(|&id| id != NO_ID)
        } else {
            self.char_ids.get(&c).copied()
        }
    }

    /// Encodes text. In char mode every char must be in the vocabulary, else
    /// [`TextError::UnknownChars`] lists the missing ones. Special token
    /// strings in the text (such as a literal `<doc>`) are plain text: chars
    /// in char mode, bytes in byte and BPE mode, `<unk>` in word mode (where
    /// only a literal `<unk>` means the unknown word). Word, byte and BPE
    /// encoding never meet an unknown token.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TextError> {
        let mut ids = Vec::with_capacity(text.len());
        let mut missing = BTreeSet::new();
        self.encode_text(text, &mut ids, &mut missing)?;
        if !missing.is_empty() {
            return Err(TextError::UnknownChars {
                chars: missing.into_iter().collect(),
                origin: "text".to_string(),
            });
        }
        Ok(ids)
    }

    /// Encodes raw bytes: any bytes in byte mode; valid UTF-8 in the other
    /// modes (else [`TextError::InvalidUtf8`] with the offset of the first bad byte).
    pub fn encode_bytes(&self, bytes: &[u8]) -> Result<Vec<u32>, TextError> {
        if self.kind == TokenizerKind::Byte {
            return Ok(bytes.iter().map(|&b| u32::from(b)).collect());
        }
        let text = std::str::from_utf8(bytes).map_err(|e| TextError::InvalidUtf8 {
            name: "text".to_string(),
            offset: e.valid_up_to(),
        })?;
        self.encode(text)
    }

    /// Encodes a whole corpus: the documents in order, with the boundary
    /// token between consecutive documents when the vocabulary has one.
    /// An error names the files that are not UTF-8 (all modes but byte) or
    /// that hold characters missing from the vocabulary (char mode).
    pub fn encode_corpus(&self, corpus: &Corpus) -> Result<Vec<u32>, TextError> {
        let texts = if self.kind.needs_utf8() {
            texts(corpus)?
        } else {
            Vec::new()
        };
        let boundary = self.boundary();
        let mut ids = Vec::with_capacity(corpus.total_bytes() + corpus.docs.len());
        let mut missing = BTreeSet::new();
        let mut bad_docs = Vec::new();
        for (i, doc) in corpus.docs.iter().enumerate() {
            if i > 0 {
                if let Some(b) = boundary {
                    ids.push(b);
                }
            }
            let Some(text) = texts.get(i) else {
                // Byte mode: no text needed.
                ids.extend(doc.bytes.iter().map(|&b| u32::from(b)));
                continue;
            };
            let mut doc_missing = BTreeSet::new();
            self.encode_text(text, &mut ids, &mut doc_missing)?;
            if !doc_missing.is_empty() {
                bad_docs.push(doc.name.as_str());
                missing.append(&mut doc_missing);
            }
        }
        if missing.is_empty() {
            return Ok(ids);
        }
        let origin = match bad_docs.as_slice() {
            [one] => one.to_string(),
            [first, rest @ ..] => format!(
                "{first} (and {} other file{})",
                rest.len(),
                if rest.len() == 1 { "" } else { "s" }
            ),
            [] => "the corpus".to_string(),
        };
        Err(TextError::UnknownChars {
            chars: missing.into_iter().collect(),
            origin,
        })
    }

    /// Appends the ids of `text` to `ids`; in char mode, chars not in the
    /// vocabulary go into `missing` instead.
    fn encode_text(
        &self,
        text: &str,
        ids: &mut Vec<u32>,
        missing: &mut BTreeSet<char>,
    ) -> Result<(), TextError> {
        match (self.kind, self.word, &self.bpe) {
            (TokenizerKind::Byte, _, _) => ids.extend(text.bytes().map(u32::from)),
            (TokenizerKind::Char, _, _) => {
                for c in text.chars() {
                    match self.char_id(c) {
                        Some(id) => ids.push(id),
                        None => {
                            missing.insert(c);
                        }
                    }
                }
            }
            (TokenizerKind::Word, Some(word), _) => word.encode_into(&self.vocab, text, ids),
            (TokenizerKind::Bpe, _, Some(bpe)) => bpe.encode_into(text, ids)?,
            // Every constructor sets the codec of its kind.
            (TokenizerKind::Word | TokenizerKind::Bpe, _, _) => {
                return Err(TextError::InvalidVocab {
                    reason: format!("the {} tokenizer has no model", self.kind),
                })
            }
        }
        Ok(())
    }

    /// The chars of the corpus that the vocabulary lacks, sorted; char mode
    /// only. The others never lack anything: byte and BPE cover every byte,
    /// and word mode encodes unknown words as `<unk>`. Invalid UTF-8 counts
    /// as U+FFFD, so check [`Corpus::check_utf8`] first for a precise error.
    pub fn missing_chars(&self, corpus: &Corpus) -> Vec<char> {
        if self.kind != TokenizerKind::Char {
            return Vec::new();
        }
        let mut missing = BTreeSet::new();
        for doc in &corpus.docs {
            for c in String::from_utf8_lossy(&doc.bytes).chars() {
                if self.char_id(c).is_none() {
                    missing.insert(c);
                }
            }
        }
        missing.into_iter().collect()
    }

    /// Extends a char vocabulary (for fine-tuning on new text):
    /// each new char is appended after the existing tokens. Returns the id of
    /// every char given, in order; chars already present keep their id.
    /// Other kinds cannot grow ([`TextError::CannotExtend`]): see
    /// [`Tokenizer::missing_chars`] for why they need not.
    pub fn extend(&mut self, chars: &[char]) -> Result<Vec<u32>, TextError> {
        if self.kind != TokenizerKind::Char {
            return Err(TextError::CannotExtend { kind: self.kind });
        }
        let mut ids = Vec::with_capacity(chars.len());
        for &c in chars {
            let id = match self.char_id(c) {
                Some(id) => id,
                None => {
                    let id = self.vocab.push(c.to_string())?;
                    self.add_piece(id, Piece::Char(c));
                    id
                }
            };
            ids.push(id);
        }
        Ok(ids)
    }

    /// Decodes ids to text. Byte and BPE mode decode the bytes as UTF-8,
    /// replacing invalid sequences with U+FFFD, so ids from valid text give
    /// it back byte for byte. Word mode joins the words of a line with single
    /// spaces and turns `<eos>` into a newline (`<unk>` stays `<unk>`).
    /// Special tokens, [`DOC_BOUNDARY`] included, decode to nothing; an id
    /// outside the vocabulary decodes to U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        // One code path for batch and streaming, so they always agree.
        let mut decoder = self.decoder();
        let mut out = String::with_capacity(ids.len());
        for &id in ids {
            out.push_str(&decoder.push(id));
        }
        out.push_str(&decoder.finish());
        out
    }

    /// A decoder for streaming output one token at a time.
    pub fn decoder(&self) -> StreamDecoder<'_> {
        StreamDecoder::new(self)
    }

    /// The number of chars that `ids` decode to: for bits per character,
    /// divide the total loss in bits by this. For char, byte and BPE ids
    /// encoded from a text it is that text's char count (boundary tokens
    /// add none), so models with different tokenizers compare; for word ids
    /// it counts the normalized text (single spaces, `<unk>` as 5 chars).
    pub fn chars_in(&self, ids: &[u32]) -> usize {
        let mut decoder = self.decoder();
        let mut n = 0;
        for &id in ids {
            n += decoder.push(id).chars().count();
        }
        n + decoder.finish().chars().count()
    }
}

/// The distinct chars of a UTF-8 corpus as tokens, sorted by code point.
fn distinct_chars(corpus: &Corpus) -> Result<Vec<String>, TextError> {
    let mut ascii = [false; 128];
    let mut other = BTreeSet::new();
    for text in texts(corpus)? {
        for c in text.chars() {
            if c.is_ascii() {
                ascii[c as usize] = true;
            } else {
                other.insert(c);
            }
        }
    }
    // ASCII sorts before every other code point.
    let ascii = (0u8..128).filter(|&b| ascii[b as usize]).map(char::from);
    Ok(ascii.chain(other).map(String::from).collect())
}

/// What token `id` of a char vocabulary decodes to.
fn char_piece(id: usize, token: &str) -> Result<Piece, TextError> {
    let mut chars = token.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(Piece::Char(c)),
        _ if is_special(token) => Ok(Piece::Special),
        _ => Err(TextError::InvalidVocab {
            reason: format!(
                "char token {id} ({token:?}) is neither a single \
                 character nor a special <...> token"
            ),
        }),
    }
}

/// What token `id` of a byte vocabulary decodes to.
fn byte_piece(id: usize, token: &str) -> Result<Piece, TextError> {
    if let Ok(b) = u8::try_from(id) {
        let expected = byte_token(b);
        if token != expected {
            return Err(TextError::InvalidVocab {
                reason: format!("byte token {id} is {token:?}, expected {expected:?}"),
            });
        }
        Ok(Piece::Byte(b))
    } else if is_special(token) {
        Ok(Piece::Special)
    } else {
        Err(TextError::InvalidVocab {
            reason: format!(
                "byte token {id} ({token:?}) is past the 256 bytes but \
                 not a special <...> token"
            ),
        })
    }
}

/// The documents' text; an error names the first one that is not UTF-8.
fn texts(corpus: &Corpus) -> Result<Vec<&str>, TextError> {
    corpus
        .docs
        .iter()
        .map(|d| {
            std::str::from_utf8(&d.bytes).map_err(|e| TextError::InvalidUtf8 {
                name: d.name.clone(),
                offset: e.valid_up_to(),
            })
        })
        .collect()
}

/// Special tokens look like `<name>`: at least one char between the brackets.
fn is_special(token: &str) -> bool {
    token.len() > 2 && token.starts_with('<') && token.ends_with('>')
}
