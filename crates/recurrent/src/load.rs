//! Loading any checkpoint: a language model or a seq2seq model, from its
//! checkpoint folder or from a run folder (its `best/`, else `last/`).

use std::path::{Path, PathBuf};

use recurrent_checkpoint::layout::CONFIG_FILE;
use recurrent_checkpoint::lm::{self, ResumeState};
use recurrent_checkpoint::seq2seq as s2s;
use recurrent_checkpoint::Checkpoint as Folder;
use recurrent_model::seq2seq::Seq2Seq;
use recurrent_model::LanguageModel;
use recurrent_text::{PairTokenizers, Tokenizer};

use crate::error::{Error, Result};

/// A language model with its tokenizer.
pub struct LanguageCheckpoint {
    /// The checkpoint folder it was read from.
    pub path: PathBuf,
    /// The model.
    pub model: LanguageModel,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Optimizer and trainer state, in checkpoints that can be resumed.
    pub resume: Option<ResumeState>,
}

impl LanguageCheckpoint {
    /// Loads a language-model checkpoint (or a run folder's best).
    pub fn load(path: impl AsRef<Path>) -> Result<LanguageCheckpoint> {
        let saved = lm::load(path.as_ref())?;
        Ok(LanguageCheckpoint {
            path: saved.path,
            model: saved.model,
            tokenizer: saved.tokenizer,
            resume: saved.resume,
        })
    }

    /// Whether the model was trained resetting its state between documents
    /// (evaluation then does the same).
    pub fn resets_between_docs(&self) -> bool {
        self.resume.as_ref().is_some_and(|r| {
            r.trainer_state["trainer"]["config"]["reset_between_docs"].as_bool() == Some(true)
        })
    }
}

/// A sequence-to-sequence model with its tokenizers.
pub struct Seq2SeqCheckpoint {
    /// The checkpoint folder it was read from.
    pub path: PathBuf,
    /// The model.
    pub model: Seq2Seq,
    /// Source and target tokenizers.
    pub tokenizers: PairTokenizers,
    /// Optimizer and trainer state, in checkpoints that can be resumed.
    pub resume: Option<ResumeState>,
}

impl Seq2SeqCheckpoint {
    /// Loads a seq2seq checkpoint (or a run folder's best).
    pub fn load(path: impl AsRef<Path>) -> Result<Seq2SeqCheckpoint> {
        let saved = s2s::load(path.as_ref())?;
        Ok(Seq2SeqCheckpoint {
            path: saved.path,
            model: saved.model,
            tokenizers: saved.tokenizers,
            resume: saved.resume,
        })
    }
}

/// Any checkpoint.
pub enum AnyCheckpoint {
    /// A language model.
    Language(Box<LanguageCheckpoint>),
    /// A sequence-to-sequence model.
    Seq2Seq(Box<Seq2SeqCheckpoint>),
}

impl AnyCheckpoint {
    /// Loads whatever model the folder (or the run folder's best) holds.
    pub fn load(path: impl AsRef<Path>) -> Result<AnyCheckpoint> {
        let dir = Folder::resolve(path.as_ref())?;
        let format = std::fs::read_to_string(dir.join(CONFIG_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["format"].as_str().map(str::to_string));
        if format.as_deref() == Some(recurrent_checkpoint::series::FORMAT) {
            // A series model has no vocabulary to generate or translate with.
            return Err(Error::Conflict(format!(
                "{} holds a numeric-series model ({}); it forecasts and is evaluated with the \
                 series API (`recurrent series forecast` and `recurrent series eval`)",
                dir.display(),
                recurrent_checkpoint::series::FORMAT
            )));
        }
        Ok(if format.as_deref() == Some(s2s::FORMAT) {
            AnyCheckpoint::Seq2Seq(Box::new(Seq2SeqCheckpoint::load(&dir)?))
        } else {
            AnyCheckpoint::Language(Box::new(LanguageCheckpoint::load(&dir)?))
        })
    }
}
