//! A language model as two ONNX graphs over the same weights:
//!
//! - the sequence graph: `tokens [T, B]` (int64) and each layer's state in,
//!   `logits [T, B, V]` and each layer's state after the last token out;
//! - the step graph: `token [B]` and the states in, `logits [B, V]` and the
//!   next states out, for generating one token at a time.
//!
//! States are `h.{k}` (and `c.{k}` for an LSTM) of shape `[1, B, H_k]` for
//! layer `k` in, `h_next.{k}` / `c_next.{k}` out, so one graph's outputs feed
//! the next call's inputs. Start from zeros.
//!
//! Each recurrent layer is ONNX's own `LSTM`, `GRU` or `RNN` operator. ONNX
//! orders the gate rows differently from PyTorch (and recurrent): LSTM
//! `i o f c` against `i f g o`, GRU `z r h` against `r z n`; the rows are
//! permuted here. The GRU runs with `linear_before_reset = 1`, PyTorch's
//! formula (`n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`).

use recurrent_model::{CellKind, LanguageModel, ModelConfig};

use crate::proto::{
    self, float_tensor, int_tensor, node, value_info, Attribute, DataType, Dim, Message,
};
use crate::OnnxError;

/// The operator set the graphs use (ONNX 1.12+, onnxruntime 1.12+).
pub const OPSET: i64 = 17;

/// The two graphs of a language model, encoded as ONNX model files.
#[derive(Clone, Debug)]
pub struct LanguageModelGraphs {
    /// The sequence graph (`tokens [T, B]` -> `logits [T, B, V]`).
    pub sequence: Vec<u8>,
    /// The step graph (`token [B]` -> `logits [B, V]`).
    pub step: Vec<u8>,
}

/// Exports `model` as its sequence and step graphs; `metadata` goes into
/// both files' `metadata_props` (the vocabulary, the configuration).
///
/// # Errors
/// [`OnnxError::LayerNorm`] for layer-normalized models (ONNX's recurrent
/// operators have no normalization inside the cell).
pub fn export(
    model: &LanguageModel,
    metadata: &[(&str, String)],
) -> Result<LanguageModelGraphs, OnnxError> {
    let cfg = &model.config;
    if cfg.layer_norm {
        return Err(OnnxError::LayerNorm);
    }
    let weights = Weights::of(model);
    Ok(LanguageModelGraphs {
        sequence: build(cfg, &weights, false, metadata),
        step: build(cfg, &weights, true, metadata),
    })
}

/// The model's tensors by PyTorch name.
struct Weights(Vec<(String, Vec<usize>, Vec<f32>)>);

impl Weights {
    fn of(model: &LanguageModel) -> Weights {
        Weights(model.to_tensors())
    }

    fn get(&self, name: &str) -> (&[usize], &[f32]) {
        let (_, shape, values) = self
            .0
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("every language model has {name}"));
        (shape, values)
    }
}

/// Where ONNX's gate block `j` comes from in PyTorch's row order.
fn gate_order(cell: CellKind) -> &'static [usize] {
    match cell {
        // ONNX i o f c from PyTorch i f g o.
        CellKind::Lstm => &[0, 3, 1, 2],
        // ONNX z r h from PyTorch r z n.
        CellKind::Gru => &[1, 0, 2],
        CellKind::RnnTanh | CellKind::RnnRelu => &[0],
    }
}

/// `values`, blocks of `rows` rows of `cols` each, in the order `order`.
fn permute_blocks(values: &[f32], rows: usize, cols: usize, order: &[usize]) -> Vec<f32> {
    let block = rows * cols;
    order
        .iter()
        .flat_map(|&j| &values[j * block..(j + 1) * block])
        .copied()
        .collect()
}

/// Nodes and initializers of one graph, with fresh names for intermediates.
#[derive(Default)]
struct Builder {
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    count: usize,
}

impl Builder {
    fn fresh(&mut self, what: &str) -> String {
        self.count += 1;
        format!("{what}_{}", self.count)
    }

    fn float(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        self.initializers.push(float_tensor(name, dims, values));
        name.to_string()
    }

    /// An int64 scalar (`OneHot`'s depth).
    fn int_scalar(&mut self, name: &str, value: i64) -> String {
        self.initializers.push(int_tensor(name, &[], &[value]));
        name.to_string()
    }

    fn ints(&mut self, name: &str, values: &[i64]) -> String {
        self.initializers
            .push(int_tensor(name, &[values.len()], values));
        name.to_string()
    }

