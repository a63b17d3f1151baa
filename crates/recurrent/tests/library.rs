//! The facade end to end: runs from options, resume, generation from a
//! packed model, evaluation, and errors that name the option.

use recurrent::lm::{ResumeOptions, TextSource, TrainOptions, Training};
use recurrent::{
    evaluate_text, Error, EvalOptions, GenerateOptions, Generator, GeneratorOptions,
    LanguageCheckpoint, Quiet, RunFolder, StopReason, StopRule,
};

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

#[test]
fn a_run_stopped_and_resumed_ends_where_a_straight_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut straight = Training::start(
        &options(10),
        RunFolder::create(dir.path().join("a")).unwrap(),
    )
    .unwrap();
    let outcome = straight.run(&mut Quiet).unwrap();
    assert_eq!((outcome.steps, outcome.reason), (10, StopReason::Steps));

    let folder = RunFolder::create(dir.path().join("b")).unwrap();
    Training::start(&options(6), folder.clone())
        .unwrap()
        .run(&mut Quiet)
        .unwrap();
    let resume = ResumeOptions {
        stop: Some(StopRule {
            steps: Some(10),
            ..StopRule::default()
        }),
        threads: Some(1),
        ..ResumeOptions::default()
    };
    let mut resumed = Training::resume(RunFolder::open(folder.path()).unwrap(), &resume).unwrap();
    assert!(resumed.is_resumed());
    resumed.run(&mut Quiet).unwrap();
    assert!(resumed.model().params == straight.model().params);
    // The in-memory text was kept in the run folder for the resume.
    assert!(folder.path().join("input.txt").is_file());
    assert!(folder.metrics_path().is_file() && folder.loss_plot_path().is_file());
}

#[test]
fn a_generator_is_packed_once_and_reproduces_the_checkpoint_sampling() {
    let dir = tempfile::tempdir().unwrap();
    let folder = RunFolder::create(dir.path().join("run")).unwrap();
    let mut t = Training::start(&options(8), folder.clone()).unwrap();
    t.run(&mut Quiet).unwrap();
    let checkpoint = LanguageCheckpoint::load(folder.best_dir()).unwrap();
    let generator = Generator::new(
        &checkpoint,
        GeneratorOptions {
            threads: Some(1),
            ..GeneratorOptions::default()
        },
    )
    .unwrap();
    let request = GenerateOptions {
        prime: "the ".into(),
        length: 30,
        seed: 5,
        samples: 2,
        ..GenerateOptions::default()
    };
    let mut streamed = vec![String::new(); 2];
    let first = generator
        .generate(&request, |i, piece| streamed[i].push_str(piece))
        .unwrap();
    assert_eq!(first, streamed);
    // The same packed model answers the same request the same way, and the
    // one-call path of the generate crate (which packs per call) agrees.
    assert_eq!(generator.generate(&request, |_, _| {}).unwrap(), first);
    let once = recurrent::generate::generate(
        &checkpoint.model,
        &checkpoint.tokenizer,
        &request,
        |_, _| {},
    )
    .unwrap();
    assert_eq!(once, first);

    let e = evaluate_text(
        &checkpoint,
        "the cat sat on the mat.",
        &EvalOptions {
            threads: Some(1),
            ..EvalOptions::default()
        },
    )
    .unwrap();
    assert!(e.report.loss.is_finite() && e.report.tokens == 22);
    assert!(e.bits_per_char.is_some());
}

#[test]
fn bad_options_name_the_field_and_leave_no_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run");
    let bad = TrainOptions {
        lr: -1.0,
        ..options(3)
    };
    let err = Training::start(&bad, RunFolder::create(&path).unwrap())
        .err()
        .unwrap();
    match &err {
        Error::InvalidOption { field, value, .. } => {
            assert_eq!((*field, value.as_str()), ("lr", "-1"))
        }
        e => panic!("unexpected error {e}"),
    }
    assert!(!err.to_string().contains("--"), "{err}");
    assert!(!path.exists(), "a run that cannot start left its folder");
    let err = Training::start(
        &TrainOptions {
            threads: Some(0),
            ..options(3)
        },
        RunFolder::create(&path).unwrap(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                field: "threads",
                ..
            }
        ),
        "{err}"
    );
    // A folder that holds a run is refused, and an empty one cannot be resumed.
    Training::start(&options(2), RunFolder::create(&path).unwrap())
        .unwrap()
        .run(&mut Quiet)
        .unwrap();
    assert!(matches!(
        RunFolder::create(&path),
        Err(Error::RunExists { .. })
    ));
    assert!(matches!(
        RunFolder::open(dir.path()),
        Err(Error::NotARun { .. })
    ));
}

