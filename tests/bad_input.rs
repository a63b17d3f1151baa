//! The bad-input suite (issue 16): one table of ways to misuse the command
//! line, from missing and empty files to absurd numbers, broken checkpoints
//! and commands pointed at the wrong kind of model. Each case must end within
//! a minute with a non-zero exit code and exactly one `error:` line that
//! holds every needle of the case (the flag, file or value at fault), never a
//! panic, and must leave every file of its folder as it was, creating none.
//!
//! Every case runs in a fresh copy of one sandbox, which holds a trained tiny
//! run, broken copies of its checkpoint and small files of every kind.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a case may take: the slowest loads and trains a tiny model.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A small model and short blocks, so that only the flag under test fails.
const SMALL: &[(&str, &str)] = &[
    ("--hidden", "16"),
    ("--embed", "8"),
    ("--layers", "1"),
    ("--batch", "4"),
    ("--seq-len", "16"),
    ("--threads", "1"),
    ("--steps", "2"),
    ("--sample-length", "0"),
];

/// `SMALL` but for the flags `args` sets itself, then `args`.
fn small_with<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut out: Vec<&str> = SMALL
        .iter()
        .filter(|(flag, _)| !args.contains(flag))
        .flat_map(|&(flag, value)| [flag, value])
        .collect();
    out.extend(args);
    out
}

/// One misuse: the arguments after `recurrent`, and what the error must say.
struct Case {
    args: &'static [&'static str],
    needles: &'static [&'static str],
}

const fn case(args: &'static [&'static str], needles: &'static [&'static str]) -> Case {
    Case { args, needles }
}

/// `train --input t.txt --out new` with the small model, and these flags.
const TRAIN: &[&str] = &["train", "--input", "t.txt", "--out", "new"];

const TRAIN_CASES: &[Case] = &[
    case(&["--hidden", "0"], &["hidden (0)", "at least 1"]),
    case(&["--layers", "0"], &["layers (0)", "at least 1"]),
    case(&["--seq-len", "0"], &["--seq-len", "0"]),
    case(&["--batch", "0"], &["--batch", "0"]),
    case(&["--lr", "-1"], &["--lr", "-1"]),
    case(&["--lr", "nan"], &["--lr", "NaN"]),
    case(&["--lr", "inf"], &["--lr", "inf"]),
    case(&["--dropout", "1.5"], &["dropout", "1.5"]),
    case(&["--val-fraction", "2"], &["--val-fraction", "2"]),
    case(&["--time", "-5m"], &["--time", "positive"]),
    case(&["--time", "soon"], &["--time", "soon"]),
    case(&["--time", "0s"], &["--time", "positive"]),
    case(&["--steps", "abc"], &["--steps", "abc"]),
    case(&["--embed", "-3"], &["--embed", "-3"]),
    case(&["--threads", "0"], &["--threads", "0"]),
    case(&["--threads", "100000"], &["--threads", "100000"]),
    case(&["--clip", "-1"], &["--clip", "-1"]),
    case(&["--cell", "transformer"], &["--cell", "transformer"]),
    case(&["--tokenizer", "words"], &["--tokenizer", "words"]),
    case(&["--optimizer", "lion"], &["--optimizer", "lion"]),
    case(&["--schedule", "warp"], &["--schedule", "warp"]),
    case(&["--tie"], &["tying", "(8)", "(16)"]),
    // 3.6e9 parameters: under the parameter cap, far over any memory here.
    case(&["--hidden", "30000"], &["memory", "available"]),
    case(&["--layers", "1000000"], &["memory", "available"]),
    case(&["--save-every", "0"], &["--save-every", "0"]),
    case(&["--save-every", "1.5"], &["--save-every", "1.5"]),
    case(&["--bucket-mb", "-1"], &["--bucket-mb", "-1"]),
    case(
        &["--bucket-mb", "lots"],
        &["--bucket-mb", "lots", "megabytes"],
    ),
    case(
        &["--tokenizer", "bpe", "--vocab-size", "0"],
        &["vocabulary size 0", "256"],
    ),
    case(
        &["--tokenizer", "word", "--min-count", "-1"],
        &["--min-count", "-1"],
    ),
    case(&["--val", "missing.txt"], &["missing.txt"]),
    case(&["--val", "empty.txt"], &["empty.txt"]),
    case(&["--extend-vocab"], &["required arguments"]),
];

