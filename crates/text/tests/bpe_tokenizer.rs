//! The byte-level BPE tokenizer: exact round trips (batch and streaming) on
//! any UTF-8 text, vocabulary size, tokenizer.json save/load, agreement with
//! the `tokenizers` library's own decoder, and loading in Python.

use std::process::Command;
use std::str::FromStr;

use recurrent_text::{
    Corpus, Document, TextError, Tokenizer, TokenizerKind, TokenizerOptions, Vocab,
    DEFAULT_BPE_VOCAB_SIZE, DOC_BOUNDARY,
};

/// Deterministic English-like training text: common words, made-up words
/// from syllables (so there is plenty to merge), and some non-ASCII.
fn training_text() -> String {
    let words = [
        "the",
        "cat",
        "sat",
        "on",
        "mat",
        "and",
        "dog",
        "ran",
        "to",
        "house",
        "of",
        "king",
        "queen",
        "said",
        "thou",
        "art",
        "my",
        "lord",
        "café",
        "naïve",
        "中文",
        "😀",
        "1999",
        "don't",
        "it's",
        "—",
        "\"quoted\"",
    ];
    let syllables = [
        "ka", "lo", "mi", "ne", "ru", "sha", "tor", "vin", "gel", "bra", "qu", "ix", "ph", "ost",
        "ung", "el",
    ];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = String::new();
    for line in 0..1500 {
        let len = 3 + line % 9;
        for i in 0..len {
            let r = next();
            if i > 0 {
                out.push(if r % 23 == 0 { '\t' } else { ' ' });
            }
            if r % 3 == 0 {
                for _ in 0..1 + (r >> 20) % 3 {
                    out.push_str(syllables[(next() >> 33) as usize % syllables.len()]);
                }
            } else {
                out.push_str(words[(r >> 33) as usize % words.len()]);
            }
        }
        out.push_str(if line % 5 == 0 { ".\n\n" } else { ",\n" });
    }
    out
}

fn bpe(vocab_size: Option<usize>) -> Tokenizer {
    let options = TokenizerOptions {
        vocab_size,
        ..TokenizerOptions::default()
    };
    Tokenizer::build_with(
        TokenizerKind::Bpe,
        &Corpus::from_text("train.txt", &training_text()),
        &options,
    )
    .unwrap()
}

/// Texts the tokenizer never saw, many of them far from the training text.
const UNSEEN: &[&str] = &[
    "The cat sat on the mat.\n",
    "  leading spaces, trailing spaces   \n\n\n\ttabs\r\nCRLF\r\n",
    "中文字符和標點符號：「你好」，世界！",
    "日本語のテキスト、한국어 텍스트",
    "emoji: 😀👍🏽👨‍👩‍👧‍👦🏳️‍🌈 and flags 🇫🇷🇯🇵",
    "combining: e\u{301} a\u{308}\u{323} Z\u{335}\u{32D}",
    "Ελληνικά, русский, עברית, العربية, हिन्दी",
    "\u{0}\u{1}\u{7F}\u{80}\u{A0}\u{AD}\u{FEFF}\u{10FFFF}",
    "<doc> is just text here, as is <|endoftext|>",
    "",
    " ",
    "a",
];

fn stream_pieces(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
    let mut d = tok.decoder();
    let mut out: Vec<String> = ids.iter().map(|&id| d.push(id)).collect();
    out.push(d.finish());
    out
}

#[test]
fn round_trip_is_exact_for_any_utf8_text() {
    let tok = bpe(None);
    let train = training_text();
    for text in UNSEEN.iter().copied().chain([train.as_str()]) {
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids), text, "{text:?}");
        assert_eq!(tok.encode_bytes(text.as_bytes()).unwrap(), ids);
        assert_eq!(tok.chars_in(&ids), text.chars().count());
    }
    // Merges make the training text shorter than its bytes.
    let ids = tok.encode(&train).unwrap();
    assert!(ids.len() * 2 < train.len(), "{} ids", ids.len());
}

#[test]
fn streaming_decode_is_exact_and_never_splits_a_character() {
    let tok = bpe(Some(300));
    for text in UNSEEN {
        let ids = tok.encode(text).unwrap();
        let pieces = stream_pieces(&tok, &ids);
        assert_eq!(pieces.concat(), *text);
        // A held-back partial character would show as U+FFFD.
        for p in &pieces {
            assert!(!p.contains('\u{FFFD}'), "{text:?} streamed {pieces:?}");
        }
    }
    // With few merges, a Chinese character spans several tokens, and the
    // decoder waits for the last one.
    for c in ["語", "𝔘", "🦀"] {
        let ids = tok.encode(c).unwrap();
        assert!(ids.len() > 1, "{c}: {ids:?}");
        let pieces = stream_pieces(&tok, &ids);
        assert!(
            pieces[..ids.len() - 1].iter().all(String::is_empty),
            "{pieces:?}"
        );
        assert_eq!(pieces[ids.len() - 1], c);
    }
}

