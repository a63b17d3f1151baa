//! The `bpe` tokenizer: a byte-level BPE (as in GPT-2) trained on the corpus
//! with Hugging Face's `tokenizers` library.
//!
//! Byte-level means the merges work on UTF-8 bytes, each byte spelled as one
//! of 256 printable characters (GPT-2's byte alphabet, so `Ġ` is a space), and
//! all 256 are in every vocabulary: any text encodes without an unknown token,
//! and decoding gives back its bytes exactly. There is no normalizer and no
//! prefix space, so nothing about the text is changed on the way in.
//!
//! The library owns training, encoding and the `tokenizer.json` format, which
//! Python's `tokenizers` loads as it is. Decoding is done here from each
//! token's bytes, so the streaming decoder can hold back a character split
//! across tokens exactly as it does for the byte tokenizer; tests check it
//! agrees with the library's own decoder.

use std::fmt;

use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::AddedToken;

use crate::tokenizer::Piece;
use crate::{TextError, TokenizerKind, TokenizerOptions, DEFAULT_BPE_VOCAB_SIZE, DOC_BOUNDARY};

/// Text is encoded (and trained on) in pieces of about this many bytes, cut
/// where the result cannot change (see [`chunks`]): it bounds the library's
/// per-call memory and lets it use several threads on one big file.
const CHUNK_BYTES: usize = 1 << 18;

/// A trained or loaded byte-level BPE tokenizer and the bytes of its tokens.
#[derive(Clone)]
pub(crate) struct Bpe {
    tk: tokenizers::Tokenizer,
    /// Token strings in id order.
    tokens: Vec<String>,
    /// What each id decodes to; `Piece::Bytes` spans index `bytes`.
    pieces: Vec<Piece>,
    /// The bytes of all non-special tokens, one after another.
    bytes: Vec<u8>,
}

