//! One checkpoint folder: config, weights, vocabulary and optional resume state,
//! saved with a folder swap so a crash never destroys the previous good checkpoint.
//!
//! Save protocol for `dir` (only ever one of these states is visible after a crash):
//!
//! 1. write every file into `<dir>.tmp-<pid>` and fsync them;
//! 2. rename `dir` to `<dir>.old`;
//! 3. rename `<dir>.tmp-<pid>` to `dir`, fsync the parent;
//! 4. remove `<dir>.old`, fsync the parent.
//!
//! A crash in 1 leaves `dir` untouched (plus a stale temp folder, never read);
//! between 2 and 3 only `<dir>.old` exists, and [`Checkpoint::load`] falls back to it;
//! between 3 and 4 both exist and `dir` is the newer, complete one.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use crate::atomic::{create_dir_all_synced, parent_dir, read_bytes, sync_dir, write_synced};
use crate::layout::{
    BEST_DIR, CONFIG_FILE, LAST_DIR, OPTIMIZER_FILE, REQUIRED_FILES, TARGET_TOKENIZER_FILE,
    TARGET_VOCAB_FILE, TOKENIZER_FILE, TRAINER_STATE_FILE, VOCAB_FILE, WEIGHTS_FILE,
};
use crate::stale::{temp_is_stale, OLD_SUFFIX, TEMP_MARKER};
use crate::tensors::{check_finite, read_safetensors, safetensors_bytes, Tensor};
use crate::CheckpointError;

/// The contents of one checkpoint folder.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Checkpoint {
    /// config.json: architecture + tokenizer kind, written pretty.
    pub config: serde_json::Value,
    /// model.safetensors: the model parameters.
    pub weights: Vec<Tensor>,
    /// vocab.json: token strings in id order.
    pub vocab: Vec<String>,
    /// optimizer.safetensors: optimizer state, only in checkpoints meant for resuming.
    pub optimizer: Option<Vec<Tensor>>,
    /// trainer_state.json: trainer progress, only in checkpoints meant for resuming.
    pub trainer_state: Option<serde_json::Value>,
    /// tokenizer.json: a subword tokenizer, only for BPE models.
    pub tokenizer_json: Option<String>,
    /// target_vocab.json: a seq2seq model's target vocabulary when the two
    /// sides have their own (`vocab` is then the source side's).
    pub target_vocab: Option<Vec<String>>,
    /// target_tokenizer.json: a seq2seq model's BPE target tokenizer when the
    /// two sides have their own.
    pub target_tokenizer_json: Option<String>,
}

impl Checkpoint {
    /// Write the folder `dir` so that a crash never destroys the previous good checkpoint at `dir`.
    ///
    /// Files are written into a sibling temp folder `<dir>.tmp-<pid>`, fsynced, and
    /// swapped in by renames (see the module docs). Missing parent folders are
    /// created. An existing `dir` that is not a checkpoint (no config.json) and not
    /// empty is refused rather than replaced, so a mistyped path cannot wipe a folder.
    pub fn save(&self, dir: &Path) -> Result<(), CheckpointError> {
        let cannot = |reason: &str| CheckpointError::CannotSave {
            path: dir.to_path_buf(),
            reason: reason.to_string(),
        };
        if dir.file_name().is_none() {
            return Err(cannot("the path does not end in a folder name"));
        }
        if dir.exists() {
            if !dir.is_dir() {
                return Err(cannot("it exists and is not a folder"));
            }
            if !dir.join(CONFIG_FILE).is_file() && !is_empty_dir(dir)? {
                return Err(cannot(
                    "it exists and is not a checkpoint folder (no config.json); refusing to replace it",
                ));
            }
        }

        // Encode everything before touching the disk: a bad tensor then leaves no litter.
        let mut files: Vec<(&str, Vec<u8>)> = vec![
            (CONFIG_FILE, pretty_json(&self.config, dir)?),
            (WEIGHTS_FILE, safetensors_bytes(&self.weights, None)?),
            (VOCAB_FILE, pretty_json(&self.vocab, dir)?),
        ];
        if let Some(opt) = &self.optimizer {
            files.push((OPTIMIZER_FILE, safetensors_bytes(opt, None)?));
        }
        if let Some(state) = &self.trainer_state {
            files.push((TRAINER_STATE_FILE, pretty_json(state, dir)?));
        }
        if let Some(json) = &self.tokenizer_json {
            files.push((TOKENIZER_FILE, json.clone().into_bytes()));
        }
        if let Some(vocab) = &self.target_vocab {
            files.push((TARGET_VOCAB_FILE, pretty_json(vocab, dir)?));
        }
        if let Some(json) = &self.target_tokenizer_json {
            files.push((TARGET_TOKENIZER_FILE, json.clone().into_bytes()));
        }

        let parent = parent_dir(dir);
        create_dir_all_synced(&parent)?;
        let tmp = sibling(dir, &format!("{TEMP_MARKER}{}", std::process::id()));
        let old = sibling(dir, OLD_SUFFIX);

        // A folder with our exact name can only be from an earlier crashed process with our pid.
        remove_dir_if_exists(&tmp)?;
        fs::create_dir(&tmp).map_err(|e| CheckpointError::io("create", &tmp, e))?;
        let written = files
            .iter()
            .try_for_each(|(name, bytes)| write_synced(&tmp.join(name), bytes))
            .and_then(|()| sync_dir(&tmp));
        if let Err(e) = written {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }

        if dir.exists() {
            // `dir` exists, so any `<dir>.old` is left over from a save that crashed after
            // its swap: `dir` is the newer complete checkpoint and the old one is garbage.
            remove_dir_if_exists(&old)?;
            fs::rename(dir, &old).map_err(|e| CheckpointError::io("rename", dir, e))?;
        }
        // If `dir` was missing but `<dir>.old` exists, an earlier save crashed mid-swap and
        // `<dir>.old` is the last good checkpoint: keep it until the new one is in place.
        if let Err(e) = fs::rename(&tmp, dir) {
            // Put the previous checkpoint back so `dir` keeps working.
            let _ = fs::rename(&old, dir);
            let _ = fs::remove_dir_all(&tmp);
            return Err(CheckpointError::io("rename", &tmp, e));
        }
        sync_dir(&parent)?;
        if old.exists() {
            fs::remove_dir_all(&old).map_err(|e| CheckpointError::io("remove", &old, e))?;
            sync_dir(&parent)?;
        }
        remove_stale_temp_dirs(dir);
        Ok(())
    }

