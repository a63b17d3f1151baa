//! Full and read-only disks (issue 16): a run on a disk that fills up, or is
//! remounted read-only, must fail with one clear error naming the file and
//! the system's reason, leave its checkpoints exactly as they were (loadable,
//! no temporaries left), and resume once the disk has room again.
//!
//! As root, permissions do not stop writes, so the disk is a small tmpfs
//! mounted in a private mount namespace (`unshare -rm`, no privileges needed
//! where user namespaces are allowed). Each scenario is a shell script run in
//! that namespace; every command's exit code and output are written to a
//! folder outside the tmpfs, and the assertions are made here.

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;

/// Flags of a tiny run: its checkpoint pair takes about 200 KB.
const TINY: &str = "--hidden 16 --embed 8 --layers 1 --batch 4 --seq-len 16 --threads 1 \
                    --sample-length 0";

/// What a scenario recorded: each command's outcome by name, and each
/// `files DIR NAME` listing (`NAME.sums`: SHA-256 of every file, `NAME.list`:
/// every path).
struct Scenario {
    steps: BTreeMap<String, Step>,
    listings: BTreeMap<String, String>,
}

/// The outcome of one command of a scenario.
#[derive(Debug)]
struct Step {
    code: i32,
    stderr: String,
    stdout: String,
}

/// Runs `script` (POSIX sh) in a mount namespace where `$DISK` is a fresh
/// tmpfs of `size`, `$R` the binary and `run NAME ARGS...` records a command
/// into `$OUT`, `files DIR NAME` lists a folder. Returns what was recorded, or `None` when this machine does
/// not allow the namespace (then the test says so and passes).
fn in_small_disk(size: &str, script: &str) -> Option<Scenario> {
    let probe = Command::new("unshare").args(["-rm", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: user and mount namespaces (unshare -rm) are not available here");
        return None;
    }
    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("disk");
    let out = work.path().join("out");
    fs::create_dir_all(&disk).unwrap();
    fs::create_dir_all(&out).unwrap();
    let prelude = format!(
        "set -u\n\
         R='{bin}'; DISK='{disk}'; OUT='{out}'\n\
         mount -t tmpfs -o size={size} tmpfs \"$DISK\" || exit 97\n\
         cd \"$DISK\"\n\
         run() {{ name=$1; shift; \"$R\" \"$@\" >\"$OUT/$name.stdout\" 2>\"$OUT/$name.stderr\"; \
         echo $? >\"$OUT/$name.code\"; }}\n\
         files() {{ find \"$1\" -type f | sort | xargs sha256sum >\"$OUT/$2.sums\"; \
         find \"$1\" | sort >\"$OUT/$2.list\"; }}\n",
        bin = env!("CARGO_BIN_EXE_recurrent"),
        disk = disk.display(),
        out = out.display(),
    );
    let status = Command::new("unshare")
        .args(["-rm", "sh", "-c"])
        .arg(format!("{prelude}{script}"))
        .env_remove("RUST_BACKTRACE")
        .status()
        .unwrap();
    if status.code() == Some(97) {
        eprintln!("skipped: mounting a tmpfs in a mount namespace is not allowed here");
        return None;
    }
    assert!(status.success(), "the scenario script failed: {status}");
    let mut steps = BTreeMap::new();
    let mut listings = BTreeMap::new();
    for entry in fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let read = |ext: &str| fs::read_to_string(out.join(format!("{name}.{ext}"))).unwrap();
        match path.extension().and_then(|e| e.to_str()) {
            Some("code") => {
                let step = Step {
                    code: read("code").trim().parse().unwrap(),
                    stderr: read("stderr"),
                    stdout: read("stdout"),
                };
                steps.insert(name, step);
            }
            Some(ext @ ("sums" | "list")) => {
                listings.insert(format!("{name}.{ext}"), read(ext));
            }
            _ => {}
        }
    }
    Some(Scenario { steps, listings })
}

/// A step that succeeded.
fn ok<'a>(steps: &'a BTreeMap<String, Step>, name: &str) -> &'a Step {
    let step = &steps[name];
    assert_eq!(step.code, 0, "{name} failed:\n{}", step.stderr);
    step
}

