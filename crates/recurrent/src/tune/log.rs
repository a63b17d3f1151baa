//! The study log: `study.jsonl` in the study folder, one event per line,
//! only ever appended. Replaying it rebuilds the study's state, so an
//! interrupted study continues where it stopped.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::space::Params;
use super::study::StudyOptions;
use super::TuneError;

/// The log's file name in the study folder.
pub const LOG_FILE: &str = "study.jsonl";

/// One line of the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The study's settings (the first line).
    Study {
        /// The settings.
        options: Box<StudyOptions>,
    },
    /// A new trial and its configuration; it trains to rung 0 next.
    Trial {
        /// Its number, from 0.
        trial: usize,
        /// Its configuration.
        params: Params,
    },
    /// A trial promoted to train on to `rung`.
    Promote {
        /// The trial.
        trial: usize,
        /// The rung it trains to.
        rung: usize,
    },
    /// One fold of a trial reached a rung's budget.
    Fold {
        /// The trial.
        trial: usize,
        /// The rung.
        rung: usize,
        /// The fold (0 with a single validation split).
        fold: usize,
        /// Validation loss at the end of the rung (nats per token).
        loss: f64,
        /// Tokens trained over the whole run.
        tokens: u64,
        /// Seconds trained over the whole run.
        secs: f64,
    },
    /// Every fold of a trial reached a rung's budget.
    Rung {
        /// The trial.
        trial: usize,
        /// The rung.
        rung: usize,
        /// Each fold's validation loss.
        losses: Vec<f64>,
        /// Tokens trained per fold.
        tokens: u64,
        /// Seconds trained, all folds together.
        secs: f64,
    },
    /// A trial's training failed (it is not retried).
    Failed {
        /// The trial.
        trial: usize,
        /// Why.
        message: String,
    },
}

/// Appends `event` to the log and syncs it. Returns the event as a replay
/// will read it back (a float may come back a bit different), so a study
/// goes on from the same numbers whether or not it was interrupted.
pub fn append(path: &Path, event: &Event) -> Result<Event, TuneError> {
    let value = serde_json::to_value(event).expect("events serialize");
    let line = serde_json::to_string(&value).expect("events serialize");
    let read_back = serde_json::from_str(&line).expect("events parse");
    recurrent_checkpoint::append_jsonl(path, &value)
        .and_then(|()| recurrent_checkpoint::sync_jsonl(path))
        .map_err(|e| TuneError::Io {
            action: "append to",
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
    Ok(read_back)
}

/// Every event of the log, in order. An unfinished last line (a process
/// killed while writing it) is left out.
pub fn read(path: &Path) -> Result<Vec<Event>, TuneError> {
    let text = std::fs::read_to_string(path).map_err(|source| TuneError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let lines: Vec<&str> = text.split('\n').collect();
    let mut events = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(e) => events.push(e),
            Err(_) if i + 1 == lines.len() => break,
            Err(e) => {
                return Err(TuneError::BadLog {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(events)
}
