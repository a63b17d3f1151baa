//! Measuring a language model on held-out text.

use std::path::Path;

use recurrent_model::infer::WeightFormat;
use recurrent_model::Workspace;
use recurrent_text::{Corpus, TokenizerKind};
use recurrent_train::batch::Streams;
use recurrent_train::trainer::evaluate as evaluate_tokens;
use recurrent_train::EvalReport;

use crate::error::{check, Result};
use crate::load::LanguageCheckpoint;
use crate::threads::{resolve_threads, with_threads};

/// How to evaluate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalOptions {
    /// Parallel streams; 1 reads the text as one stream from a zero state to
    /// the end (the standard way to report perplexity).
    pub batch: usize,
    /// Steps per block (speed only, not the result).
    pub seq_len: usize,
    /// Evaluate the weights rounded as generation with these weights would
    /// use them, to see what the rounding costs.
    pub weights: WeightFormat,
    /// Threads for the kernels (default: all cores).
    pub threads: Option<usize>,
}

impl Default for EvalOptions {
    fn default() -> EvalOptions {
        EvalOptions {
            batch: 1,
            seq_len: 100,
            weights: WeightFormat::F32,
            threads: None,
        }
    }
}

impl EvalOptions {
    /// Errors unless `batch` and `seq_len` are at least 1.
    pub fn check(&self) -> Result<()> {
        check(self.batch >= 1, "batch", self.batch, "at least 1")?;
        check(self.seq_len >= 1, "seq_len", self.seq_len, "at least 1")
    }
}

/// A model's loss on a text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Loss per token, accuracy, tokens.
    pub report: EvalReport,
    /// Bits per character of the original text, which makes models with
    /// different tokenizers comparable (not for word models, whose text is
    /// normalized).
    pub bits_per_char: Option<f64>,
}

/// Evaluates `checkpoint` on the text file or folder at `path`.
pub fn evaluate_file(
    checkpoint: &LanguageCheckpoint,
    path: &Path,
    options: &EvalOptions,
) -> Result<Evaluation> {
    evaluate_corpus(checkpoint, &Corpus::read(path)?, options)
}

/// Evaluates `checkpoint` on `text`.
pub fn evaluate_text(
    checkpoint: &LanguageCheckpoint,
    text: &str,
    options: &EvalOptions,
) -> Result<Evaluation> {
    evaluate_corpus(checkpoint, &Corpus::from_text("text", text), options)
}

/// Evaluates `checkpoint` on a corpus: every token but each stream's first is
/// predicted once, from a zero state (reset between documents when the model
/// was trained so).
pub fn evaluate_corpus(
    checkpoint: &LanguageCheckpoint,
    corpus: &Corpus,
    options: &EvalOptions,
) -> Result<Evaluation> {
    options.check()?;
    let threads = resolve_threads(options.threads)?;
    let tokenizer = &checkpoint.tokenizer;
    if tokenizer.kind().needs_utf8() {
        corpus.check_utf8()?;
    }
    let tokens = tokenizer.encode_corpus(corpus)?;
    let rounded;
    let model = if options.weights == WeightFormat::Bf16 {
        let mut m = checkpoint.model.clone();
        m.round_weights_to_bf16();
        rounded = m;
        &rounded
    } else {
        &checkpoint.model
    };
    let boundary = tokenizer
        .boundary()
        .filter(|_| checkpoint.resets_between_docs());
    let report = with_threads(threads, || {
        evaluate_tokens(
            model,
            &mut Workspace::default(),
            &tokens,
            options.batch,
            options.seq_len,
            boundary,
            "evaluation",
        )
    })?;
    let bits_per_char = (tokenizer.kind() != TokenizerKind::Word).then(|| {
        let streams = Streams::for_evaluation(tokens.len(), options.batch, "evaluation")
            .expect("evaluate accepted these tokens");
        let chars: usize = (0..streams.batch)
            .map(|b| {
                let start = b * streams.stream_len;
                tokenizer.chars_in(&tokens[start + 1..start + streams.stream_len])
            })
            .sum();
        report.loss * report.tokens as f64 / std::f64::consts::LN_2 / chars.max(1) as f64
    });
    Ok(Evaluation {
        report,
        bits_per_char,
    })
}
