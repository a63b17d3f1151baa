//! Batched decoding of sequence-to-sequence models: beam search, greedy and
//! sampling, all returning one [`Hypothesis`] per source so a front end can
//! offer beam search, greedy and sampling behind one interface.
//!
//! Every decoder runs the whole batch at once: each time step is one
//! [`Seq2Seq::decode_step_packed`] call over every live row (for beam search, the
//! live hypotheses of every source, grouped by source). Rows whose source is
//! finished are dropped from the batch with [`EncoderOutput::select`] and
//! [`recurrent_model::seq2seq::DecoderState::select`], so a long source does
//! not keep short ones computing.
//!
//! Conventions shared by the three decoders:
//!
//! * **Scores.** Log-probabilities are the model's own (log-softmax of the
//!   logits at temperature 1, computed in `f64`), summed over every predicted
//!   token *including* EOS when it was produced. [`Hypothesis::log_prob`] is
//!   that sum; [`Hypothesis::score`] is it after [`LengthNorm`], and is what
//!   beam search ranks finished hypotheses by.
//! * **Length.** A hypothesis's length for normalization counts its tokens plus
//!   one for EOS if it ended with EOS. Decoding takes at most
//!   [`MaxLen::for_source`] steps, so a hypothesis has at most that many
//!   tokens; one cut off there has no EOS ([`Hypothesis::eos`] is false).
//! * **Attention.** One row per decoder step, EOS's step included: the weights
//!   the decoder put on each real source position (padding trimmed), each row
//!   summing to 1. Ready for `recurrent_report::attention_heatmap_svg` with
//!   the target tokens (plus an EOS label when `eos`) on the vertical axis.

use std::cmp::Ordering;

use recurrent_kernels::Rng;
use recurrent_model::seq2seq::{DecoderState, EncoderOutput, Seq2Seq, Seq2SeqError};
use serde::{Deserialize, Serialize};

use crate::sampler::{SampleError, Sampler, SamplingConfig};

/// The widest beam accepted: `B * width` rows of decoder state are held at
/// once, so an absurd width is a typo rather than a request.
pub const MAX_WIDTH: usize = 1024;

/// An invalid decoding option, or a batch the model rejects. Each message
/// names the option's field and the offending value; a front end matches on
/// the variant to name the setting in its own words.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// [`BeamOptions::width`] outside `1..=MAX_WIDTH`.
    #[error("beam width must be between 1 and {MAX_WIDTH}, got {value}")]
    Width {
        /// The width given.
        value: usize,
    },
    /// [`MaxLen::a`] negative, infinite or NaN.
    #[error("max_len.a (tokens per source token) must be a finite number >= 0, got {value}")]
    MaxLenA {
        /// The factor given.
        value: f64,
    },
    /// [`LengthNorm::Gnmt`]'s `alpha` negative, infinite or NaN.
    #[error("length normalization alpha must be a finite number >= 0, got {value}")]
    Alpha {
        /// The alpha given.
        value: f64,
    },
    /// The BOS or EOS id is not a target token.
    #[error("the {which} id {id} is outside the target vocabulary of {vocab} tokens")]
    Token {
        /// Which special token: "BOS" or "EOS".
        which: &'static str,
        /// The id given.
        id: u32,
        /// The target vocabulary's size.
        vocab: usize,
    },
    /// The sampling settings of [`SampleOptions`] are invalid.
    #[error(transparent)]
    Sampling(#[from] SampleError),
    /// The model rejected the batch (shapes, ids outside the source vocabulary).
    #[error(transparent)]
    Model(#[from] Seq2SeqError),
}

/// How many tokens a source's output may have: `floor(a * src_len) + b`, at
/// least 1 (fairseq's `--max-len-a` / `--max-len-b`). `a = 0` gives an
/// absolute limit of `b` ([`MaxLen::absolute`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaxLen {
    /// Tokens allowed per source token, finite and `>= 0`.
    pub a: f64,
    /// Tokens allowed on top of `a * src_len`.
    pub b: usize,
}

impl MaxLen {
    /// At most `n` tokens whatever the source length (at least 1).
    pub fn absolute(n: usize) -> Self {
        MaxLen { a: 0.0, b: n }
    }

