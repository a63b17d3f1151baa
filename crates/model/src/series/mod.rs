//! Sequence regression: stacked recurrent layers (RNN, LSTM or GRU) over
//! real-valued inputs `x: [T, B, F]` (no embedding) and a linear head, trained
//! with a regression loss ([`recurrent_nn::regression`]).
//!
//! ```text
//! output, h_n = rnn(x)                 # nn.RNN / nn.LSTM / nn.GRU, time-major, zero initial state
//! y           = head(output[-1])       # sequence to vector: [B, O]
//! y           = head(output)           # sequence to sequence: [T, B, O]
//! ```
//!
//! Parameters are PyTorch's names and shapes (`rnn.weight_ih_l0`, …,
//! `head.weight [O, H]`, `head.bias [O]`) in one flat buffer, in
//! `state_dict` order, so weights move to and from PyTorch by name. Each
//! window is a sequence of its own: every forward starts from a zero state.

mod config;
mod model;

pub use config::{SeriesConfig, SeriesOutput};
pub use model::{SeriesBatch, SeriesModel, SeriesWorkspace};
