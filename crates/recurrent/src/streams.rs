//! Serving many requests at once: a language model packed once and stepped
//! for every active request as one batch (continuous batching), on the
//! engine's own thread. See [`recurrent_generate::streams`].

pub use recurrent_generate::streams::{
    Cancel, EngineStats, FinishReason, Sink, StreamEngine, StreamError, StreamEvent, StreamRequest,
    TokenLogprob,
};
use recurrent_generate::EngineOptions;
use recurrent_model::infer::{StepModel, WeightFormat};

use crate::error::Result;
use crate::load::LanguageCheckpoint;
use crate::threads::{resolve_threads, with_threads};

/// How [`start_streams`] runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamOptions {
    /// Weight storage (see [`WeightFormat`]).
    pub weights: WeightFormat,
    /// Threads for the kernels (default: all cores).
    pub threads: Option<usize>,
    /// Most requests stepped together; more wait their turn.
    pub max_batch: usize,
}

impl Default for StreamOptions {
    /// f32 weights, all cores, 64 requests per step.
    fn default() -> StreamOptions {
        StreamOptions {
            weights: WeightFormat::F32,
            threads: None,
            max_batch: 64,
        }
    }
}

/// Packs the checkpoint's model and starts a [`StreamEngine`] over it.
///
/// ```no_run
/// use recurrent::{start_streams, LanguageCheckpoint, StreamOptions, StreamRequest};
///
/// let checkpoint = LanguageCheckpoint::load("runs/novel")?;
/// let engine = start_streams(&checkpoint, StreamOptions::default())?;
/// let prompt = checkpoint.tokenizer.encode("It was")?;
/// let request = StreamRequest { prompt, max_tokens: 100, ..StreamRequest::default() };
/// engine.submit(request, Box::new(|event| { println!("{event:?}"); true })).unwrap();
/// # Ok::<(), recurrent::Error>(())
/// ```
pub fn start_streams(
    checkpoint: &LanguageCheckpoint,
    options: StreamOptions,
) -> Result<StreamEngine> {
    let threads = resolve_threads(options.threads)?;
    let model = with_threads(threads, || {
        StepModel::with_format(&checkpoint.model, options.weights)
    });
    let engine_options = EngineOptions {
        max_batch: options.max_batch,
        threads,
    };
    Ok(StreamEngine::spawn(
        model,
        checkpoint.tokenizer.clone(),
        engine_options,
    )?)
}
