//! Translating with a sequence-to-sequence model: beam search, greedy
//! decoding or sampling, over batches of sentences of similar length.

use recurrent_generate::beam::{
    beam_search, greedy_decode, sample_decode, BeamOptions, Hypothesis, LengthNorm, MaxLen,
    SampleOptions,
};
use recurrent_generate::SamplingConfig;
use recurrent_kernels::Rng;
use recurrent_model::seq2seq::{Seq2Seq, Seq2SeqWorkspace};
use recurrent_report::{attention_heatmap_svg, corpus_bleu, corpus_chrf, Bleu};
use recurrent_text::{PairTokenizers, EOS_TOKEN};
use recurrent_train::seq2seq::{evaluate_pairs, EncodedPair};
use recurrent_train::EvalReport;

use crate::error::{check, Error, Result};
use crate::load::Seq2SeqCheckpoint;
use crate::threads::{resolve_threads, with_threads};

/// A source may have this many times the tokens of the longest source the
/// model was trained on (its run's `max_tokens`): attention over a much
/// longer sentence is both slow (every output step reads every source
/// position, and outputs may be twice as long) and far outside what the
/// model learned.
pub const SOURCE_LENGTH_FACTOR: usize = 4;

/// The longest source, in tokens, for a model that does not record the
/// length it was trained on (imported weights, checkpoints without a run).
pub const DEFAULT_MAX_SOURCE_TOKENS: usize = 1024;

impl Seq2SeqCheckpoint {
    /// The longest source training allowed (the run's `max_tokens`), when
    /// the checkpoint records it.
    pub fn trained_source_tokens(&self) -> Option<usize> {
        let state = &self.resume.as_ref()?.trainer_state;
        let n = state["data"]["max_tokens"].as_u64()?;
        usize::try_from(n).ok().filter(|&n| n > 0)
    }

    /// The longest source [`translate`] and [`score_pairs`] accept:
    /// [`SOURCE_LENGTH_FACTOR`] times the trained length, else
    /// [`DEFAULT_MAX_SOURCE_TOKENS`].
    pub fn max_source_tokens(&self) -> usize {
        self.trained_source_tokens()
            .map_or(DEFAULT_MAX_SOURCE_TOKENS, |n| {
                n.saturating_mul(SOURCE_LENGTH_FACTOR)
            })
    }
}

/// How outputs are searched for.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeOptions {
    /// Beam width; 1 is greedy decoding.
    pub beam: usize,
    /// Length normalization of beam scores (GNMT alpha; 0 ranks by
    /// log-probability alone).
    pub alpha: f64,
    /// Outputs have at most `max_len_a * source length + max_len_b` tokens.
    pub max_len_a: f64,
    /// See `max_len_a`.
    pub max_len_b: usize,
    /// Sample each token at this temperature instead of searching.
    pub temperature: Option<f32>,
    /// With `temperature`: sample among the k most likely tokens.
    pub top_k: Option<usize>,
    /// With `temperature`: sample among the most likely tokens holding this
    /// much probability.
    pub top_p: Option<f32>,
    /// Random seed for sampling.
    pub seed: u64,
    /// Sentences decoded together.
    pub batch: usize,
    /// Threads for the kernels (default: all cores).
    pub threads: Option<usize>,
}

impl Default for DecodeOptions {
    /// Beam search of width 5 with GNMT length normalization 0.6.
    fn default() -> DecodeOptions {
        DecodeOptions {
            beam: 5,
            alpha: 0.6,
            max_len_a: 2.0,
            max_len_b: 10,
            temperature: None,
            top_k: None,
            top_p: None,
            seed: 42,
            batch: 64,
            threads: None,
        }
    }
}