    /// Adds `op` and returns its single output's name.
    fn op(&mut self, op: &str, inputs: &[&str], attributes: &[(&str, Attribute)]) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.op_into(op, inputs, &[&out], attributes);
        out
    }

    fn op_into(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attributes: &[(&str, Attribute)],
    ) {
        let name = self.fresh(op);
        self.nodes
            .push(node(op, &name, inputs, outputs, attributes));
    }
}

/// The sequence graph, or the step graph when `step`.
fn build(cfg: &ModelConfig, w: &Weights, step: bool, metadata: &[(&str, String)]) -> Vec<u8> {
    let mut b = Builder::default();
    let v = cfg.vocab_size;
    let (time, batch) = (Dim::Named("time"), Dim::Named("batch"));
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();

    // Tokens as [T, B]; the step graph's [B] becomes [1, B].
    let tokens = if step {
        inputs.push(value_info("token", DataType::Int64, &[batch]));
        let axes = b.ints("axes_0", &[0]);
        b.op("Unsqueeze", &["token", &axes], &[])
    } else {
        inputs.push(value_info("tokens", DataType::Int64, &[time, batch]));
        "tokens".to_string()
    };

    // Layer 0's input: embedding rows, or one-hot vectors.
    let mut x = if cfg.embed > 0 {
        let (shape, values) = w.get("encoder.weight");
        let table = b.float("encoder.weight", shape, values);
        b.op("Gather", &[&table, &tokens], &[("axis", Attribute::Int(0))])
    } else {
        let depth = b.int_scalar("vocab_size", v as i64);
        let values = b.float("one_hot_values", &[2], &[0.0, 1.0]);
        b.op(
            "OneHot",
            &[&tokens, &depth, &values],
            &[("axis", Attribute::Int(-1))],
        )
    };

    let squeeze_axis = b.ints("axes_1", &[1]);
    for k in 0..cfg.layers {
        let h = cfg.layer_hidden(k);
        let input = cfg.layer_input(k);
        let order = gate_order(cfg.cell);
        let g = order.len();
        let (_, w_ih) = w.get(&format!("rnn.weight_ih_l{k}"));
        let (_, w_hh) = w.get(&format!("rnn.weight_hh_l{k}"));
        let (_, b_ih) = w.get(&format!("rnn.bias_ih_l{k}"));
        let (_, b_hh) = w.get(&format!("rnn.bias_hh_l{k}"));
        let wt = b.float(
            &format!("W.{k}"),
            &[1, g * h, input],
            &permute_blocks(w_ih, h, input, order),
        );
        let rt = b.float(
            &format!("R.{k}"),
            &[1, g * h, h],
            &permute_blocks(w_hh, h, h, order),
        );
        let mut bias = permute_blocks(b_ih, h, 1, order);
        bias.extend(permute_blocks(b_hh, h, 1, order));
        let bt = b.float(&format!("B.{k}"), &[1, 2 * g * h], &bias);

        let state = |name: &str| format!("{name}.{k}");
        let state_dims = [Dim::Fixed(1), batch, Dim::Fixed(h)];
        let lstm = cfg.cell == CellKind::Lstm;
        let names: &[&str] = if lstm { &["h", "c"] } else { &["h"] };
        for name in names {
            inputs.push(value_info(&state(name), DataType::Float, &state_dims));
            outputs.push(value_info(
                &state(&format!("{name}_next")),
                DataType::Float,
                &state_dims,
            ));
        }
        let y = b.fresh("y");
        let (h0, h1) = (state("h"), state("h_next"));
        let (c0, c1) = (state("c"), state("c_next"));
        let hidden_size = ("hidden_size", Attribute::Int(h as i64));
        match cfg.cell {
            CellKind::Lstm => b.op_into(
                "LSTM",
                &[&x, &wt, &rt, &bt, "", &h0, &c0],
                &[&y, &h1, &c1],
                &[hidden_size],
            ),
            CellKind::Gru => b.op_into(
                "GRU",
                &[&x, &wt, &rt, &bt, "", &h0],
                &[&y, &h1],
                &[hidden_size, ("linear_before_reset", Attribute::Int(1))],
            ),
            CellKind::RnnTanh | CellKind::RnnRelu => {
                let activation = if cfg.cell == CellKind::RnnTanh {
                    "Tanh"
                } else {
                    "Relu"
                };
                b.op_into(
                    "RNN",
                    &[&x, &wt, &rt, &bt, "", &h0],
                    &[&y, &h1],
                    &[
                        hidden_size,
                        ("activations", Attribute::Strings(&[activation])),
                    ],
                )
            }
        }
        // Y is [T, directions = 1, B, H].
        x = b.op("Squeeze", &[&y, &squeeze_axis], &[]);
    }

    // The head on [T*B, H] rows.
    let top = cfg.top_hidden();
    let rows_shape = b.ints("rows_shape", &[-1, top as i64]);
    let mut rows = b.op("Reshape", &[&x, &rows_shape], &[]);
    let trans_b = ("transB", Attribute::Int(1));
    if cfg.dense > 0 {
        let (shape, values) = w.get("dense.weight");
        let dw = b.float("dense.weight", shape, values);
        let (shape, values) = w.get("dense.bias");
        let db = b.float("dense.bias", shape, values);
        let dense = b.op("Gemm", &[&rows, &dw, &db], std::slice::from_ref(&trans_b));
        rows = b.op("Relu", &[&dense], &[]);
    }
    // A tied decoder reads the embedding table itself.
    let decoder = if cfg.tie {
        "encoder.weight".to_string()
    } else {
        let (shape, values) = w.get("decoder.weight");
        b.float("decoder.weight", shape, values)
    };
    let (shape, values) = w.get("decoder.bias");
    let bias = b.float("decoder.bias", shape, values);
    let flat = b.op("Gemm", &[&rows, &decoder, &bias], &[trans_b]);
    if step {
        let shape = b.ints("logits_shape", &[-1, v as i64]);
        b.op_into("Reshape", &[&flat, &shape], &["logits"], &[]);
        outputs.insert(
            0,
            value_info("logits", DataType::Float, &[batch, Dim::Fixed(v)]),
        );
    } else {
        let token_shape = b.op("Shape", &[&tokens], &[]);
        let vocab = b.ints("vocab", &[v as i64]);
        let shape = b.op(
            "Concat",
            &[&token_shape, &vocab],
            &[("axis", Attribute::Int(0))],
        );
        b.op_into("Reshape", &[&flat, &shape], &["logits"], &[]);
        outputs.insert(
            0,
            value_info("logits", DataType::Float, &[time, batch, Dim::Fixed(v)]),
        );
    }

    let (name, doc) = if step {
        (
            "recurrent_step",
            "One step of a recurrent language model: token [B] and states in, logits [B, V] and next states out.",
        )
    } else {
        (
            "recurrent_sequence",
            "A recurrent language model over a sequence: tokens [T, B] and states in, logits [T, B, V] and the states after the last token out.",
        )
    };
    let graph = proto::graph(name, &b.nodes, &b.initializers, &inputs, &outputs);
    proto::model(&graph, OPSET, doc, metadata).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use recurrent_kernels::Rng;

    fn model(config: ModelConfig) -> LanguageModel {
        LanguageModel::new(config, &mut Rng::new(3), None).unwrap()
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    #[test]
    fn each_cell_becomes_its_onnx_operator_in_both_graphs() {
        for (cell, op) in [
            (CellKind::Lstm, "LSTM"),
            (CellKind::Gru, "GRU"),
            (CellKind::RnnTanh, "RNN"),
            (CellKind::RnnRelu, "RNN"),
        ] {
            let graphs = export(&model(ModelConfig::new(cell, 11, 4, 6, 2)), &[]).unwrap();
            for bytes in [&graphs.sequence, &graphs.step] {
                assert!(contains(bytes, op), "{cell:?}");
                assert!(contains(bytes, "h_next.1"));
                assert_eq!(contains(bytes, "c_next.0"), cell == CellKind::Lstm);
            }
            assert!(contains(&graphs.sequence, "tokens"));
            assert!(contains(&graphs.step, "token"));
        }
    }

    #[test]
    fn layer_norm_is_refused() {
        let config = ModelConfig {
            layer_norm: true,
            ..ModelConfig::new(CellKind::Lstm, 11, 4, 6, 1)
        };
        assert!(matches!(
            export(&model(config), &[]),
            Err(OnnxError::LayerNorm)
        ));
    }

    #[test]
    fn lstm_gate_blocks_move_to_onnx_order() {
        // Four gate blocks of one row each: PyTorch i f g o.
        let rows = [10.0, 20.0, 30.0, 40.0];
        assert_eq!(
            permute_blocks(&rows, 1, 1, gate_order(CellKind::Lstm)),
            [10.0, 40.0, 20.0, 30.0] // ONNX i o f c
        );
        // GRU r z n -> z r h, blocks of 2 rows x 2 columns.
        let rows: Vec<f32> = (0..12).map(|x| x as f32).collect();
        assert_eq!(
            permute_blocks(&rows, 2, 2, gate_order(CellKind::Gru)),
            [4., 5., 6., 7., 0., 1., 2., 3., 8., 9., 10., 11.]
        );
    }
}