#[test]
fn decode_agrees_with_the_library_on_any_ids() {
    let tok = bpe(Some(400));
    let json = tok.to_tokenizer_json().unwrap();
    let lib = tokenizers::Tokenizer::from_str(&json).unwrap();
    // Random ids make invalid UTF-8 too: both replace it the same way.
    let mut state = 7u64;
    for len in 0..200 {
        let ids: Vec<u32> = (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) as u32 % tok.vocab().len() as u32
            })
            .collect();
        assert_eq!(tok.decode(&ids), lib.decode(&ids, true).unwrap(), "{ids:?}");
        assert_eq!(stream_pieces(&tok, &ids).concat(), tok.decode(&ids));
    }
    // And encodes the same ids as the library.
    for text in UNSEEN {
        let want = lib.encode(*text, false).unwrap();
        assert_eq!(tok.encode(text).unwrap(), want.get_ids(), "{text:?}");
    }
}

#[test]
fn vocab_size_sets_the_vocabulary() {
    for size in [256, 300, 700] {
        let tok = bpe(Some(size));
        assert_eq!(tok.vocab().len(), size);
        assert_eq!(tok.kind(), TokenizerKind::Bpe);
    }
    assert_eq!(bpe(None).vocab().len(), DEFAULT_BPE_VOCAB_SIZE);
    // A text that runs out of pairs gives a smaller vocabulary.
    let small = Tokenizer::build(TokenizerKind::Bpe, &Corpus::from_text("t", "ab")).unwrap();
    assert_eq!(small.vocab().len(), 257);

    let err = Tokenizer::build_with(
        TokenizerKind::Bpe,
        &Corpus::from_text("t", "abc"),
        &TokenizerOptions {
            vocab_size: Some(255),
            ..TokenizerOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "vocabulary size 255 is too small for the bpe tokenizer (it needs at least 256)"
    );
    // min_count stops merges of rarer pairs.
    let rare = Tokenizer::build_with(
        TokenizerKind::Bpe,
        &Corpus::from_text("t", &training_text()),
        &TokenizerOptions {
            vocab_size: Some(5000),
            min_count: 50,
            ..TokenizerOptions::default()
        },
    )
    .unwrap();
    assert!(rare.vocab().len() < bpe(Some(5000)).vocab().len());
}

#[test]
fn training_is_deterministic() {
    let a = bpe(Some(500)).to_tokenizer_json().unwrap();
    for _ in 0..3 {
        assert_eq!(bpe(Some(500)).to_tokenizer_json().unwrap(), a);
    }
}

#[test]
fn tokenizer_json_round_trip_and_vocab_order() {
    let tok = bpe(Some(500));
    let json = tok.to_tokenizer_json().unwrap();
    let back = Tokenizer::from_tokenizer_json(&json).unwrap();
    assert_eq!(back.vocab(), tok.vocab());
    assert_eq!(back.to_tokenizer_json().unwrap(), json);
    for text in UNSEEN {
        assert_eq!(back.encode(text).unwrap(), tok.encode(text).unwrap());
    }
    // vocab.json lists the library's token strings in id order.
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let model_vocab = parsed["model"]["vocab"].as_object().unwrap();
    assert_eq!(model_vocab.len(), tok.vocab().len());
    for (token, id) in model_vocab {
        assert_eq!(
            tok.vocab().token(id.as_u64().unwrap() as u32),
            Some(token.as_str())
        );
    }
    assert_eq!(
        tok.vocab().id("Ġthe").map(|id| tok.decode(&[id])),
        Some(" the".into())
    );
    // vocab.json survives its own round trip.
    assert_eq!(
        &Vocab::from_json(&tok.vocab().to_json()).unwrap(),
        tok.vocab()
    );
    // But a vocabulary alone cannot make a BPE tokenizer.
    let err = Tokenizer::from_vocab(TokenizerKind::Bpe, tok.vocab().clone()).unwrap_err();
    assert!(matches!(err, TextError::NeedsTokenizerJson), "{err:?}");
}

#[test]
fn several_documents_get_a_special_boundary() {
    let corpus = Corpus {
        docs: vec![
            Document {
                name: "a.txt".into(),
                bytes: training_text().into_bytes(),
            },
            Document {
                name: "b.txt".into(),
                bytes: "second <doc> document 中文\n".as_bytes().to_vec(),
            },
        ],
    };
    let tok = Tokenizer::build(TokenizerKind::Bpe, &corpus).unwrap();
    let doc = tok.boundary().unwrap();
    assert_eq!(tok.vocab().token(doc), Some(DOC_BOUNDARY));
    let ids = tok.encode_corpus(&corpus).unwrap();
    assert_eq!(ids.iter().filter(|&&id| id == doc).count(), 1);
    // The literal text "<doc>" is bytes, not the boundary; the boundary decodes to nothing.
    let text = "second <doc> document 中文\n";
    assert!(!tok.encode(text).unwrap().contains(&doc));
    assert_eq!(tok.decode(&ids), training_text() + text);
    // It survives tokenizer.json.
    let back = Tokenizer::from_tokenizer_json(&tok.to_tokenizer_json().unwrap()).unwrap();
    assert_eq!(back.boundary(), Some(doc));
    assert_eq!(back.encode_corpus(&corpus).unwrap(), ids);
}

#[test]
fn bpe_mode_basics() {
    let mut tok = bpe(Some(300));
    let nl = tok.newline().unwrap();
    assert_eq!(tok.decode(&[nl]), "\n");
    assert_eq!(tok.boundary(), None);
    assert_eq!(tok.word_segmentation(), None);
    assert!(tok
        .missing_chars(&Corpus::from_text("x", "😀 new chars"))
        .is_empty());
    assert!(matches!(
        tok.extend(&['x']).unwrap_err(),
        TextError::CannotExtend {
            kind: TokenizerKind::Bpe
        }
    ));
    assert!(matches!(
        tok.encode_bytes(&[b'a', 0xFF]).unwrap_err(),
        TextError::InvalidUtf8 { offset: 1, .. }
    ));
    // Training needs UTF-8.
    let corpus = Corpus {
        docs: vec![Document {
            name: "bin".into(),
            bytes: vec![0xFF, 0xFE],
        }],
    };
    let err = Tokenizer::build(TokenizerKind::Bpe, &corpus).unwrap_err();
    assert!(
        matches!(err, TextError::InvalidUtf8 { offset: 0, .. }),
        "{err:?}"
    );
    // Out-of-range ids decode to U+FFFD, like the other kinds.
    assert_eq!(tok.decode(&[u32::MAX]), "\u{FFFD}");
}

#[test]
fn unusable_tokenizer_json_is_rejected_with_a_reason() {
    let json = bpe(Some(300)).to_tokenizer_json().unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let edited = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = value.clone();
        f(&mut v);
        Tokenizer::from_tokenizer_json(&v.to_string()).unwrap_err()
    };
    // Text the library cannot parse keeps the library's error as its source.
    let err = Tokenizer::from_tokenizer_json("not json").unwrap_err();
    assert!(
        matches!(err, TextError::TokenizerJsonParse { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "tokenizer.json does not parse as a tokenizer"
    );
    assert!(std::error::Error::source(&err).is_some());

    let cases: Vec<(TextError, &str)> = vec![
        (
            edited(&|v| v["pre_tokenizer"]["add_prefix_space"] = true.into()),
            "adds a prefix space",
        ),
        (
            edited(&|v| v["normalizer"] = serde_json::json!({"type": "Lowercase"})),
            "normalizer",
        ),
        (
            edited(&|v| v["decoder"] = serde_json::Value::Null),
            "decoder",
        ),
        (edited(&|v| v["model"]["dropout"] = 0.1.into()), "dropout"),
        (
            edited(&|v| {
                v["pre_tokenizer"] = serde_json::json!({"type": "Whitespace"});
            }),
            "pre-tokenizer is not byte-level",
        ),
        // Found by fuzzing: an untagged decoder made the tokenizers crate panic.
        (
            edited(&|v| v["decoder"] = serde_json::json!({"vocab": {"a": 1}})),
            "decoder is not byte-level",
        ),
        (
            edited(&|v| v["post_processor"] = serde_json::json!([1, 2])),
            "post-processor",
        ),
    ];
    for (err, want) in cases {
        let msg = err.to_string();
        assert!(matches!(err, TextError::TokenizerJson { .. }), "{err:?}");
        assert!(msg.contains(want), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
}

/// Python's `tokenizers` loads our tokenizer.json, encodes to the same ids and
/// decodes ours back to the text. Skipped (with a note) when it is not installed.
#[test]
fn python_tokenizers_loads_tokenizer_json() {
    let probe = Command::new("python3")
        .args(["-c", "import tokenizers"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: python3 with the tokenizers package is not available");
        return;
    }
    let tok = bpe(Some(600));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, tok.to_tokenizer_json().unwrap()).unwrap();
    let texts: Vec<&str> = UNSEEN.to_vec();
    let ours: Vec<Vec<u32>> = texts.iter().map(|t| tok.encode(t).unwrap()).collect();
    let input = serde_json::json!({"texts": texts, "ids": ours}).to_string();
    let script = r#"
import json, sys
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
data = json.load(sys.stdin)
print(json.dumps({
    "ids": [tok.encode(t, add_special_tokens=False).ids for t in data["texts"]],
    "decoded": [tok.decode(ids) for ids in data["ids"]],
    "vocab_size": tok.get_vocab_size(),
}))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, path.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["vocab_size"], tok.vocab().len());
    for (i, text) in texts.iter().enumerate() {
        assert_eq!(got["decoded"][i], *text, "python decoded ours differently");
        let py_ids: Vec<u32> = serde_json::from_value(got["ids"][i].clone()).unwrap();
        assert_eq!(py_ids, ours[i], "python encoded {text:?} differently");
    }
}

/// Inputs the fuzzer (fuzz/fuzz_targets/tokenizer_json.rs) found to panic
/// inside the tokenizers crate; each must now be an error.
#[test]
fn fuzzer_found_tokenizer_json_panics_are_errors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        let err = Tokenizer::from_tokenizer_json(&text).unwrap_err();
        assert!(
            err.to_string().contains("tokenizer.json"),
            "{}: {err}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 2);
}