    /// The limit for a source of `src_len` tokens.
    pub fn for_source(&self, src_len: usize) -> usize {
        // `as usize` saturates, so a huge `a` cannot overflow.
        let scaled = (self.a * src_len as f64).floor() as usize;
        scaled.saturating_add(self.b).max(1)
    }

    fn validate(&self) -> Result<(), DecodeError> {
        // Written so that NaN fails.
        if self.a.is_finite() && self.a >= 0.0 {
            Ok(())
        } else {
            Err(DecodeError::MaxLenA { value: self.a })
        }
    }
}

impl Default for MaxLen {
    /// `2 * src_len + 10`: room for targets much longer than their source.
    fn default() -> Self {
        MaxLen { a: 2.0, b: 10 }
    }
}

/// How a hypothesis's summed log-probability is turned into its score, so that
/// longer outputs (which add more negative terms) are not unfairly preferred
/// short ones. `len` counts tokens plus EOS (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum LengthNorm {
    /// The raw log-probability (beam search then maximizes `log p(y | x)`).
    None,
    /// `log_prob / len` (plain length normalization, fairseq `--lenpen 1`).
    Average,
    /// Wu et al. 2016 (GNMT): `log_prob / ((5 + len) / 6)^alpha`. `alpha = 0`
    /// is [`LengthNorm::None`]; 0.6 to 1 is usual.
    Gnmt {
        /// The exponent, finite and `>= 0`.
        alpha: f64,
    },
}

impl LengthNorm {
    /// The score of a hypothesis of `len` predicted tokens (EOS included).
    pub fn score(&self, log_prob: f64, len: usize) -> f64 {
        log_prob / self.penalty(len)
    }

    /// The divisor, `>= 1` and non-decreasing in `len`: what makes the bound
    /// of [`beam_search`]'s stopping rule valid.
    fn penalty(&self, len: usize) -> f64 {
        match *self {
            LengthNorm::None => 1.0,
            LengthNorm::Average => len.max(1) as f64,
            LengthNorm::Gnmt { alpha } => ((5.0 + len as f64) / 6.0).powf(alpha),
        }
    }

    fn validate(&self) -> Result<(), DecodeError> {
        match *self {
            LengthNorm::Gnmt { alpha } if !(alpha.is_finite() && alpha >= 0.0) => {
                Err(DecodeError::Alpha { value: alpha })
            }
            _ => Ok(()),
        }
    }
}

/// Options of [`beam_search`]; [`greedy_decode`] uses all but `width`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BeamOptions {
    /// Hypotheses kept per source, `1..=MAX_WIDTH`.
    pub width: usize,
    /// The longest output per source.
    pub max_len: MaxLen,
    /// How finished hypotheses are scored and ranked.
    pub length_normalization: LengthNorm,
}

impl Default for BeamOptions {
    /// Width 5, `2 * src_len + 10` tokens, GNMT normalization with `alpha = 0.6`.
    fn default() -> Self {
        BeamOptions {
            width: 5,
            max_len: MaxLen::default(),
            length_normalization: LengthNorm::Gnmt { alpha: 0.6 },
        }
    }
}

impl BeamOptions {
    /// Checks every field; errors name the field and the value.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if !(1..=MAX_WIDTH).contains(&self.width) {
            return Err(DecodeError::Width { value: self.width });
        }
        self.max_len.validate()?;
        self.length_normalization.validate()
    }
}

/// Options of [`sample_decode`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleOptions {
    /// Temperature and top-k / top-p filters; temperature 0 is greedy.
    pub sampling: SamplingConfig,
    /// The longest output per source.
    pub max_len: MaxLen,
    /// Only changes the reported [`Hypothesis::score`].
    pub length_normalization: LengthNorm,
}

/// One decoded output.
#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis {
    /// The target tokens, without BOS and EOS.
    pub tokens: Vec<u32>,
    /// [`Hypothesis::log_prob`] after length normalization (higher is better).
    pub score: f64,
    /// `Σ log p(y_t | y_<t, x)` in nats over `tokens` and EOS (when produced).
    pub log_prob: f64,
    /// Whether the hypothesis ended with EOS (false: cut off at the length limit).
    pub eos: bool,
    /// `[tokens.len() + eos, src_len]`: the attention weights of every step
    /// over the source's real positions.
    pub attention: Vec<Vec<f32>>,
}

