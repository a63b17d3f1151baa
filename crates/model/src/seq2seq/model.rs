//! The [`Seq2Seq`] model: construction, the training and evaluation passes over
//! a padded batch, and the encode / decode-step building blocks of decoding.

use recurrent_kernels::profile::Phase;
use recurrent_kernels::{MatMut, MatRef, Rng};
use recurrent_nn::attention::AttentionParams;
use recurrent_nn::{linear, PackedLayer};

use super::config::{Seq2SeqConfig, Seq2SeqError};
use super::decoder::{
    check_rows, gather_rows, DecoderState, DeferredGrads, StepCache, StepGrads, StepInput,
    StepScratch,
};
use super::encoder::{EncoderCache, Sources};
use super::layout::{disjoint_mut, layout, Slots};
use super::loss::masked_cross_entropy;
use crate::params::MissingOrMisshapen;
use crate::params::ParamLayout;

pub(crate) fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// An encoder-decoder model with attention: configuration, layout, parameters.
#[derive(Clone, Debug)]
pub struct Seq2Seq {
    /// The architecture.
    pub config: Seq2SeqConfig,
    /// Where each named tensor lives in `params`.
    pub layout: ParamLayout,
    /// Every parameter, in `layout` order.
    pub params: Vec<f32>,
    pub(crate) slots: Slots,
}

/// A padded batch of sentence pairs. Both sides are **batch-major** and
/// right-padded: row `b` of `src: [B, S_w]` holds the source's `src_lens[b]`
/// tokens then anything (padding is never read), and row `b` of
/// `tgt: [B, T_w]` holds `BOS y_1 … y_n EOS` then anything, with
/// `tgt_lens[b] = n + 2` counting BOS and EOS.
///
/// The decoder reads `tgt[b, 0 .. len-1]` (teacher forcing) and predicts
/// `tgt[b, 1 .. len]`: `tgt_lens[b] - 1` predictions per pair, the last one
/// EOS. The model never needs to know the BOS and EOS ids.
#[derive(Clone, Copy, Debug)]
pub struct Seq2SeqBatch<'a> {
    /// `[B, S_w]` source tokens, batch-major, right-padded.
    pub src: &'a [u32],
    /// `[B]` source lengths.
    pub src_lens: &'a [usize],
    /// `[B, T_w]` targets `BOS y_1 … y_n EOS`, right-padded.
    pub tgt: &'a [u32],
    /// `[B]` target lengths, BOS and EOS included.
    pub tgt_lens: &'a [usize],
}

/// What a step that is not teacher-forced feeds back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FeedMode {
    /// The most likely token of the previous step's prediction.
    #[default]
    Argmax,
    /// A token sampled from the previous step's softmax (drawn from the batch's rng).
    Sample,
}

/// Options of one training pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainOptions {
    /// Probability that a step reads the gold previous token. Drawn per pair
    /// and step `t >= 1` from the rng (no draw when it is exactly 0 or 1):
    /// `1` is pure teacher forcing, `0` always feeds the model's own previous
    /// prediction (chosen by `feed`). The first step always reads BOS, and no
    /// gradient flows through a fed-back choice.
    pub teacher_forcing: f32,
    /// What a step that is not teacher-forced reads.
    pub feed: FeedMode,
    /// Label smoothing `ε` in `[0, 1)`: the target distribution is
    /// `(1-ε)·onehot + ε/V`, as PyTorch's `cross_entropy(label_smoothing=ε)`.
    pub label_smoothing: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            teacher_forcing: 1.0,
            feed: FeedMode::Argmax,
            label_smoothing: 0.0,
        }
    }
}

/// Loss statistics of one batch, over its real target tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Seq2SeqStats {
    /// Mean training objective per target token (label-smoothed when asked).
    pub loss: f64,
    /// Mean cross-entropy (negative log-likelihood) per target token, in nats.
    pub nll: f64,
    /// Target tokens predicted (padding excluded).
    pub tokens: usize,
    /// Of those, how many had the target as their argmax.
    pub correct: usize,
}