/// Cases of their own, whole argument lists.
const OTHER_CASES: &[Case] = &[
    // Training input.
    case(
        &["train", "--input", "missing.txt", "--out", "new"],
        &["missing.txt", "no such file"],
    ),
    case(
        &["train", "--input", "empty.txt", "--out", "new"],
        &["empty.txt", "empty"],
    ),
    case(
        &["train", "--input", "binary.bin", "--out", "new"],
        &["binary.bin", "UTF-8", "--tokenizer byte"],
    ),
    case(
        &["train", "--input", "invalid-utf8.txt", "--out", "new"],
        &["invalid-utf8.txt", "UTF-8"],
    ),
    case(
        &["train", "--input", "empty-folder", "--out", "new"],
        &["empty-folder", "no text files"],
    ),
    case(
        &[
            "train",
            "--input",
            "x.txt",
            "--out",
            "new",
            "--batch",
            "4",
            "--seq-len",
            "16",
        ],
        &["1 token"],
    ),
    case(
        &["train", "--input", "t.txt", "--out", "run"],
        &["run", "already holds a run", "--resume"],
    ),
    case(
        &[
            "train",
            "--input",
            "t.txt",
            "--out",
            "t.txt",
            "--batch",
            "4",
            "--seq-len",
            "16",
        ],
        &["t.txt"],
    ),
    case(
        &["train", "--resume", "missing"],
        &["--resume", "missing", "no such run folder"],
    ),
    case(
        &["train", "--resume", "t.txt"],
        &["--resume", "t.txt", "not a run folder"],
    ),
    case(&["train", "--resume", "garbage-run"], &["garbage-run"]),
    case(
        &[
            "train",
            "--init-from",
            "missing",
            "--input",
            "t.txt",
            "--out",
            "new",
        ],
        &["missing", "no checkpoint"],
    ),
    // Generation settings and checkpoints.
    case(&["sample", "missing"], &["missing", "no checkpoint"]),
    case(&["sample", "t.txt"], &["t.txt", "no checkpoint"]),
    case(
        &["sample", "run", "--temperature", "-1"],
        &["--temperature", "-1"],
    ),
    case(&["sample", "run", "--top-p", "2"], &["--top-p", "2"]),
    case(&["sample", "run", "--top-k", "0"], &["--top-k", "0"]),
    case(
        &["sample", "run", "--prime", "snow \u{2603}"],
        &["vocabulary", "\u{2603}"],
    ),
    case(&["sample", "run", "--length", "abc"], &["--length", "abc"]),
    case(&["sample", "truncated"], &["model.safetensors"]),
    case(&["sample", "bad-config"], &["config.json"]),
    case(&["sample", "no-vocab"], &["vocab.json"]),
    case(&["sample", "short-vocab"], &["vocab.json", "vocab_size"]),
    case(&["sample", "nan-weights"], &["not finite"]),
    case(&["sample", "empty-file-checkpoint"], &["config.json"]),
    // Evaluation.
    case(
        &["eval", "run", "--input", "missing.txt"],
        &["missing.txt", "no such file"],
    ),
    case(
        &["eval", "run", "--input", "empty.txt"],
        &["empty.txt", "empty"],
    ),
    case(
        &["eval", "run", "--input", "snow.txt"],
        &["snow.txt", "not in the vocabulary"],
    ),
    case(
        &["eval", "run", "--input", "t.txt", "--batch", "0"],
        &["--batch", "0"],
    ),
    case(
        &["eval", "run", "--input", "t.txt", "--seq-len", "0"],
        &["--seq-len", "0"],
    ),
    case(
        &["eval", "truncated", "--input", "t.txt"],
        &["model.safetensors"],
    ),
    // Information, pictures, views.
    case(&["info", "missing"], &["missing", "no checkpoint"]),
    case(&["info", "t.txt"], &["t.txt", "no checkpoint"]),
    case(&["info", "bad-config"], &["config.json"]),
    case(&["plot", "missing"], &["missing", "metrics.jsonl"]),
    case(
        &["plot", "garbage-run"],
        &["garbage-run", "line 1", "not a metrics record"],
    ),
    case(
        &["plot", "empty-run"],
        &["empty-run", "no training or validation records"],
    ),
    case(
        &[
            "inspect",
            "run",
            "--input",
            "missing.txt",
            "--out",
            "view.html",
        ],
        &["missing.txt"],
    ),
    case(
        &[
            "inspect",
            "run",
            "--input",
            "long.txt",
            "--out",
            "view.html",
        ],
        &["long.txt", "2000"],
    ),
    case(
        &[
            "inspect",
            "missing",
            "--input",
            "t.txt",
            "--out",
            "view.html",
        ],
        &["missing", "no checkpoint"],
    ),
    case(
        &[
            "inspect",
            "run",
            "--input",
            "snow.txt",
            "--out",
            "view.html",
        ],
        &["snow.txt", "does not know"],
    ),
    // Moving weights.
    case(
        &["export", "pytorch", "missing", "--out", "w.safetensors"],
        &["missing", "no checkpoint"],
    ),
    case(
        &["export", "pytorch", "run", "--out", "t.txt/w.safetensors"],
        &["t.txt"],
    ),
    case(
        &["export", "onnx", "run", "--out", "t.txt/m.onnx"],
        &["t.txt"],
    ),
    case(
        &["export", "onnx", "layer-norm", "--out", "m.onnx"],
        &["layer-normalized"],
    ),
    case(
        &["export", "pytorch", "one-hot", "--out", "w.safetensors"],
        &["cannot be expressed"],
    ),
    case(
        &[
            "import",
            "pytorch",
            "--weights",
            "missing.safetensors",
            "--vocab",
            "v.json",
            "--cell",
            "lstm",
            "--out",
            "imported",
        ],
        &["missing.safetensors"],
    ),
    case(
        &[
            "import",
            "pytorch",
            "--weights",
            "t.txt",
            "--vocab",
            "t.txt",
            "--cell",
            "lstm",
            "--out",
            "imported",
        ],
        &["t.txt", "corrupt"],
    ),
    case(
        &[
            "import",
            "onnx",
            "--weights",
            "t.txt",
            "--vocab",
            "t.txt",
            "--cell",
            "lstm",
            "--out",
            "imported",
        ],
        &["ONNX", "cannot be imported"],
    ),
    // Serving.
    case(
        &["serve", "missing", "--port", "0"],
        &["missing", "no checkpoint"],
    ),
    case(&["serve", "run", "--port", "99999"], &["--port", "99999"]),
    case(
        &["serve", "run", "run", "--port", "0"],
        &["two models are named"],
    ),
    // Sequence to sequence.
    case(
        &["seq2seq", "train", "--pairs", "missing.tsv", "--out", "new"],
        &["missing.tsv"],
    ),
    case(
        &[
            "seq2seq",
            "train",
            "--pairs",
            "one-column.tsv",
            "--out",
            "new",
        ],
        &["one-column.tsv", "no column 1"],
    ),
    case(
        &["seq2seq", "train", "--pairs", "empty.txt", "--out", "new"],
        &["empty.txt"],
    ),
    case(
        &["seq2seq", "translate", "run"],
        &["language model", "recurrent sample"],
    ),
    case(
        &["seq2seq", "eval", "run", "--pairs", "one-column.tsv"],
        &["language model"],
    ),
    case(
        &["seq2seq", "translate", "missing"],
        &["missing", "no checkpoint"],
    ),
    // The command line itself.
    case(&["fly"], &["fly"]),
    case(&["train", "--no-such-flag"], &["--no-such-flag"]),
    case(&["bench", "--rounds", "0"], &["--rounds", "0"]),
    // recurrent tune: the space, the sampler, the budgets and the study folder.
    case(
        &[
            "tune",
            "--input",
            "t.txt",
            "--out",
            "new",
            "--param",
            "hiden=8,16",
        ],
        &["--param", "hiden"],
    ),
    case(
        &[
            "tune",
            "--input",
            "t.txt",
            "--out",
            "new",
            "--param",
            "lr=0..0.1:log",
        ],
        &["--param", "lr", "log range above 0"],
    ),
    case(
        &[
            "tune",
            "--input",
            "t.txt",
            "--out",
            "new",
            "--sampler",
            "grid",
            "--param",
            "lr=1e-4..1e-2",
        ],
        &["lr", "no grid"],
    ),
    case(
        &["tune", "--input", "t.txt", "--out", "new"],
        &["--param", "--space"],
    ),
    case(
        &[
            "tune",
            "--input",
            "missing.txt",
            "--out",
            "new",
            "--param",
            "hidden=8",
        ],
        &["missing.txt"],
    ),
    case(
        &[
            "tune",
            "--input",
            "t.txt",
            "--out",
            "new",
            "--param",
            "hidden=8",
            "--asha",
            "--max-budget",
            "1M",
            "--min-budget",
            "5M",
        ],
        &["--min-budget", "5000000"],
    ),
    case(&["tune", "--resume", "nowhere"], &["--resume", "nowhere"]),
    // Prepared data (`prepare`, `train --data`).
    case(
        &["prepare", "--input", "missing.txt", "--out", "d"],
        &["missing.txt", "no such file"],
    ),
    case(
        &["prepare", "--input", "empty.txt", "--out", "d"],
        &["empty.txt", "empty"],
    ),
    case(
        &["prepare", "--input", "invalid-utf8.txt", "--out", "d"],
        &["invalid-utf8.txt", "UTF-8"],
    ),
    case(
        &[
            "prepare",
            "--input",
            "t.txt",
            "--out",
            "d",
            "--val-fraction",
            "1",
        ],
        &["--val-fraction", "[0, 1)"],
    ),
    case(
        &["train", "--data", "missing-data", "--out", "new"],
        &["missing-data", "not a prepared data folder"],
    ),
    case(
        &["train", "--data", "d", "--input", "t.txt"],
        &["--data", "cannot be used"],
    ),
];

