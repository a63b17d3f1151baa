//! Checkpoint folders for `recurrent`: safetensors weights, JSON config and
//! vocabulary, atomic writes, and the extra state needed to resume training.
//!
//! A checkpoint is a plain folder that other tools can read:
//!
//! ```text
//! config.json             architecture + tokenizer kind (pretty JSON)
//! model.safetensors       weights, F32, loadable by `safetensors.torch.load_file`
//! vocab.json              JSON array of token strings in id order
//! optimizer.safetensors   optimizer moments (resume only)
//! trainer_state.json      step, epoch, RNG state, ... (resume only)
//! ```
//!
//! A run folder holds `best/`, `last/` and `metrics.jsonl`.
//!
//! The generic pieces ([`Checkpoint`], [`Tensor`]) know files, not models;
//! [`lm`] joins them to a language model and its tokenizer, [`seq2seq`] to
//! an encoder-decoder and its two tokenizers, and [`pytorch`]
//! moves weights to and from pytorch/examples' `word_language_model`. Every write is crash-safe: a crash at any point leaves either
//! the previous good file/folder or the new one, never a torn mixture.

pub mod atomic;
pub mod error;
pub mod folder;
pub mod jsonl;
pub mod layout;
pub mod lm;
pub mod pytorch;
pub mod seq2seq;
pub mod tensors;

pub use atomic::atomic_write;
pub use error::CheckpointError;
pub use folder::Checkpoint;
pub use jsonl::append_jsonl;
pub use tensors::{
    read_safetensors, safetensors_bytes, safetensors_from_bytes, write_safetensors, HeaderMetadata,
    Tensor,
};