    /// Load a checkpoint folder, falling back to `<dir>.old` when `dir` is missing (a crash mid-swap).
    ///
    /// `optimizer` and `trainer_state` are `None` when their files are absent;
    /// when present they must parse like the rest.
    pub fn load(dir: &Path) -> Result<Checkpoint, CheckpointError> {
        let old = sibling(dir, OLD_SUFFIX);
        let folder = if !dir.exists() && old.is_dir() {
            old.as_path()
        } else {
            dir
        };
        if !folder.is_dir() || !REQUIRED_FILES.iter().any(|f| folder.join(f).exists()) {
            return Err(CheckpointError::NoCheckpoint {
                path: dir.to_path_buf(),
            });
        }

        let config = read_json(&folder.join(CONFIG_FILE), "valid JSON")?;
        let weights_path = folder.join(WEIGHTS_FILE);
        let weights = read_safetensors(&weights_path)?;
        check_finite(&weights, &weights_path)?;
        let vocab = read_json(&folder.join(VOCAB_FILE), "a JSON array of token strings")?;
        let optimizer_path = folder.join(OPTIMIZER_FILE);
        let optimizer = optional(read_safetensors(&optimizer_path))?;
        if let Some(tensors) = &optimizer {
            check_finite(tensors, &optimizer_path)?;
        }
        let trainer_state = optional(read_json(&folder.join(TRAINER_STATE_FILE), "valid JSON"))?;
        let tokenizer_json = read_optional_text(&folder.join(TOKENIZER_FILE))?;
        let target_vocab = optional(read_json(
            &folder.join(TARGET_VOCAB_FILE),
            "a JSON array of token strings",
        ))?;
        let target_tokenizer_json = read_optional_text(&folder.join(TARGET_TOKENIZER_FILE))?;
        Ok(Checkpoint {
            config,
            weights,
            vocab,
            optimizer,
            trainer_state,
            tokenizer_json,
            target_vocab,
            target_tokenizer_json,
        })
    }

    /// Resolve `path` to a checkpoint folder: itself, or for a run folder its `best/` (else `last/`).
    ///
    /// A folder holding any checkpoint file counts as a checkpoint, so that
    /// [`Checkpoint::load`] can then name the one that is missing or broken.
    pub fn resolve(path: &Path) -> Result<PathBuf, CheckpointError> {
        if looks_like_checkpoint(path) {
            return Ok(path.to_path_buf());
        }
        if path.is_dir() {
            for sub in [BEST_DIR, LAST_DIR] {
                let candidate = path.join(sub);
                if looks_like_checkpoint(&candidate) {
                    return Ok(candidate);
                }
            }
        }
        Err(CheckpointError::NoCheckpointOrRun {
            path: path.to_path_buf(),
        })
    }
}

