//! Generation-time stepping: one token per stream through the network, with
//! the weights prepared once.
//!
//! [`LanguageModel::step`] runs the training forward pass with `T = 1`, which
//! packs every `W_hh` and sets up GEMMs for each token. A [`StepModel`] does
//! that work once:
//!
//! * Every weight matrix is packed for [`recurrent_kernels::panel`] products,
//!   whose cost at batch 1 is streaming the weights once (a matrix-vector
//!   product) and at batch 64 a small-`M` GEMM. The gate rows of a recurrent
//!   layer are interleaved so that one panel holds every gate of 16 hidden
//!   units (64 units for the one-gate RNNs): the cell update runs right after
//!   the panel's product, on sums still in L1, and threads that split the
//!   panels never need each other's gates.
//! * Layer 0's input side is a table lookup when that is cheaper: one-hot
//!   inputs pick a column of `W_ih`, and a small vocabulary's embeddings are
//!   multiplied by `W_ih` ahead of time (`[V, G*H]`, bias included).
//! * The steps reuse the buffers of a [`StepWorkspace`]: no allocation per token.
//! * Layer-normalized layers (`--layer-norm`) keep PyTorch's row order (the
//!   normalization needs a whole row of sums before any cell can update):
//!   their panels only compute the two projections, and a pass per row
//!   normalizes them and runs the cell. With a table, layer 0's input side
//!   is stored normalized.
//!
//! Threads: at small batch each layer's panels are split between the threads,
//! so each core streams its half of the weights (the limit at batch 1); from
//! [`ROWS_PER_THREAD`] rows per thread on, each thread runs the whole network
//! for its own streams, with no hand-off between layers. Every output is one
//! sum in a fixed order either way, so results depend neither on the thread
//! count nor on the batch size: stream `i` of a batch gets exactly the logits
//! it would get alone. They differ from [`LanguageModel::step`]'s only by the
//! rounding of the sums (about 1e-6 relative).

mod cells;

use std::marker::PhantomData;
use std::ops::Range;

use recurrent_kernels::activation;
pub use recurrent_kernels::panel::WeightFormat;
use recurrent_kernels::panel::{
    panel_gemm, panel_gemm_raw, round_bf16, Init, PanelMatrix, Rows, LANES,
};
use recurrent_kernels::threads::{parallel_for, threads};
use recurrent_kernels::{MatMut, MatRef};
use recurrent_nn::cell::{gru, lstm, rnn};
use recurrent_nn::layer_norm;

use crate::check;
use crate::{CellKind, LanguageModel, ModelConfig, ModelError, State};

/// Rows per thread from which threads split the batch instead of the panels:
/// two full register tiles. By then a step is bound by arithmetic, not by
/// streaming the weights, so each thread reading all of them costs little
/// (both splits measured the same from batch 8 on, about 200 GFLOP/s on two
/// Zen 4 cores), and one hand-off per step instead of one per layer is less
/// exposed to a helper thread that lost its core to other work.
pub const ROWS_PER_THREAD: usize = 2 * recurrent_kernels::panel::TILE_ROWS;

/// Below this many multiply-adds per step the threads' hand-offs cost more than they save.
const MIN_PARALLEL_MACS: usize = 1 << 16;

/// A language model prepared for stepping: see the module documentation.
///
/// ```
/// use recurrent_kernels::Rng;
/// use recurrent_model::infer::{StepModel, StepWorkspace};
/// use recurrent_model::{CellKind, LanguageModel, ModelConfig, State};
///
/// let config = ModelConfig {
///     cell: CellKind::Gru,
///     vocab_size: 10,
///     embed: 8,
///     hidden: 16,
///     layers: 1,
///     dense: 0,
///     dropout: 0.0,
///     tie: false,
///     layer_norm: false,
///     last_hidden: 0,
/// };
/// let model = LanguageModel::new(config.clone(), &mut Rng::new(1), None).unwrap();
/// let stepper = StepModel::new(&model); // packs the weights once
/// let mut ws = StepWorkspace::default();
/// let mut state = State::zeros(&config, 2); // two streams
/// let mut tokens = vec![3, 7];
/// for _ in 0..4 {
///     let logits = stepper.step(&mut ws, &tokens, &mut state).unwrap(); // [2, 10]
///     // Greedy: feed each stream its most likely next token.
///     for (tok, row) in tokens.iter_mut().zip(logits.chunks_exact(10)) {
///         *tok = (0..10).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap() as u32;
///     }
/// }
/// assert!(tokens.iter().all(|&t| t < 10));
/// // A token outside the vocabulary is an error, not a panic.
/// assert!(stepper.step(&mut ws, &[3, 10], &mut state).is_err());
/// ```
pub struct StepModel {
    config: ModelConfig,
    format: WeightFormat,
    layers: Vec<StepLayer>,
    input: InputSide,
    dense: Option<Linear>,
    decoder: Linear,
}

/// Where layer 0's input-side sums come from.
enum InputSide {
    /// `[V, n0]`: per token, the sums in layer 0's packed column order, bias included.
    Table(Vec<f32>),
    /// `[V, E]` embedding rows, multiplied by layer 0's `w_x` at each step.
    Embedding(Vec<f32>),
}

