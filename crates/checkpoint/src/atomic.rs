//! Crash-safe file writing: temp file in the same directory, fsync, rename, fsync
//! the directory. Also the small fs helpers the rest of the crate shares.
//!
//! Every rename, creation and removal that a checkpoint depends on is followed
//! by an fsync of the folder holding it (`sync_dir`): on Linux (ext4, xfs,
//! btrfs) a rename is durable only once its directory is synced.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::CheckpointError;

/// Distinguishes temp files of concurrent writers within one process (the pid covers other processes).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write bytes to `path` atomically: write a temp file in the same directory, fsync it,
/// rename over `path`, fsync the directory.
///
/// A crash at any point leaves either the old file or the new one, never a torn file.
/// On error the temp file is removed; on success nothing but `path` is left behind.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let name = path.file_name().ok_or_else(|| CheckpointError::Io {
        action: "write",
        path: path.to_path_buf(),
        cause: io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
    })?;
    let dir = parent_dir(path);

    // Same directory as the target, so the rename never crosses filesystems
    // (which would make it a non-atomic copy). The leading dot hides it from `ls`.
    let (tmp_path, mut file) = loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}-{n}", std::process::id()));
        let tmp_path = dir.join(tmp_name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
        {
            Ok(file) => break (tmp_path, file),
            // Left over from a crashed process that happened to have our pid: pick another name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            // Named by the file asked for: the temporary is ours, not the user's.
            Err(e) => return Err(CheckpointError::io("write", path, e)),
        }
    };

    let result = (|| {
        file.write_all(bytes)
            .map_err(|e| CheckpointError::io("write", &tmp_path, e))?;
        // Data must be on disk before the rename makes it visible, or a crash could
        // leave `path` pointing at an empty or partial file.
        file.sync_all()
            .map_err(|e| CheckpointError::io("fsync", &tmp_path, e))?;
        drop(file);
        fs::rename(&tmp_path, path).map_err(|e| CheckpointError::io("replace", path, e))
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp_path);
        return Err(e);
    }
    // Make the rename itself durable.
    sync_dir(&dir)
}

/// Write `bytes` to a new or truncated file and fsync it (not atomic: used inside temp folders).
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let mut file = File::create(path).map_err(|e| CheckpointError::io("create", path, e))?;
    file.write_all(bytes)
        .map_err(|e| CheckpointError::io("write", path, e))?;
    file.sync_all()
        .map_err(|e| CheckpointError::io("fsync", path, e))
}

/// Read a whole file; a missing file becomes [`CheckpointError::NotFound`].
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CheckpointError::NotFound {
            path: path.to_path_buf(),
        },
        _ => CheckpointError::io("read", path, e),
    })
}

/// The directory containing `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates `dir` and its missing ancestors like [`fs::create_dir_all`], and
/// fsyncs the parent of each folder it creates, so that a checkpoint saved
/// into a new run folder cannot vanish with its folder in a power cut.
pub fn create_dir_all_synced(dir: &Path) -> Result<(), CheckpointError> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = parent_dir(dir);
    if parent != dir {
        create_dir_all_synced(&parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => sync_dir(&parent),
        // Created meanwhile by someone else, who syncs it.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(CheckpointError::io("create", dir, e)),
    }
}

/// fsync a directory so that renames, creations and removals inside it
/// survive a power cut.
#[cfg(unix)]
pub(crate) fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    #[cfg(test)]
    SYNCED_DIRS.with(|synced| synced.borrow_mut().push(dir.to_path_buf()));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CheckpointError::io("fsync", dir, e))
}

#[cfg(test)]
thread_local! {
    /// The folders [`sync_dir`] synced on this thread, for tests to check.
    pub(crate) static SYNCED_DIRS: std::cell::RefCell<Vec<PathBuf>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The folders synced on this thread since the last call (tests only).
#[cfg(test)]
pub(crate) fn take_synced_dirs() -> Vec<PathBuf> {
    SYNCED_DIRS.with(|synced| std::mem::take(&mut *synced.borrow_mut()))
}

/// Directories cannot be opened for fsync on this platform; renames are journaled by the OS.
#[cfg(not(unix))]
pub(crate) fn sync_dir(_dir: &Path) -> Result<(), CheckpointError> {
    #[cfg(test)]
    SYNCED_DIRS.with(|synced| synced.borrow_mut().push(_dir.to_path_buf()));
    Ok(())
}