impl DecodeOptions {
    /// Greedy decoding with the default limits.
    pub fn greedy() -> DecodeOptions {
        DecodeOptions {
            beam: 1,
            alpha: 0.0,
            seed: 0,
            ..DecodeOptions::default()
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
#[derive(Clone, Debug)]
pub struct Translation {
    /// The output text.
    pub text: String,
    /// The source ids the model read.
    pub source_ids: Vec<u32>,
    /// Output ids, scores and attention weights.
    pub hypothesis: Hypothesis,
}

/// Translates `sources` with a seq2seq checkpoint. A source longer than
/// [`Seq2SeqCheckpoint::max_source_tokens`] is an error naming its line
/// (outputs are bounded by `max_len_a` and `max_len_b`).
///
/// ```no_run
/// use recurrent::{DecodeOptions, Seq2SeqCheckpoint, translate};
///
/// let checkpoint = Seq2SeqCheckpoint::load("runs/en-fr")?;
/// let out = translate(&checkpoint, &["I am cold.".to_string()], &DecodeOptions::default())?;
/// println!("{}", out[0].text);
/// # Ok::<(), recurrent::Error>(())
/// ```
pub fn translate(
    checkpoint: &Seq2SeqCheckpoint,
    sources: &[String],
    options: &DecodeOptions,
) -> Result<Vec<Translation>> {
    let threads = resolve_threads(options.threads)?;
    with_threads(threads, || {
        let ids = encode_sources(&checkpoint.tokenizers, sources)?;
        check_source_lengths(checkpoint, &ids, "source line")?;
        decode_ids(&checkpoint.model, &checkpoint.tokenizers, ids, options)
    })
}

/// Errors if a source is longer than the checkpoint translates.
fn check_source_lengths(
    checkpoint: &Seq2SeqCheckpoint,
    ids: &[Vec<u32>],
    what: &str,
) -> Result<()> {
    let limit = checkpoint.max_source_tokens();
    match ids.iter().position(|s| s.len() > limit) {
        Some(i) => Err(Error::SourceTooLong {
            what: what.to_string(),
            line: i + 1,
            tokens: ids[i].len(),
            limit,
            trained: checkpoint.trained_source_tokens(),
        }),
        None => Ok(()),
    }
}

/// Every source's token ids, or an error naming the line that cannot be encoded.
fn encode_sources(tokenizers: &PairTokenizers, sources: &[String]) -> Result<Vec<Vec<u32>>> {
    sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            tokenizers.encode_source(s).map_err(|source| Error::Line {
                what: "source line".into(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// Translates `sources` in batches of similar length, returning one
/// translation per source, in order. A source with no tokens (a blank line)
/// translates to an empty line. Runs on the calling thread's kernel threads.
/// Sources are not length-checked here (a model alone does not know how long
/// its training sentences were); [`translate`] checks them.
pub fn translate_with(
    model: &Seq2Seq,
    tokenizers: &PairTokenizers,
    sources: &[String],
    options: &DecodeOptions,
) -> Result<Vec<Translation>> {
    decode_ids(
        model,
        tokenizers,
        encode_sources(tokenizers, sources)?,
        options,
    )
}

/// [`translate_with`] of sources already encoded.
fn decode_ids(
    model: &Seq2Seq,
    tokenizers: &PairTokenizers,
    ids: Vec<Vec<u32>>,
    options: &DecodeOptions,
) -> Result<Vec<Translation>> {
    check(options.batch >= 1, "batch", options.batch, "at least 1")?;
    let beam = options.beam_options();
    beam.validate()?;
    let mut order: Vec<usize> = (0..ids.len()).filter(|&i| !ids[i].is_empty()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let mut out: Vec<Option<Hypothesis>> = vec![None; ids.len()];
    let mut rng = Rng::new(options.seed);
    let (bos, eos) = (tokenizers.bos(), tokenizers.eos());
    for rows in order.chunks(options.batch) {
        let width = rows.iter().map(|&r| ids[r].len()).max().unwrap_or(0);
        let mut src = Vec::with_capacity(rows.len() * width);
        let mut lens = Vec::with_capacity(rows.len());
        for &r in rows {
            src.extend_from_slice(&ids[r]);
            src.resize(src.len() + width - ids[r].len(), 0);
            lens.push(ids[r].len());
        }
        let hyps = match options.temperature {
            Some(t) => {
                let sample = SampleOptions {
                    sampling: SamplingConfig {
                        temperature: t,
                        top_k: options.top_k,
                        top_p: options.top_p,
                    },
                    max_len: beam.max_len,
                    length_normalization: beam.length_normalization,
                };
                sample_decode(model, &src, &lens, bos, eos, &sample, &mut rng)?
            }
            None if options.beam == 1 => greedy_decode(model, &src, &lens, bos, eos, &beam)?,
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

/// The attention of translation `t` as an SVG heatmap: source tokens across,
/// target tokens (and EOS) down. `None` for a blank source.
pub fn attention_map_svg(tokenizers: &PairTokenizers, t: &Translation) -> Result<Option<String>> {
    if t.source_ids.is_empty() {
        return Ok(None);
    }
    let src = tokenizers.source_labels(&t.source_ids);
    let mut tgt = tokenizers.target_labels(&t.hypothesis.tokens);
    if t.hypothesis.eos {
        tgt.push(EOS_TOKEN.to_string());
    }
    let weights: Vec<f32> = t.hypothesis.attention.concat();
    Ok(Some(attention_heatmap_svg(&src, &tgt, &weights)?))
}

/// How well a seq2seq model translates a set of sentence pairs.
#[derive(Clone, Debug)]
pub struct PairScores {
    /// One translation per pair, in order.
    pub translations: Vec<Translation>,
    /// Corpus BLEU of the translations against the targets (sacreBLEU 13a).
    pub bleu: Bleu,
    /// Corpus chrF.
    pub chrf: f64,
    /// Teacher-forced loss, token accuracy and perplexity over the pairs with
    /// a source.
    pub forced: EvalReport,
    /// Seconds spent decoding.
    pub decode_secs: f64,
}

/// Translates the sources of `pairs` and scores the outputs against their
/// targets: BLEU and chrF as sacreBLEU computes them, and the teacher-forced
/// token accuracy and perplexity.
pub fn score_pairs(
    checkpoint: &Seq2SeqCheckpoint,
    pairs: &[(String, String)],
    options: &DecodeOptions,
) -> Result<PairScores> {
    let threads = resolve_threads(options.threads)?;
    with_threads(threads, || {
        let (model, toks) = (&checkpoint.model, &checkpoint.tokenizers);
        let sources: Vec<String> = pairs.iter().map(|p| p.0.clone()).collect();
        let ids = encode_sources(toks, &sources)?;
        check_source_lengths(checkpoint, &ids, "pair")?;
        let started = std::time::Instant::now();
        let translations = decode_ids(model, toks, ids, options)?;
        let decode_secs = started.elapsed().as_secs_f64();
        let hyps: Vec<&str> = translations.iter().map(|t| t.text.as_str()).collect();
        let refs: Vec<&str> = pairs.iter().map(|p| p.1.as_str()).collect();
        let bleu = corpus_bleu(&hyps, &refs)?;
        let chrf = corpus_chrf(&hyps, &refs)?;
        let mut encoded = Vec::with_capacity(pairs.len());
        for (i, (s, t)) in pairs.iter().enumerate() {
            let line = |side: &str, source| Error::Line {
                what: format!("pair ({side})"),
                line: i + 1,
                source,
            };
            let src = toks.encode_source(s).map_err(|e| line("source", e))?;
            let tgt = toks.encode_target(t).map_err(|e| line("target", e))?;
            if !src.is_empty() {
                encoded.push(EncodedPair { src, tgt });
            }
        }
        let forced = evaluate_pairs(model, &mut Seq2SeqWorkspace::default(), &encoded, 64);
        Ok(PairScores {
            translations,
            bleu,
            chrf,
            forced,
            decode_secs,
        })
    })
}
