//! Sentence-pair files (TSV): the first byte picks the columns and the
//! direction, the rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recurrent::text::{parse_pairs, PairColumns};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let columns = PairColumns {
        src: (pick & 3) as usize,
        tgt: ((pick >> 2) & 3) as usize,
        reverse: pick & 16 != 0,
    };
    let _ = parse_pairs("fuzz.tsv", bytes, &columns);
});
