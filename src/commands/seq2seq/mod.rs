//! `recurrent seq2seq`: encoder-decoder models with attention trained on
//! sentence pairs (`train`), used to translate (`translate`) and measured
//! with BLEU, chrF and token accuracy (`eval`).

mod decode;
pub mod eval;
pub mod train;
pub mod translate;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

/// How a pairs file is laid out (`--format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum PairFormat {
    /// One pair per line, columns separated by tabs (`--src-col`, `--tgt-col`).
    #[default]
    Tsv,
}

/// Arguments of `recurrent seq2seq`.
#[derive(Args, Debug)]
pub struct Seq2SeqArgs {
    #[command(subcommand)]
    command: Seq2SeqCommand,
}

#[derive(Subcommand, Debug)]
enum Seq2SeqCommand {
    /// Train an encoder-decoder with attention on tab-separated sentence pairs.
    Train(Box<train::TrainArgs>),
    /// Translate source lines from stdin or --input, one output line per input line.
    Translate(translate::TranslateArgs),
    /// Decode the sources of sentence pairs and report BLEU, chrF and token accuracy.
    Eval(eval::EvalArgs),
}

/// Reads the pairs of `path` laid out as `format` says.
fn read_pairs_as(
    format: PairFormat,
    path: &std::path::Path,
    columns: &recurrent_text::PairColumns,
) -> Result<Vec<recurrent_text::Pair>> {
    match format {
        PairFormat::Tsv => Ok(recurrent_text::read_pairs(path, columns)?),
    }
}

pub fn run(args: Seq2SeqArgs) -> Result<()> {
    match args.command {
        Seq2SeqCommand::Train(a) => train::run(*a),
        Seq2SeqCommand::Translate(a) => translate::run(a),
        Seq2SeqCommand::Eval(a) => eval::run(a),
    }
}
