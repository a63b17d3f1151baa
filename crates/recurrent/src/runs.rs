//! Run folders side by side: what each trained, on what, how far, and how
//! well. `recurrent runs` prints these as a table.
//!
//! Listing reads each run's `config.json` and `trainer_state.json` only (no
//! weights), so a folder of many large runs lists quickly. A folder that
//! looks like a run but cannot be read is listed with its problem instead of
//! failing the whole listing.

use std::fs;
use std::path::{Path, PathBuf};

use recurrent_checkpoint::layout::{BEST_DIR, CONFIG_FILE, LAST_DIR, TRAINER_STATE_FILE};
use recurrent_checkpoint::lm::LmConfigFile;
use recurrent_checkpoint::seq2seq::Seq2SeqConfigFile;
use recurrent_checkpoint::{lm, seq2seq, RunLock};
use recurrent_model::seq2seq::Seq2SeqConfig;
use recurrent_model::ModelConfig;
use recurrent_text::TokenizerKind;
use recurrent_train::seq2seq::Seq2SeqTrainerState;
use recurrent_train::trainer::TrainerState;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::summary::TrainingSummary;

/// Folder levels below the listed folder searched for runs (a study's
/// `trials/NAME` is two levels down).
const MAX_DEPTH: usize = 3;

/// One run folder as `recurrent runs` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunListing {
    /// The run folder.
    pub path: PathBuf,
    /// What it trains, or why it could not be read.
    pub model: Result<ListedModel, String>,
    /// How far it trained, from `last/` (else `best/`); `None` when the
    /// checkpoint cannot resume.
    pub training: Option<TrainingSummary>,
    /// The training text or pairs file, as the run recorded it.
    pub input: Option<PathBuf>,
    /// A process holds the run's lock: it is training now.
    pub running: bool,
}

/// The model of a listed run.
#[derive(Clone, Debug, PartialEq)]
pub enum ListedModel {
    /// A language model and its token level.
    Language {
        /// The architecture.
        config: ModelConfig,
        /// The token level.
        tokenizer: TokenizerKind,
    },
    /// A sequence-to-sequence model.
    Seq2Seq {
        /// The architecture.
        config: Seq2SeqConfig,
        /// The target side's token level.
        tokenizer: TokenizerKind,
    },
    /// A checkpoint format this listing does not describe (from a newer
    /// build, or another kind of model): its `format` field.
    Other {
        /// config.json's `format`.
        format: String,
    },
}

impl ListedModel {
    /// Trainable parameters, when the format is known.
    pub fn parameters(&self) -> Option<usize> {
        match self {
            ListedModel::Language { config, .. } => config.checked_num_params(),
            ListedModel::Seq2Seq { config, .. } => config.checked_num_params(),
            ListedModel::Other { .. } => None,
        }
    }

    /// The token level the validation loss is counted in.
    pub fn tokenizer(&self) -> Option<TokenizerKind> {
        match self {
            ListedModel::Language { tokenizer, .. } | ListedModel::Seq2Seq { tokenizer, .. } => {
                Some(*tokenizer)
            }
            ListedModel::Other { .. } => None,
        }
    }
}

impl RunListing {
    /// The best validation loss in nats per token, if the run validated.
    pub fn best_val_loss(&self) -> Option<f64> {
        self.training.as_ref()?.best_val_loss
    }
}

/// Every run folder in `dir` (or `dir` itself when it is one), sorted by
/// path. A run folder is one with a `best/` or `last/` checkpoint; folders
/// that are not runs are searched a few levels down.
///
/// ```
/// use recurrent::lm::{TextSource, TrainOptions, Training};
/// use recurrent::{list_runs, Quiet, RunFolder, StopRule};
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
/// let runs = list_runs(dir.path())?;
/// assert_eq!(runs.len(), 1);
/// assert_eq!(runs[0].training.as_ref().unwrap().step, 3);
/// assert!(!runs[0].running);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn list_runs(dir: impl AsRef<Path>) -> Result<Vec<RunListing>> {
    let dir = dir.as_ref();
    // The folder itself must be readable; below it, unreadable folders are skipped.
    fs::read_dir(dir).map_err(|source| Error::Io {
        action: "list the runs in",
        path: dir.to_path_buf(),
        source,
    })?;
    let mut runs = Vec::new();
    collect(dir, 0, &mut runs);
    runs.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(runs)
}

