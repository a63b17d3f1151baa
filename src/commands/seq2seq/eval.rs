//! `recurrent seq2seq eval`: decode the sources of sentence pairs and score
//! the outputs against the targets.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use recurrent::{score_pairs, DecodeOptions, Seq2SeqCheckpoint};
use serde_json::json;

use super::decode::DecodeArgs;
use crate::commands::cli_error;

/// Arguments of `recurrent seq2seq eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Checkpoint folder, or a run folder (its best/ checkpoint).
    checkpoint: PathBuf,
    /// Sentence pairs to score (e.g. the test.tsv a training run wrote).
    #[arg(long)]
    pairs: PathBuf,
    #[command(flatten)]
    columns: super::ColumnArgs,
    #[command(flatten)]
    decode: DecodeArgs,
    /// Print one JSON object (bleu, chrf, accuracy, sentences, ...) instead of text.
    #[arg(long)]
    json: bool,
    /// Also write the outputs, one line per pair, to this file.
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    attention: super::AttentionMapArgs,
    /// Threads for the kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let saved = Seq2SeqCheckpoint::load(&args.checkpoint).map_err(cli_error)?;
    let pairs = args.columns.read(&args.pairs)?;
    args.attention.check(pairs.len())?;
    let options = DecodeOptions {
        threads: args.threads,
        ..args.decode.options()
    };
    let scores = score_pairs(&saved, &pairs, &options).map_err(cli_error)?;
    let (out, bleu, chrf, forced) = (
        &scores.translations,
        &scores.bleu,
        scores.chrf,
        &scores.forced,
    );
    let decode_secs = scores.decode_secs;
    let toks = &saved.tokenizers;

    if let Some(path) = &args.output {
        let text: String = out
            .iter()
            .map(|t| t.text.replace(['\n', '\r'], " ") + "\n")
            .collect();
        recurrent::checkpoint::atomic_write(path, text.as_bytes())?;
    }
    args.attention.write(toks, out)?;
    let decoding = match args.decode.temperature {
        Some(t) => format!("sampling at temperature {t}"),
        None if args.decode.beam == 1 => "greedy".to_string(),
        None => format!("beam {} (alpha {})", args.decode.beam, args.decode.alpha),
    };
    if args.json {
        let value = json!({
            "bleu": bleu.score,
            "chrf": chrf,
            "accuracy": forced.accuracy,
            "sentences": pairs.len(),
            "perplexity": forced.perplexity(),
            "loss": forced.loss,
            "bleu_signature": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp",
            "bleu_precisions": bleu.precisions,
            "brevity_penalty": bleu.bp,
            "decoding": decoding,
            "decode_seconds": decode_secs,
        });
        println!("{value}");
    } else {
        println!(
            "{} pairs from {}, {decoding}, {:.1}s",
            pairs.len(),
            args.pairs.display(),
            decode_secs
        );
        println!("BLEU {:.2} (sacreBLEU 13a: {bleu})", bleu.score);
        println!("chrF {chrf:.2}");
        println!(
            "token accuracy {:.2}% and perplexity {:.2} (teacher-forced, {} target tokens)",
            100.0 * forced.accuracy,
            forced.perplexity(),
            forced.tokens
        );
    }
    Ok(())
}
