//! The language model's forward and backward passes over a `[T, B]` block of
//! tokens, and single steps for generation.

use recurrent_kernels::panel::round_bf16;
use recurrent_kernels::profile::Phase;
use recurrent_kernels::Rng;
use recurrent_nn::ln_recurrent::{LnGrads, LnParams};
use recurrent_nn::recurrent::{LayerGrads, LayerParams};
use recurrent_nn::{
    activation_reg, dropout, embedding, linear, loss, CellKind, LayerCache, LnCache,
    LnRecurrentLayer, RecurrentLayer,
};
use serde::{Deserialize, Serialize};

use crate::config::{ModelConfig, ModelError};
use crate::params::{MissingOrMisshapen, ParamLayout};

/// A language model: its configuration, parameter layout and parameters.
#[derive(Clone, Debug)]
pub struct LanguageModel {
    pub config: ModelConfig,
    pub layout: ParamLayout,
    pub params: Vec<f32>,
}

/// Recurrent state carried between blocks: `h` (and `c` for LSTM), each
/// `[L, B, H]` (layer `k`'s `[B, H_k]` rows at `ModelConfig::state_range`).
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub batch: usize,
    pub h: Vec<f32>,
    pub c: Vec<f32>,
}

impl State {
    /// The zero state for `batch` streams.
    pub fn zeros(config: &ModelConfig, batch: usize) -> State {
        let n = config.state_len(batch);
        let c = if config.cell.has_cell_state() {
            vec![0.0; n]
        } else {
            Vec::new()
        };
        State {
            batch,
            h: vec![0.0; n],
            c,
        }
    }

    /// Zeroes the state of one stream (a new document starts there).
    pub fn reset_stream(&mut self, config: &ModelConfig, stream: usize) {
        for k in 0..config.layers {
            let h = config.layer_hidden(k);
            let start = config.state_range(k, self.batch).start + stream * h;
            let r = start..start + h;
            self.h[r.clone()].fill(0.0);
            if !self.c.is_empty() {
                self.c[r].fill(0.0);
            }
        }
    }
}

/// Loss statistics of one block.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BlockStats {
    /// Mean cross-entropy in nats per predicted token.
    pub loss: f64,
    /// Predictions whose argmax was the target.
    pub correct: usize,
    /// Predicted tokens.
    pub tokens: usize,
    /// The AR and TAR penalties added to the training loss (0 when off);
    /// `loss` stays the cross-entropy.
    pub ar: f64,
    pub tar: f64,
}

/// AWD-LSTM's training-time regularizers (Merity et al. 2017), all off (0) by
/// default. Evaluation and generation never apply them. Each dropout is a
/// probability in `[0, 1)`; survivors are scaled by `1/(1-p)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Regularization {
    /// Locked dropout on layer 0's input, one mask per stream and block (AWD's `dropouti`).
    pub dropout_input: f32,
    /// Locked dropout between recurrent layers (`dropouth`).
    pub dropout_hidden: f32,
    /// Locked dropout on the last layer's output (`dropout`).
    pub dropout_output: f32,
    /// Embedding dropout: whole words dropped for a block (`dropoute`).
    pub dropout_embed: f32,
    /// DropConnect on every `W_hh`, a new mask per block (`wdrop`).
    pub weight_drop: f32,
    /// AR: `alpha * mean(y²)` of the last layer's dropped-out output.
    pub alpha: f32,
    /// TAR: `beta * mean((h_t - h_{t-1})²)` of the last layer's raw output.
    pub beta: f32,
}

impl Regularization {
    /// Whether every regularizer is off.
    pub fn is_off(&self) -> bool {
        *self == Regularization::default()
    }

    /// Checks the ranges; messages name the settings.
    pub fn validate(&self) -> Result<(), ModelError> {
        for (name, p) in [
            ("dropout_input", self.dropout_input),
            ("dropout_hidden", self.dropout_hidden),
            ("dropout_output", self.dropout_output),
            ("dropout_embed", self.dropout_embed),
            ("weight_drop", self.weight_drop),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(ModelError::Regularization(format!(
                    "{name} must be in [0, 1), got {p}"
                )));
            }
        }
        for (name, x) in [("alpha", self.alpha), ("beta", self.beta)] {
            if !(x.is_finite() && x >= 0.0) {
                return Err(ModelError::Regularization(format!(
                    "{name} must be a finite number >= 0, got {x}"
                )));
            }
        }
        Ok(())
    }

    /// The locked dropout on the output of layer `k` of `layers`.
    fn locked_after(&self, k: usize, layers: usize) -> f32 {
        if k + 1 == layers {
            self.dropout_output
        } else {
            self.dropout_hidden
        }
    }
}

/// Buffers for one `(T, B)` shape, allocated on first use and reused, so the
/// training loop allocates nothing per step.
#[derive(Default)]
pub struct Workspace {
    /// Input of each layer `[T*B, I_k]` (embedding or one-hot for layer 0, the
    /// dropped-out output of the layer below for the others), and the input of the head.
    inputs: Vec<Vec<f32>>,
    masks: Vec<Vec<f32>>,
    caches: Vec<LayerCache>,
    /// The layers' caches instead of `caches` when the cells are layer-normalized.
    ln_caches: Vec<LnCache>,
    dense_out: Vec<f32>,
    logits: Vec<f32>,
    dlogits: Vec<f32>,
    dhead: Vec<f32>,
    dy: Vec<f32>,
    dx: Vec<f32>,
    dh0: Vec<f32>,
    dc0: Vec<f32>,
    /// The regularization the last forward applied, for its backward.
    reg: Regularization,
    /// Locked dropout masks `[B, W]`: layer 0's input, then each layer's output.
    locked: Vec<Vec<f32>>,
    /// Embedding dropout's mask per word, `[V]`.
    word_mask: Vec<f32>,
    /// Weight drop: each layer's dropped `W_hh` and its mask, and the gradient
    /// w.r.t. the dropped `W_hh` before it goes through the mask.
    w_hh_dropped: Vec<Vec<f32>>,
    w_hh_mask: Vec<Vec<f32>>,
    dw_hh_dropped: Vec<f32>,
    /// Whether the last forward fed layer 0 by table (see
    /// [`LanguageModel::input_table_pays`]); tests can turn the table off.
    table_input: bool,
    no_table: bool,
}

/// The layer `k` of a recurrent tensor's name (`rnn.weight_ih_l{k}` and the like).
fn rnn_layer_index(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("rnn.")?;
    rest.rsplit_once("_l")?.1.parse().ok()
}

fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// Layer `k`'s outputs `[T*B, H]` from whichever cache the last forward used.
fn layer_output<'a>(
    caches: &'a [LayerCache],
    ln_caches: &'a [LnCache],
    layer_norm: bool,
    k: usize,
    h: usize,
) -> &'a [f32] {
    if layer_norm {
        ln_caches[k].output(h)
    } else {
        caches[k].output(h)
    }
}

