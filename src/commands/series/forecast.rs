//! `recurrent series forecast`: the rows after the end of a CSV file.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use recurrent::series::{ForecastMethod, SeriesCheckpoint};

use super::series_error;

/// Arguments of `recurrent series forecast`.
#[derive(Args, Debug)]
pub struct ForecastArgs {
    /// A series checkpoint or run folder (its best/).
    checkpoint: PathBuf,
    /// The series, with the columns the model was trained on; forecasts follow its last row.
    #[arg(long)]
    csv: PathBuf,
    /// Rows to forecast.
    #[arg(long)]
    steps: usize,
    /// direct: all rows at once (at most the trained horizon); recursive: one row at a time,
    /// each fed back as input (any length).
    #[arg(long, default_value = "direct")]
    method: ForecastMethod,
    /// Threads for the kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(args: ForecastArgs) -> Result<()> {
    let ckpt = SeriesCheckpoint::load(&args.checkpoint).map_err(series_error)?;
    let table = ckpt.read(&args.csv).map_err(series_error)?;
    let forecast = ckpt
        .forecast(&table, args.steps, args.method, args.threads)
        .map_err(series_error)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "step,{}", forecast.columns.join(","))?;
    let f = forecast.columns.len();
    for (i, row) in forecast.values.chunks_exact(f).enumerate() {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:.6}")).collect();
        writeln!(out, "{},{}", i + 1, cells.join(","))?;
    }
    Ok(())
}
