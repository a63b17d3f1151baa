//! `recurrent sample`: generate text from a checkpoint, streaming it out.

use std::io::{ErrorKind, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use recurrent::{GenerateOptions, Generator, GeneratorOptions, LanguageCheckpoint, SamplingConfig};

/// Most samples one `sample` computes at once: `-n` beyond this would only
/// exhaust memory (each sample carries its own state and logits).
const MAX_SAMPLES: usize = 100_000;

/// Arguments of `recurrent sample`.
#[derive(Args, Debug)]
// `--temperature -1` must reach our range check, not be taken for a flag.
#[command(allow_negative_numbers = true)]
pub struct SampleArgs {
    /// Checkpoint folder, or a run folder (its best/ checkpoint is used).
    checkpoint: PathBuf,
    /// Text to continue from; it is printed before the sample.
    #[arg(long, default_value = "")]
    prime: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 500)]
    length: usize,
    /// Softmax temperature; 0 picks the most likely token (greedy).
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Sample only from the K most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Sample only from the smallest set of tokens whose probability reaches P.
    #[arg(long)]
    top_p: Option<f32>,
    /// Stop a sample at this string (not printed); may be given several times.
    #[arg(long)]
    stop: Vec<String>,
    /// Random seed (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Independent samples, computed as one batch.
    #[arg(short = 'n', long = "num-samples", default_value_t = 1)]
    n: usize,
    /// Threads for the kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// How to hold the weights while sampling: bf16 is faster for a few
    /// samples and changes the numbers slightly (`eval --weights bf16` tells
    /// how much).
    #[arg(long, value_enum, default_value_t)]
    weights: super::Weights,
}

pub fn run(args: SampleArgs) -> Result<()> {
    if !(1..=MAX_SAMPLES).contains(&args.n) {
        bail!("-n must be between 1 and {MAX_SAMPLES}, got {}", args.n);
    }
    let saved = LanguageCheckpoint::load(&args.checkpoint).map_err(super::cli_error)?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let options = GenerateOptions {
        prime: args.prime.clone(),
        length: args.length,
        sampling: SamplingConfig {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
        },
        stops: args.stop,
        seed,
        samples: args.n,
        weights: args.weights.into(),
    };
    // Check the prime before anything is printed.
    saved
        .tokenizer
        .encode(&args.prime)
        .map_err(recurrent::generate::GenerateError::Prime)?;
    let generator = Generator::new(
        &saved,
        GeneratorOptions {
            weights: args.weights.into(),
            threads: args.threads,
        },
    )
    .map_err(super::cli_error)?;
    if args.n == 1 {
        stream_to_stdout(&generator, &options, &args.prime)?;
    } else {
        let stdout = std::io::stdout();
        let texts = generator
            .generate(&options, |_, _| {})
            .map_err(super::cli_error)?;
        let mut out = stdout.lock();
        for (i, text) in texts.iter().enumerate() {
            writeln!(out, "=== sample {} ===\n{}{}", i + 1, args.prime, text)?;
        }
    }
    Ok(())
}

/// Streams one sample to stdout after `prime`, piece by piece, holding none
/// of it. A closed stdout (`| head`) ends generation quietly, as it ends
/// other Unix tools.
pub(crate) fn stream_to_stdout(
    generator: &Generator,
    options: &GenerateOptions,
    prime: &str,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut failed = put(&mut out, prime).err();
    if failed.is_none() {
        generator
            .stream(options, |_, piece| match put(&mut out, piece) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failed = Some(e);
                    ControlFlow::Break(())
                }
            })
            .map_err(super::cli_error)?;
    }
    if failed.is_none() {
        failed = put(&mut out, "\n").err();
    }
    match failed {
        Some(e) if e.kind() != ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write the sample to stdout"))
        }
        _ => Ok(()),
    }
}

/// Writes `text` and shows it at once.
fn put(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    write!(out, "{text}")?;
    out.flush()
}