/// A dense layer or the output projection: `y = x · Wᵀ + b`.
struct Linear {
    w: PanelMatrix,
    bias: Vec<f32>,
}

/// One recurrent layer's weights in packed column order (see [`GateLayout`]).
struct StepLayer {
    gates: GateLayout,
    /// `W_ih` (`None` for layer 0 when [`InputSide::Table`] replaces it).
    w_x: Option<PanelMatrix>,
    w_h: PanelMatrix,
    /// Where the input-side sums start: `b_ih`, plus `b_hh` but for GRU.
    bias_x: Vec<f32>,
    /// GRU: `b_hh`, where its hidden-side sums start (they stay apart because
    /// `r` multiplies the `n` gate's).
    bias_h: Vec<f32>,
    /// Layer-normalized layers: gains and biases (their projections start from zero).
    ln: Option<LnStep>,
}

/// A layer-normalized layer's parameters, in PyTorch's row order (see
/// `recurrent_nn::ln_recurrent`).
struct LnStep {
    ih_gain: Vec<f32>,
    ih_bias: Vec<f32>,
    hh_gain: Vec<f32>,
    hh_bias: Vec<f32>,
    /// LSTM: the cell state's LayerNorm, `[H]`.
    c_gain: Vec<f32>,
    c_bias: Vec<f32>,
    b_ih: Vec<f32>,
    b_hh: Vec<f32>,
}

/// How the `G*H` gate rows of a recurrent layer map to packed columns: units
/// go in blocks of 16, each block's gates side by side (`i f g o` for LSTM,
/// `r z n` for GRU), so panel `p` holds all gates of units `16p..16p+16`. The
/// one-gate RNNs put 64 units in a panel instead. Units past `H` are zero
/// padding. Layer-normalized layers keep PyTorch's order (`natural`), padded
/// at the end.
#[derive(Clone, Copy, Debug)]
struct GateLayout {
    gates: usize,
    hidden: usize,
    natural: bool,
}

impl GateLayout {
    fn new(cell: CellKind, hidden: usize, natural: bool) -> GateLayout {
        GateLayout {
            gates: cell.gates(),
            hidden,
            natural,
        }
    }

    /// Vectors of 16 columns per panel.
    fn vectors(&self) -> usize {
        if self.gates == 1 || self.natural {
            4
        } else {
            self.gates
        }
    }

    /// Packed columns: the units rounded up to 16, times the gates.
    fn cols(&self) -> usize {
        if self.natural {
            return (self.gates * self.hidden).div_ceil(LANES) * LANES;
        }
        self.hidden.div_ceil(LANES) * LANES * self.gates
    }

    /// Units per panel (the last panel may have fewer).
    fn panel_units(&self) -> usize {
        self.vectors() * LANES / self.gates
    }

    /// The PyTorch weight row behind packed column `j`, or `None` for padding.
    fn source(&self, j: usize) -> Option<usize> {
        if self.natural {
            return (j < self.gates * self.hidden).then_some(j);
        }
        let (block, lane) = (j / LANES, j % LANES);
        let gate = block % self.gates;
        let unit = block / self.gates * LANES + lane;
        (unit < self.hidden).then_some(gate * self.hidden + unit)
    }

    /// Packs `w: [G*H, k]` (a PyTorch weight) in this column order.
    fn pack(&self, w: &[f32], k: usize, format: WeightFormat) -> PanelMatrix {
        PanelMatrix::pack(k, self.cols(), self.vectors(), format, |j| {
            self.source(j).map(|r| &w[r * k..(r + 1) * k])
        })
    }

    /// `v: [G*H]` in packed column order (zero for padding).
    fn permute(&self, v: impl Fn(usize) -> f32) -> Vec<f32> {
        (0..self.cols())
            .map(|j| self.source(j).map_or(0.0, &v))
            .collect()
    }
}

/// Buffers for stepping, sized on first use for a batch and reused.
#[derive(Default)]
pub struct StepWorkspace {
    batch: usize,
    /// `[B, E]` the embedding rows of the step's tokens (without a table).
    x: Vec<f32>,
    /// `[B, n]` a layer's gate sums (GRU: input side), packed column order,
    /// `n` the widest layer's gate columns for every layer.
    gates: Vec<f32>,
    /// The row stride `n` of `gates` and `hidden_sums`.
    gates_ld: usize,
    /// GRU and layer-normalized layers: `[B, n]` the hidden-side sums.
    hidden_sums: Vec<f32>,
    /// `[L, B, H]` the new hidden states (swapped into the [`State`] after the step).
    h_new: Vec<f32>,
    /// `[B, D]` the dense layer's output.
    dense: Vec<f32>,
    /// `[B, V]` the logits.
    logits: Vec<f32>,
}

/// A weight matrix as `format` holds it (a copy, rounded for bf16).
fn weights(model: &LanguageModel, name: &str, format: WeightFormat) -> Vec<f32> {
    let w = tensor(model, name);
    match format {
        WeightFormat::F32 => w.to_vec(),
        WeightFormat::Bf16 => w.iter().map(|&x| round_bf16(x)).collect(),
    }
}

