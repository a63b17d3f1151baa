//! Checkpoint folders: round trips, replacement, crash recovery, clear load errors, run-folder resolution.

use std::fs;
use std::path::{Path, PathBuf};

use recurrent_checkpoint::layout::{
    BEST_DIR, CONFIG_FILE, LAST_DIR, OPTIMIZER_FILE, TARGET_TOKENIZER_FILE, TARGET_VOCAB_FILE,
    TOKENIZER_FILE, TRAINER_STATE_FILE, VOCAB_FILE, WEIGHTS_FILE,
};
use recurrent_checkpoint::{Checkpoint, Tensor};
use serde_json::json;

fn sample(seed: f32, resumable: bool) -> Checkpoint {
    let w = |name: &str, shape: &[usize]| Tensor {
        name: name.into(),
        shape: shape.to_vec(),
        data: (0..shape.iter().product::<usize>())
            .map(|i| seed + i as f32 * 0.5)
            .collect(),
    };
    Checkpoint {
        config: json!({"cell": "lstm", "hidden": 4, "layers": 1, "tokenizer": "char", "seed": seed}),
        weights: vec![w("rnn.0.weight_ih", &[16, 3]), w("decoder.bias", &[3])],
        // Tokens that need escaping must survive: newline, quote, backslash, non-ASCII, empty.
        vocab: vec![
            "\n".into(),
            "\"".into(),
            "\\".into(),
            "é🦀".into(),
            "".into(),
        ],
        optimizer: resumable.then(|| vec![w("adam.m.decoder.bias", &[3])]),
        trainer_state: resumable.then(|| json!({"step": 1200, "epoch": 3, "rng": [1, 2, 3, 4]})),
        tokenizer_json: resumable.then(|| "{\"model\": {}}".to_string()),
        // The seq2seq target side: present in some checkpoints, absent in others.
        target_vocab: resumable.then(|| vec!["<s>".into(), "ü".into()]),
        target_tokenizer_json: resumable.then(|| "{\"target\": 1}".to_string()),
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn with_suffix(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

#[test]
fn round_trip_without_resume_state() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("best");
    let ck = sample(1.0, false);
    ck.save(&dir).unwrap();
    assert_eq!(listing(&dir), [CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE]);
    assert_eq!(
        listing(root.path()),
        ["best"],
        "no temp or .old folder left"
    );

    let back = Checkpoint::load(&dir).unwrap();
    assert_eq!(back.optimizer, None);
    assert_eq!(back.trainer_state, None);
    assert_eq!(back.config, ck.config);
    assert_eq!(back.vocab, ck.vocab);
    // Weights come back sorted by name.
    let names: Vec<_> = back.weights.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["decoder.bias", "rnn.0.weight_ih"]);
    assert_eq!(back.weights[1], ck.weights[0]);

    // Human-readable files: pretty config, vocab as a plain JSON array.
    let config = fs::read_to_string(dir.join(CONFIG_FILE)).unwrap();
    assert!(config.contains("\n  \"cell\": \"lstm\""), "{config}");
    let vocab: Vec<String> =
        serde_json::from_str(&fs::read_to_string(dir.join(VOCAB_FILE)).unwrap()).unwrap();
    assert_eq!(vocab, ck.vocab);
}

#[test]
fn round_trip_with_resume_state() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("runs/shakespeare/last");
    let ck = sample(2.0, true);
    ck.save(&dir).unwrap(); // parent folders are created
    assert_eq!(
        listing(&dir),
        [
            CONFIG_FILE,
            WEIGHTS_FILE,
            OPTIMIZER_FILE,
            TARGET_TOKENIZER_FILE,
            TARGET_VOCAB_FILE,
            TOKENIZER_FILE,
            TRAINER_STATE_FILE,
            VOCAB_FILE
        ]
    );
    let back = Checkpoint::load(&dir).unwrap();
    assert_eq!(back.optimizer, ck.optimizer);
    assert_eq!(back.trainer_state, ck.trainer_state);
    assert_eq!(back.tokenizer_json, ck.tokenizer_json);
    assert_eq!(back.vocab, ck.vocab);
    assert_eq!(back.target_vocab, ck.target_vocab);
    assert_eq!(back.target_tokenizer_json, ck.target_tokenizer_json);
}

