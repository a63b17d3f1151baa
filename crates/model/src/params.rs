//! The flat parameter layout: every tensor's name, shape and offset in one
//! contiguous buffer, in PyTorch `state_dict` order.

use std::collections::HashMap;
use std::ops::Range;

use recurrent_nn::CellKind;

use crate::config::ModelConfig;

/// One named tensor inside the flat buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamEntry {
    /// PyTorch's name of the tensor.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Where it starts in the flat buffer.
    pub offset: usize,
}

impl ParamEntry {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where it lives in the flat buffer.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// Why named tensors do not fill a [`ParamLayout`].
#[derive(Clone, Debug, PartialEq)]
pub enum MissingOrMisshapen {
    /// No tensor has this entry's name.
    Missing(String),
    /// The tensor has another shape than the entry.
    Shape {
        /// The tensor's name.
        name: String,
        /// The entry's shape.
        expected: Vec<usize>,
        /// The tensor's shape.
        found: Vec<usize>,
    },
}

/// Names, shapes and offsets of all parameters of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamLayout {
    /// The tensors, in buffer order.
    pub entries: Vec<ParamEntry>,
    /// Elements in all of them.
    pub total: usize,
}

impl ParamLayout {
    /// The layout for `config`. A tied model has no `decoder.weight` entry: the
    /// output projection reads `encoder.weight`.
    pub fn new(config: &ModelConfig) -> ParamLayout {
        let mut layout = ParamLayout {
            entries: Vec::new(),
            total: 0,
        };
        let v = config.vocab_size;
        if config.embed > 0 {
            layout.push("encoder.weight", vec![v, config.embed]);
        }
        for k in 0..config.layers {
            let h = config.layer_hidden(k);
            let gh = config.cell.gates() * h;
            layout.push(
                &format!("rnn.weight_ih_l{k}"),
                vec![gh, config.layer_input(k)],
            );
            layout.push(&format!("rnn.weight_hh_l{k}"), vec![gh, h]);
            layout.push(&format!("rnn.bias_ih_l{k}"), vec![gh]);
            layout.push(&format!("rnn.bias_hh_l{k}"), vec![gh]);
            if config.layer_norm {
                // Right after the layer's own tensors: the backward pass
                // takes a layer's gradients as one run of entries.
                for side in ["ih", "hh"] {
                    layout.push(&format!("rnn.ln_{side}_weight_l{k}"), vec![gh]);
                    layout.push(&format!("rnn.ln_{side}_bias_l{k}"), vec![gh]);
                }
                if config.cell == CellKind::Lstm {
                    layout.push(&format!("rnn.ln_c_weight_l{k}"), vec![h]);
                    layout.push(&format!("rnn.ln_c_bias_l{k}"), vec![h]);
                }
            }
        }
        if config.dense > 0 {
            layout.push("dense.weight", vec![config.dense, config.top_hidden()]);
            layout.push("dense.bias", vec![config.dense]);
        }
        if !config.tie {
            layout.push("decoder.weight", vec![v, config.head_input()]);
        }
        layout.push("decoder.bias", vec![v]);
        layout
    }

    fn push(&mut self, name: &str, shape: Vec<usize>) {
        let entry = ParamEntry {
            name: name.to_string(),
            shape,
            offset: self.total,
        };
        self.total += entry.len();
        self.entries.push(entry);
    }

    /// Copies named tensors into a flat buffer in this layout. Every entry must
    /// be present with its exact shape; tensors the layout lacks are left for
    /// the caller to judge (a tied copy may be fine, anything else is not).
    pub fn gather(
        &self,
        tensors: &[(String, Vec<usize>, Vec<f32>)],
    ) -> Result<Vec<f32>, MissingOrMisshapen> {
        let by_name: HashMap<&str, (&Vec<usize>, &Vec<f32>)> = tensors
            .iter()
            .map(|(n, s, d)| (n.as_str(), (s, d)))
            .collect();
        let mut params = vec![0.0; self.total];
        for e in &self.entries {
            let (shape, data) = by_name
                .get(e.name.as_str())
                .ok_or_else(|| MissingOrMisshapen::Missing(e.name.clone()))?;
            if **shape != e.shape || data.len() != e.len() {
                return Err(MissingOrMisshapen::Shape {
                    name: e.name.clone(),
                    expected: e.shape.clone(),
                    found: (*shape).clone(),
                });
            }
            params[e.range()].copy_from_slice(data);
        }
        Ok(params)
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&ParamEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Index of the entry called `name`, for names the layout itself made
    /// (use [`ParamLayout::get`] for a name from outside).
    ///
    /// # Panics
    /// If there is no entry called `name`.
    pub fn index(&self, name: &str) -> usize {
        self.entries
            .iter()
            .position(|e| e.name == name)
            .unwrap_or_else(|| panic!("no parameter {name}"))
    }

    /// Splits `buf` into one mutable slice per entry, in layout order.
    ///
    /// # Panics
    /// If `buf` is shorter than the layout's total.
    pub fn split_mut<'a>(&self, mut buf: &'a mut [f32]) -> Vec<&'a mut [f32]> {
        let mut out = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let (head, tail) = buf.split_at_mut(e.len());
            out.push(head);
            buf = tail;
        }
        out
    }

    /// Splits `buf` into one slice per entry, in layout order.
    ///
    /// # Panics
    /// If `buf` is shorter than the layout's total.
    pub fn split<'a>(&self, buf: &'a [f32]) -> Vec<&'a [f32]> {
        self.entries.iter().map(|e| &buf[e.range()]).collect()
    }
}
