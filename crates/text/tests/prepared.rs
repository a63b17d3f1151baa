//! Prepared token files: every tokenizer round-trips to the ids of the
//! in-memory path, both widths, and every kind of damage is a typed error.

use std::fs;
use std::path::{Path, PathBuf};

use recurrent_text::prepared::{
    prepare, Manifest, PrepareOptions, PreparedData, PreparedError, TokenIds, TokenWidth, Verify,
    MANIFEST_FILE, TRAIN_FILE, VAL_FILE, VOCAB_FILE,
};
use recurrent_text::{Corpus, TextError, Tokenizer, TokenizerKind, TokenizerOptions};

const TEXT: &str = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n\
    All:\nSpeak, speak.  naïve café 中文 字\u{3000}x\n";

/// A folder of three documents of different lengths.
fn corpus_folder(dir: &Path) -> PathBuf {
    let input = dir.join("corpus");
    fs::create_dir_all(input.join("sub")).unwrap();
    fs::write(input.join("a.txt"), TEXT.repeat(30)).unwrap();
    fs::write(input.join("b.txt"), "short one\n").unwrap();
    fs::write(input.join("sub/c.txt"), TEXT.repeat(7)).unwrap();
    input
}

fn options(kind: TokenizerKind, block_bytes: usize) -> PrepareOptions {
    let tokenizer_options = match kind {
        TokenizerKind::Bpe => TokenizerOptions {
            vocab_size: Some(300),
            ..TokenizerOptions::default()
        },
        _ => TokenizerOptions::default(),
    };
    PrepareOptions {
        kind,
        tokenizer_options,
        val_fraction: 0.1,
        threads: Some(2),
        block_bytes,
    }
}

/// The ids and split a run that reads the text itself gets.
fn in_memory(input: &Path, options: &PrepareOptions) -> (Tokenizer, Vec<u32>, Vec<u32>) {
    let corpus = Corpus::read(input).unwrap();
    let tok = Tokenizer::build_with(options.kind, &corpus, &options.tokenizer_options).unwrap();
    let mut ids = tok.encode_corpus(&corpus).unwrap();
    let n_val = (ids.len() as f64 * options.val_fraction) as usize;
    let val = ids.split_off(ids.len() - n_val);
    (tok, ids, val)
}

#[test]
fn every_tokenizer_round_trips_to_the_in_memory_ids() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus_folder(dir.path());
    for kind in [
        TokenizerKind::Char,
        TokenizerKind::Byte,
        TokenizerKind::Word,
        TokenizerKind::Bpe,
    ] {
        let (tok, train, val) = in_memory(&input, &options(kind, 1 << 20));
        // Tiny pieces too: the result must not depend on where reads are cut.
        for block in [7, 64, 1 << 20] {
            let out = dir.path().join(format!("{kind}-{block}"));
            let opts = options(kind, block);
            let manifest = prepare(&input, &out, &opts, &|_| {}).unwrap();
            assert_eq!(manifest.documents, 3);
            assert_eq!(manifest.token_width, TokenWidth::U16);
            let data = PreparedData::open(&out, Verify::Full).unwrap();
            assert_eq!(
                data.tokenizer().vocab(),
                tok.vocab(),
                "{kind} block {block}"
            );
            data.check_tokenizer(&tok).unwrap();
            assert_eq!(data.train().ids().to_vec(), train, "{kind} block {block}");
            assert_eq!(
                data.val().unwrap().ids().to_vec(),
                val,
                "{kind} block {block}"
            );
            assert!(matches!(data.train().ids(), TokenIds::U16(_)));
            assert_eq!(&Manifest::read(&out).unwrap(), data.manifest());
            assert_eq!(data.manifest().tokenizer.boundary, tok.boundary());
        }
    }
}

#[test]
fn a_large_vocabulary_is_stored_four_bytes_per_token() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.txt");
    let text: String = (0..70_000).map(|i| format!("w{i} ")).collect();
    fs::write(&input, &text).unwrap();
    let out = dir.path().join("data");
    let opts = options(TokenizerKind::Word, 4096);
    let manifest = prepare(&input, &out, &opts, &|_| {}).unwrap();
    assert_eq!(manifest.token_width, TokenWidth::U32);
    assert_eq!(manifest.tokenizer.vocab_size, 70_002);
    let data = PreparedData::open(&out, Verify::Full).unwrap();
    let (_, train, val) = in_memory(&input, &opts);
    assert!(matches!(data.train().ids(), TokenIds::U32(_)));
    assert_eq!(data.train().ids().to_vec(), train);
    assert_eq!(data.val().unwrap().ids().to_vec(), val);
    assert_eq!(
        fs::metadata(out.join(TRAIN_FILE)).unwrap().len(),
        4 * train.len() as u64
    );
}

