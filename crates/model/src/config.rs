//! The architecture of a language model, as stored in `config.json`.

use recurrent_nn::CellKind;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Errors from building or loading a model; each message names the problem.
#[derive(Debug, Error, PartialEq)]
pub enum ModelError {
    #[error("invalid model configuration: {0}")]
    /// The configuration is inconsistent or out of range.
    Config(String),
    #[error("weights are missing tensor '{0}'")]
    /// A tensor the configuration needs is absent.
    MissingTensor(String),
    #[error("tensor '{name}' has shape {found:?} but the configuration needs {expected:?}")]
    /// A tensor has another shape than the configuration needs.
    ShapeMismatch {
        /// The tensor's name.
        name: String,
        /// The shape the configuration needs.
        expected: Vec<usize>,
        /// The shape found.
        found: Vec<usize>,
    },
    #[error("unexpected tensor '{0}' in the weights (it does not belong to this architecture)")]
    /// A tensor that belongs to no parameter of this architecture.
    UnexpectedTensor(String),
    #[error("cannot infer the architecture from the weights: {0}")]
    /// The weights do not determine an architecture.
    Infer(String),
    #[error("invalid regularization: {0}")]
    /// A regularization setting is out of range.
    Regularization(String),
    #[error("{what} has {got} values but this model needs {expected}")]
    /// An argument has another size than the model and the other arguments need.
    Shape {
        /// The argument ("tokens", "state.h", ...).
        what: &'static str,
        /// The size needed.
        expected: usize,
        /// The size given.
        got: usize,
    },
    #[error("{what} must be at least 1, got 0")]
    /// A size that must be at least 1 is 0.
    Empty {
        /// The size ("steps", "batch").
        what: &'static str,
    },
    #[error("{what}[{index}] is {token}, outside the vocabulary of {vocab}")]
    /// A token id is not below the vocabulary size.
    Token {
        /// The argument ("tokens", "targets").
        what: &'static str,
        /// Its position in the argument.
        index: usize,
        /// The id given.
        token: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    #[error("{what} is {got}, but there are only {len}")]
    /// An index is out of range.
    Index {
        /// The index ("stream").
        what: &'static str,
        /// The index given.
        got: usize,
        /// How many there are.
        len: usize,
    },
}

/// The largest model [`ModelConfig::validate`] accepts (16 GiB of `f32`
/// weights): far beyond what trains on a CPU, and small enough that buffer
/// sizes derived from the configuration cannot overflow.
pub const MAX_PARAMS: usize = 1 << 32;

/// The shape of a language model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Recurrent cell of every layer.
    pub cell: CellKind,
    /// Number of tokens (rows of the embedding and of the output projection).
    pub vocab_size: usize,
    /// Embedding width; 0 feeds one-hot vectors to the first layer.
    pub embed: usize,
    /// Hidden width of the recurrent layers (all but the last when
    /// `last_hidden` is set).
    pub hidden: usize,
    /// Number of stacked recurrent layers.
    pub layers: usize,
    /// Width of the optional dense ReLU layer before the output; 0 for none.
    #[serde(default)]
    pub dense: usize,
    /// Dropout on the embedding, between layers and on the last layer's output.
    #[serde(default)]
    pub dropout: f32,
    /// Share the embedding matrix with the output projection.
    #[serde(default)]
    pub tie: bool,
    /// Layer-normalized LSTM or GRU cells (Ba et al. 2016; see
    /// `recurrent_nn::ln_recurrent`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub layer_norm: bool,
    /// Hidden width of the last recurrent layer when it differs from
    /// `hidden` (AWD-LSTM's 400/1150/400: the last layer as wide as a tied
    /// embedding); 0 means `hidden`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub last_hidden: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl ModelConfig {
    /// A plain stack of `layers` recurrent layers of width `hidden`: no dense
    /// layer, dropout, tying or layer norm (set those with struct update
    /// syntax: `ModelConfig { tie: true, ..ModelConfig::new(...) }`).
    pub fn new(
        cell: CellKind,
        vocab_size: usize,
        embed: usize,
        hidden: usize,
        layers: usize,
    ) -> ModelConfig {
        ModelConfig {
            cell,
            vocab_size,
            embed,
            hidden,
            layers,
            dense: 0,
            dropout: 0.0,
            tie: false,
            layer_norm: false,
            last_hidden: 0,
        }
    }

    /// Width of the vector the output projection reads.
    pub fn head_input(&self) -> usize {
        if self.dense > 0 {
            self.dense
        } else {
            self.top_hidden()
        }
    }

    /// Hidden width of recurrent layer `k`.
    pub fn layer_hidden(&self, k: usize) -> usize {
        if self.last_hidden > 0 && k + 1 == self.layers {
            self.last_hidden
        } else {
            self.hidden
        }
    }

    /// Hidden width of the last recurrent layer (what the head reads).
    pub fn top_hidden(&self) -> usize {
        self.layer_hidden(self.layers.saturating_sub(1))
    }

    /// The layers' widths for people: `512`, or `1150/1150/400` when the
    /// last layer differs.
    pub fn widths_label(&self) -> String {
        if self.uniform_widths() {
            return self.hidden.to_string();
        }
        let widths: Vec<String> = (0..self.layers)
            .map(|k| self.layer_hidden(k).to_string())
            .collect();
        widths.join("/")
    }

    /// Whether every recurrent layer has the same width.
    pub fn uniform_widths(&self) -> bool {
        self.last_hidden == 0 || self.last_hidden == self.hidden
    }

