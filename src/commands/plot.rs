//! `recurrent plot`: draw a run's loss curves from its metrics.jsonl.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use recurrent_checkpoint::layout::METRICS_FILE;

use crate::curves::{Curves, FILE};

/// Arguments of `recurrent plot`.
#[derive(Args, Debug)]
pub struct PlotArgs {
    /// The run folder (it holds metrics.jsonl).
    run: PathBuf,
    /// Where to write the SVG (default: RUN/loss.svg).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: PlotArgs) -> Result<()> {
    let metrics = args.run.join(METRICS_FILE);
    if !metrics.is_file() {
        bail!(
            "{} does not exist; is {} a run folder?",
            metrics.display(),
            args.run.display()
        );
    }
    let out = args.out.unwrap_or_else(|| args.run.join(FILE));
    let dir = out.parent().map(PathBuf::from).unwrap_or_default();
    let file = out
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| FILE.into());
    Curves::from_metrics(&metrics)
        .write_to(&dir.join(file))
        .map_err(anyhow::Error::msg)?;
    println!("wrote {}", out.display());
    Ok(())
}
