//! The architecture of a sequence-to-sequence model, as stored in `config.json`,
//! and the errors of building, loading and feeding one.

use recurrent_nn::attention::{Attention, AttentionKind};
use recurrent_nn::CellKind;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::MAX_PARAMS;

/// Errors from building, loading or running a seq2seq model; each names the problem.
#[derive(Debug, Error, PartialEq)]
pub enum Seq2SeqError {
    #[error("invalid seq2seq configuration: {0}")]
    /// The configuration is inconsistent or out of range.
    Config(String),
    #[error("invalid batch: {0}")]
    /// A batch does not fit the model.
    Batch(String),
    #[error("invalid option: {0}")]
    /// A training or decoding option is out of range.
    Options(String),
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
    #[error("{what} has {got} values but this model needs {expected}")]
    /// An argument has another size than the model and the other arguments need.
    Shape {
        /// The argument ("encoder output keys", ...).
        what: &'static str,
        /// The size needed.
        expected: usize,
        /// The size given.
        got: usize,
    },
}

/// How the decoder's initial state is made from the encoder's final states
/// (layer `k` of the decoder starts from layer `k` of the encoder; a
/// bidirectional encoder's state is its two directions concatenated).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bridge {
    /// The encoder's final `h` (and LSTM `c`) as they are: the widths always match.
    #[default]
    Copy,
    /// `h0 = tanh(W_h h_enc + b_h)` (and `c0 = tanh(W_c c_enc + b_c)` for LSTM),
    /// with one `[H, H]` linear map per layer.
    Linear,
    /// The decoder starts from zeros and sees the source through attention only.
    Zero,
}

impl Bridge {
    /// The name used on the command line and in config.json.
    pub fn name(self) -> &'static str {
        match self {
            Bridge::Copy => "copy",
            Bridge::Linear => "linear",
            Bridge::Zero => "zero",
        }
    }
}

impl std::str::FromStr for Bridge {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "copy" => Ok(Bridge::Copy),
            "linear" => Ok(Bridge::Linear),
            "zero" | "none" => Ok(Bridge::Zero),
            _ => Err(format!(
                "unknown bridge '{s}' (expected copy, linear or zero)"
            )),
        }
    }
}

fn default_attention() -> AttentionKind {
    AttentionKind::General
}

fn yes() -> bool {
    true
}

/// The shape of an encoder-decoder model with attention.
///
/// Encoder and decoder have the same cell, embedding width, hidden width and
/// number of layers. A bidirectional encoder gives each direction `hidden / 2`
/// units and concatenates them (OpenNMT's `brnn`), so its outputs and final
/// states are `hidden` wide either way: dot attention and the copy bridge
/// always fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seq2SeqConfig {
    /// Recurrent cell of every encoder and decoder layer.
    pub cell: CellKind,
    /// Source vocabulary size.
    pub src_vocab: usize,
    /// Target vocabulary size (rows of the decoder embedding and of the generator).
    pub tgt_vocab: usize,
    /// Embedding width of source and target tokens.
    pub embed: usize,
    /// Hidden width of the decoder, of the encoder's outputs, and of the
    /// attentional vector; also the additive scorer's hidden width.
    pub hidden: usize,
    /// Stacked recurrent layers, in the encoder and in the decoder.
    pub layers: usize,
    /// Run each encoder layer in both directions (needs an even `hidden`).
    #[serde(default)]
    pub bidirectional: bool,
    /// How the decoder scores encoder states.
    #[serde(default = "default_attention")]
    pub attention: AttentionKind,
    /// Feed the previous attentional vector `h~` to the decoder's first layer
    /// alongside the token embedding (Luong et al., 2015).
    #[serde(default = "yes")]
    pub input_feeding: bool,
    /// How the decoder's initial state comes from the encoder.
    #[serde(default)]
    pub bridge: Bridge,
    /// Dropout on the embeddings, between stacked layers and on `h~`.
    #[serde(default)]
    pub dropout: f32,
    /// The generator reads the decoder embedding matrix (needs `embed == hidden`).
    #[serde(default)]
    pub tie: bool,
    /// Encoder and decoder share one embedding matrix (needs equal vocabularies).
    #[serde(default)]
    pub share_embeddings: bool,
}

impl Seq2SeqConfig {
    /// A unidirectional LSTM with general attention, input feeding, copy bridge,
    /// no dropout, no tying: the fields to set are the sizes.
    pub fn new(src_vocab: usize, tgt_vocab: usize, embed: usize, hidden: usize) -> Self {
        Seq2SeqConfig {
            cell: CellKind::Lstm,
            src_vocab,
            tgt_vocab,
            embed,
            hidden,
            layers: 1,
            bidirectional: false,
            attention: AttentionKind::General,
            input_feeding: true,
            bridge: Bridge::Copy,
            dropout: 0.0,
            tie: false,
            share_embeddings: false,
        }
    }

    /// Encoder directions: 1 or 2.
    pub fn directions(&self) -> usize {
        1 + usize::from(self.bidirectional)
    }

    /// Hidden width of one encoder direction.
    pub fn enc_hidden(&self) -> usize {
        self.hidden / self.directions()
    }

