//! Run-folder hygiene: `last/` written on a cadence without validating (and
//! resumed exactly), one training process per run folder, and the leftovers
//! of crashed saves removed as a run starts.

use std::fs;
use std::path::{Path, PathBuf};

use recurrent::checkpoint::layout::{LAST_DIR, LOCK_FILE};
use recurrent::checkpoint::{CheckpointError, RunLock};
use recurrent::lm::{ResumeOptions, TextSource, TrainOptions, Training};
use recurrent::train::engine::SaveEvery;
use recurrent::train::trainer::Trainer;
use recurrent::train::{Observer, SaveError, Slot, Task};
use recurrent::{Error, Quiet, RunFolder, StopRule};

fn options(steps: u64) -> TrainOptions {
    TrainOptions {
        input: TextSource::text("abc", "the cat sat on the mat. ".repeat(60)),
        stop: StopRule {
            steps: Some(steps),
            ..StopRule::default()
        },
        seq_len: 16,
        batch: 4,
        lr: 1e-2,
        eval_every: Some(4),
        threads: Some(1),
        ..TrainOptions::default()
    }
}

fn resume_to(steps: u64) -> ResumeOptions {
    ResumeOptions {
        stop: Some(StopRule {
            steps: Some(steps),
            ..StopRule::default()
        }),
        threads: Some(1),
        ..ResumeOptions::default()
    }
}

/// Copies `last/` into `copy` when it is written after step `at`, as a
/// `kill -9` right after that save would leave it; records every save.
struct CopyLast {
    from: PathBuf,
    copy: PathBuf,
    at: u64,
    saves: Vec<(Slot, u64)>,
}