fn tensor<'m>(model: &'m LanguageModel, name: &str) -> &'m [f32] {
    let e = model
        .layout
        .get(name)
        .expect("parameter of the architecture");
    &model.params[e.range()]
}

impl Linear {
    /// `w: [out, in]` (PyTorch layout) and `bias: [out]`.
    fn new(w: &[f32], bias: &[f32], inputs: usize, format: WeightFormat) -> Linear {
        let outs = bias.len();
        let row = |j: usize| Some(&w[j * inputs..(j + 1) * inputs]);
        Linear {
            w: PanelMatrix::pack(inputs, outs, 4, format, row),
            bias: bias.to_vec(),
        }
    }
}

impl StepLayer {
    /// Layer `k` of `model`; `with_w_x` false leaves the input side to a table.
    fn new(model: &LanguageModel, k: usize, with_w_x: bool, format: WeightFormat) -> StepLayer {
        let cfg = &model.config;
        let h = cfg.layer_hidden(k);
        let gates = GateLayout::new(cfg.cell, h, cfg.layer_norm);
        let get = |n: &str| tensor(model, &format!("rnn.{n}_l{k}"));
        let (b_ih, b_hh) = (get("bias_ih"), get("bias_hh"));
        let gru = cfg.cell == CellKind::Gru;
        let w_x = with_w_x.then(|| gates.pack(get("weight_ih"), cfg.layer_input(k), format));
        let w_h = gates.pack(get("weight_hh"), h, format);
        if cfg.layer_norm {
            // Both projections start from zero; the biases come after the norms.
            let zeros = vec![0.0; gates.cols()];
            let cell = |n: &str| if gru { Vec::new() } else { get(n).to_vec() };
            return StepLayer {
                gates,
                w_x,
                w_h,
                bias_x: zeros.clone(),
                bias_h: zeros,
                ln: Some(LnStep {
                    ih_gain: get("ln_ih_weight").to_vec(),
                    ih_bias: get("ln_ih_bias").to_vec(),
                    hh_gain: get("ln_hh_weight").to_vec(),
                    hh_bias: get("ln_hh_bias").to_vec(),
                    c_gain: cell("ln_c_weight"),
                    c_bias: cell("ln_c_bias"),
                    b_ih: b_ih.to_vec(),
                    b_hh: b_hh.to_vec(),
                }),
            };
        }
        StepLayer {
            gates,
            w_x,
            w_h,
            // The same `b_ih + b_hh` sum as the training forward.
            bias_x: gates.permute(|r| if gru { b_ih[r] } else { b_ih[r] + b_hh[r] }),
            bias_h: if gru {
                gates.permute(|r| b_hh[r])
            } else {
                Vec::new()
            },
            ln: None,
        }
    }
}

impl StepModel {
    /// Packs `model`'s weights for stepping (a copy: the model may change or
    /// go away afterwards without affecting this one).
    pub fn new(model: &LanguageModel) -> StepModel {
        Self::with_format(model, WeightFormat::F32)
    }

    /// [`StepModel::new`] with the weights stored in `format`. With
    /// [`WeightFormat::Bf16`] the steps compute the model whose weight
    /// matrices are rounded to bfloat16
    /// ([`LanguageModel::round_weights_to_bf16`]), with half the bytes to
    /// stream per token: at batch 1 about twice as fast when the weights do
    /// not fit in L2, at the cost of a small change in the logits.
    pub fn with_format(model: &LanguageModel, format: WeightFormat) -> StepModel {
        Self::build(model, Self::embedding_table_pays(&model.config), format)
    }

    /// [`StepModel::new`], choosing whether embeddings go through a table and
    /// how the matrices are stored. For bf16 the packing rounds every packed
    /// matrix; the embeddings and layer 0's `W_ih` behind the input tables are
    /// rounded here, so that everything matches the rounded model.
    fn build(model: &LanguageModel, use_table: bool, format: WeightFormat) -> StepModel {
        let cfg = &model.config;
        let table = cfg.embed == 0 || use_table;
        let mut layers: Vec<StepLayer> = (0..cfg.layers)
            .map(|k| StepLayer::new(model, k, k > 0 || cfg.embed > 0, format))
            .collect();
        let mut input = if !table {
            InputSide::Embedding(weights(model, "encoder.weight", format))
        } else if cfg.embed == 0 {
            InputSide::Table(one_hot_table(model, &layers[0], format))
        } else {
            let t = embedding_table(model, &layers[0], format);
            layers[0].w_x = None;
            InputSide::Table(t)
        };
        if let (InputSide::Table(t), Some(ln)) = (&mut input, &layers[0].ln) {
            // A token's input projection is normalized once, here.
            let (n, gh) = (
                layers[0].gates.cols(),
                layers[0].gates.gates * cfg.layer_hidden(0),
            );
            for row in t.chunks_exact_mut(n) {
                layer_norm::normalize_row(&mut row[..gh], &ln.ih_gain, &ln.ih_bias);
            }
        }
        let dense = (cfg.dense > 0).then(|| {
            let w = tensor(model, "dense.weight");
            Linear::new(w, tensor(model, "dense.bias"), cfg.top_hidden(), format)
        });
        let dec = if cfg.tie {
            "encoder.weight"
        } else {
            "decoder.weight"
        };
        let decoder = Linear::new(
            tensor(model, dec),
            tensor(model, "decoder.bias"),
            cfg.head_input(),
            format,
        );
        StepModel {
            config: cfg.clone(),
            format,
            layers,
            input,
            dense,
            decoder,
        }
    }