/// Beam search over a batch of sources (`src: [B, width]` batch-major and
/// right-padded, `src_lens: [B]`): the best hypothesis of each source, in
/// batch order. See [`beam_search_nbest`].
pub fn beam_search(
    model: &Seq2Seq,
    src: &[u32],
    src_lens: &[usize],
    bos: u32,
    eos: u32,
    options: &BeamOptions,
) -> Result<Vec<Hypothesis>, DecodeError> {
    let nbest = beam_search_nbest(model, src, src_lens, bos, eos, options)?;
    // Every source ends with at least one hypothesis (see `Search::finish`).
    Ok(nbest
        .into_iter()
        .filter_map(|h| h.into_iter().next())
        .collect())
}

/// Beam search returning, for each source, up to `width` finished hypotheses,
/// best score first.
///
/// All `B * width` live hypotheses advance together, one decoder step per time
/// step. At each step a source's candidates (every live hypothesis extended by
/// every token) are ranked by summed log-probability, ties going to the lower
/// token id, then the lower beam index. Walking that ranking (as fairseq does),
/// an EOS candidate within the first `width` becomes a finished hypothesis,
/// and the first `width` other candidates stay live, so the beam stays full.
///
/// A source stops when it has `width` finished hypotheses all scoring at
/// least the best that any live one could still reach: live log-probabilities
/// only fall, and the normalization divisor is largest at the length limit, so
/// that best is `best live log_prob / penalty(max_len)`. With
/// [`LengthNorm::None`] this stops as soon as the finished ones beat every
/// live one, and width 1 is greedy decoding; with normalization, search may go
/// on past the first EOS to find a longer hypothesis that scores better. At
/// the length limit every live hypothesis is finished without EOS.
pub fn beam_search_nbest(
    model: &Seq2Seq,
    src: &[u32],
    src_lens: &[usize],
    bos: u32,
    eos: u32,
    options: &BeamOptions,
) -> Result<Vec<Vec<Hypothesis>>, DecodeError> {
    options.validate()?;
    let enc = encode(model, src, src_lens, bos, eos)?;
    let mut search = Search::new(&enc, options, eos);
    let mut rows = Rows::new(model, enc)?;
    let mut prev = vec![bos; rows.len()];
    let packed = model.pack_decoder();
    while !prev.is_empty() {
        let step = model.decode_step_packed(&packed, &rows.enc, &rows.state, &prev)?;
        let keep = search.advance(&step.logits, &step.attention, rows.enc.src_len);
        rows.advance(step.state, &keep)?;
        prev = search.prev_tokens();
    }
    Ok(search.finish())
}

/// Greedy decoding of a batch: each row takes its most likely token (the lowest
/// id on ties) until EOS or `options.max_len`. `options.width` is not used;
/// the score is normalized as `options.length_normalization` says. With
/// [`LengthNorm::None`] this is exactly [`beam_search`] with width 1.
pub fn greedy_decode(
    model: &Seq2Seq,
    src: &[u32],
    src_lens: &[usize],
    bos: u32,
    eos: u32,
    options: &BeamOptions,
) -> Result<Vec<Hypothesis>, DecodeError> {
    options.max_len.validate()?;
    options.length_normalization.validate()?;
    let paths = PathOptions {
        bos,
        eos,
        max_len: options.max_len,
        norm: options.length_normalization,
    };
    decode_paths(model, src, src_lens, &paths, |_, _, logp| best_token(logp))
}

/// Sampled decoding of a batch: each row draws its next token with a
/// [`Sampler`] (temperature, top-k, top-p) until EOS or the length limit.
///
/// Each source gets its own generator forked from `rng` in batch order, so a
/// seed fixes every output and one source's length does not shift another's
/// draws. Scores are the model's own log-probabilities (temperature 1) of the
/// drawn tokens. Temperature 0 is greedy.
pub fn sample_decode(
    model: &Seq2Seq,
    src: &[u32],
    src_lens: &[usize],
    bos: u32,
    eos: u32,
    options: &SampleOptions,
    rng: &mut Rng,
) -> Result<Vec<Hypothesis>, DecodeError> {
    let mut sampler = Sampler::new(options.sampling.clone())?;
    options.max_len.validate()?;
    options.length_normalization.validate()?;
    let mut rngs: Vec<Rng> = src_lens.iter().map(|_| rng.fork()).collect();
    let paths = PathOptions {
        bos,
        eos,
        max_len: options.max_len,
        norm: options.length_normalization,
    };
    decode_paths(model, src, src_lens, &paths, |source, logits, _| {
        sampler.sample(logits, &mut rngs[source])
    })
}

