//! BLEU, chrF and the 13a tokenizer against the `sacrebleu` Python package.
//!
//! tests/fixtures/bleu_sacrebleu.json is written by
//! scripts/make_bleu_fixtures.py (sacrebleu 2.6.0, default settings). Its
//! floats are strings of Python's repr, so they parse to the exact f64
//! sacreBLEU computed.

use recurrent_report::{corpus_bleu, corpus_chrf, tokenize_13a, BleuStats, ChrfStats};
use serde_json::Value;

/// Absolute tolerance on the 0-100 scale. We do the same float operations in
/// the same order as sacreBLEU, and on this machine the results are
/// bit-identical; the margin only allows another platform's `exp`/`ln` to
/// differ in the last bit.
const TOLERANCE: f64 = 1e-9;

struct Case {
    name: String,
    hypotheses: Vec<String>,
    references: Vec<String>,
    json: Value,
}

fn cases() -> Vec<Case> {
    let text = include_str!("fixtures/bleu_sacrebleu.json");
    let fixture: Value = serde_json::from_str(text).expect("fixture is JSON");
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("an array")
            .iter()
            .map(|s| s.as_str().expect("a string").to_string())
            .collect()
    };
    let cases: Vec<Case> = fixture["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().expect("name").to_string(),
            hypotheses: strings(&c["hypotheses"]),
            references: strings(&c["references"]),
            json: c.clone(),
        })
        .collect();
    assert!(cases.len() >= 15, "fixture has only {} cases", cases.len());
    cases
}

fn float(v: &Value) -> f64 {
    v.as_str()
        .expect("floats are stored as repr strings")
        .parse()
        .expect("a float")
}

fn ints(v: &Value) -> Vec<u64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_u64().expect("an integer"))
        .collect()
}

fn assert_close(name: &str, what: &str, ours: f64, theirs: f64) {
    let diff = (ours - theirs).abs();
    assert!(
        diff <= TOLERANCE,
        "{name}: {what} is {ours:?}, sacreBLEU says {theirs:?} (off by {diff:e})"
    );
}

#[test]
fn tokenize_13a_matches_sacrebleu() {
    for case in cases() {
        let lines = case.hypotheses.iter().chain(&case.references);
        let expected = case.json["tokenized_hypotheses"]
            .as_array()
            .unwrap()
            .iter()
            .chain(case.json["tokenized_references"].as_array().unwrap());
        for (line, want) in lines.zip(expected) {
            assert_eq!(
                tokenize_13a(line),
                want.as_str().unwrap(),
                "{}: {line:?}",
                case.name
            );
        }
    }
}

#[test]
fn bleu_matches_sacrebleu() {
    let mut worst: f64 = 0.0;
    for case in cases() {
        let want = &case.json["bleu"];
        let bleu = corpus_bleu(&case.hypotheses, &case.references).unwrap();
        let name = case.name.as_str();
        assert_eq!(
            bleu.counts.to_vec(),
            ints(&want["counts"]),
            "{name}: counts"
        );
        assert_eq!(
            bleu.totals.to_vec(),
            ints(&want["totals"]),
            "{name}: totals"
        );
        assert_eq!(
            bleu.sys_len,
            want["sys_len"].as_u64().unwrap(),
            "{name}: sys_len"
        );
        assert_eq!(
            bleu.ref_len,
            want["ref_len"].as_u64().unwrap(),
            "{name}: ref_len"
        );
        assert_close(name, "BP", bleu.bp, float(&want["bp"]));
        let precisions = want["precisions"].as_array().unwrap();
        for (n, (ours, theirs)) in bleu.precisions.iter().zip(precisions).enumerate() {
            assert_close(
                name,
                &format!("{}-gram precision", n + 1),
                *ours,
                float(theirs),
            );
        }
        assert_close(name, "BLEU", bleu.score, float(&want["score"]));
        assert_eq!(
            bleu.to_string(),
            want["display"].as_str().unwrap(),
            "{name}: display"
        );
        worst = worst.max((bleu.score - float(&want["score"])).abs());
    }
    // Shown with --nocapture; the numbers agree to the last bit here.
    println!("largest BLEU difference from sacreBLEU: {worst:e}");
}

#[test]
fn chrf_matches_sacrebleu() {
    let mut worst: f64 = 0.0;
    for case in cases() {
        let chrf = corpus_chrf(&case.hypotheses, &case.references).unwrap();
        let want = float(&case.json["chrf"]);
        assert_close(&case.name, "chrF", chrf, want);
        worst = worst.max((chrf - want).abs());
    }
    println!("largest chrF difference from sacreBLEU: {worst:e}");
}

#[test]
fn accumulating_sentence_by_sentence_gives_the_corpus_score() {
    for case in cases() {
        let mut bleu = BleuStats::new();
        let mut chrf = ChrfStats::new();
        for (h, r) in case.hypotheses.iter().zip(&case.references) {
            bleu.add(h, r);
            chrf.add(h, r);
        }
        let corpus = corpus_bleu(&case.hypotheses, &case.references).unwrap();
        assert_eq!(bleu.score(), corpus, "{}", case.name);
        assert_eq!(
            chrf.score(),
            corpus_chrf(&case.hypotheses, &case.references).unwrap(),
            "{}",
            case.name
        );
    }
}