    /// Whether to precompute layer 0's input side for every token: when the
    /// table is at most 4 times the size of `W_ih` (a per-token lookup then
    /// replaces a product over `W_ih`) or small anyway (32 MB).
    fn embedding_table_pays(cfg: &ModelConfig) -> bool {
        let n0 = GateLayout::new(cfg.cell, cfg.layer_hidden(0), cfg.layer_norm).cols();
        cfg.vocab_size <= 4 * cfg.embed || cfg.vocab_size * n0 <= 8 << 20
    }

    /// The configuration of the model this was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// How the weight matrices are stored.
    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// Bytes of prepared weights.
    pub fn weight_bytes(&self) -> usize {
        let lin = |l: &Linear| l.w.bytes() + 4 * l.bias.len();
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                l.w_x.as_ref().map_or(0, |w| w.bytes())
                    + l.w_h.bytes()
                    + 4 * (l.bias_x.len() + l.bias_h.len())
            })
            .sum();
        let input = match &self.input {
            InputSide::Table(t) | InputSide::Embedding(t) => 4 * t.len(),
        };
        layers + input + self.dense.as_ref().map_or(0, lin) + lin(&self.decoder)
    }

    /// One generation step for `B` streams, as [`LanguageModel::step`]: feeds
    /// `tokens: [B]`, advances `state` (`[L, B, H]`) and returns the next-token
    /// logits `[B, V]`.
    ///
    /// # Errors
    /// [`ModelError`] when `tokens` is empty or holds an id outside the
    /// vocabulary, or `state` is not `B` streams of this model.
    pub fn step<'w>(
        &self,
        ws: &'w mut StepWorkspace,
        tokens: &[u32],
        state: &mut State,
    ) -> Result<&'w [f32], ModelError> {
        let cfg = &self.config;
        check::nonzero("batch", tokens.len())?;
        check::tokens("tokens", tokens, cfg.vocab_size)?;
        check::state(cfg, state, tokens.len())?;
        let small = self.macs_per_row() * tokens.len() < MIN_PARALLEL_MACS;
        let t = if small { 1 } else { threads() };
        Ok(self.step_on(ws, tokens, state, t))
    }

    /// [`StepModel::step`] on up to `threads` threads.
    fn step_on<'w>(
        &self,
        ws: &'w mut StepWorkspace,
        tokens: &[u32],
        state: &mut State,
        threads: usize,
    ) -> &'w [f32] {
        let cfg = &self.config;
        let b = tokens.len();
        debug_assert!(check::state(cfg, state, b).is_ok(), "checked by step");
        ws.ensure(self, b);
        if let InputSide::Embedding(e) = &self.input {
            let w = cfg.embed;
            for (row, &t) in ws.x.chunks_exact_mut(w).zip(tokens) {
                row.copy_from_slice(&e[t as usize * w..][..w]);
            }
        }
        let bufs = Bufs::new(ws, state, tokens);
        self.run(&bufs, b, threads);
        // The new hidden state becomes the state; the old one is scratch now.
        std::mem::swap(&mut state.h, &mut ws.h_new);
        &ws.logits[..b * cfg.vocab_size]
    }

    /// Runs every layer and the head on the threads, split as the module
    /// documentation says.
    fn run(&self, bufs: &Bufs<'_>, b: usize, threads: usize) {
        let t = threads.max(1);
        let parts = (b / ROWS_PER_THREAD).clamp(1, t);
        if parts > 1 || t == 1 {
            parallel_for(parts, &|i| {
                let rows = share(b, parts, i);
                for k in 0..self.layers.len() {
                    let all = 0..self.layers[k].w_h.panels();
                    // SAFETY: each task writes only its own rows.
                    unsafe {
                        self.layer(k, bufs, rows.clone(), all);
                        self.ln_update(k, bufs, rows.clone());
                    }
                }
                // SAFETY: as above.
                unsafe { self.head(bufs, rows, None) };
            });
            return;
        }
        for k in 0..self.layers.len() {
            let panels = self.layers[k].w_h.panels();
            let t = t.min(panels);
            parallel_for(t, &|i| {
                // SAFETY: each task writes only its own panels' columns and units.
                unsafe { self.layer(k, bufs, 0..b, share(panels, t, i)) };
            });
            // SAFETY: the products are done and nothing else runs.
            unsafe { self.ln_update(k, bufs, 0..b) };
        }
        self.head_split(bufs, b, t);
    }

    /// Multiply-adds per stream and step (for the threading decision).
    fn macs_per_row(&self) -> usize {
        let size = |w: &PanelMatrix| w.shape().0 * w.shape().1;
        let layers: usize = self
            .layers
            .iter()
            .map(|l| l.w_x.as_ref().map_or(0, size) + size(&l.w_h))
            .sum();
        layers + self.dense.as_ref().map_or(0, |d| size(&d.w)) + size(&self.decoder.w)
    }

    /// The head with its panels split among `t` threads, the dense layer first.
    fn head_split(&self, bufs: &Bufs<'_>, b: usize, t: usize) {
        let cfg = &self.config;
        if let Some(d) = &self.dense {
            let panels = d.w.panels();
            let t = t.min(panels);
            parallel_for(t, &|i| {
                let (top, p) = (bufs.top(cfg, 0), share(panels, t, i));
                // SAFETY: each task writes only its own panels' columns.
                unsafe {
                    linear(
                        d,
                        b,
                        Rows::new(top, cfg.top_hidden()),
                        p,
                        Rows::new(bufs.dense, cfg.dense),
                        true,
                    )
                };
            });
        }
        let panels = self.decoder.w.panels();
        let t = t.min(panels);
        parallel_for(t, &|i| {
            // SAFETY: as above.
            unsafe { self.head(bufs, 0..b, Some(share(panels, t, i))) };
        });
    }

    /// The head for `rows`: the dense layer over all its panels (unless
    /// `decoder_panels` is given, which means it ran already), then the
    /// decoder's `decoder_panels` (all by default).
    ///
    /// # Safety
    /// No other thread may touch these rows' (or panels') outputs meanwhile.
    unsafe fn head(
        &self,
        bufs: &Bufs<'_>,
        rows: Range<usize>,
        decoder_panels: Option<Range<usize>>,
    ) {
        let cfg = &self.config;
        let m = rows.len();
        let mut x = bufs.top(cfg, rows.start);
        let mut width = cfg.top_hidden();
        if let Some(d) = &self.dense {
            let out = bufs.dense.wrapping_add(rows.start * cfg.dense);
            if decoder_panels.is_none() {
                // SAFETY: `x` holds these rows of the top layer's output, which
                // is done; these rows of the dense output are this task's
                // alone (the caller's promise).
                unsafe {
                    linear(
                        d,
                        m,
                        Rows::new(x, width),
                        0..d.w.panels(),
                        Rows::new(out, cfg.dense),
                        true,
                    )
                };
            }
            (x, width) = (out, cfg.dense);
        }
        let v = cfg.vocab_size;
        let panels = decoder_panels.unwrap_or(0..self.decoder.w.panels());
        let out = bufs.logits.wrapping_add(rows.start * v);
        // SAFETY: `x` holds these rows of the decoder's input, which is done;
        // these rows' (or panels') logits are this task's alone.
        unsafe {
            linear(
                &self.decoder,
                m,
                Rows::new(x, width),
                panels,
                Rows::new(out, v),
                false,
            )
        };
    }

    /// Layer `k` for `rows` and the units of `panels`: input-side and
    /// hidden-side products of each panel, then its cell update.
    ///
    /// # Safety
    /// No other thread may touch these rows and panels' outputs meanwhile, and
    /// the layer below must be done with these rows.
    unsafe fn layer(&self, k: usize, bufs: &Bufs<'_>, rows: Range<usize>, panels: Range<usize>) {
        let (lay, cfg) = (&self.layers[k], &self.config);
        let (b, h, ld) = (bufs.batch, cfg.layer_hidden(k), bufs.gates_ld);
        let (m, r0) = (rows.len(), rows.start);
        let gates = bufs.gates.wrapping_add(r0 * ld);
        let hs = bufs.hidden_sums.wrapping_add(r0 * ld);
        let h_prev = bufs.h_old[cfg.state_range(k, b).start + r0 * h..].as_ptr();
        for p in panels {
            let one = p..p + 1;
            if lay.ln.is_some() {
                // Products only: the norms need whole rows (`ln_update`).
                // SAFETY: `h_prev` holds these rows of the old state (`h`
                // wide, only read); panel `p`'s columns of these rows of the
                // sums are this task's alone (the caller's promise).
                unsafe {
                    self.input_side(k, bufs, rows.clone(), p);
                    panel_gemm_raw(
                        m,
                        Rows::new(h_prev, h),
                        &lay.w_h,
                        one,
                        Init::Zero,
                        Rows::new(hs, ld),
                    );
                }
                continue;
            }
            self.prefetch_state(k, bufs, rows.clone(), p);
            // SAFETY: as above; panel `p`'s units of these rows' state are
            // this task's alone too.
            unsafe {
                self.input_side(k, bufs, rows.clone(), p);
                if cfg.cell == CellKind::Gru {
                    let (a, y) = (Rows::new(h_prev, h), Rows::new(hs, ld));
                    panel_gemm_raw(m, a, &lay.w_h, one, Init::Row(&lay.bias_h), y);
                } else {
                    let (a, y) = (Rows::new(h_prev, h), Rows::new(gates, ld));
                    panel_gemm_raw(m, a, &lay.w_h, one, Init::Accumulate, y);
                }
                self.update(k, bufs, rows.clone(), p);
            }
        }
    }

    /// Asks for the state the cell update of panel `p` will read (LSTM: `c`;
    /// GRU: `h_prev`) while the products run. A row's units of one panel are
    /// one or two cache lines, a row apart (`H` floats) from the next row's,
    /// and the weights streamed since the last step have pushed them out of
    /// L2: without this, every row's update starts with a cache miss.
    fn prefetch_state(&self, k: usize, bufs: &Bufs<'_>, rows: Range<usize>, p: usize) {
        let (h, b) = (self.config.layer_hidden(k), bufs.batch);
        let layer_start = self.config.state_range(k, b).start;
        let src = match self.config.cell {
            CellKind::Lstm => bufs.c as *const f32,
            CellKind::Gru => bufs.h_old.as_ptr(),
            _ => return,
        };
        let u0 = p * self.layers[k].gates.panel_units();
        let last = (h - u0).min(LANES) - 1;
        for r in rows {
            let at = layer_start + r * h + u0;
            prefetch(src.wrapping_add(at));
            prefetch(src.wrapping_add(at + last));
        }
    }

    /// Layer `k`'s input-side sums of panel `p` for `rows`, into `bufs.gates`.
    ///
    /// # Safety
    /// As [`StepModel::layer`].
    unsafe fn input_side(&self, k: usize, bufs: &Bufs<'_>, rows: Range<usize>, p: usize) {
        let (lay, cfg) = (&self.layers[k], &self.config);
        let (b, n, ld) = (bufs.batch, lay.gates.cols(), bufs.gates_ld);
        let gates = bufs.gates.wrapping_add(rows.start * ld);
        let m = rows.len();
        let one = p..p + 1;
        let init = Init::Row(&lay.bias_x);
        match (&self.input, &lay.w_x) {
            (InputSide::Table(table), None) if k == 0 => {
                let cols = lay.w_h.panel_cols(p);
                for r in rows {
                    let tok = bufs.tokens[r] as usize;
                    let src = &table[tok * n + cols.start..tok * n + cols.end];
                    let dst = bufs.gates.wrapping_add(r * ld + cols.start);
                    // SAFETY: `dst` is panel `p`'s columns of row `r` of the
                    // sums (inside the row: `cols.end <= ld`), this task's
                    // alone (the caller's promise); `src` is another buffer.
                    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
                }
            }
            (InputSide::Embedding(_), Some(w)) if k == 0 => {
                let e = cfg.embed;
                let x = bufs.x[rows.start * e..].as_ptr();
                // SAFETY: `x` holds these rows' embeddings (only read); panel
                // `p`'s columns of these rows of the sums are this task's.
                unsafe { panel_gemm_raw(m, Rows::new(x, e), w, one, init, Rows::new(gates, ld)) };
            }
            (_, Some(w)) => {
                let below = cfg.layer_hidden(k - 1);
                let x = bufs
                    .h_new
                    .wrapping_add(cfg.state_range(k - 1, b).start + rows.start * below);
                // SAFETY: the layer below is done with these rows (the
                // caller's promise), so its outputs are only read here; panel
                // `p`'s columns of these rows of the sums are this task's.
                unsafe {
                    panel_gemm_raw(
                        m,
                        Rows::new(x.cast_const(), below),
                        w,
                        one,
                        init,
                        Rows::new(gates, ld),
                    )
                };
            }
            (_, None) => unreachable!("only layer 0 reads a table"),
        }
    }

    /// A layer-normalized layer's norms and cell for `rows`, after its
    /// products: the same formulas and operation order as
    /// `recurrent_nn::ln_recurrent`'s forward step (nothing for plain layers).
    ///
    /// # Safety
    /// As [`StepModel::layer`], with every panel of these rows done.
    unsafe fn ln_update(&self, k: usize, bufs: &Bufs<'_>, rows: Range<usize>) {
        let (lay, cfg) = (&self.layers[k], &self.config);
        let Some(ln) = &lay.ln else { return };
        let (b, h, ld) = (bufs.batch, cfg.layer_hidden(k), bufs.gates_ld);
        let gh = lay.gates.gates * h;
        let normalized_input = k == 0 && matches!(self.input, InputSide::Table(_));
        for r in rows {
            let state = cfg.state_range(k, b).start + r * h;
            // SAFETY: row `r` of both sums (`gh <= ld` wide) and of the new
            // state are this task's alone, and every product into them is done
            // (the caller's promise); the three are different buffers.
            let (ax, ah, h_out) = unsafe {
                (
                    std::slice::from_raw_parts_mut(bufs.gates.wrapping_add(r * ld), gh),
                    std::slice::from_raw_parts_mut(bufs.hidden_sums.wrapping_add(r * ld), gh),
                    std::slice::from_raw_parts_mut(bufs.h_new.wrapping_add(state), h),
                )
            };
            if !normalized_input {
                layer_norm::normalize_row(ax, &ln.ih_gain, &ln.ih_bias);
            }
            layer_norm::normalize_row(ah, &ln.hh_gain, &ln.hh_bias);
            let (bi, bh) = (&ln.b_ih, &ln.b_hh);
            if cfg.cell == CellKind::Gru {
                let hp = &bufs.h_old[state..state + h];
                let g = |v| gru_gates(v, h);
                cells::ln_gru(g(ax), g(ah), g(bi), g(bh), hp, h_out);
                continue;
            }
            // LSTM: c = σ(f) c + σ(i) tanh(g), then h = σ(o) tanh(LN(c)),
            // with σ(o) kept in `ax`'s o rows and LN(c) staged in `h_out`.
            // SAFETY: as above, for row `r` of the cell state.
            let c = unsafe { std::slice::from_raw_parts_mut(bufs.c.wrapping_add(state), h) };
            cells::ln_lstm_cell(ax, ah, bi, bh, c);
            h_out.copy_from_slice(c);
            layer_norm::normalize_row(h_out, &ln.c_gain, &ln.c_bias);
            cells::ln_lstm_output(&ax[3 * h..], h_out);
        }
    }

    /// The cell update of layer `k` for the units of panel `p` and `rows`.
    ///
    /// # Safety
    /// As [`StepModel::layer`].
    unsafe fn update(&self, k: usize, bufs: &Bufs<'_>, rows: Range<usize>, p: usize) {
        let (lay, cfg) = (&self.layers[k], &self.config);
        let (b, h, ld) = (bufs.batch, cfg.layer_hidden(k), bufs.gates_ld);
        let layer_start = cfg.state_range(k, b).start;
        let units = lay.gates.panel_units();
        let u0 = p * units;
        let u = units.min(h - u0);
        let col0 = p * units * lay.gates.gates;
        for r in rows {
            let sums = |buf: *mut f32, g: usize| {
                // SAFETY: panel `p`'s sums of row `r` (`u` per gate, inside
                // the row) are this task's alone, and done.
                unsafe { view(buf.wrapping_add(r * ld + col0 + g * units), u) }
            };
            let state = layer_start + r * h + u0;
            // SAFETY: panel `p`'s units of row `r` of the new state are this
            // task's alone (the caller's promise).
            let h_out =
                unsafe { std::slice::from_raw_parts_mut(bufs.h_new.wrapping_add(state), u) };
            match cfg.cell {
                CellKind::Lstm => {
                    // SAFETY: as for `h_out`, in the cell state.
                    let c =
                        unsafe { std::slice::from_raw_parts_mut(bufs.c.wrapping_add(state), u) };
                    let g = |i| sums(bufs.gates, i);
                    lstm::forward_in_place([g(0), g(1), g(2), g(3)], c, h_out);
                }
                CellKind::Gru => {
                    let x = |i| sums(bufs.gates, i);
                    let hs = |i| sums(bufs.hidden_sums, i);
                    let hp = &bufs.h_old[state..state + u];
                    gru::forward_units([x(0), x(1), x(2)], [hs(0), hs(1), hs(2)], hp, h_out);
                }
                CellKind::RnnTanh => rnn::tanh_forward_units(sums(bufs.gates, 0), h_out),
                CellKind::RnnRelu => {
                    rnn::relu_forward_units(sums(bufs.gates, 0), h_out);
                }
            }
        }
    }
}

