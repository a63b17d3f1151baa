//! Bounded work at the command line: a closing sample that streams and stops
//! when its reader goes away, evaluation settings of zero, plots of metrics
//! that are not records, negative durations and sources far longer than
//! training saw. Each command runs in its own temporary folder.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn recurrent(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_recurrent"));
    c.args(args).current_dir(dir).env_remove("RUST_BACKTRACE");
    c
}

/// Runs a command that must fail with one `error:` line holding `needle`.
fn fails(dir: &Path, args: &[&str], needle: &str) {
    let out: Output = recurrent(dir, args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "`{}` succeeded: {stderr}",
        args.join(" ")
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(needle),
        "`{}`: {}",
        args.join(" "),
        errors[0]
    );
}

fn text(dir: &Path) {
    std::fs::write(dir.join("t.txt"), "the cat sat on the mat.\n".repeat(80)).unwrap();
}

const TINY: &[&str] = &[
    "--input",
    "t.txt",
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
    "--steps",
    "2",
];

#[test]
fn the_closing_sample_streams_and_stops_when_its_reader_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    text(dir.path());
    let mut args = TINY.to_vec();
    args.extend(["--out", "run", "--sample-length", "100000000000"]);
    let mut child = recurrent(dir.path(), &[&["train"], &args[..]].concat())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The sample arrives while it is generated, not at the end.
    let mut stdout = child.stdout.take().unwrap();
    let (sender, first) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = [0u8; 64];
        let read = stdout.read_exact(&mut bytes).is_ok();
        // Dropping stdout here closes the pipe.
        let _ = sender.send(read);
    });
    match first.recv_timeout(Duration::from_secs(30)) {
        Ok(true) => {}
        outcome => {
            child.kill().unwrap();
            panic!("no sample streamed within 30 s ({outcome:?})");
        }
    }
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("train kept sampling after its output closed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Killed by SIGPIPE like any Unix tool, or a quiet exit where there is none.
    assert!(status.code().is_none_or(|c| c == 0), "{status:?}");
}

#[test]
fn evaluation_with_zero_streams_or_steps_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    text(dir.path());
    let mut args = vec!["train"];
    args.extend(TINY);
    args.extend(["--out", "run", "--sample-length", "0"]);
    assert!(recurrent(dir.path(), &args)
        .output()
        .unwrap()
        .status
        .success());
    let eval = ["eval", "run", "--input", "t.txt", "--threads", "1"];
    fails(
        dir.path(),
        &[&eval[..], &["--batch", "0"]].concat(),
        "--batch must be at least 1, got 0",
    );
    fails(
        dir.path(),
        &[&eval[..], &["--seq-len", "0"]].concat(),
        "--seq-len must be at least 1, got 0",
    );
}

#[test]
fn plots_of_garbage_or_empty_metrics_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (name, metrics, needle) in [
        (
            "garbage",
            "garbage\n",
            "garbage/metrics.jsonl, line 1: not a metrics record",
        ),
        (
            "empty",
            "",
            "empty/metrics.jsonl has no training or validation records",
        ),
    ] {
        std::fs::create_dir(dir.path().join(name)).unwrap();
        std::fs::write(dir.path().join(name).join("metrics.jsonl"), metrics).unwrap();
        fails(dir.path(), &["plot", name], needle);
        assert!(!dir.path().join(name).join("loss.svg").exists());
    }
}

#[test]
fn a_negative_time_says_durations_are_positive() {
    let dir = tempfile::tempdir().unwrap();
    fails(
        dir.path(),
        &["train", "--time", "-5m"],
        "a duration is a positive time such as 90s, 20m or 1h30m",
    );
}

#[test]
fn a_source_line_far_longer_than_training_saw_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let pairs: String = (0..60)
        .map(|i| format!("ab{}\t{}ba\n", "c".repeat(i % 5), "c".repeat(i % 5)))
        .collect();
    std::fs::write(dir.path().join("pairs.tsv"), pairs).unwrap();
    let train = [
        "seq2seq",
        "train",
        "--pairs",
        "pairs.tsv",
        "--format",
        "tsv",
        "--out",
        "s2s",
        "--tokenizer",
        "char",
        "--hidden",
        "8",
        "--embed",
        "8",
        "--layers",
        "1",
        "--batch",
        "8",
        "--threads",
        "1",
        "--val-bleu",
        "0",
        "--steps",
        "2",
    ];
    let out = recurrent(dir.path(), &train).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.path().join("long.txt"), "abc".repeat(13_400) + "\n").unwrap();
    let started = Instant::now();
    fails(
        dir.path(),
        &[
            "seq2seq",
            "translate",
            "s2s",
            "--input",
            "long.txt",
            "--threads",
            "1",
        ],
        "source line 1 has 40200 source tokens, more than the 400 this model translates",
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