impl fmt::Debug for Bpe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The library's Debug prints every merge.
        f.debug_struct("Bpe")
            .field("vocab_size", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

impl Bpe {
    /// Trains on the documents' text. The vocabulary is the 256 byte tokens,
    /// `<doc>` when there are several documents, and merges until
    /// `options.vocab_size` tokens (fewer if the text runs out of pairs seen
    /// at least `options.min_count` times).
    pub(crate) fn train(texts: &[&str], options: &TokenizerOptions) -> Result<Bpe, TextError> {
        let text_bytes = texts.iter().map(|t| t.len()).sum();
        let pieces = texts.iter().flat_map(|t| chunks(t, CHUNK_BYTES));
        Bpe::train_on_pieces(pieces, texts.len() > 1, text_bytes, options)
    }

    /// [`Bpe::train`] on text given as pieces cut where the result cannot
    /// change (before whitespace that follows a word, as [`chunks`] cuts), so
    /// a corpus larger than memory streams through: the library keeps only
    /// the counts of distinct pre-tokenized words.
    pub(crate) fn train_on_pieces<S: AsRef<str> + Send>(
        pieces: impl Iterator<Item = S> + Send,
        several_docs: bool,
        text_bytes: usize,
        options: &TokenizerOptions,
    ) -> Result<Bpe, TextError> {
        let special: Vec<AddedToken> = if several_docs {
            vec![AddedToken::from(DOC_BOUNDARY, true)]
        } else {
            Vec::new()
        };
        let size = options.vocab_size.unwrap_or(DEFAULT_BPE_VOCAB_SIZE);
        let min = 256 + special.len();
        if size < min {
            return Err(TextError::VocabTooSmall {
                kind: TokenizerKind::Bpe,
                size,
                min,
            });
        }
        let size = options.bpe_vocab_size(text_bytes);
        let mut tk = tokenizers::Tokenizer::new(BPE::default());
        let byte_level = byte_level();
        tk.with_pre_tokenizer(Some(byte_level));
        tk.with_decoder(Some(byte_level));
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .vocab_size(size)
            .min_frequency(options.min_count as u64)
            .show_progress(false)
            .special_tokens(special)
            // Every byte is a token even if the corpus lacks it, so any text encodes.
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build()
            .into();
        tk.train(&mut trainer, pieces)
            .map_err(|source| TextError::Bpe {
                action: "train",
                source,
            })?;
        Bpe::new(tk)
    }

    /// Loads a `tokenizer.json` written by [`Bpe::to_json`] (or by Python's
    /// `tokenizers`, if it is set up the same way).
    pub(crate) fn from_json(json: &str) -> Result<Bpe, TextError> {
        // The tokenizers crate panics on some malformed files (a syntax
        // error inside an untagged component): it only sees valid JSON.
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| TextError::TokenizerJsonParse {
                source: Box::new(e),
            })?;
        check_component_types(&value).map_err(|reason| TextError::TokenizerJson { reason })?;
        let tk: tokenizers::Tokenizer = json
            .parse()
            .map_err(|source: tokenizers::Error| TextError::TokenizerJsonParse { source })?;
        Bpe::new(tk)
    }

    /// Checks the library tokenizer is one whose round trip is exact, then
    /// lists its tokens and their bytes.
    fn new(mut tk: tokenizers::Tokenizer) -> Result<Bpe, TextError> {
        check_pipeline(&tk).map_err(|reason| TextError::TokenizerJson { reason })?;
        // A literal "<doc>" in the text is ordinary text; only document ends
        // produce the boundary token. This setting is not saved in the JSON.
        tk.set_encode_special_tokens(true);

        let invalid = |reason: String| TextError::TokenizerJson { reason };
        let by_token = tk.get_vocab(true);
        let mut tokens: Vec<Option<String>> = vec![None; by_token.len()];
        for (token, id) in by_token {
            match tokens.get_mut(id as usize) {
                Some(slot @ None) => *slot = Some(token),
                _ => {
                    return Err(invalid(format!(
                        "token ids are not 0..{} without gaps (id {id} is {token:?})",
                        tokens.len()
                    )))
                }
            }
        }
        let tokens: Vec<String> = tokens.into_iter().flatten().collect();
        let added = tk.get_added_tokens_decoder();
        let mut pieces = Vec::with_capacity(tokens.len());
        let mut bytes = Vec::new();
        for (id, token) in tokens.iter().enumerate() {
            if let Some(a) = added.get(&(id as u32)) {
                if !a.special {
                    // Added non-special tokens bypass the byte alphabet.
                    return Err(invalid(format!(
                        "token {id} ({token:?}) is an added token that is not special"
                    )));
                }
                pieces.push(Piece::Special);
                continue;
            }
            let start = bytes.len();
            for c in token.chars() {
                bytes.push(byte_of(c).ok_or_else(|| {
                    invalid(format!(
                        "token {id} ({token:?}) is not spelled in the byte-level alphabet"
                    ))
                })?);
            }
            pieces.push(Piece::Bytes {
                start: start as u32,
                end: bytes.len() as u32,
            });
        }
        if u32::try_from(bytes.len()).is_err() {
            return Err(invalid("its tokens are too long altogether".to_string()));
        }
        Ok(Bpe {
            tk,
            tokens,
            pieces,
            bytes,
        })
    }

    /// The `tokenizer.json` text, readable by Python's `tokenizers`.
    pub(crate) fn to_json(&self) -> String {
        match self.tk.to_string(true) {
            Ok(json) => json,
            // Serializing plain data cannot fail; if the library ever says
            // otherwise, an unloadable file is better than a crash mid-save.
            Err(e) => format!("{{\"error\": {:?}}}", e.to_string()),
        }
    }

    /// Token strings in id order, as the library spells them.
    pub(crate) fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// What each id decodes to.
    pub(crate) fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The bytes behind a `Piece::Bytes` span.
    pub(crate) fn bytes(&self, start: u32, end: u32) -> &[u8] {
        self.bytes.get(start as usize..end as usize).unwrap_or(&[])
    }

    /// Appends the ids of `text` to `ids`.
    pub(crate) fn encode_into(&self, text: &str, ids: &mut Vec<u32>) -> Result<(), TextError> {
        self.encode_chunked(text, CHUNK_BYTES, ids)
    }

    fn encode_chunked(
        &self,
        text: &str,
        chunk_bytes: usize,
        ids: &mut Vec<u32>,
    ) -> Result<(), TextError> {
        if text.is_empty() {
            return Ok(());
        }
        let encodings = self
            .tk
            .encode_batch_fast(chunks(text, chunk_bytes), false)
            .map_err(|source| TextError::Bpe {
                action: "encode",
                source,
            })?;
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
        }
        Ok(())
    }
}

/// The pre-tokenizer and decoder of an exact byte-level BPE: GPT-2's split
/// regex, and no prefix space (it would add a space to the text).
fn byte_level() -> ByteLevel {
    ByteLevel::new(false, true, true)
}