impl LanguageModel {
    /// A freshly initialized model: recurrent weights uniform in ±1/√H (PyTorch's
    /// default), embedding and output weights uniform in ±0.1 with a zero output
    /// bias (word_language_model's `init_weights`), the dense layer ±1/√fan_in.
    /// `forget_bias` sets the LSTM forget-gate bias (char-rnn uses 1).
    pub fn new(
        config: ModelConfig,
        rng: &mut Rng,
        forget_bias: Option<f32>,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        let layout = ParamLayout::new(&config);
        let mut params = vec![0.0; layout.total];
        for e in &layout.entries {
            let bound = if let Some(k) = rnn_layer_index(&e.name) {
                1.0 / (config.layer_hidden(k) as f32).sqrt()
            } else if e.name.starts_with("dense.") {
                1.0 / (config.top_hidden() as f32).sqrt()
            } else if e.name == "decoder.bias" {
                0.0
            } else {
                0.1
            };
            for p in &mut params[e.range()] {
                *p = rng.uniform(-bound, bound);
            }
        }
        for e in &layout.entries {
            // LayerNorm starts as the identity: gains 1, biases 0.
            if e.name.starts_with("rnn.ln_") {
                let one = if e.name.contains("_weight_") {
                    1.0
                } else {
                    0.0
                };
                params[e.range()].fill(one);
            }
        }
        let mut model = LanguageModel {
            config,
            layout,
            params,
        };
        if let (Some(fb), CellKind::Lstm) = (forget_bias, model.config.cell) {
            for k in 0..model.config.layers {
                let h = model.config.layer_hidden(k);
                // Rows h..2h are the forget gate; the two biases add, so put it all in one.
                let ih = model
                    .layout
                    .get(&format!("rnn.bias_ih_l{k}"))
                    .unwrap()
                    .range();
                let hh = model
                    .layout
                    .get(&format!("rnn.bias_hh_l{k}"))
                    .unwrap()
                    .range();
                model.params[ih][h..2 * h].fill(fb);
                model.params[hh][h..2 * h].fill(0.0);
            }
        }
        Ok(model)
    }

    /// A model from named tensors (as read from safetensors). Every tensor of the
    /// architecture must be present with its exact shape. For a tied model a
    /// `decoder.weight` equal in shape to `encoder.weight` is accepted and ignored.
    pub fn from_tensors(
        config: ModelConfig,
        tensors: &[(String, Vec<usize>, Vec<f32>)],
    ) -> Result<Self, ModelError> {
        config.validate()?;
        let layout = ParamLayout::new(&config);
        let params = layout.gather(tensors).map_err(|e| match e {
            MissingOrMisshapen::Missing(name) => ModelError::MissingTensor(name),
            MissingOrMisshapen::Shape {
                name,
                expected,
                found,
            } => ModelError::ShapeMismatch {
                name,
                expected,
                found,
            },
        })?;
        for (name, shape, _) in tensors {
            if layout.get(name).is_none() {
                let tied_copy = config.tie && name == "decoder.weight";
                if !tied_copy {
                    return Err(ModelError::UnexpectedTensor(name.clone()));
                }
                let expected = vec![config.vocab_size, config.embed];
                if *shape != expected {
                    return Err(ModelError::ShapeMismatch {
                        name: name.clone(),
                        expected,
                        found: shape.clone(),
                    });
                }
            }
        }
        Ok(LanguageModel {
            config,
            layout,
            params,
        })
    }