/// True if `dir` (or, when `dir` is missing, `<dir>.old`) holds any required checkpoint file.
fn looks_like_checkpoint(dir: &Path) -> bool {
    let has_files = |d: &Path| REQUIRED_FILES.iter().any(|f| d.join(f).is_file());
    has_files(dir) || (!dir.exists() && has_files(&sibling(dir, OLD_SUFFIX)))
}

/// `dir` with `suffix` appended to its last component: `runs/x/best` -> `runs/x/best.old`.
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().map(OsString::from).unwrap_or_default();
    name.push(suffix);
    parent_dir(dir).join(name)
}

/// Best effort: remove `<dir>.tmp-<pid>` folders left by processes that
/// crashed while saving. A live process's folder may be a save in progress
/// (two processes may save into one parent folder), so it stays.
fn remove_stale_temp_dirs(dir: &Path) {
    let (Some(name), Ok(entries)) = (
        dir.file_name().and_then(|n| n.to_str()),
        fs::read_dir(parent_dir(dir)),
    ) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(name))
            .and_then(|n| n.strip_prefix(TEMP_MARKER))
        else {
            continue;
        };
        let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
        if digits
            && pid
                .parse()
                .is_ok_and(|pid| temp_is_stale(&entry.path(), pid))
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn is_empty_dir(dir: &Path) -> Result<bool, CheckpointError> {
    let mut entries = fs::read_dir(dir).map_err(|e| CheckpointError::io("read", dir, e))?;
    Ok(entries.next().is_none())
}

fn remove_dir_if_exists(dir: &Path) -> Result<(), CheckpointError> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(CheckpointError::io("remove", dir, e))
        }
        _ => Ok(()),
    }
}

/// Pretty JSON with a trailing newline, so the files read well in an editor and diff cleanly.
fn pretty_json<T: serde::Serialize + ?Sized>(
    value: &T,
    dir: &Path,
) -> Result<Vec<u8>, CheckpointError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| CheckpointError::CannotSave {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    expected: &'static str,
) -> Result<T, CheckpointError> {
    let bytes = read_bytes(path)?;
    serde_json::from_slice(&bytes).map_err(|cause| CheckpointError::BadJson {
        path: path.to_path_buf(),
        expected,
        cause,
    })
}

/// Turn "file does not exist" into `None`, keeping every other error.
fn optional<T>(result: Result<T, CheckpointError>) -> Result<Option<T>, CheckpointError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(CheckpointError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A text file's contents, or `None` when it does not exist.
fn read_optional_text(path: &Path) -> Result<Option<String>, CheckpointError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CheckpointError::io("read", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic::take_synced_dirs;

    #[test]
    fn a_save_syncs_every_folder_whose_entries_it_changes() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("runs").join("novel");
        let dir = run.join("best");
        let checkpoint = Checkpoint {
            config: serde_json::json!({"cell": "lstm"}),
            ..Checkpoint::default()
        };
        take_synced_dirs();
        checkpoint.save(&dir).unwrap();
        let synced = take_synced_dirs();
        // The new folders runs/ and runs/novel/ are entries of their parents;
        // the temp folder holds the files; the run folder holds the rename.
        let tmp = sibling(&dir, &format!("{TEMP_MARKER}{}", std::process::id()));
        for folder in [root.path(), &root.path().join("runs"), &tmp, &run] {
            assert!(
                synced.iter().any(|d| d == folder),
                "{folder:?} not in {synced:?}"
            );
        }
        // Replacing it renames the old folder aside and removes it: synced after both.
        checkpoint.save(&dir).unwrap();
        let synced = take_synced_dirs();
        assert_eq!(
            synced.iter().filter(|d| **d == run).count(),
            2,
            "{synced:?}"
        );
    }

    #[test]
    fn a_live_process_keeps_its_temp_folder_and_a_dead_one_loses_it() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("last");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let live = sibling(&dir, &format!("{TEMP_MARKER}{}", child.id()));
        let dead = sibling(&dir, &format!("{TEMP_MARKER}999999999"));
        fs::create_dir(&live).unwrap();
        fs::create_dir(&dead).unwrap();
        Checkpoint::default().save(&dir).unwrap();
        let (live_kept, dead_kept) = (live.exists(), dead.exists());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            live_kept && !dead_kept,
            "live {live_kept}, dead {dead_kept}"
        );
    }
}
