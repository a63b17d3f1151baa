//! atomic_write and append_jsonl.

use std::fs;

use recurrent_checkpoint::{append_jsonl, atomic_write};
use serde_json::json;

fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn atomic_write_creates_and_replaces_leaving_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    atomic_write(&path, b"first").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"first");
    atomic_write(&path, b"second, longer than the first").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"second, longer than the first");
    atomic_write(&path, b"").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"");
    assert_eq!(listing(dir.path()), ["state.json"]);
}

#[test]
fn atomic_write_with_a_bare_file_name_uses_the_current_folder() {
    // Relative paths with no parent must work (parent() is "", not ".").
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "bare_name_child", "--ignored", "--nocapture"])
        .current_dir(dir.path())
        .env("RECURRENT_CHECKPOINT_BARE_CHILD", "1")
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(listing(dir.path()), ["bare.txt"]);
    assert_eq!(fs::read(dir.path().join("bare.txt")).unwrap(), b"ok");
}

/// Run only by the test above, in a fresh working directory (a no-op under `--include-ignored`).
#[test]
#[ignore]
fn bare_name_child() {
    if std::env::var_os("RECURRENT_CHECKPOINT_BARE_CHILD").is_none() {
        return;
    }
    atomic_write(std::path::Path::new("bare.txt"), b"ok").unwrap();
}

#[test]
fn atomic_write_failure_names_the_path_and_leaves_the_target_alone() {
    let dir = tempfile::tempdir().unwrap();
    // The target is a non-empty folder: the final rename must fail.
    let target = dir.path().join("occupied");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("keep"), "x").unwrap();
    let msg = atomic_write(&target, b"data").unwrap_err().to_string();
    assert!(msg.contains(&target.display().to_string()), "{msg}");
    assert!(!msg.contains('\n'));
    assert_eq!(listing(dir.path()), ["occupied"], "temp file cleaned up");
    assert_eq!(listing(&target), ["keep"]);

    let missing = dir.path().join("no/such/folder/file");
    assert!(atomic_write(&missing, b"data").is_err());
}

#[test]
fn append_jsonl_writes_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/metrics.jsonl"); // folder is created
    append_jsonl(
        &path,
        &json!({"step": 1, "loss": 2.5, "note": "multi\nline"}),
    )
    .unwrap();
    append_jsonl(&path, &json!({"step": 2, "loss": 2.25})).unwrap();

    let text = fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            json!({"step": 1, "loss": 2.5, "note": "multi\nline"}),
            json!({"step": 2, "loss": 2.25})
        ]
    );
}

#[test]
fn append_jsonl_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.jsonl");
    fs::create_dir(&path).unwrap(); // a folder where the file should be
    let msg = append_jsonl(&path, &json!({})).unwrap_err().to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}