/// Checks BOS and EOS against the target vocabulary and encodes the batch.
fn encode(
    model: &Seq2Seq,
    src: &[u32],
    src_lens: &[usize],
    bos: u32,
    eos: u32,
) -> Result<EncoderOutput, DecodeError> {
    let vocab = model.config.tgt_vocab;
    for (which, id) in [("BOS", bos), ("EOS", eos)] {
        if id as usize >= vocab {
            return Err(DecodeError::Token { which, id, vocab });
        }
    }
    Ok(model.encode(src, src_lens)?)
}

/// `out[j] = log softmax(row)[j]`, in `f64` so that summing many steps loses
/// nothing that would reorder close hypotheses.
fn log_softmax_into(row: &[f32], out: &mut Vec<f64>) {
    let max = row
        .iter()
        .fold(f64::NEG_INFINITY, |m, &z| m.max(f64::from(z)));
    let sum: f64 = row.iter().map(|&z| (f64::from(z) - max).exp()).sum();
    let log_z = max + sum.ln();
    out.clear();
    out.extend(row.iter().map(|&z| f64::from(z) - log_z));
}

/// The index of the largest value, the lowest on ties.
fn best_token(logp: &[f64]) -> u32 {
    let mut best = 0;
    for (j, &x) in logp.iter().enumerate() {
        if x > logp[best] {
            best = j;
        }
    }
    best as u32
}

/// The decoder's batch: encoder output and state, one row per live hypothesis.
struct Rows {
    enc: EncoderOutput,
    state: DecoderState,
}

impl Rows {
    fn new(model: &Seq2Seq, enc: EncoderOutput) -> Result<Self, DecodeError> {
        let state = model.initial_state(&enc)?;
        Ok(Rows { enc, state })
    }

    fn len(&self) -> usize {
        self.enc.batch
    }

    /// Moves to the rows `keep` (indices into the current rows; may repeat)
    /// after a step that produced `state`.
    fn advance(&mut self, state: DecoderState, keep: &[usize]) -> Result<(), Seq2SeqError> {
        let identity = keep.len() == self.len() && keep.iter().enumerate().all(|(i, &r)| i == r);
        if identity {
            // Nothing finished and nothing reordered: skip two copies.
            self.state = state;
        } else {
            self.enc = self.enc.select(keep)?;
            self.state = state.select(keep)?;
        }
        Ok(())
    }
}

/// The attention row of decoder row `row` over its source's `len` real positions.
fn attention_row(attention: &[f32], s: usize, row: usize, len: usize) -> Vec<f32> {
    attention[row * s..row * s + len].to_vec()
}

/// One step of a hypothesis: tokens form a tree shared by the beams, so a
/// step stores its token and attention once and hypotheses are read back
/// through parent links only when they finish.
struct Node {
    parent: Option<usize>,
    token: u32,
    attention: Vec<f32>,
}

/// A hypothesis still being extended (one decoder row).
#[derive(Clone, Copy)]
struct Live {
    source: usize,
    /// Its last step, `None` before the first (it then reads BOS).
    node: Option<usize>,
    log_prob: f64,
    /// Tokens predicted so far.
    len: usize,
}

/// A hypothesis set aside: ended with EOS or at the length limit.
struct Ended {
    node: usize,
    log_prob: f64,
    score: f64,
    eos: bool,
}

/// A way to extend a live hypothesis: its row, the token and the summed log-probability.
#[derive(Clone, Copy)]
struct Candidate {
    log_prob: f64,
    token: u32,
    /// The beam index: the row within its source's group.
    beam: usize,
}

/// The ranking of candidates: higher log-probability, then lower token id,
/// then lower beam index. A total order, so the result never depends on how
/// a sort or selection happened to visit equal elements.
fn rank(a: &Candidate, b: &Candidate) -> Ordering {
    b.log_prob
        .total_cmp(&a.log_prob)
        .then(a.token.cmp(&b.token))
        .then(a.beam.cmp(&b.beam))
}