fn prepared(dir: &Path) -> PathBuf {
    let input = dir.join("input.txt");
    fs::write(&input, TEXT.repeat(20)).unwrap();
    let out = dir.join("data");
    prepare(
        &input,
        &out,
        &options(TokenizerKind::Char, 1 << 20),
        &|_| {},
    )
    .unwrap();
    out
}

fn prepared_error(result: Result<PreparedData, TextError>) -> PreparedError {
    match result {
        Err(TextError::Prepared(e)) => e,
        other => panic!("expected a prepared-data error, got {other:?}"),
    }
}

#[test]
fn a_truncated_file_is_named_with_both_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let out = prepared(dir.path());
    let path = out.join(TRAIN_FILE);
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 2)
        .unwrap();
    let err = prepared_error(PreparedData::open(&out, Verify::Size));
    assert!(
        matches!(&err, PreparedError::Truncated { path: p, expected, found }
            if p == &path && *expected == len && *found == len - 2),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("train.bin is truncated"), "{msg}");
}

#[test]
fn a_flipped_byte_fails_the_full_check_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = prepared(dir.path());
    let path = out.join(VAL_FILE);
    let mut bytes = fs::read(&path).unwrap();
    bytes[3] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    // The size check is instant and cannot see it.
    PreparedData::open(&out, Verify::Size).unwrap();
    let err = prepared_error(PreparedData::open(&out, Verify::Full));
    assert!(
        matches!(&err, PreparedError::Checksum { path: p, .. } if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains("val.bin is corrupt"), "{err}");
}

#[test]
fn a_different_tokenizer_is_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let out = prepared(dir.path());
    let data = PreparedData::open(&out, Verify::Size).unwrap();
    let other = Tokenizer::build(TokenizerKind::Char, &Corpus::from_text("x", "abc")).unwrap();
    let err = data.check_tokenizer(&other).unwrap_err();
    assert!(
        matches!(err, PreparedError::TokenizerMismatch { .. }),
        "{err:?}"
    );
    let bytes = Tokenizer::build(TokenizerKind::Byte, &Corpus::from_text("x", "abc")).unwrap();
    assert!(data
        .check_tokenizer(&bytes)
        .unwrap_err()
        .to_string()
        .contains("char, not byte"));

    // A vocab.json replaced behind the manifest's back.
    fs::write(out.join(VOCAB_FILE), other.vocab().to_json()).unwrap();
    let err = prepared_error(PreparedData::open(&out, Verify::Size));
    assert!(
        matches!(&err, PreparedError::TokenizerMismatch { path, .. } if path.ends_with(VOCAB_FILE)),
        "{err:?}"
    );
}

#[test]
fn an_unknown_version_or_missing_manifest_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = prepared(dir.path());
    let path = out.join(MANIFEST_FILE);
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replace("\"version\": 1", "\"version\": 99")).unwrap();
    let err = prepared_error(PreparedData::open(&out, Verify::Size));
    assert!(
        matches!(err, PreparedError::UnknownVersion { version: 99, .. }),
        "{err:?}"
    );
    fs::remove_file(&path).unwrap();
    let err = prepared_error(PreparedData::open(&out, Verify::Size));
    assert!(matches!(err, PreparedError::NoManifest { .. }), "{err:?}");
}

#[test]
fn empty_input_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.txt");
    fs::write(&empty, "").unwrap();
    let out = dir.path().join("data");
    let opts = options(TokenizerKind::Char, 64);
    let err = prepare(&empty, &out, &opts, &|_| {}).unwrap_err();
    assert!(matches!(err, TextError::EmptyFile { .. }), "{err:?}");
    // Text with no words gives no tokens, and no manifest is written.
    let blank = dir.path().join("blank.txt");
    fs::write(&blank, "   ").unwrap();
    let err = prepare(&blank, &out, &options(TokenizerKind::Word, 64), &|_| {}).unwrap_err();
    assert!(
        matches!(
            err,
            TextError::Prepared(PreparedError::TooFewTokens { tokens: 0, .. })
        ),
        "{err:?}"
    );
    assert!(!out.join(MANIFEST_FILE).exists());
    let bad = PrepareOptions {
        val_fraction: 1.0,
        ..opts
    };
    let err = prepare(&blank, &out, &bad, &|_| {}).unwrap_err();
    assert!(err.to_string().contains("val_fraction"), "{err}");
}

#[test]
fn invalid_utf8_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bin.txt");
    fs::write(&input, b"ok text \xfe\xff").unwrap();
    let out = dir.path().join("data");
    let err = prepare(&input, &out, &options(TokenizerKind::Char, 64), &|_| {}).unwrap_err();
    assert!(
        matches!(err, TextError::InvalidUtf8 { offset: 8, .. }),
        "{err:?}"
    );
    // Bytes take anything.
    prepare(&input, &out, &options(TokenizerKind::Byte, 64), &|_| {}).unwrap();
}
