//! Weights to and from pytorch/examples' `word_language_model` (`RNNModel`):
//! a state dict saved with `safetensors.torch.save_file` becomes a model here,
//! and a model here becomes such a state dict. Layers, sizes and tying are read
//! from the tensors; the cell cannot be (LSTM and GRU differ only in row count
//! per gate), so the caller names it and the row counts are checked against it.

use std::collections::HashMap;
use std::path::Path;

use recurrent_model::{CellKind, LanguageModel, ModelConfig};
use recurrent_text::{Tokenizer, TokenizerKind, Vocab};

use crate::tensors::check_finite;
use crate::{read_safetensors, write_safetensors, CheckpointError, Tensor};

/// Reads a PyTorch state dict and its vocabulary into a model and tokenizer.
pub fn import(
    weights: &Path,
    vocab: &Path,
    cell: CellKind,
    kind: TokenizerKind,
) -> Result<(LanguageModel, Tokenizer), CheckpointError> {
    let mut tensors = read_safetensors(weights)?;
    check_finite(&tensors, weights)?;
    // `safetensors.torch.save_model` keeps one name of a shared tensor; for a
    // tied RNNModel that is `decoder.weight`, so the embedding is that tensor.
    if !tensors.iter().any(|t| t.name == "encoder.weight") {
        if let Some(dec) = tensors.iter().find(|t| t.name == "decoder.weight") {
            tensors.push(Tensor {
                name: "encoder.weight".into(),
                ..dec.clone()
            });
        }
    }
    let mismatch = |reason: String| CheckpointError::Mismatch {
        path: weights.to_path_buf(),
        reason,
    };
    let by_name: HashMap<&str, &Tensor> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let shape = |name: &str| by_name.get(name).map(|t| t.shape.clone());
    let encoder = shape("encoder.weight").ok_or_else(|| {
        mismatch(
            "no tensor 'encoder.weight' (is this a word_language_model RNNModel state dict?)"
                .into(),
        )
    })?;
    let [vocab_size, embed] = encoder[..] else {
        return Err(mismatch(format!(
            "encoder.weight should be 2-D, found shape {encoder:?}"
        )));
    };
    let layers = (0..)
        .take_while(|k| by_name.contains_key(format!("rnn.weight_ih_l{k}").as_str()))
        .count();
    let hh =
        shape("rnn.weight_hh_l0").ok_or_else(|| mismatch("no tensor 'rnn.weight_hh_l0'".into()))?;
    let [rows, hidden] = hh[..] else {
        return Err(mismatch(format!(
            "rnn.weight_hh_l0 should be 2-D, found shape {hh:?}"
        )));
    };
    if rows != cell.gates() * hidden {
        return Err(CheckpointError::WrongCell {
            path: weights.to_path_buf(),
            cell,
            rows,
            hidden,
        });
    }
    let tie = match (by_name.get("decoder.weight"), by_name.get("encoder.weight")) {
        (Some(dec), Some(enc)) => dec.shape == enc.shape && dec.data == enc.data,
        (None, _) => true, // save_model keeps one name of a shared tensor
        _ => false,
    };
    let config = ModelConfig {
        tie,
        ..ModelConfig::new(cell, vocab_size, embed, hidden, layers)
    };
    let list: Vec<_> = tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone(), t.data.clone()))
        .collect();
    let model =
        LanguageModel::from_tensors(config, &list).map_err(|source| CheckpointError::Model {
            path: weights.to_path_buf(),
            what: "the tensors do not make a word_language_model RNNModel",
            source,
        })?;

    let text = std::fs::read_to_string(vocab).map_err(|cause| CheckpointError::Io {
        action: "read",
        path: vocab.to_path_buf(),
        cause,
    })?;
    let vocab_err = |reason: String| CheckpointError::Mismatch {
        path: vocab.to_path_buf(),
        reason,
    };
    let tokenizer_err = |source| CheckpointError::Tokenizer {
        path: vocab.to_path_buf(),
        file: "the vocabulary".into(),
        source,
    };
    let vocab_list = Vocab::from_json(&text).map_err(tokenizer_err)?;
    if vocab_list.len() != vocab_size {
        return Err(vocab_err(format!(
            "has {} tokens but encoder.weight has {vocab_size} rows",
            vocab_list.len()
        )));
    }
    let tokenizer = Tokenizer::from_vocab(kind, vocab_list).map_err(tokenizer_err)?;
    Ok((model, tokenizer))
}

/// Writes the model's weights as a PyTorch `RNNModel` state dict (a tied model
/// lists `decoder.weight` too, as `state_dict()` does), and returns how many
/// tensors it wrote.
pub fn export(model: &LanguageModel, out: &Path) -> Result<usize, CheckpointError> {
    if model.config.layer_norm {
        return Err(CheckpointError::Mismatch {
            path: out.to_path_buf(),
            reason: "word_language_model's RNNModel has no layer-normalized cells; this model cannot be expressed as one".into(),
        });
    }
    if !model.config.uniform_widths() {
        return Err(CheckpointError::Mismatch {
            path: out.to_path_buf(),
            reason: format!(
                "word_language_model's RNNModel uses one recurrent module whose layers share one width; this model's layers are {} wide",
                model.config.widths_label()
            ),
        });
    }
    if model.config.dense > 0 || model.config.embed == 0 {
        return Err(CheckpointError::Mismatch {
            path: out.to_path_buf(),
            reason: "word_language_model's RNNModel has an embedding and no dense layer; this model cannot be expressed as one".into(),
        });
    }
    let tensors: Vec<Tensor> = model
        .to_tensors()
        .into_iter()
        .map(|(name, shape, data)| Tensor { name, shape, data })
        .collect();
    write_safetensors(out, &tensors)?;
    Ok(tensors.len())
}
