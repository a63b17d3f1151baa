//! The word tokenizer: PTB-style lines, vocabulary capping, `<unk>`, round
//! trips of whitespace-normalized text, and saving the vocabulary.

use recurrent_text::{
    Corpus, Document, TextError, Tokenizer, TokenizerKind, TokenizerOption, TokenizerOptions,
    Vocab, WordSegmentation, DOC_BOUNDARY, EOS, UNK,
};

fn word_tok(text: &str) -> Tokenizer {
    Tokenizer::build(TokenizerKind::Word, &Corpus::from_text("t", text)).unwrap()
}

fn word_tok_with(text: &str, options: &TokenizerOptions) -> Result<Tokenizer, TextError> {
    Tokenizer::build_with(TokenizerKind::Word, &Corpus::from_text("t", text), options)
}

fn sized(vocab_size: Option<usize>, min_count: usize) -> TokenizerOptions {
    TokenizerOptions {
        vocab_size,
        min_count,
        ..TokenizerOptions::default()
    }
}

/// Each line's words joined by one space; newlines kept.
fn normalize(text: &str) -> String {
    text.split('\n')
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn words(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter()
        .map(|&id| tok.vocab().token(id).unwrap().to_string())
        .collect()
}

fn stream(tok: &Tokenizer, ids: &[u32]) -> String {
    let mut d = tok.decoder();
    let mut out: String = ids.iter().map(|&id| d.push(id)).collect();
    out.push_str(&d.finish());
    out
}

#[test]
fn round_trip_is_the_normalized_text_including_non_ascii() {
    for text in [
        "  Héllo   wörld  中文字\n\tnaïve café 😀👍🏽\n\n  last line, no newline",
        "Ελληνικά και русский\r\nи ещё\n",
        "",
        "\n\n\n",
        "one",
    ] {
        let tok = word_tok(if text.is_empty() { " " } else { text });
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids), normalize(text), "{text:?}");
        assert_eq!(stream(&tok, &ids), normalize(text), "{text:?}");
        assert_eq!(tok.chars_in(&ids), normalize(text).chars().count());
        // Normalized text is a fixed point: encoding it gives the same ids.
        assert_eq!(tok.encode(&normalize(text)).unwrap(), ids);
    }
}

#[test]
fn ptb_lines_end_with_eos() {
    let tok = word_tok(" the cat <unk> sat \n the dog sat \n");
    let ids = tok.encode(" the cat <unk> sat \n").unwrap();
    assert_eq!(words(&tok, &ids), ["the", "cat", UNK, "sat", EOS]);
    // One <eos> per line, as PyTorch's word_language_model counts them.
    let text = " a b \n c \n\n d e f \n";
    let ids = tok.encode(text).unwrap();
    let eos = tok.vocab().id(EOS).unwrap();
    assert_eq!(ids.iter().filter(|&&id| id == eos).count(), 4);
    assert_eq!(ids.len(), 6 + 4);
    assert_eq!(tok.newline(), Some(eos));
    assert_eq!(tok.decode(&[eos]), "\n");
}

#[test]
fn ptb_like_file_with_known_words_round_trips_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ptb.train.txt");
    let text = " aer banknote berlitz calloway centrust cluett fromstein gitano \n \
                pierre <unk> N years old will join the board as a nonexecutive director nov. N \n \
                mr. <unk> is chairman of <unk> n.v. the dutch publishing group \n";
    std::fs::write(&path, text).unwrap();
    let corpus = Corpus::read(&path).unwrap();
    let tok = Tokenizer::build(TokenizerKind::Word, &corpus).unwrap();
    let ids = tok.encode_corpus(&corpus).unwrap();
    let unk = tok.vocab().id(UNK).unwrap();
    assert_eq!(ids.iter().filter(|&&id| id == unk).count(), 3);
    assert_eq!(tok.decode(&ids), normalize(text));
    assert!(tok.decode(&ids).starts_with("aer banknote"));
    assert!(tok.decode(&ids).ends_with("publishing group\n"));
    // No <doc> for one file.
    assert_eq!(tok.boundary(), None);
    assert_eq!(&tok.vocab().tokens()[..2], [UNK, EOS]);
}

