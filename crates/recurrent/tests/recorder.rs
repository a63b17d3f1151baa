//! The run recorder's `metrics.jsonl`: every line of every task carries
//! exactly the fields it always did, with values that agree with the run.

use std::collections::BTreeSet;
use std::path::Path;

use recurrent::lm::{TextSource, TrainOptions, Training};
use recurrent::train::trainer::Regularizers;
use recurrent::{EvalReport, Observer, Quiet, RunFolder, StopRule};
use serde_json::Value;

/// The lines of a run's `metrics.jsonl`, split into training and validation lines.
fn metrics(folder: &RunFolder) -> (Vec<Value>, Vec<Value>) {
    let text = std::fs::read_to_string(folder.metrics_path()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (train, val): (Vec<Value>, Vec<Value>) =
        lines.into_iter().partition(|v| v["kind"] == "train");
    assert!(val.iter().all(|v| v["kind"] == "val"));
    (train, val)
}

/// The field names of a line.
fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// `a` and `b` agree up to the last bit or two, which serde_json's float
/// parsing may move.
fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-14 * b.abs().max(1.0), "{a} != {b}");
}

fn set<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
    names.iter().copied().collect()
}

const TRAIN: [&str; 7] = [
    "kind",
    "step",
    "epoch",
    "loss",
    "lr",
    "grad_norm",
    "elapsed",
];

fn lm_options(regularizers: Regularizers) -> TrainOptions {
    TrainOptions {
        input: TextSource::text("cat", "the cat sat on the mat. ".repeat(60)),
        stop: StopRule {
            steps: Some(6),
            ..StopRule::default()
        },
        seq_len: 16,
        batch: 4,
        lr: 1e-2,
        eval_every: Some(3),
        regularizers,
        threads: Some(1),
        ..TrainOptions::default()
    }
}

#[test]
fn language_model_lines_carry_bits_per_token_and_the_penalties_when_on() {
    let dir = tempfile::tempdir().unwrap();
    let folder = RunFolder::create(dir.path().join("plain")).unwrap();
    let mut t = Training::start(&lm_options(Regularizers::default()), folder.clone()).unwrap();
    t.run(&mut Quiet).unwrap();
    let (train, val) = metrics(&folder);
    assert_eq!(train.len(), 6);
    for (i, line) in train.iter().enumerate() {
        assert_eq!(keys(line), set(&TRAIN), "{line}");
        assert_eq!(line["step"], i as u64 + 1);
        // The learning rate as its shortest decimal form, not the f32's f64 widening.
        assert_eq!(line["lr"].as_f64(), Some(0.01), "{line}");
    }
    assert_eq!(val.len(), 2);
    let history = &t.trainer().state.progress.history;
    for (line, record) in val.iter().zip(history) {
        let names = [
            "kind",
            "step",
            "epoch",
            "loss",
            "bits_per_token",
            "perplexity",
            "accuracy",
            "elapsed",
        ];
        assert_eq!(keys(line), set(&names), "{line}");
        let loss = line["loss"].as_f64().unwrap();
        assert_eq!(line["step"], record.step);
        close(loss, record.loss);
        close(line["accuracy"].as_f64().unwrap(), record.accuracy);
        close(
            line["bits_per_token"].as_f64().unwrap(),
            record.loss / std::f64::consts::LN_2,
        );
        close(line["perplexity"].as_f64().unwrap(), record.loss.exp());
    }

    let mut on = Regularizers::default();
    on.model.alpha = 2.0;
    on.model.beta = 1.0;
    let folder = RunFolder::create(dir.path().join("awd")).unwrap();
    Training::start(&lm_options(on), folder.clone())
        .unwrap()
        .run(&mut Quiet)
        .unwrap();
    let (train, _) = metrics(&folder);
    let with_penalties = [&TRAIN[..], &["ar", "tar"]].concat();
    for line in &train {
        assert_eq!(keys(line), set(&with_penalties), "{line}");
        assert!(line["ar"].as_f64().unwrap() > 0.0, "{line}");
    }
}

/// Keeps the BLEU of every validation report.
struct Bleus(Vec<Option<f64>>);

impl<T: ?Sized> Observer<T> for Bleus {
    fn on_eval(&mut self, _trainer: &T, report: &EvalReport, _improved: bool) {
        self.0.push(report.bleu);
    }
}

/// Writes `n` digit-reversal pairs (`3 1 4<TAB>4 1 3`) to `path`.
fn write_reversal_pairs(path: &Path, n: usize) {
    let mut x: u64 = 7;
    let mut out = String::new();
    for _ in 0..n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = 1 + (x >> 60) as usize % 5;
        let digits: Vec<String> = (0..len)
            .map(|k| ((x >> (8 * k + 8)) % 10).to_string())
            .collect();
        let reversed: Vec<String> = digits.iter().rev().cloned().collect();
        out += &format!("{}\t{}\n", digits.join(" "), reversed.join(" "));
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn seq2seq_validation_lines_carry_bleu_which_the_observer_sees_too() {
    use recurrent::seq2seq::{TrainOptions, Training};
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.tsv");
    write_reversal_pairs(&pairs, 200);
    let mut options = TrainOptions::new(&pairs);
    options.tokenizer = recurrent::TokenizerKind::Char;
    options.model = recurrent::Seq2SeqConfig::new(0, 0, 8, 16);
    options.batch = 8;
    options.stop.steps = Some(10);
    options.eval_every = Some(5);
    options.val_bleu = 10;
    options.threads = Some(1);
    let folder = RunFolder::create(dir.path().join("run")).unwrap();
    let mut bleus = Bleus(Vec::new());
    Training::start(&options, folder.clone())
        .unwrap()
        .run(&mut bleus)
        .unwrap();
    let (train, val) = metrics(&folder);
    assert_eq!(train.len(), 10);
    for line in &train {
        assert_eq!(keys(line), set(&TRAIN), "{line}");
    }
    assert_eq!(val.len(), 2);
    let names = [
        "kind",
        "step",
        "epoch",
        "loss",
        "perplexity",
        "accuracy",
        "bleu",
        "elapsed",
    ];
    for (line, bleu) in val.iter().zip(&bleus.0) {
        assert_eq!(keys(line), set(&names), "{line}");
        close(line["bleu"].as_f64().unwrap(), bleu.unwrap());
    }
    assert_eq!(bleus.0.len(), 2);
}
