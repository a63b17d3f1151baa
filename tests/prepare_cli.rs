//! `recurrent prepare` and `recurrent train --data` end to end: a folder is
//! prepared, trained on, resumed, and a damaged one is refused by name.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn recurrent(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = recurrent(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "recurrent {}: {stderr}",
        args.join(" ")
    );
    stderr
}

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

#[test]
fn prepare_then_train_on_the_data_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir_all(dir.join("docs")).unwrap();
    let text = "the cat sat on the mat. (a dog) ran \"home\".\n".repeat(60);
    fs::write(dir.join("docs/a.txt"), &text).unwrap();
    fs::write(dir.join("docs/b.txt"), &text[..900]).unwrap();

    let said = ok(
        dir,
        &[
            "prepare",
            "--input",
            "docs",
            "--tokenizer",
            "word",
            "--out",
            "data",
            "--threads",
            "2",
        ],
    );
    assert!(
        said.contains("MB/s") && said.contains("2 document(s)"),
        "{said}"
    );
    for file in ["train.bin", "val.bin", "vocab.json", "manifest.json"] {
        assert!(dir.join("data").join(file).is_file(), "{file}");
    }
    let manifest: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("data/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["version"], 1);
    assert_eq!(manifest["token_width"], "u16");
    assert_eq!(manifest["tokenizer"]["kind"], "word");

    let mut args = vec!["train", "--data", "data", "--out", "run", "--steps", "4"];
    args.extend(TINY);
    let said = ok(dir, &args);
    assert!(said.contains("(prepared)"), "{said}");
    let said = ok(
        dir,
        &[
            "train",
            "--resume",
            "run",
            "--steps",
            "6",
            "--threads",
            "1",
            "--sample-length",
            "0",
        ],
    );
    assert!(said.contains("resuming"), "{said}");
    let state: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("run/last/trainer_state.json")).unwrap())
            .unwrap();
    assert_eq!(state["trainer"]["step"], 6);

    // The full check reads every byte; a flipped one is named.
    let said = ok(dir, &["prepare", "--check", "data"]);
    assert!(said.contains("check out"), "{said}");
    let train_bin = dir.join("data/train.bin");
    let mut bytes = fs::read(&train_bin).unwrap();
    bytes[1] ^= 0x40;
    fs::write(&train_bin, &bytes).unwrap();
    let out = recurrent(dir, &["prepare", "--check", "data"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("train.bin is corrupt"),
        "{stderr}"
    );
    bytes[1] ^= 0x40;

    // A damaged token file stops a resume with the file's name.
    fs::write(&train_bin, &bytes[..bytes.len() - 2]).unwrap();
    let out = recurrent(dir, &["train", "--resume", "run", "--steps", "8"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("train.bin is truncated"), "{stderr}");
}
