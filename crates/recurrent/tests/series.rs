//! The series facade end to end on a noisy sine with a trend: train in a run
//! folder, resume it, forecast (direct and recursive) and evaluate against
//! the seasonal-naive baseline; and the errors bad input gets.

use std::fmt::Write;
use std::path::Path;

use recurrent::kernels::Rng;
use recurrent::series::{
    EvaluateOptions, ForecastMethod, ResumeOptions, SeriesCheckpoint, SeriesError, TrainOptions,
    Training,
};
use recurrent::{Quiet, RunFolder, StopRule};

/// `rows` rows of `t,y,x`: y a noisy sine of period 12 on a trend, x a noisy copy of the sine.
fn write_csv(path: &Path, rows: usize) {
    let mut rng = Rng::new(3);
    let mut text = String::from("t,y,x\n");
    for t in 0..rows {
        let s = (t as f32 * std::f32::consts::TAU / 12.0).sin();
        let y = 20.0 + 0.05 * t as f32 + 4.0 * s + rng.uniform(-0.4, 0.4);
        writeln!(text, "{t},{y},{}", s + rng.uniform(-0.3, 0.3)).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn options(csv: &Path, steps: u64) -> TrainOptions {
    TrainOptions {
        columns: vec!["y".into(), "x".into()],
        target: "y".into(),
        window: 24,
        horizon: 6,
        hidden: 16,
        batch: 16,
        lr: 1e-2,
        stop: StopRule {
            steps: Some(steps),
            ..StopRule::default()
        },
        eval_every: Some(20),
        threads: Some(1),
        ..TrainOptions::new(csv)
    }
}

#[test]
fn train_resume_forecast_and_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("series.csv");
    write_csv(&csv, 400);
    let run = dir.path().join("run");
    let mut t = Training::start(&options(&csv, 150), RunFolder::create(&run).unwrap()).unwrap();
    assert!(t.describe().contains("target y"), "{}", t.describe());
    t.run(&mut Quiet).unwrap();
    let resume = ResumeOptions {
        stop: Some(StopRule {
            steps: Some(300),
            ..StopRule::default()
        }),
        threads: Some(1),
        ..ResumeOptions::default()
    };
    let mut t = Training::resume(RunFolder::open(&run).unwrap(), &resume).unwrap();
    let outcome = t.run(&mut Quiet).unwrap();
    assert_eq!(outcome.steps, 300);

    let ckpt = SeriesCheckpoint::load(&run).unwrap();
    let table = ckpt.read(&csv).unwrap();
    let direct = ckpt
        .forecast(&table, 6, ForecastMethod::Direct, Some(1))
        .unwrap();
    assert_eq!((direct.steps(), direct.columns.len()), (6, 2));
    let recursive = ckpt
        .forecast(&table, 20, ForecastMethod::Recursive, Some(1))
        .unwrap();
    assert_eq!(recursive.steps(), 20);
    assert!(recursive.values.iter().all(|v| v.is_finite()));
    // The trend continues: forecasts are near the last values, in the data's units.
    assert!((direct.values[0] - 40.0).abs() < 8.0, "{:?}", direct.values);
    let err = ckpt
        .forecast(&table, 7, ForecastMethod::Direct, Some(1))
        .unwrap_err();
    assert!(
        matches!(
            err,
            SeriesError::BeyondHorizon {
                steps: 7,
                horizon: 6
            }
        ),
        "{err}"
    );

    let options = EvaluateOptions {
        season: 12,
        threads: Some(1),
        ..EvaluateOptions::default()
    };
    let e = ckpt.evaluate(&table, &options).unwrap();
    assert_eq!((e.target.as_str(), e.horizon, e.season), ("y", 6, 12));
    assert_eq!(e.origins, 60 - 6 + 1);
    assert!(
        e.model.mae < e.naive.mae,
        "model {:?} vs seasonal naive {:?}",
        e.model,
        e.naive
    );
    assert_eq!(e.mae_by_step.len(), 6);
    let recursive = EvaluateOptions {
        method: ForecastMethod::Recursive,
        ..options
    };
    assert!(ckpt
        .evaluate(&table, &recursive)
        .unwrap()
        .model
        .mae
        .is_finite());
}

#[test]
fn bad_input_gets_an_error_that_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("series.csv");
    write_csv(&csv, 40);
    let start = |o: &TrainOptions, name: &str| {
        Training::start(o, RunFolder::create(dir.path().join(name)).unwrap())
            .err()
            .unwrap()
            .to_string()
    };
    let o = options(&csv, 1);
    let err = start(&o, "a");
    assert!(
        err.contains("the training part has 28 rows, too few"),
        "{err}"
    );
    let err = start(
        &TrainOptions {
            columns: vec!["y".into(), "z".into()],
            ..o.clone()
        },
        "b",
    );
    assert!(
        err.contains("has no column 'z' (its columns: t, y, x)"),
        "{err}"
    );
    let err = start(
        &TrainOptions {
            target: "t".into(),
            ..o.clone()
        },
        "c",
    );
    assert!(
        err.contains("the target 't' is not one of the columns (y, x)"),
        "{err}"
    );
    std::fs::write(&csv, "y,x\n1,2\n3,oops\n").unwrap();
    let err = start(&o, "d");
    assert!(
        err.contains("line 3, column 'x': 'oops' is not a number"),
        "{err}"
    );
    let err = start(&TrainOptions { window: 0, ..o }, "e");
    assert!(err.contains("window must be at least 1"), "{err}");
}
