//! Text generation for `recurrent`: turning a trained model's logits into text.
//!
//! * [`sampler`] picks each next token: greedy, or softmax at a temperature
//!   with optional top-k and top-p (nucleus) filtering. One random draw per
//!   token from a seeded [`recurrent_kernels::Rng`] makes runs reproducible.
//! * [`stop`] watches the decoded text stream for user stop strings, holding
//!   back anything that could be the start of one so it is never shown.
//! * [`beam`] decodes sequence-to-sequence models in batches: beam search,
//!   greedy and sampling, with scores and attention per hypothesis.
//! * [`streams`] steps many independent requests as one batch that they join
//!   and leave at any step (continuous batching), on the engine's own thread.
//! * [`generate`](mod@generate) runs a model one step at a time for `n` streams at once
//!   (one batch), samples, decodes and streams the text out.
//!
//! This crate knows nothing of training, files or front ends: it takes a
//! model and a tokenizer already loaded, and reports bad settings as typed
//! errors ([`SampleError`], [`DecodeError`]) naming the field and the value,
//! for each front end to word in its own terms.
//!
//! Beam search over a tiny untrained model:
//!
//! ```
//! use recurrent_generate::{beam_search, BeamOptions, MaxLen};
//! use recurrent_kernels::Rng;
//! use recurrent_model::seq2seq::{Seq2Seq, Seq2SeqConfig};
//!
//! // 8 source tokens, 6 target tokens (BOS = 4, EOS = 5), embedding 4, hidden 8.
//! let model = Seq2Seq::new(Seq2SeqConfig::new(8, 6, 4, 8), &mut Rng::new(1))?;
//! // Two sources, right-padded to width 3: [1, 2, 3] and [7, 6].
//! let (src, lens) = ([1, 2, 3, 7, 6, 0], [3, 2]);
//! let options = BeamOptions { width: 3, max_len: MaxLen::absolute(5), ..BeamOptions::default() };
//! let best = beam_search(&model, &src, &lens, 4, 5, &options)?;
//! assert_eq!(best.len(), 2);
//! assert!(best.iter().all(|h| h.tokens.len() <= 5 && h.log_prob <= 0.0));
//!
//! // A width of 0 is an error naming the field, not a panic.
//! let zero = BeamOptions { width: 0, ..options };
//! assert!(beam_search(&model, &src, &lens, 4, 5, &zero).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod beam;
// Being rewritten separately; its items are documented there.
#[allow(missing_docs)]
pub mod generate;
pub mod sampler;
pub mod stop;
pub mod streams;

pub use beam::{
    beam_search, beam_search_nbest, greedy_decode, sample_decode, BeamOptions, DecodeError,
    Hypothesis, LengthNorm, MaxLen, SampleOptions,
};
pub use generate::{generate, generate_packed, stream_packed, GenerateError, GenerateOptions};
pub use sampler::{log_softmax, SampleError, Sampler, SamplingConfig};
pub use stop::StopMatcher;
pub use streams::{
    Cancel, EngineOptions, EngineStats, FinishReason, Sink, StreamEngine, StreamError, StreamEvent,
    StreamRequest, TokenLogprob,
};
