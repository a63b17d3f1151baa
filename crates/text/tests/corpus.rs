//! Reading corpora from disk and encoding them with document boundaries.

use std::fs;
use std::path::Path;

use recurrent_text::{Corpus, Document, TextError, Tokenizer, TokenizerKind};

fn write(root: &Path, rel: &str, contents: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

fn names(corpus: &Corpus, root: &Path) -> Vec<String> {
    corpus
        .docs
        .iter()
        .map(|d| {
            Path::new(&d.name)
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect()
}

fn docs(texts: &[(&str, &str)]) -> Corpus {
    Corpus {
        docs: texts
            .iter()
            .map(|(name, text)| Document {
                name: name.to_string(),
                bytes: text.as_bytes().to_vec(),
            })
            .collect(),
    }
}

#[test]
fn reads_a_folder_recursively_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "b.txt", b"bee");
    write(root, "a.txt", b"ay");
    write(root, "a/z.txt", b"zed");
    write(root, "sub/deeper/c.md", b"see");
    write(root, "empty.txt", b"");
    write(root, ".hidden.txt", b"secret");
    write(root, ".git/config", b"[core]");
    write(root, "sub/.cache/x.txt", b"cached");

    let corpus = Corpus::read(root).unwrap();
    assert_eq!(
        names(&corpus, root),
        ["a/z.txt", "a.txt", "b.txt", "sub/deeper/c.md"]
    );
    let contents: Vec<&[u8]> = corpus.docs.iter().map(|d| d.bytes.as_slice()).collect();
    assert_eq!(contents, [&b"zed"[..], b"ay", b"bee", b"see"]);
    assert_eq!(corpus.total_bytes(), 11);

    // The same folder reads the same way twice.
    assert_eq!(Corpus::read(root).unwrap(), corpus);
}

#[test]
fn a_hidden_root_folder_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join(".data");
    write(&root, "x.txt", b"x");
    let corpus = Corpus::read(&root).unwrap();
    assert_eq!(corpus.docs.len(), 1);
}

#[test]
fn reads_a_single_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.txt");
    fs::write(&path, "hello\n").unwrap();
    let corpus = Corpus::read(&path).unwrap();
    assert_eq!(corpus.docs.len(), 1);
    assert_eq!(corpus.docs[0].name, path.display().to_string());
    assert_eq!(corpus.docs[0].bytes, b"hello\n");
}

#[test]
fn empty_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.txt");
    fs::write(&path, "").unwrap();
    let err = Corpus::read(&path).unwrap_err();
    assert!(matches!(err, TextError::EmptyFile { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("{} is empty", path.display()));
}

#[test]
fn folder_without_text_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("corpus");
    write(&root, "empty.txt", b"");
    write(&root, ".hidden", b"not counted");
    fs::create_dir_all(root.join("nested/empty_dir")).unwrap();
    let err = Corpus::read(&root).unwrap_err();
    assert!(matches!(err, TextError::EmptyFolder { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("folder {} contains no text files", root.display())
    );

    let bare = dir.path().join("bare");
    fs::create_dir(&bare).unwrap();
    assert!(matches!(
        Corpus::read(&bare),
        Err(TextError::EmptyFolder { .. })
    ));
}

#[test]
fn missing_path_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.txt");
    let err = Corpus::read(&path).unwrap_err();
    assert!(matches!(err, TextError::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("{}: no such file or folder", path.display())
    );
}

#[cfg(unix)]
#[test]
fn symlinks_to_files_are_followed_and_to_folders_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("corpus");
    write(&root, "real.txt", b"real");
    std::os::unix::fs::symlink(root.join("real.txt"), root.join("link.txt")).unwrap();
    // A link back to the root would recurse forever if followed.
    std::os::unix::fs::symlink(&root, root.join("loop")).unwrap();
    std::os::unix::fs::symlink(root.join("gone.txt"), root.join("dangling.txt")).unwrap();
    let corpus = Corpus::read(&root).unwrap();
    assert_eq!(names(&corpus, &root), ["link.txt", "real.txt"]);
}

#[test]
fn check_utf8_names_file_and_offset() {
    let corpus = Corpus {
        docs: vec![
            Document {
                name: "good.txt".into(),
                bytes: "fine 中".as_bytes().to_vec(),
            },
            Document {
                name: "bad.txt".into(),
                bytes: b"ab\xE4\xB8c".to_vec(),
            },
        ],
    };
    let err = corpus.check_utf8().unwrap_err();
    assert!(
        matches!(&err, TextError::InvalidUtf8 { name, offset: 2 } if name == "bad.txt"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.starts_with("bad.txt is not valid UTF-8"), "{msg}");
    assert!(msg.contains("offset 2"), "{msg}");
    assert!(msg.contains("the byte tokenizer"), "{msg}");
    assert!(!msg.contains("--"), "no command-line flags: {msg}");
    assert!(Corpus::from_text("ok", "é").check_utf8().is_ok());
}

#[test]
fn check_utf8_on_a_file_read_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "latin1.txt", b"na\xEFve");
    let corpus = Corpus::read(dir.path()).unwrap();
    let msg = corpus.check_utf8().unwrap_err().to_string();
    assert!(msg.contains("latin1.txt"), "{msg}");
    assert!(msg.contains("offset 2"), "{msg}");
    // encode_corpus reports the same problem in char mode.
    let tok = Tokenizer::build(TokenizerKind::Char, &Corpus::from_text("x", "nave")).unwrap();
    assert!(matches!(
        tok.encode_corpus(&corpus),
        Err(TextError::InvalidUtf8 { offset: 2, .. })
    ));
}

