//! End-to-end tests of the `recurrent` binary: train, sample, eval, info,
//! import and export on small texts made here, and bad input of every kind.
//!
//! Every model is tiny (one layer of 16 units, a few steps on one thread), so
//! the whole file runs in a few seconds even in a debug build. Each test works
//! in its own temporary folder, which is also the working directory of every
//! command, so nothing is ever written into the repository.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A tiny model and quick training: flags shared by every `train` here.
const TINY: &[&str] = &[
    "--hidden",
    "16",
    "--embed",
    "8",
    "--layers",
    "1",
    "--batch",
    "4",
    "--seq-len",
    "16",
    "--threads",
    "1",
    "--sample-length",
    "0",
];

/// The five files of a checkpoint written by `train`.
const CHECKPOINT_FILES: [&str; 5] = [
    "config.json",
    "model.safetensors",
    "vocab.json",
    "optimizer.safetensors",
    "trainer_state.json",
];

/// A temporary folder the commands run in.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (creating folders) and returns its path.
    fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, bytes).unwrap();
        path
    }

    /// Runs `recurrent ARGS` in the sandbox.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_recurrent"))
            .args(args)
            .current_dir(self.dir.path())
            // A panic would then print "note: run with `RUST_BACKTRACE=1`",
            // which `assert_no_panic` looks for.
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("the recurrent binary runs")
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_no_panic(&out, args);
        assert!(
            out.status.success(),
            "`recurrent {}` failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("stdout is UTF-8")
    }

    /// Runs a command that must fail with a one-line `error: ...` naming the
    /// problem (every needle must appear in it); returns that line.
    fn fails(&self, args: &[&str], needles: &[&str]) -> String {
        let out = self.run(args);
        assert_no_panic(&out, args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "`recurrent {}` succeeded but should have failed:\n{stderr}",
            args.join(" ")
        );
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(
            errors.len(),
            1,
            "`recurrent {}`: expected exactly one `error:` line in\n{stderr}",
            args.join(" ")
        );
        let line = errors[0];
        // Our own errors end the output; clap's are followed by a usage hint.
        let rest: Vec<&str> = stderr
            .lines()
            .skip_while(|l| !l.starts_with("error:"))
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .collect();
        let clap = out.status.code() == Some(2);
        if !clap {
            assert!(
                rest.is_empty(),
                "the error message spans several lines:\n{stderr}"
            );
        }
        for needle in needles {
            assert!(
                line.contains(needle),
                "`recurrent {}`: the error does not mention {needle:?}:\n{line}",
                args.join(" ")
            );
        }
        line.to_string()
    }

    /// Trains a tiny model on `input` into `out` with extra flags.
    fn train(&self, input: &str, out: &str, extra: &[&str]) -> String {
        let mut args = vec!["train", "--input", input, "--out", out];
        args.extend(tiny_with(extra));
        self.ok(&args)
    }

    /// `train --resume RUN --steps STEPS` on one thread, without the closing sample.
    fn resume(&self, run: &str, steps: u64) -> String {
        let steps = steps.to_string();
        self.ok(&[
            "train",
            "--resume",
            run,
            "--steps",
            &steps,
            "--threads",
            "1",
            "--sample-length",
            "0",
        ])
    }

    /// `eval CKPT --input TEXT --json --batch 1` as parsed JSON.
    fn eval_json(&self, checkpoint: &str, input: &str) -> Value {
        let out = self.ok(&[
            "eval",
            checkpoint,
            "--input",
            input,
            "--json",
            "--batch",
            "1",
            "--threads",
            "1",
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "eval --json printed {out:?}");
        serde_json::from_str(lines[0]).expect("eval --json prints JSON")
    }

    /// `sample CKPT --seed SEED --length LEN ...` as printed (trailing newline removed).
    fn sample(&self, checkpoint: &str, length: usize, seed: u64, extra: &[&str]) -> String {
        let (length, seed) = (length.to_string(), seed.to_string());
        let mut args = vec![
            "sample",
            checkpoint,
            "--length",
            &length,
            "--seed",
            &seed,
            "--threads",
            "1",
        ];
        args.extend_from_slice(extra);
        let out = self.ok(&args);
        out.strip_suffix('\n')
            .expect("a sample ends with a newline")
            .to_string()
    }
}

/// [`TINY`] followed by `extra`, where a flag of `extra` replaces the same flag of `TINY`.
fn tiny_with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args: Vec<&str> = Vec::new();
    for pair in TINY.chunks(2) {
        if !extra.contains(&pair[0]) {
            args.extend_from_slice(pair);
        }
    }
    args.extend_from_slice(extra);
    args
}

fn assert_no_panic(out: &Output, args: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "`recurrent {}` panicked:\n{stderr}",
        args.join(" ")
    );
    // 101 is a panic's exit code; signals (an abort) give no code at all.
    assert!(
        out.status.code().is_some_and(|c| c != 101),
        "`recurrent {}` crashed ({:?}):\n{stderr}",
        args.join(" "),
        out.status
    );
}

/// A few KB of text with structure: sentences over a small vocabulary, drawn
/// by a fixed linear congruential generator so every run sees the same text.
fn corpus(sentences: usize, seed: u64) -> String {
    let words = [
        "the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "from", "home", "quick",
        "brown", "fox",
    ];
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut text = String::new();
    for _ in 0..sentences {
        let n = 3 + next() % 5;
        let sentence: Vec<&str> = (0..n).map(|_| words[next() % words.len()]).collect();
        let mut s = sentence.join(" ");
        s[..1].make_ascii_uppercase();
        text.push_str(&s);
        text.push_str(if next() % 4 == 0 { "?\n" } else { ".\n" });
    }
    text
}