/// A step that failed with exactly one `error:` line holding every needle,
/// and no panic; returns the line.
fn failed(steps: &BTreeMap<String, Step>, name: &str, needles: &[&str]) -> String {
    let step = &steps[name];
    assert_ne!(step.code, 0, "{name} succeeded:\n{}", step.stderr);
    assert!(
        !step.stderr.contains("panicked"),
        "{name} panicked:\n{}",
        step.stderr
    );
    let errors: Vec<&str> = step
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{name}:\n{}", step.stderr);
    for needle in needles {
        assert!(
            errors[0].contains(needle),
            "{name}: no {needle:?} in {}",
            errors[0]
        );
    }
    errors[0].to_string()
}

#[test]
fn a_full_disk_fails_the_save_keeps_the_checkpoints_and_resumes_once_freed() {
    let script = format!(
        "run first train --steps 8 --eval-every 4 --out run {TINY}\n\
         files run before\n\
         # Fill the disk but for 48 KiB: the lock and the metrics still fit, a checkpoint not.\n\
         avail=$(df -k --output=avail \"$DISK\" | tail -1)\n\
         dd if=/dev/zero of=fill bs=1k count=$((avail - 48)) 2>/dev/null\n\
         run full train --resume run --steps 16 --threads 1 --sample-length 0\n\
         files run after_full\n\
         run info_full info run\n\
         run new_full train --steps 4 --out other {TINY}\n\
         rm fill\n\
         run resumed train --resume run --steps 16 --threads 1 --sample-length 0\n\
         run info_resumed info run\n"
    );
    let Some(Scenario { steps, listings }) = in_small_disk("4m", &script) else {
        return;
    };
    ok(&steps, "first");
    failed(&steps, "full", &["No space left on device"]);
    // The full disk changed no byte of the checkpoints, and left no temporary.
    let [before, after] = ["before.sums", "after_full.sums"].map(|k| &listings[k]);
    let checkpoint_lines = |sums: &str| -> Vec<String> {
        sums.lines()
            .filter(|l| l.contains("/best/") || l.contains("/last/"))
            .map(String::from)
            .collect()
    };
    assert!(!checkpoint_lines(before).is_empty(), "{before}");
    assert_eq!(checkpoint_lines(before), checkpoint_lines(after));
    let after_list = &listings["after_full.list"];
    assert!(!after_list.contains(".tmp-"), "{after_list}");
    assert!(ok(&steps, "info_full").stdout.contains("step 8,"));
    // A new run on the full disk says so too (its folder may be made, its checkpoint not).
    failed(&steps, "new_full", &["No space left on device"]);
    // Room again: the resume goes on from step 8 to 16.
    ok(&steps, "resumed");
    assert!(ok(&steps, "info_resumed").stdout.contains("step 16,"));
}

#[test]
fn a_read_only_disk_fails_writes_at_once_and_still_serves_reads() {
    let script = format!(
        "run first train --steps 6 --eval-every 3 --out run {TINY}\n\
         files run before\n\
         seq 1 400 > t.txt\n\
         mount -o remount,ro \"$DISK\"\n\
         run resume train --resume run --steps 12 --threads 1 --sample-length 0\n\
         run new train --steps 4 --out other {TINY}\n\
         run plot plot run\n\
         run sample sample run --length 20 --seed 1 --threads 1\n\
         run eval eval run --input t.txt --threads 1\n\
         run info info run\n\
         files run after\n"
    );
    let Some(Scenario { steps, listings }) = in_small_disk("4m", &script) else {
        return;
    };
    ok(&steps, "first");
    failed(&steps, "resume", &["Read-only file system"]);
    failed(&steps, "new", &["other", "Read-only file system"]);
    failed(&steps, "plot", &["loss.svg", "Read-only file system"]);
    // Reading needs no writes.
    assert!(!ok(&steps, "sample").stdout.is_empty());
    ok(&steps, "eval");
    assert!(ok(&steps, "info").stdout.contains("step 6,"));
    assert_eq!(listings["before.sums"], listings["after.sums"]);
}
