//! `recurrent seq2seq eval`: decode the sources of sentence pairs and score
//! the outputs against the targets.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use recurrent_checkpoint::seq2seq as ckpt;
use recurrent_model::seq2seq::Seq2SeqWorkspace;
use recurrent_report::{corpus_bleu, corpus_chrf};
use recurrent_train::seq2seq::{evaluate_pairs, EncodedPair};
use serde_json::json;

use super::decode::{translate, DecodeArgs};

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
    crate::commands::set_threads(args.threads)?;
    let saved = ckpt::load(&args.checkpoint)?;
    let (model, toks) = (&saved.model, &saved.tokenizers);
    let pairs = args.columns.read(&args.pairs)?;
    args.attention.check(pairs.len())?;
    let sources: Vec<String> = pairs.iter().map(|p| p.0.clone()).collect();
    let started = std::time::Instant::now();
    let out = translate(model, toks, &sources, &args.decode)?;
    let decode_secs = started.elapsed().as_secs_f64();
    let hyps: Vec<&str> = out.iter().map(|t| t.text.as_str()).collect();
    let refs: Vec<&str> = pairs.iter().map(|p| p.1.as_str()).collect();
    let bleu = corpus_bleu(&hyps, &refs)?;
    let chrf = corpus_chrf(&hyps, &refs)?;

    // Token accuracy and perplexity: teacher-forced, over the pairs with a source.
    let mut encoded = Vec::with_capacity(pairs.len());
    for (i, (s, t)) in pairs.iter().enumerate() {
        let src = toks
            .encode_source(s)
            .with_context(|| format!("pair {}: source", i + 1))?;
        let tgt = toks
            .encode_target(t)
            .with_context(|| format!("pair {}: target", i + 1))?;
        if !src.is_empty() {
            encoded.push(EncodedPair { src, tgt });
        }
    }
    let forced = evaluate_pairs(model, &mut Seq2SeqWorkspace::default(), &encoded, 64);

    if let Some(path) = &args.output {
        let text: String = out
            .iter()
            .map(|t| t.text.replace(['\n', '\r'], " ") + "\n")
            .collect();
        recurrent_checkpoint::atomic_write(path, text.as_bytes())?;
    }
    args.attention.write(toks, &out)?;
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
