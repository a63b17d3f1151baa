//! Append-only JSON Lines log (`metrics.jsonl`): one object per line, readable
//! with `jq`, pandas or a text editor while training is still running.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::atomic::parent_dir;
use crate::CheckpointError;

/// Append one JSON value as a line to `path` (metrics.jsonl), creating the file and its folder if needed.
pub fn append_jsonl(path: &Path, value: &serde_json::Value) -> Result<(), CheckpointError> {
    // Compact JSON never contains a raw newline (strings escape it), so this is one line.
    let mut line = serde_json::to_string(value).map_err(|e| CheckpointError::BadJson {
        path: path.to_path_buf(),
        expected: "serializable JSON",
        cause: e,
    })?;
    line.push('\n');
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(|e| CheckpointError::io("create", &dir, e))?;
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| CheckpointError::io("open", path, e))?;
    // One write of the whole line: with O_APPEND it lands at the current end of file,
    // so a reader never sees two records interleaved.
    file.write_all(line.as_bytes())
        .map_err(|e| CheckpointError::io("append to", path, e))
}
