//! metrics.jsonl: a run folder's metrics as any bytes; drawing its loss
//! curves (`recurrent plot`) answers with a picture or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recurrent::RunFolder;
use recurrent_fuzz::scratch;

fuzz_target!(|data: &[u8]| {
    let dir = scratch().join("metrics-run");
    std::fs::create_dir_all(&dir).unwrap();
    let folder = RunFolder::at(&dir);
    std::fs::write(folder.metrics_path(), data).unwrap();
    let _ = folder.plot_metrics(None);
});