fn chars_of(text: &str) -> BTreeSet<char> {
    text.chars().collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn vocab_len(checkpoint: &Path) -> usize {
    read_json(&checkpoint.join("vocab.json"))
        .as_array()
        .expect("vocab.json is an array")
        .len()
}

fn assert_checkpoint(dir: &Path) {
    for file in CHECKPOINT_FILES {
        assert!(
            dir.join(file).is_file(),
            "{} is missing",
            dir.join(file).display()
        );
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn end_to_end_train_sample_eval_info() {
    let sb = Sandbox::new();
    let text = corpus(250, 1);
    sb.write("corpus.txt", &text);
    sb.train("corpus.txt", "run", &["--cell", "gru", "--steps", "6"]);

    for slot in ["best", "last"] {
        assert_checkpoint(&sb.path("run").join(slot));
    }
    let metrics = fs::read_to_string(sb.path("run/metrics.jsonl")).unwrap();
    let kinds: Vec<String> = metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "train").count(),
        6,
        "{metrics}"
    );
    assert!(kinds.iter().any(|k| k == "val"), "{metrics}");
    // The loss curve is drawn into the run folder, and `plot` redraws it.
    let svg = fs::read_to_string(sb.path("run/loss.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("validation"),
        "{svg}"
    );
    sb.ok(&["plot", "run", "--out", "curve.svg"]);
    assert!(fs::read_to_string(sb.path("curve.svg"))
        .unwrap()
        .contains("training"));

    // Sampling: the right number of characters, all from the corpus, reproducible.
    let corpus_chars = chars_of(&text);
    let a = sb.sample("run", 50, 1, &[]);
    assert_eq!(a.chars().count(), 50, "{a:?}");
    assert!(a.chars().all(|c| corpus_chars.contains(&c)), "{a:?}");
    assert_eq!(sb.sample("run", 50, 1, &[]), a);
    assert_ne!(sb.sample("run", 50, 2, &[]), a);

    // Greedy sampling ignores the seed.
    let greedy = sb.sample("run", 30, 1, &["--temperature", "0"]);
    assert_eq!(greedy.chars().count(), 30);
    assert_eq!(sb.sample("run", 30, 99, &["--temperature", "0"]), greedy);

    // top-k / top-p are accepted together.
    let filtered = sb.sample("run", 20, 1, &["--top-k", "3", "--top-p", "0.9"]);
    assert_eq!(filtered.chars().count(), 20);

    // A prime is printed before the sample.
    let primed = sb.sample("run", 10, 1, &["--prime", "The cat"]);
    assert!(primed.starts_with("The cat"), "{primed:?}");
    assert_eq!(primed.chars().count(), "The cat".len() + 10);

    // -n 3 prints three samples.
    let three = sb.sample("run", 20, 1, &["-n", "3"]);
    for i in 1..=3 {
        assert!(three.contains(&format!("=== sample {i} ===")), "{three}");
    }
    assert!(!three.contains("=== sample 4 ==="));
    // Sample 1 of a batch is the sample a batch of one gives.
    let first = three
        .split("=== sample 2 ===")
        .next()
        .unwrap()
        .strip_prefix("=== sample 1 ===\n")
        .and_then(|s| s.strip_suffix('\n'))
        .unwrap();
    assert_eq!(first, sb.sample("run", 20, 1, &[]));

    // --stop cuts the sample before the first occurrence of the stop string.
    let stop: String = a.chars().skip(10).take(2).collect();
    let cut = sb.sample("run", 50, 1, &["--stop", &stop]);
    let at = a.find(&stop).unwrap();
    assert_eq!(cut, a[..at], "stop {stop:?} on {a:?}");
    assert!(cut.chars().count() < 50);

    // eval: one JSON object whose numbers agree with each other.
    let r = sb.eval_json("run", "corpus.txt");
    let loss = r["loss"].as_f64().unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{r}");
    assert!(close(
        r["bits_per_token"].as_f64().unwrap(),
        loss / std::f64::consts::LN_2
    ));
    assert!(close(r["perplexity"].as_f64().unwrap(), loss.exp()));
    assert_eq!(
        r["tokens"].as_u64().unwrap() as usize,
        text.chars().count() - 1
    );
    // A run folder means its best/ checkpoint.
    assert_eq!(sb.eval_json("run/best", "corpus.txt"), r);

    // bf16 weights: a sample of the same length and characters, reproducible;
    // eval of the rounded model gives a loss that moved, but little.
    let half = sb.sample("run", 50, 1, &["--weights", "bf16"]);
    assert_eq!(half.chars().count(), 50, "{half:?}");
    assert!(half.chars().all(|c| corpus_chars.contains(&c)), "{half:?}");
    assert_eq!(sb.sample("run", 50, 1, &["--weights", "bf16"]), half);
    let out = sb.ok(&[
        "eval",
        "run",
        "--input",
        "corpus.txt",
        "--json",
        "--weights",
        "bf16",
    ]);
    let r16: Value = serde_json::from_str(out.trim()).unwrap();
    let loss16 = r16["loss"].as_f64().unwrap();
    assert!(
        loss16 != loss && (loss16 - loss).abs() < 0.01 * loss,
        "{loss16} vs {loss}"
    );
    sb.fails(
        &["sample", "run", "--weights", "f16"],
        &["f16", "--weights"],
    );

    // info names the cell and the exact parameter count.
    let info = sb.ok(&["info", "run"]);
    let v = corpus_chars.len();
    assert_eq!(vocab_len(&sb.path("run/best")), v);
    let gh = 3 * 16; // GRU: three gate blocks of 16 units
    let params = v * 8 + gh * 8 + gh * 16 + 2 * gh + v * 16 + v;
    assert!(info.contains("gru"), "{info}");
    assert!(info.contains(&format!("parameters   {params}")), "{info}");
}

#[test]
fn resume_continues_bit_for_bit() {
    let sb = Sandbox::new();
    sb.write("corpus.txt", corpus(250, 2));
    let flags = ["--dropout", "0.2", "--seed", "5"];
    sb.train(
        "corpus.txt",
        "A",
        &[&["--steps", "8"][..], &flags[..]].concat(),
    );
    sb.train(
        "corpus.txt",
        "B",
        &[&["--steps", "4"][..], &flags[..]].concat(),
    );
    let b4 = fs::read(sb.path("B/last/model.safetensors")).unwrap();
    sb.resume("B", 8);
    let state = read_json(&sb.path("B/last/trainer_state.json"));
    assert_eq!(state["trainer"]["step"], 8);
    let b8 = fs::read(sb.path("B/last/model.safetensors")).unwrap();
    assert_ne!(b4, b8, "resuming did not train");
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let a = fs::read(sb.path("A/last").join(file)).unwrap();
        let b = fs::read(sb.path("B/last").join(file)).unwrap();
        assert!(a == b, "A/last/{file} and B/last/{file} differ");
    }
}

#[test]
fn bf16_is_kept_with_the_run_and_explained() {
    let sb = Sandbox::new();
    sb.write("corpus.txt", corpus(150, 3));
    let mut args = vec![
        "train",
        "--input",
        "corpus.txt",
        "--out",
        "E",
        "--steps",
        "4",
    ];
    args.extend(tiny_with(&["--precision", "bf16"]));
    // The emulated kernel gives bf16's numbers on any CPU, and says so.
    let out = Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args(&args)
        .current_dir(sb.path(""))
        .env("RECURRENT_BF16_KERNEL", "emulated")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("bf16 operands") && stderr.contains("kernel: emulated"),
        "{stderr}"
    );
    let state = read_json(&sb.path("E/last/trainer_state.json"));
    assert_eq!(state["trainer"]["precision"], "bf16");
    // A resume keeps the run's precision, unless given a new one.
    sb.resume("E", 6);
    let state = read_json(&sb.path("E/last/trainer_state.json"));
    assert_eq!(
        (
            state["trainer"]["step"].as_u64(),
            &state["trainer"]["precision"]
        ),
        (Some(6), &Value::from("bf16"))
    );
    sb.ok(&[
        "train",
        "--resume",
        "E",
        "--steps",
        "8",
        "--precision",
        "f32",
        "--threads",
        "1",
        "--sample-length",
        "0",
    ]);
    let state = read_json(&sb.path("E/last/trainer_state.json"));
    assert_eq!(
        (
            state["trainer"]["step"].as_u64(),
            &state["trainer"]["precision"]
        ),
        (Some(8), &Value::from("f32"))
    );
    sb.fails(
        &["train", "--input", "corpus.txt", "--precision", "fp8"],
        &["fp8", "f32 or bf16"],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args(["train", "--input", "corpus.txt", "--steps", "1"])
        .current_dir(sb.path(""))
        .env("RECURRENT_BF16_KERNEL", "tpu")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.starts_with("error: RECURRENT_BF16_KERNEL: unknown bf16 kernel \"tpu\""),
        "{stderr}"
    );
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let sb = Sandbox::new();
    sb.write("corpus.txt", corpus(200, 3));
    for (out, seed) in [("s1", "7"), ("s2", "7"), ("s3", "8")] {
        sb.train(
            "corpus.txt",
            out,
            &["--steps", "4", "--dropout", "0.1", "--seed", seed],
        );
    }
    let w = |run: &str| fs::read(sb.path(run).join("last/model.safetensors")).unwrap();
    assert!(w("s1") == w("s2"), "same seed, different weights");
    assert!(w("s1") != w("s3"), "different seeds, same weights");
}

#[test]
fn unicode_text_and_raw_bytes() {
    let sb = Sandbox::new();
    // Chinese, emoji (outside the BMP), and a combining acute accent (U+0301).
    let line = "你好，世界！😀🎉 café cafe\u{301} naïve 中文字符。\n";
    let text = line.repeat(40);
    sb.write("uni.txt", &text);
    sb.train("uni.txt", "u", &["--steps", "3"]);
    let vocab = read_json(&sb.path("u/best/vocab.json"));
    assert!(vocab.as_array().unwrap().contains(&Value::from("\u{301}")));
    assert!(vocab.as_array().unwrap().contains(&Value::from("😀")));
    let s = sb.sample("u", 80, 3, &[]);
    assert_eq!(s.chars().count(), 80);
    let known = chars_of(&text);
    assert!(s.chars().all(|c| known.contains(&c)), "{s:?}");
    // A prime of non-ASCII characters encodes.
    assert!(sb
        .sample("u", 5, 3, &["--prime", "你好"])
        .starts_with("你好"));

    // Invalid UTF-8: byte mode trains on it, char mode names the file and the way out.
    let mut bytes = b"caf\xe9 au lait \xff\xfe ".repeat(30);
    bytes.extend_from_slice("and valid ünïcode\n".repeat(20).as_bytes());
    sb.write("latin1.txt", &bytes);
    sb.train("latin1.txt", "b", &["--steps", "3", "--tokenizer", "byte"]);
    assert_eq!(vocab_len(&sb.path("b/best")), 256);
    let s = sb.ok(&[
        "sample",
        "b",
        "--length",
        "40",
        "--seed",
        "1",
        "--threads",
        "1",
    ]);
    assert!(!s.is_empty());
    let r = sb.eval_json("b", "latin1.txt");
    assert_eq!(r["tokens"].as_u64().unwrap() as usize, bytes.len() - 1);

    let mut args = vec![
        "train",
        "--input",
        "latin1.txt",
        "--out",
        "c",
        "--steps",
        "3",
    ];
    args.extend(tiny_with(&[]));
    sb.fails(&args, &["latin1.txt", "UTF-8", "--tokenizer byte"]);
    assert!(!sb.path("c").exists(), "a failed start left a run folder");
    // eval of a char model on such a file: the same advice.
    sb.fails(
        &["eval", "u", "--input", "latin1.txt"],
        &["latin1.txt", "UTF-8", "--tokenizer byte"],
    );
}

