//! `recurrent plot`: draw a run's loss curves from its metrics.jsonl.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use recurrent::RunFolder;

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
    let folder = RunFolder::at(&args.run);
    if !folder.metrics_path().is_file() {
        bail!(
            "{} does not exist; is {} a run folder?",
            folder.metrics_path().display(),
            args.run.display()
        );
    }
    let out = folder
        .plot_metrics(args.out.as_deref())
        .map_err(super::cli_error)?;
    println!("wrote {}", out.display());
    Ok(())
}
