//! What a checkpoint is and how it was trained: the model, its parameter
//! count, a preview of its vocabularies, its tensors, and (in checkpoints that
//! can be resumed) a summary of the training so far. `recurrent info` prints
//! one of these.

use std::path::PathBuf;

use recurrent_checkpoint::lm::ResumeState;
use recurrent_model::seq2seq::Seq2SeqConfig;
use recurrent_model::ModelConfig;
use recurrent_text::{Tokenizer, TokenizerKind};
use recurrent_train::optim::OptimizerKind;
use recurrent_train::seq2seq::Seq2SeqTrainerState;
use recurrent_train::trainer::TrainerState;
use recurrent_train::{EvalRecord, RunProgress};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::load::{AnyCheckpoint, LanguageCheckpoint, Seq2SeqCheckpoint};
use crate::recorder::SavedRun;

/// Tokens a [`VocabularyPreview`] shows.
pub const PREVIEW_TOKENS: usize = 40;

/// Validations a [`TrainingSummary`] keeps, the latest.
pub const RECENT_VALIDATIONS: usize = 10;

/// What a checkpoint is and how it was trained.
///
/// ```
/// use recurrent::lm::{TextSource, TrainOptions, Training};
/// use recurrent::{AnyCheckpoint, ModelDescription, Quiet, RunFolder, StopRule};
///
/// let dir = tempfile::tempdir()?;
/// let options = TrainOptions {
///     input: TextSource::text("abc", "abcabcabc\n".repeat(40)),
///     stop: StopRule { steps: Some(3), ..StopRule::default() },
///     seq_len: 10,
///     batch: 2,
///     threads: Some(1),
///     ..TrainOptions::default()
/// };
/// Training::start(&options, RunFolder::create(dir.path().join("run"))?)?.run(&mut Quiet)?;
///
/// let summary = AnyCheckpoint::load(dir.path().join("run"))?.summary()?;
/// assert!(matches!(summary.model, ModelDescription::Language(_)));
/// assert_eq!(summary.vocabularies[0].size, 4); // a, b, c and the newline
/// assert_eq!(summary.training.unwrap().step, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointSummary {
    /// The checkpoint folder.
    pub path: PathBuf,
    /// The architecture.
    pub model: ModelDescription,
    /// Trainable parameters.
    pub parameters: usize,
    /// The vocabularies: one for a language model (or a seq2seq model that
    /// shares one), source and target for a seq2seq model.
    pub vocabularies: Vec<VocabularyPreview>,
    /// Every weight tensor by its PyTorch name and shape, in storage order.
    pub tensors: Vec<TensorShape>,
    /// How the model was trained, in checkpoints that can be resumed.
    pub training: Option<TrainingSummary>,
}

/// The architecture of a checkpoint's model.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelDescription {
    /// A language model.
    Language(ModelConfig),
    /// A sequence-to-sequence model with attention.
    Seq2Seq(Seq2SeqConfig),
}

/// Which text a vocabulary covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocabularyRole {
    /// A language model's text.
    Text,
    /// A seq2seq model's source side.
    Source,
    /// A seq2seq model's target side.
    Target,
    /// Both sides of a seq2seq model.
    Shared,
}

/// A vocabulary's size and its first tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct VocabularyPreview {
    /// Which text it covers.
    pub role: VocabularyRole,
    /// Its token level.
    pub kind: TokenizerKind,
    /// Tokens in it.
    pub size: usize,
    /// The first [`PREVIEW_TOKENS`] tokens, in id order.
    pub first: Vec<String>,
}

/// A weight tensor's name and shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorShape {
    /// Its PyTorch name, e.g. `rnn.weight_hh_l0`.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
}

/// How a checkpoint's model was trained, from its saved trainer state.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingSummary {
    /// Optimizer steps done.
    pub step: u64,
    /// Passes over the training data done.
    pub epoch: u64,
    /// Seconds trained over all invocations.
    pub elapsed_secs: f64,
    /// Streams (language model) or sentence pairs (seq2seq) per batch.
    pub batch: usize,
    /// Time steps per block (language models only).
    pub seq_len: Option<usize>,
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// Base learning rate.
    pub lr: f32,
    /// The lowest validation loss, in nats per token.
    pub best_val_loss: Option<f64>,
    /// The last [`RECENT_VALIDATIONS`] validations, oldest first.
    pub recent_history: Vec<EvalRecord>,
}

