//! Reading sentence pairs from TSV files and splitting them by seed.

use std::collections::HashSet;
use std::io::Write;

use recurrent_text::{
    read_pairs, split_pairs, Pair, PairColumns, PairSplit, PairsError, SplitFractions,
};

fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(bytes).unwrap();
    file
}

fn pair(src: &str, tgt: &str) -> Pair {
    (src.to_string(), tgt.to_string())
}

fn columns(src: usize, tgt: usize, reverse: bool) -> PairColumns {
    PairColumns { src, tgt, reverse }
}

#[test]
fn reads_the_default_columns_and_skips_blank_lines() {
    let file = file_with(
        "Go.\tVa !\n\nRun!\tCours\u{202f}!\r\n   \nWow!\tÇa alors\u{202f}!\tCC-BY 2.0\n".as_bytes(),
    );
    let pairs = read_pairs(file.path(), &PairColumns::default()).unwrap();
    assert_eq!(
        pairs,
        [
            pair("Go.", "Va !"),
            pair("Run!", "Cours\u{202f}!"),
            pair("Wow!", "Ça alors\u{202f}!"),
        ]
    );
}

#[test]
fn chooses_columns_and_reverses() {
    let file = file_with(b"1\ta\tA\n2\tb\tB\n");
    let path = file.path();
    assert_eq!(
        read_pairs(path, &columns(2, 0, false)).unwrap(),
        [pair("A", "1"), pair("B", "2")]
    );
    assert_eq!(
        read_pairs(path, &columns(0, 1, true)).unwrap(),
        [pair("a", "1"), pair("b", "2")]
    );
    // The same column on both sides is allowed: a copy task.
    assert_eq!(
        read_pairs(path, &columns(1, 1, false)).unwrap()[0],
        pair("a", "a")
    );
}

#[test]
fn a_byte_order_mark_and_a_missing_final_newline_are_fine() {
    let file = file_with(b"\xEF\xBB\xBFHi.\tSalut.");
    let pairs = read_pairs(file.path(), &PairColumns::default()).unwrap();
    assert_eq!(pairs, [pair("Hi.", "Salut.")]);
}

#[test]
fn a_missing_column_names_file_and_line() {
    let file = file_with(b"Go.\tVa !\n\nno tab here\n");
    let err = read_pairs(file.path(), &PairColumns::default()).unwrap_err();
    assert!(matches!(
        err,
        PairsError::MissingColumn {
            line: 3,
            column: 1,
            found: 1,
            ..
        }
    ));
    let msg = err.to_string();
    assert_eq!(
        msg,
        format!(
            "{}:3: no column 1 (the line has 1 column separated by tabs; columns count from 0)",
            file.path().display()
        )
    );
    assert!(!msg.contains('\n'));

    let err = read_pairs(file.path(), &columns(0, 5, false)).unwrap_err();
    assert!(
        err.to_string()
            .contains(":1: no column 5 (the line has 2 columns"),
        "{err}"
    );
}

#[test]
fn an_empty_sentence_is_an_error() {
    let file = file_with(b"Go.\tVa !\nHi.\t  \n");
    let err = read_pairs(file.path(), &PairColumns::default()).unwrap_err();
    assert!(err.to_string().ends_with(":2: column 1 is empty"), "{err}");
}

#[test]
fn invalid_utf8_names_file_and_line() {
    let file = file_with(b"Go.\tVa !\nCaf\xE9\tcaf\xC3\xA9\n");
    let err = read_pairs(file.path(), &PairColumns::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(&file.path().display().to_string()), "{msg}");
    assert!(
        msg.ends_with(":2: not valid UTF-8 (first invalid byte at column 4)"),
        "{msg}"
    );
}

