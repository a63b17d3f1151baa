//! `recurrent eval`: a checkpoint's loss on a text, as one stream by default.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use recurrent::{evaluate_file, EvalOptions, LanguageCheckpoint};
use serde_json::json;

/// Arguments of `recurrent eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Checkpoint folder, or a run folder (its best/ checkpoint is used).
    checkpoint: PathBuf,
    /// Text to evaluate on: a file or a folder.
    #[arg(long)]
    input: PathBuf,
    /// Parallel streams; 1 reads the text as one stream from a zero state to the end.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Steps per block (only affects speed, not the result).
    #[arg(long, default_value_t = 100)]
    seq_len: usize,
    /// Print one JSON object with loss, bits_per_token, perplexity, tokens, accuracy
    /// (and bits_per_char except for word models).
    #[arg(long)]
    json: bool,
    /// Threads for the kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Evaluate with the weights `sample --weights` would use (bf16: every
    /// weight matrix rounded to bfloat16), to see what the rounding costs.
    #[arg(long, value_enum, default_value_t)]
    weights: super::Weights,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let options = EvalOptions {
        batch: args.batch,
        seq_len: args.seq_len,
        weights: args.weights.into(),
        threads: args.threads,
    };
    // Before the checkpoint is read: a bad number is the first thing to say.
    options.check().map_err(super::cli_error)?;
    let saved = LanguageCheckpoint::load(&args.checkpoint).map_err(super::cli_error)?;
    let e = evaluate_file(&saved, &args.input, &options).map_err(super::cli_error)?;
    let r = &e.report;
    if args.json {
        let mut out = json!({
            "loss": r.loss, "bits_per_token": r.bits_per_token(), "perplexity": r.perplexity(),
            "tokens": r.tokens, "accuracy": r.accuracy,
        });
        if let Some(bpc) = e.bits_per_char {
            out["bits_per_char"] = json!(bpc);
        }
        println!("{out}");
    } else {
        println!("loss            {:.4} nats/token", r.loss);
        println!("bits per token  {:.4}", r.bits_per_token());
        if let Some(bpc) = e.bits_per_char {
            println!("bits per char   {bpc:.4}");
        }
        println!("perplexity      {:.3}", r.perplexity());
        println!("accuracy        {:.2}%", 100.0 * r.accuracy);
        println!("tokens          {}", r.tokens);
    }
    Ok(())
}
