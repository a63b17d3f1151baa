//! tokenizer.json (BPE): a tokenizer from any text; when it loads, it encodes
//! and decodes a text without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recurrent::text::Tokenizer;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tokenizer) = Tokenizer::from_tokenizer_json(text) {
        if let Ok(ids) = tokenizer.encode("the cat (sat) \u{e9}t\u{e9} \u{1f600}") {
            let _ = tokenizer.decode(&ids);
        }
    }
});
