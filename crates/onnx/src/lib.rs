//! ONNX export of recurrent's language models.
//!
//! [`export_language_model`] writes a model as two ONNX graphs (see [`lm`]):
//! a sequence graph for whole texts and a step graph for generation, each
//! built from ONNX's native `LSTM`, `GRU` and `RNN` operators at opset
//! [`OPSET`], with the vocabulary and configuration in the files' metadata.
//! [`proto`] writes the protobuf messages by hand, so nothing but this crate
//! is needed to produce a file that onnxruntime runs.
#![deny(missing_docs)]

pub mod lm;
pub mod proto;

pub use lm::{export as export_language_model, LanguageModelGraphs, OPSET};

/// Why a model cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// ONNX's recurrent operators have no normalization inside the cell.
    #[error("layer-normalized models cannot be exported: ONNX's LSTM and GRU operators have no layer normalization inside the cell")]
    LayerNorm,
}