impl TrainingSummary {
    /// The summary of `progress` with the config's settings.
    pub(crate) fn new(
        progress: &RunProgress,
        batch: usize,
        seq_len: Option<usize>,
        optimizer: OptimizerKind,
        lr: f32,
    ) -> TrainingSummary {
        let h = &progress.history;
        TrainingSummary {
            step: progress.step,
            epoch: progress.epoch,
            elapsed_secs: progress.elapsed_secs,
            batch,
            seq_len,
            optimizer,
            lr,
            best_val_loss: progress.best_val_loss,
            recent_history: h[h.len().saturating_sub(RECENT_VALIDATIONS)..].to_vec(),
        }
    }
}

impl LanguageCheckpoint {
    /// What this checkpoint is and how it was trained.
    pub fn summary(&self) -> Result<CheckpointSummary> {
        let model = &self.model;
        let training = self.trainer_state::<TrainerState>()?.map(|t| {
            let c = &t.config;
            TrainingSummary::new(
                &t.progress,
                c.batch,
                Some(c.seq_len),
                c.optimizer.kind,
                c.lr,
            )
        });
        Ok(CheckpointSummary {
            path: self.path.clone(),
            model: ModelDescription::Language(model.config.clone()),
            parameters: model.num_params(),
            vocabularies: vec![preview(VocabularyRole::Text, &self.tokenizer)],
            tensors: shapes(&model.layout.entries),
            training,
        })
    }

    /// The trainer's state of a resumable checkpoint.
    fn trainer_state<S: DeserializeOwned>(&self) -> Result<Option<S>> {
        trainer_state(&self.path, self.resume.as_ref())
    }
}

impl Seq2SeqCheckpoint {
    /// What this checkpoint is and how it was trained.
    pub fn summary(&self) -> Result<CheckpointSummary> {
        let model = &self.model;
        let training =
            trainer_state::<Seq2SeqTrainerState>(&self.path, self.resume.as_ref())?.map(|t| {
                let c = &t.config;
                TrainingSummary::new(&t.progress, c.batch, None, c.optimizer.kind, c.lr)
            });
        let t = &self.tokenizers;
        let vocabularies = if t.shared {
            vec![preview(VocabularyRole::Shared, &t.source)]
        } else {
            vec![
                preview(VocabularyRole::Source, &t.source),
                preview(VocabularyRole::Target, &t.target),
            ]
        };
        Ok(CheckpointSummary {
            path: self.path.clone(),
            model: ModelDescription::Seq2Seq(model.config.clone()),
            parameters: model.num_params(),
            vocabularies,
            tensors: shapes(&model.layout.entries),
            training,
        })
    }
}

impl AnyCheckpoint {
    /// What this checkpoint is and how it was trained.
    pub fn summary(&self) -> Result<CheckpointSummary> {
        match self {
            AnyCheckpoint::Language(c) => c.summary(),
            AnyCheckpoint::Seq2Seq(c) => c.summary(),
        }
    }
}

/// The trainer's state `S` in a checkpoint's resume state, if it has one.
fn trainer_state<S: DeserializeOwned>(
    path: &std::path::Path,
    resume: Option<&ResumeState>,
) -> Result<Option<S>> {
    let Some(resume) = resume else {
        return Ok(None);
    };
    // Where the data came from is not summarized.
    let run = SavedRun::<S, IgnoredAny>::deserialize(&resume.trainer_state).map_err(|source| {
        Error::TrainerState {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(Some(run.trainer))
}

/// The size and first tokens of `tokenizer`'s vocabulary.
fn preview(role: VocabularyRole, tokenizer: &Tokenizer) -> VocabularyPreview {
    let v = tokenizer.vocab();
    VocabularyPreview {
        role,
        kind: tokenizer.kind(),
        size: v.len(),
        first: v.tokens().iter().take(PREVIEW_TOKENS).cloned().collect(),
    }
}

/// Names and shapes of a parameter layout's tensors.
fn shapes(entries: &[recurrent_model::ParamEntry]) -> Vec<TensorShape> {
    entries
        .iter()
        .map(|e| TensorShape {
            name: e.name.clone(),
            shape: e.shape.clone(),
        })
        .collect()
}