#[test]
fn vocab_is_most_frequent_first_with_ties_by_word() {
    let tok = word_tok("b c a\nc b c\nz y x\n");
    // c:3, b:2, then a, x, y, z once each in byte order.
    assert_eq!(
        tok.vocab().tokens(),
        [UNK, EOS, "c", "b", "a", "x", "y", "z"]
    );
    // The same text always gives the same vocabulary.
    for _ in 0..3 {
        assert_eq!(word_tok("b c a\nc b c\nz y x\n").vocab(), tok.vocab());
    }
}

#[test]
fn vocab_size_caps_and_the_rest_is_unk() {
    let text = "the the the the cat cat cat sat sat on\nthe mat\n";
    let tok = word_tok_with(text, &sized(Some(5), 1)).unwrap();
    assert_eq!(tok.vocab().tokens(), [UNK, EOS, "the", "cat", "sat"]);
    let ids = tok.encode("the cat sat on the mat\n").unwrap();
    assert_eq!(
        words(&tok, &ids),
        ["the", "cat", "sat", UNK, "the", UNK, EOS]
    );
    assert_eq!(tok.decode(&ids), "the cat sat <unk> the <unk>\n");
    // Words never seen at all are <unk> too, never an error.
    let ids = tok.encode("zebra 斑马").unwrap();
    assert_eq!(words(&tok, &ids), [UNK, UNK]);
    assert!(tok
        .missing_chars(&Corpus::from_text("x", "zebra"))
        .is_empty());

    // min_count drops words seen fewer times.
    let tok = word_tok_with(text, &sized(None, 2)).unwrap();
    assert_eq!(tok.vocab().tokens(), [UNK, EOS, "the", "cat", "sat"]);
    let tok = word_tok_with(text, &sized(None, 4)).unwrap();
    assert_eq!(tok.vocab().tokens(), [UNK, EOS, "the"]);
    // Both: the tighter one wins.
    let tok = word_tok_with(text, &sized(Some(4), 2)).unwrap();
    assert_eq!(tok.vocab().tokens(), [UNK, EOS, "the", "cat"]);
    // A cap above the word count keeps every word.
    let tok = word_tok_with(text, &sized(Some(1000), 0)).unwrap();
    assert_eq!(tok.vocab().len(), 2 + 5);
}

