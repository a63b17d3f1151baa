//! `recurrent`: train recurrent neural network language models (RNN, LSTM,
//! GRU) on your own text and generate text from them.
//!
//! This binary is thin: it parses arguments, prints progress and results, and
//! calls the library crates, which do the work.

mod commands;
mod duration;
mod errors;
mod parallel;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Train recurrent neural network language models on your own text and generate from them.
#[derive(Parser)]
#[command(name = "recurrent", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on a text file or folder (or the built-in corpus).
    Train(Box<commands::train::TrainArgs>),
    /// Tokenize a corpus once into memory-mapped token files for `train --data`.
    Prepare(commands::prepare::PrepareArgs),
    /// Generate text from a checkpoint.
    Sample(commands::sample::SampleArgs),
    /// Measure a checkpoint's loss, bits per token and perplexity on a text.
    Eval(commands::eval::EvalArgs),
    /// Show a checkpoint's architecture, size, vocabulary and training history.
    Info(commands::info::InfoArgs),
    /// Write an HTML page showing what a model does on a text: surprisal, hidden units, gates.
    Inspect(commands::inspect::InspectArgs),
    /// Turn a PyTorch word_language_model state dict into a checkpoint.
    Import(commands::convert::ImportArgs),
    /// Write a checkpoint's weights as a PyTorch word_language_model state dict.
    Export(commands::convert::ExportArgs),
    /// List run folders with their model, data, progress and best validation figures.
    Runs(commands::runs::RunsArgs),
    /// Draw a run's loss curves (training and validation) as an SVG.
    Plot(commands::plot::PlotArgs),
    /// Measure training and sampling speed (against PyTorch when it is installed).
    Bench(commands::bench::BenchArgs),
    /// Sequence-to-sequence models with attention: train, translate, eval.
    Seq2seq(commands::seq2seq::Seq2SeqArgs),
    /// Serve checkpoints over an OpenAI-compatible HTTP API (continuous batching).
    Serve(commands::serve::ServeArgs),
    /// Numeric sequences from CSV: train an RNN/LSTM/GRU regression model, forecast, eval.
    Series(commands::series::SeriesArgs),
    /// Search hyper-parameters: grid, random or TPE, ASHA early stopping, cross-validation.
    Tune(Box<commands::tune::TuneArgs>),
}

fn main() -> ExitCode {
    restore_default_sigpipe();
    let cli = Cli::parse();
    if let Err(message) = force_bf16_kernel_from_env() {
        eprintln!("error: {message}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Train(args) => commands::train::run(*args),
        Command::Prepare(args) => commands::prepare::run(args),
        Command::Sample(args) => commands::sample::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Info(args) => commands::info::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Import(args) => commands::convert::import(args),
        Command::Export(args) => commands::convert::export(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Plot(args) => commands::plot::run(args),
        Command::Runs(args) => commands::runs::run(args),
        Command::Seq2seq(args) => commands::seq2seq::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Series(args) => commands::series::run(args),
        Command::Tune(args) => commands::tune::run(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", errors::render(&err));
            ExitCode::FAILURE
        }
    }
}

/// `RECURRENT_BF16_KERNEL=NAME` makes bf16 training use that kernel variant,
/// even one slower than float32 (`emulated` gives bf16's numbers on any CPU).
fn force_bf16_kernel_from_env() -> Result<(), String> {
    use recurrent::kernels::precision::{force_bf16_kernel, Bf16Kernel};
    match std::env::var("RECURRENT_BF16_KERNEL") {
        Ok(name) if !name.is_empty() => {
            let kernel: Bf16Kernel = name
                .parse()
                .map_err(|e| format!("RECURRENT_BF16_KERNEL: {e}"))?;
            if !kernel.available() {
                return Err(format!(
                    "RECURRENT_BF16_KERNEL={name}: this CPU cannot run it (it lacks the instructions)"
                ));
            }
            force_bf16_kernel(Some(kernel));
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Rust ignores SIGPIPE, which turns `recurrent info | head` into a panic on
/// the closed pipe; restore the default so the tool ends quietly like other
/// command-line tools.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
