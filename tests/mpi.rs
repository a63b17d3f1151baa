//! `mpirun -n N recurrent train` (cargo feature `mpi`; needs `mpiexec` from
//! Debian's mpich): 2 and 3 ranks sharing a global batch train the weights
//! one process trains on it (1e-5 relative after 50 steps), a run trained by
//! 3 ranks resumes on 2, and a rank killed mid-run ends the whole job.
#![cfg(feature = "mpi")]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use recurrent::LanguageCheckpoint;

const BIN: &str = env!("CARGO_BIN_EXE_recurrent");

/// A small model on a made-up text, one kernel thread per rank.
fn flags(dir: &Path) -> Vec<String> {
    let text = dir.join("t.txt");
    if !text.exists() {
        let words = [
            "the", "cat", "sat", "on", "a", "mat", "and", "ran", "far", "home",
        ];
        let mut x = 7u64;
        let mut out = String::new();
        for i in 0..8000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out += words[(x >> 33) as usize % words.len()];
            out += if i % 11 == 10 { "\n" } else { " " };
        }
        std::fs::write(&text, out).unwrap();
    }
    [
        "--input",
        text.to_str().unwrap(),
        "--hidden",
        "32",
        "--embed",
        "16",
        "--layers",
        "2",
        "--batch",
        "6",
        "--seq-len",
        "20",
        "--eval-every",
        "10",
        "--threads",
        "1",
        "--sample-length",
        "0",
        "--seed",
        "3",
    ]
    .map(String::from)
    .to_vec()
}

fn run(ranks: usize, args: &[String]) -> Output {
    let mut cmd = if ranks == 1 {
        Command::new(BIN)
    } else {
        let mut c = Command::new("mpiexec");
        c.args(["-n", &ranks.to_string(), BIN]);
        c
    };
    let out = cmd
        .args(args)
        .output()
        .expect("mpiexec runs (install mpich)");
    assert!(
        out.status.success(),
        "{ranks} ranks failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn train(ranks: usize, dir: &Path, out: &str, extra: &[&str]) {
    let mut args = vec!["train".to_string()];
    args.extend(flags(dir));
    args.extend(["--out".to_string(), dir.join(out).display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    run(ranks, &args);
}

fn weights(run: &Path) -> Vec<f32> {
    LanguageCheckpoint::load(run.join("last"))
        .unwrap()
        .model
        .params
}

fn max_relative_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn ranks_train_the_weights_of_one_process_and_resume_on_another_count() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    train(1, d, "one", &["--steps", "50"]);
    let one = weights(&d.join("one"));
    for ranks in [2, 3] {
        let name = format!("ranks{ranks}");
        train(ranks, d, &name, &["--steps", "50"]);
        let diff = max_relative_difference(&one, &weights(&d.join(&name)));
        assert!(diff < 1e-5, "{ranks} ranks: {diff:e}");
    }
    // 20 steps on 3 ranks, then on to 50 on 2.
    train(3, d, "resumed", &["--steps", "20"]);
    let resumed = d.join("resumed").display().to_string();
    run(
        2,
        &[
            "train",
            "--resume",
            &resumed,
            "--steps",
            "50",
            "--threads",
            "1",
            "--sample-length",
            "0",
        ]
        .map(String::from),
    );
    let diff = max_relative_difference(&one, &weights(&d.join("resumed")));
    assert!(diff < 1e-5, "resumed on 2 ranks: {diff:e}");
    // Only rank 0 wrote: no scratch folders of the others are left.
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("recurrent-rank")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_rank_that_dies_ends_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut args = vec![
        "-n".to_string(),
        "2".to_string(),
        BIN.to_string(),
        "train".to_string(),
    ];
    args.extend(flags(d));
    args.extend(
        [
            "--out",
            d.join("run").to_str().unwrap(),
            "--steps",
            "1000000",
        ]
        .map(String::from),
    );
    let mut job = Command::new("mpiexec")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Rank 1 trains in a scratch folder named after its process id.
    let started = Instant::now();
    let rank1 = loop {
        let found = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .find_map(|e| {
                let name = e.ok()?.file_name().to_string_lossy().into_owned();
                name.strip_prefix("recurrent-rank1-")?.parse::<u32>().ok()
            });
        if let Some(pid) = found {
            break pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "rank 1 never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill")
        .args(["-9", &rank1.to_string()])
        .status()
        .unwrap();
    let killed = Instant::now();
    let status = loop {
        if let Some(status) = job.try_wait().unwrap() {
            break status;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the job did not end after rank 1 died"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("recurrent-rank1-{rank1}")));
}

#[test]
fn seq2seq_ranks_train_the_weights_of_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Digit strings and their reversals.
    let mut x = 11u64;
    let mut pairs = String::new();
    for _ in 0..300 {
        let mut src = String::new();
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        for k in 0..(2 + (x >> 60) as usize % 5) {
            src.push(char::from(b'0' + ((x >> (8 * k)) % 10) as u8));
        }
        let tgt: String = src.chars().rev().collect();
        pairs += &format!("{src}\t{tgt}\n");
    }
    let pairs_path = d.join("pairs.tsv");
    std::fs::write(&pairs_path, pairs).unwrap();
    let train = |ranks: usize, out: &str| {
        let args = [
            "seq2seq",
            "train",
            "--pairs",
            pairs_path.to_str().unwrap(),
            "--format",
            "tsv",
            "--tokenizer",
            "char",
            "--hidden",
            "16",
            "--embed",
            "8",
            "--layers",
            "1",
            "--batch",
            "9",
            "--steps",
            "30",
            "--eval-every",
            "10",
            "--threads",
            "1",
            "--val-bleu",
            "0",
            "--out",
            d.join(out).to_str().unwrap(),
        ]
        .map(String::from);
        run(ranks, &args);
        recurrent::Seq2SeqCheckpoint::load(d.join(out).join("last"))
            .unwrap()
            .model
            .params
    };
    let one = train(1, "one");
    for ranks in [2, 3] {
        let diff = max_relative_difference(&one, &train(ranks, &format!("ranks{ranks}")));
        assert!(diff < 1e-5, "{ranks} ranks: {diff:e}");
    }
}
