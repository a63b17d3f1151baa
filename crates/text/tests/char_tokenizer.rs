//! The char tokenizer: vocabulary building, round trips, unknown chars, extension.

use std::collections::BTreeSet;

use recurrent_text::{Corpus, TextError, Tokenizer, TokenizerKind, Vocab, DOC_BOUNDARY};

fn char_tok(text: &str) -> Tokenizer {
    Tokenizer::build(TokenizerKind::Char, &Corpus::from_text("t.txt", text)).unwrap()
}

/// Encode/decode must give back the input exactly, and the vocabulary must be
/// exactly the distinct chars in code point order.
fn assert_round_trip(text: &str) {
    let tok = char_tok(text);
    let distinct: BTreeSet<char> = text.chars().collect();
    let expected: Vec<String> = distinct.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        tok.vocab().tokens(),
        expected.as_slice(),
        "vocab of {text:?}"
    );
    let ids = tok.encode(text).unwrap();
    assert_eq!(ids.len(), text.chars().count());
    assert_eq!(tok.decode(&ids), text);
    // Streaming gives the same text, one char per id.
    let mut dec = tok.decoder();
    let mut streamed = String::new();
    for &id in &ids {
        let piece = dec.push(id);
        assert_eq!(piece.chars().count(), 1);
        streamed.push_str(&piece);
    }
    streamed.push_str(&dec.finish());
    assert_eq!(streamed, text);
}

#[test]
fn round_trip_ascii() {
    assert_round_trip("Hello, world!\nThe quick brown fox jumps over the lazy dog.\t~{}\r\n");
}

#[test]
fn round_trip_chinese() {
    assert_round_trip("床前明月光，疑是地上霜。\n举头望明月，低头思故乡。");
}

#[test]
fn round_trip_emoji_sequences() {
    // ZWJ family, skin tone modifier, flag (regional indicators), keycap, variation selector.
    assert_round_trip("👨\u{200D}👩\u{200D}👧\u{200D}👦 👍🏽 🇫🇷 1\u{FE0F}\u{20E3} ❤\u{FE0F} 😀");
}

#[test]
fn round_trip_combining_marks() {
    // Decomposed and precomposed é must stay distinct: no normalization.
    let text = "e\u{301} é a\u{308}\u{323} Z\u{335}\u{321}";
    assert_round_trip(text);
    let tok = char_tok(text);
    assert!(tok.vocab().id("\u{301}").is_some());
    assert!(tok.vocab().id("é").is_some());
    assert_ne!(tok.encode("e\u{301}").unwrap(), tok.encode("é").unwrap());
}

#[test]
fn vocab_is_sorted_by_code_point() {
    let tok = char_tok("zé中a\n😀A ");
    let tokens: Vec<&str> = tok.vocab().tokens().iter().map(String::as_str).collect();
    assert_eq!(tokens, ["\n", " ", "A", "a", "z", "é", "中", "😀"]);
    assert_eq!(tok.boundary(), None);
    assert_eq!(tok.kind(), TokenizerKind::Char);
}

#[test]
fn literal_special_token_text_is_plain_chars() {
    let corpus = Corpus {
        docs: vec![
            Corpus::from_text("a", "<doc> x").docs.remove(0),
            Corpus::from_text("b", "y").docs.remove(0),
        ],
    };
    let tok = Tokenizer::build(TokenizerKind::Char, &corpus).unwrap();
    let boundary = tok.boundary().unwrap();
    assert_eq!(boundary as usize, tok.vocab().len() - 1, "boundary is last");
    let ids = tok.encode("<doc>").unwrap();
    assert_eq!(ids.len(), 5);
    assert!(!ids.contains(&boundary));
    assert_eq!(tok.decode(&ids), "<doc>");
    // The boundary token itself decodes to nothing.
    assert_eq!(tok.decode(&[ids[0], boundary, ids[4]]), "<>");
}

#[test]
fn unknown_chars_are_listed_sorted_and_distinct() {
    let tok = char_tok("abc \n");
    let err = tok.encode("a中b é中\tc").unwrap_err();
    match &err {
        TextError::UnknownChars { chars, .. } => assert_eq!(chars, &['\t', 'é', '中']),
        other => panic!("wrong error {other:?}"),
    }
    let msg = err.to_string();
    assert_eq!(
        msg,
        "text: 3 characters not in the vocabulary: '\\t', 'é', '中'"
    );
}

