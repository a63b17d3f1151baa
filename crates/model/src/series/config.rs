//! [`SeriesConfig`]: the shape of a sequence-regression model, and its
//! parameter layout.

use recurrent_nn::CellKind;
use serde::{Deserialize, Serialize};

use crate::config::{ModelError, MAX_PARAMS};
use crate::params::{ParamEntry, ParamLayout};

/// The most stacked layers [`SeriesConfig::validate`] accepts.
pub const MAX_LAYERS: usize = 1024;

/// Which steps the head reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeriesOutput {
    /// Sequence to vector: the last step's output, giving `[B, O]`.
    Last,
    /// Sequence to sequence: every step's output, giving `[T, B, O]`.
    Every,
}

/// The architecture of a sequence-regression model, as stored in config.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesConfig {
    /// Recurrent cell of every layer.
    pub cell: CellKind,
    /// `F`, values per input step.
    pub inputs: usize,
    /// `H`, hidden width of every recurrent layer.
    pub hidden: usize,
    /// Stacked recurrent layers.
    pub layers: usize,
    /// `O`, values the head predicts per output row.
    pub outputs: usize,
    /// Which steps the head reads.
    pub output: SeriesOutput,
}

impl SeriesConfig {
    /// Checks every size is at least 1 and the model is not absurdly large.
    pub fn validate(&self) -> Result<(), ModelError> {
        for (name, v) in [
            ("inputs", self.inputs),
            ("hidden", self.hidden),
            ("layers", self.layers),
            ("outputs", self.outputs),
        ] {
            if v == 0 {
                return Err(ModelError::Config(format!("{name} must be at least 1")));
            }
        }
        if self.layers > MAX_LAYERS {
            return Err(ModelError::Config(format!(
                "layers is {}, more than the {MAX_LAYERS} allowed",
                self.layers
            )));
        }
        let params = self.layout_unchecked().total;
        if params > MAX_PARAMS || self.hidden > MAX_PARAMS || self.inputs > MAX_PARAMS {
            return Err(ModelError::Config(format!(
                "{params} parameters is more than the {MAX_PARAMS} allowed"
            )));
        }
        Ok(())
    }

    /// Width of layer `k`'s input: `F` for the first, `H` above.
    pub fn layer_input(&self, k: usize) -> usize {
        if k == 0 {
            self.inputs
        } else {
            self.hidden
        }
    }

    /// The parameters' names, shapes and offsets, in PyTorch `state_dict` order.
    pub fn layout(&self) -> Result<ParamLayout, ModelError> {
        self.validate()?;
        Ok(self.layout_unchecked())
    }

    /// The layout, computed in saturating arithmetic so huge sizes cannot overflow.
    fn layout_unchecked(&self) -> ParamLayout {
        let mut entries = Vec::new();
        let mut total = 0usize;
        let mut push = |name: String, shape: Vec<usize>| {
            let len = shape.iter().fold(1usize, |a, &d| a.saturating_mul(d));
            entries.push(ParamEntry {
                name,
                shape,
                offset: total,
            });
            total = total.saturating_add(len);
        };
        let h = self.hidden;
        let gh = self.cell.gates().saturating_mul(h);
        for k in 0..self.layers.min(MAX_LAYERS) {
            push(format!("rnn.weight_ih_l{k}"), vec![gh, self.layer_input(k)]);
            push(format!("rnn.weight_hh_l{k}"), vec![gh, h]);
            push(format!("rnn.bias_ih_l{k}"), vec![gh]);
            push(format!("rnn.bias_hh_l{k}"), vec![gh]);
        }
        push("head.weight".into(), vec![self.outputs, h]);
        push("head.bias".into(), vec![self.outputs]);
        ParamLayout { entries, total }
    }
}