/// The encoder's results for a batch of sources: what every decoder step reads.
///
/// `S` is the longest source of the batch; everything is in batch order, and
/// hypotheses of a beam are rows too: [`EncoderOutput::select`] repeats rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EncoderOutput {
    /// Rows `B` (sources, or hypotheses of a beam).
    pub batch: usize,
    /// `S`, the longest source length.
    pub src_len: usize,
    /// `[B]` source lengths.
    pub lens: Vec<usize>,
    /// `[B, S, H]` top-layer encoder outputs (directions concatenated), batch-major;
    /// zeros at padded positions.
    pub keys: Vec<f32>,
    /// `[B, S, A]` the additive scorer's key projection (empty for other scorings).
    pub proj: Vec<f32>,
    /// `[B, S]` 1 for real source positions, 0 for padding.
    pub mask: Vec<f32>,
    /// `[L, B, H]` each layer's state after the sequence's own last token
    /// (a bidirectional layer: `[forward; backward]`, the backward direction's
    /// state after reading back to the first token).
    pub final_h: Vec<f32>,
    /// `[L, B, H]` the same for the LSTM cell state; empty for other cells.
    pub final_c: Vec<f32>,
}

impl EncoderOutput {
    /// A new output whose row `i` is row `rows[i]` of this one (rows may
    /// repeat): e.g. `[0,0,0,1,1,1]` expands two sources to beams of three.
    pub fn select(&self, rows: &[usize]) -> Result<EncoderOutput, Seq2SeqError> {
        check_rows(rows, self.batch, "encoder output")?;
        let (b, s) = (self.batch, self.src_len);
        let h = self.keys.len() / (b * s).max(1);
        let a = self.proj.len() / (b * s).max(1);
        Ok(EncoderOutput {
            batch: rows.len(),
            src_len: s,
            lens: rows.iter().map(|&r| self.lens[r]).collect(),
            keys: gather_rows(&self.keys, b, s * h, rows),
            proj: gather_rows(&self.proj, b, s * a, rows),
            mask: gather_rows(&self.mask, b, s, rows),
            final_h: gather_rows(&self.final_h, b, h, rows),
            final_c: gather_rows(&self.final_c, b, h, rows),
        })
    }
}

/// A seq2seq model's decoder weights packed once for the many steps of a
/// decoding ([`Seq2Seq::pack_decoder`]).
pub struct PackedDecoder {
    layers: Vec<PackedLayer>,
}

/// One decoding step's results.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeStep {
    /// `[B, V]` next-token logits.
    pub logits: Vec<f32>,
    /// `[B, S]` the attention weights over the source (0 at padding).
    pub attention: Vec<f32>,
    /// The state to pass to the next step.
    pub state: DecoderState,
}

/// Buffers of the training and evaluation passes, allocated on first use and
/// reused, so a training loop allocates little per batch.
#[derive(Default)]
pub struct Seq2SeqWorkspace {
    enc_cache: EncoderCache,
    enc: EncoderOutput,
    init: DecoderState,
    steps: Vec<StepCache>,
    /// Decoder steps and batch size of the last pass.
    t: usize,
    b: usize,
    /// `[T*B, H]` every step's `out` (the generator's input), and its gradient.
    outs: Vec<f32>,
    d_outs: Vec<f32>,
    logits: Vec<f32>,
    dlogits: Vec<f32>,
    targets: Vec<u32>,
    valid: Vec<bool>,
    row_nll: Vec<f64>,
    scratch: StepScratch,
    d_out: Vec<f32>,
    d_feed: Vec<f32>,
    dh: Vec<f32>,
    dc: Vec<f32>,
    dkeys: Vec<f32>,
    dproj: Vec<f32>,
    dfin_h: Vec<f32>,
    dfin_c: Vec<f32>,
    /// The decoder layers' weights, packed once per pass.
    dec_packed: Vec<PackedLayer>,
    /// The decoder layers' weight-gradient parts, gathered over the steps.
    deferred: Vec<DeferredGrads>,
    grad_scratch: Vec<f32>,
}

impl Seq2SeqWorkspace {
    /// The tokens the decoder read in the last pass, time-major `[T, B]`
    /// (`T` = longest target length − 1): row 0 is BOS; a teacher-forced step
    /// shows the gold token, another the model's own choice; steps past a
    /// pair's end (padding) show 0.
    pub fn fed_tokens(&self) -> Vec<u32> {
        self.steps[..self.t]
            .iter()
            .flat_map(|s| s.tokens.iter().copied())
            .collect()
    }

    /// The logits of the last pass, `[T, B, V]` time-major.
    ///
    /// # Panics
    /// If `v` is larger than the target vocabulary of the model that ran the pass.
    pub fn logits(&self, v: usize) -> &[f32] {
        &self.logits[..self.t * self.b * v]
    }
}