    /// Width of the input to encoder layer `k`.
    pub fn enc_input(&self, k: usize) -> usize {
        if k == 0 {
            self.embed
        } else {
            self.hidden
        }
    }

    /// Width of the input to decoder layer `k`: the first reads the embedding and,
    /// with input feeding, the previous attentional vector.
    pub fn dec_input(&self, k: usize) -> usize {
        match k {
            0 if self.input_feeding => self.embed + self.hidden,
            0 => self.embed,
            _ => self.hidden,
        }
    }

    /// The decoder's attention layer.
    pub fn attention_layer(&self) -> Attention {
        Attention {
            kind: self.attention,
            query_size: self.hidden,
            key_size: self.hidden,
            attn_size: self.hidden,
        }
    }

    /// The parameter count, or `None` above [`MAX_PARAMS`] (absurd sizes
    /// from the command line or a corrupt config.json).
    pub fn checked_num_params(&self) -> Option<usize> {
        let n = self.param_count();
        (n <= MAX_PARAMS as f64).then_some(n as usize)
    }

    /// The parameter count of the layout, without building it, in `f64` so
    /// that absurd sizes cannot overflow (exact below 2^53). Mirrors the
    /// layout (checked against it in tests).
    pub fn param_count(&self) -> f64 {
        let [e, h, vs, vt, l] = [
            self.embed,
            self.hidden,
            self.src_vocab,
            self.tgt_vocab,
            self.layers,
        ]
        .map(|x| x as f64);
        let g = self.cell.gates() as f64;
        let (dirs, hd) = (self.directions() as f64, self.enc_hidden() as f64);
        let lstm = if self.cell.has_cell_state() { 1.0 } else { 0.0 };
        // One layer of one direction: weight_ih, weight_hh and the two biases.
        let rnn = |input: f64, hid: f64| g * hid * (input + hid + 2.0);
        let deeper = (l - 1.0).max(0.0);
        let mut n = vs * e;
        n += dirs * (rnn(e, hd) + deeper * rnn(h, hd));
        if self.bridge == Bridge::Linear {
            n += (1.0 + lstm) * l * (h * h + h);
        }
        if !self.share_embeddings {
            n += vt * e;
        }
        let feed = if self.input_feeding { h } else { 0.0 };
        n += rnn(e + feed, h) + deeper * rnn(h, h);
        n += match self.attention {
            AttentionKind::Dot => 0.0,
            AttentionKind::General => h * h,
            AttentionKind::Additive => 2.0 * h * h + 2.0 * h,
        };
        n += h * 2.0 * h + h; // linear_out
        if !self.tie {
            n += vt * h;
        }
        n + vt
    }

    /// Checks the sizes make a model.
    pub fn validate(&self) -> Result<(), Seq2SeqError> {
        let bad = |m: String| Err(Seq2SeqError::Config(m));
        if self.src_vocab == 0 || self.tgt_vocab == 0 {
            return bad(format!(
                "vocabularies must not be empty (source {}, target {})",
                self.src_vocab, self.tgt_vocab
            ));
        }
        if self.embed == 0 || self.hidden == 0 || self.layers == 0 {
            return bad(format!(
                "embed ({}), hidden ({}) and layers ({}) must be at least 1",
                self.embed, self.hidden, self.layers
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if self.bidirectional && !self.hidden.is_multiple_of(2) {
            return bad(format!(
                "a bidirectional encoder splits hidden ({}) between its two directions: it must be even",
                self.hidden
            ));
        }
        if self.checked_num_params().is_none() {
            return bad(format!(
                "the model would have more than {MAX_PARAMS} parameters (embed {}, hidden {}, \
                 layers {}, vocabularies {} and {})",
                self.embed, self.hidden, self.layers, self.src_vocab, self.tgt_vocab
            ));
        }
        if self.tie && self.embed != self.hidden {
            return bad(format!(
                "tying the generator to the target embedding needs embed ({}) == hidden ({})",
                self.embed, self.hidden
            ));
        }
        if self.share_embeddings && self.src_vocab != self.tgt_vocab {
            return bad(format!(
                "sharing embeddings needs one vocabulary (source {}, target {})",
                self.src_vocab, self.tgt_vocab
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seq2seq::layout;

    #[test]
    fn the_count_matches_the_layout() {
        for cell in [CellKind::Lstm, CellKind::Gru, CellKind::RnnRelu] {
            for attention in AttentionKind::ALL {
                for (bi, bridge, feed, tie, share) in [
                    (false, Bridge::Copy, true, false, false),
                    (true, Bridge::Linear, false, true, true),
                    (true, Bridge::Zero, true, true, false),
                ] {
                    let c = Seq2SeqConfig {
                        cell,
                        src_vocab: 9,
                        tgt_vocab: 9,
                        embed: 6,
                        hidden: 6,
                        layers: 3,
                        bidirectional: bi,
                        attention,
                        input_feeding: feed,
                        bridge,
                        dropout: 0.0,
                        tie,
                        share_embeddings: share,
                    };
                    c.validate().unwrap();
                    assert_eq!(c.checked_num_params(), Some(layout(&c).total), "{c:?}");
                }
            }
        }
    }
}