/// `y[rows, cols of panels] = x · Wᵀ + b` (then ReLU when `relu`) for `m` rows of `x` and `y`.
///
/// # Safety
/// `x` valid for `m` rows, `y` for the panels' columns of `m` rows, not
/// touched by others meanwhile.
unsafe fn linear(
    l: &Linear,
    m: usize,
    x: Rows<*const f32>,
    panels: Range<usize>,
    y: Rows<*mut f32>,
    relu: bool,
) {
    if panels.is_empty() {
        return;
    }
    let cols = l.w.panel_cols(panels.start).start..l.w.panel_cols(panels.end - 1).end;
    // SAFETY: the caller's promise, and `bias` holds every column's value.
    unsafe { panel_gemm_raw(m, x, &l.w, panels, Init::Row(&l.bias), y) };
    if relu {
        for r in 0..m {
            // SAFETY: the panels' columns of row `r`, the caller's to write.
            let row = unsafe {
                std::slice::from_raw_parts_mut(
                    y.ptr.wrapping_add(r * y.ld + cols.start),
                    cols.len(),
                )
            };
            row.iter_mut().for_each(|v| *v = activation::relu(*v));
        }
    }
}

/// The `r z n` rows (`[H]` each) of a GRU layer's `[3H]` row.
fn gru_gates(v: &[f32], h: usize) -> [&[f32]; 3] {
    [&v[..h], &v[h..2 * h], &v[2 * h..3 * h]]
}