    /// Width of the input to recurrent layer `k`.
    pub fn layer_input(&self, k: usize) -> usize {
        match k {
            0 if self.embed == 0 => self.vocab_size,
            0 => self.embed,
            _ => self.layer_hidden(k - 1),
        }
    }

    /// Where layer `k`'s rows lie in a `[B, H_k]`-per-layer state buffer of
    /// `batch` streams (the layers one after another).
    pub fn state_range(&self, k: usize, batch: usize) -> std::ops::Range<usize> {
        let start: usize = (0..k).map(|j| batch * self.layer_hidden(j)).sum();
        start..start + batch * self.layer_hidden(k)
    }

    /// Length of a state buffer (`h` or `c`) for `batch` streams.
    pub fn state_len(&self, batch: usize) -> usize {
        self.state_range(self.layers, batch).start
    }

    /// The parameter count, or `None` above [`MAX_PARAMS`] (absurd sizes
    /// from the command line or a corrupt config.json).
    pub fn checked_num_params(&self) -> Option<usize> {
        let n = self.param_count();
        (n <= MAX_PARAMS as f64).then_some(n as usize)
    }

    /// The parameter count of the layout, without building it, in `f64` so
    /// that absurd sizes cannot overflow (exact below 2^53): memory estimates
    /// give a figure for any size.
    pub fn param_count(&self) -> f64 {
        let v = self.vocab_size as f64;
        let gates = self.cell.gates() as f64;
        let ln = if self.layer_norm { 4.0 } else { 0.0 };
        // weight_ih, weight_hh and the two biases (and the LayerNorm gains
        // and biases of both projections, and of the LSTM's cell state).
        let layer = |k: usize| {
            let h = self.layer_hidden(k) as f64;
            let cell_norm = if self.layer_norm && self.cell.has_cell_state() {
                2.0 * h
            } else {
                0.0
            };
            gates * h * (self.layer_input(k) as f64 + h + 2.0 + ln) + cell_norm
        };
        // Layers 1.. all read `hidden` and have `hidden` units, except the
        // last when `last_hidden` is set: count one of each kind instead of
        // looping over a million layers.
        let mut n = v * self.embed as f64;
        if self.layers > 0 {
            n += layer(0);
        }
        if self.layers > 2 {
            n += (self.layers - 2) as f64 * layer(1);
        }
        if self.layers > 1 {
            n += layer(self.layers - 1);
        }
        let top = self.top_hidden() as f64;
        n += self.dense as f64 * (top + 1.0);
        if !self.tie {
            n += v * self.head_input() as f64;
        }
        n + v
    }

    /// Checks the sizes make a model.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        if self.vocab_size == 0 {
            return bad("the vocabulary is empty".into());
        }
        if self.hidden == 0 || self.layers == 0 {
            return bad(format!(
                "hidden ({}) and layers ({}) must be at least 1",
                self.hidden, self.layers
            ));
        }
        if self.last_hidden > 0 && self.layers < 2 {
            return bad(format!(
                "a different last-layer width ({}) needs at least 2 layers",
                self.last_hidden
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if self.checked_num_params().is_none_or(|n| n > MAX_PARAMS) {
            return bad(format!(
                "the model would have more than {MAX_PARAMS} parameters \
                 (hidden {}, last hidden {}, embed {}, layers {}, dense {}, vocabulary {})",
                self.hidden,
                self.top_hidden(),
                self.embed,
                self.layers,
                self.dense,
                self.vocab_size
            ));
        }
        if self.layer_norm && !matches!(self.cell, CellKind::Lstm | CellKind::Gru) {
            return bad(format!(
                "layer normalization needs an LSTM or GRU cell, not {}",
                self.cell
            ));
        }
        if self.tie && self.embed == 0 {
            return bad("tying needs an embedding (embed > 0)".into());
        }
        if self.tie && self.embed != self.head_input() {
            return bad(format!(
                "tying needs the embedding width ({}) to equal the width feeding the output ({})",
                self.embed,
                self.head_input()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParamLayout;

    #[test]
    fn checked_count_matches_the_layout_and_absurd_sizes_are_an_error() {
        for (cell, embed, layers, dense, tie, last_hidden) in [
            (CellKind::Lstm, 8, 2, 0, false, 0),
            (CellKind::Gru, 0, 1, 5, false, 0),
            (CellKind::RnnTanh, 6, 3, 0, true, 0),
            (CellKind::Lstm, 5, 3, 0, true, 5),
            (CellKind::Gru, 4, 2, 3, false, 9),
        ] {
            let c = ModelConfig {
                cell,
                vocab_size: 11,
                embed,
                hidden: 6,
                layers,
                dense,
                dropout: 0.0,
                tie,
                layer_norm: false,
                last_hidden,
            };
            assert_eq!(c.checked_num_params(), Some(ParamLayout::new(&c).total));
        }
        let mut huge = ModelConfig {
            cell: CellKind::Lstm,
            vocab_size: 11,
            embed: 8,
            hidden: usize::MAX,
            layers: 1,
            dense: 0,
            dropout: 0.0,
            tie: false,
            layer_norm: false,
            last_hidden: 0,
        };
        assert!(huge.validate().is_err());
        huge.hidden = 100_000;
        assert!(huge.validate().is_err());
        huge.hidden = 16;
        huge.layers = usize::MAX;
        assert!(huge.validate().is_err());
    }
}
