//! One file of a real checkpoint replaced by the input: the first byte picks
//! which (config.json, vocab.json, model.safetensors, tokenizer.json,
//! trainer_state.json, optimizer.safetensors; of a char or a BPE model), the
//! rest is its content. Loading must answer with the model or an error, and
//! a loaded checkpoint must also summarize (`recurrent info`) without panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use recurrent::AnyCheckpoint;
use recurrent_fuzz::{scratch, tiny_run};

const FILES: [&str; 6] = [
    "config.json",
    "vocab.json",
    "model.safetensors",
    "tokenizer.json",
    "trainer_state.json",
    "optimizer.safetensors",
];

/// The pristine `best/` of each run.
fn originals() -> &'static [PathBuf; 2] {
    static RUNS: OnceLock<[PathBuf; 2]> = OnceLock::new();
    RUNS.get_or_init(|| [tiny_run(false).join("best"), tiny_run(true).join("best")])
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, content)) = data.split_first() else {
        return;
    };
    let original = &originals()[(pick as usize / FILES.len()) % 2];
    let file = FILES[pick as usize % FILES.len()];
    let dir = scratch().join("checkpoint");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(original).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    std::fs::write(dir.join(file), content).unwrap();
    if let Ok(checkpoint) = AnyCheckpoint::load(&dir) {
        let _ = checkpoint.summary();
    }
});