/// Hints the CPU to bring the cache line holding `p` into L1 (no-op elsewhere).
#[inline(always)]
fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// `len` floats at `p` as a slice.
///
/// # Safety
/// Valid for reads, and not written by anyone while the slice lives.
unsafe fn view<'a>(p: *const f32, len: usize) -> &'a [f32] {
    // SAFETY: the caller's promise.
    unsafe { std::slice::from_raw_parts(p, len) }
}

/// Part `i` of `0..n` split in `parts` contiguous, nearly equal pieces.
fn share(n: usize, parts: usize, i: usize) -> Range<usize> {
    n * i / parts..n * (i + 1) / parts
}

/// The table of layer 0's input-side sums for one-hot inputs: row `t` is
/// column `t` of `W_ih` plus the bias, in packed column order.
fn one_hot_table(model: &LanguageModel, layer: &StepLayer, format: WeightFormat) -> Vec<f32> {
    let v = model.config.vocab_size;
    let w_ih = weights(model, "rnn.weight_ih_l0", format);
    let n = layer.gates.cols();
    let mut table = vec![0.0; v * n];
    for (t, row) in table.chunks_exact_mut(n).enumerate() {
        for (j, s) in row.iter_mut().enumerate() {
            if let Some(r) = layer.gates.source(j) {
                // As the training forward: the bias plus exactly `1 · w`.
                *s = layer.bias_x[j] + w_ih[r * v + t];
            }
        }
    }
    table
}

