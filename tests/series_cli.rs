//! `recurrent series` from the command line: train on a CSV made here (a
//! noisy sine with a trend), resume, forecast both ways, evaluate as text and
//! JSON; and the errors bad input gets, in the command line's words.

use std::fmt::Write;
use std::path::Path;
use std::process::{Command, Output};

fn recurrent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// `rows` rows of `month,sales,temp` with a period of 12 and a trend.
fn write_csv(path: &Path, rows: usize) {
    let mut csv = String::from("month,sales,temp\n");
    let mut noise = 7u64;
    for t in 0..rows {
        noise = noise
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let e = (noise >> 40) as f64 / (1u64 << 24) as f64 - 0.5;
        let s = (t as f64 * std::f64::consts::TAU / 12.0).sin();
        writeln!(
            csv,
            "{t},{:.4},{:.4}",
            50.0 + 0.1 * t as f64 + 5.0 * s + e,
            10.0 * s + e
        )
        .unwrap();
    }
    std::fs::write(path, csv).unwrap();
}

#[test]
fn train_resume_forecast_and_eval() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("sales.csv");
    write_csv(&csv, 300);
    let run = dir.path().join("run");
    let (csv_s, run_s) = (csv.to_str().unwrap(), run.to_str().unwrap());
    let common = [
        "--window",
        "24",
        "--horizon",
        "4",
        "--hidden",
        "12",
        "--batch",
        "16",
        "--lr",
        "0.01",
        "--threads",
        "1",
        "--eval-every",
        "25",
    ];
    let mut args = vec![
        "series",
        "train",
        "--csv",
        csv_s,
        "--columns",
        "sales,temp",
        "--target",
        "sales",
        "--out",
        run_s,
        "--steps",
        "60",
    ];
    args.extend(common);
    let out = recurrent(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("(target sales), window 24, horizon 4"),
        "{err}"
    );
    assert!(err.contains("validation mse"), "{err}");
    let out = recurrent(&[
        "series",
        "train",
        "--resume",
        run_s,
        "--steps",
        "120",
        "--threads",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("resuming"),
        "{}",
        text(&out.stderr)
    );

    let out = recurrent(&["series", "forecast", run_s, "--csv", csv_s, "--steps", "4"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines[0], "step,sales,temp");
    assert_eq!(lines.len(), 5);
    assert!(lines[4].starts_with("4,"), "{printed}");
    let out = recurrent(&[
        "series",
        "forecast",
        run_s,
        "--csv",
        csv_s,
        "--steps",
        "10",
        "--method",
        "recursive",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 11);

    let out = recurrent(&["series", "eval", run_s, "--csv", csv_s, "--season", "12"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(
        printed.contains("seasonal naive") && printed.contains("MASE"),
        "{printed}"
    );
    let out = recurrent(&[
        "series", "eval", run_s, "--csv", csv_s, "--season", "12", "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["target"], "sales");
    assert_eq!(json["horizon"], 4);
    assert!(json["model"]["mase"].as_f64().unwrap().is_finite());
    assert!(json["seasonal_naive"]["mae"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_input_is_reported_in_the_command_lines_words() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("sales.csv");
    write_csv(&csv, 50);
    let csv_s = csv.to_str().unwrap();
    let out_dir = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let train = |extra: &[&str], name: &str| {
        let out = out_dir(name);
        let mut args = vec![
            "series",
            "train",
            "--csv",
            csv_s,
            "--out",
            &out,
            "--threads",
            "1",
        ];
        args.extend(extra);
        let o = recurrent(&args);
        assert!(!o.status.success());
        text(&o.stderr)
    };
    let err = train(&["--columns", "sales,rain"], "a");
    assert!(
        err.contains("has no column 'rain' (its columns: month, sales, temp)"),
        "{err}"
    );
    let err = train(&["--columns", "sales"], "b");
    assert!(
        err.contains("too few for a window of 48 and a horizon of 12"),
        "{err}"
    );
    let err = train(&["--columns", "sales", "--lr", "-1"], "c");
    assert!(
        err.contains("--lr must be a finite number > 0, got -1"),
        "{err}"
    );
    std::fs::write(&csv, "sales\n1\n2\nthree\n").unwrap();
    let err = train(&["--columns", "sales"], "d");
    assert!(
        err.contains("line 4, column 'sales': 'three' is not a number"),
        "{err}"
    );
    let o = recurrent(&[
        "series",
        "eval",
        dir.path().to_str().unwrap(),
        "--csv",
        csv_s,
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).starts_with("error: "),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn info_on_a_series_checkpoint_says_which_commands_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("sales.csv");
    write_csv(&csv, 120);
    let run = dir.path().join("run");
    let (csv_s, run_s) = (csv.to_str().unwrap(), run.to_str().unwrap());
    let out = recurrent(&[
        "series",
        "train",
        "--csv",
        csv_s,
        "--columns",
        "sales",
        "--window",
        "12",
        "--horizon",
        "2",
        "--hidden",
        "4",
        "--steps",
        "3",
        "--threads",
        "1",
        "--out",
        run_s,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = recurrent(&["info", run_s]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("numeric-series model") && err.contains("recurrent series eval"),
        "{err}"
    );
    let out = recurrent(&[
        "series",
        "forecast",
        run_s,
        "--csv",
        csv_s,
        "--steps",
        "5000000",
        "--method",
        "recursive",
    ]);
    let err = text(&out.stderr);
    assert!(
        err.contains("--steps must be between 1 and 1000000, got 5000000"),
        "{err}"
    );
    let out = recurrent(&["series", "forecast", run_s, "--csv", csv_s, "--steps", "3"]);
    let err = text(&out.stderr);
    assert!(
        err.contains("--steps 3 is longer than the horizon of 2"),
        "{err}"
    );
    let out = recurrent(&["series", "eval", run_s, "--csv", csv_s, "--season", "500"]);
    let err = text(&out.stderr);
    assert!(
        err.contains("--season must be below the 84 training rows, got 500"),
        "{err}"
    );
}
