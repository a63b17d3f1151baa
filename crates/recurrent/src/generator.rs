//! Generating text from a language model packed once.

use std::ops::ControlFlow;

use recurrent_generate::{generate_packed, stream_packed, GenerateOptions};
use recurrent_model::infer::{StepModel, WeightFormat};
use recurrent_model::LanguageModel;
use recurrent_text::Tokenizer;

use crate::error::Result;
use crate::load::LanguageCheckpoint;
use crate::threads::{resolve_threads, with_threads};

/// How a [`Generator`] holds and runs the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GeneratorOptions {
    /// Weight storage: bf16 halves the bytes read per token (faster for a
    /// few streams) and rounds the weights.
    pub weights: WeightFormat,
    /// Threads for the kernels (default: all cores).
    pub threads: Option<usize>,
}

/// A language model packed for generation once, and its tokenizer: every
/// [`Generator::generate`] call reuses the packed weights.
///
/// ```no_run
/// use recurrent::{Generator, GeneratorOptions, LanguageCheckpoint, GenerateOptions};
///
/// let checkpoint = LanguageCheckpoint::load("runs/novel")?;
/// let generator = Generator::new(&checkpoint, GeneratorOptions::default())?;
/// let options = GenerateOptions { prime: "It was".into(), length: 100, ..GenerateOptions::default() };
/// let texts = generator.generate(&options, |_, piece| print!("{piece}"))?;
/// # Ok::<(), recurrent::Error>(())
/// ```
pub struct Generator {
    model: StepModel,
    tokenizer: Tokenizer,
    threads: usize,
}

impl Generator {
    /// Packs the checkpoint's model.
    pub fn new(checkpoint: &LanguageCheckpoint, options: GeneratorOptions) -> Result<Generator> {
        Self::from_model(&checkpoint.model, checkpoint.tokenizer.clone(), options)
    }

    /// Packs `model`, which `tokenizer` reads and writes text for.
    pub fn from_model(
        model: &LanguageModel,
        tokenizer: Tokenizer,
        options: GeneratorOptions,
    ) -> Result<Generator> {
        let threads = resolve_threads(options.threads)?;
        let model = with_threads(threads, || StepModel::with_format(model, options.weights));
        Ok(Generator {
            model,
            tokenizer,
            threads,
        })
    }

    /// Generates `options.samples` texts continuing `options.prime`.
    /// `emit(i, piece)` receives each piece of sample `i` as soon as it is
    /// decoded; the whole texts (without the prime) are returned.
    pub fn generate(
        &self,
        options: &GenerateOptions,
        emit: impl FnMut(usize, &str),
    ) -> Result<Vec<String>> {
        let texts = with_threads(self.threads, || {
            generate_packed(&self.model, &self.tokenizer, options, emit)
        })?;
        Ok(texts)
    }

    /// Streams `options.samples` texts continuing `options.prime` without
    /// keeping them, so any length runs in the same memory: `emit(i, piece)`
    /// receives each piece of sample `i` and returns
    /// [`ControlFlow::Break`] to stop every sample (its reader went away).
    pub fn stream(
        &self,
        options: &GenerateOptions,
        emit: impl FnMut(usize, &str) -> ControlFlow<()>,
    ) -> Result<()> {
        with_threads(self.threads, || {
            stream_packed(&self.model, &self.tokenizer, options, emit)
        })?;
        Ok(())
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The packed model.
    pub fn model(&self) -> &StepModel {
        &self.model
    }
}
