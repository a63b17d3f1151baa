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

/// Where the source and target of a pair are (shared by `train` and `eval`).
#[derive(Args, Debug, Clone)]
pub struct ColumnArgs {
    /// Layout of the pairs file (tab-separated columns).
    #[arg(long, value_enum, default_value_t = PairFormat::Tsv)]
    format: PairFormat,
    /// Column of the source sentence (counting from 0).
    #[arg(long, default_value_t = 0)]
    src_col: usize,
    /// Column of the target sentence (counting from 0).
    #[arg(long, default_value_t = 1)]
    tgt_col: usize,
    /// Swap source and target (e.g. French to English from eng-fra.txt).
    #[arg(long)]
    reverse: bool,
}

impl ColumnArgs {
    fn columns(&self) -> recurrent::text::PairColumns {
        recurrent::text::PairColumns {
            src: self.src_col,
            tgt: self.tgt_col,
            reverse: self.reverse,
        }
    }

    /// Reads the pairs of `path` laid out as these flags say.
    fn read(&self, path: &std::path::Path) -> Result<Vec<recurrent::text::Pair>> {
        match self.format {
            PairFormat::Tsv => Ok(recurrent::text::read_pairs(path, &self.columns())?),
        }
    }
}

/// `--attention-map` and the line it draws (shared by `translate` and `eval`).
#[derive(Args, Debug, Clone)]
pub struct AttentionMapArgs {
    /// Write the attention weights of one translated line as an SVG heatmap.
    #[arg(long)]
    attention_map: Option<std::path::PathBuf>,
    /// Which line (or pair) --attention-map draws, counting from 1.
    #[arg(long, default_value_t = 1, requires = "attention_map")]
    attention_line: usize,
}

impl AttentionMapArgs {
    /// Checks the line exists among `lines` before any work is done.
    fn check(&self, lines: usize) -> Result<()> {
        if self.attention_map.is_some() && !(1..=lines).contains(&self.attention_line) {
            anyhow::bail!(
                "--attention-line {} is not one of the {lines} input lines",
                self.attention_line
            );
        }
        Ok(())
    }

    /// Draws the chosen line's attention, when asked.
    fn write(
        &self,
        tokenizers: &recurrent::text::PairTokenizers,
        out: &[recurrent::Translation],
    ) -> Result<()> {
        match &self.attention_map {
            Some(path) => {
                decode::write_attention_map(path, tokenizers, &out[self.attention_line - 1])
            }
            None => Ok(()),
        }
    }
}

pub fn run(args: Seq2SeqArgs) -> Result<()> {
    match args.command {
        Seq2SeqCommand::Train(a) => train::run(*a),
        Seq2SeqCommand::Translate(a) => translate::run(a),
        Seq2SeqCommand::Eval(a) => eval::run(a),
    }
}
