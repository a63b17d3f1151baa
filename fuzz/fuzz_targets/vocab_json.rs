//! vocab.json: a vocabulary from any text; when it parses, it round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recurrent::text::Vocab;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(vocab) = Vocab::from_json(text) {
        let again = Vocab::from_json(&vocab.to_json()).expect("a saved vocabulary loads");
        assert_eq!(again.len(), vocab.len());
    }
});