#[test]
fn missing_or_empty_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.tsv");
    let err = read_pairs(&missing, &PairColumns::default()).unwrap_err();
    assert!(err.to_string().starts_with("cannot read "), "{err}");
    let os = std::error::Error::source(&err).expect("the io error is kept");
    assert!(os.downcast_ref::<std::io::Error>().is_some(), "{os:?}");
    assert!(err.to_string().contains("nope.tsv"), "{err}");

    let blank = file_with(b"\n\n  \n");
    let err = read_pairs(blank.path(), &PairColumns::default()).unwrap_err();
    assert!(
        err.to_string().ends_with("contains no sentence pairs"),
        "{err}"
    );
}

fn numbered(n: usize) -> Vec<Pair> {
    (0..n)
        .map(|i| (format!("src {i}"), format!("tgt {i}")))
        .collect()
}

fn fractions(valid: f64, test: f64) -> SplitFractions {
    SplitFractions { valid, test }
}

#[test]
fn the_split_is_fixed_by_the_seed() {
    let a = split_pairs(numbered(1000), fractions(0.1, 0.05), 42).unwrap();
    let b = split_pairs(numbered(1000), fractions(0.1, 0.05), 42).unwrap();
    assert_eq!(a, b);
    let c = split_pairs(numbered(1000), fractions(0.1, 0.05), 43).unwrap();
    assert_ne!(a.test, c.test);
}

#[test]
fn the_split_is_disjoint_covers_everything_and_has_the_asked_sizes() {
    let pairs = numbered(1001);
    let split = split_pairs(pairs.clone(), fractions(0.1, 0.05), 7).unwrap();
    assert_eq!(split.test.len(), 50); // round(50.05)
    assert_eq!(split.valid.len(), 100); // round(100.1)
    assert_eq!(split.train.len(), 851);

    let mut seen = HashSet::new();
    for p in split.train.iter().chain(&split.valid).chain(&split.test) {
        assert!(seen.insert(p.clone()), "{p:?} is in two sets");
    }
    assert_eq!(seen, pairs.iter().cloned().collect::<HashSet<_>>());

    // Each set keeps file order, and the held-out sets are spread over the file.
    let index = |p: &Pair| p.0[4..].parse::<usize>().unwrap();
    for set in [&split.train, &split.valid, &split.test] {
        assert!(set.windows(2).all(|w| index(&w[0]) < index(&w[1])));
    }
    assert!(split.test.iter().any(|p| index(p) < 300) && split.test.iter().any(|p| index(p) > 700));
}

#[test]
fn the_test_set_does_not_depend_on_the_validation_fraction() {
    let a = split_pairs(numbered(500), fractions(0.0, 0.1), 3).unwrap();
    let b = split_pairs(numbered(500), fractions(0.3, 0.1), 3).unwrap();
    assert_eq!(a.test, b.test);
}

#[test]
fn edge_fractions_and_tiny_inputs() {
    let all_test = split_pairs(numbered(10), fractions(0.0, 1.0), 1).unwrap();
    assert_eq!((all_test.train.len(), all_test.test.len()), (0, 10));
    let none = split_pairs(numbered(10), fractions(0.0, 0.0), 1).unwrap();
    assert_eq!(none.train, numbered(10));
    // Rounding both halves up would need 2 pairs out of 1; training gets none.
    let one = split_pairs(numbered(1), fractions(0.5, 0.5), 1).unwrap();
    assert_eq!(one.train.len() + one.valid.len() + one.test.len(), 1);
    assert_eq!(
        split_pairs(vec![], fractions(0.1, 0.1), 1).unwrap(),
        PairSplit::default()
    );
    // 0.7 + 0.3 is 1.0000000000000002 in floating point; still fine.
    assert!(split_pairs(numbered(10), fractions(0.7, 0.3), 1).is_ok());
}

#[test]
fn bad_fractions_are_errors() {
    for (valid, test) in [(-0.1, 0.1), (0.1, 1.5), (0.6, 0.6), (f64::NAN, 0.1)] {
        let err = split_pairs(numbered(10), fractions(valid, test), 1).unwrap_err();
        assert!(matches!(err, PairsError::BadFractions { .. }));
        assert!(
            err.to_string().starts_with("invalid split: validation "),
            "{err}"
        );
    }
}