#[test]
fn folder_of_documents_with_state_resets() {
    let sb = Sandbox::new();
    for i in 0..5 {
        sb.write(&format!("docs/d{i}.txt"), corpus(40, 10 + i));
    }
    // Hidden files are not documents (and this one is not even text).
    sb.write("docs/.hidden", [0xffu8, 0xfe]);
    sb.train(
        "docs",
        "run",
        &["--steps", "4", "--reset-between-docs", "--eval-every", "2"],
    );
    assert_checkpoint(&sb.path("run/best"));
    let vocab = read_json(&sb.path("run/best/vocab.json"));
    assert_eq!(vocab.as_array().unwrap().last().unwrap(), "<doc>");
    let state = read_json(&sb.path("run/last/trainer_state.json"));
    assert_eq!(state["trainer"]["config"]["reset_between_docs"], true);
    let val_lines = fs::read_to_string(sb.path("run/metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"val\""))
        .count();
    assert_eq!(val_lines, 2);
    // The document boundary decodes to nothing: samples hold corpus characters only.
    let known: BTreeSet<char> = (0..5).flat_map(|i| chars_of(&corpus(40, 10 + i))).collect();
    let s = sb.sample("run", 60, 1, &[]);
    assert!(s.chars().all(|c| known.contains(&c)), "{s:?}");
}

#[test]
fn fine_tuning_on_new_characters_needs_extend_vocab() {
    let sb = Sandbox::new();
    let old = corpus(200, 4);
    sb.write("old.txt", &old);
    sb.train("old.txt", "base", &["--steps", "3"]);
    // New text: the same kind of sentences plus characters the model never saw.
    let new = corpus(200, 5).replace("cat", "cät#!");
    sb.write("new.txt", &new);
    let missing: Vec<String> = chars_of(&new)
        .difference(&chars_of(&old))
        .map(|c| format!("{c:?}"))
        .collect();
    assert!(missing.len() >= 3, "{missing:?}");

    let mut args = vec![
        "train",
        "--input",
        "new.txt",
        "--out",
        "tuned",
        "--init-from",
        "base",
        "--steps",
        "3",
    ];
    args.extend(tiny_with(&[]));
    let mut needles: Vec<&str> = missing.iter().map(String::as_str).collect();
    needles.push("--extend-vocab");
    sb.fails(&args, &needles);

    args.push("--extend-vocab");
    sb.ok(&args);
    let before = vocab_len(&sb.path("base/best"));
    let after = vocab_len(&sb.path("tuned/best"));
    assert_eq!(after, before + missing.len());
    let r = sb.eval_json("tuned", "new.txt");
    assert!(r["loss"].as_f64().unwrap().is_finite());
    // The old model cannot read the new text, and says which characters it lacks.
    sb.fails(
        &["eval", "base", "--input", "new.txt"],
        &["new.txt", "'ä'", "not in the vocabulary"],
    );
}

#[test]
fn pytorch_export_and_import() {
    let sb = Sandbox::new();
    sb.write("corpus.txt", corpus(200, 6));
    sb.train("corpus.txt", "run", &["--steps", "3"]);
    sb.ok(&["export", "pytorch", "run", "--out", "w.safetensors"]);
    sb.ok(&[
        "import",
        "pytorch",
        "--weights",
        "w.safetensors",
        "--vocab",
        "run/best/vocab.json",
        "--cell",
        "lstm",
        "--out",
        "back",
    ]);
    let original = sb.eval_json("run", "corpus.txt");
    let imported = sb.eval_json("back", "corpus.txt");
    assert_eq!(original["loss"], imported["loss"]);
    assert_eq!(original["tokens"], imported["tokens"]);
    // The wrong cell is caught from the tensor shapes.
    sb.fails(
        &[
            "import",
            "pytorch",
            "--weights",
            "w.safetensors",
            "--vocab",
            "run/best/vocab.json",
            "--cell",
            "gru",
            "--out",
            "wrong",
        ],
        &["w.safetensors", "--cell"],
    );

    // The committed state dict written by PyTorch itself.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/model/tests/fixtures");
    let weights = fixtures.join("lstm_state_dict.safetensors");
    let vocab = fixtures.join("lstm_vocab.json");
    let out = sb.ok(&[
        "import",
        "pytorch",
        "--weights",
        weights.to_str().unwrap(),
        "--vocab",
        vocab.to_str().unwrap(),
        "--cell",
        "lstm",
        "--out",
        "torch",
    ]);
    assert!(out.contains("2x7 lstm"), "{out}");
    let info = sb.ok(&["info", "torch"]);
    assert!(info.contains("2 layers x 7 lstm"), "{info}");
    sb.write("abc.txt", "abcdefghij\nbadge\nfaced\n".repeat(5));
    let r = sb.eval_json("torch", "abc.txt");
    assert!(r["loss"].as_f64().unwrap().is_finite(), "{r}");
    let s = sb.sample("torch", 30, 1, &[]);
    assert!(
        s.chars().all(|c| ('a'..='j').contains(&c) || c == '\n'),
        "{s:?}"
    );
    // A vocabulary of the wrong size is named.
    sb.fails(
        &[
            "import",
            "pytorch",
            "--weights",
            weights.to_str().unwrap(),
            "--vocab",
            "run/best/vocab.json",
            "--cell",
            "lstm",
            "--out",
            "bad",
        ],
        &["vocab.json", "11"],
    );
}

