//! The library's errors as Python exceptions: [`recurrent::Error`] becomes
//! `recurrent.RecurrentError` (a `RuntimeError`), or
//! `recurrent.InvalidArgumentError` (also a `ValueError`) when an argument
//! or the text given was at fault; the message is the library's own.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use recurrent::generate::GenerateError;
use recurrent::model::ModelError;
use recurrent::text::TextError;
use recurrent::Error;

/// The Python module that defines the exception classes.
const ERRORS_MODULE: &str = "recurrent._errors";

/// Which exception class a failure is raised as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `RecurrentError`: the work itself failed (a file, a checkpoint, training).
    Failure,
    /// `InvalidArgumentError`: an argument, or the text given, is not acceptable.
    InvalidArgument,
}

/// An exception of `kind` with `message`.
pub fn raise(kind: Kind, message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| {
        let name = match kind {
            Kind::Failure => "RecurrentError",
            Kind::InvalidArgument => "InvalidArgumentError",
        };
        // The classes live in Python so that one can derive from both
        // RecurrentError and ValueError; without them (the native module
        // imported on its own), the builtin bases do.
        match py
            .import(ERRORS_MODULE)
            .and_then(|m| m.getattr(name))
            .and_then(|class| class.call1((message.clone(),)))
        {
            Ok(exception) => PyErr::from_value(exception),
            Err(_) => match kind {
                Kind::Failure => PyRuntimeError::new_err(message),
                Kind::InvalidArgument => PyValueError::new_err(message),
            },
        }
    })
}

/// An invalid-argument exception: `field must be expected, got value`, as
/// the library words its own range checks.
pub fn invalid(field: &str, value: impl std::fmt::Display, expected: &str) -> PyErr {
    raise(
        Kind::InvalidArgument,
        format!("{field} must be {expected}, got {value}"),
    )
}

/// The exception for a library error, its message followed by the causes
/// the message does not already say.
pub fn to_py(error: Error) -> PyErr {
    let kind = kind_of(&error);
    raise(kind, message_with_causes(&error))
}

/// `error: cause: cause ...`, each cause once.
fn message_with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        cause = e.source();
    }
    message
}

/// The exception for a generation error.
pub fn generate_to_py(error: GenerateError) -> PyErr {
    to_py(Error::Generate(error))
}

/// The exception for a tokenizer error.
pub fn text_to_py(error: TextError) -> PyErr {
    to_py(Error::Text(error))
}

/// Whether the caller's arguments or text caused `error`.
fn kind_of(error: &Error) -> Kind {
    let invalid = match error {
        Error::InvalidOption { .. }
        | Error::Conflict(_)
        | Error::Schedule(_)
        | Error::UnknownChars { .. } => true,
        Error::Text(e) => is_text_input_error(e),
        Error::Generate(e) => matches!(
            e,
            GenerateError::Sample(_) | GenerateError::Prime(_) | GenerateError::NoSamples
        ),
        Error::Decode(_) => true,
        // The architecture asked for, or a text too short for the blocks.
        Error::Model(e) => matches!(e, ModelError::Config(_) | ModelError::Regularization(_)),
        Error::Batch(_) => true,
        _ => false,
    };
    if invalid {
        Kind::InvalidArgument
    } else {
        Kind::Failure
    }
}

/// A text that cannot be encoded (characters outside a character
/// vocabulary, bytes that are not UTF-8) is the caller's input at fault.
fn is_text_input_error(error: &TextError) -> bool {
    matches!(
        error,
        TextError::UnknownChars { .. } | TextError::InvalidUtf8 { .. }
    )
}
