//! The architecture of a language model, as stored in `config.json`.

use recurrent_nn::CellKind;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Errors from building or loading a model; each message names the problem.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("invalid model configuration: {0}")]
    Config(String),
    #[error("weights are missing tensor '{0}'")]
    MissingTensor(String),
    #[error("tensor '{name}' has shape {found:?} but the configuration needs {expected:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("unexpected tensor '{0}' in the weights (it does not belong to this architecture)")]
    UnexpectedTensor(String),
    #[error("cannot infer the architecture from the weights: {0}")]
    Infer(String),
}

/// The shape of a language model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Recurrent cell of every layer.
    pub cell: CellKind,
    /// Number of tokens (rows of the embedding and of the output projection).
    pub vocab_size: usize,
    /// Embedding width; 0 feeds one-hot vectors to the first layer.
    pub embed: usize,
    /// Hidden width of every recurrent layer.
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
}

impl ModelConfig {
    /// Width of the vector the output projection reads.
    pub fn head_input(&self) -> usize {
        if self.dense > 0 {
            self.dense
        } else {
            self.hidden
        }
    }

    /// Width of the input to recurrent layer `k`.
    pub fn layer_input(&self, k: usize) -> usize {
        match k {
            0 if self.embed == 0 => self.vocab_size,
            0 => self.embed,
            _ => self.hidden,
        }
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
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
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