#[test]
fn missing_chars_then_extend_then_encode() {
    let mut tok = char_tok("hello world");
    let before = tok.vocab().len();
    let corpus = Corpus::from_text("new.txt", "hello wörld! 你好");
    let missing = tok.missing_chars(&corpus);
    assert_eq!(missing, ['!', 'ö', '你', '好']);
    assert!(tok.encode_corpus(&corpus).is_err());

    let ids = tok.extend(&missing).unwrap();
    let expected: Vec<u32> = (before as u32..before as u32 + 4).collect();
    assert_eq!(ids, expected, "new chars go after the existing ids");
    assert_eq!(tok.vocab().len(), before + 4);
    assert_eq!(tok.vocab().token(before as u32), Some("!"));
    // Old ids are unchanged.
    assert_eq!(
        tok.encode("hello").unwrap(),
        char_tok("hello world").encode("hello").unwrap()
    );

    let encoded = tok.encode_corpus(&corpus).unwrap();
    assert_eq!(tok.decode(&encoded), "hello wörld! 你好");
    assert!(tok.missing_chars(&corpus).is_empty());

    // Extending with known chars (or repeats) adds nothing and reports their ids.
    let again = tok.extend(&['h', '你', 'q', 'q']).unwrap();
    assert_eq!(again[0], tok.vocab().id("h").unwrap());
    assert_eq!(again[1], ids[2]);
    assert_eq!(again[2], again[3]);
    assert_eq!(tok.vocab().len(), before + 5);

    // The extended vocabulary survives a save/load.
    let reloaded = Tokenizer::from_vocab(
        TokenizerKind::Char,
        Vocab::from_json(&tok.vocab().to_json()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        reloaded.encode("wörld q").unwrap(),
        tok.encode("wörld q").unwrap()
    );
}

#[test]
fn encode_bytes_needs_utf8_in_char_mode() {
    let tok = char_tok("abc");
    assert_eq!(tok.encode_bytes(b"cab").unwrap(), [2, 0, 1]);
    let err = tok.encode_bytes(b"ab\xFFc").unwrap_err();
    assert!(
        matches!(err, TextError::InvalidUtf8 { offset: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("offset 2"), "{err}");
}

#[test]
fn build_rejects_non_utf8_and_empty_corpora() {
    let corpus = Corpus {
        docs: vec![recurrent_text::Document {
            name: "data/latin1.txt".into(),
            bytes: b"caf\xE9".to_vec(),
        }],
    };
    let err = Tokenizer::build(TokenizerKind::Char, &corpus).unwrap_err();
    assert_eq!(
        err.to_string(),
        "data/latin1.txt is not valid UTF-8 (first invalid byte at offset 3); \
         the byte tokenizer reads any bytes"
    );
    // The byte tokenizer takes it.
    assert!(Tokenizer::build(TokenizerKind::Byte, &corpus).is_ok());

    for kind in [TokenizerKind::Char, TokenizerKind::Byte] {
        let err = Tokenizer::build(kind, &Corpus::from_text("e", "")).unwrap_err();
        assert!(matches!(err, TextError::EmptyCorpus), "{err:?}");
        assert!(Tokenizer::build(kind, &Corpus::default()).is_err());
    }
}

#[test]
fn from_vocab_validates_char_vocabularies() {
    let ok = Vocab::from_tokens(vec![
        "a".into(),
        "\n".into(),
        DOC_BOUNDARY.into(),
        "<".into(),
    ])
    .unwrap();
    let tok = Tokenizer::from_vocab(TokenizerKind::Char, ok).unwrap();
    assert_eq!(tok.boundary(), Some(2));
    assert_eq!(tok.encode("<a\n").unwrap(), [3, 0, 1]);

    for bad in [vec!["a", "ab"], vec!["a", "<>"], vec!["a", "<x"]] {
        let vocab = Vocab::from_tokens(bad.iter().map(|s| s.to_string()).collect()).unwrap();
        let err = Tokenizer::from_vocab(TokenizerKind::Char, vocab).unwrap_err();
        assert!(
            matches!(err, TextError::InvalidVocab { .. }),
            "{bad:?}: {err:?}"
        );
    }
}

#[test]
fn out_of_range_ids_decode_to_replacement() {
    let tok = char_tok("ab");
    assert_eq!(tok.decode(&[0, 99, 1, u32::MAX]), "a\u{FFFD}b\u{FFFD}");
}

#[test]
fn tokenizer_kind_strings() {
    for (kind, name) in [
        (TokenizerKind::Char, "char"),
        (TokenizerKind::Byte, "byte"),
        (TokenizerKind::Word, "word"),
        (TokenizerKind::Bpe, "bpe"),
    ] {
        assert_eq!(kind.to_string(), name);
        assert_eq!(name.parse::<TokenizerKind>().unwrap(), kind);
        assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
        assert_eq!(
            serde_json::from_str::<TokenizerKind>(&format!("\"{name}\"")).unwrap(),
            kind
        );
        assert_eq!(kind.needs_utf8(), kind != TokenizerKind::Byte);
    }
    let err = "sentencepiece".parse::<TokenizerKind>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown tokenizer 'sentencepiece' (expected 'char', 'byte', 'word' or 'bpe')"
    );
    assert!("Char".parse::<TokenizerKind>().is_err());
}

#[test]
fn newline_and_chars_in() {
    let tok = char_tok("ab\nc");
    assert_eq!(tok.newline(), tok.vocab().id("\n"));
    assert_eq!(char_tok("abc").newline(), None);
    let ids = tok.encode("a\nb").unwrap();
    assert_eq!(tok.chars_in(&ids), 3);
}