/// Why a library tokenizer would not round-trip text exactly, if it would not.
/// The pipeline's components by the `type` they name, checked before the
/// `tokenizers` crate parses the file: it panics on some malformed components
/// (found by fuzzing: an untagged component it `expect`s to parse), so
/// anything but the components [`check_pipeline`] accepts is refused here.
fn check_component_types(json: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value;
    let Value::Object(root) = json else {
        return Err("it is not a JSON object".into());
    };
    // Each component: its key, the types accepted, what is wrong otherwise
    // (in check_pipeline's words).
    let expected: [(&str, &[&str], &str); 5] = [
        ("model", &["BPE"], "its model is not BPE"),
        (
            "normalizer",
            &[],
            "it has a normalizer, which would change the text",
        ),
        (
            "pre_tokenizer",
            &["ByteLevel"],
            "its pre-tokenizer is not byte-level",
        ),
        ("decoder", &["ByteLevel"], "its decoder is not byte-level"),
        (
            "post_processor",
            &["ByteLevel"],
            "its post-processor is not byte-level",
        ),
    ];
    for (key, types, wrong) in expected {
        let kind = match root.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::Object(o)) => o.get("type").and_then(Value::as_str),
            Some(_) => None,
        };
        match kind {
            Some(kind) if types.contains(&kind) => {}
            Some(kind) => return Err(format!("{wrong} ({kind})")),
            None => return Err(format!("{wrong} (no \"type\" named)")),
        }
    }
    Ok(())
}

fn check_pipeline(tk: &tokenizers::Tokenizer) -> Result<(), String> {
    match tk.get_model() {
        ModelWrapper::BPE(bpe) => {
            if bpe.dropout.is_some() {
                return Err("its BPE uses dropout, so encoding is random".into());
            }
            if bpe.continuing_subword_prefix.is_some() || bpe.end_of_word_suffix.is_some() {
                return Err("its BPE marks word pieces with a prefix or suffix".into());
            }
            if bpe.byte_fallback {
                return Err("its BPE uses byte fallback instead of a byte-level alphabet".into());
            }
        }
        _ => return Err("its model is not BPE".into()),
    }
    if tk.get_normalizer().is_some() {
        return Err("it has a normalizer, which would change the text".into());
    }
    match tk.get_pre_tokenizer() {
        Some(PreTokenizerWrapper::ByteLevel(b)) if !b.add_prefix_space && b.use_regex => {}
        Some(PreTokenizerWrapper::ByteLevel(_)) => {
            return Err(
                "its byte-level pre-tokenizer adds a prefix space or skips the split regex".into(),
            )
        }
        _ => return Err("its pre-tokenizer is not byte-level".into()),
    }
    if !matches!(tk.get_decoder(), Some(DecoderWrapper::ByteLevel(_))) {
        return Err("its decoder is not byte-level".into());
    }
    if !matches!(
        tk.get_post_processor(),
        None | Some(PostProcessorWrapper::ByteLevel(_))
    ) {
        return Err("its post-processor is not byte-level".into());
    }
    if tk.get_truncation().is_some() || tk.get_padding().is_some() {
        return Err("it truncates or pads".into());
    }
    Ok(())
}

/// The byte that a character of GPT-2's byte-level alphabet stands for.
///
/// The alphabet keeps the 188 printable bytes as themselves and maps the 68
/// others, in increasing order, to U+0100..=U+0143. The library keeps this
/// table private; a test checks this one against it.
pub(crate) fn byte_of(c: char) -> Option<u8> {
    let u = u32::from(c);
    let b = match u {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => u,
        // Bytes 0..=32: controls and space.
        0x100..=0x120 => u - 0x100,
        // Bytes 127..=160: DEL, C1 controls, no-break space.
        0x121..=0x142 => u - 0x121 + 0x7F,
        // Byte 173: soft hyphen.
        0x143 => 0xAD,
        _ => return None,
    };
    u8::try_from(b).ok()
}