#[test]
fn saving_over_a_checkpoint_replaces_it_entirely() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("last");
    sample(1.0, true).save(&dir).unwrap();
    let newer = sample(5.0, false);
    newer.save(&dir).unwrap();

    let back = Checkpoint::load(&dir).unwrap();
    assert_eq!(back.config, newer.config);
    // The old optimizer file must not linger and be picked up on resume.
    assert_eq!(back.optimizer, None);
    assert_eq!(listing(&dir), [CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE]);
    assert_eq!(listing(root.path()), ["last"]);
}

#[test]
fn crash_while_writing_temp_folder_keeps_previous_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("best");
    let good = sample(1.0, true);
    good.save(&dir).unwrap();

    // A save by another process died half way through writing its temp folder.
    let stale = with_suffix(&dir, ".tmp-999999");
    fs::create_dir(&stale).unwrap();
    fs::write(stale.join(CONFIG_FILE), "{\"cell\": \"gr").unwrap();
    fs::write(stale.join(WEIGHTS_FILE), [1, 2, 3]).unwrap();

    assert_eq!(Checkpoint::load(&dir).unwrap(), loaded(&good));
    assert_eq!(Checkpoint::resolve(root.path()).unwrap(), dir);

    // The next successful save sweeps the stale temp folder away.
    sample(3.0, false).save(&dir).unwrap();
    assert_eq!(listing(root.path()), ["best"]);
}

#[test]
fn crash_between_renames_falls_back_to_old() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("best");
    let good = sample(1.0, true);
    good.save(&dir).unwrap();
    // Crash after `dir` -> `dir.old` but before the temp folder was renamed in.
    fs::rename(&dir, with_suffix(&dir, ".old")).unwrap();
    fs::create_dir(with_suffix(&dir, ".tmp-999999")).unwrap();

    assert_eq!(Checkpoint::load(&dir).unwrap(), loaded(&good));
    assert_eq!(Checkpoint::resolve(&dir).unwrap(), dir);
    assert_eq!(Checkpoint::resolve(root.path()).unwrap(), dir);

    // Saving again completes normally and removes the leftovers.
    let newer = sample(7.0, false);
    newer.save(&dir).unwrap();
    assert_eq!(Checkpoint::load(&dir).unwrap().config, newer.config);
    assert_eq!(listing(root.path()), ["best"]);
}

#[test]
fn crash_before_removing_old_prefers_the_new_folder() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("best");
    let old = with_suffix(&dir, ".old");
    sample(1.0, false).save(&old).unwrap(); // stands in for the previous checkpoint
    let newer = sample(2.0, false);
    newer.save(&dir).unwrap();
    // save(&dir) saw `dir` missing and `dir.old` present: it must keep the old one
    // until the new one is in place, then remove it.
    assert_eq!(listing(root.path()), ["best"]);
    assert_eq!(Checkpoint::load(&dir).unwrap().config, newer.config);

    // Both present (crash after the swap): `dir` wins, and the next save cleans up.
    sample(1.0, false).save(&old).unwrap();
    assert_eq!(Checkpoint::load(&dir).unwrap().config, newer.config);
    sample(3.0, false).save(&dir).unwrap();
    assert_eq!(listing(root.path()), ["best"]);
}

/// What `load` returns for a saved checkpoint: weights sorted by name.
fn loaded(ck: &Checkpoint) -> Checkpoint {
    let mut ck = ck.clone();
    ck.weights.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(o) = &mut ck.optimizer {
        o.sort_by(|a, b| a.name.cmp(&b.name));
    }
    ck
}

/// The error and its sources joined by ": ", as a front end prints them.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(&format!(": {e}"));
        source = e.source();
    }
    out
}