/// The table of layer 0's input-side sums for every token's embedding:
/// `E · W_ihᵀ + bias`, `[V, n0]`, computed by the same kernel a step would use.
fn embedding_table(model: &LanguageModel, layer: &StepLayer, format: WeightFormat) -> Vec<f32> {
    let (v, e) = (model.config.vocab_size, model.config.embed);
    let w = layer.w_x.as_ref().expect("layer 0 packed with W_ih");
    let n = layer.gates.cols();
    let mut table = vec![0.0; v * n];
    let emb = weights(model, "encoder.weight", format);
    let (emb, out) = (MatRef::new(&emb, v, e), MatMut::new(&mut table, v, n));
    panel_gemm(emb, w, 0..w.panels(), Init::Row(&layer.bias_x), out);
    table
}

impl StepWorkspace {
    /// Sizes the buffers for `model` at batch `b` (allocates only when they grow).
    fn ensure(&mut self, model: &StepModel, b: usize) {
        let cfg = &model.config;
        let n = model
            .layers
            .iter()
            .map(|l| l.gates.cols())
            .max()
            .unwrap_or(0);
        let grow = |v: &mut Vec<f32>, len: usize| {
            if v.len() != len {
                v.resize(len, 0.0);
            }
        };
        grow(&mut self.x, b * cfg.embed);
        self.gates_ld = n;
        grow(&mut self.gates, b * n);
        if cfg.cell == CellKind::Gru || cfg.layer_norm {
            grow(&mut self.hidden_sums, b * n);
        }
        grow(&mut self.h_new, cfg.state_len(b));
        grow(&mut self.dense, b * cfg.dense);
        grow(&mut self.logits, b * cfg.vocab_size);
        self.batch = b;
    }
}

