//! `recurrent eval`: a checkpoint's loss on a text, as one stream by default.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use recurrent_checkpoint::lm;
use recurrent_model::Workspace;
use recurrent_text::{Corpus, TokenizerKind};
use recurrent_train::batch::Streams;
use recurrent_train::trainer::evaluate;
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
    super::set_threads(args.threads)?;
    let mut saved = lm::load(&args.checkpoint)?;
    if args.weights == super::Weights::Bf16 {
        saved.model.round_weights_to_bf16();
    }
    let corpus = Corpus::read(&args.input)?;
    if saved.tokenizer.kind().needs_utf8() {
        corpus.check_utf8()?;
    }
    let tokens = saved.tokenizer.encode_corpus(&corpus)?;
    // A model trained with --reset-between-docs is evaluated the same way.
    let reset = saved.resume.as_ref().is_some_and(|r| {
        r.trainer_state["trainer"]["config"]["reset_between_docs"].as_bool() == Some(true)
    });
    let boundary = saved.tokenizer.boundary().filter(|_| reset);
    let mut ws = Workspace::default();
    let r = evaluate(
        &saved.model,
        &mut ws,
        &tokens,
        args.batch.max(1),
        args.seq_len,
        boundary,
        "evaluation",
    )?;
    // Bits per character of the original text make models with different
    // tokenizers comparable (not for word models, whose text is normalized).
    let bpc = (saved.tokenizer.kind() != TokenizerKind::Word).then(|| {
        let streams = Streams::for_evaluation(tokens.len(), args.batch.max(1), "evaluation")
            .expect("evaluate accepted these tokens");
        let chars: usize = (0..streams.batch)
            .map(|b| {
                let start = b * streams.stream_len;
                saved
                    .tokenizer
                    .chars_in(&tokens[start + 1..start + streams.stream_len])
            })
            .sum();
        r.loss * r.tokens as f64 / std::f64::consts::LN_2 / chars.max(1) as f64
    });
    if args.json {
        let mut out = json!({
            "loss": r.loss, "bits_per_token": r.bits_per_token(), "perplexity": r.perplexity(),
            "tokens": r.tokens, "accuracy": r.accuracy,
        });
        if let Some(bpc) = bpc {
            out["bits_per_char"] = json!(bpc);
        }
        println!("{out}");
    } else {
        println!("loss            {:.4} nats/token", r.loss);
        println!("bits per token  {:.4}", r.bits_per_token());
        if let Some(bpc) = bpc {
            println!("bits per char   {bpc:.4}");
        }
        println!("perplexity      {:.3}", r.perplexity());
        println!("accuracy        {:.2}%", 100.0 * r.accuracy);
        println!("tokens          {}", r.tokens);
    }
    Ok(())
}
