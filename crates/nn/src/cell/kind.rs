//! [`CellKind`]: which cell a layer runs, and its names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which recurrent cell a layer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CellKind {
    /// `h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`
    #[serde(rename = "rnn-tanh")]
    RnnTanh,
    /// `h_t = relu(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`
    #[serde(rename = "rnn-relu")]
    RnnRelu,
    /// Long short-term memory, gate rows `i f g o`.
    #[serde(rename = "lstm")]
    Lstm,
    /// Gated recurrent unit, gate rows `r z n`.
    #[serde(rename = "gru")]
    Gru,
}

impl CellKind {
    /// Gate blocks per layer: rows of `W_ih` are `gates() * H`.
    pub fn gates(self) -> usize {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }

    /// Whether the cell carries a cell state `c` besides `h`.
    pub fn has_cell_state(self) -> bool {
        self == CellKind::Lstm
    }

    /// The name used on the command line and in config.json.
    pub fn name(self) -> &'static str {
        match self {
            CellKind::RnnTanh => "rnn-tanh",
            CellKind::RnnRelu => "rnn-relu",
            CellKind::Lstm => "lstm",
            CellKind::Gru => "gru",
        }
    }
}

impl fmt::Display for CellKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CellKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "lstm" => Ok(CellKind::Lstm),
            "gru" => Ok(CellKind::Gru),
            "rnn-tanh" | "rnn_tanh" | "rnn" => Ok(CellKind::RnnTanh),
            "rnn-relu" | "rnn_relu" => Ok(CellKind::RnnRelu),
            _ => Err(format!(
                "unknown cell '{s}' (expected lstm, gru, rnn-tanh or rnn-relu)"
            )),
        }
    }
}
