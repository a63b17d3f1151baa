//! `recurrent._recurrent.TextStream`: one sample generated on a thread of
//! its own, read piece by piece from Python as it is decoded.
//!
//! The thread runs the model's [`recurrent::Generator`] with the same options
//! as `generate`, so the pieces join to exactly the text `generate` returns
//! for the same seed.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use recurrent::GenerateOptions;

use crate::errors::{raise, to_py, Kind};
use crate::model::Loaded;

/// How long `next` waits for a piece before it lets Python handle signals
/// (Ctrl-C) and waits again.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// What the generating thread sends.
enum Message {
    /// A piece of text.
    Piece(String),
    /// The end: generation finished, or failed.
    Done(recurrent::Result<()>),
}

/// An iterator over the pieces of text of one sample, as they are generated.
#[pyclass(frozen, module = "recurrent._recurrent")]
pub struct TextStream {
    /// `None` once the stream has ended.
    receiver: Mutex<Option<Receiver<Message>>>,
}

impl TextStream {
    /// Starts generating on a new thread.
    pub fn start(loaded: Arc<Loaded>, options: GenerateOptions) -> PyResult<TextStream> {
        let (sender, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("recurrent-stream".into())
            .spawn(move || {
                let result = loaded.generator.generate(&options, |_, piece| {
                    if !piece.is_empty() {
                        // A reader that went away no longer listens; the
                        // sample still runs to its end (the generator has no
                        // way to stop early).
                        let _ = sender.send(Message::Piece(piece.to_string()));
                    }
                });
                let _ = sender.send(Message::Done(result.map(|_| ())));
            })
            .map_err(|e| {
                raise(
                    Kind::Failure,
                    format!("cannot start the generation thread: {e}"),
                )
            })?;
        Ok(TextStream {
            receiver: Mutex::new(Some(receiver)),
        })
    }
}

#[pymethods]
impl TextStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next piece of text; `StopIteration` at the end.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        loop {
            // The lock is taken without the GIL: a thread holding it may
            // wait for the GIL when it returns.
            let message = py.detach(|| {
                let mut guard = self.receiver.lock().unwrap_or_else(|e| e.into_inner());
                let receiver = guard.as_mut()?;
                let message = receiver.recv_timeout(SIGNAL_POLL);
                if matches!(
                    message,
                    Ok(Message::Done(_)) | Err(RecvTimeoutError::Disconnected)
                ) {
                    *guard = None;
                }
                Some(message)
            });
            match message {
                None | Some(Err(RecvTimeoutError::Disconnected)) => return Ok(None),
                Some(Ok(Message::Piece(piece))) => return Ok(Some(piece)),
                Some(Ok(Message::Done(result))) => {
                    result.map_err(to_py)?;
                    return Ok(None);
                }
                Some(Err(RecvTimeoutError::Timeout)) => py.check_signals()?,
            }
        }
    }
}
