//! `recurrent series eval`: forecasts of the held-out tail scored against
//! the seasonal-naive baseline.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use recurrent::series::{EvaluateOptions, ForecastMethod, Scores, SeriesCheckpoint};
use serde_json::json;

use super::series_error;

/// Arguments of `recurrent series eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A series checkpoint or run folder (its best/).
    checkpoint: PathBuf,
    /// The series the model was trained on (rows after its training and validation rows are
    /// scored; rows appended since are scored too).
    #[arg(long)]
    csv: PathBuf,
    /// Season length of the baseline and of MASE's scale (e.g. 12 for monthly data, 52 for
    /// weekly); 1 is the naive last-value forecast.
    #[arg(long, default_value_t = 1)]
    season: usize,
    /// How the model forecasts each origin's rows: direct or recursive.
    #[arg(long, default_value = "direct")]
    method: ForecastMethod,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
    /// Threads for the kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let ckpt = SeriesCheckpoint::load(&args.checkpoint).map_err(series_error)?;
    let table = ckpt.read(&args.csv).map_err(series_error)?;
    let options = EvaluateOptions {
        season: args.season,
        method: args.method,
        threads: args.threads,
    };
    let e = ckpt.evaluate(&table, &options).map_err(series_error)?;
    let scores = |s: &Scores| json!({"mse": s.mse, "mae": s.mae, "mase": s.mase});
    if args.json {
        let value = json!({
            "target": e.target,
            "origins": e.origins,
            "horizon": e.horizon,
            "season": e.season,
            "model": scores(&e.model),
            "seasonal_naive": scores(&e.naive),
            "mae_by_step": e.mae_by_step,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "{}: {} forecasts of {} steps from the held-out tail, season {}",
        e.target, e.origins, e.horizon, e.season
    );
    println!("{:<16} {:>12} {:>12} {:>8}", "", "MSE", "MAE", "MASE");
    for (name, s) in [("model", &e.model), ("seasonal naive", &e.naive)] {
        println!("{name:<16} {:>12.6} {:>12.6} {:>8.4}", s.mse, s.mae, s.mase);
    }
    Ok(())
}
