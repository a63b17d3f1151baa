//! Studies end to end on a tiny text: held-out validation, K folds, ASHA,
//! parallel trials, and an interrupted study resumed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use recurrent::tune::{
    AshaOptions, Limits, Row, SamplerKind, Space, Status, Study, StudyOptions, StudyProgress,
    Validation, LOG_FILE,
};
use recurrent::{LanguageCheckpoint, Quiet};

fn corpus(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for i in 0..400 {
        text.push_str(&format!(
            "the {} cat sat on the {} mat.\n",
            ["red", "big", "old"][i % 3],
            ["warm", "flat"][i % 2]
        ));
    }
    let path = dir.join("input.txt");
    std::fs::write(&path, text).unwrap();
    path
}

fn options(input: &Path, space: &[&str]) -> StudyOptions {
    let mut o = StudyOptions::new(input, Space::from_specs(space).unwrap(), 1600.0);
    o.space = o
        .space
        .merge(Space::from_specs(&["batch=4", "seq_len=20", "embed=8", "layers=1"]).unwrap())
        .unwrap();
    o
}

fn limits(trials: usize) -> Limits {
    Limits {
        trials: Some(trials),
        threads: Some(1),
        parallel: 1,
        ..Limits::default()
    }
}

/// The table without the seconds, which differ between runs.
fn table(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            format!(
                "{} {} {:?} {:?} {:?} {:?} {}",
                r.rank, r.trial, r.params, r.status, r.rung, r.losses, r.tokens
            )
        })
        .collect()
}

#[test]
fn a_grid_study_ranks_trials_and_keeps_the_best_as_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus(dir.path());
    let mut o = options(&input, &["hidden=8,16", "lr=0.01,0.0001"]);
    o.sampler = SamplerKind::Grid;
    let study_dir = dir.path().join("study");
    let mut study = Study::create(&study_dir, o).unwrap();
    let summary = study.run(&limits(10), &Quiet).unwrap();
    assert!(summary.complete);
    assert_eq!(summary.rows.len(), 4);
    assert!(summary
        .rows
        .iter()
        .all(|r| r.status == Status::Complete && r.tokens == 1600));
    assert!(summary
        .rows
        .windows(2)
        .all(|w| w[0].mean_loss <= w[1].mean_loss));
    assert_eq!(
        summary.rows.iter().map(|r| r.rank).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    // A learning rate of 1e-4 barely moves in 80 steps.
    assert_eq!(
        summary.rows[0].params["lr"],
        recurrent::tune::Value::Float(0.01)
    );
    for name in [
        "results.csv",
        "results.json",
        "summary.md",
        "search.svg",
        LOG_FILE,
    ] {
        assert!(study_dir.join(name).is_file(), "{name}");
    }
    let csv = std::fs::read_to_string(study_dir.join("results.csv")).unwrap();
    assert!(csv.starts_with(
        "rank,trial,status,pruned_at_rung,batch,embed,hidden,layers,lr,seq_len,mean_val_loss"
    ));
    assert_eq!(csv.lines().count(), 5);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(study_dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(json["param_hidden"], serde_json::json!([8, 8, 16, 16]));
    assert_eq!(json["rank_val_loss"].as_array().unwrap().len(), 4);
    let svg = std::fs::read_to_string(study_dir.join("search.svg")).unwrap();
    // Each trial's line in the parallel coordinates and its validation curve.
    assert_eq!(svg.matches("<polyline").count(), 8);
    let best = summary.best.unwrap();
    assert_eq!(best, study_dir.join("best"));
    let checkpoint = LanguageCheckpoint::load(&best).unwrap();
    assert_eq!(
        checkpoint.model.config.hidden,
        match summary.rows[0].params["hidden"] {
            recurrent::tune::Value::Int(h) => h as usize,
            _ => unreachable!(),
        }
    );
    // Running a finished study again changes nothing.
    let again = Study::open(&study_dir)
        .unwrap()
        .run(&limits(10), &Quiet)
        .unwrap();
    assert_eq!(table(&again.rows), table(&summary.rows));
}

/// Asks the study to stop after a number of training steps.
struct StopAfter(AtomicUsize);

impl StudyProgress for StopAfter {
    fn should_stop(&self) -> bool {
        self.0.fetch_sub(1, Ordering::SeqCst) == 0
    }
}

#[test]
fn an_interrupted_study_resumes_to_the_same_table() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus(dir.path());
    let mut o = options(&input, &["hidden=4..24", "lr=1e-3..3e-2:log"]);
    o.sampler = SamplerKind::Tpe;
    o.tpe_startup = 2;
    o.asha = Some(AshaOptions {
        min_budget: 400.0,
        reduction: 2,
    });
    let board = dir.path().join("logs");
    let straight = Study::create(dir.path().join("straight"), o.clone())
        .unwrap()
        .run(
            &Limits {
                tensorboard: Some(board.clone()),
                ..limits(5)
            },
            &Quiet,
        )
        .unwrap();
    // TensorBoard: the experiment in the root, a session per trial, curves per trial.
    let files = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_file())
            .count()
    };
    assert_eq!(files(&board), 1);
    for t in 0..5 {
        assert_eq!(files(&board.join(format!("hparams/trial-{t:04}"))), 1);
        assert!(files(&board.join(format!("trial-{t:04}"))) >= 1);
    }
    assert!(straight.complete);
    let path = dir.path().join("interrupted");
    let mut study = Study::create(&path, o).unwrap();
    // Stopped in the middle of trials, twice, then resumed to the end.
    let first = study
        .run(&limits(5), &StopAfter(AtomicUsize::new(23)))
        .unwrap();
    assert!(!first.complete);
    let second = Study::open(&path)
        .unwrap()
        .run(&limits(5), &StopAfter(AtomicUsize::new(11)))
        .unwrap();
    assert!(!second.complete);
    let last = Study::open(&path).unwrap().run(&limits(5), &Quiet).unwrap();
    assert!(last.complete);
    assert_eq!(table(&last.rows), table(&straight.rows));
}

