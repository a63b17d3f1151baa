//! [`State`]: the recurrent state carried between blocks.

use crate::config::ModelConfig;

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

    /// Zeroes the state of one stream (a new document starts there).
    pub fn reset_stream(&mut self, config: &ModelConfig, stream: usize) {
        for k in 0..config.layers {
            let h = config.layer_hidden(k);
            let start = config.state_range(k, self.batch).start + stream * h;
            let r = start..start + h;
            self.h[r.clone()].fill(0.0);
            if !self.c.is_empty() {
                self.c[r].fill(0.0);
            }
        }
    }
}
