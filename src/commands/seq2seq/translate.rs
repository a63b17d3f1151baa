//! `recurrent seq2seq translate`: one output line per source line.

use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use recurrent::{translate, DecodeOptions, Seq2SeqCheckpoint};

use super::decode::DecodeArgs;
use crate::commands::cli_error;

/// Arguments of `recurrent seq2seq translate`.
#[derive(Args, Debug)]
pub struct TranslateArgs {
    /// Checkpoint folder, or a run folder (its best/ checkpoint).
    checkpoint: PathBuf,
    /// Source sentences, one per line (default: stdin).
    #[arg(long)]
    input: Option<PathBuf>,
    #[command(flatten)]
    decode: DecodeArgs,
    #[command(flatten)]
    attention: super::AttentionMapArgs,
    /// Threads for the kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(args: TranslateArgs) -> Result<()> {
    let saved = Seq2SeqCheckpoint::load(&args.checkpoint).map_err(cli_error)?;
    let text = match &args.input {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read the source lines from stdin (is it UTF-8 text?)")?;
            s
        }
    };
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    args.attention.check(lines.len())?;
    let options = DecodeOptions {
        threads: args.threads,
        ..args.decode.options()
    };
    let out = translate(&saved, &lines, &options).map_err(cli_error)?;
    let mut stdout = BufWriter::new(std::io::stdout().lock());
    for t in &out {
        // A translation never spans lines: one output line per input line.
        writeln!(stdout, "{}", t.text.replace(['\n', '\r'], " "))?;
    }
    stdout.flush()?;
    args.attention.write(&saved.tokenizers, &out)?;
    Ok(())
}