    /// All parameters as named tensors in PyTorch order. A tied model also lists
    /// `decoder.weight` (a copy of `encoder.weight`), as PyTorch's `state_dict` does.
    pub fn to_tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut out: Vec<_> = self
            .layout
            .entries
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    e.shape.clone(),
                    self.params[e.range()].to_vec(),
                )
            })
            .collect();
        if self.config.tie {
            let enc = self.layout.get("encoder.weight").unwrap();
            let at = out.len() - 1; // before decoder.bias
            out.insert(
                at,
                (
                    "decoder.weight".into(),
                    enc.shape.clone(),
                    self.params[enc.range()].to_vec(),
                ),
            );
        }
        out
    }

    /// Grows the vocabulary to `vocab_size` tokens for fine-tuning on text with
    /// new tokens: rows (and, for one-hot input, columns) of the old tokens keep
    /// their weights; the new ones are initialized as in [`LanguageModel::new`].
    pub fn extend_vocab(&mut self, vocab_size: usize, rng: &mut Rng) -> Result<(), ModelError> {
        let old = self.config.vocab_size;
        if vocab_size < old {
            return Err(ModelError::Config(format!(
                "cannot shrink the vocabulary from {old} to {vocab_size}"
            )));
        }
        let mut config = self.config.clone();
        config.vocab_size = vocab_size;
        let fresh = LanguageModel::new(config.clone(), rng, None)?;
        let mut params = fresh.params.clone();
        for e in &fresh.layout.entries {
            let src = &self.params[self.layout.get(&e.name).unwrap().range()];
            let dst = &mut params[e.range()];
            match (e.name.as_str(), e.shape.len()) {
                // Vocabulary rows: the old rows come first.
                ("encoder.weight" | "decoder.weight" | "decoder.bias", _) => {
                    dst[..src.len()].copy_from_slice(src)
                }
                // One-hot input: vocabulary columns of every row.
                ("rnn.weight_ih_l0", 2) if config.embed == 0 => {
                    for (d, s) in dst.chunks_exact_mut(vocab_size).zip(src.chunks_exact(old)) {
                        d[..old].copy_from_slice(s);
                    }
                }
                _ => dst.copy_from_slice(src),
            }
        }
        *self = LanguageModel {
            config,
            layout: fresh.layout,
            params,
        };
        Ok(())
    }

    /// Number of trainable parameters (a tied matrix counts once).
    pub fn num_params(&self) -> usize {
        self.layout.total
    }

    /// Whether layer 0 should take its input projection from a table of every
    /// embedding's projection (`[V, G*H]`, gathered per step) rather than one
    /// GEMM over the block's `n` embedding rows: when the vocabulary is
    /// smaller than the block (character models), and nothing changes the
    /// embedding rows on the way in (dropout on them, embedding or input
    /// dropout), which would make the inputs more than `V` distinct rows.
    fn input_table_pays(&self, n: usize, dropout: bool, reg: &Regularization) -> bool {
        let cfg = &self.config;
        cfg.embed > 0
            && !cfg.layer_norm
            && cfg.vocab_size <= n
            && !dropout
            && reg.dropout_embed == 0.0
            && reg.dropout_input == 0.0
    }

    /// Rounds every weight matrix (embedding, recurrent, dense, decoder) to
    /// the nearest bfloat16, keeping biases and layer-norm gains in `f32`:
    /// the model that generation with `--weights bf16` computes (see
    /// [`crate::infer::StepModel::with_format`]), here for evaluating it.
    pub fn round_weights_to_bf16(&mut self) {
        for e in self.layout.entries.iter().filter(|e| e.shape.len() >= 2) {
            for w in &mut self.params[e.range()] {
                *w = round_bf16(*w);
            }
        }
    }

    fn layer(&self, k: usize) -> RecurrentLayer {
        RecurrentLayer {
            cell: self.config.cell,
            input_size: self.config.layer_input(k),
            hidden_size: self.config.layer_hidden(k),
        }
    }

    fn layer_params(&self, k: usize) -> LayerParams<'_> {
        let get = |n: String| &self.params[self.layout.get(&n).unwrap().range()];
        LayerParams {
            w_ih: get(format!("rnn.weight_ih_l{k}")),
            w_hh: get(format!("rnn.weight_hh_l{k}")),
            b_ih: get(format!("rnn.bias_ih_l{k}")),
            b_hh: get(format!("rnn.bias_hh_l{k}")),
        }
    }

    /// Layer `k`'s parameters as the block's forward used them: under weight
    /// drop, `W_hh` is the dropped copy kept in `dropped`.
    fn block_layer_params<'a>(
        &'a self,
        dropped: &'a [Vec<f32>],
        weight_drop: bool,
        k: usize,
    ) -> LayerParams<'a> {
        let mut p = self.layer_params(k);
        if weight_drop {
            p.w_hh = &dropped[k][..p.w_hh.len()];
        }
        p
    }

    fn ln_layer(&self, k: usize) -> LnRecurrentLayer {
        LnRecurrentLayer {
            cell: self.config.cell,
            input_size: self.config.layer_input(k),
            hidden_size: self.config.layer_hidden(k),
        }
    }

    /// Layer `k`'s LayerNorm parameters around `base` (its plain ones as the
    /// block uses them).
    fn ln_params<'a>(&'a self, base: LayerParams<'a>, k: usize) -> LnParams<'a> {
        let get = |n: String| &self.params[self.layout.get(&n).unwrap().range()];
        let lstm = self.config.cell == CellKind::Lstm;
        let cell = |n: String| if lstm { get(n) } else { &[][..] };
        LnParams {
            base,
            ih_gain: get(format!("rnn.ln_ih_weight_l{k}")),
            ih_bias: get(format!("rnn.ln_ih_bias_l{k}")),
            hh_gain: get(format!("rnn.ln_hh_weight_l{k}")),
            hh_bias: get(format!("rnn.ln_hh_bias_l{k}")),
            c_gain: cell(format!("rnn.ln_c_weight_l{k}")),
            c_bias: cell(format!("rnn.ln_c_bias_l{k}")),
        }
    }

    fn decoder_weight(&self) -> &[f32] {
        let name = if self.config.tie {
            "encoder.weight"
        } else {
            "decoder.weight"
        };
        &self.params[self.layout.get(name).unwrap().range()]
    }

    fn param(&self, name: &str) -> &[f32] {
        &self.params[self.layout.get(name).unwrap().range()]
    }

    /// Runs the network over `tokens: [T*B]` (time-major) from `state`, leaving the
    /// logits `[T*B, V]` in the workspace and the final state in `state`.
    /// With `dropout_rng`, dropout and `reg` are applied (training) and masks are kept.
    fn forward(
        &self,
        ws: &mut Workspace,
        tokens: &[u32],
        t: usize,
        b: usize,
        state: &mut State,
        keep: Option<&[f32]>,
        mut dropout_rng: Option<&mut Rng>,
        reg: &Regularization,
        for_backward: bool,
    ) {
        let cfg = &self.config;
        let (n, v, layers) = (t * b, cfg.vocab_size, cfg.layers);
        assert_eq!(tokens.len(), n, "token block must be T*B");
        assert_eq!(state.batch, b, "state batch must match the block");
        let p = if cfg.dropout > 0.0 {
            dropout_rng.is_some()
        } else {
            false
        };
        ws.inputs.resize_with(layers + 1, Vec::new);
        ws.masks.resize_with(layers + 1, Vec::new);
        if cfg.layer_norm {
            ws.ln_caches.resize_with(layers, LnCache::default);
        } else {
            ws.caches.resize_with(layers, LayerCache::default);
        }
        // Regularizers act in training only; the backward reads what was applied.
        ws.reg = if dropout_rng.is_some() {
            *reg
        } else {
            Regularization::default()
        };
        let reg = ws.reg;
        let weight_drop = reg.weight_drop > 0.0;
        if !reg.is_off() {
            ws.locked.resize_with(layers + 1, Vec::new);
            ws.w_hh_dropped.resize_with(layers, Vec::new);
            ws.w_hh_mask.resize_with(layers, Vec::new);
        }

        let ph = Phase::new("lm.embed");
        // Layer 0's input: embedding rows or one-hot vectors, or rows of a
        // table of every embedding's projection.
        let i0 = cfg.layer_input(0);
        grow(&mut ws.inputs[0], n * i0);
        ws.table_input = !ws.no_table && self.input_table_pays(n, p, &ws.reg);
        if ws.table_input {
            // Layer 0 gathers from its table (`forward_table`): no rows to build.
        } else if cfg.embed > 0 {
            embedding::forward(self.param("encoder.weight"), tokens, &mut ws.inputs[0], i0);
            if p {
                grow(&mut ws.masks[0], n * i0);
                dropout::sample_mask(
                    &mut ws.masks[0][..n * i0],
                    cfg.dropout,
                    dropout_rng.as_deref_mut().unwrap(),
                );
                dropout::forward(&mut ws.inputs[0][..n * i0], &ws.masks[0]);
            }
        } else {
            embedding::one_hot(tokens, &mut ws.inputs[0][..n * i0], v);
        }
        if let (true, Some(rng)) = (reg.dropout_embed > 0.0, dropout_rng.as_deref_mut()) {
            grow(&mut ws.word_mask, v);
            dropout::sample_mask(&mut ws.word_mask[..v], reg.dropout_embed, rng);
            embedding::drop_words(&mut ws.inputs[0][..n * i0], tokens, &ws.word_mask, i0);
        }
        if let (true, Some(rng)) = (reg.dropout_input > 0.0, dropout_rng.as_deref_mut()) {
            let mask = &mut ws.locked[0];
            grow(mask, b * i0);
            dropout::sample_mask(&mut mask[..b * i0], reg.dropout_input, rng);
            dropout::locked_forward(&mut ws.inputs[0][..n * i0], &mask[..b * i0]);
        }

        drop(ph);
        for k in 0..layers {
            let layer = self.layer(k);
            let (h, rows) = (cfg.layer_hidden(k), cfg.state_range(k, b));
            let bh = b * h;
            let (h0, c0) = (
                &state.h[rows.clone()],
                if state.c.is_empty() {
                    &[][..]
                } else {
                    &state.c[rows.clone()]
                },
            );
            if let (true, Some(rng)) = (weight_drop, dropout_rng.as_deref_mut()) {
                // DropConnect: a fresh mask on W_hh for this block, shared by its steps.
                let w_hh = self.layer_params(k).w_hh;
                let len = w_hh.len();
                let (dropped, mask) = (&mut ws.w_hh_dropped[k], &mut ws.w_hh_mask[k]);
                grow(dropped, len);
                grow(mask, len);
                dropout::sample_apply(
                    &mut dropped[..len],
                    w_hh,
                    &mut mask[..len],
                    reg.weight_drop,
                    rng,
                );
            }
            let (below, above) = ws.inputs.split_at_mut(k + 1);
            let params = self.block_layer_params(&ws.w_hh_dropped, weight_drop, k);
            let (output, last_h, last_c) = if cfg.layer_norm {
                let cache = &mut ws.ln_caches[k];
                self.ln_layer(k).forward(
                    self.ln_params(params, k),
                    &below[k],
                    t,
                    b,
                    h0,
                    c0,
                    keep,
                    cache,
                );
                let c = if state.c.is_empty() {
                    &[][..]
                } else {
                    cache.last_c(h)
                };
                (cache.output(h), cache.last_h(h), c)
            } else {
                let cache = &mut ws.caches[k];
                if k == 0 && ws.table_input {
                    let rows = self.param("encoder.weight");
                    layer.forward_table(
                        params,
                        rows,
                        tokens,
                        t,
                        b,
                        h0,
                        c0,
                        keep,
                        cache,
                        for_backward,
                    );
                } else {
                    layer.forward(params, &below[k], t, b, h0, c0, keep, cache, for_backward);
                }
                let c = if state.c.is_empty() {
                    &[][..]
                } else {
                    cache.last_c(h)
                };
                (cache.output(h), cache.last_h(h), c)
            };
            state.h[rows.clone()].copy_from_slice(last_h);
            if !state.c.is_empty() {
                state.c[rows].copy_from_slice(last_c);
            }
            let _ph = Phase::new("lm.copy_drop");
            // The next layer (or the head) reads the dropped-out output.
            let next = &mut above[0];
            grow(next, n * h);
            if p {
                let mask = &mut ws.masks[k + 1];
                grow(mask, n * h);
                dropout::sample_apply(
                    &mut next[..n * h],
                    output,
                    &mut mask[..n * h],
                    cfg.dropout,
                    dropout_rng.as_deref_mut().unwrap(),
                );
            } else {
                next[..n * h].copy_from_slice(output);
            }
            let p_locked = reg.locked_after(k, layers);
            if let (true, Some(rng)) = (p_locked > 0.0, dropout_rng.as_deref_mut()) {
                let mask = &mut ws.locked[k + 1];
                grow(mask, bh);
                dropout::sample_mask(&mut mask[..bh], p_locked, rng);
                dropout::locked_forward(&mut next[..n * h], &mask[..bh]);
            }
        }

        let _ph = Phase::new("head.fwd");
        let h = cfg.top_hidden();
        let mut head_in: &[f32] = &ws.inputs[layers][..n * h];
        if cfg.dense > 0 {
            grow(&mut ws.dense_out, n * cfg.dense);
            linear::forward(
                head_in,
                self.param("dense.weight"),
                self.param("dense.bias"),
                &mut ws.dense_out,
                n,
                h,
                cfg.dense,
            );
            linear::relu_forward(&mut ws.dense_out[..n * cfg.dense]);
            head_in = &ws.dense_out[..n * cfg.dense];
        }
        grow(&mut ws.logits, n * v);
        linear::forward(
            head_in,
            self.decoder_weight(),
            self.param("decoder.bias"),
            &mut ws.logits,
            n,
            cfg.head_input(),
            v,
        );
    }

    /// One training block: forward, loss against `targets: [T*B]`, backward.
    /// Adds the gradient of the mean loss into `grads` (same layout as `params`).
    pub fn train_block(
        &self,
        ws: &mut Workspace,
        tokens: &[u32],
        targets: &[u32],
        t: usize,
        b: usize,
        state: &mut State,
        keep: Option<&[f32]>,
        dropout_rng: &mut Rng,
        grads: &mut [f32],
    ) -> BlockStats {
        let off = Regularization::default();
        self.train_block_regularized(
            ws,
            tokens,
            targets,
            t,
            b,
            state,
            keep,
            &off,
            dropout_rng,
            grads,
        )
    }

    /// [`LanguageModel::train_block`] with AWD-LSTM's regularizers `reg`: masks
    /// are drawn from `dropout_rng` for this block, and the gradient of
    /// cross-entropy + AR + TAR is added into `grads`. The returned `loss` is
    /// the cross-entropy alone; `ar` and `tar` report the penalties.
    pub fn train_block_regularized(
        &self,
        ws: &mut Workspace,
        tokens: &[u32],
        targets: &[u32],
        t: usize,
        b: usize,
        state: &mut State,
        keep: Option<&[f32]>,
        reg: &Regularization,
        dropout_rng: &mut Rng,
        grads: &mut [f32],
    ) -> BlockStats {
        self.forward(ws, tokens, t, b, state, keep, Some(dropout_rng), reg, true);
        self.backward(ws, tokens, targets, t, b, keep, grads, None)
    }

    /// The AR and TAR penalties of the last forward (0 where off): AR on the
    /// last layer's dropped-out output, TAR on its raw output.
    fn penalties(&self, ws: &Workspace, t: usize, b: usize) -> (f64, f64) {
        let (h, layers) = (self.config.top_hidden(), self.config.layers);
        let reg = ws.reg;
        let ar = if reg.alpha > 0.0 {
            activation_reg::ar_forward(&ws.inputs[layers][..t * b * h], reg.alpha)
        } else {
            0.0
        };
        let tar = if reg.beta > 0.0 {
            let y = layer_output(
                &ws.caches,
                &ws.ln_caches,
                self.config.layer_norm,
                layers - 1,
                h,
            );
            activation_reg::tar_forward(y, t, b * h, reg.beta)
        } else {
            0.0
        };
        (ar, tar)
    }

    /// Backward from the logits in `ws` (left by `forward` with `for_backward`).
    /// When `dstate0` is given it receives the gradient w.r.t. the state the
    /// block started from (for tests).
    fn backward(
        &self,
        ws: &mut Workspace,
        tokens: &[u32],
        targets: &[u32],
        t: usize,
        b: usize,
        keep: Option<&[f32]>,
        grads: &mut [f32],
        mut dstate0: Option<&mut State>,
    ) -> BlockStats {
        let cfg = &self.config;
        let (n, v, layers) = (t * b, cfg.vocab_size, cfg.layers);
        // The top layer's width; each layer's own below.
        let h = cfg.top_hidden();
        let p = cfg.dropout > 0.0;
        let reg = ws.reg;
        let weight_drop = reg.weight_drop > 0.0;
        let ph = Phase::new("loss");
        grow(&mut ws.dlogits, n * v);
        let (loss, correct) = loss::softmax_cross_entropy(
            &ws.logits[..n * v],
            targets,
            v,
            Some(&mut ws.dlogits[..n * v]),
            1.0 / n as f32,
        );

        let mut g = self.layout.split_mut(grads);
        let idx = |name: &str| self.layout.index(name);

        drop(ph);
        let ph = Phase::new("head.bwd");
        // Head: output projection (and dense layer) back to the top layer's output.
        let hin = cfg.head_input();
        let head_x: &[f32] = if cfg.dense > 0 {
            &ws.dense_out[..n * hin]
        } else {
            &ws.inputs[layers][..n * h]
        };
        grow(&mut ws.dhead, n * hin);
        let dec_w = if cfg.tie {
            idx("encoder.weight")
        } else {
            idx("decoder.weight")
        };
        let dec_b = idx("decoder.bias");
        {
            let (lo, hi) = if dec_w < dec_b {
                g.split_at_mut(dec_b)
            } else {
                unreachable!()
            };
            linear::backward(
                head_x,
                self.decoder_weight(),
                &ws.dlogits[..n * v],
                lo[dec_w],
                hi[0],
                Some(&mut ws.dhead[..n * hin]),
                n,
                hin,
                v,
            );
        }
        grow(&mut ws.dy, n * h);
        if cfg.dense > 0 {
            linear::relu_backward(&ws.dense_out[..n * hin], &mut ws.dhead[..n * hin]);
            let (dw, db) = (idx("dense.weight"), idx("dense.bias"));
            let (lo, hi) = g.split_at_mut(db);
            linear::backward(
                &ws.inputs[layers][..n * h],
                self.param("dense.weight"),
                &ws.dhead[..n * hin],
                lo[dw],
                hi[0],
                Some(&mut ws.dy[..n * h]),
                n,
                h,
                hin,
            );
        } else {
            ws.dy[..n * h].copy_from_slice(&ws.dhead[..n * h]);
        }

        drop(ph);
        let (ar, tar) = self.penalties(ws, t, b);
        if reg.alpha > 0.0 {
            // AR reads the dropped-out output, whose gradient ws.dy holds now.
            activation_reg::ar_backward(
                &ws.inputs[layers][..n * h],
                reg.alpha,
                &mut ws.dy[..n * h],
            );
        }
        for k in (0..layers).rev() {
            let (h, rows) = (cfg.layer_hidden(k), cfg.state_range(k, b));
            let bh = b * h;
            grow(&mut ws.dh0, bh);
            grow(&mut ws.dc0, bh);
            if reg.locked_after(k, layers) > 0.0 {
                dropout::locked_backward(&mut ws.dy[..n * h], &ws.locked[k + 1][..bh]);
            }
            if p {
                let _ph = Phase::new("lm.drop_bwd");
                dropout::backward(&mut ws.dy[..n * h], &ws.masks[k + 1]);
            }
            if k + 1 == layers && reg.beta > 0.0 {
                // TAR reads the raw output: ws.dy is its gradient from here on.
                let y = layer_output(&ws.caches, &ws.ln_caches, cfg.layer_norm, k, h);
                activation_reg::tar_backward(y, t, bh, reg.beta, &mut ws.dy[..n * h]);
            }
            let layer = self.layer(k);
            let i = layer.input_size;
            let want_dx = k > 0 || (cfg.embed > 0 && !ws.table_input);
            grow(&mut ws.dx, n * i);
            let base = idx(&format!("rnn.weight_ih_l{k}"));
            let (head, rest) = g.split_at_mut(base);
            let [w_ih, w_hh, b_ih, b_hh, ln @ ..] = rest else {
                unreachable!()
            };
            let len = w_hh.len();
            if weight_drop {
                // The layer's gradient is w.r.t. the dropped W_hh; it reaches
                // the raw W_hh through the mask below.
                grow(&mut ws.dw_hh_dropped, len);
                ws.dw_hh_dropped[..len].fill(0.0);
            }
            let lg = LayerGrads {
                w_ih,
                w_hh: if weight_drop {
                    &mut ws.dw_hh_dropped[..len]
                } else {
                    w_hh
                },
                b_ih,
                b_hh,
            };
            let dx = want_dx.then_some(&mut ws.dx[..n * i]);
            let (dh0, dc0) = if dstate0.is_some() {
                (
                    Some(&mut ws.dh0[..bh]),
                    cfg.cell.has_cell_state().then_some(&mut ws.dc0[..bh]),
                )
            } else {
                (None, None)
            };
            let params = self.block_layer_params(&ws.w_hh_dropped, weight_drop, k);
            if cfg.layer_norm {
                // The layout puts the LayerNorm tensors right after the layer's.
                let lstm = cfg.cell == CellKind::Lstm;
                let [ih_gain, ih_bias, hh_gain, hh_bias, cell @ ..] = ln else {
                    unreachable!()
                };
                let (c_gain, c_bias): (&mut [f32], &mut [f32]) = match cell {
                    [c_gain, c_bias, ..] if lstm => (c_gain, c_bias),
                    _ => (&mut [], &mut []),
                };
                let grads = LnGrads {
                    base: lg,
                    ih_gain,
                    ih_bias,
                    hh_gain,
                    hh_bias,
                    c_gain,
                    c_bias,
                };
                self.ln_layer(k).backward(
                    self.ln_params(params, k),
                    grads,
                    &ws.inputs[k][..n * i],
                    &ws.dy[..n * h],
                    None,
                    None,
                    keep,
                    &mut ws.ln_caches[k],
                    dx,
                    dh0,
                    dc0,
                );
            } else if k == 0 && ws.table_input {
                // The embedding gradient comes straight from the per-row sums.
                let enc = &mut *head[idx("encoder.weight")];
                let rows = self.param("encoder.weight");
                let cache = &mut ws.caches[k];
                let dy = &ws.dy[..n * h];
                layer.backward_table(
                    params,
                    lg,
                    rows,
                    tokens,
                    dy,
                    keep,
                    cache,
                    Some(enc),
                    dh0,
                    dc0,
                );
            } else {
                layer.backward(
                    params,
                    lg,
                    &ws.inputs[k][..n * i],
                    &ws.dy[..n * h],
                    None,
                    None,
                    keep,
                    &mut ws.caches[k],
                    dx,
                    dh0,
                    dc0,
                );
            }
            if weight_drop {
                dropout::backward_add(w_hh, &ws.dw_hh_dropped[..len], &ws.w_hh_mask[k][..len]);
            }
            if let Some(ds) = dstate0.as_deref_mut() {
                ds.h[rows.clone()].copy_from_slice(&ws.dh0[..bh]);
                if cfg.cell.has_cell_state() {
                    ds.c[rows].copy_from_slice(&ws.dc0[..bh]);
                }
            }
            if k > 0 {
                std::mem::swap(&mut ws.dy, &mut ws.dx);
            }
        }
        if cfg.embed > 0 && !ws.table_input {
            let _ph = Phase::new("lm.embed_bwd");
            let e = cfg.embed;
            if reg.dropout_input > 0.0 {
                dropout::locked_backward(&mut ws.dx[..n * e], &ws.locked[0][..b * e]);
            }
            if reg.dropout_embed > 0.0 {
                embedding::drop_words_backward(&mut ws.dx[..n * e], tokens, &ws.word_mask, e);
            }
            if p {
                dropout::backward(&mut ws.dx[..n * e], &ws.masks[0]);
            }
            embedding::backward(tokens, &ws.dx[..n * e], g[idx("encoder.weight")], e);
        }
        BlockStats {
            loss,
            correct,
            tokens: n,
            ar,
            tar,
        }
    }

    /// Forward only, no dropout: the loss of `targets` given `tokens`, carrying `state`.
    pub fn evaluate_block(
        &self,
        ws: &mut Workspace,
        tokens: &[u32],
        targets: &[u32],
        t: usize,
        b: usize,
        state: &mut State,
        keep: Option<&[f32]>,
    ) -> BlockStats {
        let off = Regularization::default();
        self.forward(ws, tokens, t, b, state, keep, None, &off, false);
        let n = t * b;
        let v = self.config.vocab_size;
        let (loss, correct) =
            loss::softmax_cross_entropy(&ws.logits[..n * v], targets, v, None, 1.0);
        BlockStats {
            loss,
            correct,
            tokens: n,
            ..BlockStats::default()
        }
    }

    /// One generation step for `B` streams: feeds `tokens: [B]`, advances `state`,
    /// and returns the next-token logits `[B, V]`.
    ///
    /// This runs the training forward with `T = 1` (packing weights and setting
    /// up GEMMs at every call): the reference for [`crate::infer::StepModel`],
    /// which prepares the weights once and is what generation uses.
    pub fn step<'w>(&self, ws: &'w mut Workspace, tokens: &[u32], state: &mut State) -> &'w [f32] {
        let b = tokens.len();
        let off = Regularization::default();
        self.forward(ws, tokens, 1, b, state, None, None, &off, false);
        &ws.logits[..b * self.config.vocab_size]
    }

    /// Forward and backward without dropout, returning the loss, the logits and
    /// the gradient w.r.t. the initial state; for conformance tests.
    pub fn loss_and_gradients(
        &self,
        tokens: &[u32],
        targets: &[u32],
        t: usize,
        b: usize,
        state: &mut State,
        grads: &mut [f32],
    ) -> (BlockStats, Vec<f32>, State) {
        let mut ws = Workspace::default();
        let off = Regularization::default();
        self.forward(&mut ws, tokens, t, b, state, None, None, &off, true);
        let logits = ws.logits[..t * b * self.config.vocab_size].to_vec();
        let mut dstate = State::zeros(&self.config, b);
        let stats = self.backward(
            &mut ws,
            tokens,
            targets,
            t,
            b,
            None,
            grads,
            Some(&mut dstate),
        );
        (stats, logits, dstate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CELLS: [CellKind; 4] = [
        CellKind::RnnTanh,
        CellKind::RnnRelu,
        CellKind::Lstm,
        CellKind::Gru,
    ];

    fn block_loss(
        m: &LanguageModel,
        tokens: &[u32],
        targets: &[u32],
        t: usize,
        b: usize,
        s0: &State,
        keep: Option<&[f32]>,
        reg: &Regularization,
    ) -> f64 {
        let mut ws = Workspace::default();
        let mut s = s0.clone();
        // The same seed as the analytic pass: the same masks at every evaluation.
        let mut rng = Rng::new(99);
        m.forward(
            &mut ws,
            tokens,
            t,
            b,
            &mut s,
            keep,
            Some(&mut rng),
            reg,
            false,
        );
        let v = m.config.vocab_size;
        let (ar, tar) = m.penalties(&ws, t, b);
        loss::softmax_cross_entropy(&ws.logits[..t * b * v], targets, v, None, 1.0).0 + ar + tar
    }

    /// Whole-network finite-difference check: every parameter and the initial state.
    fn gradcheck(config: ModelConfig, with_reset: bool) {
        gradcheck_regularized(config, with_reset, &Regularization::default());
    }

    /// [`gradcheck`] of cross-entropy + AR + TAR with AWD-LSTM's regularizers `reg`.
    fn gradcheck_regularized(config: ModelConfig, with_reset: bool, reg: &Regularization) {
        let (t, b) = (4, 2);
        let mut rng = Rng::new(1 + config.cell as u64);
        let mut model = LanguageModel::new(config.clone(), &mut rng, None).unwrap();
        if config.layer_norm && config.embed > 0 {
            // LayerNorm of a projection of ±0.1 embeddings divides by a tiny
            // spread, so a finite-difference step of 1e-2 is not small there;
            // ±1 embeddings keep the check well conditioned.
            let e = model.layout.get("encoder.weight").unwrap().range();
            model.params[e].iter_mut().for_each(|p| *p *= 10.0);
        }
        let v = config.vocab_size as u64;
        let tokens: Vec<u32> = (0..t * b).map(|_| rng.below(v) as u32).collect();
        let targets: Vec<u32> = (0..t * b).map(|_| rng.below(v) as u32).collect();
        let mut s0 = State::zeros(&config, b);
        s0.h.iter_mut().for_each(|x| *x = rng.uniform(-0.5, 0.5));
        s0.c.iter_mut().for_each(|x| *x = rng.uniform(-0.5, 0.5));
        let keep: Option<Vec<f32>> =
            with_reset.then(|| (0..t * b).map(|k| if k == 5 { 0.0 } else { 1.0 }).collect());

        let mut ws = Workspace::default();
        let mut s = s0.clone();
        let mut grads = vec![0.0; model.num_params()];
        let mut drop_rng = Rng::new(99);
        model.forward(
            &mut ws,
            &tokens,
            t,
            b,
            &mut s,
            keep.as_deref(),
            Some(&mut drop_rng),
            reg,
            true,
        );
        let mut ds = State::zeros(&config, b);
        let stats = model.backward(
            &mut ws,
            &tokens,
            &targets,
            t,
            b,
            keep.as_deref(),
            &mut grads,
            Some(&mut ds),
        );
        assert_eq!(stats.ar > 0.0, reg.alpha > 0.0);
        assert_eq!(stats.tar > 0.0, reg.beta > 0.0);

        // Central differences at two step sizes: ReLU kinks can fall inside the
        // wider one, f32 rounding spoils the narrower one; and a Richardson
        // extrapolation of steps 2e-3 and 1e-3, which cancels the h² error of
        // strongly curved losses (LayerNorm over a small spread). A correct
        // gradient matches at least one of them.
        let numeric = |f: &dyn Fn(f32) -> f64| {
            let d = |h: f32| (f(h) - f(-h)) / (2.0 * h as f64);
            let (d1, d2) = (d(1e-3), d(2e-3));
            [d(1e-2), d1, (4.0 * d1 - d2) / 3.0]
        };
        let close = |what: &str, a: f32, n: [f64; 3]| {
            let err = |n: f64| (n - a as f64).abs() / (1e-2 + n.abs().max(a.abs() as f64));
            assert!(
                n.iter().map(|&n| err(n)).fold(f64::INFINITY, f64::min) < 2e-2,
                "{} {what}: analytic {a} vs numeric {n:?}",
                config.cell
            );
        };
        for e in &model.layout.entries {
            for j in e.range() {
                let n = numeric(&|d| {
                    let mut m = model.clone();
                    m.params[j] += d;
                    block_loss(&m, &tokens, &targets, t, b, &s0, keep.as_deref(), reg)
                });
                close(&format!("{}[{}]", e.name, j - e.offset), grads[j], n);
            }
        }
        for j in 0..s0.h.len() {
            let n = numeric(&|d| {
                let mut s = s0.clone();
                s.h[j] += d;
                block_loss(&model, &tokens, &targets, t, b, &s, keep.as_deref(), reg)
            });
            close(&format!("h0[{j}]"), ds.h[j], n);
        }
        for j in 0..s0.c.len() {
            let n = numeric(&|d| {
                let mut s = s0.clone();
                s.c[j] += d;
                block_loss(&model, &tokens, &targets, t, b, &s, keep.as_deref(), reg)
            });
            close(&format!("c0[{j}]"), ds.c[j], n);
        }
    }

    #[test]
    fn whole_network_gradients_with_embedding_dense_tying_and_dropout() {
        for cell in CELLS {
            let config = ModelConfig {
                dense: 4,
                dropout: 0.3,
                tie: true,
                ..ModelConfig::new(cell, 7, 4, 5, 2)
            };
            gradcheck(config, false);
        }
    }

    /// No dropout on the embeddings and a vocabulary (7) below `T*B` (8):
    /// layer 0 takes its input projection from the per-token table.
    #[test]
    fn whole_network_gradients_through_the_embedding_table() {
        for cell in CELLS {
            let config = ModelConfig {
                dense: 4,
                tie: true,
                ..ModelConfig::new(cell, 7, 4, 5, 2)
            };
            let m = LanguageModel::new(config.clone(), &mut Rng::new(1), None).unwrap();
            assert!(m.input_table_pays(8, false, &Regularization::default()));
            gradcheck(config, true);
        }
    }

    /// The table path and the whole-block GEMM path agree (up to rounding)
    /// on the loss, every gradient and the carried state.
    #[test]
    fn the_embedding_table_gives_the_gemm_paths_results() {
        for cell in CELLS {
            let config = ModelConfig::new(cell, 7, 5, 6, 2);
            let mut rng = Rng::new(3 + cell as u64);
            let m = LanguageModel::new(config.clone(), &mut rng, None).unwrap();
            let (t, b) = (6, 3);
            let tokens: Vec<u32> = (0..t * b).map(|_| rng.below(7) as u32).collect();
            let keep: Vec<f32> = (0..t * b).map(|k| if k == 7 { 0.0 } else { 1.0 }).collect();
            let run = |no_table: bool| {
                let mut ws = Workspace {
                    no_table,
                    ..Workspace::default()
                };
                let mut state = State::zeros(&config, b);
                state.h.iter_mut().for_each(|x| *x = 0.3);
                let mut grads = vec![0.0; m.num_params()];
                let stats = m.train_block(
                    &mut ws,
                    &tokens,
                    &tokens,
                    t,
                    b,
                    &mut state,
                    Some(&keep),
                    &mut Rng::new(5),
                    &mut grads,
                );
                assert_eq!(ws.table_input, !no_table);
                (stats.loss, grads, state)
            };
            let (table, gemm) = (run(false), run(true));
            let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * (1.0 + b.abs());
            assert!(close(table.0 as f32, gemm.0 as f32), "{cell}: loss");
            for (e, (a, b)) in table.1.iter().zip(&gemm.1).enumerate() {
                assert!(close(*a, *b), "{cell}: gradient {e}: {a} vs {b}");
            }
            for (a, b) in table.2.h.iter().zip(&gemm.2.h) {
                assert!(close(*a, *b), "{cell}: state");
            }
        }
    }

    #[test]
    fn whole_network_gradients_one_hot_with_document_reset() {
        for cell in CELLS {
            let config = ModelConfig::new(cell, 6, 0, 4, 2);
            gradcheck(config, true);
        }
    }

    /// AWD-LSTM's shape in miniature: wide inner layers, a last layer as
    /// narrow as the tied embedding; with plain dropout, with a dense head and
    /// a document reset, with every AWD regularizer, and layer-normalized.
    #[test]
    fn whole_network_gradients_with_a_narrower_last_layer() {
        let awd_shape = |cell| ModelConfig {
            dropout: 0.2,
            tie: true,
            last_hidden: 3,
            ..ModelConfig::new(cell, 7, 3, 6, 3)
        };
        for cell in CELLS {
            gradcheck(awd_shape(cell), false);
        }
        let dense = ModelConfig {
            embed: 0,
            dense: 4,
            tie: false,
            layers: 2,
            last_hidden: 2,
            ..awd_shape(CellKind::Gru)
        };
        gradcheck(dense, true);
        gradcheck_regularized(awd_shape(CellKind::Lstm), true, &AWD);
        // LayerNorm of the cell state over 3 units is too curved for finite
        // differences; 5 and 4 keep it well conditioned.
        let ln = ModelConfig {
            tie: false,
            dropout: 0.0,
            layer_norm: true,
            hidden: 5,
            last_hidden: 4,
            ..awd_shape(CellKind::Lstm)
        };
        gradcheck(ln, false);
    }

    #[test]
    fn a_narrower_last_layer_lays_out_state_and_weights_by_layer() {
        let config = ModelConfig {
            tie: true,
            last_hidden: 3,
            ..ModelConfig::new(CellKind::Lstm, 9, 3, 5, 3)
        };
        let model = LanguageModel::new(config.clone(), &mut Rng::new(3), None).unwrap();
        let shape = |n: &str| model.layout.get(n).unwrap().shape.clone();
        assert_eq!(shape("rnn.weight_ih_l1"), vec![20, 5]);
        assert_eq!(shape("rnn.weight_ih_l2"), vec![12, 5]);
        assert_eq!(shape("rnn.weight_hh_l2"), vec![12, 3]);
        assert_eq!(config.widths_label(), "5/5/3");
        // PyTorch's bound per layer module: ±1/√H of that layer.
        let l2 = &model.params[model.layout.get("rnn.weight_hh_l2").unwrap().range()];
        assert!(l2.iter().all(|w| w.abs() <= 1.0 / 3f32.sqrt()));
        assert!(l2.iter().any(|w| w.abs() > 1.0 / 5f32.sqrt()));
        // State rows: [B, 5], [B, 5], [B, 3]; resetting stream 1 touches only its rows.
        let b = 2;
        let mut s = State::zeros(&config, b);
        assert_eq!(s.h.len(), b * (5 + 5 + 3));
        assert_eq!(config.state_range(2, b), 20..26);
        s.h.fill(1.0);
        s.c.fill(1.0);
        s.reset_stream(&config, 1);
        let zeroed: Vec<usize> = (0..s.h.len()).filter(|&i| s.h[i] == 0.0).collect();
        let want: Vec<usize> = (5..10).chain(15..20).chain(23..26).collect();
        assert_eq!(zeroed, want);
        assert_eq!(s.c, s.h);
        // One layer cannot be both the inner and the last width.
        let one = ModelConfig {
            layers: 1,
            ..config
        };
        assert!(one.validate().unwrap_err().to_string().contains("2 layers"));
    }

    #[test]
    fn whole_network_gradients_with_layer_norm() {
        // (Tying is left out: with the ±1 embeddings the check needs here,
        // the tied output layer's logits get too sharp for finite differences.)
        for cell in [CellKind::Lstm, CellKind::Gru] {
            let config = ModelConfig {
                dense: 4,
                dropout: 0.3,
                layer_norm: true,
                ..ModelConfig::new(cell, 7, 4, 5, 2)
            };
            gradcheck(config.clone(), false);
            // A document reset, and every AWD regularizer (weight drop included).
            let config = ModelConfig { dense: 0, ..config };
            gradcheck(config.clone(), true);
            gradcheck_regularized(config, true, &AWD);
        }
    }

    #[test]
    fn layer_norm_starts_as_the_identity_and_needs_a_gated_cell() {
        let config = ModelConfig {
            layer_norm: true,
            ..ModelConfig::new(CellKind::Lstm, 7, 4, 5, 2)
        };
        let model = LanguageModel::new(config.clone(), &mut Rng::new(1), None).unwrap();
        assert_eq!(model.num_params(), config.checked_num_params().unwrap());
        for e in model
            .layout
            .entries
            .iter()
            .filter(|e| e.name.starts_with("rnn.ln_"))
        {
            let want = if e.name.contains("_weight_") {
                1.0
            } else {
                0.0
            };
            assert!(
                model.params[e.range()].iter().all(|&p| p == want),
                "{}",
                e.name
            );
        }
        assert!(model.layout.get("rnn.ln_c_weight_l1").is_some());
        let rnn = ModelConfig {
            cell: CellKind::RnnTanh,
            ..config
        };
        let err = rnn.validate().unwrap_err().to_string();
        assert!(err.contains("LSTM or GRU"), "{err}");
    }

    /// All of AWD-LSTM's regularizers at once, with rates high enough that
    /// every mask drops something in this tiny network.
    const AWD: Regularization = Regularization {
        dropout_input: 0.4,
        dropout_hidden: 0.3,
        dropout_output: 0.5,
        dropout_embed: 0.3,
        weight_drop: 0.5,
        alpha: 2.0,
        beta: 1.0,
    };

    #[test]
    fn whole_network_gradients_with_awd_regularizers() {
        for cell in CELLS {
            let config = ModelConfig {
                tie: true,
                ..ModelConfig::new(cell, 7, 5, 5, 2)
            };
            gradcheck_regularized(config, false, &AWD);
        }
        // One-hot input, a document reset and plain dropout on top of them.
        let config = ModelConfig {
            dense: 3,
            dropout: 0.2,
            ..ModelConfig::new(CellKind::Lstm, 6, 0, 4, 3)
        };
        gradcheck_regularized(config, true, &AWD);
    }

    #[test]
    fn each_regularizer_alone_passes_the_gradient_check() {
        let config = ModelConfig::new(CellKind::Gru, 6, 4, 4, 2);
        let off = Regularization::default();
        for reg in [
            Regularization {
                dropout_input: 0.5,
                ..off
            },
            Regularization {
                dropout_hidden: 0.5,
                ..off
            },
            Regularization {
                dropout_output: 0.5,
                ..off
            },
            Regularization {
                dropout_embed: 0.5,
                ..off
            },
            Regularization {
                weight_drop: 0.5,
                ..off
            },
            Regularization { alpha: 2.0, ..off },
            Regularization { beta: 1.0, ..off },
        ] {
            gradcheck_regularized(config.clone(), false, &reg);
        }
    }

    /// Runs one training block of `m` with `reg` and returns the logits, the
    /// final state and the gradient.
    fn train_once(
        m: &LanguageModel,
        reg: &Regularization,
        tokens: &[u32],
        t: usize,
        b: usize,
    ) -> (Vec<f32>, State, Vec<f32>) {
        let mut ws = Workspace::default();
        let mut state = State::zeros(&m.config, b);
        let mut grads = vec![0.0; m.num_params()];
        m.train_block_regularized(
            &mut ws,
            tokens,
            tokens,
            t,
            b,
            &mut state,
            None,
            reg,
            &mut Rng::new(5),
            &mut grads,
        );
        let logits = ws.logits[..t * b * m.config.vocab_size].to_vec();
        (logits, state, grads)
    }

    #[test]
    fn locked_masks_hold_over_time_and_differ_between_streams() {
        // Only output dropout, on a model whose head sees the last layer
        // directly: a unit dropped for a stream is dropped at every step.
        let config = ModelConfig::new(CellKind::Lstm, 5, 3, 16, 1);
        let m = LanguageModel::new(config, &mut Rng::new(2), None).unwrap();
        let (t, b, h) = (6, 3, 16);
        let tokens: Vec<u32> = (0..t * b).map(|i| (i % 5) as u32).collect();
        let reg = Regularization {
            dropout_output: 0.5,
            ..Regularization::default()
        };
        let mut ws = Workspace::default();
        let mut state = State::zeros(&m.config, b);
        let mut grads = vec![0.0; m.num_params()];
        m.train_block_regularized(
            &mut ws,
            &tokens,
            &tokens,
            t,
            b,
            &mut state,
            None,
            &reg,
            &mut Rng::new(5),
            &mut grads,
        );
        let dropped = &ws.inputs[1];
        let zero_units = |s: usize, r: usize| -> Vec<bool> {
            (0..h)
                .map(|j| dropped[(s * b + r) * h + j] == 0.0)
                .collect()
        };
        for r in 0..b {
            assert!(zero_units(0, r).contains(&true));
            for s in 1..t {
                assert_eq!(zero_units(s, r), zero_units(0, r), "stream {r} step {s}");
            }
        }
        assert_ne!(zero_units(0, 0), zero_units(0, 1));
    }

    #[test]
    fn masks_depend_on_the_seed_only_not_on_the_thread_count() {
        // W_hh of 4 * 160 * 160 weights spans two of sample_apply's pieces.
        let config = ModelConfig::new(CellKind::Lstm, 9, 6, 160, 2);
        let m = LanguageModel::new(config, &mut Rng::new(4), None).unwrap();
        let (t, b) = (3, 2);
        let tokens: Vec<u32> = (0..t * b).map(|i| (i % 9) as u32).collect();
        let masks = |threads: usize, seed: u64| {
            recurrent_kernels::threads::set_this_thread(threads);
            let mut ws = Workspace::default();
            let mut state = State::zeros(&m.config, b);
            let mut grads = vec![0.0; m.num_params()];
            m.train_block_regularized(
                &mut ws,
                &tokens,
                &tokens,
                t,
                b,
                &mut state,
                None,
                &AWD,
                &mut Rng::new(seed),
                &mut grads,
            );
            (ws.locked, ws.word_mask, ws.w_hh_mask)
        };
        let one = masks(1, 7);
        assert_eq!(masks(2, 7), one);
        assert_ne!(masks(1, 8), one);
    }

    #[test]
    fn regularizers_off_change_nothing_and_evaluation_ignores_them() {
        let config = ModelConfig {
            tie: true,
            ..ModelConfig::new(CellKind::Lstm, 7, 5, 5, 2)
        };
        let m = LanguageModel::new(config, &mut Rng::new(3), None).unwrap();
        let (t, b) = (4, 2);
        let tokens: Vec<u32> = (0..t * b).map(|i| (i % 7) as u32).collect();
        let off = Regularization::default();
        let plain = {
            let mut ws = Workspace::default();
            let mut state = State::zeros(&m.config, b);
            let mut grads = vec![0.0; m.num_params()];
            m.train_block(
                &mut ws,
                &tokens,
                &tokens,
                t,
                b,
                &mut state,
                None,
                &mut Rng::new(5),
                &mut grads,
            );
            (ws.logits[..t * b * 7].to_vec(), state, grads)
        };
        assert_eq!(train_once(&m, &off, &tokens, t, b), plain);
        let awd = train_once(&m, &AWD, &tokens, t, b);
        assert_ne!(awd.0, plain.0);
        assert_ne!(awd.2, plain.2);
        // Evaluation after a regularized block uses the plain weights.
        let mut ws = Workspace::default();
        let mut state = State::zeros(&m.config, b);
        let mut grads = vec![0.0; m.num_params()];
        m.train_block_regularized(
            &mut ws,
            &tokens,
            &tokens,
            t,
            b,
            &mut state,
            None,
            &AWD,
            &mut Rng::new(5),
            &mut grads,
        );
        let mut state = State::zeros(&m.config, b);
        let eval = m.evaluate_block(&mut ws, &tokens, &tokens, t, b, &mut state, None);
        let mut fresh = Workspace::default();
        let mut state2 = State::zeros(&m.config, b);
        let want = m.evaluate_block(&mut fresh, &tokens, &tokens, t, b, &mut state2, None);
        assert_eq!(eval, want);
        assert_eq!(state, state2);
        assert!(AWD.validate().is_ok());
        let bad = Regularization {
            weight_drop: 1.0,
            ..off
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("weight_drop"));
    }

    #[test]
    fn forget_bias_is_set_on_the_forget_rows_only() {
        let config = ModelConfig::new(CellKind::Lstm, 5, 3, 4, 1);
        let m = LanguageModel::new(config, &mut Rng::new(1), Some(1.0)).unwrap();
        let b = m.param("rnn.bias_ih_l0");
        assert!(b[4..8].iter().all(|&x| x == 1.0));
        assert!(b[..4].iter().all(|&x| x != 1.0));
    }

    #[test]
    fn from_tensors_names_the_problem() {
        let config = ModelConfig::new(CellKind::Gru, 5, 3, 4, 1);
        let m = LanguageModel::new(config.clone(), &mut Rng::new(1), None).unwrap();
        let mut t = m.to_tensors();
        assert!(LanguageModel::from_tensors(config.clone(), &t).is_ok());
        t[1].1 = vec![9, 3];
        let err = LanguageModel::from_tensors(config.clone(), &t)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rnn.weight_ih_l0") && err.contains("[9, 3]"),
            "{err}"
        );
        t.remove(1);
        let err = LanguageModel::from_tensors(config, &t)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing tensor 'rnn.weight_ih_l0'"), "{err}");
    }

    #[test]
    fn extending_the_vocabulary_keeps_what_was_learned() {
        for embed in [0, 3] {
            let config = ModelConfig::new(CellKind::Lstm, 5, embed, 4, 2);
            let mut rng = Rng::new(4);
            let m = LanguageModel::new(config, &mut rng, None).unwrap();
            let mut big = m.clone();
            big.extend_vocab(7, &mut rng).unwrap();
            assert_eq!(big.config.vocab_size, 7);
            // Old tokens get exactly the old logits and state, whatever the new rows hold.
            let tokens = [1u32, 4, 0, 2];
            let (mut wa, mut wb) = (Workspace::default(), Workspace::default());
            let (mut sa, mut sb) = (State::zeros(&m.config, 1), State::zeros(&big.config, 1));
            for &tok in &tokens {
                let a = m.step(&mut wa, &[tok], &mut sa).to_vec();
                let b = big.step(&mut wb, &[tok], &mut sb).to_vec();
                assert_eq!(a[..], b[..5]);
            }
            assert_eq!(sa, sb);
            assert!(big.extend_vocab(6, &mut rng).is_err());
        }
    }
}