/// Thread counts belong to each run, not to the process: two runs with
/// different counts, side by side on two threads of one process, give what
/// each gives alone.
#[test]
fn runs_with_different_thread_counts_share_a_process() {
    let dir = tempfile::tempdir().unwrap();
    let train = |name: &str, threads: usize| {
        let options = TrainOptions {
            threads: Some(threads),
            init: recurrent::lm::Init::Fresh {
                config: recurrent::ModelConfig {
                    hidden: 64,
                    ..match TrainOptions::default().init {
                        recurrent::lm::Init::Fresh { config, .. } => config,
                        _ => unreachable!(),
                    }
                },
                forget_bias: None,
            },
            batch: 16,
            ..options(6)
        };
        let folder = RunFolder::create(dir.path().join(name)).unwrap();
        let mut t = Training::start(&options, folder).unwrap();
        t.run(&mut Quiet).unwrap();
        t.model().params.clone()
    };
    let alone = [train("one", 1), train("two", 2)];
    let side_by_side = std::thread::scope(|s| {
        let a = s.spawn(|| train("one-again", 1));
        let b = s.spawn(|| train("two-again", 2));
        [a.join().unwrap(), b.join().unwrap()]
    });
    assert!(side_by_side[0] == alone[0], "1 thread: weights differ");
    assert!(side_by_side[1] == alone[1], "2 threads: weights differ");
}

#[test]
fn sizes_left_to_the_corpus_are_fitted_noted_saved_and_resumed() {
    use recurrent::sizing::{self, FitToCorpus};
    let dir = tempfile::tempdir().unwrap();
    // 24 characters x 2,000: 48,000 characters, 43,200 to train on.
    let fitted = TrainOptions {
        input: TextSource::text("abc", "the cat sat on the mat. ".repeat(2_000)),
        fit: FitToCorpus::ALL,
        seq_len: 20,
        ..options(3)
    };
    let folder = RunFolder::create(dir.path().join("fit")).unwrap();
    let mut training = Training::start(&fitted, folder.clone()).unwrap();
    let note = training
        .notes()
        .iter()
        .find(|n| n.starts_with("sized for the corpus"))
        .expect("a note on the sizes")
        .clone();
    let config = training.model().config.clone();
    // The choice is the rule's for this text: for 30 minutes it would be
    // bigger, but never has more parameters than the text has tokens.
    let corpus = sizing::Corpus {
        tokens: 43_200,
        vocab: config.vocab_size,
        threads: 1,
        budget_secs: sizing::DEFAULT_BUDGET_SECS,
        seq_len: 20,
    };
    let choice = sizing::choose(&corpus, FitToCorpus::ALL, &config, fitted.batch, fitted.lr);
    assert_eq!(
        (config.layers, config.hidden, config.embed),
        (choice.best.layers, choice.best.hidden, choice.best.embed),
        "{note}"
    );
    assert!(choice.best.params <= 43_200, "{note}");
    assert_eq!(training.trainer().state.config.batch, choice.batch);
    assert!(note.contains("43,200 tokens"), "{note}");
    assert!(note.contains("capped by the text"), "{note}");
    training.run(&mut Quiet).unwrap();

    // The choice is in the checkpoint, so a resume trains the same model.
    let resumed = Training::resume(
        folder,
        &ResumeOptions {
            stop: Some(StopRule {
                steps: Some(5),
                ..StopRule::default()
            }),
            threads: Some(1),
            ..ResumeOptions::default()
        },
    )
    .unwrap();
    assert_eq!(resumed.model().config, config);
    assert_eq!(resumed.trainer().state.config.batch, choice.batch);

    // Sizes given stay as given, with no note.
    let given = Training::start(
        &options(1),
        RunFolder::create(dir.path().join("given")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (given.model().config.layers, given.model().config.hidden),
        (2, 128)
    );
    assert!(given.notes().iter().all(|n| !n.contains("sized")));
}