#[test]
fn vocab_size_must_leave_room_for_a_word() {
    let err = word_tok_with("a b", &sized(Some(2), 1)).unwrap_err();
    assert!(
        matches!(err, TextError::VocabTooSmall { min: 3, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "vocabulary size 2 is too small for the word tokenizer (it needs at least 3)"
    );
    assert!(word_tok_with("a b", &sized(Some(3), 1)).is_ok());
}

#[test]
fn literal_structural_tokens_in_text_are_unk() {
    let tok = word_tok("a <eos> <doc> <unk> b\n");
    assert!(!tok.vocab().tokens().iter().any(|t| t == DOC_BOUNDARY));
    let ids = tok.encode("a <eos> <doc> <unk> b\n").unwrap();
    assert_eq!(words(&tok, &ids), ["a", UNK, UNK, UNK, "b", EOS]);
}

#[test]
fn several_documents_get_a_boundary_token() {
    let corpus = Corpus {
        docs: vec![
            Document {
                name: "a.txt".into(),
                bytes: b"one two\n".to_vec(),
            },
            Document {
                name: "b.txt".into(),
                bytes: b"three <doc>".to_vec(),
            },
        ],
    };
    let tok = Tokenizer::build(TokenizerKind::Word, &corpus).unwrap();
    assert_eq!(&tok.vocab().tokens()[..3], [UNK, EOS, DOC_BOUNDARY]);
    let doc = tok.boundary().unwrap();
    let ids = tok.encode_corpus(&corpus).unwrap();
    assert_eq!(
        words(&tok, &ids),
        ["one", "two", EOS, DOC_BOUNDARY, "three", UNK]
    );
    assert_eq!(ids[3], doc);
    // The boundary decodes to nothing.
    assert_eq!(tok.decode(&ids), "one two\nthree <unk>");
}

#[test]
fn unicode_segmentation_splits_punctuation_and_is_kept_by_the_tokenizer() {
    let opts = TokenizerOptions {
        word_segmentation: WordSegmentation::Unicode,
        ..TokenizerOptions::default()
    };
    let text = "Hello, wörld! 你好。\n";
    let tok = word_tok_with(text, &opts).unwrap();
    assert_eq!(tok.word_segmentation(), Some(WordSegmentation::Unicode));
    let ids = tok.encode(text).unwrap();
    assert_eq!(
        words(&tok, &ids),
        ["Hello", ",", "wörld", "!", "你", "好", "。", EOS]
    );
    assert_eq!(tok.decode(&ids), "Hello , wörld ! 你 好 。\n");
    // The whitespace tokenizer keeps punctuation on the word.
    let ws = word_tok(text);
    assert_eq!(ws.word_segmentation(), Some(WordSegmentation::Whitespace));
    assert_eq!(
        words(&ws, &ws.encode(text).unwrap()),
        ["Hello,", "wörld!", "你好。", EOS]
    );
}

#[test]
fn segmentation_names() {
    for (seg, name) in [
        (WordSegmentation::Whitespace, "whitespace"),
        (WordSegmentation::Unicode, "unicode"),
    ] {
        assert_eq!(seg.to_string(), name);
        assert_eq!(name.parse::<WordSegmentation>().unwrap(), seg);
        assert_eq!(serde_json::to_string(&seg).unwrap(), format!("\"{name}\""));
    }
    let err = "spaces".parse::<WordSegmentation>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown word segmentation 'spaces' (expected 'whitespace' or 'unicode')"
    );
}

#[test]
fn saved_vocabulary_reloads_and_encodes_the_same() {
    let text = "the cat sat\non the mat 中文\n";
    let tok = word_tok_with(text, &sized(Some(6), 1)).unwrap();
    let json = tok.vocab().to_json();
    let back =
        Tokenizer::from_vocab(TokenizerKind::Word, Vocab::from_json(&json).unwrap()).unwrap();
    assert_eq!(back.vocab(), tok.vocab());
    assert_eq!(back.kind(), TokenizerKind::Word);
    assert_eq!(back.encode(text).unwrap(), tok.encode(text).unwrap());
    assert_eq!(tok.to_tokenizer_json(), None);

    let unicode =
        Tokenizer::from_word_vocab(Vocab::from_json(&json).unwrap(), WordSegmentation::Unicode)
            .unwrap();
    assert_eq!(unicode.word_segmentation(), Some(WordSegmentation::Unicode));
}

#[test]
fn from_vocab_validates_word_vocabularies() {
    let vocab = |t: &[&str]| Vocab::from_tokens(t.iter().map(|s| s.to_string()).collect()).unwrap();
    let err = Tokenizer::from_vocab(TokenizerKind::Word, vocab(&["<eos>", "a"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid vocabulary: a word vocabulary needs the <unk> token"
    );
    assert!(Tokenizer::from_vocab(TokenizerKind::Word, vocab(&["<unk>", "a"])).is_err());
    // A char vocabulary (with " " and "\n") is not a word vocabulary.
    let err = Tokenizer::from_vocab(
        TokenizerKind::Word,
        vocab(&["<unk>", "<eos>", "\n", " ", "a"]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("whitespace"), "{err}");
    // PyTorch word_language_model order (words first) is fine.
    let tok = Tokenizer::from_vocab(
        TokenizerKind::Word,
        vocab(&["the", "<eos>", "cat", "<unk>"]),
    )
    .unwrap();
    assert_eq!(tok.encode("the dog\n").unwrap(), [0, 3, 1]);
}

#[test]
fn decoder_spacing_streams_and_continues_a_prime() {
    let tok = word_tok("the cat sat\n");
    let ids = tok.encode("the cat sat\nthe cat").unwrap();
    let pieces: Vec<String> = {
        let mut d = tok.decoder();
        ids.iter().map(|&id| d.push(id)).collect()
    };
    assert_eq!(pieces, ["the", " cat", " sat", "\n", "the", " cat"]);
    // After a prime the first generated word gets its space.
    let mut d = tok.decoder();
    d.prime(&tok.encode("the cat").unwrap());
    assert_eq!(d.push(tok.vocab().id("sat").unwrap()), " sat");
    assert_eq!(d.finish(), "");
    // finish() resets: a reused decoder starts a fresh line.
    assert_eq!(d.push(tok.vocab().id("sat").unwrap()), "sat");
    // Out-of-range ids are a replacement word.
    let (the, cat) = (
        tok.vocab().id("the").unwrap(),
        tok.vocab().id("cat").unwrap(),
    );
    assert_eq!(tok.decode(&[the, 999, cat]), "the \u{FFFD} cat");
}

#[test]
fn word_mode_errors() {
    // Not UTF-8.
    let corpus = Corpus {
        docs: vec![Document {
            name: "bad.txt".into(),
            bytes: vec![b'a', b' ', 0xFF],
        }],
    };
    let err = Tokenizer::build(TokenizerKind::Word, &corpus).unwrap_err();
    assert!(
        matches!(err, TextError::InvalidUtf8 { offset: 2, .. }),
        "{err:?}"
    );
    let tok = word_tok("a b\n");
    assert!(tok.encode_corpus(&corpus).is_err());
    assert!(matches!(
        tok.encode_bytes(&[0xC3]).unwrap_err(),
        TextError::InvalidUtf8 { .. }
    ));
    assert_eq!(
        tok.encode_bytes(b"a b").unwrap(),
        tok.encode("a b").unwrap()
    );
    // Empty corpus.
    assert!(matches!(
        Tokenizer::build(TokenizerKind::Word, &Corpus::default()).unwrap_err(),
        TextError::EmptyCorpus
    ));
    // Cannot grow.
    let mut tok = word_tok("a b\n");
    let err = tok.extend(&['x']).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot extend a word vocabulary: unknown words are encoded as <unk>"
    );
}

#[test]
fn options_are_checked_against_the_kind() {
    let corpus = Corpus::from_text("t", "abc");
    let err = Tokenizer::build_with(TokenizerKind::Char, &corpus, &sized(Some(10), 1)).unwrap_err();
    assert!(matches!(
        err,
        TextError::OptionNotApplicable {
            option: TokenizerOption::VocabSize,
            kind: TokenizerKind::Char
        }
    ));
    assert_eq!(
        err.to_string(),
        "vocab_size does not apply to the char tokenizer"
    );
    let err = Tokenizer::build_with(TokenizerKind::Byte, &corpus, &sized(None, 3)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "min_count does not apply to the byte tokenizer"
    );
    let unicode = TokenizerOptions {
        word_segmentation: WordSegmentation::Unicode,
        ..TokenizerOptions::default()
    };
    let err = Tokenizer::build_with(TokenizerKind::Bpe, &corpus, &unicode).unwrap_err();
    assert_eq!(
        err.to_string(),
        "word_segmentation does not apply to the bpe tokenizer"
    );
    // Defaults apply to every kind.
    for kind in [TokenizerKind::Char, TokenizerKind::Byte] {
        Tokenizer::build_with(kind, &corpus, &TokenizerOptions::default()).unwrap();
    }
}
