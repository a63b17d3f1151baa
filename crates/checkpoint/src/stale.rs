//! Leftovers of saves that a crash cut short: temporaries named after the
//! process that wrote them, and a checkpoint folder's `.old` copy kept past
//! its swap.
//!
//! Every temporary carries its writer's process id: `<dir>.tmp-<pid>` for a
//! checkpoint folder being written ([`Checkpoint::save`](crate::Checkpoint::save)),
//! `.<file>.tmp-<pid>-<n>` for a file ([`atomic_write`](crate::atomic_write)).
//! A temporary whose process is gone can never be renamed into place, so it
//! is garbage; one whose process is alive may be a save in progress (two
//! processes may write into one parent folder) and is left alone.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::layout::CONFIG_FILE;
use crate::CheckpointError;

/// The marker between a temporary's target name and its writer's process id.
pub(crate) const TEMP_MARKER: &str = ".tmp-";

/// The suffix of a checkpoint folder's previous version during a save.
pub(crate) const OLD_SUFFIX: &str = ".old";

/// The process id that wrote the temporary named `name`, or `None` when
/// `name` is not a temporary: `best.tmp-123` and `.loss.svg.tmp-123-4` give 123.
pub fn temp_owner(name: &str) -> Option<u32> {
    let (_, tail) = name.rsplit_once(TEMP_MARKER)?;
    let (pid, counter) = tail.split_once('-').unwrap_or((tail, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(pid) && digits(counter) {
        pid.parse().ok()
    } else {
        None
    }
}

/// Whether process `pid` is running (this process included). Where that
/// cannot be told, every process counts as running, so nothing of a live
/// writer is ever removed.
pub fn process_is_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    process_is_alive_os(pid)
}

/// Whether the temporary at `path`, named after process `pid`, is garbage:
/// its process is gone, or the process now holding that id started after
/// the temporary was last written (the id was reused; the writer is gone).
pub fn temp_is_stale(path: &Path, pid: u32) -> bool {
    if !process_is_alive(pid) {
        return true;
    }
    let written = fs::symlink_metadata(path).and_then(|m| m.modified());
    match (written, process_start(pid)) {
        // Start times are known to a second (the boot time's precision).
        (Ok(written), Some(start)) => start > written + PID_REUSE_SLACK,
        _ => false,
    }
}

/// How much later than a temporary's last write its pid's process must have
/// started to count as another process.
const PID_REUSE_SLACK: Duration = Duration::from_secs(2);

/// When process `pid` started (Linux: `/proc/<pid>/stat`'s start time in
/// clock ticks after the boot time of `/proc/stat`).
#[cfg(target_os = "linux")]
fn process_start(pid: u32) -> Option<SystemTime> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesized command start at field 3 (the state);
    // the start time is field 22.
    let (_, fields) = stat.rsplit_once(')')?;
    let ticks: u64 = fields.split_whitespace().nth(22 - 3)?.parse().ok()?;
    let boot: u64 = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf reads a system constant; it has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let since_boot =
        Duration::from_secs_f64(ticks as f64 / u64::try_from(hz).ok().filter(|&h| h > 0)? as f64);
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(boot) + since_boot)
}

/// Elsewhere the start time is unknown: a live id is taken as the writer.
#[cfg(not(target_os = "linux"))]
fn process_start(_pid: u32) -> Option<SystemTime> {
    None
}

/// Linux: `/proc/<pid>` exists for a running process; a zombie (killed, not
/// yet reaped by its parent) has stopped writing and counts as gone.
#[cfg(target_os = "linux")]
fn process_is_alive_os(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold anything.
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().as_bytes().first()),
            Some(Some(b'Z' | b'X'))
        ),
        Err(_) => Path::new(&format!("/proc/{pid}")).exists(),
    }
}

/// Without `/proc`, a process cannot be looked up portably: assume it runs.
#[cfg(not(target_os = "linux"))]
fn process_is_alive_os(_pid: u32) -> bool {
    true
}