/// The bookkeeping of beam search for a whole batch.
struct Search {
    width: usize,
    eos: u32,
    norm: LengthNorm,
    /// `[B]` real source lengths and output length limits.
    src_lens: Vec<usize>,
    max_lens: Vec<usize>,
    nodes: Vec<Node>,
    /// The live hypotheses in decoder-row order, grouped by source.
    live: Vec<Live>,
    ended: Vec<Vec<Ended>>,
    /// Reused buffers: one row's log-probabilities, one source's candidates.
    logp: Vec<f64>,
    cands: Vec<Candidate>,
}

impl Search {
    fn new(enc: &EncoderOutput, options: &BeamOptions, eos: u32) -> Self {
        let b = enc.batch;
        Search {
            width: options.width,
            eos,
            norm: options.length_normalization,
            src_lens: enc.lens.clone(),
            max_lens: enc
                .lens
                .iter()
                .map(|&l| options.max_len.for_source(l))
                .collect(),
            nodes: Vec::new(),
            live: (0..b)
                .map(|source| Live {
                    source,
                    node: None,
                    log_prob: 0.0,
                    len: 0,
                })
                .collect(),
            ended: (0..b).map(|_| Vec::new()).collect(),
            logp: Vec::new(),
            cands: Vec::new(),
        }
    }

    /// The token each live row reads next.
    fn prev_tokens(&self) -> Vec<u32> {
        self.live
            .iter()
            .map(|l| l.node.map_or(0, |n| self.nodes[n].token))
            .collect()
    }

    /// Takes one step's `logits: [R, V]` and `attention: [R, s]` for the live
    /// rows and returns, for each new live hypothesis, the row it continues.
    fn advance(&mut self, logits: &[f32], attention: &[f32], s: usize) -> Vec<usize> {
        let v = logits.len() / self.live.len();
        let old = std::mem::take(&mut self.live);
        let mut keep = Vec::new();
        let mut start = 0;
        while start < old.len() {
            let source = old[start].source;
            let end = start
                + old[start..]
                    .iter()
                    .take_while(|l| l.source == source)
                    .count();
            let group = &old[start..end];
            self.candidates(group, &logits[start * v..end * v], v);
            let chosen = self.choose(group, start, attention, s);
            if !self.done(source, &chosen) {
                for (row, live) in chosen {
                    keep.push(row);
                    self.live.push(live);
                }
            }
            start = end;
        }
        keep
    }

    /// Fills `self.cands`, best first, with the candidates of one source's
    /// live `group` (logits `[group, V]`) that can matter: from each row, the
    /// `width + 1` best (at most `width` continue, plus possibly its EOS).
    fn candidates(&mut self, group: &[Live], logits: &[f32], v: usize) {
        self.cands.clear();
        let per_row = (self.width + 1).min(v);
        for (beam, live) in group.iter().enumerate() {
            log_softmax_into(&logits[beam * v..(beam + 1) * v], &mut self.logp);
            let first = self.cands.len();
            self.cands
                .extend(self.logp.iter().enumerate().map(|(j, &lp)| Candidate {
                    log_prob: live.log_prob + lp,
                    token: j as u32,
                    beam,
                }));
            let row = &mut self.cands[first..];
            if per_row < row.len() {
                row.select_nth_unstable_by(per_row - 1, rank);
            }
            self.cands.truncate(first + per_row);
        }
        self.cands.sort_unstable_by(rank);
    }

    /// Walks the ranked candidates of one source: EOS among the first `width`
    /// finishes a hypothesis, the first `width` others stay live (or finish
    /// without EOS at the length limit). Returns `(row, hypothesis)` of those
    /// that stay live; `first_row` is the group's first decoder row.
    fn choose(
        &mut self,
        group: &[Live],
        first_row: usize,
        attention: &[f32],
        s: usize,
    ) -> Vec<(usize, Live)> {
        let source = group[0].source;
        let (src_len, max_len) = (self.src_lens[source], self.max_lens[source]);
        let mut chosen = Vec::with_capacity(self.width);
        // Candidates that continue (live, or cut off at the limit): at most `width`.
        let mut continuing = 0;
        for rank in 0..self.cands.len() {
            if continuing == self.width {
                break;
            }
            let c = self.cands[rank];
            let is_eos = c.token == self.eos;
            if is_eos && rank >= self.width {
                // Outranked by `width` others: it could never be kept.
                continue;
            }
            let parent = &group[c.beam];
            let row = first_row + c.beam;
            let node = self.nodes.len();
            self.nodes.push(Node {
                parent: parent.node,
                token: c.token,
                attention: attention_row(attention, s, row, src_len),
            });
            let len = parent.len + 1;
            continuing += usize::from(!is_eos);
            if is_eos || len >= max_len {
                self.ended[source].push(Ended {
                    node,
                    log_prob: c.log_prob,
                    score: self.norm.score(c.log_prob, len),
                    eos: is_eos,
                });
            } else {
                let live = Live {
                    source,
                    node: Some(node),
                    log_prob: c.log_prob,
                    len,
                };
                chosen.push((row, live));
            }
        }
        chosen
    }

