//! The byte tokenizer and the streaming decoder.

use recurrent_text::{byte_token, Corpus, Document, TextError, Tokenizer, TokenizerKind, Vocab};

fn byte_tok() -> Tokenizer {
    Tokenizer::build(TokenizerKind::Byte, &Corpus::from_text("t", "x")).unwrap()
}

fn two_doc_corpus() -> Corpus {
    Corpus {
        docs: vec![
            Document {
                name: "a".into(),
                bytes: b"one".to_vec(),
            },
            Document {
                name: "b".into(),
                bytes: b"two".to_vec(),
            },
        ],
    }
}

/// Tiny deterministic generator so the random tests need no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Random bytes biased toward UTF-8 lead/continuation bytes so that valid,
/// truncated and invalid sequences are all common.
fn random_bytes(rng: &mut XorShift, n: usize) -> Vec<u8> {
    const PICKS: [u8; 16] = [
        b'a', b'\n', 0x00, 0x7F, 0x80, 0xBF, 0x9F, 0xA0, 0xC0, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0,
        0xF4,
    ];
    (0..n)
        .map(|_| {
            let r = rng.next();
            if r.is_multiple_of(3) {
                (r >> 8) as u8
            } else {
                PICKS[((r >> 8) % 16) as usize]
            }
        })
        .collect()
}

fn stream(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
    let mut dec = tok.decoder();
    let mut pieces: Vec<String> = ids.iter().map(|&id| dec.push(id)).collect();
    pieces.push(dec.finish());
    pieces
}

#[test]
fn vocab_strings_are_as_specified() {
    let tok = byte_tok();
    let tokens = tok.vocab().tokens();
    assert_eq!(tokens.len(), 256);
    assert_eq!(tok.boundary(), None);
    assert_eq!(tokens[b'\n' as usize], "<0x0A>");
    assert_eq!(tokens[b' ' as usize], " ");
    assert_eq!(tokens[b'A' as usize], "A");
    assert_eq!(tokens[b'~' as usize], "~");
    assert_eq!(tokens[0x1F], "<0x1F>");
    assert_eq!(tokens[0x7F], "<0x7F>");
    assert_eq!(tokens[0xAB], "<0xAB>");
    for b in 0..=255u8 {
        assert_eq!(tokens[b as usize], byte_token(b));
    }

    let json: Vec<String> = serde_json::from_str(&tok.vocab().to_json()).unwrap();
    assert_eq!(json.as_slice(), tokens);

    let with_boundary = Tokenizer::build(TokenizerKind::Byte, &two_doc_corpus()).unwrap();
    assert_eq!(with_boundary.vocab().len(), 257);
    assert_eq!(with_boundary.boundary(), Some(256));
    assert_eq!(with_boundary.vocab().tokens()[256], "<doc>");
}

#[test]
fn arbitrary_bytes_round_trip() {
    let tok = byte_tok();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let all: Vec<u8> = (0..=255u8).collect();
    for bytes in [
        all,
        random_bytes(&mut rng, 5000),
        b"\xFF\xFE\x00caf\xE9".to_vec(),
    ] {
        let ids = tok.encode_bytes(&bytes).unwrap();
        let back: Vec<u8> = ids.iter().map(|&id| u8::try_from(id).unwrap()).collect();
        assert_eq!(back, bytes, "ids are the byte values");
        assert_eq!(tok.decode(&ids), String::from_utf8_lossy(&bytes));
    }
    let text = "naïve 中文 😀\n";
    let ids = tok.encode(text).unwrap();
    assert_eq!(ids.len(), text.len());
    assert_eq!(tok.decode(&ids), text);
}

#[test]
fn stream_never_splits_a_character() {
    let tok = byte_tok();
    let text = "a中é😀\u{301}b👨\u{200D}👩 🇫🇷\n";
    let ids = tok.encode(text).unwrap();
    let mut dec = tok.decoder();
    let mut out = String::new();
    for (i, &id) in ids.iter().enumerate() {
        let piece = dec.push(id);
        let end = i + 1;
        if text.is_char_boundary(end) {
            // The byte completing a char releases exactly the text up to here.
            out.push_str(&piece);
            assert_eq!(out, text[..end]);
            assert!(!dec.has_pending());
        } else {
            assert_eq!(piece, "", "partial character released after byte {end}");
            assert!(dec.has_pending());
        }
    }
    assert_eq!(dec.finish(), "");
    assert_eq!(out, text);
}

#[test]
fn stream_matches_lossy_decoding_on_random_bytes() {
    let tok = byte_tok();
    let mut rng = XorShift(12345);
    for _ in 0..200 {
        let bytes = random_bytes(&mut rng, 64);
        let ids = tok.encode_bytes(&bytes).unwrap();
        let streamed: String = stream(&tok, &ids).concat();
        assert_eq!(
            streamed,
            String::from_utf8_lossy(&bytes),
            "bytes {bytes:02X?}"
        );
    }
}