/// Removes from `folder` the temporaries of processes that are no longer
/// running, and every `<name>.old` checkpoint folder whose `<name>` holds a
/// checkpoint (a save that crashed after its swap: `<name>` is the newer,
/// complete one). Returns the names removed.
///
/// Call it only while no other process saves into `folder` (a run folder
/// under its [`RunLock`](crate::lock::RunLock)): an `.old` folder is removed
/// by its own save a moment after the swap.
pub fn remove_stale_temporaries(folder: &Path) -> Result<Vec<String>, CheckpointError> {
    let entries = match fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CheckpointError::io("read", folder, e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CheckpointError::io("read", folder, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let stale = match temp_owner(&name) {
            Some(pid) => temp_is_stale(&entry.path(), pid),
            None => name
                .strip_suffix(OLD_SUFFIX)
                .is_some_and(|dir| !dir.is_empty() && folder.join(dir).join(CONFIG_FILE).is_file()),
        };
        if stale {
            remove_entry(&entry.path())?;
            removed.push(name);
        }
    }
    if !removed.is_empty() {
        crate::atomic::sync_dir(folder)?;
    }
    removed.sort();
    Ok(removed)
}

/// Removes a file or a folder with its contents; one already gone is fine.
pub(crate) fn remove_entry(path: &Path) -> Result<(), CheckpointError> {
    let result = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(CheckpointError::io("remove", path, e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_name_their_writer() {
        assert_eq!(temp_owner("best.tmp-123"), Some(123));
        assert_eq!(temp_owner(".loss.svg.tmp-123-4"), Some(123));
        assert_eq!(temp_owner(".metrics.jsonl.tmp-7-0"), Some(7));
        for not_temp in [
            "best",
            "best.old",
            "x.tmp-",
            "x.tmp-12a",
            "x.tmp-1-",
            "x.tmp-1-2-3",
        ] {
            assert_eq!(temp_owner(not_temp), None, "{not_temp}");
        }
    }

    #[test]
    fn stale_temporaries_and_superseded_old_folders_go_and_the_rest_stays() {
        let dir = tempfile::tempdir().unwrap();
        let own = format!(".input.txt.tmp-{}-0", std::process::id());
        for folder in ["last", "last.old", "best.old", "last.tmp-999999999"] {
            fs::create_dir(dir.path().join(folder)).unwrap();
            fs::write(dir.path().join(folder).join(CONFIG_FILE), "{}").unwrap();
        }
        for file in [".loss.svg.tmp-999999999-2", own.as_str(), "notes.txt"] {
            fs::write(dir.path().join(file), "x").unwrap();
        }
        let removed = remove_stale_temporaries(dir.path()).unwrap();
        assert_eq!(
            removed,
            [
                ".loss.svg.tmp-999999999-2",
                "last.old",
                "last.tmp-999999999"
            ]
        );
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        // best.old is the only copy of best/ (a crash mid-swap): it stays.
        assert_eq!(left, [own.as_str(), "best.old", "last", "notes.txt"]);
        assert!(remove_stale_temporaries(&dir.path().join("missing"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_killed_process_not_yet_reaped_is_not_alive() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert!(process_is_alive(child.id()));
        child.kill().unwrap();
        // Until `wait`, the child is a zombie: /proc still lists it.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let alive = process_is_alive(child.id());
        child.wait().unwrap();
        if cfg!(target_os = "linux") {
            assert!(!alive);
        }
    }

    #[test]
    fn this_process_is_alive_and_a_reaped_one_is_not() {
        assert!(process_is_alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        if cfg!(target_os = "linux") {
            assert!(!process_is_alive(pid));
        }
    }

    #[test]
    fn a_live_pid_that_started_after_its_temporary_was_written_is_another_process() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = process_start(pid).expect("a running process has a start time");
        let now = SystemTime::now();
        assert!(start <= now + Duration::from_secs(1) && start + Duration::from_secs(60) > now);

        // Written an hour before the process started: an earlier holder of the id wrote it.
        let old = dir.path().join(format!("last.tmp-{pid}"));
        fs::create_dir(&old).unwrap();
        let hour_ago = now - Duration::from_secs(3600);
        fs::File::open(&old)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        // Written now: it may be this process's save in progress.
        let fresh = dir.path().join(format!(".loss.svg.tmp-{pid}-1"));
        fs::write(&fresh, "x").unwrap();

        assert!(temp_is_stale(&old, pid));
        assert!(!temp_is_stale(&fresh, pid));
        let removed = remove_stale_temporaries(dir.path()).unwrap();
        assert_eq!(removed, vec![format!("last.tmp-{pid}")]);
        assert!(fresh.exists());

        child.kill().unwrap();
        child.wait().unwrap();
        assert!(temp_is_stale(&fresh, pid), "its writer is gone now");
    }
}