/// Bad training input: every case fails with one clear line, or (one repeated
/// character) trains, since that text is degenerate but legal.
#[test]
fn bad_training_input() {
    let sb = Sandbox::new();
    let train = |input: &str, out: &str, extra: &[&str], needles: &[&str]| {
        let mut args = vec!["train", "--input", input, "--out", out, "--steps", "2"];
        args.extend(tiny_with(extra));
        sb.fails(&args, needles)
    };

    sb.write("empty.txt", "");
    train("empty.txt", "r", &[], &["empty.txt", "empty"]);

    fs::create_dir_all(sb.path("nothing/sub")).unwrap();
    sb.write("nothing/.hidden.txt", "hidden files do not count");
    sb.write("nothing/sub/empty.txt", "");
    train("nothing", "r", &[], &["nothing", "no text files"]);

    train("missing.txt", "r", &[], &["missing.txt", "no such file"]);

    sb.write("short.txt", "hello world, a short text\n");
    train(
        "short.txt",
        "r",
        &[],
        &["--batch 4", "--seq-len 16", "too few"],
    );
    sb.write("tiny.txt", "x");
    train("tiny.txt", "r", &[], &["1 token"]);

    let text = corpus(200, 7);
    sb.write("corpus.txt", &text);
    // A separate validation text too short to predict anything.
    train(
        "corpus.txt",
        "r",
        &["--val", "tiny.txt"],
        &["validation", "1 token"],
    );
    train(
        "corpus.txt",
        "r",
        &["--val", "missing.txt"],
        &["missing.txt"],
    );

    train(
        "corpus.txt",
        "r",
        &["--tie"],
        &["tying", "embedding width (8)", "(16)"],
    );
    train("corpus.txt", "r", &["--cell", "foo"], &["--cell", "foo"]);
    train(
        "corpus.txt",
        "r",
        &["--hidden", "abc"],
        &["--hidden", "abc"],
    );
    train(
        "corpus.txt",
        "r",
        &["--tokenizer", "words"],
        &["--tokenizer", "words"],
    );
    train(
        "corpus.txt",
        "r",
        &["--optimizer", "lion"],
        &["--optimizer", "lion"],
    );
    train(
        "corpus.txt",
        "r",
        &["--schedule", "warp"],
        &["--schedule", "warp"],
    );
    // Schedule errors name the part of the text that is wrong.
    train(
        "corpus.txt",
        "r",
        &["--schedule", "step:0:0.5"],
        &["--schedule", "EVERY", "at least 1"],
    );
    let mut args = vec!["train", "--input", "corpus.txt", "--out", "r"];
    args.extend(tiny_with(&["--schedule", "cosine", "--time", "5s"]));
    sb.fails(&args, &["--schedule cosine", "--steps or --epochs"]);
    train("corpus.txt", "r", &["--time", "soon"], &["--time", "soon"]);
    train(
        "corpus.txt",
        "r",
        &["--dropout", "1.5"],
        &["dropout", "1.5"],
    );
    train(
        "corpus.txt",
        "r",
        &["--val-fraction", "-0.5"],
        &["--val-fraction"],
    );
    train("corpus.txt", "r", &["--lr", "-1"], &["--lr", "-1"]);
    train("corpus.txt", "r", &["--lr", "NaN"], &["--lr"]);
    train("corpus.txt", "r", &["--clip", "-1"], &["--clip", "-1"]);
    train("corpus.txt", "r", &["--batch", "0"], &["--batch"]);
    train("corpus.txt", "r", &["--seq-len", "0"], &["--seq-len"]);
    train("corpus.txt", "r", &["--layers", "0"], &["layers"]);
    train("corpus.txt", "r", &["--threads", "0"], &["--threads"]);
    // Absurd sizes are refused up front rather than overflowing or exhausting memory.
    let huge = usize::MAX.to_string();
    train("corpus.txt", "r", &["--hidden", &huge], &["parameters"]);
    train(
        "corpus.txt",
        "r",
        &["--hidden", "100000000"],
        &["parameters"],
    );
    train("corpus.txt", "r", &["--layers", &huge], &["parameters"]);
    train("corpus.txt", "r", &["--seq-len", &huge], &["--seq-len"]);
    train("corpus.txt", "r", &["--batch", &huge], &["--batch"]);
    assert!(!sb.path("r").exists(), "a failed start left a run folder");

    // --out is an existing file, or an existing run.
    sb.write("afile", "not a folder");
    train("corpus.txt", "afile", &[], &["afile"]);
    sb.train("corpus.txt", "run", &["--steps", "2"]);
    train(
        "corpus.txt",
        "run",
        &[],
        &["run", "already holds a run", "--resume"],
    );

    // --resume of something that is not a run folder.
    let resume = |dir: &str, needles: &[&str]| {
        sb.fails(
            &["train", "--resume", dir, "--steps", "3", "--threads", "1"],
            needles,
        )
    };
    resume("run/best", &["run/best", "not a run folder", "--init-from"]);
    resume("nothing", &["nothing", "not a run folder"]);
    resume("nowhere", &["nowhere", "no such run folder"]);
    resume("corpus.txt", &["corpus.txt", "not a run folder"]);
    // A run continues only on the text it was trained on.
    sb.write("double.txt", text.repeat(2));
    sb.fails(
        &[
            "train",
            "--resume",
            "run",
            "--input",
            "double.txt",
            "--steps",
            "3",
        ],
        &["cannot resume", "differs"],
    );
    // --init-from of nothing.
    train("corpus.txt", "r", &["--init-from", "nowhere"], &["nowhere"]);

    // One repeated character: a vocabulary of one token. Degenerate but legal:
    // training succeeds, the only token is certain (loss 0, perplexity 1), and
    // samples repeat it.
    sb.write("aaaa.txt", "a".repeat(3000));
    sb.train("aaaa.txt", "aaaa", &["--steps", "3"]);
    assert_eq!(vocab_len(&sb.path("aaaa/best")), 1);
    assert_eq!(sb.sample("aaaa", 20, 1, &[]), "a".repeat(20));
    let r = sb.eval_json("aaaa", "aaaa.txt");
    assert_eq!(r["loss"].as_f64(), Some(0.0), "{r}");
    assert_eq!(r["perplexity"].as_f64(), Some(1.0), "{r}");
    assert_eq!(r["tokens"].as_u64(), Some(2999));
}

#[test]
fn bad_checkpoints_and_generation_settings() {
    let sb = Sandbox::new();
    let text = corpus(200, 8);
    sb.write("corpus.txt", &text);
    sb.train("corpus.txt", "run", &["--steps", "3"]);

    // No checkpoint at all.
    for cmd in [
        &["sample", "nowhere"][..],
        &["eval", "nowhere", "--input", "corpus.txt"],
        &["info", "nowhere"],
        &["export", "pytorch", "nowhere", "--out", "w.safetensors"],
    ] {
        sb.fails(cmd, &["nowhere", "no checkpoint"]);
    }
    fs::create_dir(sb.path("emptydir")).unwrap();
    sb.fails(&["info", "emptydir"], &["emptydir", "no checkpoint"]);

    // model.safetensors cut in half.
    copy_dir(&sb.path("run/best"), &sb.path("truncated"));
    let weights = sb.path("truncated/model.safetensors");
    let bytes = fs::read(&weights).unwrap();
    fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    for cmd in [
        &["info", "truncated"][..],
        &["sample", "truncated", "--length", "5"],
        &["eval", "truncated", "--input", "corpus.txt"],
    ] {
        sb.fails(cmd, &["model.safetensors", "truncated or corrupt"]);
    }

    // config.json with another hidden size than the weights.
    copy_dir(&sb.path("run/best"), &sb.path("mismatch"));
    let config = sb.path("mismatch/config.json");
    let edited = fs::read_to_string(&config)
        .unwrap()
        .replace("\"hidden\": 16", "\"hidden\": 32");
    assert!(edited.contains("\"hidden\": 32"));
    fs::write(&config, edited).unwrap();
    for cmd in [
        &["info", "mismatch"][..],
        &["sample", "mismatch", "--length", "5"],
    ] {
        sb.fails(cmd, &["mismatch", "does not match config.json"]);
    }

    // A config.json that is not JSON, and a missing vocab.json.
    copy_dir(&sb.path("run/best"), &sb.path("garbled"));
    fs::write(sb.path("garbled/config.json"), "{ not json").unwrap();
    sb.fails(&["info", "garbled"], &["config.json"]);
    copy_dir(&sb.path("run/best"), &sb.path("novocab"));
    fs::remove_file(sb.path("novocab/vocab.json")).unwrap();
    sb.fails(&["info", "novocab"], &["vocab.json"]);

    // Generation settings.
    let sample = |extra: &[&str], needles: &[&str]| {
        let mut args = vec!["sample", "run", "--length", "5", "--threads", "1"];
        args.extend_from_slice(extra);
        sb.fails(&args, needles)
    };
    let line = sample(&["--prime", "Zebra€"], &["prime", "'Z'", "'€'"]);
    assert!(
        !line.contains("'e'"),
        "only missing characters are named: {line}"
    );
    sample(&["--temperature", "-1"], &["--temperature", "-1"]);
    sample(&["--temperature", "nan"], &["--temperature"]);
    sample(&["--top-p", "2"], &["--top-p", "2"]);
    sample(&["--top-p", "0"], &["--top-p"]);
    sample(&["--top-k", "0"], &["--top-k"]);
    sample(&["-n", "0"], &["-n"]);
    sample(&["-n", &usize::MAX.to_string()], &["-n"]);
    sample(&["--stop", ""], &["--stop"]);
    for threads in ["0", "1000"] {
        sb.fails(
            &["sample", "run", "--length", "5", "--threads", threads],
            &["--threads", threads],
        );
        sb.fails(
            &["eval", "run", "--input", "corpus.txt", "--threads", threads],
            &["--threads", threads],
        );
    }
    sb.fails(
        &["sample", "run", "--length", "many"],
        &["--length", "many"],
    );

    // eval on text that is too short or missing.
    sb.write("one.txt", ".");
    sb.fails(
        &["eval", "run", "--input", "one.txt"],
        &["1 token", "at least 2"],
    );
    sb.fails(&["eval", "run", "--input", "missing.txt"], &["missing.txt"]);
    // Block sizes beyond the text only change speed, never overflow.
    let huge = usize::MAX.to_string();
    let out = sb.ok(&[
        "eval",
        "run",
        "--input",
        "corpus.txt",
        "--json",
        "--seq-len",
        &huge,
        "--batch",
        "1",
    ]);
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r, sb.eval_json("run", "corpus.txt"));

    // import of files that are not weights.
    sb.fails(
        &[
            "import",
            "pytorch",
            "--weights",
            "corpus.txt",
            "--vocab",
            "run/best/vocab.json",
            "--cell",
            "lstm",
            "--out",
            "x",
        ],
        &["corpus.txt"],
    );
}

/// Divergence: a learning rate that jumps to 2e30 after four good steps
/// (a step schedule), without clipping, blows the weights up. Validating every
/// step saves `last/` at each good step; the run must then stop with an error
/// saying it diverged, and must not overwrite that checkpoint with the
/// diverged weights (their loss is finite but enormous).
#[test]
fn diverging_training_stops_and_keeps_the_last_good_checkpoint() {
    let sb = Sandbox::new();
    sb.write("corpus.txt", corpus(200, 9));
    let mut args = vec![
        "train",
        "--input",
        "corpus.txt",
        "--out",
        "run",
        "--steps",
        "30",
        "--lr",
        "2e-3",
        "--schedule",
        "step:4:1e33",
        "--clip",
        "0",
        "--eval-every",
        "1",
    ];
    args.extend(tiny_with(&[]));
    sb.fails(
        &args,
        &["diverged at step", "last good checkpoint is kept", "run"],
    );

    let info = sb.ok(&["info", "run/last"]);
    assert!(info.contains("parameters"), "{info}");
    let state = read_json(&sb.path("run/last/trainer_state.json"));
    let step = state["trainer"]["step"].as_u64().unwrap();
    assert!((1..30).contains(&step), "last/ is at step {step}");
    // The kept checkpoint is the last one whose validation loss was finite.
    let best = state["trainer"]["history"].as_array().unwrap();
    assert!(best
        .iter()
        .all(|h| h["loss"].as_f64().is_some_and(f64::is_finite)));
}

