//! Why training stopped with an error.

use thiserror::Error;

use crate::batch::BatchError;
use crate::divergence::{DivergenceReason, ROLLBACK_LR_FACTOR};
use crate::engine::{DataFingerprint, SaveError, Slot};
use crate::optim::OptimError;
use recurrent_model::seq2seq::Seq2SeqError;
use recurrent_model::ModelError;

/// Errors that stop training. A run that fails keeps its last good checkpoint.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The data cannot be cut into batches.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The optimizer's settings or saved state are wrong.
    #[error(transparent)]
    Optim(#[from] OptimError),
    /// The model rejected its input or configuration.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The seq2seq model rejected a batch or its options.
    #[error(transparent)]
    Seq2Seq(#[from] Seq2SeqError),
    /// The run diverged (see [`crate::divergence`]): a loss or the gradient
    /// norm became NaN or infinite, or a loss exploded. Nothing diverged was
    /// saved; the last good checkpoint stays as it was.
    #[error(
        "training diverged at step {step}: {}{}; a lower learning rate or gradient clipping may help",
        reason.describe(*loss),
        rollbacks_done(*rollbacks)
    )]
    Diverged {
        /// The step that showed it (a validation's: the last step trained).
        step: u64,
        /// The loss that showed it (the training loss for a gradient norm).
        loss: f64,
        /// What showed it.
        reason: DivergenceReason,
        /// Rollbacks taken before this divergence stopped the run.
        rollbacks: u32,
    },
    /// A saved run cannot be continued as it is.
    #[error(transparent)]
    Resume(#[from] ResumeError),
    /// Training data the trainer cannot use (e.g. an empty set of pairs).
    #[error(transparent)]
    Data(#[from] DataError),
    /// The ranks of a data-parallel job cannot train together.
    #[error(transparent)]
    Parallel(#[from] ParallelError),
    /// The observer could not write a checkpoint.
    #[error("cannot save the {} checkpoint", slot_name(*slot))]
    Save {
        /// The checkpoint that was being written.
        slot: Slot,
        /// What went wrong.
        #[source]
        source: SaveError,
    },
}

fn rollbacks_done(rollbacks: u32) -> String {
    match rollbacks {
        0 => String::new(),
        n => format!(
            " (after {n} rollback(s), each multiplying the learning rate by {ROLLBACK_LR_FACTOR})"
        ),
    }
}

fn slot_name(slot: Slot) -> &'static str {
    match slot {
        Slot::Best => "best",
        Slot::Last => "last",
    }
}

/// Which training data a run was fingerprinted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainingData {
    /// The language model's token stream.
    Text,
    /// The seq2seq model's sentence pairs.
    Pairs,
}

impl std::fmt::Display for TrainingData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrainingData::Text => "text",
            TrainingData::Pairs => "set of pairs",
        })
    }
}

/// Why a saved run cannot be continued.
#[derive(Debug, Error, PartialEq)]
pub enum ResumeError {
    /// The training data is not the data the run was trained on.
    #[error(
        "cannot resume: the training {data} differs from the {data} this run was trained on \
         ({} token ids now, {} before)",
        found.tokens,
        saved.tokens
    )]
    DataChanged {
        /// Text or pairs.
        data: TrainingData,
        /// The fingerprint saved with the run.
        saved: DataFingerprint,
        /// The fingerprint of the data given now.
        found: DataFingerprint,
    },
    /// The saved position in the streams (variable BPTT) lies past their end.
    #[error(
        "cannot resume: the saved stream position {position} is past the end of the streams \
         ({stream_len} tokens each)"
    )]
    StreamPosition {
        /// The saved position, in tokens from each stream's start.
        position: usize,
        /// Tokens per stream with the saved batch size.
        stream_len: usize,
    },
    /// The saved carried state does not fit the model and batch size.
    #[error(
        "cannot resume: the saved {state} state has {saved} values; the model and batch size \
         need {expected}"
    )]
    CarriedState {
        /// Which state: "hidden" or "cell".
        state: &'static str,
        /// Values saved.
        saved: usize,
        /// Values needed: layers × batch × hidden size.
        expected: usize,
    },
    /// The saved NT-ASGD average has the wrong number of values.
    #[error(
        "cannot resume: the saved NT-ASGD average has {found} values; the model has {expected} \
         parameters"
    )]
    AverageLength {
        /// Values saved.
        found: usize,
        /// The model's parameter count.
        expected: usize,
    },
    /// The state says NT-ASGD is averaging (since `since`), but no average was saved.
    #[error("cannot resume: NT-ASGD has averaged since step {since}, but no average was saved")]
    AverageMissing {
        /// The step averaging started at.
        since: u64,
    },
    /// An NT-ASGD average was saved, but the state says averaging has not started.
    #[error(
        "cannot resume: an NT-ASGD average was saved, but the state says averaging has not started"
    )]
    AverageUnexpected,
}

/// Training data a trainer cannot use.
#[derive(Debug, Error, PartialEq)]
pub enum DataError {
    /// There are no training pairs.
    #[error("there are no training pairs")]
    NoPairs,
    /// A pair has an empty source, or a target of fewer than two ids (BOS and EOS).
    #[error("{set} pair {pair} has an empty source or target")]
    EmptyPair {
        /// Which set: "training" or "validation".
        set: &'static str,
        /// The pair's 1-based number in its set.
        pair: usize,
    },
    /// A pair holds a token id outside the model's vocabulary.
    #[error(
        "{set} pair {pair} has {side} id {id}, outside the model's {side} vocabulary of {vocab}"
    )]
    IdOutOfVocab {
        /// Which set: "training" or "validation".
        set: &'static str,
        /// The pair's 1-based number in its set.
        pair: usize,
        /// Which side: "source" or "target".
        side: &'static str,
        /// The id.
        id: u32,
        /// The vocabulary's size.
        vocab: usize,
    },
}

/// Why the ranks of a data-parallel job cannot train together.
#[derive(Debug, Error, PartialEq)]
pub enum ParallelError {
    /// Every rank needs at least one stream of the batch.
    #[error(
        "batch {batch} is smaller than the {ranks} ranks of the job: each rank needs a stream"
    )]
    TooFewStreams {
        /// Streams of the global batch.
        batch: usize,
        /// Processes in the job.
        ranks: usize,
    },
    /// A rank was set up differently from rank 0 (other data, options or weights).
    #[error(
        "rank {rank} was set up differently from rank 0 (different data, options or checkpoint?): \
         rank 0 has {leader}, rank {rank} has {mine}"
    )]
    Disagree {
        /// The rank that differs.
        rank: usize,
        /// Rank 0's fingerprint of the run.
        leader: String,
        /// This rank's.
        mine: String,
    },
    /// Rank 0 could not write a checkpoint; every rank stops.
    #[error("rank 0 could not save the checkpoint: {0}")]
    LeaderSave(String),
}
