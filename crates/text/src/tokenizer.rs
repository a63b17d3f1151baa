//! The char and byte tokenizers: building a vocabulary from a corpus,
//! encoding text to ids and decoding ids to text.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::vocab::byte_token;
use crate::{Corpus, StreamDecoder, TextError, Vocab};

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
}

impl TokenizerKind {
    /// The name used on the command line and in saved configs.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenizerKind::Char => "char",
            TokenizerKind::Byte => "byte",
        }
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
            _ => Err(TextError::UnknownTokenizer {
                name: s.to_string(),
            }),
        }
    }
}

/// What one token id decodes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    Char(char),
    Byte(u8),
    /// A special token such as [`DOC_BOUNDARY`]: decodes to nothing.
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
}

impl Tokenizer {
    /// Builds the vocabulary of `kind` from a corpus.
    ///
    /// Char: the distinct chars of all documents sorted by code point, plus
    /// [`DOC_BOUNDARY`] at the end when there is more than one document; the
    /// corpus must be valid UTF-8. Byte: the 256 byte tokens (id = byte value),
    /// plus [`DOC_BOUNDARY`] (id 256) when there is more than one document.
    pub fn build(kind: TokenizerKind, corpus: &Corpus) -> Result<Tokenizer, TextError> {
        if corpus.total_bytes() == 0 {
            return Err(TextError::EmptyCorpus);
        }
        let mut tokens: Vec<String> = match kind {
            TokenizerKind::Byte => (0..=255u8).map(byte_token).collect(),
            TokenizerKind::Char => {
                corpus.check_utf8()?;
                let mut ascii = [false; 128];
                let mut other = BTreeSet::new();
                for doc in &corpus.docs {
                    // check_utf8 passed, so the lossy conversion borrows and never replaces.
                    for c in String::from_utf8_lossy(&doc.bytes).chars() {
                        if c.is_ascii() {
                            ascii[c as usize] = true;
                        } else {
                            other.insert(c);
                        }
                    }
                }
                // ASCII sorts before every other code point.
                let ascii = (0u8..128).filter(|&b| ascii[b as usize]).map(char::from);
                ascii.chain(other).map(String::from).collect()
            }
        };
        if corpus.docs.len() > 1 {
            tokens.push(DOC_BOUNDARY.to_string());
        }
        Tokenizer::from_vocab(kind, Vocab::from_tokens(tokens)?)
    }

