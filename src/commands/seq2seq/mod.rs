//! `recurrent seq2seq`: encoder-decoder models with attention trained on
//! sentence pairs (`train`), used to translate (`translate`) and measured
//! with BLEU, chrF and token accuracy (`eval`).

mod decode;
pub mod eval;
pub mod train;
pub mod translate;

use anyhow::Result;
use clap::{Args, Subcommand};

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

pub fn run(args: Seq2SeqArgs) -> Result<()> {
    match args.command {
        Seq2SeqCommand::Train(a) => train::run(*a),
        Seq2SeqCommand::Translate(a) => translate::run(a),
        Seq2SeqCommand::Eval(a) => eval::run(a),
    }
}