/// Splits `text` into pieces of about `target` bytes that encode to the same
/// ids separately as together.
///
/// Cuts go only between a non-whitespace char and a whitespace char. The
/// byte-level split regex (`'s|'t|…| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`)
/// never matches across such a point: its non-whitespace alternatives can
/// only start with whitespace, its whitespace ones hold nothing else. And the
/// one lookahead, at the end of a whitespace run, sees the same next char,
/// since every piece ends in non-whitespace. BPE merges never cross split
/// pieces, so the ids are the same. A text with no such point is one piece.
pub(crate) fn chunks(text: &str, target: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > target {
        let mut start = target;
        while !rest.is_char_boundary(start) {
            start += 1;
        }
        let mut prev = rest[..start].chars().next_back();
        let mut cut = None;
        for (i, c) in rest[start..].char_indices() {
            if c.is_whitespace() && prev.is_some_and(|p| !p.is_whitespace()) {
                cut = Some(start + i);
                break;
            }
            prev = Some(c);
        }
        let Some(cut) = cut else { break };
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use tokenizers::Decoder;

    #[test]
    fn byte_alphabet_matches_the_library() {
        let alphabet = ByteLevel::alphabet();
        assert_eq!(alphabet.len(), 256);
        let bytes: HashSet<u8> = alphabet.iter().map(|&c| byte_of(c).unwrap()).collect();
        assert_eq!(bytes.len(), 256, "two characters map to the same byte");
        // Outside the alphabet there is nothing.
        for c in ['\0', ' ', '\n', '\u{144}', '中', '😀'] {
            assert!(!alphabet.contains(&c));
            assert_eq!(byte_of(c), None, "{c:?}");
        }
        // The library's decoder agrees on every byte of every valid 1- and
        // 2-byte sequence and of 3- and 4-byte ones over all lead bytes.
        let spell = |bs: &[u8]| -> String {
            bs.iter()
                .map(|&b| *alphabet.iter().find(|&&c| byte_of(c) == Some(b)).unwrap())
                .collect()
        };
        let decoder = byte_level();
        let mut seqs: Vec<Vec<u8>> = (0u8..0x80).map(|b| vec![b]).collect();
        for lead in 0xC2..=0xDFu8 {
            for cont in 0x80..=0xBFu8 {
                seqs.push(vec![lead, cont]);
            }
        }
        for lead in 0xE1..=0xECu8 {
            seqs.push(vec![lead, 0x80, 0xBF]);
        }
        for lead in 0xF1..=0xF3u8 {
            seqs.push(vec![lead, 0x8F, 0x80, 0xBF]);
        }
        seqs.push("中😀".as_bytes().to_vec());
        for seq in seqs {
            let want = std::str::from_utf8(&seq).unwrap();
            let got = decoder.decode(vec![spell(&seq)]).unwrap();
            assert_eq!(got, want, "{seq:X?}");
        }
    }

    #[test]
    fn chunked_encoding_equals_whole_encoding() {
        let line = "It's 1999 — the cat's  mat\t\n \n a \nfoo 中文字 😀👍🏽 x\u{A0}y \r\n\
                    don't!! ...   \n\n\tend,of;line\u{3000}全角 \u{2028}sep\n";
        let text = line.repeat(20);
        let options = TokenizerOptions {
            vocab_size: Some(400),
            ..TokenizerOptions::default()
        };
        let bpe = Bpe::train(&[&text], &options).unwrap();
        let whole = bpe.tk.encode_fast(text.as_str(), false).unwrap();
        for chunk_bytes in [1, 2, 3, 5, 8, 13, 64, 1000] {
            let mut ids = Vec::new();
            bpe.encode_chunked(&text, chunk_bytes, &mut ids).unwrap();
            assert_eq!(ids, whole.get_ids(), "chunks of {chunk_bytes}");
        }
    }

    #[test]
    fn an_absurd_vocabulary_size_is_capped_at_what_the_text_can_produce() {
        // The trainer sizes its tables for the whole vocabulary: 4e9 tokens
        // asked of 20 bytes of text once aborted on a 283 GB allocation.
        let text = "the cat sat on the mat";
        let options = TokenizerOptions {
            vocab_size: Some(4_000_000_000),
            ..TokenizerOptions::default()
        };
        assert_eq!(options.bpe_vocab_size(text.len()), 257 + text.len());
        let bpe = Bpe::train(&[text], &options).unwrap();
        assert!(bpe.tokens.len() <= 256 + text.len(), "{bpe:?}");
    }

    #[test]
    fn chunks_cut_only_before_whitespace_after_a_word() {
        let text = "ab  cd\nef\n\n gh";
        for target in 0..=text.len() {
            let parts = chunks(text, target);
            assert_eq!(parts.concat(), text, "target {target}");
            for w in parts.windows(2) {
                let last = w[0].chars().next_back().unwrap();
                let first = w[1].chars().next().unwrap();
                assert!(!last.is_whitespace() && first.is_whitespace(), "{parts:?}");
            }
        }
        assert_eq!(chunks("", 4), Vec::<&str>::new());
        assert_eq!(chunks("nospaceatall", 2), ["nospaceatall"]);
        // Never cuts inside a multi-byte char.
        assert_eq!(chunks("中文 字", 1), ["中文", " 字"]);
    }
}
