//! Run folders: where a training run keeps its checkpoints, metrics and
//! loss plot, so it can be resumed, by this library or by the command line.
//!
//! ```text
//! runs/novel/
//!   best/          checkpoint with the lowest validation loss
//!   last/          latest checkpoint, with the optimizer and trainer state
//!   metrics.jsonl  one JSON object per step and per validation
//!   loss.svg       training and validation loss against the step
//!   run.lock       while a process trains into it
//! ```
//!
//! One process trains into a run folder at a time: a run takes the folder's
//! lock as it starts training and removes what crashed saves left behind
//! (see [`recurrent_checkpoint::lock`] and [`recurrent_checkpoint::stale`]).
//! Reading a run (sampling, evaluating, serving) takes no lock.

use std::path::{Path, PathBuf};

use recurrent_checkpoint::atomic::create_dir_all_synced;
use recurrent_checkpoint::layout::{BEST_DIR, LAST_DIR, METRICS_FILE};
use recurrent_checkpoint::{append_jsonl, sync_jsonl, RunLock};
use recurrent_train::engine::SaveEvery;
use recurrent_train::Slot;

use crate::curves;
use crate::error::{Error, Result};

/// A run's folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFolder {
    path: PathBuf,
    save_every: Option<SaveEvery>,
}

impl RunFolder {
    /// A folder for a new run at `path`. It is an error if it already holds
    /// a run (a `best/` or `last/` checkpoint), or if another process is
    /// training into it. The folder is created when the run is set up, so a
    /// run that cannot start leaves nothing behind.
    pub fn create(path: impl Into<PathBuf>) -> Result<RunFolder> {
        let path = absolute(&path.into());
        ensure_unlocked(&path)?;
        if path.join(LAST_DIR).exists() || path.join(BEST_DIR).exists() {
            return Err(Error::RunExists { path });
        }
        Ok(RunFolder::at(path))
    }

    /// Creates the folder if it does not exist yet.
    pub(crate) fn make(&self) -> Result<()> {
        create_dir_all_synced(&self.path).map_err(Error::from)
    }

    /// This folder, with `last/` also written as often as `every` says
    /// between validations (which write it too), for this invocation.
    pub fn with_save_every(self, every: SaveEvery) -> RunFolder {
        RunFolder {
            save_every: Some(every),
            ..self
        }
    }

    /// How often `last/` is written between validations, if at all.
    pub fn save_every(&self) -> Option<SaveEvery> {
        self.save_every
    }

    /// Takes the folder's lock for a run training into it (failing when
    /// another process holds it), and removes the temporaries of saves that
    /// crashed. Returns the lock, which is released when dropped, and the
    /// names removed.
    pub(crate) fn lock(&self) -> Result<(RunLock, Vec<String>)> {
        let lock = RunLock::acquire(&self.path)?;
        let removed = recurrent_checkpoint::remove_stale_temporaries(&self.path)?;
        Ok((lock, removed))
    }

    /// fsyncs `metrics.jsonl`, so its lines survive a power cut as the
    /// checkpoint saved with them does.
    pub(crate) fn sync_metrics(&self) -> Result<()> {
        sync_jsonl(&self.metrics_path()).map_err(Error::from)
    }

    /// A new run folder named after `name` under `parent`: `parent/NAME`,
    /// else `parent/NAME-2`, `parent/NAME-3`, ...: the first that does not
    /// exist yet.
    pub fn create_fresh(parent: &Path, name: &str) -> Result<RunFolder> {
        let path = (1..)
            .map(|i| match i {
                1 => parent.join(name),
                i => parent.join(format!("{name}-{i}")),
            })
            .find(|p| !p.exists())
            .expect("some run folder name is free");
        RunFolder::create(path)
    }

    /// The run folder at `path`, whatever it holds (to read its metrics).
    pub fn at(path: impl Into<PathBuf>) -> RunFolder {
        RunFolder {
            path: path.into(),
            save_every: None,
        }
    }

    /// The folder of an existing run, to resume. It is an error if another
    /// process is training into it.
    pub fn open(path: impl Into<PathBuf>) -> Result<RunFolder> {
        let path = absolute(&path.into());
        ensure_unlocked(&path)?;
        if !path.is_dir() {
            let reason = if path.exists() {
                "it is a file"
            } else {
                "there is no such folder"
            };
            return Err(Error::NotARun { path, reason });
        }
        let run = RunFolder::at(path);
        // `last.old` stands in for `last/` after a crash in the middle of a save.
        if !run.last_dir().exists() && !run.path.join(format!("{LAST_DIR}.old")).exists() {
            return Err(Error::NotARun {
                path: run.path,
                reason: "it has no last/ checkpoint",
            });
        }
        Ok(run)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checkpoint with the lowest validation loss.
    pub fn best_dir(&self) -> PathBuf {
        self.path.join(BEST_DIR)
    }

    /// The latest checkpoint, which resuming continues from.
    pub fn last_dir(&self) -> PathBuf {
        self.path.join(LAST_DIR)
    }

    /// The folder of checkpoint `slot`.
    pub fn slot_dir(&self, slot: Slot) -> PathBuf {
        match slot {
            Slot::Best => self.best_dir(),
            Slot::Last => self.last_dir(),
        }
    }

    /// The metrics file: one JSON object per line.
    pub fn metrics_path(&self) -> PathBuf {
        self.path.join(METRICS_FILE)
    }

    /// The loss plot (SVG).
    pub fn loss_plot_path(&self) -> PathBuf {
        self.path.join(curves::FILE)
    }

    /// Appends one line to `metrics.jsonl`.
    pub fn append_metric(&self, value: &serde_json::Value) -> Result<()> {
        let path = self.metrics_path();
        append_jsonl(&path, value).map_err(Error::from)
    }

    /// Whether the run folder holds a checkpoint in `slot`.
    pub fn has(&self, slot: Slot) -> bool {
        self.slot_dir(slot).exists()
    }
}

/// Fails when a process trains into the folder at `path`: before a run's
/// set-up, which can take long, rather than as it starts training.
fn ensure_unlocked(path: &Path) -> Result<()> {
    if path.is_dir() {
        RunLock::ensure_free(path)?;
    }
    Ok(())
}

/// `path` made absolute, so a run records where its data is from any folder.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