/// What every case starts from, made once: a tiny run and broken copies.
fn template() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let write = |rel: &str, bytes: &[u8]| {
            let path = root.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        };
        let text = "the cat sat on the mat. (a dog) ran \"home\".\n".repeat(80);
        write("t.txt", text.as_bytes());
        write("x.txt", b"x");
        write("empty.txt", b"");
        write("snow.txt", "snow \u{2603}\n".as_bytes());
        write("long.txt", "a".repeat(3000).as_bytes());
        write(
            "binary.bin",
            &(0..3000u32)
                .map(|i| (i * 7919 % 251) as u8)
                .collect::<Vec<_>>(),
        );
        write("invalid-utf8.txt", b"the cat \xff\xfe sat\n");
        write("one-column.tsv", b"one column only\nanother\n");
        write("garbage-run/metrics.jsonl", b"garbage\n");
        write("empty-run/metrics.jsonl", b"");
        fs::create_dir_all(root.join("empty-folder/sub")).unwrap();
        train(&root, "run", &[]);
        train(&root, "layer-norm", &["--layer-norm"]);
        train(&root, "one-hot", &["--embed", "0"]);
        let best = root.join("run/last");
        let broken = |name: &str, edit: &dyn Fn(&Path)| {
            let dir = root.join(name);
            copy_dir(&best, &dir);
            edit(&dir);
        };
        broken("truncated", &|d| {
            let w = fs::read(d.join("model.safetensors")).unwrap();
            fs::write(d.join("model.safetensors"), &w[..w.len() / 2]).unwrap();
        });
        broken("bad-config", &|d| {
            fs::write(d.join("config.json"), b"{ not json").unwrap()
        });
        broken("no-vocab", &|d| {
            fs::remove_file(d.join("vocab.json")).unwrap()
        });
        broken("short-vocab", &|d| {
            fs::write(d.join("vocab.json"), b"[\"a\", \"b\"]").unwrap()
        });
        broken("empty-file-checkpoint", &|d| {
            fs::write(d.join("config.json"), b"").unwrap()
        });
        broken("nan-weights", &|d| {
            // The last four bytes are the last float of the last tensor.
            let mut w = fs::read(d.join("model.safetensors")).unwrap();
            let n = w.len();
            w[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
            fs::write(d.join("model.safetensors"), w).unwrap();
        });
        (dir, root)
    })
    .1
}

