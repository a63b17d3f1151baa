//! `recurrent import` and `recurrent export`: weights to and from PyTorch,
//! and language models to ONNX.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use recurrent::model::CellKind;
use recurrent::text::TokenizerKind;
use recurrent::{
    export_onnx, export_pytorch, import_pytorch, LanguageCheckpoint, PytorchWeights, ONNX_OPSET,
};

/// Formats weights can move to and from.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// A state dict of pytorch/examples' word_language_model RNNModel, saved with safetensors.
    Pytorch,
    /// ONNX (export only): a sequence graph at --out and a one-step graph beside it
    /// (model.onnx and model.step.onnx), with native LSTM/GRU/RNN operators.
    Onnx,
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
    /// The file to write (safetensors for pytorch; the sequence graph for onnx).
    #[arg(long)]
    out: PathBuf,
}

pub fn import(args: ImportArgs) -> Result<()> {
    if let Format::Onnx = args.format {
        anyhow::bail!(
            "ONNX files cannot be imported; import PyTorch weights (`recurrent import pytorch`)"
        );
    }
    let source = PytorchWeights {
        weights: args.weights,
        vocab: args.vocab,
        cell: args.cell,
        tokenizer: args.tokenizer,
    };
    let imported = import_pytorch(&source, &args.out).map_err(super::cli_error)?;
    let c = &imported.model.config;
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
    let checkpoint = LanguageCheckpoint::load(&args.checkpoint).map_err(super::cli_error)?;
    match args.format {
        Format::Pytorch => {
            let tensors = export_pytorch(&checkpoint, &args.out).map_err(super::cli_error)?;
            println!("wrote {tensors} tensors to {}", args.out.display());
        }
        Format::Onnx => {
            let files = export_onnx(&checkpoint, &args.out).map_err(super::cli_error)?;
            println!(
                "wrote the sequence graph to {} and the step graph to {} (ONNX opset {ONNX_OPSET})",
                files.sequence.display(),
                files.step.display()
            );
        }
    }
    Ok(())
}
