//! Decoding options shared by `seq2seq translate` and `seq2seq eval`, and
//! the batched translation of a list of sentences.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::Args;
use recurrent_generate::beam::{
    beam_search, greedy_decode, sample_decode, BeamOptions, Hypothesis, LengthNorm, MaxLen,
    SampleOptions,
};
use recurrent_generate::SamplingConfig;
use recurrent_kernels::Rng;
use recurrent_model::seq2seq::Seq2Seq;
use recurrent_report::attention_heatmap_svg;
use recurrent_text::{PairTokenizers, EOS_TOKEN};

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
    /// Greedy decoding with the default limits (for validation during training).
    pub fn greedy() -> DecodeArgs {
        DecodeArgs {
            beam: 1,
            alpha: 0.0,
            max_len_a: 2.0,
            max_len_b: 10,
            temperature: None,
            top_k: None,
            top_p: None,
            seed: 0,
            batch: 64,
        }
    }

    fn beam_options(&self) -> BeamOptions {
        BeamOptions {
            width: self.beam,
            max_len: MaxLen {
                a: self.max_len_a,
                b: self.max_len_b,
            },
            length_normalization: LengthNorm::Gnmt { alpha: self.alpha },
        }
    }
}

/// One source sentence's translation.
pub struct Translation {
    pub text: String,
    /// The source ids the model read.
    pub source_ids: Vec<u32>,
    pub hypothesis: Hypothesis,
}

/// Translates `sources` in batches of similar length, returning one
/// translation per source, in order. A source with no tokens (a blank line)
/// translates to an empty line.
pub fn translate(
    model: &Seq2Seq,
    tokenizers: &PairTokenizers,
    sources: &[String],
    args: &DecodeArgs,
) -> Result<Vec<Translation>> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let beam = args.beam_options();
    beam.validate()?;
    let ids: Vec<Vec<u32>> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            tokenizers
                .encode_source(s)
                .with_context(|| format!("source line {}", i + 1))
        })
        .collect::<Result<_>>()?;
    let mut order: Vec<usize> = (0..sources.len()).filter(|&i| !ids[i].is_empty()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let mut out: Vec<Option<Hypothesis>> = vec![None; sources.len()];
    let mut rng = Rng::new(args.seed);
    let (bos, eos) = (tokenizers.bos(), tokenizers.eos());
    for rows in order.chunks(args.batch) {
        let width = rows.iter().map(|&r| ids[r].len()).max().unwrap_or(0);
        let mut src = Vec::with_capacity(rows.len() * width);
        let mut lens = Vec::with_capacity(rows.len());
        for &r in rows {
            src.extend_from_slice(&ids[r]);
            src.resize(src.len() + width - ids[r].len(), 0);
            lens.push(ids[r].len());
        }
        let hyps = match args.temperature {
            Some(t) => {
                let options = SampleOptions {
                    sampling: SamplingConfig {
                        temperature: t,
                        top_k: args.top_k,
                        top_p: args.top_p,
                    },
                    max_len: beam.max_len,
                    length_normalization: beam.length_normalization,
                };
                sample_decode(model, &src, &lens, bos, eos, &options, &mut rng)?
            }
            None if args.beam == 1 => greedy_decode(model, &src, &lens, bos, eos, &beam)?,
            None => beam_search(model, &src, &lens, bos, eos, &beam)?,
        };
        for (&r, h) in rows.iter().zip(hyps) {
            out[r] = Some(h);
        }
    }
    Ok(out
        .into_iter()
        .zip(ids)
        .map(|(h, source_ids)| {
            let hypothesis = h.unwrap_or(Hypothesis {
                tokens: Vec::new(),
                score: 0.0,
                log_prob: 0.0,
                eos: true,
                attention: Vec::new(),
            });
            Translation {
                text: tokenizers.decode_target(&hypothesis.tokens),
                source_ids,
                hypothesis,
            }
        })
        .collect())
}

/// Writes the attention of `t` as an SVG heatmap: source tokens across,
/// target tokens (and EOS) down.
pub fn write_attention_map(
    path: &Path,
    tokenizers: &PairTokenizers,
    t: &Translation,
) -> Result<()> {
    if t.source_ids.is_empty() {
        bail!("--attention-map: the chosen source line is blank, so there is nothing to draw");
    }
    let src = tokenizers.source_labels(&t.source_ids);
    let mut tgt = tokenizers.target_labels(&t.hypothesis.tokens);
    if t.hypothesis.eos {
        tgt.push(EOS_TOKEN.to_string());
    }
    let weights: Vec<f32> = t.hypothesis.attention.concat();
    let svg = attention_heatmap_svg(&src, &tgt, &weights)?;
    recurrent_checkpoint::atomic_write(path, svg.as_bytes())
        .with_context(|| format!("cannot write the attention map {}", path.display()))?;
    eprintln!("attention map written to {}", path.display());
    Ok(())
}
