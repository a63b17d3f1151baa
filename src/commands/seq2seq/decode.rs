//! Decoding options shared by `seq2seq translate` and `seq2seq eval`, and
//! the batched translation of a list of sentences.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::Args;
use recurrent::text::PairTokenizers;
use recurrent::{attention_map_svg, DecodeOptions, Translation};

/// How outputs are searched for.
#[derive(Args, Debug, Clone)]
// `--alpha -1` must reach our range check.
#[command(allow_negative_numbers = true)]
pub struct DecodeArgs {
    /// Beam width; 1 is greedy decoding.
    #[arg(long, default_value_t = 5)]
    pub beam: usize,
    /// Length normalization of beam scores (GNMT alpha; 0 ranks by log-probability alone).
    #[arg(long, default_value_t = 0.6)]
    pub alpha: f64,
    /// Outputs have at most max-len-a * source length + max-len-b tokens.
    #[arg(long, default_value_t = 2.0)]
    pub max_len_a: f64,
    /// See --max-len-a.
    #[arg(long, default_value_t = 10)]
    pub max_len_b: usize,
    /// Sample each token at this temperature instead of searching (0 is greedy).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// With --temperature: sample among the k most likely tokens.
    #[arg(long, requires = "temperature")]
    pub top_k: Option<usize>,
    /// With --temperature: sample among the most likely tokens holding this much probability.
    #[arg(long, requires = "temperature")]
    pub top_p: Option<f32>,
    /// Random seed for --temperature.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Sentences decoded together.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
}

impl DecodeArgs {
    /// The library's options (threads: the calling thread's).
    pub fn options(&self) -> DecodeOptions {
        DecodeOptions {
            beam: self.beam,
            alpha: self.alpha,
            max_len_a: self.max_len_a,
            max_len_b: self.max_len_b,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            seed: self.seed,
            batch: self.batch,
            threads: None,
        }
    }
}

/// Writes the attention of `t` as an SVG heatmap: source tokens across,
/// target tokens (and EOS) down.
pub fn write_attention_map(
    path: &Path,
    tokenizers: &PairTokenizers,
    t: &Translation,
) -> Result<()> {
    let Some(svg) = attention_map_svg(tokenizers, t)? else {
        bail!("--attention-map: the chosen source line is blank, so there is nothing to draw");
    };
    recurrent::checkpoint::atomic_write(path, svg.as_bytes())
        .with_context(|| format!("cannot write the attention map {}", path.display()))?;
    eprintln!("attention map written to {}", path.display());
    Ok(())
}
