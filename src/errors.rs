//! Library errors in the command line's words.
//!
//! The library names fields and values (`temperature must be ...`); a user of
//! the command line knows flags (`--temperature must be ...`) and commands.
//! [`render`] prints an error chain with each error the command line words
//! differently replaced by its own text.

use std::error::Error as StdError;

use recurrent::checkpoint::error::ModelKind;
use recurrent::checkpoint::CheckpointError;
use recurrent::generate::beam::DecodeError;
use recurrent::generate::{GenerateError, SampleError};
use recurrent::text::{TextError, TokenizerOption};
use recurrent::train::batch::BatchError;
use recurrent::train::divergence::ROLLBACK_LR_FACTOR;
use recurrent::train::series::SeriesDataError;
use recurrent::train::TrainError;

/// The error chain as one line, in the command line's words; a cause that
/// its error's message already quotes is not repeated.
pub fn render(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let message = cause.to_string();
        if !text.contains(&message) {
            if !text.is_empty() {
                text += ": ";
            }
            text += &message;
        }
    }
    for cause in err.chain() {
        if let Some((library, cli)) = cli_words(cause) {
            text = text.replacen(&library, &cli, 1);
        }
    }
    text
}

/// The library's message of `e` and the command line's, when they differ.
fn cli_words(e: &(dyn StdError + 'static)) -> Option<(String, String)> {
    if let Some(e) = e.downcast_ref::<recurrent::Error>() {
        return match e {
            recurrent::Error::Text(e) => text(e),
            recurrent::Error::Line { source, .. } => text(source),
            recurrent::Error::Checkpoint(e) => checkpoint(e),
            recurrent::Error::Generate(GenerateError::Sample(e)) => sample(e),
            recurrent::Error::Decode(e) => decode(e),
            recurrent::Error::Batch(e) | recurrent::Error::Train(TrainError::Batch(e)) => batch(e),
            recurrent::Error::Train(e @ TrainError::Diverged { .. }) => {
                diverged(e).map(|cli| (e.to_string(), cli))
            }
            _ => None,
        };
    }
    match e.downcast_ref::<TrainError>() {
        Some(TrainError::Batch(e)) => return batch(e),
        Some(e @ TrainError::Diverged { .. }) => {
            return diverged(e).map(|cli| (e.to_string(), cli))
        }
        _ => {}
    }
    if let Some(e) = e.downcast_ref::<BatchError>() {
        return batch(e);
    }
    if let Some(e) = e.downcast_ref::<TextError>() {
        return text(e);
    }
    if let Some(e) = e.downcast_ref::<CheckpointError>() {
        return checkpoint(e);
    }
    if let Some(e) = e.downcast_ref::<SampleError>() {
        return sample(e);
    }
    if let Some(e) = e.downcast_ref::<DecodeError>() {
        return decode(e);
    }
    if let Some(e) = e.downcast_ref::<SeriesDataError>() {
        return series(e);
    }
    None
}

fn series(e: &SeriesDataError) -> Option<(String, String)> {
    let cli = match e {
        SeriesDataError::TooFewRows {
            part,
            rows,
            window,
            horizon,
            needed,
        } => {
            let flag = match *part {
                "validation" => "--valid-fraction",
                "test" => "--test-fraction",
                _ => "--valid-fraction and --test-fraction",
            };
            format!(
                "the {part} part has {rows} rows, too few for --window {window} and --horizon \
                 {horizon} (it needs at least {needed}); use more rows, a smaller --window or \
                 --horizon, or change {flag}"
            )
        }
        SeriesDataError::Fraction { field, value } => {
            format!(
                "--{} must be in [0, 0.5], got {value}",
                field.replace('_', "-")
            )
        }
        _ => return None,
    };
    Some((e.to_string(), cli))
}

fn text(e: &TextError) -> Option<(String, String)> {
    let cli = match e {
        TextError::InvalidUtf8 { name, offset } => format!(
            "{name} is not valid UTF-8 (first invalid byte at offset {offset}); use `--tokenizer byte` to train on raw bytes"
        ),
        TextError::OptionNotApplicable { option, kind } => {
            let flag = match option {
                TokenizerOption::VocabSize => "--vocab-size",
                TokenizerOption::MinCount => "--min-count",
                TokenizerOption::WordSegmentation => "--word-segmentation",
            };
            format!("{flag} does not apply to the {kind} tokenizer")
        }
        _ => return None,
    };
    Some((e.to_string(), cli))
}

fn checkpoint(e: &CheckpointError) -> Option<(String, String)> {
    let cli = match e {
        CheckpointError::WrongCell { .. } => format!("{e}; check --cell"),
        CheckpointError::WrongModelKind { path, found, .. } => format!(
            "{}: {}",
            path.display(),
            match found {
                ModelKind::Seq2Seq => "this is a sequence-to-sequence model; use `recurrent seq2seq translate` or `recurrent seq2seq eval` with it",
                ModelKind::LanguageModel => "this is a language model; use `recurrent sample` or `recurrent eval` with it",
            }
        ),
        _ => return None,
    };
    Some((e.to_string(), cli))
}

fn sample(e: &SampleError) -> Option<(String, String)> {
    let cli = match e {
        SampleError::Temperature { value } => {
            format!("--temperature must be a finite number >= 0 (0 means greedy), got {value}")
        }
        SampleError::TopK { value } => format!("--top-k must be at least 1, got {value}"),
        SampleError::TopP { value } => {
            format!("--top-p must be greater than 0 and at most 1, got {value}")
        }
        SampleError::EmptyStop { .. } => "--stop strings must not be empty".to_string(),
        _ => return None,
    };
    Some((e.to_string(), cli))
}

fn decode(e: &DecodeError) -> Option<(String, String)> {
    let cli = match e {
        DecodeError::Width { value } => format!("--beam must be between 1 and 1024, got {value}"),
        DecodeError::MaxLenA { value } => {
            format!("--max-len-a must be a finite number >= 0, got {value}")
        }
        DecodeError::Alpha { value } => {
            format!("--alpha (length normalization) must be a finite number >= 0, got {value}")
        }
        _ => return None,
    };
    Some((e.to_string(), cli))
}

fn batch(e: &BatchError) -> Option<(String, String)> {
    let cli = match e {
        BatchError::TooShort {
            what,
            tokens,
            batch,
            seq_len,
            needed,
        } => format!(
            "the {what} text has {tokens} tokens, too few for --batch {batch} × --seq-len {seq_len} \
             (needs at least {needed}); use a longer text or lower --batch / --seq-len"
        ),
        BatchError::ZeroSize { field } => format!("--{} must be at least 1", field.replace('_', "-")),
        _ => return None,
    };
    Some((e.to_string(), cli))
}

/// A diverged run in the command line's words: what happened, and which
/// flags to try.
pub fn diverged(e: &TrainError) -> Option<String> {
    let TrainError::Diverged {
        step,
        loss,
        reason,
        rollbacks,
    } = e
    else {
        return None;
    };
    let what = reason.describe(*loss);
    Some(if *rollbacks == 0 {
        format!(
            "training diverged at step {step}: {what}; try a lower --lr (e.g. a tenth), \
             gradient clipping (e.g. --clip 1), or --on-divergence rollback to go back to the \
             last good state with a lower learning rate and carry on"
        )
    } else {
        format!(
            "training diverged at step {step} even after {rollbacks} rollback(s) to the last \
             good state, each multiplying the learning rate by {ROLLBACK_LR_FACTOR}: {what}; \
             try a much lower --lr (e.g. a tenth) or gradient clipping (e.g. --clip 1)"
        )
    })
}