#[test]
fn load_errors_name_the_folder_or_file() {
    let root = tempfile::tempdir().unwrap();
    let err = |dir: &Path| chain(&Checkpoint::load(dir).unwrap_err());

    let missing = root.path().join("missing");
    assert_eq!(
        err(&missing),
        format!(
            "no checkpoint at {} (expected config.json, model.safetensors, vocab.json)",
            missing.display()
        )
    );
    let empty = root.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert!(err(&empty).starts_with("no checkpoint at "));

    let dir = root.path().join("ck");
    let save = || sample(1.0, true).save(&dir).unwrap();

    save();
    fs::remove_file(dir.join(VOCAB_FILE)).unwrap();
    assert_eq!(
        err(&dir),
        format!("{} does not exist", dir.join(VOCAB_FILE).display())
    );

    save();
    fs::write(dir.join(CONFIG_FILE), "{\"cell\": lstm").unwrap();
    let msg = err(&dir);
    assert!(
        msg.starts_with(&format!(
            "{} is not valid JSON: ",
            dir.join(CONFIG_FILE).display()
        )),
        "{msg}"
    );
    assert!(msg.contains("line 1"), "{msg}");

    save();
    fs::write(dir.join(VOCAB_FILE), "[\"a\", 3]").unwrap();
    assert!(err(&dir).starts_with(&format!(
        "{} is not a JSON array of token strings: ",
        dir.join(VOCAB_FILE).display()
    )));

    save();
    let weights = fs::read(dir.join(WEIGHTS_FILE)).unwrap();
    fs::write(dir.join(WEIGHTS_FILE), &weights[..weights.len() / 2]).unwrap();
    assert!(err(&dir).starts_with(&format!(
        "{} is truncated or corrupt (",
        dir.join(WEIGHTS_FILE).display()
    )));

    // A present but broken optional file is an error, not silently "no optimizer".
    save();
    fs::write(dir.join(OPTIMIZER_FILE), [0u8; 3]).unwrap();
    assert!(err(&dir).contains("optimizer.safetensors is truncated or corrupt"));
    save();
    fs::write(dir.join(TRAINER_STATE_FILE), "").unwrap();
    assert!(err(&dir).contains("trainer_state.json is not valid JSON"));

    for msg in [err(&missing), err(&dir)] {
        assert!(!msg.contains('\n'), "{msg}");
    }
}

#[test]
fn save_refuses_to_replace_something_that_is_not_a_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let precious = root.path().join("notes");
    fs::create_dir(&precious).unwrap();
    fs::write(precious.join("thesis.txt"), "do not delete").unwrap();
    let msg = sample(1.0, false).save(&precious).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!(
            "cannot save checkpoint to {}: ",
            precious.display()
        )),
        "{msg}"
    );
    assert_eq!(listing(&precious), ["thesis.txt"]);

    let file = root.path().join("a-file");
    fs::write(&file, "x").unwrap();
    assert!(sample(1.0, false)
        .save(&file)
        .unwrap_err()
        .to_string()
        .contains("is not a folder"));
    assert_eq!(fs::read_to_string(&file).unwrap(), "x");

    // An empty folder (e.g. made by `mkdir` beforehand) is fine to fill.
    let empty = root.path().join("empty");
    fs::create_dir(&empty).unwrap();
    sample(1.0, false).save(&empty).unwrap();
    assert!(Checkpoint::load(&empty).is_ok());
}

#[test]
fn bad_weights_fail_before_anything_is_written() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("best");
    let good = sample(1.0, false);
    good.save(&dir).unwrap();
    let mut bad = sample(2.0, false);
    bad.weights[0].data.pop();
    let msg = bad.save(&dir).unwrap_err().to_string();
    assert!(msg.contains("rnn.0.weight_ih"), "{msg}");
    assert_eq!(Checkpoint::load(&dir).unwrap().config, good.config);
    assert_eq!(listing(root.path()), ["best"]);
}

#[test]
fn resolve_accepts_checkpoint_and_run_folders() {
    let root = tempfile::tempdir().unwrap();
    let run = root.path().join("run");
    sample(1.0, false).save(&run.join(LAST_DIR)).unwrap();
    assert_eq!(Checkpoint::resolve(&run).unwrap(), run.join(LAST_DIR));
    sample(2.0, false).save(&run.join(BEST_DIR)).unwrap();
    fs::write(run.join("metrics.jsonl"), "{}\n").unwrap();

    assert_eq!(Checkpoint::resolve(&run).unwrap(), run.join(BEST_DIR));
    assert_eq!(
        Checkpoint::resolve(&run.join(LAST_DIR)).unwrap(),
        run.join(LAST_DIR)
    );
    let best = Checkpoint::load(&Checkpoint::resolve(&run).unwrap()).unwrap();
    assert_eq!(best.config["seed"], 2.0);

    // A folder with some checkpoint files resolves to itself so load can name what is missing.
    fs::remove_file(run.join(BEST_DIR).join(CONFIG_FILE)).unwrap();
    assert_eq!(
        Checkpoint::resolve(&run.join(BEST_DIR)).unwrap(),
        run.join(BEST_DIR)
    );

    for nowhere in [root.path().join("nope"), root.path().to_path_buf()] {
        assert_eq!(
            Checkpoint::resolve(&nowhere).unwrap_err().to_string(),
            format!(
                "no checkpoint at {} (expected config.json, model.safetensors, vocab.json, \
                 or a run folder with best/ or last/)",
                nowhere.display()
            )
        );
    }
}