fn train(root: &Path, out: &str, extra: &[&str]) {
    let status = Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args(["train", "--input", "t.txt", "--out", out])
        .args(small_with(extra))
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "training the {out} fixture failed");
}

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

/// Every file under `root` and its bytes (folders as empty entries).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if path.is_dir() {
                out.insert(rel, None);
                stack.push(path);
            } else {
                out.insert(rel, Some(fs::read(&path).unwrap()));
            }
        }
    }
    out
}

/// Runs one case in a fresh copy of the template; returns what went wrong.
fn check(args: &[&str], needles: &[&str]) -> Result<(), String> {
    let sandbox = tempfile::tempdir().unwrap();
    copy_dir(template(), sandbox.path());
    let before = snapshot(sandbox.path());
    let err_file = sandbox.path().join("..").join(format!(
        "stderr-{}",
        sandbox.path().file_name().unwrap().to_string_lossy()
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args(args)
        .current_dir(sandbox.path())
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let _ = fs::remove_file(&err_file);
            return Err(format!("still running after {TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = fs::read_to_string(&err_file).unwrap_or_default();
    let _ = fs::remove_file(&err_file);
    if status.success() {
        return Err(format!("succeeded; stderr: {stderr}"));
    }
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        return Err(format!("panicked: {stderr}"));
    }
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    if errors.len() != 1 {
        return Err(format!(
            "expected one error line, got {}: {stderr}",
            errors.len()
        ));
    }
    if let Some(missing) = needles.iter().find(|n| !errors[0].contains(*n)) {
        return Err(format!("the error does not say {missing:?}: {}", errors[0]));
    }
    let after = snapshot(sandbox.path());
    if before != after {
        let changed: Vec<_> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .collect();
        return Err(format!("files changed or appeared: {changed:?}"));
    }
    Ok(())
}

#[test]
fn every_bad_input_gets_one_clear_error_and_changes_nothing() {
    let mut cases: Vec<(Vec<&str>, &[&str])> = TRAIN_CASES
        .iter()
        .map(|c| {
            let mut args = TRAIN.to_vec();
            args.extend(small_with(c.args));
            (args, c.needles)
        })
        .collect();
    cases.extend(OTHER_CASES.iter().map(|c| (c.args.to_vec(), c.needles)));
    assert!(cases.len() >= 60, "the suite has {} cases", cases.len());

    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(args, needles)| {
            check(args, needles)
                .err()
                .map(|why| format!("recurrent {}: {why}", args.join(" ")))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