#[test]
fn boundary_goes_between_documents_only() {
    let corpus = docs(&[("a", "ab"), ("b", "ba\n"), ("c", "c")]);
    for kind in [TokenizerKind::Char, TokenizerKind::Byte] {
        let tok = Tokenizer::build(kind, &corpus).unwrap();
        let b = tok.boundary().expect("several documents need a boundary");
        let ids = tok.encode_corpus(&corpus).unwrap();
        let mut expected = tok.encode("ab").unwrap();
        expected.push(b);
        expected.extend(tok.encode("ba\n").unwrap());
        expected.push(b);
        expected.extend(tok.encode("c").unwrap());
        assert_eq!(ids, expected, "{kind}");
        assert_eq!(ids.iter().filter(|&&id| id == b).count(), 2);
        assert_ne!(ids.first(), Some(&b));
        assert_ne!(ids.last(), Some(&b));
        assert_eq!(tok.decode(&ids), "abba\nc");
    }
}

#[test]
fn one_document_has_no_boundary() {
    let corpus = docs(&[("a", "abc")]);
    for kind in [TokenizerKind::Char, TokenizerKind::Byte] {
        let tok = Tokenizer::build(kind, &corpus).unwrap();
        assert_eq!(tok.boundary(), None);
        assert!(tok.vocab().id("<doc>").is_none());
        assert_eq!(tok.encode_corpus(&corpus).unwrap().len(), 3);
    }
    // A vocabulary without a boundary just concatenates several documents.
    let tok = Tokenizer::build(TokenizerKind::Char, &corpus).unwrap();
    let ids = tok
        .encode_corpus(&docs(&[("x", "ab"), ("y", "c")]))
        .unwrap();
    assert_eq!(ids, tok.encode("abc").unwrap());
}

#[test]
fn encode_corpus_names_files_with_unknown_chars() {
    let tok = Tokenizer::build(TokenizerKind::Char, &Corpus::from_text("v", "abc")).unwrap();
    let one = docs(&[("ok.txt", "abc"), ("bad.txt", "abé")]);
    assert_eq!(
        tok.encode_corpus(&one).unwrap_err().to_string(),
        "bad.txt: 1 character not in the vocabulary: 'é'"
    );
    let three = docs(&[
        ("x.txt", "é"),
        ("ok.txt", "a"),
        ("y.txt", "é"),
        ("z.txt", "中"),
    ]);
    let err = tok.encode_corpus(&three).unwrap_err();
    assert_eq!(
        err.to_string(),
        "x.txt (and 2 other files): 2 characters not in the vocabulary: 'é', '中'"
    );
}
