//! `mpirun -n N recurrent train` (cargo feature `mpi`; needs `mpiexec` from
//! Debian's mpich): 2 and 3 ranks sharing a global batch train the weights
//! one process trains on it (1e-5 relative after 50 steps), for language
//! models and seq2seq; a run trained by 3 ranks resumes on 2; two "machines"
//! (network namespaces) run the documented hostfile line; a rank killed
//! mid-run ends the whole job.
#![cfg(feature = "mpi")]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use recurrent::{LanguageCheckpoint, Seq2SeqCheckpoint};

const BIN: &str = env!("CARGO_BIN_EXE_recurrent");

/// A small language model, one kernel thread per rank.
const LM: &str = "--hidden 32 --embed 16 --layers 2 --batch 6 --seq-len 20 --eval-every 10 \
                  --threads 1 --sample-length 0 --seed 3";

/// A small seq2seq model without dropout (ranks draw their own masks).
const S2S: &str = "--format tsv --tokenizer char --hidden 16 --embed 8 --layers 1 --batch 9 \
                   --dropout 0 --steps 30 --eval-every 10 --threads 1 --val-bleu 0";

/// `words` split on whitespace, then `more`.
fn args(words: &str, more: &[&Path]) -> Vec<String> {
    let mut out: Vec<String> = words.split_whitespace().map(String::from).collect();
    out.extend(more.iter().map(|p| p.display().to_string()));
    out
}

/// Runs `recurrent ARGS` on `ranks` ranks (1: without mpiexec); the other
/// ranks' scratch folders go under `tmp` (mpiexec passes the environment on).
fn run(ranks: usize, tmp: &Path, args: &[String]) {
    let mut cmd = Command::new(if ranks == 1 { BIN } else { "mpiexec" });
    if ranks > 1 {
        cmd.args(["-n", &ranks.to_string(), BIN]);
    }
    let out = cmd
        .args(args)
        .env("TMPDIR", tmp)
        .output()
        .expect("mpiexec runs (install mpich)");
    assert!(
        out.status.success(),
        "{ranks} ranks failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A made-up text of ten words.
fn write_text(path: &Path) {
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
    std::fs::write(path, out).unwrap();
}

/// Digit strings and their reversals, tab-separated.
fn write_pairs(path: &Path) {
    let mut x = 11u64;
    let mut pairs = String::new();
    for _ in 0..300 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let src: String = (0..2 + (x >> 60) as usize % 5)
            .map(|k| char::from(b'0' + ((x >> (8 * k)) % 10) as u8))
            .collect();
        let tgt: String = src.chars().rev().collect();
        pairs += &format!("{src}\t{tgt}\n");
    }
    std::fs::write(path, pairs).unwrap();
}

fn max_relative_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// No scratch folder of a rank other than 0 is left in `tmp`.
fn assert_no_scratch(tmp: &Path) {
    let left: Vec<_> = std::fs::read_dir(tmp)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("recurrent-rank")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn ranks_train_the_weights_of_one_process_and_resume_on_another_count() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = d.join("t.txt");
    write_text(&text);
    let train = |ranks: usize, out: &str, steps: &str| {
        let words = format!("train {LM} --steps {steps} --input");
        run(
            ranks,
            d,
            &args(&words, &[&text, Path::new("--out"), &d.join(out)]),
        );
        LanguageCheckpoint::load(d.join(out).join("last"))
            .unwrap()
            .model
            .params
    };
    let one = train(1, "one", "50");
    for ranks in [2, 3] {
        let diff = max_relative_difference(&one, &train(ranks, &format!("ranks{ranks}"), "50"));
        assert!(diff < 1e-5, "{ranks} ranks: {diff:e}");
    }
    // 20 steps on 3 ranks, then on to 50 on 2.
    train(3, "resumed", "20");
    let resume = "train --steps 50 --threads 1 --sample-length 0 --resume";
    run(2, d, &args(resume, &[&d.join("resumed")]));
    let resumed = LanguageCheckpoint::load(d.join("resumed").join("last")).unwrap();
    let diff = max_relative_difference(&one, &resumed.model.params);
    assert!(diff < 1e-5, "resumed on 2 ranks: {diff:e}");
    assert_no_scratch(d);
}

/// The documented two-machine line (`mpiexec -f hosts`, MPICH's ssh
/// launcher) on two "machines": network namespaces with hostnames of their
/// own joined by a veth pair, ranks talking TCP (scripts/two_hosts.sh).
/// Skipped where network namespaces cannot be made (no root).
#[test]
fn two_hosts_train_the_weights_of_one_process() {
    let probe = format!("recurrent-probe-{}", std::process::id());
    let allowed = Command::new("ip")
        .args(["netns", "add", &probe])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !allowed {
        eprintln!("skipped: network namespaces cannot be made here (needs root and iproute2)");
        return;
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = d.join("t.txt");
    write_text(&text);
    let words = format!("train {LM} --steps 30 --input");
    let out = |name: &str| args(&words, &[&text, Path::new("--out"), &d.join(name)]);
    run(1, d, &out("one"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/two_hosts.sh");
    let job = Command::new(script)
        .arg(BIN)
        .args(out("hosts"))
        .env("TMPDIR", d)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&job.stderr);
    assert!(job.status.success(), "two hosts failed: {said}");
    assert!(said.contains("data-parallel: 2 ranks"), "{said}");
    let load = |name: &str| {
        LanguageCheckpoint::load(d.join(name).join("last"))
            .unwrap()
            .model
            .params
    };
    let diff = max_relative_difference(&load("one"), &load("hosts"));
    assert!(diff < 1e-5, "two hosts: {diff:e}");
    assert_no_scratch(d);
}

#[test]
fn seq2seq_ranks_train_the_weights_of_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pairs = d.join("pairs.tsv");
    write_pairs(&pairs);
    let train = |ranks: usize, out: &str| {
        let words = format!("seq2seq train {S2S} --pairs");
        run(
            ranks,
            d,
            &args(&words, &[&pairs, Path::new("--out"), &d.join(out)]),
        );
        Seq2SeqCheckpoint::load(d.join(out).join("last"))
            .unwrap()
            .model
            .params
    };
    let one = train(1, "one");
    for ranks in [2, 3] {
        let diff = max_relative_difference(&one, &train(ranks, &format!("ranks{ranks}")));
        assert!(diff < 1e-5, "{ranks} ranks: {diff:e}");
    }
    assert_no_scratch(d);
}

#[test]
fn a_rank_that_dies_ends_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = d.join("t.txt");
    write_text(&text);
    let words = format!("-n 2 {BIN} train {LM} --steps 1000000 --input");
    let mut job = Command::new("mpiexec")
        .args(args(&words, &[&text, Path::new("--out"), &d.join("run")]))
        .env("TMPDIR", d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Rank 1 trains in a scratch folder named after its process id.
    let started = Instant::now();
    let rank1 = loop {
        let found = std::fs::read_dir(d).unwrap().find_map(|e| {
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
    let killed = Command::new("kill")
        .args(["-9", &rank1.to_string()])
        .status();
    assert!(
        killed.unwrap().success(),
        "rank 1 (process {rank1}) was not running"
    );
    let at = Instant::now();
    let status = loop {
        if let Some(status) = job.try_wait().unwrap() {
            break status;
        }
        assert!(
            at.elapsed() < Duration::from_secs(30),
            "the job did not end after rank 1 died"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
}
