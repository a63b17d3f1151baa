//! AWD-LSTM's regularizers: their settings and penalties.

use recurrent_nn::activation_reg;
use serde::{Deserialize, Serialize};

use super::{layer_output, LanguageModel, Workspace};
use crate::config::ModelError;

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
    pub(super) fn locked_after(&self, k: usize, layers: usize) -> f32 {
        if k + 1 == layers {
            self.dropout_output
        } else {
            self.dropout_hidden
        }
    }
}

impl LanguageModel {
    /// The AR and TAR penalties of the last forward (0 where off): AR on the
    /// last layer's dropped-out output, TAR on its raw output.
    pub(super) fn penalties(&self, ws: &Workspace, t: usize, b: usize) -> (f64, f64) {
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
}