#[test]
fn stream_replaces_invalid_sequences() {
    let tok = byte_tok();
    let ids = |b: &[u8]| tok.encode_bytes(b).unwrap();
    // A truncated 3-byte sequence, then ASCII: one U+FFFD, then the letter, released together.
    assert_eq!(stream(&tok, &ids(b"\xE4\xB8a")), ["", "", "\u{FFFD}a", ""]);
    // A stray continuation byte and a never-valid byte.
    assert_eq!(
        stream(&tok, &ids(b"\x80\xFF")),
        ["\u{FFFD}", "\u{FFFD}", ""]
    );
    // Overlong encoding: each byte is its own invalid sequence.
    assert_eq!(
        stream(&tok, &ids(b"\xC0\x80")),
        ["\u{FFFD}", "\u{FFFD}", ""]
    );
    // Encoded surrogate.
    assert_eq!(
        stream(&tok, &ids(b"\xED\xA0\x80")).concat(),
        "\u{FFFD}\u{FFFD}\u{FFFD}"
    );
    // Truncated at the very end: finish() flushes it.
    assert_eq!(
        stream(&tok, &ids(b"ok\xF0\x9F\x98")),
        ["o", "k", "", "", "", "\u{FFFD}"]
    );
    // An interrupted sequence followed by a new valid one.
    assert_eq!(
        stream(&tok, &ids(b"\xE4\xE4\xB8\xAD")).concat(),
        "\u{FFFD}中"
    );
}

#[test]
fn boundary_flushes_and_decodes_to_nothing() {
    let tok = Tokenizer::build(TokenizerKind::Byte, &two_doc_corpus()).unwrap();
    let b = tok.boundary().unwrap();
    let mut ids = tok.encode("x中").unwrap();
    ids.truncate(2); // 'x' and the first byte of 中
    ids.push(b);
    ids.extend(tok.encode("y").unwrap());
    assert_eq!(stream(&tok, &ids), ["x", "", "\u{FFFD}", "y", ""]);
    assert_eq!(tok.decode(&ids), "x\u{FFFD}y");
    assert_eq!(tok.decode(&[b, b]), "");
    assert_eq!(tok.decode(&[257, b'a' as u32]), "\u{FFFD}a");
}

#[test]
fn byte_encoding_never_fails() {
    let tok = byte_tok();
    let corpus = Corpus::from_text("t", "anything at all: 中 😀");
    assert!(tok.missing_chars(&corpus).is_empty());
    assert_eq!(
        tok.encode_corpus(&corpus).unwrap().len(),
        corpus.total_bytes()
    );
}

#[test]
fn newline_and_chars_in() {
    let tok = byte_tok();
    assert_eq!(tok.newline(), Some(10));
    let ids = tok.encode("中文 é\n").unwrap();
    assert_eq!(ids.len(), 10);
    assert_eq!(tok.chars_in(&ids), 5);
}

#[test]
fn byte_vocab_cannot_be_extended() {
    let mut tok = byte_tok();
    let err = tok.extend(&['中']).unwrap_err();
    assert!(matches!(
        err,
        TextError::CannotExtend {
            kind: TokenizerKind::Byte
        }
    ));
    assert_eq!(
        err.to_string(),
        "cannot extend a byte vocabulary: it already covers every byte"
    );
    assert_eq!(tok.vocab().len(), 256);
}

#[test]
fn from_vocab_validates_byte_vocabularies() {
    let mut tokens: Vec<String> = (0..=255u8).map(byte_token).collect();
    tokens.push("<doc>".into());
    let tok = Tokenizer::from_vocab(
        TokenizerKind::Byte,
        Vocab::from_tokens(tokens.clone()).unwrap(),
    )
    .unwrap();
    assert_eq!(tok.boundary(), Some(256));

    // Too short.
    let short = Vocab::from_tokens(tokens[..255].to_vec()).unwrap();
    assert!(Tokenizer::from_vocab(TokenizerKind::Byte, short).is_err());
    // Wrong spelling of a byte.
    let mut wrong = tokens.clone();
    wrong[10] = "<0x0a>".into();
    let err =
        Tokenizer::from_vocab(TokenizerKind::Byte, Vocab::from_tokens(wrong).unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid vocabulary: byte token 10 is \"<0x0a>\", expected \"<0x0A>\""
    );
    // A non-special extra token.
    let mut extra = tokens.clone();
    extra.push("ab".into());
    assert!(
        Tokenizer::from_vocab(TokenizerKind::Byte, Vocab::from_tokens(extra).unwrap()).is_err()
    );
    // A char vocabulary is not a byte vocabulary.
    let char_vocab = Vocab::from_tokens(vec!["a".into(), "b".into()]).unwrap();
    assert!(Tokenizer::from_vocab(TokenizerKind::Byte, char_vocab).is_err());
}
