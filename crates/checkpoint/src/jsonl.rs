//! Append-only JSON Lines log (`metrics.jsonl`): one object per line, readable
//! with `jq`, pandas or a text editor while training is still running.
//!
//! Lines are not synced one by one (an fsync per training step would cost
//! more than a small model's step): a resume reads `last/`, never the log, so
//! a power cut can only cost the log's tail. [`sync_jsonl`] makes the log
//! durable up to a checkpoint when it is saved.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::atomic::{create_dir_all_synced, parent_dir, sync_dir};
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
    let mut file = match OpenOptions::new().append(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = parent_dir(path);
            create_dir_all_synced(&dir)?;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| CheckpointError::io("open", path, e))?;
            // The new file is an entry of its folder: make that entry durable.
            sync_dir(&dir)?;
            file
        }
        Err(e) => return Err(CheckpointError::io("open", path, e)),
    };
    // One write of the whole line: with O_APPEND it lands at the current end of file,
    // so a reader never sees two records interleaved.
    file.write_all(line.as_bytes())
        .map_err(|e| CheckpointError::io("append to", path, e))
}

/// fsync the log at `path` (nothing to do when it does not exist), so that
/// its lines so far survive a power cut.
pub fn sync_jsonl(path: &Path) -> Result<(), CheckpointError> {
    match File::open(path) {
        Ok(file) => file
            .sync_data()
            .map_err(|e| CheckpointError::io("fsync", path, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CheckpointError::io("open", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic::take_synced_dirs;

    #[test]
    fn creating_the_log_syncs_its_folder_and_appending_does_not() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("run").join("metrics.jsonl");
        take_synced_dirs();
        append_jsonl(&path, &serde_json::json!({"step": 1})).unwrap();
        let synced = take_synced_dirs();
        assert!(synced.iter().any(|d| d == root.path()), "{synced:?}");
        assert!(
            synced.iter().any(|d| *d == root.path().join("run")),
            "{synced:?}"
        );
        append_jsonl(&path, &serde_json::json!({"step": 2})).unwrap();
        assert_eq!(take_synced_dirs(), Vec::<std::path::PathBuf>::new());
        sync_jsonl(&path).unwrap();
        sync_jsonl(&root.path().join("missing.jsonl")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"step\":1}\n{\"step\":2}\n");
    }
}