#[test]
fn word_and_bpe_models_train_sample_and_evaluate() {
    let sb = Sandbox::new();
    let text = corpus(300, 5);
    sb.write("corpus.txt", &text);

    sb.train(
        "corpus.txt",
        "words",
        &["--tokenizer", "word", "--steps", "4", "--seq-len", "8"],
    );
    assert_checkpoint(&sb.path("words/best"));
    let vocab = read_json(&sb.path("words/best/vocab.json"));
    assert!(vocab.as_array().unwrap().iter().any(|t| t == "<eos>"));
    // Generated words come from the corpus (or are the end-of-line token).
    let words: BTreeSet<&str> = text.split_whitespace().collect();
    let sample = sb.sample("words", 20, 3, &["--prime", "The cat"]);
    assert!(sample.starts_with("The cat"), "{sample:?}");
    for w in sample.split_whitespace() {
        assert!(
            words.contains(w) || w == "<unk>",
            "{w:?} not in the corpus: {sample:?}"
        );
    }
    let eval = sb.eval_json("words", "corpus.txt");
    assert!(
        eval["bits_per_char"].is_null(),
        "word models report no bits per character"
    );

    sb.train(
        "corpus.txt",
        "bpe",
        &[
            "--tokenizer",
            "bpe",
            "--vocab-size",
            "300",
            "--steps",
            "4",
            "--seq-len",
            "8",
        ],
    );
    assert!(sb.path("bpe/best/tokenizer.json").is_file());
    let eval = sb.eval_json("bpe", "corpus.txt");
    let (loss, tokens) = (
        eval["loss"].as_f64().unwrap(),
        eval["tokens"].as_f64().unwrap(),
    );
    let bpc = eval["bits_per_char"].as_f64().unwrap();
    // A BPE token covers at least one character, so bits per char <= bits per token.
    assert!(
        bpc > 0.0 && bpc <= loss / std::f64::consts::LN_2 + 1e-9,
        "{eval}"
    );
    assert!(
        tokens < text.chars().count() as f64,
        "BPE merges characters: {eval}"
    );
    // An untrained byte-level model may emit any byte, so only check it samples.
    let sample = sb.sample("bpe", 30, 1, &[]);
    assert!(!sample.is_empty());

    // Options that do not apply are refused.
    sb.fails(
        &[
            "train",
            "--input",
            "corpus.txt",
            "--vocab-size",
            "50",
            "--out",
            "x",
            "--steps",
            "1",
        ],
        &["--vocab-size"],
    );
}

#[test]
fn awd_regularizers_resume_bit_for_bit_and_bad_values_are_named() {
    let sb = Sandbox::new();
    sb.write("corpus.txt", corpus(250, 2));
    let flags = [
        "--layers",
        "2",
        "--seed",
        "5",
        "--dropout-input",
        "0.2",
        "--dropout-hidden",
        "0.2",
        "--dropout-output",
        "0.3",
        "--dropout-embed",
        "0.1",
        "--weight-drop",
        "0.4",
        "--alpha",
        "--beta",
        "--variable-bptt",
    ];
    sb.train(
        "corpus.txt",
        "A",
        &[&["--steps", "8"][..], &flags[..]].concat(),
    );
    sb.train(
        "corpus.txt",
        "B",
        &[&["--steps", "4"][..], &flags[..]].concat(),
    );
    let state = read_json(&sb.path("B/last/trainer_state.json"));
    let reg = &state["trainer"]["regularizers"];
    assert_eq!(reg["alpha"], 2.0, "--alpha alone means AWD's 2: {reg}");
    assert_eq!(reg["beta"], 1.0, "--beta alone means AWD's 1: {reg}");
    assert_eq!(reg["variable_bptt"], true);
    sb.resume("B", 8);
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let a = fs::read(sb.path("A/last").join(file)).unwrap();
        let b = fs::read(sb.path("B/last").join(file)).unwrap();
        assert!(a == b, "A/last/{file} and B/last/{file} differ");
    }
    // The penalties are logged beside the cross-entropy.
    let metrics = fs::read_to_string(sb.path("A/metrics.jsonl")).unwrap();
    let first: Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert!(first["ar"].as_f64().unwrap() > 0.0, "{first}");
    assert!(first["tar"].as_f64().unwrap() > 0.0, "{first}");
    // The settings stay with the run: --resume does not take them.
    sb.fails(
        &["train", "--resume", "B", "--weight-drop", "0.5"],
        &["--weight-drop", "--resume"],
    );
    for (flag, value) in [
        ("--dropout-input", "1"),
        ("--dropout-hidden", "-0.1"),
        ("--dropout-output", "1.5"),
        ("--dropout-embed", "NaN"),
        ("--weight-drop", "2"),
        ("--alpha", "-1"),
        ("--beta", "inf"),
    ] {
        let mut args = vec!["train", "--input", "corpus.txt", "--out", "bad"];
        args.extend(tiny_with(&[flag, value, "--steps", "1"]));
        sb.fails(&args, &[flag, value]);
    }
}

/// Digit strings and their reversals, `3 1 4<TAB>4 1 3`, one pair per line.
fn reversal_pairs(n: usize) -> String {
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
    out
}

/// Tiny seq2seq training flags.
const TINY_S2S: &[&str] = &[
    "--tokenizer",
    "char",
    "--hidden",
    "16",
    "--embed",
    "8",
    "--layers",
    "1",
    "--batch",
    "8",
    "--threads",
    "1",
    "--val-bleu",
    "10",
];

#[test]
fn seq2seq_train_translate_eval_and_resume() {
    let sb = Sandbox::new();
    let pairs = sb.write("pairs.tsv", reversal_pairs(200));
    let pairs = pairs.to_str().unwrap();
    let train = |out: &str, steps: &str, extra: &[&str]| {
        let mut args = vec![
            "seq2seq", "train", "--pairs", pairs, "--format", "tsv", "--out", out,
        ];
        args.extend_from_slice(TINY_S2S);
        args.extend_from_slice(&["--steps", steps, "--eval-every", "10"]);
        args.extend_from_slice(extra);
        sb.ok(&args)
    };
    train("run", "20", &["--bidirectional", "--attention", "additive"]);
    for f in [
        "best/config.json",
        "last/target_vocab.json",
        "test.tsv",
        "valid.tsv",
        "loss.svg",
    ] {
        assert!(sb.path("run").join(f).is_file(), "run/{f} is missing");
    }
    // info describes a seq2seq checkpoint too.
    let info = sb.ok(&["info", "run"]);
    for needle in [
        "checkpoint   run",
        "model        seq2seq: 1 layers x 16 lstm units, additive attention",
        "bidirectional encoder",
        "source vocab ",
        "target vocab ",
        "  decoder.attention.",
        "training     step 20, epoch ",
        "batch 8 pairs, optimizer adam lr 0.001",
        "best val     ",
        "history      (step, epoch, validation loss, accuracy)",
    ] {
        assert!(info.contains(needle), "{needle:?} is missing:\n{info}");
    }
    // 5% + 5% of 200 pairs are held out, and written for `eval`.
    let test = fs::read_to_string(sb.path("run/test.tsv")).unwrap();
    assert_eq!(test.lines().count(), 10);
    let metrics = fs::read_to_string(sb.path("run/metrics.jsonl")).unwrap();
    let val: Vec<Value> = metrics
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "val")
        .collect();
    assert_eq!(val.len(), 2);
    assert!(val[0]["bleu"].is_number(), "{:?}", val[0]);

    // One output line per input line, a blank line for a blank line.
    sb.write("src.txt", "1 2 3\n\n4 5\n");
    let out = sb.ok(&[
        "seq2seq",
        "translate",
        "run",
        "--input",
        "src.txt",
        "--threads",
        "1",
    ]);
    let lines: Vec<&str> = out.split('\n').collect();
    assert_eq!(lines.len(), 4, "{out:?}");
    assert_eq!(lines[1], "");
    // Greedy and beam 1 agree; sampling at temperature 0 is greedy too.
    let greedy = sb.ok(&[
        "seq2seq",
        "translate",
        "run",
        "--input",
        "src.txt",
        "--beam",
        "1",
    ]);
    let t0 = sb.ok(&[
        "seq2seq",
        "translate",
        "run",
        "--input",
        "src.txt",
        "--temperature",
        "0",
    ]);
    assert_eq!(greedy, t0);
    sb.ok(&[
        "seq2seq",
        "translate",
        "run/best",
        "--input",
        "src.txt",
        "--attention-map",
        "a.svg",
        "--attention-line",
        "3",
    ]);
    assert!(fs::read_to_string(sb.path("a.svg"))
        .unwrap()
        .starts_with("<svg"));

    let json = sb.ok(&[
        "seq2seq",
        "eval",
        "run",
        "--pairs",
        "run/test.tsv",
        "--json",
        "--beam",
        "2",
    ]);
    let v: Value = serde_json::from_str(json.trim()).expect("one JSON object");
    for key in ["bleu", "chrf", "accuracy"] {
        let x = v[key].as_f64().unwrap_or(-1.0);
        let top = if key == "accuracy" { 1.0 } else { 100.0 };
        assert!((0.0..=top).contains(&x), "{key} = {x}");
    }
    assert_eq!(v["sentences"], 10);
    let text = sb.ok(&[
        "seq2seq",
        "eval",
        "run",
        "--pairs",
        "run/test.tsv",
        "--output",
        "hyp.txt",
    ]);
    assert!(text.contains("BLEU") && text.contains("chrF"), "{text}");
    assert_eq!(
        fs::read_to_string(sb.path("hyp.txt"))
            .unwrap()
            .lines()
            .count(),
        10
    );

    // 10 + 10 steps give the weights of 20, bit for bit.
    train("a", "10", &[]);
    sb.ok(&[
        "seq2seq",
        "train",
        "--resume",
        "a",
        "--steps",
        "20",
        "--threads",
        "1",
    ]);
    train("b", "20", &[]);
    let weights = |run: &str| fs::read(sb.path(run).join("last/model.safetensors")).unwrap();
    assert_eq!(weights("a"), weights("b"));
}

