//! Argument checks of the public entry points: each runs once per call,
//! outside the hot loops, and names the argument and both sizes.

use crate::config::{ModelConfig, ModelError};
use crate::lm::State;

/// `Err(Shape)` unless `got == expected`.
pub(crate) fn len(what: &'static str, expected: usize, got: usize) -> Result<(), ModelError> {
    if got == expected {
        Ok(())
    } else {
        Err(ModelError::Shape {
            what,
            expected,
            got,
        })
    }
}

/// `Err(Empty)` if `n` is 0.
pub(crate) fn nonzero(what: &'static str, n: usize) -> Result<(), ModelError> {
    if n == 0 {
        Err(ModelError::Empty { what })
    } else {
        Ok(())
    }
}

/// `Err(Token)` at the first id not below `vocab`.
pub(crate) fn tokens(what: &'static str, ids: &[u32], vocab: usize) -> Result<(), ModelError> {
    match ids.iter().position(|&t| t as usize >= vocab) {
        None => Ok(()),
        Some(index) => Err(ModelError::Token {
            what,
            index,
            token: ids[index],
            vocab,
        }),
    }
}

/// Checks that `state` holds `batch` streams of this configuration's layers.
pub(crate) fn state(config: &ModelConfig, state: &State, batch: usize) -> Result<(), ModelError> {
    len("state.batch", batch, state.batch)?;
    let n = config.state_len(batch);
    len("state.h", n, state.h.len())?;
    let c = if config.cell.has_cell_state() { n } else { 0 };
    len("state.c", c, state.c.len())
}