impl<T: Task + ?Sized> Observer<T> for CopyLast {
    fn save(&mut self, trainer: &T, slot: Slot) -> Result<(), SaveError> {
        let step = trainer.progress().step;
        self.saves.push((slot, step));
        if slot == Slot::Last && step == self.at {
            copy_dir(&self.from, &self.copy);
        }
        Ok(())
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_run_saved_by_save_every_and_resumed_ends_where_a_straight_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut straight = Training::start(
        &options(10),
        RunFolder::create(dir.path().join("straight")).unwrap(),
    )
    .unwrap();
    straight.run(&mut Quiet).unwrap();

    // Validations at 4 and 8 (and the end); `last/` also after 3, 6 and 9.
    let folder = RunFolder::create(dir.path().join("saving"))
        .unwrap()
        .with_save_every(SaveEvery::Steps(3));
    let crashed = dir.path().join("crashed");
    let mut observer = CopyLast {
        from: folder.last_dir(),
        copy: crashed.join(LAST_DIR),
        at: 6,
        saves: Vec::new(),
    };
    let mut saving = Training::start(&options(10), folder.clone()).unwrap();
    saving.run(&mut observer).unwrap();
    let lasts: Vec<u64> = observer
        .saves
        .iter()
        .filter(|s| s.0 == Slot::Last)
        .map(|s| s.1)
        .collect();
    assert_eq!(lasts, [3, 4, 6, 8, 9, 10]);
    // Saving changes nothing that is trained.
    assert!(saving.model().params == straight.model().params);
    // No validation ran for the saves between validations.
    let metrics = fs::read_to_string(folder.metrics_path()).unwrap();
    let validated: Vec<&str> = metrics
        .lines()
        .filter(|l| l.contains(r#""kind":"val""#))
        .collect();
    assert_eq!(validated.len(), 3, "{metrics}");

    // The run as a crash right after the save at step 6 leaves it, resumed.
    let mut resumed = Training::resume(RunFolder::open(&crashed).unwrap(), &resume_to(10)).unwrap();
    assert_eq!(resumed.trainer().state.progress.step, 6);
    resumed.run(&mut Quiet).unwrap();
    assert!(resumed.model().params == straight.model().params);
}

#[test]
fn a_seq2seq_run_saved_by_save_every_and_resumed_ends_where_a_straight_run_does() {
    use recurrent::seq2seq::{ResumeOptions, TrainOptions, Training};
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.tsv");
    let text: String = (0..200)
        .map(|i| {
            let source: String = (0..3 + i % 5)
                .map(|j| (b'a' + ((i * 7 + j) % 11) as u8) as char)
                .collect();
            format!("{source}\t{}\n", source.chars().rev().collect::<String>())
        })
        .collect();
    fs::write(&pairs, text).unwrap();
    let mut options = TrainOptions::new(&pairs);
    options.tokenizer = recurrent::TokenizerKind::Char;
    options.model = recurrent::Seq2SeqConfig::new(0, 0, 8, 16);
    options.batch = 8;
    options.stop.steps = Some(10);
    options.eval_every = Some(4);
    options.val_bleu = 4;
    options.threads = Some(1);
    let mut straight = Training::start(
        &options,
        RunFolder::create(dir.path().join("straight")).unwrap(),
    )
    .unwrap();
    straight.run(&mut Quiet).unwrap();

    let folder = RunFolder::create(dir.path().join("saving"))
        .unwrap()
        .with_save_every(SaveEvery::Steps(3));
    let crashed = dir.path().join("crashed");
    let mut observer = CopyLast {
        from: folder.last_dir(),
        copy: crashed.join(LAST_DIR),
        at: 6,
        saves: Vec::new(),
    };
    Training::start(&options, folder)
        .unwrap()
        .run(&mut observer)
        .unwrap();
    assert!(observer.saves.contains(&(Slot::Last, 6)));

    let resume = ResumeOptions {
        pairs: None,
        stop: Some(StopRule {
            steps: Some(10),
            ..StopRule::default()
        }),
        on_divergence: None,
        val_bleu: 4,
        threads: Some(1),
        precision: None,
    };
    let mut resumed = Training::resume(RunFolder::open(&crashed).unwrap(), &resume).unwrap();
    assert_eq!(resumed.trainer().state.progress.step, 6);
    resumed.run(&mut Quiet).unwrap();
    assert!(resumed.trainer().model.params == straight.trainer().model.params);
}

#[test]
fn a_second_run_into_a_folder_in_use_fails_at_once_naming_the_folder_and_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run");
    Training::start(&options(2), RunFolder::create(&path).unwrap())
        .unwrap()
        .run(&mut Quiet)
        .unwrap();
    // The lock is released when the run ends.
    assert!(!path.join(LOCK_FILE).exists());

    let held = RunLock::acquire(&path).unwrap();
    let in_use = |result: Result<RunFolder, Error>| {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::Checkpoint(CheckpointError::RunLocked { folder, pid, .. })
                if *folder == path && *pid == Some(std::process::id())),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(
            message.contains(&format!("process {}", std::process::id())),
            "{message}"
        );
    };
    in_use(RunFolder::create(&path));
    in_use(RunFolder::open(&path));
    // A run set up before the other took the lock fails as it starts training.
    let empty = dir.path().join("empty");
    let mut training = Training::start(&options(2), RunFolder::create(&empty).unwrap()).unwrap();
    let held_too = RunLock::acquire(&empty).unwrap();
    let err = training.run(&mut Quiet).unwrap_err();
    assert!(
        matches!(err, Error::Checkpoint(CheckpointError::RunLocked { .. })),
        "{err:?}"
    );
    drop((held, held_too));

    let mut resumed = Training::resume(RunFolder::open(&path).unwrap(), &resume_to(3)).unwrap();
    resumed.run(&mut Quiet).unwrap();
}

#[test]
fn a_run_removes_the_temporaries_of_dead_processes_and_keeps_a_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run");
    let dead = 999_999_999;
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let live = sleeper.id();
    let leave_litter = |path: &Path| {
        fs::create_dir_all(path.join(format!("last.tmp-{dead}"))).unwrap();
        fs::write(path.join(format!("last.tmp-{dead}/config.json")), "{").unwrap();
        fs::create_dir_all(path.join(format!("best.tmp-{dead}"))).unwrap();
        fs::write(path.join(format!(".loss.svg.tmp-{dead}-3")), "<svg").unwrap();
        fs::write(
            path.join(format!(".input.txt.tmp-{live}-0")),
            "being written",
        )
        .unwrap();
        // A lock file whose process died with it.
        fs::write(path.join(LOCK_FILE), dead.to_string()).unwrap();
    };
    // What is left of temporaries, `.old` folders and lock files.
    let listing = |path: &Path| {
        let mut names: Vec<String> = fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".tmp-") || n.ends_with(".old") || n == LOCK_FILE)
            .collect();
        names.sort();
        names
    };
    let expected = [format!(".input.txt.tmp-{live}-0")];

    // A new run into a folder that a crashed run had started.
    fs::create_dir_all(&path).unwrap();
    leave_litter(&path);
    let mut warnings = Warnings::default();
    Training::start(&options(2), RunFolder::create(&path).unwrap())
        .unwrap()
        .run(&mut warnings)
        .unwrap();
    assert_eq!(listing(&path), expected);
    assert!(path.join("last").is_dir());
    assert!(
        warnings
            .0
            .iter()
            .any(|w| w.contains(&format!("last.tmp-{dead}"))),
        "{:?}",
        warnings.0
    );

    // A resume, with the previous `last/` also kept past its swap.
    leave_litter(&path);
    copy_dir(&path.join("last"), &path.join("last.old"));
    Training::resume(RunFolder::open(&path).unwrap(), &resume_to(3))
        .unwrap()
        .run(&mut Quiet)
        .unwrap();
    let after = listing(&path);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert_eq!(after, expected);
}

/// Collects warnings.
#[derive(Default)]
struct Warnings(Vec<String>);

impl Observer<Trainer> for Warnings {
    fn on_warning(&mut self, message: &str) {
        self.0.push(message.into());
    }
}
