//! Building a model: fresh initialization, from and to named tensors,
//! growing the vocabulary, rounding to bfloat16.

use recurrent_kernels::panel::round_bf16;
use recurrent_kernels::Rng;
use recurrent_nn::CellKind;

use super::LanguageModel;
use crate::config::{ModelConfig, ModelError};
use crate::params::{MissingOrMisshapen, ParamLayout};

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
}

/// The layer `k` of a recurrent tensor's name (`rnn.weight_ih_l{k}` and the like).
pub(super) fn rnn_layer_index(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("rnn.")?;
    rest.rsplit_once("_l")?.1.parse().ok()
}
