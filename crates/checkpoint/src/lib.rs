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
//! A run folder holds `best/`, `last/` and `metrics.jsonl`, and while a run
//! trains into it, `run.lock` ([`RunLock`]).
//!
//! The generic pieces ([`Checkpoint`], [`Tensor`]) know files, not models;
//! [`lm`] joins them to a language model and its tokenizer, [`seq2seq`] to
//! an encoder-decoder and its two tokenizers, [`series`] to a sequence-regression
//! model and its columns and normalisation, and [`pytorch`] moves weights
//! to and from pytorch/examples' `word_language_model`. Every write is
//! crash-safe: a crash at any point leaves either the previous good
//! file/folder or the new one, never a torn mixture.
//!
//! This crate knows nothing of training loops or front ends: it stores what
//! it is given (the trainer's state is opaque JSON) and reports every failure
//! as a [`CheckpointError`] naming the file, with the underlying error as its
//! source.
//!
//! Saving a language model and its tokenizer, and loading them back:
//!
//! ```
//! use recurrent_checkpoint::lm;
//! use recurrent_kernels::Rng;
//! use recurrent_model::{CellKind, LanguageModel, ModelConfig};
//! use recurrent_text::{Corpus, Tokenizer, TokenizerKind};
//!
//! let corpus = Corpus::from_text("input.txt", "hello world\n");
//! let tokenizer = Tokenizer::build(TokenizerKind::Char, &corpus)?;
//! let config = ModelConfig::new(CellKind::Lstm, tokenizer.vocab().len(), 4, 8, 1);
//! let model = LanguageModel::new(config, &mut Rng::new(1), None)?;
//!
//! let dir = tempfile::tempdir()?;
//! let folder = dir.path().join("best");
//! lm::save(&folder, &model, &tokenizer, None)?;
//! assert!(folder.join("model.safetensors").is_file());
//!
//! let saved = lm::load(&folder)?;
//! assert_eq!(saved.model.params, model.params);
//! assert_eq!(saved.tokenizer.vocab(), tokenizer.vocab());
//! assert!(saved.resume.is_none());
//!
//! // A run folder (holding best/) loads too; a folder without a checkpoint is an error.
//! assert_eq!(lm::load(dir.path())?.path, folder);
//! assert!(lm::load(&dir.path().join("nowhere")).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod atomic;
pub mod error;
pub mod folder;
pub mod jsonl;
pub mod layout;
pub mod lm;
pub mod lock;
pub mod pytorch;
pub mod seq2seq;
pub mod series;
pub mod stale;
pub mod tensors;

pub use atomic::atomic_write;
pub use error::{CheckpointError, ModelKind};
pub use folder::Checkpoint;
pub use jsonl::{append_jsonl, sync_jsonl};
pub use lock::RunLock;
pub use stale::remove_stale_temporaries;
pub use tensors::{
    check_finite, read_safetensors, safetensors_bytes, safetensors_from_bytes, write_safetensors,
    HeaderMetadata, Tensor,
};