    /// Whether a source can stop: no live hypotheses left, or `width` finished
    /// ones all at least as good as any live one could become.
    fn done(&self, source: usize, live: &[(usize, Live)]) -> bool {
        let Some(best_live) = live.iter().map(|(_, l)| l.log_prob).reduce(f64::max) else {
            return true;
        };
        let ended = &self.ended[source];
        if ended.len() < self.width {
            return false;
        }
        let mut scores: Vec<f64> = ended.iter().map(|e| e.score).collect();
        scores.sort_unstable_by(|a, b| b.total_cmp(a));
        let worst_kept = scores[self.width - 1];
        // log_prob <= 0 only falls, and the divisor only grows up to the limit.
        let reachable = best_live / self.norm.penalty(self.max_lens[source]);
        worst_kept >= reachable
    }

    /// Each source's best `width` finished hypotheses, best first (ties: the
    /// one finished first).
    fn finish(mut self) -> Vec<Vec<Hypothesis>> {
        let ended = std::mem::take(&mut self.ended);
        ended
            .into_iter()
            .map(|mut list| {
                list.sort_by(|a, b| b.score.total_cmp(&a.score));
                list.truncate(self.width);
                list.iter().map(|e| self.hypothesis(e)).collect()
            })
            .collect()
    }

    /// Reads a finished hypothesis back from its last node.
    fn hypothesis(&self, e: &Ended) -> Hypothesis {
        let mut tokens = Vec::new();
        let mut attention = Vec::new();
        let mut at = Some(e.node);
        while let Some(n) = at {
            tokens.push(self.nodes[n].token);
            attention.push(self.nodes[n].attention.clone());
            at = self.nodes[n].parent;
        }
        tokens.reverse();
        attention.reverse();
        if e.eos {
            tokens.pop();
        }
        Hypothesis {
            tokens,
            score: e.score,
            log_prob: e.log_prob,
            eos: e.eos,
            attention,
        }
    }
}

/// What greedy and sampled decoding share.
struct PathOptions {
    bos: u32,
    eos: u32,
    max_len: MaxLen,
    norm: LengthNorm,
}

/// A single-path hypothesis being built (one decoder row).
struct Path {
    source: usize,
    tokens: Vec<u32>,
    attention: Vec<Vec<f32>>,
    log_prob: f64,
}

