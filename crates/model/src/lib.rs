//! The language model of `recurrent`: token embedding (or one-hot) → stacked
//! recurrent layers with dropout → optional dense ReLU layer → output projection
//! → softmax, built from the layers in `recurrent-nn`.
//!
//! All parameters live in one flat `f32` buffer laid out in PyTorch's
//! `state_dict` order under the names pytorch/examples' `word_language_model`
//! uses (`encoder.weight`, `rnn.weight_ih_l0`, …, `decoder.bias`), so weights
//! move to and from PyTorch by name and an optimizer sees one contiguous slice.
//!
//! Also here: the model configurations ([`ModelConfig`], [`seq2seq`]), the
//! seq2seq model, the sequence-regression model ([`series`]), and [`infer::StepModel`], the language model packed once
//! for generation one token at a time.
//!
//! This crate knows nothing of files, training loops, samplers or front ends:
//! checkpoints, optimizers and generation live in the crates above it.

#![deny(missing_docs)]

mod check;
pub mod config;
pub mod infer;
pub mod lm;
pub mod params;
pub mod seq2seq;
pub mod series;

pub use config::{ModelConfig, ModelError};
pub use lm::{
    BlockStats, GradientSink, LanguageModel, Regularization, State, TokenBlock, Workspace,
};
pub use params::{ParamEntry, ParamLayout};
pub use recurrent_nn::CellKind;
