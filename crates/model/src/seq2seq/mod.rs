//! Sequence-to-sequence: an encoder-decoder of recurrent layers with attention
//! (Luong et al. 2015 / Bahdanau et al. 2015), trained on padded batches of
//! variable-length pairs, with the building blocks of greedy, beam and sampled
//! decoding.
//!
//! - **Encoder**: source embedding → `layers` recurrent layers, optionally
//!   bidirectional (each direction `hidden/2` wide, concatenated, as OpenNMT's
//!   `brnn`; the backward direction reads each sequence reversed within its own
//!   length). Sequences are packed by length (see `encoder.rs`), so padding is
//!   never computed.
//! - **Bridge** ([`Bridge`]): the decoder's layer `k` starts from the encoder's
//!   layer `k` final state, copied, through `tanh(linear)`, or not at all.
//! - **Decoder**: target embedding (+ the previous attentional vector with
//!   input feeding) → `layers` recurrent layers stepped one token at a time →
//!   attention over the encoder outputs ([`AttentionKind`]) →
//!   `h~ = tanh(W_c [ctx; h])` → generator (optionally tied to the target embedding).
//! - **Masks**: padded source positions get zero attention weight and zero
//!   gradient; padded target positions are left out of the loss (the mean is
//!   over real target tokens), and since padding is always on the right nothing
//!   before it can depend on it. A padded batch gives each pair's loss and
//!   gradient as if it ran alone (`tests/seq2seq_batching.rs`).
//! - **Conventions**: batches are batch-major; a target row is
//!   `BOS y_1 … y_n EOS` (see [`Seq2SeqBatch`]).
//!
//! Parameter names and order: see `layout.rs` ([`layout()`]).

mod config;
mod decoder;
mod encoder;
mod layout;
mod loss;
mod model;
pub mod reversal;

pub use config::{Bridge, Seq2SeqConfig, Seq2SeqError};
pub use decoder::DecoderState;
pub use layout::layout;
pub use model::{
    argmax, DecodeStep, EncoderOutput, FeedMode, PackedDecoder, Seq2Seq, Seq2SeqBatch,
    Seq2SeqStats, Seq2SeqWorkspace, TrainOptions,
};
pub use recurrent_nn::attention::AttentionKind;
