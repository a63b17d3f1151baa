//! `recurrent tune` end to end: a tiny study, its outputs, a resume, and the
//! best run sampled.

use std::path::Path;
use std::process::{Command, Output};

fn recurrent(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "recurrent {}:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_tiny_study_writes_its_table_and_keeps_a_run_to_sample() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..300)
        .map(|i| format!("to be or not to be, line {i}.\n"))
        .collect();
    std::fs::write(dir.path().join("t.txt"), text).unwrap();
    std::fs::write(
        dir.path().join("space.toml"),
        "hidden = [8, 16]\nlr = { low = 1e-3, high = 3e-2, log = true }\n",
    )
    .unwrap();
    let study = [
        "tune",
        "--input",
        "t.txt",
        "--out",
        "study",
        "--space",
        "space.toml",
        "--param",
        "batch=4",
        "--param",
        "seq_len=16",
        "--param",
        "embed=8",
        "--param",
        "layers=1",
        "--sampler",
        "random",
        "--trials",
        "2",
        "--max-budget",
        "2k",
        "--threads",
        "1",
        "--folds",
        "2",
    ];
    let out = recurrent(dir.path(), &study);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("rank"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
    let s = dir.path().join("study");
    for name in ["results.csv", "results.json", "summary.md", "study.jsonl"] {
        assert!(s.join(name).is_file(), "{name}");
    }
    let csv = std::fs::read_to_string(s.join("results.csv")).unwrap();
    assert!(csv.contains("split0_val_loss,split1_val_loss"), "{csv}");
    // One more trial on resume; the first two are not trained again.
    let log_before = std::fs::read_to_string(s.join("study.jsonl")).unwrap();
    let out = recurrent(
        dir.path(),
        &[
            "tune",
            "--resume",
            "study",
            "--trials",
            "3",
            "--threads",
            "1",
        ],
    );
    let log_after = std::fs::read_to_string(s.join("study.jsonl")).unwrap();
    assert!(log_after.starts_with(&log_before));
    let new_trials = log_after[log_before.len()..]
        .lines()
        .filter(|l| l.contains("\"event\":\"trial\""))
        .count();
    assert_eq!(new_trials, 1);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);
    let sample = recurrent(dir.path(), &["sample", "study/best", "--length", "20"]);
    assert!(!sample.stdout.is_empty());
}
