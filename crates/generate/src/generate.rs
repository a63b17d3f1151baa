//! The generation loop: prime the state with the prime text, then step the
//! model one token at a time for `n` independent samples computed as one batch.

use std::ops::ControlFlow;

use recurrent_kernels::Rng;
use recurrent_model::infer::{StepModel, StepWorkspace, WeightFormat};
use recurrent_model::{LanguageModel, ModelError, State};
use recurrent_text::{TextError, Tokenizer};
use thiserror::Error;

use crate::sampler::{SampleError, Sampler, SamplingConfig};
use crate::stop::StopMatcher;

/// Why generation could not start.
#[derive(Debug, Error)]
pub enum GenerateError {
    #[error(transparent)]
    Sample(#[from] SampleError),
    #[error("the prime text cannot be encoded with this model's vocabulary")]
    Prime(#[source] TextError),
    #[error("the number of samples must be at least 1")]
    NoSamples,
    /// The packed model and the tokenizer disagree on the vocabulary size.
    #[error("the model has {model} tokens in its vocabulary but the tokenizer has {tokenizer}")]
    VocabMismatch {
        /// The model's vocabulary size.
        model: usize,
        /// The tokenizer's.
        tokenizer: usize,
    },
    /// The model rejected a step's input (a bug: the loop feeds it checked tokens).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The streams' engine thread could not be started (out of threads or memory).
    #[error("cannot start the generation thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// What steps the model one token at a time: the model's weights packed
/// once (see `recurrent_model::infer`), and the buffers of its steps.
struct Stepper<'m>(&'m StepModel, StepWorkspace);

impl Stepper<'_> {
    /// Feeds `tokens: [B]`, advances `state`, returns the logits `[B, V]`.
    fn step(&mut self, tokens: &[u32], state: &mut State) -> Result<&[f32], ModelError> {
        self.0.step(&mut self.1, tokens, state)
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Text the samples continue from (fed through the model first).
    pub prime: String,
    /// Tokens to generate after the prime.
    pub length: usize,
    pub sampling: SamplingConfig,
    /// Generation of a sample ends at the first of these strings (not emitted).
    pub stops: Vec<String>,
    pub seed: u64,
    /// Independent samples, computed together as one batch.
    pub samples: usize,
    /// How the weights are stored while generating: bf16 halves the bytes
    /// streamed per token (faster at small batches) and rounds the weights.
    pub weights: WeightFormat,
}

impl Default for GenerateOptions {
    /// 500 tokens of one sample at temperature 1, from no prime, seed 0.
    fn default() -> GenerateOptions {
        GenerateOptions {
            prime: String::new(),
            length: 500,
            sampling: SamplingConfig {
                temperature: 1.0,
                top_k: None,
                top_p: None,
            },
            stops: Vec::new(),
            seed: 0,
            samples: 1,
            weights: WeightFormat::F32,
        }
    }
}

/// Generates `options.samples` texts. `emit(i, text)` receives each piece of
/// sample `i` as soon as it is decoded (the prime is not emitted); the full
/// texts, without the prime, are returned.
///
/// With no prime the state starts from zero and the first input is the
/// document-boundary token if the vocabulary has one, else a newline, else token 0.
pub fn generate(
    model: &LanguageModel,
    tokenizer: &Tokenizer,
    options: &GenerateOptions,
    emit: impl FnMut(usize, &str),
) -> Result<Vec<String>, GenerateError> {
    let packed = StepModel::with_format(model, options.weights);
    generate_packed(&packed, tokenizer, options, emit)
}

/// [`generate`] with a model packed once beforehand, for callers that
/// generate many times from one model (`options.weights` is then the packed
/// model's, whatever the options say).
pub fn generate_packed(
    model: &StepModel,
    tokenizer: &Tokenizer,
    options: &GenerateOptions,
    mut emit: impl FnMut(usize, &str),
) -> Result<Vec<String>, GenerateError> {
    let mut texts = vec![String::new(); options.samples];
    stream_packed(model, tokenizer, options, |i, piece| {
        emit(i, piece);
        texts[i].push_str(piece);
        ControlFlow::Continue(())
    })?;
    Ok(texts)
}

/// [`generate_packed`] without keeping the texts, so memory stays the same
/// whatever `options.length`: `emit(i, piece)` receives each piece of sample
/// `i` and says whether to go on; [`ControlFlow::Break`] ends every sample
/// at once (the reader of the stream went away).
pub fn stream_packed(
    model: &StepModel,
    tokenizer: &Tokenizer,
    options: &GenerateOptions,
    mut emit: impl FnMut(usize, &str) -> ControlFlow<()>,
) -> Result<(), GenerateError> {
    let (v, vt) = (model.config().vocab_size, tokenizer.vocab().len());
    if v != vt {
        return Err(GenerateError::VocabMismatch {
            model: v,
            tokenizer: vt,
        });
    }
    let n = options.samples;
    if n == 0 {
        return Err(GenerateError::NoSamples);
    }
    let mut sampler = Sampler::new(options.sampling.clone())?;
    let prime = tokenizer
        .encode(&options.prime)
        .map_err(GenerateError::Prime)?;
    let mut stops: Vec<StopMatcher> = (0..n)
        .map(|_| StopMatcher::new(options.stops.clone()))
        .collect::<Result<_, _>>()?;
    let start = tokenizer
        .boundary()
        .or_else(|| tokenizer.newline())
        .unwrap_or(0);
    let (last, context) = match prime.split_last() {
        Some((&last, context)) => (last, context),
        None => (start, &[][..]),
    };

    let mut stepper = Stepper(model, StepWorkspace::default());
    let mut state = State::zeros(model.config(), n);
    let mut input = vec![0u32; n];
    for &tok in context {
        input.fill(tok);
        stepper.step(&input, &mut state)?;
    }
    input.fill(last);

    let mut seed_rng = Rng::new(options.seed);
    let mut rngs: Vec<Rng> = (0..n).map(|_| seed_rng.fork()).collect();
    let mut decoders: Vec<_> = (0..n)
        .map(|_| {
            // Knowing the prime lets a word decoder put a space before the first word.
            let mut d = tokenizer.decoder();
            d.prime(&prime);
            d
        })
        .collect();
    let mut done = vec![false; n];
    for _ in 0..options.length {
        let logits = stepper.step(&input, &mut state)?;
        for i in 0..n {
            if done[i] {
                continue;
            }
            let tok = sampler.sample(&logits[i * v..(i + 1) * v], &mut rngs[i]);
            input[i] = tok;
            let piece = decoders[i].push(tok);
            let (out, stopped) = stops[i].push(&piece);
            if !out.is_empty() && emit(i, &out).is_break() {
                return Ok(());
            }
            done[i] = stopped;
        }
        if done.iter().all(|&d| d) {
            break;
        }
    }
    for i in 0..n {
        if !done[i] {
            let tail = decoders[i].finish();
            let (mut out, stopped) = stops[i].push(&tail);
            if !stopped {
                out.push_str(&stops[i].finish());
            }
            if !out.is_empty() && emit(i, &out).is_break() {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use recurrent_model::{CellKind, ModelConfig};
    use recurrent_text::{Corpus, TokenizerKind};

    fn setup() -> (LanguageModel, Tokenizer) {
        let tok =
            Tokenizer::build(TokenizerKind::Char, &Corpus::from_text("t", "abc de\n")).unwrap();
        let config = ModelConfig {
            cell: CellKind::Gru,
            vocab_size: tok.vocab().len(),
            embed: 4,
            hidden: 6,
            layers: 1,
            dense: 0,
            dropout: 0.0,
            tie: false,
            layer_norm: false,
            last_hidden: 0,
        };
        (
            LanguageModel::new(config, &mut Rng::new(2), None).unwrap(),
            tok,
        )
    }

    fn options(samples: usize) -> GenerateOptions {
        GenerateOptions {
            prime: "ab".into(),
            length: 40,
            sampling: SamplingConfig {
                temperature: 1.0,
                top_k: None,
                top_p: None,
            },
            stops: vec![],
            seed: 7,
            samples,
            weights: Default::default(),
        }
    }

    #[test]
    fn same_seed_same_text_and_streamed_pieces_add_up() {
        let (m, tok) = setup();
        let mut streamed = String::new();
        let a = generate(&m, &tok, &options(1), |_, s| streamed.push_str(s)).unwrap();
        let b = generate(&m, &tok, &options(1), |_, _| {}).unwrap();
        assert_eq!(a, b);
        assert_eq!(streamed, a[0]);
        assert_eq!(a[0].chars().count(), 40);
    }

    #[test]
    fn a_stream_stops_when_its_reader_says_so() {
        // A closed pipe must end a sample of any length at once, holding nothing.
        let (m, tok) = setup();
        let packed = StepModel::with_format(&m, WeightFormat::F32);
        let mut o = options(2);
        o.length = usize::MAX;
        let mut pieces = 0;
        stream_packed(&packed, &tok, &o, |_, _| {
            pieces += 1;
            if pieces == 7 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert_eq!(pieces, 7);
    }

    #[test]
    fn a_batch_of_samples_matches_the_samples_run_alone() {
        // Sample i of a batch uses its own generator, forked in order from the seed,
        // so the first sample of a batch equals a batch of one.
        let (m, tok) = setup();
        let batch = generate(&m, &tok, &options(3), |_, _| {}).unwrap();
        let alone = generate(&m, &tok, &options(1), |_, _| {}).unwrap();
        assert_eq!(batch.len(), 3);
        assert_eq!(batch[0], alone[0]);
        assert!(batch[1] != batch[0] || batch[2] != batch[0]);
    }

    #[test]
    fn stop_sequences_end_a_sample_and_are_not_emitted() {
        let (m, tok) = setup();
        let full = generate(&m, &tok, &options(1), |_, _| {})
            .unwrap()
            .remove(0);
        let stop: String = full.chars().skip(5).take(2).collect();
        let mut o = options(1);
        o.stops = vec![stop.clone()];
        let cut = generate(&m, &tok, &o, |_, _| {}).unwrap().remove(0);
        let at = full.find(&stop).unwrap();
        assert_eq!(cut, full[..at]);
    }

    /// The generation loop as it was before the prepared stepping path: the
    /// training forward, one token at a time (no stop strings).
    fn generate_with_training_forward(
        m: &LanguageModel,
        tok: &Tokenizer,
        o: &GenerateOptions,
    ) -> Vec<String> {
        let n = o.samples;
        let mut sampler = Sampler::new(o.sampling.clone()).unwrap();
        let prime = tok.encode(&o.prime).unwrap();
        let (&last, context) = prime.split_last().unwrap();
        let mut ws = recurrent_model::Workspace::default();
        let mut state = State::zeros(&m.config, n);
        let mut input = vec![0u32; n];
        for &t in context {
            input.fill(t);
            m.step(&mut ws, &input, &mut state).unwrap();
        }
        input.fill(last);
        let mut seed_rng = Rng::new(o.seed);
        let mut rngs: Vec<Rng> = (0..n).map(|_| seed_rng.fork()).collect();
        let mut decoders: Vec<_> = (0..n).map(|_| tok.decoder()).collect();
        decoders.iter_mut().for_each(|d| d.prime(&prime));
        let mut texts = vec![String::new(); n];
        let v = m.config.vocab_size;
        for _ in 0..o.length {
            let logits = m.step(&mut ws, &input, &mut state).unwrap();
            for i in 0..n {
                input[i] = sampler.sample(&logits[i * v..(i + 1) * v], &mut rngs[i]);
                texts[i].push_str(&decoders[i].push(input[i]));
            }
        }
        for (t, d) in texts.iter_mut().zip(&mut decoders) {
            t.push_str(&d.finish());
        }
        texts
    }

    #[test]
    fn the_text_is_the_one_the_training_forward_gives() {
        // The prepared path rounds its sums differently (about 1e-7
        // relative), which could in principle move a draw across a token
        // boundary; for this model and these seeds it does not, so the text
        // is the same as before, sampled and greedy, alone and in a batch.
        let (m, tok) = setup();
        for samples in [1, 3] {
            for temperature in [1.0, 0.0] {
                let mut o = options(samples);
                o.sampling.temperature = temperature;
                o.length = 200;
                let fast = generate(&m, &tok, &o, |_, _| {}).unwrap();
                assert_eq!(fast, generate_with_training_forward(&m, &tok, &o));
            }
        }
    }

    #[test]
    fn a_prime_with_unknown_characters_is_a_clear_error() {
        let (m, tok) = setup();
        let mut o = options(1);
        o.prime = "abz".into();
        let err = generate(&m, &tok, &o, |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("prime"), "{err}");
        let source = std::error::Error::source(&err)
            .expect("the text error is kept")
            .to_string();
        assert!(source.contains("'z'"), "{source}");
    }
}
