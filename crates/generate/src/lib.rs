//! Text generation for `recurrent`: turning a trained model's logits into text.
//!
//! * [`sampler`] picks each next token: greedy, or softmax at a temperature
//!   with optional top-k and top-p (nucleus) filtering. One random draw per
//!   token from a seeded [`recurrent_kernels::Rng`] makes runs reproducible.
//! * [`stop`] watches the decoded text stream for user stop strings, holding
//!   back anything that could be the start of one so it is never shown.
//!
//! * [`beam`] decodes sequence-to-sequence models in batches: beam search,
//!   greedy and sampling, with scores and attention per hypothesis.
//! * [`generate`] runs a model one step at a time for `n` streams at once
//!   (one batch), samples, decodes and streams the text out.

pub mod beam;
pub mod generate;
pub mod sampler;
pub mod stop;

pub use beam::{
    beam_search, beam_search_nbest, greedy_decode, sample_decode, BeamOptions, DecodeError,
    Hypothesis, LengthNorm, MaxLen, SampleOptions,
};
pub use generate::{generate, generate_packed, GenerateError, GenerateOptions};
pub use sampler::{log_softmax, SampleError, Sampler, SamplingConfig};
pub use stop::StopMatcher;