/// Draws from `N(0, 1)` (Box–Muller).
fn normal(rng: &mut Rng) -> f32 {
    let u1 = 1.0 - rng.next_f64(); // (0, 1]
    let u2 = rng.next_f64();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Index of the largest value (the first of ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &z) in row.iter().enumerate() {
        if z > row[best] {
            best = j;
        }
    }
    best
}

/// A token drawn from `softmax(row)`.
fn sample(row: &[f32], rng: &mut Rng) -> usize {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f64 = row.iter().map(|&z| ((z - max) as f64).exp()).sum();
    let mut u = rng.next_f64() * total;
    for (j, &z) in row.iter().enumerate() {
        u -= ((z - max) as f64).exp();
        if u <= 0.0 {
            return j;
        }
    }
    row.len() - 1
}

/// The validated shape of a batch.
struct Shape {
    b: usize,
    src_w: usize,
    tgt_w: usize,
    /// Decoder steps: longest target length − 1.
    t: usize,
}

impl Seq2Seq {
    /// A freshly initialized model with PyTorch's default initialization:
    /// embeddings `N(0, 1)`, recurrent tensors `U(±1/√hidden)` (the direction's
    /// hidden width), every linear map's weight and bias `U(±1/√fan_in)`.
    pub fn new(config: Seq2SeqConfig, rng: &mut Rng) -> Result<Self, Seq2SeqError> {
        config.validate()?;
        let layout = layout(&config);
        let mut params = vec![0.0; layout.total];
        for e in &layout.entries {
            let dst = &mut params[e.range()];
            if e.name.ends_with("embedding.weight") {
                dst.iter_mut().for_each(|p| *p = normal(rng));
                continue;
            }
            let fan_in = if e.name.starts_with("encoder.rnn.") {
                config.enc_hidden()
            } else if e.name.starts_with("decoder.rnn.") {
                config.hidden
            } else {
                // A linear map: the input width of its weight.
                let w = e.name.replace(".bias", ".weight");
                layout.get(&w).map_or(config.hidden, |w| w.shape[1])
            };
            let bound = 1.0 / (fan_in as f32).sqrt();
            dst.iter_mut().for_each(|p| *p = rng.uniform(-bound, bound));
        }
        Ok(Self::assemble(config, layout, params))
    }

    fn assemble(config: Seq2SeqConfig, layout: ParamLayout, params: Vec<f32>) -> Self {
        let slots = Slots::new(&config, &layout);
        Seq2Seq {
            config,
            layout,
            params,
            slots,
        }
    }

    /// A model from named tensors (e.g. read from safetensors): every tensor of the
    /// architecture must be present with its exact shape, and no other.
    pub fn from_tensors(
        config: Seq2SeqConfig,
        tensors: &[(String, Vec<usize>, Vec<f32>)],
    ) -> Result<Self, Seq2SeqError> {
        config.validate()?;
        let layout = layout(&config);
        let params = layout.gather(tensors).map_err(|e| match e {
            MissingOrMisshapen::Missing(name) => Seq2SeqError::MissingTensor(name),
            MissingOrMisshapen::Shape {
                name,
                expected,
                found,
            } => Seq2SeqError::ShapeMismatch {
                name,
                expected,
                found,
            },
        })?;
        if let Some((name, _, _)) = tensors.iter().find(|(n, _, _)| layout.get(n).is_none()) {
            return Err(Seq2SeqError::UnexpectedTensor(name.clone()));
        }
        Ok(Self::assemble(config, layout, params))
    }

