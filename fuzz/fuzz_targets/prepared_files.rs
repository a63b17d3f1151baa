//! One file of a real prepared data folder (`recurrent prepare`) replaced by
//! the input: the first byte picks which (manifest.json, train.bin, val.bin,
//! vocab.json or tokenizer.json; of a char or a BPE folder), the rest is its
//! content. Opening must answer with the data or an error, never a panic; a
//! folder that opens with the full check reads every id in its vocabulary.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use recurrent::text::prepared::{PreparedData, Verify};
use recurrent_fuzz::{scratch, tiny_prepared};

const FILES: [&str; 5] = [
    "manifest.json",
    "train.bin",
    "val.bin",
    "vocab.json",
    "tokenizer.json",
];

/// The pristine folders.
fn originals() -> &'static [PathBuf; 2] {
    static DATA: OnceLock<[PathBuf; 2]> = OnceLock::new();
    DATA.get_or_init(|| [tiny_prepared(false), tiny_prepared(true)])
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, content)) = data.split_first() else {
        return;
    };
    let original = &originals()[(pick as usize / FILES.len()) % 2];
    let file = FILES[pick as usize % FILES.len()];
    let dir = scratch().join("prepared");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(original).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    std::fs::write(dir.join(file), content).unwrap();
    for verify in [Verify::Size, Verify::Full] {
        if let Ok(prepared) = PreparedData::open(&dir, verify) {
            let vocab = prepared.tokenizer().vocab().len() as u32;
            let ids = prepared.train().ids();
            if verify == Verify::Full {
                assert!((0..ids.len()).all(|i| ids.get(i) < vocab), "an id outside the vocabulary");
            }
        }
    }
});