#[test]
fn seq2seq_bad_input_is_named() {
    let sb = Sandbox::new();
    sb.write("pairs.tsv", reversal_pairs(60));
    sb.write("notab.tsv", "1 2\t2 1\n3 4\n");
    sb.write("text.txt", corpus(20, 1));
    let s2s = |extra: &[&str]| {
        let mut args = vec!["seq2seq", "train", "--out", "r"];
        args.extend_from_slice(TINY_S2S);
        args.extend_from_slice(&["--steps", "2"]);
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let fails = |args: Vec<String>, needles: &[&str]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sb.fails(&args, needles);
    };
    fails(s2s(&["--pairs", "missing.tsv"]), &["missing.tsv"]);
    fails(s2s(&["--pairs", "notab.tsv"]), &["notab.tsv:2", "column 1"]);
    fails(
        s2s(&["--pairs", "pairs.tsv", "--tgt-col", "5"]),
        &["column"],
    );
    fails(
        s2s(&["--pairs", "pairs.tsv", "--teacher-forcing", "2"]),
        &["--teacher-forcing"],
    );
    fails(
        s2s(&[
            "--pairs",
            "pairs.tsv",
            "--valid-fraction",
            "0.7",
            "--test-fraction",
            "0.5",
        ]),
        &["--valid-fraction", "--test-fraction"],
    );
    fails(
        s2s(&["--pairs", "pairs.tsv", "--tie"]),
        &["embed", "hidden"],
    );

    // A language model is not a seq2seq model, and the other way round.
    sb.train("text.txt", "lm", &["--steps", "2"]);
    sb.fails(&["seq2seq", "translate", "lm"], &["language model"]);
    let mut args = s2s(&["--pairs", "pairs.tsv"]);
    args[3] = "s2s".into();
    sb.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    sb.fails(
        &["sample", "s2s"],
        &["sequence-to-sequence", "seq2seq translate"],
    );
    sb.fails(
        &["seq2seq", "eval", "s2s", "--pairs", "nope.tsv"],
        &["nope.tsv"],
    );
    sb.write("one.txt", "1 2\n");
    sb.fails(
        &[
            "seq2seq",
            "translate",
            "s2s",
            "--input",
            "one.txt",
            "--attention-map",
            "m.svg",
            "--attention-line",
            "4",
        ],
        &["--attention-line 4"],
    );
    sb.fails(
        &[
            "seq2seq",
            "translate",
            "s2s",
            "--input",
            "one.txt",
            "--beam",
            "0",
        ],
        &["--beam"],
    );
    sb.fails(&["seq2seq", "train", "--resume", "text.txt"], &["text.txt"]);
}

#[test]
fn layer_norm_models_train_resume_sample_and_refuse_pytorch_export() {
    let sb = Sandbox::new();
    sb.write("text.txt", corpus(30, 3));
    sb.train(
        "text.txt",
        "ln",
        &["--layer-norm", "--cell", "gru", "--steps", "8"],
    );
    let config = read_json(&sb.path("ln/last/config.json"));
    assert_eq!(config["model"]["layer_norm"], true);
    // 4 + 4 steps give the weights of 8.
    sb.train(
        "text.txt",
        "half",
        &["--layer-norm", "--cell", "gru", "--steps", "4"],
    );
    sb.resume("half", 8);
    let weights = |run: &str| fs::read(sb.path(run).join("last/model.safetensors")).unwrap();
    assert_eq!(weights("ln"), weights("half"));
    let text = sb.sample("ln", 40, 1, &[]);
    assert!(!text.is_empty());
    assert_eq!(text, sb.sample("ln", 40, 1, &[]), "a seed fixes the sample");
    sb.fails(
        &["export", "pytorch", "ln", "--out", "x.safetensors"],
        &["layer-normalized"],
    );
    sb.fails(
        &[
            "train",
            "--input",
            "text.txt",
            "--out",
            "r",
            "--layer-norm",
            "--cell",
            "rnn-tanh",
        ],
        &["LSTM or GRU"],
    );
}

#[test]
fn a_narrower_last_layer_trains_resumes_samples_and_refuses_pytorch_export() {
    let sb = Sandbox::new();
    sb.write("text.txt", corpus(300, 5));
    // AWD-LSTM's shape: the last layer as wide as the tied embedding.
    let shape = [
        "--tokenizer",
        "word",
        "--layers",
        "3",
        "--hidden",
        "24",
        "--last-hidden",
        "8",
        "--embed",
        "8",
        "--tie",
        "--seq-len",
        "8",
    ];
    let with = |steps: &'static str| -> Vec<&'static str> {
        let mut args = shape.to_vec();
        args.extend(["--steps", steps]);
        args
    };
    sb.train("text.txt", "awd", &with("6"));
    let config = read_json(&sb.path("awd/last/config.json"));
    assert_eq!(config["model"]["last_hidden"], 8);
    assert!(sb.ok(&["info", "awd"]).contains("24/24/8"));
    sb.train("text.txt", "half", &with("3"));
    sb.resume("half", 6);
    let weights = |run: &str| fs::read(sb.path(run).join("last/model.safetensors")).unwrap();
    assert_eq!(weights("awd"), weights("half"), "resume is exact");
    let text = sb.sample("awd", 20, 1, &["--prime", "The cat"]);
    assert!(text.starts_with("The cat"), "{text:?}");
    assert!(
        sb.eval_json("awd", "text.txt")["perplexity"]
            .as_f64()
            .unwrap()
            > 1.0
    );
    sb.fails(
        &["export", "pytorch", "awd", "--out", "x.safetensors"],
        &["24/24/8"],
    );
    sb.fails(
        &[
            "train",
            "--input",
            "text.txt",
            "--out",
            "r",
            "--layers",
            "1",
            "--last-hidden",
            "8",
        ],
        &["2 layers"],
    );
}