    /// Every parameter as a named tensor, in layout order (tied and shared
    /// tensors appear once, under the name that owns them).
    pub fn to_tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        self.layout
            .entries
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    e.shape.clone(),
                    self.params[e.range()].to_vec(),
                )
            })
            .collect()
    }

    /// Number of trainable parameters (tied and shared matrices count once).
    pub fn num_params(&self) -> usize {
        self.layout.total
    }

    pub(crate) fn attn_params(&self) -> AttentionParams<'_> {
        let [a, b, c, d, e] = self.slots.attn.clone().map(|r| &self.params[r]);
        AttentionParams {
            linear_in: a,
            query: b,
            key: c,
            key_bias: d,
            v: e,
        }
    }

    /// Checks a batch of sources (`[B, width]` and lengths) against the model.
    fn check_src(&self, src: &[u32], lens: &[usize]) -> Result<usize, Seq2SeqError> {
        let bad = |m: String| Err(Seq2SeqError::Batch(m));
        let b = lens.len();
        if b == 0 {
            return bad("the batch is empty".into());
        }
        if !src.len().is_multiple_of(b) {
            return bad(format!(
                "{} source tokens do not split into {b} equal rows",
                src.len()
            ));
        }
        let w = src.len() / b;
        for (r, &len) in lens.iter().enumerate() {
            if len == 0 || len > w {
                return bad(format!(
                    "source {r} has length {len}; lengths must be in 1..={w} (the padded width)"
                ));
            }
            if let Some(&tok) = src[r * w..r * w + len]
                .iter()
                .find(|&&t| t as usize >= self.config.src_vocab)
            {
                return bad(format!(
                    "source {r} has token {tok}, outside the source vocabulary of {}",
                    self.config.src_vocab
                ));
            }
        }
        Ok(w)
    }

    fn check_batch(&self, batch: &Seq2SeqBatch<'_>) -> Result<Shape, Seq2SeqError> {
        let bad = |m: String| Err(Seq2SeqError::Batch(m));
        let src_w = self.check_src(batch.src, batch.src_lens)?;
        let b = batch.src_lens.len();
        if batch.tgt_lens.len() != b {
            return bad(format!(
                "{b} source lengths but {} target lengths",
                batch.tgt_lens.len()
            ));
        }
        if !batch.tgt.len().is_multiple_of(b) {
            return bad(format!(
                "{} target tokens do not split into {b} equal rows",
                batch.tgt.len()
            ));
        }
        let tgt_w = batch.tgt.len() / b;
        for (r, &len) in batch.tgt_lens.iter().enumerate() {
            if len < 2 || len > tgt_w {
                return bad(format!(
                    "target {r} has length {len}; lengths count BOS and EOS and must be in 2..={tgt_w}"
                ));
            }
            if let Some(&tok) = batch.tgt[r * tgt_w..r * tgt_w + len]
                .iter()
                .find(|&&t| t as usize >= self.config.tgt_vocab)
            {
                return bad(format!(
                    "target {r} has token {tok}, outside the target vocabulary of {}",
                    self.config.tgt_vocab
                ));
            }
        }
        let t = batch.tgt_lens.iter().max().copied().unwrap_or(2) - 1;
        Ok(Shape { b, src_w, tgt_w, t })
    }

    /// Encodes a batch of sources: `src: [B, width]` batch-major, right-padded,
    /// with `src_lens` (each in `1..=width`).
    pub fn encode(&self, src: &[u32], src_lens: &[usize]) -> Result<EncoderOutput, Seq2SeqError> {
        let w = self.check_src(src, src_lens)?;
        let mut out = EncoderOutput::default();
        let mut ec = EncoderCache::default();
        let src = Sources {
            tokens: src,
            width: w,
            lens: src_lens,
        };
        self.encode_forward(&mut ec, &mut out, src, None, false);
        Ok(out)
    }

    /// The decoder state before the first step (the bridge over the encoder's
    /// final states; a zero feed).
    ///
    /// # Errors
    /// [`Seq2SeqError::Shape`] when `enc` is not an encoder output of this
    /// model (its buffers do not hold `enc.batch` rows of its widths).
    pub fn initial_state(&self, enc: &EncoderOutput) -> Result<DecoderState, Seq2SeqError> {
        self.check_encoder_output(enc)?;
        Ok(self.bridge_forward(enc))
    }

    /// Checks that every buffer of `enc` holds `enc.batch` rows of this
    /// model's widths (its fields are public, so a caller may have built it).
    fn check_encoder_output(&self, enc: &EncoderOutput) -> Result<(), Seq2SeqError> {
        let cfg = &self.config;
        let (b, s, h) = (enc.batch, enc.src_len, cfg.hidden);
        let lstm = cfg.cell.has_cell_state();
        let proj = cfg.attention_layer().proj_size();
        let sizes = [
            ("encoder output lens", b, enc.lens.len()),
            ("encoder output mask", b * s, enc.mask.len()),
            ("encoder output keys", b * s * h, enc.keys.len()),
            ("encoder output proj", b * s * proj, enc.proj.len()),
            (
                "encoder output final_h",
                cfg.layers * b * h,
                enc.final_h.len(),
            ),
            (
                "encoder output final_c",
                if lstm { cfg.layers * b * h } else { 0 },
                enc.final_c.len(),
            ),
        ];
        for (what, expected, got) in sizes {
            if got != expected {
                return Err(Seq2SeqError::Shape {
                    what,
                    expected,
                    got,
                });
            }
        }
        if let Some((r, &len)) = enc.lens.iter().enumerate().find(|(_, &l)| l == 0 || l > s) {
            return Err(Seq2SeqError::Batch(format!(
                "encoder output row {r} has length {len}; lengths must be in 1..={s}"
            )));
        }
        Ok(())
    }

    /// One decoding step: feeds `prev: [B]` (BOS at the first step) from
    /// `state` over `enc` (both `B` rows), and returns the next-token logits,
    /// the attention weights and the new state. No dropout. Packs the
    /// decoder's weights for this one step: a decoding loop should pack them
    /// once ([`Seq2Seq::pack_decoder`]) and call [`Seq2Seq::decode_step_packed`].
    ///
    /// # Errors
    /// [`Seq2SeqError::Shape`] when `enc` or `state` does not hold `B` rows of
    /// this model, [`Seq2SeqError::Batch`] when a token is outside the target
    /// vocabulary.
    pub fn decode_step(
        &self,
        enc: &EncoderOutput,
        state: &DecoderState,
        prev: &[u32],
    ) -> Result<DecodeStep, Seq2SeqError> {
        self.decode_step_packed(&self.pack_decoder(), enc, state, prev)
    }

    /// The decoder's recurrent weights packed for [`Seq2Seq::decode_step_packed`].
    /// The pack holds a copy of the weights as they are now: make a new one
    /// after changing `params`.
    pub fn pack_decoder(&self) -> PackedDecoder {
        let mut layers = Vec::new();
        self.pack_decoder_layers(&mut layers, false);
        PackedDecoder { layers }
    }

    /// [`Seq2Seq::decode_step`] with the weights packed beforehand.
    ///
    /// # Errors
    /// As [`Seq2Seq::decode_step`], and [`Seq2SeqError::Batch`] when `packed`
    /// has another number of layers than this model.
    pub fn decode_step_packed(
        &self,
        packed: &PackedDecoder,
        enc: &EncoderOutput,
        state: &DecoderState,
        prev: &[u32],
    ) -> Result<DecodeStep, Seq2SeqError> {
        if packed.layers.len() != self.config.layers {
            return Err(Seq2SeqError::Batch(format!(
                "the packed decoder has {} layers, this model {}",
                packed.layers.len(),
                self.config.layers
            )));
        }
        self.check_encoder_output(enc)?;
        let b = prev.len();
        let (h, l) = (self.config.hidden, self.config.layers);
        let lstm = self.config.cell.has_cell_state();
        let feed = if self.config.input_feeding { b * h } else { 0 };
        let sizes = [
            ("encoder output rows", b, enc.batch),
            ("state.batch", b, state.batch),
            ("state.h", l * b * h, state.h.len()),
            ("state.c", if lstm { l * b * h } else { 0 }, state.c.len()),
            ("state.feed", feed, state.feed.len()),
        ];
        for (what, expected, got) in sizes {
            if got != expected {
                return Err(Seq2SeqError::Shape {
                    what,
                    expected,
                    got,
                });
            }
        }
        if let Some(&tok) = prev.iter().find(|&&t| t as usize >= self.config.tgt_vocab) {
            return Err(Seq2SeqError::Batch(format!(
                "token {tok} is outside the target vocabulary of {}",
                self.config.tgt_vocab
            )));
        }
        let mut sc = StepCache::default();
        let input = StepInput {
            tokens: prev,
            ..self.state_input(state)
        };
        self.step_forward(&packed.layers, enc, &input, None, &mut sc, false);
        let mut logits = vec![0.0; b * self.config.tgt_vocab];
        self.generate(&sc.out[..b * h], &mut logits, b);
        Ok(DecodeStep {
            logits,
            attention: sc.attn.weights().to_vec(),
            state: self.state_after(&sc, b),
        })
    }

    /// Greedy decoding of a batch of sources, built from [`Seq2Seq::encode`]
    /// and [`Seq2Seq::decode_step`]: each output stops before its first `eos`
    /// or after `max_len` tokens (BOS and EOS are not included).
    pub fn greedy(
        &self,
        src: &[u32],
        src_lens: &[usize],
        bos: u32,
        eos: u32,
        max_len: usize,
    ) -> Result<Vec<Vec<u32>>, Seq2SeqError> {
        let v = self.config.tgt_vocab;
        if let Some(t) = [bos, eos].into_iter().find(|&t| t as usize >= v) {
            return Err(Seq2SeqError::Batch(format!(
                "BOS/EOS id {t} is outside the target vocabulary of {v}"
            )));
        }
        let enc = self.encode(src, src_lens)?;
        let b = enc.batch;
        let mut state = self.initial_state(&enc)?;
        let packed = self.pack_decoder();
        let mut prev = vec![bos; b];
        let mut out = vec![Vec::new(); b];
        let mut done = vec![false; b];
        for _ in 0..max_len {
            let step = self.decode_step_packed(&packed, &enc, &state, &prev)?;
            for r in 0..b {
                let tok = argmax(&step.logits[r * v..(r + 1) * v]) as u32;
                if !done[r] {
                    if tok == eos {
                        done[r] = true;
                    } else {
                        out[r].push(tok);
                    }
                }
                prev[r] = tok;
            }
            if done.iter().all(|&d| d) {
                break;
            }
            state = step.state;
        }
        Ok(out)
    }

    /// `logits: [B, V] = out · W_genᵀ + b_gen`.
    fn generate(&self, out: &[f32], logits: &mut [f32], b: usize) {
        let _ph = Phase::new("s2s.gen_fwd");
        let (h, v) = (self.config.hidden, self.config.tgt_vocab);
        linear::forward(
            MatRef::new(out, b, h),
            MatRef::new(&self.params[self.slots.generator.w.clone()], v, h),
            &self.params[self.slots.generator.b.clone()],
            MatMut::new(logits, b, v),
        );
    }

    /// The forward pass over a checked batch: encoder, bridge and every decoder
    /// step, leaving logits, targets and the validity mask in `ws`. With `rng`,
    /// dropout is applied (if configured) and teacher forcing follows `opts`;
    /// without, every step is teacher-forced and there is no dropout.
    fn forward(
        &self,
        ws: &mut Seq2SeqWorkspace,
        batch: &Seq2SeqBatch<'_>,
        shape: &Shape,
        opts: &TrainOptions,
        mut rng: Option<&mut Rng>,
        for_backward: bool,
    ) {
        let cfg = &self.config;
        let (b, t_max, v) = (shape.b, shape.t, cfg.tgt_vocab);
        let use_drop = cfg.dropout > 0.0 && rng.is_some();
        let Seq2SeqWorkspace {
            enc_cache,
            enc,
            init,
            steps,
            outs,
            logits,
            targets,
            valid,
            dec_packed,
            ..
        } = ws;
        fn drop<'a>(on: bool, r: &'a mut Option<&mut Rng>) -> Option<&'a mut Rng> {
            r.as_deref_mut().filter(|_| on)
        }
        let src = Sources {
            tokens: batch.src,
            width: shape.src_w,
            lens: batch.src_lens,
        };
        self.encode_forward(enc_cache, enc, src, drop(use_drop, &mut rng), for_backward);
        *init = self.bridge_forward(enc);
        self.pack_decoder_layers(dec_packed, for_backward);
        if steps.len() < t_max {
            steps.resize_with(t_max, StepCache::default);
        }
        let h = cfg.hidden;
        grow(logits, t_max * b * v);
        grow(outs, t_max * b * h);
        targets.clear();
        valid.clear();
        let mut tokens = vec![0u32; b];
        let ratio = opts.teacher_forcing;
        // Only a step that may feed back a prediction needs the logits before the
        // next step; otherwise the generator runs once over all steps (one large
        // product instead of T small ones).
        let per_step = rng.is_some() && ratio < 1.0;
        for t in 0..t_max {
            // Step t reads y_{t-1} and predicts tgt[b, t+1] while t + 1 < len.
            for r in 0..b {
                let len = batch.tgt_lens[r];
                let gold = batch.tgt[r * shape.tgt_w + t];
                let live = t + 1 < len;
                let forced = match rng.as_deref_mut() {
                    _ if t == 0 || !live => true,
                    None => true,
                    Some(_) if ratio >= 1.0 => true,
                    Some(_) if ratio <= 0.0 => false,
                    Some(g) => g.next_f32() < ratio,
                };
                tokens[r] = if !live {
                    0 // padding: any valid id; its step is masked out
                } else if forced {
                    gold
                } else {
                    let row = &logits[((t - 1) * b + r) * v..((t - 1) * b + r + 1) * v];
                    match opts.feed {
                        FeedMode::Argmax => argmax(row) as u32,
                        FeedMode::Sample => sample(row, rng.as_deref_mut().unwrap()) as u32,
                    }
                };
                targets.push(if live {
                    batch.tgt[r * shape.tgt_w + t + 1]
                } else {
                    0
                });
                valid.push(live);
            }
            let (done, rest) = steps.split_at_mut(t);
            let input: StepInput<'_> = match done.last() {
                None => self.state_input(init),
                Some(prev) => self.next_input(prev, b),
            };
            let sc = &mut rest[0];
            let input = StepInput {
                tokens: &tokens,
                ..input
            };
            let step_rng = drop(use_drop, &mut rng);
            self.step_forward(dec_packed, enc, &input, step_rng, sc, for_backward);
            let out = &mut outs[t * b * h..(t + 1) * b * h];
            out.copy_from_slice(&sc.out[..b * h]);
            if per_step {
                self.generate(out, &mut logits[t * b * v..(t + 1) * b * v], b);
            }
        }
        if !per_step {
            self.generate(&outs[..t_max * b * h], logits, t_max * b);
        }
        ws.t = t_max;
        ws.b = b;
    }

    /// Backward of [`Seq2Seq::forward`] from `ws.dlogits`: every gradient into `grads`.
    fn backward(&self, ws: &mut Seq2SeqWorkspace, grads: &mut [f32]) {
        let cfg = &self.config;
        let (b, t_max) = (ws.b, ws.t);
        let (h, v, l) = (cfg.hidden, cfg.tgt_vocab, cfg.layers);
        let (s, bh) = (ws.enc.src_len, b * h);
        let att = cfg.attention_layer();
        let Seq2SeqWorkspace {
            enc_cache,
            enc,
            init,
            steps,
            outs,
            d_outs,
            dlogits,
            scratch,
            d_out,
            d_feed,
            dh,
            dc,
            dkeys,
            dproj,
            dfin_h,
            dfin_c,
            dec_packed,
            deferred,
            grad_scratch,
            ..
        } = ws;
        self.prepare_deferred(deferred, t_max * b);
        let zero = |buf: &mut Vec<f32>, n: usize| {
            buf.clear();
            buf.resize(n, 0.0);
        };
        zero(d_out, bh);
        zero(d_feed, bh);
        zero(dh, l * bh);
        zero(dc, l * bh);
        zero(dkeys, b * s * h);
        zero(dproj, b * s * att.proj_size());
        // logits = outs · W_genᵀ + b over all steps at once  →  d outs = dlogits · W_gen
        {
            let _ph = Phase::new("s2s.gen_bwd");
            let n = t_max * b;
            grow(d_outs, n * h);
            let gs = &self.slots.generator;
            let [gw, gb] = disjoint_mut(grads, [gs.w.clone(), gs.b.clone()]);
            linear::backward(
                MatRef::new(&outs[..n * h], n, h),
                MatRef::new(&self.params[gs.w.clone()], v, h),
                MatRef::new(&dlogits[..n * v], n, v),
                gw,
                gb,
                Some(&mut d_outs[..n * h]),
            );
        }
        for t in (0..t_max).rev() {
            let sc = &mut steps[t];
            // A step's out feeds the generator and (input feeding) the next step.
            d_out.copy_from_slice(&d_outs[t * bh..(t + 1) * bh]);
            if cfg.input_feeding && t + 1 < t_max {
                for (d, &f) in d_out.iter_mut().zip(&*d_feed) {
                    *d += f;
                }
            }
            let bufs = StepGrads {
                d_out,
                dh,
                dc,
                d_feed,
                dkeys,
                dproj,
                scratch,
            };
            self.step_backward(dec_packed, (deferred, t), enc, sc, bufs, grads);
        }
        self.decoder_weight_grads(deferred, t_max * b, grad_scratch, grads);
        grow(dfin_h, enc.final_h.len());
        grow(dfin_c, enc.final_c.len());
        self.bridge_backward(enc, init, dh, dc, [dfin_h, dfin_c], grads);
        {
            let [a0, a1, a2, a3, a4] = disjoint_mut(grads, self.slots.attn.clone());
            let mut ga = recurrent_nn::attention::AttentionGrads {
                linear_in: a0,
                query: a1,
                key: a2,
                key_bias: a3,
                v: a4,
            };
            att.project_keys_backward(self.attn_params(), &mut ga, &enc.keys, dproj, b * s, dkeys);
        }
        self.encode_backward(enc_cache, dkeys, dfin_h, dfin_c, grads);
    }

    /// Loss sums of the logits in `ws` (and `dlogits` scaled by `scale` when asked).
    fn loss(&self, ws: &mut Seq2SeqWorkspace, smoothing: f32, with_grad: bool) -> Seq2SeqStats {
        let _ph = Phase::new("s2s.loss");
        let v = self.config.tgt_vocab;
        let n = ws.t * ws.b;
        let tokens = ws.valid.iter().filter(|&&x| x).count();
        let scale = 1.0 / tokens.max(1) as f32;
        let dl = if with_grad {
            grow(&mut ws.dlogits, n * v);
            Some(&mut ws.dlogits[..n * v])
        } else {
            None
        };
        let sums = masked_cross_entropy(
            MatRef::new(&ws.logits[..n * v], n, v),
            &ws.targets,
            &ws.valid,
            smoothing,
            dl,
            scale,
            None,
        );
        let per = 1.0 / sums.tokens.max(1) as f64;
        Seq2SeqStats {
            loss: sums.loss * per,
            nll: sums.nll * per,
            tokens: sums.tokens,
            correct: sums.correct,
        }
    }

    fn check_options(opts: &TrainOptions) -> Result<(), Seq2SeqError> {
        if !(0.0..=1.0).contains(&opts.teacher_forcing) {
            return Err(Seq2SeqError::Options(format!(
                "the teacher forcing ratio must be in [0, 1], got {}",
                opts.teacher_forcing
            )));
        }
        if !(0.0..1.0).contains(&opts.label_smoothing) {
            return Err(Seq2SeqError::Options(format!(
                "label smoothing must be in [0, 1), got {}",
                opts.label_smoothing
            )));
        }
        Ok(())
    }

    /// One training pass over a padded batch: forward (with dropout and the
    /// teacher forcing of `opts`, both drawn from `rng`), the mean loss over the
    /// real target tokens, and backward. *Adds* the gradient of that mean loss
    /// into `grads` (same layout as `params`).
    pub fn train_batch(
        &self,
        ws: &mut Seq2SeqWorkspace,
        batch: &Seq2SeqBatch<'_>,
        opts: &TrainOptions,
        rng: &mut Rng,
        grads: &mut [f32],
    ) -> Result<Seq2SeqStats, Seq2SeqError> {
        Self::check_options(opts)?;
        let shape = self.check_batch(batch)?;
        if grads.len() != self.params.len() {
            return Err(Seq2SeqError::Batch(format!(
                "the gradient buffer has {} values for {} parameters",
                grads.len(),
                self.params.len()
            )));
        }
        self.forward(ws, batch, &shape, opts, Some(rng), true);
        let stats = self.loss(ws, opts.label_smoothing, true);
        self.backward(ws, grads);
        Ok(stats)
    }

    /// The loss of a batch in evaluation mode: teacher-forced, no dropout.
    pub fn evaluate(
        &self,
        ws: &mut Seq2SeqWorkspace,
        batch: &Seq2SeqBatch<'_>,
        label_smoothing: f32,
    ) -> Result<Seq2SeqStats, Seq2SeqError> {
        Self::check_options(&TrainOptions {
            label_smoothing,
            ..TrainOptions::default()
        })?;
        let shape = self.check_batch(batch)?;
        self.forward(ws, batch, &shape, &TrainOptions::default(), None, false);
        Ok(self.loss(ws, label_smoothing, false))
    }

    /// Each pair's total negative log-likelihood `-Σ log p(y_t | y_<t, x)` in
    /// nats (EOS included), teacher-forced without dropout: for rescoring.
    pub fn score(
        &self,
        ws: &mut Seq2SeqWorkspace,
        batch: &Seq2SeqBatch<'_>,
    ) -> Result<Vec<f64>, Seq2SeqError> {
        let shape = self.check_batch(batch)?;
        self.forward(ws, batch, &shape, &TrainOptions::default(), None, false);
        let (n, v) = (ws.t * ws.b, self.config.tgt_vocab);
        ws.row_nll.clear();
        ws.row_nll.resize(n, 0.0);
        masked_cross_entropy(
            MatRef::new(&ws.logits[..n * v], n, v),
            &ws.targets,
            &ws.valid,
            0.0,
            None,
            1.0,
            Some(&mut ws.row_nll),
        );
        let mut out = vec![0.0; shape.b];
        for (i, &x) in ws.row_nll.iter().enumerate() {
            out[i % shape.b] += x;
        }
        Ok(out)
    }
}