/// Decodes one path per source: at each step `pick(source, logits [V],
/// log-probabilities [V])` chooses each live row's token; a row finishes at
/// EOS or the length limit and leaves the batch.
fn decode_paths(
    model: &Seq2Seq,
    src: &[u32],
    src_lens: &[usize],
    opts: &PathOptions,
    mut pick: impl FnMut(usize, &[f32], &[f64]) -> u32,
) -> Result<Vec<Hypothesis>, DecodeError> {
    let enc = encode(model, src, src_lens, opts.bos, opts.eos)?;
    let lens = enc.lens.clone();
    let mut done: Vec<Option<Hypothesis>> = lens.iter().map(|_| None).collect();
    let mut live: Vec<Path> = (0..lens.len())
        .map(|source| Path {
            source,
            tokens: Vec::new(),
            attention: Vec::new(),
            log_prob: 0.0,
        })
        .collect();
    let mut rows = Rows::new(model, enc)?;
    let mut prev = vec![opts.bos; live.len()];
    let mut logp = Vec::new();
    let v = model.config.tgt_vocab;
    let packed = model.pack_decoder();
    while !live.is_empty() {
        let step = model.decode_step_packed(&packed, &rows.enc, &rows.state, &prev)?;
        let s = rows.enc.src_len;
        let (mut keep, mut next) = (Vec::new(), Vec::new());
        for (row, mut path) in live.into_iter().enumerate() {
            let logits = &step.logits[row * v..(row + 1) * v];
            log_softmax_into(logits, &mut logp);
            let token = pick(path.source, logits, &logp);
            path.log_prob += logp[token as usize];
            let src_len = lens[path.source];
            path.attention
                .push(attention_row(&step.attention, s, row, src_len));
            let eos = token == opts.eos;
            if !eos {
                path.tokens.push(token);
            }
            if eos || path.tokens.len() >= opts.max_len.for_source(src_len) {
                let source = path.source;
                done[source] = Some(finish_path(path, eos, opts.norm));
            } else {
                keep.push(row);
                prev[next.len()] = token;
                next.push(path);
            }
        }
        prev.truncate(next.len());
        live = next;
        rows.advance(step.state, &keep)?;
    }
    // Every source finishes: each step adds a token or ends the path, and
    // paths end at the limit.
    Ok(done.into_iter().flatten().collect())
}

fn finish_path(path: Path, eos: bool, norm: LengthNorm) -> Hypothesis {
    let len = path.tokens.len() + usize::from(eos);
    Hypothesis {
        score: norm.score(path.log_prob, len),
        log_prob: path.log_prob,
        eos,
        tokens: path.tokens,
        attention: path.attention,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_len_is_linear_in_the_source_length_and_at_least_one() {
        assert_eq!(MaxLen { a: 1.5, b: 2 }.for_source(3), 6);
        assert_eq!(MaxLen::absolute(7).for_source(100), 7);
        assert_eq!(MaxLen::absolute(0).for_source(5), 1);
        assert_eq!(
            MaxLen { a: 1e300, b: 5 }.for_source(9),
            usize::MAX,
            "saturates"
        );
    }

    #[test]
    fn length_norms_follow_their_formulas() {
        assert_eq!(LengthNorm::None.score(-3.0, 4), -3.0);
        assert_eq!(LengthNorm::Average.score(-3.0, 4), -0.75);
        let g = LengthNorm::Gnmt { alpha: 0.6 }.score(-3.0, 4);
        assert!((g - -3.0 / 1.5f64.powf(0.6)).abs() < 1e-12);
        assert_eq!(LengthNorm::Gnmt { alpha: 0.0 }.score(-3.0, 4), -3.0);
    }

    #[test]
    fn bad_options_are_typed_errors() {
        let ok = BeamOptions::default();
        assert_eq!(ok.validate(), Ok(()));
        let bad = |o: BeamOptions| o.validate().unwrap_err();
        assert_eq!(
            bad(BeamOptions { width: 0, ..ok }),
            DecodeError::Width { value: 0 }
        );
        assert_eq!(
            bad(BeamOptions {
                width: MAX_WIDTH + 1,
                ..ok
            }),
            DecodeError::Width {
                value: MAX_WIDTH + 1
            }
        );
        let nan = bad(BeamOptions {
            max_len: MaxLen { a: f64::NAN, b: 1 },
            ..ok
        });
        assert!(matches!(nan, DecodeError::MaxLenA { value } if value.is_nan()));
        assert_eq!(
            bad(BeamOptions {
                length_normalization: LengthNorm::Gnmt { alpha: -1.0 },
                ..ok
            }),
            DecodeError::Alpha { value: -1.0 }
        );
        assert_eq!(
            DecodeError::Width { value: 0 }.to_string(),
            format!("beam width must be between 1 and {MAX_WIDTH}, got 0")
        );
    }

    #[test]
    fn candidates_rank_by_score_then_token_then_beam() {
        let c = |log_prob, token, beam| Candidate {
            log_prob,
            token,
            beam,
        };
        let mut v = [c(-1.0, 3, 0), c(-0.5, 9, 1), c(-1.0, 3, 1), c(-1.0, 2, 1)];
        v.sort_by(rank);
        let order: Vec<(u32, usize)> = v.iter().map(|c| (c.token, c.beam)).collect();
        assert_eq!(order, [(9, 1), (2, 1), (3, 0), (3, 1)]);
    }
}
