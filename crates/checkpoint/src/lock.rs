//! The run-folder lock: one training process writes a run folder at a time.
//!
//! The lock is the `run.lock` file in the folder, held with an exclusive
//! advisory lock (`flock` on Unix, `LockFileEx` on Windows, through std's
//! `File::try_lock`) and holding the owner's process id for the message a
//! second process gets. The operating system drops the advisory lock when its
//! process ends in any way, `kill -9` included, so a lock file left by a dead
//! process is simply taken over: no process-id liveness test, which a reused
//! pid or two processes taking over at once would fool. Where the filesystem
//! has no advisory locks, the process id in the file decides.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::layout::LOCK_FILE;
use crate::stale::process_is_alive;
use crate::CheckpointError;

/// The held lock of a run folder; dropping it releases the lock and removes
/// the lock file.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of the run folder `folder` (which must exist), or
    /// fails at once with [`CheckpointError::RunLocked`] when another
    /// process, or another lock in this one, holds it.
    pub fn acquire(folder: &Path) -> Result<RunLock, CheckpointError> {
        let path = folder.join(LOCK_FILE);
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| CheckpointError::io("create", &path, e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(locked(folder, &path, read_pid(&mut file)))
                }
                Err(fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
                    if let Some(pid) = read_pid(&mut file).filter(|&p| process_is_alive(p)) {
                        if pid != std::process::id() {
                            return Err(locked(folder, &path, Some(pid)));
                        }
                    }
                }
                Err(fs::TryLockError::Error(e)) => {
                    return Err(CheckpointError::io("lock", &path, e))
                }
            }
            // The holder before us removes the file as it lets go: if it did so
            // between our open and our lock, we hold a file no one else will
            // open. Start over with the file at `path`.
            if !is_same_file(&file, &path) {
                continue;
            }
            let pid = std::process::id().to_string();
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(pid.as_bytes()))
                .map_err(|e| CheckpointError::io("write", &path, e))?;
            return Ok(RunLock { file, path });
        }
    }

    /// Fails with [`CheckpointError::RunLocked`] when a process holds the
    /// lock of `folder`, without taking it: to refuse a run before its
    /// set-up rather than after.
    pub fn ensure_free(folder: &Path) -> Result<(), CheckpointError> {
        let path = folder.join(LOCK_FILE);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(CheckpointError::io("open", &path, e)),
        };
        // A shared lock conflicts only with the holder's exclusive one, and is
        // dropped with the file at once.
        match file.try_lock_shared() {
            Ok(()) => Ok(()),
            Err(fs::TryLockError::WouldBlock) => Err(locked(folder, &path, read_pid(&mut file))),
            Err(fs::TryLockError::Error(_)) => match read_pid(&mut file) {
                Some(pid) if pid != std::process::id() && process_is_alive(pid) => {
                    Err(locked(folder, &path, Some(pid)))
                }
                _ => Ok(()),
            },
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Remove before unlocking (closing the file): a process that opened
        // the file meanwhile sees it is gone and opens a new one.
        let _ = fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

fn locked(folder: &Path, path: &Path, pid: Option<u32>) -> CheckpointError {
    CheckpointError::RunLocked {
        folder: folder.to_path_buf(),
        lock_file: path.to_path_buf(),
        pid,
    }
}

/// The process id written in a lock file, if it holds one yet.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Whether `file` is the file now at `path`.
#[cfg(unix)]
fn is_same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Windows does not let a file that is open be removed, so it is the one at `path`.
#[cfg(not(unix))]
fn is_same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_naming_the_folder_and_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(
            fs::read_to_string(lock.path()).unwrap(),
            std::process::id().to_string()
        );
        for err in [
            RunLock::acquire(dir.path()).unwrap_err(),
            RunLock::ensure_free(dir.path()).unwrap_err(),
        ] {
            let CheckpointError::RunLocked { folder, pid, .. } = &err else {
                panic!("{err:?}");
            };
            assert_eq!(
                (folder.as_path(), *pid),
                (dir.path(), Some(std::process::id()))
            );
            let message = err.to_string();
            assert!(
                message.contains(&dir.path().display().to_string()),
                "{message}"
            );
            assert!(
                message.contains(&format!("process {}", std::process::id())),
                "{message}"
            );
        }
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE).exists());
        RunLock::ensure_free(dir.path()).unwrap();
        RunLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn a_lock_file_left_by_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LOCK_FILE), "999999999").unwrap();
        RunLock::ensure_free(dir.path()).unwrap();
        let lock = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(
            fs::read_to_string(lock.path()).unwrap(),
            std::process::id().to_string()
        );
    }
}