/// A run the command line started resumes in a program written against the
/// library, and the reverse, with the same weights, bit for bit, as a run
/// that went straight through.
#[test]
fn the_library_and_the_command_line_resume_each_others_runs() {
    use recurrent::lm::{ResumeOptions, TextSource, TrainOptions, Training};
    use recurrent::{ModelConfig, Quiet, RunFolder, StopRule};

    let sb = Sandbox::new();
    sb.write("corpus.txt", corpus(300, 11));
    let steps = |n| StopRule {
        steps: Some(n),
        ..StopRule::default()
    };
    let resume_in_library = |run: &str, total: u64| {
        let options = ResumeOptions {
            stop: Some(steps(total)),
            threads: Some(1),
            ..ResumeOptions::default()
        };
        let mut t = Training::resume(RunFolder::open(sb.path(run)).unwrap(), &options).unwrap();
        t.run(&mut Quiet).unwrap();
    };
    let weights = |run: &str| fs::read(sb.path(run).join("last/model.safetensors")).unwrap();

    // Straight through on the command line, and CLI then library.
    sb.train("corpus.txt", "straight", &["--steps", "12"]);
    sb.train("corpus.txt", "cli-first", &["--steps", "5"]);
    resume_in_library("cli-first", 12);
    assert!(weights("cli-first") == weights("straight"));

    // Library first, with the CLI's TINY settings, then the command line.
    let options = TrainOptions {
        input: TextSource::Path(sb.path("corpus.txt")),
        init: recurrent::lm::Init::Fresh {
            config: ModelConfig {
                embed: 8,
                hidden: 16,
                layers: 1,
                ..TrainOptions::fixed_model()
            },
            forget_bias: None,
        },
        batch: 4,
        seq_len: 16,
        stop: steps(5),
        threads: Some(1),
        ..TrainOptions::default()
    };
    let folder = RunFolder::create(sb.path("lib-first")).unwrap();
    Training::start(&options, folder)
        .unwrap()
        .run(&mut Quiet)
        .unwrap();
    sb.resume("lib-first", 12);
    assert!(weights("lib-first") == weights("straight"));
}

/// Runs written by the previous version (before the library redesign) load,
/// resume, and reach the weights that version reached.
#[test]
fn runs_of_the_previous_version_resume() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/session5-runs");
    let sb = Sandbox::new();
    for f in ["corpus.txt", "pairs.tsv"] {
        fs::copy(fixtures.join(f), sb.path(f)).unwrap();
    }
    copy_dir(&fixtures.join("lm"), &sb.path("lm"));
    copy_dir(&fixtures.join("s2s"), &sb.path("s2s"));
    // Loading alone works as before.
    let before = sb.eval_json("lm", "corpus.txt");
    assert!(before["loss"].as_f64().unwrap().is_finite());

    sb.ok(&[
        "train",
        "--resume",
        "lm",
        "--input",
        "corpus.txt",
        "--steps",
        "12",
        "--threads",
        "1",
        "--sample-length",
        "0",
    ]);
    sb.ok(&[
        "seq2seq",
        "train",
        "--resume",
        "s2s",
        "--pairs",
        "pairs.tsv",
        "--steps",
        "12",
        "--threads",
        "1",
        "--val-bleu",
        "5",
    ]);
    for (run, expected) in [
        ("lm", "lm-after-12-steps.safetensors"),
        ("s2s", "s2s-after-12-steps.safetensors"),
    ] {
        let got = tensors(&sb.path(run).join("last/model.safetensors"));
        let want = tensors(&fixtures.join(expected));
        assert_eq!(got.len(), want.len(), "{run}");
        for ((name, g), (_, w)) in got.iter().zip(&want) {
            let worst = g
                .iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs() / b.abs().max(1e-3))
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{run} {name}: relative difference {worst}");
        }
    }
}

