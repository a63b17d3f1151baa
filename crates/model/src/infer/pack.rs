//! Packing a language model's weights for stepping: the gate order of the
//! panels ([`GateLayout`]), the recurrent layers, the head, and layer 0's
//! input tables. With [`WeightFormat::Bf16`] every matrix is rounded to
//! bfloat16 here, once: the packed panels (by `PanelMatrix::pack`) and the
//! embeddings and `W_ih` behind the tables (by [`weights`]), so that a step
//! computes exactly the rounded model.

use recurrent_kernels::panel::{panel_gemm, round_bf16, Init, PanelMatrix, WeightFormat, LANES};
use recurrent_kernels::{MatMut, MatRef};
use recurrent_nn::layer_norm;

use super::StepModel;
use crate::{CellKind, LanguageModel, ModelConfig};

/// Where layer 0's input-side sums come from.
pub(super) enum InputSide {
    /// `[V, n0]`: per token, the sums in layer 0's packed column order, bias included.
    Table(Vec<f32>),
    /// `[V, E]` embedding rows, multiplied by layer 0's `w_x` at each step.
    Embedding(Vec<f32>),
}

/// A dense layer or the output projection: `y = x · Wᵀ + b`.
pub(super) struct Linear {
    pub(super) w: PanelMatrix,
    pub(super) bias: Vec<f32>,
}

/// One recurrent layer's weights in packed column order (see [`GateLayout`]).
pub(super) struct StepLayer {
    pub(super) gates: GateLayout,
    /// `W_ih` (`None` for layer 0 when [`InputSide::Table`] replaces it).
    pub(super) w_x: Option<PanelMatrix>,
    pub(super) w_h: PanelMatrix,
    /// Where the input-side sums start: `b_ih`, plus `b_hh` but for GRU.
    pub(super) bias_x: Vec<f32>,
    /// GRU: `b_hh`, where its hidden-side sums start (they stay apart because
    /// `r` multiplies the `n` gate's).
    pub(super) bias_h: Vec<f32>,
    /// Layer-normalized layers: gains and biases (their projections start from zero).
    pub(super) ln: Option<LnStep>,
}

/// A layer-normalized layer's parameters, in PyTorch's row order (see
/// `recurrent_nn::ln_recurrent`).
pub(super) struct LnStep {
    pub(super) ih_gain: Vec<f32>,
    pub(super) ih_bias: Vec<f32>,
    pub(super) hh_gain: Vec<f32>,
    pub(super) hh_bias: Vec<f32>,
    /// LSTM: the cell state's LayerNorm, `[H]`.
    pub(super) c_gain: Vec<f32>,
    pub(super) c_bias: Vec<f32>,
    pub(super) b_ih: Vec<f32>,
    pub(super) b_hh: Vec<f32>,
}

/// How the `G*H` gate rows of a recurrent layer map to packed columns: units
/// go in blocks of 16, each block's gates side by side (`i f g o` for LSTM,
/// `r z n` for GRU), so panel `p` holds all gates of units `16p..16p+16`. The
/// one-gate RNNs put 64 units in a panel instead. Units past `H` are zero
/// padding. Layer-normalized layers keep PyTorch's order (`natural`), padded
/// at the end.
#[derive(Clone, Copy, Debug)]
pub(super) struct GateLayout {
    pub(super) gates: usize,
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
    pub(super) fn cols(&self) -> usize {
        if self.natural {
            return (self.gates * self.hidden).div_ceil(LANES) * LANES;
        }
        self.hidden.div_ceil(LANES) * LANES * self.gates
    }

    /// Units per panel (the last panel may have fewer).
    pub(super) fn panel_units(&self) -> usize {
        self.vectors() * LANES / self.gates
    }

    /// The PyTorch weight row behind packed column `j`, or `None` for padding.
    pub(super) fn source(&self, j: usize) -> Option<usize> {
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
    /// [`StepModel::new`], choosing whether embeddings go through a table and
    /// how the matrices are stored. For bf16 the packing rounds every packed
    /// matrix; the embeddings and layer 0's `W_ih` behind the input tables are
    /// rounded here, so that everything matches the rounded model.
    pub(super) fn build(model: &LanguageModel, use_table: bool, format: WeightFormat) -> StepModel {
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
    pub(super) fn embedding_table_pays(cfg: &ModelConfig) -> bool {
        let n0 = GateLayout::new(cfg.cell, cfg.layer_hidden(0), cfg.layer_norm).cols();
        cfg.vocab_size <= 4 * cfg.embed || cfg.vocab_size * n0 <= 8 << 20
    }
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