/// Adds the runs at and below `dir`.
fn collect(dir: &Path, depth: usize, runs: &mut Vec<RunListing>) {
    if is_run(dir) {
        runs.push(listing(dir));
        return;
    }
    if depth == MAX_DEPTH {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut children: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    children.sort();
    for child in children {
        collect(&child, depth + 1, runs);
    }
}

/// A run folder keeps a checkpoint in `best/` or `last/`.
fn is_run(dir: &Path) -> bool {
    [BEST_DIR, LAST_DIR]
        .iter()
        .any(|slot| dir.join(slot).join(CONFIG_FILE).is_file())
}

/// What the run folder's files say; problems are kept, not raised.
fn listing(dir: &Path) -> RunListing {
    // last/ has the latest progress (and the best loss so far); best/ may be
    // all a finished run kept.
    let slot = [LAST_DIR, BEST_DIR]
        .iter()
        .map(|s| dir.join(s))
        .find(|s| s.join(CONFIG_FILE).is_file())
        .unwrap_or_else(|| dir.join(BEST_DIR));
    let state = read_json(&slot.join(TRAINER_STATE_FILE)).ok();
    let model = read_json(&slot.join(CONFIG_FILE)).and_then(|config| describe(&config));
    let training = match (&model, &state) {
        (Ok(ListedModel::Language { .. }), Some(s)) => {
            trainer::<TrainerState>(s).map(|t| summarize_lm(&t))
        }
        (Ok(ListedModel::Seq2Seq { .. }), Some(s)) => {
            trainer::<Seq2SeqTrainerState>(s).map(|t| summarize_seq2seq(&t))
        }
        _ => None,
    };
    let input = state
        .as_ref()
        .and_then(|s| s["data"]["input"].as_str().or(s["data"]["pairs"].as_str()))
        .map(PathBuf::from);
    RunListing {
        path: dir.to_path_buf(),
        model,
        training,
        input,
        running: RunLock::ensure_free(dir).is_err(),
    }
}

/// The model a config.json describes.
fn describe(config: &Value) -> Result<ListedModel, String> {
    let format = config["format"].as_str().unwrap_or("");
    let parse = |e: serde_json::Error| format!("config.json: {e}");
    match format {
        lm::FORMAT => {
            let file: LmConfigFile = serde_json::from_value(config.clone()).map_err(parse)?;
            Ok(ListedModel::Language {
                config: file.model,
                tokenizer: file.tokenizer,
            })
        }
        seq2seq::FORMAT => {
            let file: Seq2SeqConfigFile = serde_json::from_value(config.clone()).map_err(parse)?;
            Ok(ListedModel::Seq2Seq {
                config: file.model,
                tokenizer: file.target.kind,
            })
        }
        "" => Err("config.json has no format".into()),
        other => Ok(ListedModel::Other {
            format: other.to_string(),
        }),
    }
}

/// The trainer's part of a saved run's state.
fn trainer<S: DeserializeOwned>(state: &Value) -> Option<S> {
    S::deserialize(&state["trainer"]).ok()
}

fn summarize_lm(t: &TrainerState) -> TrainingSummary {
    let c = &t.config;
    TrainingSummary::new(
        &t.progress,
        c.batch,
        Some(c.seq_len),
        c.optimizer.kind,
        c.lr,
    )
}

fn summarize_seq2seq(t: &Seq2SeqTrainerState) -> TrainingSummary {
    let c = &t.config;
    TrainingSummary::new(&t.progress, c.batch, None, c.optimizer.kind, c.lr)
}

/// A JSON file, or what is wrong with it.
fn read_json(path: &Path) -> Result<Value, String> {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let text = fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))
}
