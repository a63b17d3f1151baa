//! Why training stopped with an error.

use thiserror::Error;

use crate::batch::BatchError;
use crate::engine::{SaveError, Slot};
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
    /// The training loss is NaN or infinite; the parameters were not updated.
    #[error("the loss became {loss} at step {step}, so training stopped before updating the parameters (a lower learning rate or gradient clip may help)")]
    NonFinite {
        /// The loss.
        loss: f64,
        /// The step that produced it.
        step: u64,
    },
    /// The gradient norm is NaN or infinite; the parameters were not updated.
    #[error("the gradient norm became {norm} at step {step}, so training stopped before updating the parameters (a lower learning rate or gradient clip may help)")]
    NonFiniteGradient {
        /// The norm.
        norm: f64,
        /// The step that produced it.
        step: u64,
    },
    /// The validation loss is NaN or infinite: the weights have diverged.
    #[error("the validation loss became {loss} after step {step}, so the weights have diverged and training stopped (a lower learning rate or gradient clip may help)")]
    NonFiniteValidation {
        /// The loss.
        loss: f64,
        /// The last step trained.
        step: u64,
    },
    /// A saved run cannot be continued as it is.
    #[error("cannot resume: {0}")]
    Resume(String),
    /// Training data the trainer cannot use (e.g. an empty set of pairs).
    #[error("invalid training data: {0}")]
    Data(String),
    /// The observer could not write a checkpoint.
    #[error("cannot save the {} checkpoint: {source}", slot_name(*slot))]
    Save {
        /// The checkpoint that was being written.
        slot: Slot,
        /// What went wrong.
        #[source]
        source: SaveError,
    },
}

fn slot_name(slot: Slot) -> &'static str {
    match slot {
        Slot::Best => "best",
        Slot::Last => "last",
    }
}
