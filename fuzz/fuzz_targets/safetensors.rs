//! model.safetensors / optimizer.safetensors bytes: parsed, and when they
//! parse, checked for non-finite values as loading does.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use recurrent::checkpoint::{check_finite, safetensors_from_bytes};

fuzz_target!(|data: &[u8]| {
    let origin = Path::new("fuzz.safetensors");
    if let Ok((tensors, _)) = safetensors_from_bytes(data, origin) {
        let _ = check_finite(&tensors, origin);
    }
});
