//! [`State`]: the recurrent state carried between blocks.

use crate::check;
use crate::config::{ModelConfig, ModelError};

/// Recurrent state carried between blocks: `h` (and `c` for LSTM), each
/// `[L, B, H]` (layer `k`'s `[B, H_k]` rows at `ModelConfig::state_range`).
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    /// Streams `B`.
    pub batch: usize,
    /// `[L, B, H]` hidden states, layer by layer.
    pub h: Vec<f32>,
    /// `[L, B, H]` LSTM cell states (empty for other cells).
    pub c: Vec<f32>,
}

impl State {
    /// The zero state for `batch` streams.
    pub fn zeros(config: &ModelConfig, batch: usize) -> State {
        let n = config.state_len(batch);
        let c = if config.cell.has_cell_state() {
            vec![0.0; n]
        } else {
            Vec::new()
        };
        State {
            batch,
            h: vec![0.0; n],
            c,
        }
    }

    /// A state of `batch` streams from its buffers, `h` and `c` each
    /// `[L, B, H]` (`c` empty for cells without a cell state).
    ///
    /// # Errors
    /// [`ModelError::Shape`] when a buffer does not hold `batch` streams of
    /// `config`'s layers.
    pub fn new(
        config: &ModelConfig,
        batch: usize,
        h: Vec<f32>,
        c: Vec<f32>,
    ) -> Result<State, ModelError> {
        let state = State { batch, h, c };
        state.check(config)?;
        Ok(state)
    }

    /// Checks that the buffers hold `self.batch` streams of `config`'s layers.
    ///
    /// # Errors
    /// [`ModelError::Shape`] naming the buffer and both sizes.
    pub fn check(&self, config: &ModelConfig) -> Result<(), ModelError> {
        check::state(config, self, self.batch)
    }

    /// Zeroes the state of one stream (a new document starts there).
    ///
    /// # Errors
    /// [`ModelError::Index`] when `stream` is not below the batch, and
    /// [`ModelError::Shape`] when the state does not fit `config`.
    pub fn reset_stream(&mut self, config: &ModelConfig, stream: usize) -> Result<(), ModelError> {
        if stream >= self.batch {
            return Err(ModelError::Index {
                what: "stream",
                got: stream,
                len: self.batch,
            });
        }
        self.check(config)?;
        for k in 0..config.layers {
            let h = config.layer_hidden(k);
            let start = config.state_range(k, self.batch).start + stream * h;
            let r = start..start + h;
            self.h[r.clone()].fill(0.0);
            if !self.c.is_empty() {
                self.c[r].fill(0.0);
            }
        }
        Ok(())
    }
}