/// One step's buffers as the threads that split it see them: the inputs as
/// slices, the outputs as raw pointers because threads write disjoint
/// *columns* (panels) of the same rows, which neither slices nor
/// [`recurrent_kernels::SharedMut`]'s contiguous ranges can express (and
/// [`panel_gemm_raw`] takes pointers). Each task writes only its own rows, or
/// its own panels' columns and units. All of it borrows the workspace, the
/// state and the tokens for `'a`, so none can go away while a task runs.
struct Bufs<'a> {
    batch: usize,
    tokens: &'a [u32],
    /// `[B, E]` the step's embedding rows (read only).
    x: &'a [f32],
    /// Gate sums, `[B, gates_ld]`: one row stride for every layer, the widest
    /// layer's, so that threads on different layers and rows never overlap.
    gates: *mut f32,
    gates_ld: usize,
    hidden_sums: *mut f32,
    /// The state the step starts from (read only).
    h_old: &'a [f32],
    h_new: *mut f32,
    c: *mut f32,
    dense: *mut f32,
    logits: *mut f32,
    _outputs: PhantomData<&'a mut [f32]>,
}

// SAFETY: the raw pointers are `&mut` borrows for `'a` that the tasks split
// among themselves (see the type's documentation); the rest is shared slices.
unsafe impl Sync for Bufs<'_> {}

impl<'a> Bufs<'a> {
    fn new(ws: &'a mut StepWorkspace, state: &'a mut State, tokens: &'a [u32]) -> Bufs<'a> {
        Bufs {
            batch: ws.batch,
            tokens,
            x: &ws.x,
            gates: ws.gates.as_mut_ptr(),
            gates_ld: ws.gates_ld,
            hidden_sums: ws.hidden_sums.as_mut_ptr(),
            h_old: &state.h,
            h_new: ws.h_new.as_mut_ptr(),
            c: state.c.as_mut_ptr(),
            dense: ws.dense.as_mut_ptr(),
            logits: ws.logits.as_mut_ptr(),
            _outputs: PhantomData,
        }
    }

    /// The top layer's new hidden state from row `r` on (`[B, H_top]` rows).
    fn top(&self, cfg: &ModelConfig, r: usize) -> *const f32 {
        let start = cfg.state_range(cfg.layers - 1, self.batch).start;
        self.h_new.wrapping_add(start + r * cfg.top_hidden())
    }
}

#[cfg(test)]
mod tests;