/// Copies a folder and its subfolders.
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The tensors of a safetensors file, by name, as f32 values.
fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let mut out: Vec<(String, Vec<f32>)> = recurrent::checkpoint::read_safetensors(path)
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.data))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn inspect_writes_a_self_contained_view() {
    let sb = Sandbox::new();
    let text = "He said \"stop (now)\" and left.\n(a [b] c) \"yes\" no.\n".repeat(20);
    sb.write("corpus.txt", &text);
    sb.train("corpus.txt", "run", &[]);
    sb.write("probe.txt", "He said \"no (yes)\".\n");
    let out = sb.ok(&[
        "inspect",
        "run",
        "--input",
        "probe.txt",
        "--out",
        "view.html",
        "--threads",
        "1",
    ]);
    assert!(
        out.contains("view.html") && out.contains("bits per token"),
        "{out}"
    );
    let html = fs::read_to_string(sb.path("view.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script src") && !html.contains("<link"));
    // The data is embedded as JSON the page's script reads.
    let start = html
        .find(r#"<script type="application/json" id="inspect-data">"#)
        .unwrap();
    let json = &html[start..];
    let json = &json[json.find('>').unwrap() + 1..json.find("</script>").unwrap()];
    let data: Value = serde_json::from_str(json).expect("embedded JSON");
    let tokens = data["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), "He said \"no (yes)\".\n".chars().count());
    let joined: String = tokens.iter().map(|t| t["text"].as_str().unwrap()).collect();
    assert_eq!(joined, "He said \"no (yes)\".\n");
    assert_eq!(tokens[1]["next"].as_array().unwrap().len(), 5);
    assert!(!data["layers"][0]["h"].as_array().unwrap().is_empty());
    assert_eq!(data["properties"].as_array().unwrap().len(), 4);
    assert!(html.contains("RecurrentInspect.render"));

    // Inline text works too.
    sb.ok(&[
        "inspect",
        "run",
        "--text",
        "He said",
        "--out",
        "inline.html",
    ]);
    assert!(sb.path("inline.html").is_file());

    // Bad input is named in the command line's words.
    sb.fails(
        &["inspect", "run", "--text", "Hé", "--out", "x.html"],
        &["--text", "1 character(s)", "'é'"],
    );
    sb.fails(
        &["inspect", "run", "--text", "", "--out", "x.html"],
        &["--text is empty"],
    );
    sb.fails(
        &[
            "inspect",
            "run",
            "--input",
            "probe.txt",
            "--max-chars",
            "5",
            "--out",
            "x.html",
        ],
        &["probe.txt has 20 characters", "--max-chars"],
    );
    sb.fails(
        &[
            "inspect",
            "run",
            "--text",
            "He",
            "--max-chars",
            "0",
            "--out",
            "x.html",
        ],
        &["--max-chars must be between 1 and 20000"],
    );
    sb.fails(
        &["inspect", "run", "--out", "x.html"],
        &["required arguments"],
    );
    assert!(!sb.path("x.html").exists());
}

/// A run whose loss explodes (`--lr 1e30`) fails with a message that says
/// what to try, keeps no `best/`, and a checkpoint is never written with the
/// diverged weights.
#[test]
fn a_diverging_run_fails_and_promotes_nothing() {
    let sb = Sandbox::new();
    sb.write("corpus.txt", corpus(200, 3));
    let mut args = vec!["train", "--input", "corpus.txt", "--out", "run"];
    args.extend(tiny_with(&[
        "--lr",
        "1e30",
        "--steps",
        "30",
        "--eval-every",
        "5",
    ]));
    sb.fails(
        &args,
        &[
            "diverged at step",
            "--lr",
            "--clip",
            "--on-divergence rollback",
        ],
    );
    assert!(!sb.path("run/best").exists());

    sb.write("pairs.tsv", reversal_pairs(60));
    let mut args = vec!["seq2seq", "train", "--pairs", "pairs.tsv", "--out", "s2s"];
    args.extend_from_slice(TINY_S2S);
    args.extend_from_slice(&["--lr", "1e30", "--steps", "30", "--eval-every", "5"]);
    sb.fails(&args, &["diverged at step", "--lr"]);
    assert!(!sb.path("s2s/best").exists());
}

/// `--on-divergence rollback` goes back to the last good state a bounded
/// number of times, warning each time, then fails saying so.
#[test]
fn rollbacks_warn_and_are_bounded() {
    let sb = Sandbox::new();
    sb.write("corpus.txt", corpus(200, 4));
    let mut args = vec!["train", "--input", "corpus.txt", "--out", "run"];
    args.extend(tiny_with(&[
        "--lr",
        "1e30",
        "--steps",
        "30",
        "--on-divergence",
        "rollback",
    ]));
    let line = sb.fails(&args, &["diverged", "after 3 rollback(s)", "--lr"]);
    assert!(!line.contains("--on-divergence"), "{line}");
    let stderr = String::from_utf8_lossy(&sb.run(&args).stderr).into_owned();
    assert_eq!(
        stderr.matches("warning: training diverged").count(),
        3,
        "{stderr}"
    );
    assert!(stderr.contains("rolled back to step 0"), "{stderr}");
    sb.fails(
        &["train", "--on-divergence", "retry"],
        &["retry", "stop", "rollback"],
    );
}

/// Weights that are not finite numbers do not load and do not import: the
/// error names the file, the tensor and where the first bad value is.
#[test]
fn non_finite_weights_are_refused_naming_the_tensor() {
    use recurrent::checkpoint::{read_safetensors, write_safetensors};
    let sb = Sandbox::new();
    sb.write("corpus.txt", corpus(200, 5));
    sb.train("corpus.txt", "run", &["--steps", "3"]);
    sb.ok(&["export", "pytorch", "run", "--out", "w.safetensors"]);
    let poison = |path: &Path, name: &str| {
        let mut tensors = read_safetensors(path).unwrap();
        let t = tensors.iter_mut().find(|t| t.name == name).unwrap();
        t.data[1] = f32::NAN;
        write_safetensors(path, &tensors).unwrap();
    };
    poison(&sb.path("run/last/model.safetensors"), "decoder.bias");
    sb.fails(
        &["sample", "run/last", "--length", "10"],
        &["model.safetensors", "`decoder.bias`", "NaN", "[1]"],
    );
    poison(&sb.path("w.safetensors"), "rnn.weight_ih_l0");
    sb.fails(
        &[
            "import",
            "pytorch",
            "--weights",
            "w.safetensors",
            "--vocab",
            "run/last/vocab.json",
            "--cell",
            "lstm",
            "--out",
            "back",
        ],
        &["w.safetensors", "`rnn.weight_ih_l0`", "NaN", "[0, 1]"],
    );
    assert!(!sb.path("back").exists());
}

/// A run that diverges early at `--lr 3` recovers under `--on-divergence
/// rollback`; the rollback and the cut learning rate are saved, so a run
/// stopped after the rollback and resumed ends with the same weights as one
/// that went straight through.
#[test]
fn a_rolled_back_run_resumes_exactly() {
    let sb = Sandbox::new();
    sb.write("corpus.txt", corpus(200, 7));
    let flags = |steps: &'static str| {
        [
            "--lr",
            "3",
            "--clip",
            "0",
            "--eval-every",
            "5",
            "--on-divergence",
            "rollback",
            "--steps",
            steps,
        ]
    };
    let out = sb.run(&{
        let mut args = vec!["train", "--input", "corpus.txt", "--out", "straight"];
        args.extend(tiny_with(&flags("40")));
        args
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning: training diverged"), "{stderr}");
    assert!(stderr.contains("rolled back 1 time(s)"), "{stderr}");
    sb.train("corpus.txt", "split", &flags("20"));
    let state = read_json(&sb.path("split/last/trainer_state.json"));
    let watch = &state["trainer"]["divergence"];
    assert_eq!(watch["rollbacks"], 1, "{watch}");
    assert_eq!(watch["lr_factor"], 0.5, "{watch}");
    assert_eq!(watch["on_divergence"], "rollback", "{watch}");
    sb.resume("split", 40);
    let weights = |run: &str| fs::read(sb.path(run).join("last/model.safetensors")).unwrap();
    assert!(weights("split") == weights("straight"));
}

#[test]
fn runs_lists_every_run_below_a_folder_best_first() {
    let sb = Sandbox::new();
    let text = sb.write("text.txt", corpus(300, 7));
    let text = text.to_str().unwrap();
    sb.train(text, "runs/short", &["--steps", "4", "--eval-every", "2"]);
    sb.train(text, "runs/long", &["--steps", "30", "--eval-every", "10"]);
    // A study's trials sit two levels down.
    sb.train(
        text,
        "runs/study/trials/0",
        &["--steps", "2", "--cell", "gru"],
    );
    let pairs = sb.write("pairs.tsv", reversal_pairs(120));
    let mut args = vec![
        "seq2seq",
        "train",
        "--pairs",
        pairs.to_str().unwrap(),
        "--format",
        "tsv",
        "--out",
        "runs/s2s",
        "--steps",
        "4",
        "--eval-every",
        "2",
    ];
    args.extend_from_slice(TINY_S2S);
    sb.ok(&args);
    sb.write("runs/broken/best/config.json", "{");
    sb.write("runs/notes/readme.txt", "not a run");

    let rows: Vec<Value> = serde_json::from_str(&sb.ok(&["runs", "--json"])).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["run"].as_str().unwrap()).collect();
    let mut expected = vec!["broken", "long", "s2s", "short", "study/trials/0"];
    expected.sort();
    assert_eq!(
        names.iter().copied().collect::<BTreeSet<_>>(),
        expected.into_iter().collect()
    );
    // Sorted by the best validation loss; the unreadable run last.
    let losses: Vec<f64> = rows
        .iter()
        .filter_map(|r| r["best_val_loss"].as_f64())
        .collect();
    // The seq2seq run is still worse than a uniform guess, which is never "best".
    assert_eq!(losses.len(), 3, "{rows:#?}");
    assert!(losses.windows(2).all(|w| w[0] <= w[1]), "{losses:?}");
    assert_eq!(names[3..], ["s2s", "broken"]);
    assert!(rows[4]["problem"].as_str().unwrap().contains("config.json"));

    // Each figure is the run's own: the lowest validation loss in its metrics.
    for row in &rows[..4] {
        let run = sb.path("runs").join(row["run"].as_str().unwrap());
        let key = if row["run"] == "s2s" {
            "last_val_loss"
        } else {
            "best_val_loss"
        };
        let metrics = fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        let best = metrics
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["kind"] == "val")
            .filter_map(|v| v["loss"].as_f64())
            .fold(f64::INFINITY, f64::min);
        let listed = row[key].as_f64().unwrap();
        assert!((listed - best).abs() < 1e-9, "{run:?}: {listed} vs {best}");
    }
    let long = rows.iter().find(|r| r["run"] == "long").unwrap();
    assert_eq!(long["step"], 30);
    assert_eq!(long["model"], "lstm 1x16 e8");
    assert_eq!(long["tokenizer"], "char");
    assert!(long["input"].as_str().unwrap().ends_with("text.txt"));
    let s2s = rows.iter().find(|r| r["run"] == "s2s").unwrap();
    assert!(
        s2s["model"]
            .as_str()
            .unwrap()
            .starts_with("seq2seq lstm 1x16"),
        "{s2s}"
    );

    // The table: one header and one line per run, figures in the token's units.
    let table = sb.ok(&["runs", "runs", "--sort", "name"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 6, "{table}");
    assert!(lines[0].starts_with("run"), "{table}");
    assert!(
        lines[1].starts_with("broken") && lines[1].contains("unreadable"),
        "{table}"
    );
    assert!(
        lines[2].starts_with("long") && lines[2].contains("bpc"),
        "{table}"
    );

    // A run whose lock a process holds is training now.
    let lock = recurrent::checkpoint::RunLock::acquire(&sb.path("runs/long")).unwrap();
    let rows: Vec<Value> = serde_json::from_str(&sb.ok(&["runs", "--json"])).unwrap();
    let running: Vec<&Value> = rows.iter().filter(|r| r["running"] == true).collect();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0]["run"], "long");
    drop(lock);

    // One run folder lists itself; a missing folder is an error.
    let one: Vec<Value> = serde_json::from_str(&sb.ok(&["runs", "runs/long", "--json"])).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["run"], ".");
    sb.fails(&["runs", "nowhere"], &["nowhere", "No such file"]);
}

#[test]
fn sizes_left_unset_are_fitted_to_the_corpus_and_said() {
    let sb = Sandbox::new();
    sb.write("corpus.txt", corpus(400, 3));
    let args = [
        "train",
        "--input",
        "corpus.txt",
        "--out",
        "fit",
        "--steps",
        "2",
        "--time",
        "2m",
        "--threads",
        "1",
        "--sample-length",
        "0",
    ];
    let out = sb.run(&args);
    assert_no_panic(&out, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let note = stderr
        .lines()
        .find(|l| l.contains("sized for the corpus"))
        .unwrap_or_else(|| panic!("no note on the sizes in\n{stderr}"));
    assert!(
        note.contains("2 min") && note.contains("1 thread,"),
        "{note}"
    );
    // What the note says is what was trained, and it is in the checkpoint.
    let model = &read_json(&sb.path("fit/best/config.json"))["model"];
    let size = format!(
        "{} x {} (embed {}",
        model["layers"], model["hidden"], model["embed"]
    );
    assert!(note.contains(&size), "{note} vs {model}");
    assert_eq!(model["layers"], 1, "{model}");

    // Flags given are kept, and a fully given size is not refitted.
    sb.train("corpus.txt", "given", &["--steps", "1"]);
    let model = &read_json(&sb.path("given/best/config.json"))["model"];
    assert_eq!(
        (model["hidden"].as_u64(), model["embed"].as_u64()),
        (Some(16), Some(8))
    );
    let out = sb.run(&[
        "train",
        "--input",
        "corpus.txt",
        "--out",
        "width",
        "--steps",
        "1",
        "--hidden",
        "24",
        "--threads",
        "1",
        "--sample-length",
        "0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let model = &read_json(&sb.path("width/best/config.json"))["model"];
    assert_eq!(model["hidden"], 24, "{model}");
    assert!(stderr.contains("sized for the corpus"), "{stderr}");
}
