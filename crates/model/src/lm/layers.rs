//! How the configuration maps to each recurrent layer and its parameters.

use recurrent_nn::ln_recurrent::LnParams;
use recurrent_nn::recurrent::LayerParams;
use recurrent_nn::{CellKind, LnRecurrentLayer, RecurrentLayer};

use super::LanguageModel;

impl LanguageModel {
    /// Layer `k`'s shape.
    pub(super) fn layer(&self, k: usize) -> RecurrentLayer {
        RecurrentLayer {
            cell: self.config.cell,
            input_size: self.config.layer_input(k),
            hidden_size: self.config.layer_hidden(k),
        }
    }

    /// Layer `k`'s weights and biases as stored.
    pub(super) fn layer_params(&self, k: usize) -> LayerParams<'_> {
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
    pub(super) fn block_layer_params<'a>(
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

    /// Layer `k`'s shape, layer-normalized.
    pub(super) fn ln_layer(&self, k: usize) -> LnRecurrentLayer {
        LnRecurrentLayer {
            cell: self.config.cell,
            input_size: self.config.layer_input(k),
            hidden_size: self.config.layer_hidden(k),
        }
    }

    /// Layer `k`'s LayerNorm parameters around `base` (its plain ones as the
    /// block uses them).
    pub(super) fn ln_params<'a>(&'a self, base: LayerParams<'a>, k: usize) -> LnParams<'a> {
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

    /// The output projection's weight (the embedding when tied).
    pub(super) fn decoder_weight(&self) -> &[f32] {
        let name = if self.config.tie {
            "encoder.weight"
        } else {
            "decoder.weight"
        };
        &self.params[self.layout.get(name).unwrap().range()]
    }

    /// The tensor named `name`.
    pub(super) fn param(&self, name: &str) -> &[f32] {
        &self.params[self.layout.get(name).unwrap().range()]
    }
}
