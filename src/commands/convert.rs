//! `recurrent import` and `recurrent export`: weights to and from PyTorch.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use recurrent::checkpoint::{lm, pytorch};
use recurrent::model::CellKind;
use recurrent::text::TokenizerKind;

/// Formats weights can move to and from.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// A state dict of pytorch/examples' word_language_model RNNModel, saved with safetensors.
    Pytorch,
}

/// Arguments of `recurrent import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The format of the weights.
    format: Format,
    /// The state dict, as written by safetensors.torch.save_file.
    #[arg(long)]
    weights: PathBuf,
    /// The vocabulary: a JSON array of token strings in id order.
    #[arg(long)]
    vocab: PathBuf,
    /// The cell the weights belong to: lstm, gru, rnn-tanh or rnn-relu.
    #[arg(long)]
    cell: CellKind,
    /// How the vocabulary's tokens map to text: char, byte or word (word vocabularies need
    /// <unk> and <eos>, as word_language_model's PTB vocabulary has).
    #[arg(long, default_value = "char")]
    tokenizer: TokenizerKind,
    /// The checkpoint folder to write.
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `recurrent export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The format to write.
    format: Format,
    /// Checkpoint folder, or a run folder (its best/ checkpoint is used).
    checkpoint: PathBuf,
    /// The safetensors file to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn import(args: ImportArgs) -> Result<()> {
    let Format::Pytorch = args.format;
    let (model, tokenizer) =
        pytorch::import(&args.weights, &args.vocab, args.cell, args.tokenizer)?;
    lm::save(&args.out, &model, &tokenizer, None)?;
    let c = &model.config;
    println!(
        "imported a {}x{} {} (embed {}, vocabulary {}{}) into {}",
        c.layers,
        c.widths_label(),
        c.cell,
        c.embed,
        c.vocab_size,
        if c.tie { ", tied" } else { "" },
        args.out.display()
    );
    Ok(())
}

pub fn export(args: ExportArgs) -> Result<()> {
    let Format::Pytorch = args.format;
    let saved = lm::load(&args.checkpoint)?;
    pytorch::export(&saved.model, &args.out)?;
    println!(
        "wrote {} tensors to {}",
        saved.model.to_tensors().len(),
        args.out.display()
    );
    Ok(())
}