#[test]
fn asha_prunes_and_k_folds_report_mean_and_std() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus(dir.path());
    let mut o = options(&input, &["hidden=4..24", "lr=1e-3..3e-2:log"]);
    o.validation = Validation::Folds { k: 3 };
    o.asha = Some(AshaOptions {
        min_budget: 400.0,
        reduction: 2,
    });
    let path = dir.path().join("study");
    let summary = Study::create(&path, o)
        .unwrap()
        .run(&limits(4), &Quiet)
        .unwrap();
    assert!(summary.complete);
    let pruned = summary
        .rows
        .iter()
        .filter(|r| matches!(r.status, Status::Pruned { .. }))
        .count();
    let complete = summary
        .rows
        .iter()
        .filter(|r| r.status == Status::Complete)
        .count();
    assert!(
        pruned >= 1 && complete >= 1,
        "{pruned} pruned, {complete} complete"
    );
    for r in &summary.rows {
        assert_eq!(r.losses.len(), 3);
        let (mean, std) = recurrent::tune::mean_std(&r.losses);
        assert_eq!((r.mean_loss, r.std_loss), (mean, std));
        assert!(std > 0.0);
    }
    // The complete trials come first.
    assert_eq!(summary.rows[0].status, Status::Complete);
    for k in 0..3 {
        assert!(path.join(format!("folds/fold-{k}/val.txt")).is_file());
        assert!(path.join(format!("trials/0000/fold-{k}/best")).is_dir());
    }
}

#[test]
fn parallel_trials_split_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus(dir.path());
    let mut o = options(&input, &["hidden=8,12,16,20"]);
    o.sampler = SamplerKind::Grid;
    let serial = Study::create(dir.path().join("serial"), o.clone())
        .unwrap()
        .run(&limits(4), &Quiet)
        .unwrap();
    let parallel = Study::create(dir.path().join("parallel"), o)
        .unwrap()
        .run(
            &Limits {
                parallel: 2,
                threads: Some(2),
                ..limits(4)
            },
            &Quiet,
        )
        .unwrap();
    // Grid trials do not depend on each other: the same table either way.
    assert_eq!(table(&parallel.rows), table(&serial.rows));
}

#[test]
fn a_study_folder_is_not_reused_and_a_missing_one_is_no_study() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus(dir.path());
    let o = options(&input, &["hidden=8"]);
    Study::create(dir.path().join("s"), o.clone()).unwrap();
    assert!(matches!(
        Study::create(dir.path().join("s"), o),
        Err(recurrent::tune::TuneError::StudyExists { .. })
    ));
    assert!(matches!(
        Study::open(dir.path().join("none")),
        Err(recurrent::tune::TuneError::NoStudy { .. })
    ));
    // A log naming a trial it never introduced is damage, reported by line.
    let log = dir.path().join("s").join(LOG_FILE);
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("{\"event\":\"failed\",\"trial\":3,\"message\":\"x\"}\n");
    std::fs::write(&log, text).unwrap();
    assert!(matches!(
        Study::open(dir.path().join("s")),
        Err(recurrent::tune::TuneError::BadLog { line: 2, .. })
    ));
}