    /// Wraps a saved vocabulary, checking it fits `kind`: a char vocabulary
    /// holds single chars or special `<...>` tokens; a byte vocabulary has the
    /// 256 byte tokens at ids 0..=255 and only special tokens after them.
    pub fn from_vocab(kind: TokenizerKind, vocab: Vocab) -> Result<Tokenizer, TextError> {
        let mut pieces = Vec::with_capacity(vocab.len());
        for (id, token) in vocab.tokens().iter().enumerate() {
            let piece = match kind {
                TokenizerKind::Char => {
                    let mut chars = token.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) => Piece::Char(c),
                        _ if is_special(token) => Piece::Special,
                        _ => {
                            return Err(TextError::InvalidVocab {
                                reason: format!(
                                    "char token {id} ({token:?}) is neither a single \
                                     character nor a special <...> token"
                                ),
                            })
                        }
                    }
                }
                TokenizerKind::Byte if id < 256 => {
                    let expected = byte_token(id as u8);
                    if *token != expected {
                        return Err(TextError::InvalidVocab {
                            reason: format!("byte token {id} is {token:?}, expected {expected:?}"),
                        });
                    }
                    Piece::Byte(id as u8)
                }
                TokenizerKind::Byte if is_special(token) => Piece::Special,
                TokenizerKind::Byte => {
                    return Err(TextError::InvalidVocab {
                        reason: format!(
                            "byte token {id} ({token:?}) is past the 256 bytes but \
                             not a special <...> token"
                        ),
                    })
                }
            };
            pieces.push(piece);
        }
        if kind == TokenizerKind::Byte && pieces.len() < 256 {
            return Err(TextError::InvalidVocab {
                reason: format!(
                    "a byte vocabulary needs the 256 byte tokens, this one has {} tokens",
                    pieces.len()
                ),
            });
        }
        let mut tok = Tokenizer {
            kind,
            vocab,
            pieces: Vec::new(),
            ascii_ids: [NO_ID; 128],
            char_ids: HashMap::new(),
        };
        for (id, piece) in pieces.into_iter().enumerate() {
            tok.add_piece(id as u32, piece);
        }
        Ok(tok)
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

    /// Char vs byte.
    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }

    /// The vocabulary (save it with [`Vocab::to_json`]).
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The id of [`DOC_BOUNDARY`], if the vocabulary has it.
    pub fn boundary(&self) -> Option<u32> {
        self.vocab.id(DOC_BOUNDARY)
    }

    /// What `id` decodes to, or `None` when it is out of range.
    pub(crate) fn piece(&self, id: u32) -> Option<Piece> {
        self.pieces.get(id as usize).copied()
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
    /// strings in the text (such as a literal `<doc>`) are plain characters.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TextError> {
        let mut ids = Vec::with_capacity(text.len());
        let mut missing = BTreeSet::new();
        self.encode_into(text.as_bytes(), Some(text), &mut ids, &mut missing);
        if !missing.is_empty() {
            return Err(TextError::UnknownChars {
                chars: missing.into_iter().collect(),
                origin: "text".to_string(),
            });
        }
        Ok(ids)
    }

    /// Encodes raw bytes: any bytes in byte mode; valid UTF-8 in char mode
    /// (else [`TextError::InvalidUtf8`] with the offset of the first bad byte).
    pub fn encode_bytes(&self, bytes: &[u8]) -> Result<Vec<u32>, TextError> {
        match self.kind {
            TokenizerKind::Byte => Ok(bytes.iter().map(|&b| u32::from(b)).collect()),
            TokenizerKind::Char => {
                let text = std::str::from_utf8(bytes).map_err(|e| TextError::InvalidUtf8 {
                    name: "text".to_string(),
                    offset: e.valid_up_to(),
                })?;
                self.encode(text)
            }
        }
    }

    /// Encodes a whole corpus: the documents in order, with the boundary
    /// token between consecutive documents when the vocabulary has one.
    /// In char mode an error names the files that are not UTF-8 or that hold
    /// characters missing from the vocabulary.
    pub fn encode_corpus(&self, corpus: &Corpus) -> Result<Vec<u32>, TextError> {
        if self.kind == TokenizerKind::Char {
            corpus.check_utf8()?;
        }
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
            let text = std::str::from_utf8(&doc.bytes).ok();
            let mut doc_missing = BTreeSet::new();
            self.encode_into(&doc.bytes, text, &mut ids, &mut doc_missing);
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

    /// Appends the ids of `bytes` to `ids`. In char mode `text` is the same
    /// bytes as a `str` and chars not in the vocabulary go into `missing`.
    fn encode_into(
        &self,
        bytes: &[u8],
        text: Option<&str>,
        ids: &mut Vec<u32>,
        missing: &mut BTreeSet<char>,
    ) {
        match (self.kind, text) {
            (TokenizerKind::Byte, _) => ids.extend(bytes.iter().map(|&b| u32::from(b))),
            (TokenizerKind::Char, Some(text)) => {
                for c in text.chars() {
                    match self.char_id(c) {
                        Some(id) => ids.push(id),
                        None => {
                            missing.insert(c);
                        }
                    }
                }
            }
            // Callers check UTF-8 before encoding in char mode.
            (TokenizerKind::Char, None) => {}
        }
    }

    /// The chars of the corpus that the vocabulary lacks, sorted; always
    /// empty in byte mode. Invalid UTF-8 counts as U+FFFD, so check
    /// [`Corpus::check_utf8`] first for a precise error.
    pub fn missing_chars(&self, corpus: &Corpus) -> Vec<char> {
        if self.kind == TokenizerKind::Byte {
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

    /// Extends a char vocabulary (for fine-tuning with `--extend-vocab`):
    /// each new char is appended after the existing tokens. Returns the id of
    /// every char given, in order; chars already present keep their id.
    pub fn extend(&mut self, chars: &[char]) -> Result<Vec<u32>, TextError> {
        if self.kind == TokenizerKind::Byte {
            return Err(TextError::ExtendByteVocab);
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

    /// Decodes ids to text. Byte mode decodes the bytes as UTF-8, replacing
    /// invalid sequences with U+FFFD. Special tokens, [`DOC_BOUNDARY`]
    /// included, decode to nothing; an id outside the vocabulary decodes to U+FFFD.
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
}

/// Special tokens look like `<name>`: at least one char between the brackets.
fn is_special(token: &str) -> bool {
    token.len() > 2 && token.starts_with('<') && token.ends_with('>')
}
