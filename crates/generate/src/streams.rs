//! Continuous batching: many independent generation requests stepped as one
//! batch by one packed model, on the engine's own thread.
//!
//! A recurrent model's whole per-request state is its hidden vectors, so the
//! engine keeps every active request's rows stacked in one [`State`]
//! (`[L, B, H]`). Each iteration it admits waiting requests (their rows start
//! at zero), feeds every active request its next token in one
//! [`StepModel::step`] (prompt tokens one per step, so prompts batch too),
//! samples each row with the request's own [`Sampler`] and [`Rng`], sends the
//! decoded text to the request's sink, and removes the rows of requests that
//! finished. Nobody waits for a batch to fill.
//!
//! A request seeded like [`generate_packed`](crate::generate_packed) (its
//! generator the `i`-th fork of `Rng::new(seed)`, for sample `i`) generates
//! the same text as that sample would there, alone or batched with others.
//!
//! ```
//! use std::sync::mpsc;
//! use recurrent_generate::streams::{EngineOptions, StreamEngine, StreamEvent, StreamRequest};
//! use recurrent_kernels::Rng;
//! use recurrent_model::infer::StepModel;
//! use recurrent_model::{CellKind, LanguageModel, ModelConfig};
//! use recurrent_text::{Corpus, Tokenizer, TokenizerKind};
//!
//! let tokenizer = Tokenizer::build(TokenizerKind::Char, &Corpus::from_text("t", "abc\n"))?;
//! let config = ModelConfig::new(CellKind::Lstm, tokenizer.vocab().len(), 8, 16, 1);
//! let model = LanguageModel::new(config, &mut Rng::new(1), None)?;
//! let engine = StreamEngine::spawn(StepModel::new(&model), tokenizer.clone(), EngineOptions::default())?;
//!
//! let (tx, rx) = mpsc::channel();
//! let request = StreamRequest {
//!     prompt: tokenizer.encode("ab")?,
//!     max_tokens: 5,
//!     ..StreamRequest::default()
//! };
//! engine.submit(request, Box::new(move |event| tx.send(event).is_ok()))?;
//! let mut text = String::new();
//! for event in rx {
//!     match event {
//!         StreamEvent::Token { text: piece, .. } => text.push_str(&piece),
//!         StreamEvent::Finished { tail, completion_tokens, .. } => {
//!             text.push_str(&tail);
//!             assert_eq!(completion_tokens, 5);
//!             break;
//!         }
//!         StreamEvent::Prompt(_) => {}
//!     }
//! }
//! assert_eq!(text.chars().count(), 5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use recurrent_kernels::Rng;
use recurrent_model::infer::{StepModel, StepWorkspace};
use recurrent_model::{ModelConfig, State};
use recurrent_text::{StreamDecoder, Tokenizer};
use thiserror::Error;

use crate::generate::GenerateError;
use crate::sampler::{log_softmax, SampleError, Sampler, SamplingConfig};
use crate::stop::StopMatcher;

/// Why a request was not accepted.
#[derive(Debug, Error)]
pub enum StreamError {
    /// A sampling setting or stop string is invalid.
    #[error(transparent)]
    Sample(#[from] SampleError),
    /// A prompt token id is outside the model's vocabulary.
    #[error("prompt token {id} is outside the vocabulary of {vocab} tokens")]
    TokenOutOfRange {
        /// The token id.
        id: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// The engine has shut down.
    #[error("the generation engine has shut down")]
    Closed,
}

/// One request: a prompt to continue, and how.
#[derive(Clone, Debug)]
pub struct StreamRequest {
    /// Token ids to continue. Empty: start from the document-boundary token
    /// (else a newline, else token 0), as [`generate`](crate::generate()) does.
    pub prompt: Vec<u32>,
    /// Tokens to generate at most (0: only score the prompt).
    pub max_tokens: usize,
    /// How each token is drawn.
    pub sampling: SamplingConfig,
    /// Generation ends at the first of these strings (never sent).
    pub stops: Vec<String>,
    /// The request's own random generator (one draw per sampled token).
    pub rng: Rng,
    /// Report each generated token's log-probability with this many most
    /// likely alternatives (`None`: no log-probabilities).
    pub logprobs: Option<usize>,
    /// Report the prompt tokens' log-probabilities (all but the first).
    pub echo: bool,
}

impl Default for StreamRequest {
    /// 16 tokens at temperature 1 from an empty prompt, seed 0, no logprobs.
    fn default() -> StreamRequest {
        StreamRequest {
            prompt: Vec::new(),
            max_tokens: 16,
            sampling: SamplingConfig::default(),
            stops: Vec::new(),
            rng: Rng::new(0),
            logprobs: None,
            echo: false,
        }
    }
}

/// A token's log-probability (natural log, temperature 1) and the most likely
/// alternatives at its position.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    /// The token id.
    pub id: u32,
    /// Its log-probability given the tokens before it.
    pub logprob: f64,
    /// The most likely tokens at this position, most likely first.
    pub top: Vec<(u32, f64)>,
}

/// Why a stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// `max_tokens` were generated.
    Length,
    /// A stop string was generated.
    Stop,
    /// The request was cancelled, its sink closed, or the engine shut down.
    Cancelled,
}

/// What the engine sends a request, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// A prompt token's log-probability (with `echo`; from the second token on).
    Prompt(TokenLogprob),
    /// A generated token: the text it releases (empty while a partial
    /// character or a possible stop string is held back), and its
    /// log-probability when asked for.
    Token {
        /// Text safe to show now.
        text: String,
        /// The token's log-probability, with `logprobs`.
        logprob: Option<TokenLogprob>,
    },
    /// The last event: the held-back text that turned out to be safe, and counts.
    Finished {
        /// Text released at the end (not a stop string).
        tail: String,
        /// Why the stream ended.
        reason: FinishReason,
        /// Tokens in the prompt.
        prompt_tokens: usize,
        /// Tokens generated.
        completion_tokens: usize,
    },
}

/// Where a request's events go; returns false once nobody listens, which
/// ends the request.
pub type Sink = Box<dyn FnMut(StreamEvent) -> bool + Send>;

/// Cancels a submitted request at the engine's next step.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Ends the request: it finishes with [`FinishReason::Cancelled`].
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// How the engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineOptions {
    /// Most requests stepped together; more wait in the queue.
    pub max_batch: usize,
    /// Threads for the kernels.
    pub threads: usize,
}

impl Default for EngineOptions {
    /// 64 streams per step on one thread.
    fn default() -> EngineOptions {
        EngineOptions {
            max_batch: 64,
            threads: 1,
        }
    }
}

/// Live counters of the engine, for metrics.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Requests waiting for a row in the batch.
    pub waiting: AtomicUsize,
    /// Requests being stepped.
    pub active: AtomicUsize,
    /// Batched steps done.
    pub steps: AtomicU64,
    /// Tokens generated (prompt tokens not counted).
    pub tokens: AtomicU64,
}

/// A request on its way to the engine thread.
struct Job {
    request: StreamRequest,
    sink: Sink,
    cancel: Cancel,
}

/// The handle to a running engine: submit requests, read its counters, shut it down.
pub struct StreamEngine {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    shutdown: Cancel,
    stats: Arc<EngineStats>,
    config: ModelConfig,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl StreamEngine {
    /// Starts the engine thread over `model`, whose text `tokenizer` reads
    /// and writes.
    pub fn spawn(
        model: StepModel,
        tokenizer: Tokenizer,
        options: EngineOptions,
    ) -> Result<StreamEngine, GenerateError> {
        let (v, vt) = (model.config().vocab_size, tokenizer.vocab().len());
        if v != vt {
            return Err(GenerateError::VocabMismatch {
                model: v,
                tokenizer: vt,
            });
        }
        let (tx, rx) = mpsc::channel();
        let shutdown = Cancel::default();
        let stats = Arc::new(EngineStats::default());
        let config = model.config().clone();
        let max_batch = options.max_batch.max(1);
        let (stop, counters) = (shutdown.clone(), stats.clone());
        let threads = options.threads.max(1);
        let thread = std::thread::Builder::new()
            .name("recurrent-engine".into())
            .spawn(move || {
                recurrent_kernels::threads::with_threads(threads, || {
                    // The loop borrows the tokenizer (the stream decoders
                    // do), so this thread owns it.
                    EngineLoop {
                        model,
                        tokenizer: &tokenizer,
                        jobs: rx,
                        shutdown: stop,
                        stats: counters,
                        max_batch,
                    }
                    .run()
                })
            })
            .map_err(GenerateError::Thread)?;
        Ok(StreamEngine {
            jobs: Mutex::new(Some(tx)),
            shutdown,
            stats,
            config,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `request`; its events go to `sink` from the engine thread.
    /// Settings are checked here, so a bad request fails before it queues.
    pub fn submit(&self, request: StreamRequest, sink: Sink) -> Result<Cancel, StreamError> {
        Sampler::new(request.sampling.clone())?;
        StopMatcher::new(request.stops.clone())?;
        let vocab = self.config.vocab_size;
        if let Some(&id) = request.prompt.iter().find(|&&id| id as usize >= vocab) {
            return Err(StreamError::TokenOutOfRange { id, vocab });
        }
        let cancel = Cancel::default();
        let job = Job {
            request,
            sink,
            cancel: cancel.clone(),
        };
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let tx = jobs.as_ref().ok_or(StreamError::Closed)?;
        self.stats.waiting.fetch_add(1, Ordering::Relaxed);
        if tx.send(job).is_err() {
            // The engine thread is gone (it panicked): nothing will run this.
            self.stats.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(StreamError::Closed);
        }
        Ok(cancel)
    }

    /// The engine's live counters.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Cancels every request (each gets its `Finished` event), refuses new
    /// ones, and waits for the engine thread to end.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
        drop(self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take());
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            // A panic on the engine thread has already been reported there.
            let _ = thread.join();
        }
    }
}

impl Drop for StreamEngine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The engine thread's loop and what it owns.
struct EngineLoop<'t> {
    model: StepModel,
    tokenizer: &'t Tokenizer,
    jobs: mpsc::Receiver<Job>,
    shutdown: Cancel,
    stats: Arc<EngineStats>,
    max_batch: usize,
}

impl<'t> EngineLoop<'t> {
    /// Steps until the handle is gone (or shut down) and no request is left.
    fn run(self) {
        let config = self.model.config().clone();
        let v = config.vocab_size;
        let start = self
            .tokenizer
            .boundary()
            .or_else(|| self.tokenizer.newline())
            .unwrap_or(0);
        let mut ws = StepWorkspace::default();
        let mut state = State::zeros(&config, 0);
        let mut active: Vec<Active<'t>> = Vec::new();
        let mut waiting: VecDeque<Job> = VecDeque::new();
        let mut tokens: Vec<u32> = Vec::new();
        let mut open = true;
        loop {
            if open && active.is_empty() && waiting.is_empty() {
                match self.jobs.recv() {
                    Ok(job) => waiting.push_back(job),
                    Err(_) => open = false,
                }
            }
            while let Ok(job) = self.jobs.try_recv() {
                waiting.push_back(job);
            }
            if self.shutdown.is_cancelled() {
                for job in waiting.drain(..) {
                    self.stats.waiting.fetch_sub(1, Ordering::Relaxed);
                    Active::new(job, self.tokenizer, start).finish(FinishReason::Cancelled);
                }
                for a in active.drain(..) {
                    a.finish(FinishReason::Cancelled);
                }
                self.stats.active.store(0, Ordering::Relaxed);
                return;
            }
            if active.is_empty() && waiting.is_empty() {
                if open {
                    continue;
                }
                return;
            }

            let admit = waiting.len().min(self.max_batch - active.len());
            if admit > 0 {
                let keep: Vec<usize> = (0..active.len()).collect();
                state = restack(&config, &state, &keep, admit);
                for job in waiting.drain(..admit) {
                    active.push(Active::new(job, self.tokenizer, start));
                }
                self.stats.waiting.fetch_sub(admit, Ordering::Relaxed);
            }
            self.stats.active.store(active.len(), Ordering::Relaxed);

            tokens.clear();
            tokens.extend(active.iter().map(|a| a.next_input()));
            let logits = match self.model.step(&mut ws, &tokens, &mut state) {
                Ok(logits) => logits,
                Err(_) => {
                    // The engine makes every token and state row itself, so a
                    // shape error here is a bug: end these requests, not the engine.
                    for a in active.drain(..) {
                        a.finish(FinishReason::Cancelled);
                    }
                    state = restack(&config, &state, &[], 0);
                    self.stats.active.store(0, Ordering::Relaxed);
                    continue;
                }
            };
            self.stats.steps.fetch_add(1, Ordering::Relaxed);
            let mut generated = 0;
            let mut done = Vec::new();
            for (i, a) in active.iter_mut().enumerate() {
                let outcome = a.advance(&logits[i * v..(i + 1) * v]);
                generated += u64::from(outcome.sampled);
                if let Some(reason) = outcome.finished {
                    done.push((i, reason));
                }
            }
            self.stats.tokens.fetch_add(generated, Ordering::Relaxed);
            if !done.is_empty() {
                let finished: Vec<usize> = done.iter().map(|&(i, _)| i).collect();
                let keep: Vec<usize> = (0..active.len())
                    .filter(|i| !finished.contains(i))
                    .collect();
                state = restack(&config, &state, &keep, 0);
                // Remove from the back so the indices stay valid; count
                // before telling the clients, so they see the new count.
                let ended: Vec<(Active, FinishReason)> = done
                    .iter()
                    .rev()
                    .map(|&(i, reason)| (active.remove(i), reason))
                    .collect();
                self.stats.active.store(active.len(), Ordering::Relaxed);
                for (a, reason) in ended {
                    a.finish(reason);
                }
            }
        }
    }
}

/// `state`'s rows `keep` (in that order), then `extra` zero rows.
fn restack(config: &ModelConfig, state: &State, keep: &[usize], extra: usize) -> State {
    let mut out = State::zeros(config, keep.len() + extra);
    for k in 0..config.layers {
        let h = config.layer_hidden(k);
        let from = config.state_range(k, state.batch).start;
        let to = config.state_range(k, out.batch).start;
        for (j, &i) in keep.iter().enumerate() {
            let (src, dst) = (
                from + i * h..from + (i + 1) * h,
                to + j * h..to + (j + 1) * h,
            );
            out.h[dst.clone()].copy_from_slice(&state.h[src.clone()]);
            if !out.c.is_empty() {
                out.c[dst].copy_from_slice(&state.c[src]);
            }
        }
    }
    out
}

/// What one row did in a step.
struct Advance {
    /// A token was sampled.
    sampled: bool,
    /// The request ended.
    finished: Option<FinishReason>,
}

/// A request in the batch.
struct Active<'t> {
    /// The tokens to feed before sampling: the prompt, or the start token.
    inputs: Vec<u32>,
    /// How many of `inputs` were fed.
    fed: usize,
    /// Whether `inputs` is the prompt (so its log-probabilities mean something).
    has_prompt: bool,
    /// The last sampled token, fed next once the inputs are done.
    last: u32,
    sampler: Sampler,
    rng: Rng,
    decoder: StreamDecoder<'t>,
    stop: StopMatcher,
    generated: usize,
    max_tokens: usize,
    logprobs: Option<usize>,
    echo: bool,
    sink: Sink,
    cancel: Cancel,
}

impl<'t> Active<'t> {
    /// A request checked by [`StreamEngine::submit`], about to be stepped.
    fn new(job: Job, tokenizer: &'t Tokenizer, start: u32) -> Active<'t> {
        let r = job.request;
        let has_prompt = !r.prompt.is_empty();
        let mut decoder = tokenizer.decoder();
        // Knowing the prompt lets a word decoder put a space before the first word.
        decoder.prime(&r.prompt);
        Active {
            inputs: if has_prompt { r.prompt } else { vec![start] },
            fed: 0,
            has_prompt,
            last: start,
            sampler: Sampler::new(r.sampling).expect("checked on submit"),
            rng: r.rng,
            decoder,
            stop: StopMatcher::new(r.stops).expect("checked on submit"),
            generated: 0,
            max_tokens: r.max_tokens,
            logprobs: r.logprobs,
            echo: r.echo,
            sink: job.sink,
            cancel: job.cancel,
        }
    }

    /// The token to feed this step.
    fn next_input(&self) -> u32 {
        self.inputs.get(self.fed).copied().unwrap_or(self.last)
    }

    /// Takes the logits `[V]` that followed this step's input.
    fn advance(&mut self, logits: &[f32]) -> Advance {
        let mut out = Advance {
            sampled: false,
            finished: None,
        };
        if self.cancel.is_cancelled() {
            out.finished = Some(FinishReason::Cancelled);
            return out;
        }
        if self.fed < self.inputs.len() {
            self.fed += 1;
            if let Some(&next) = self.inputs.get(self.fed) {
                if self.echo && self.has_prompt {
                    let lp = token_logprob(logits, next, self.logprobs.unwrap_or(0));
                    if !(self.sink)(StreamEvent::Prompt(lp)) {
                        out.finished = Some(FinishReason::Cancelled);
                    }
                }
                return out;
            }
        }
        if self.generated >= self.max_tokens {
            out.finished = Some(FinishReason::Length);
            return out;
        }
        let tok = self.sampler.sample(logits, &mut self.rng);
        out.sampled = true;
        self.last = tok;
        self.generated += 1;
        let logprob = self.logprobs.map(|n| token_logprob(logits, tok, n));
        let piece = self.decoder.push(tok);
        let (text, stopped) = self.stop.push(&piece);
        if !(self.sink)(StreamEvent::Token { text, logprob }) {
            out.finished = Some(FinishReason::Cancelled);
        } else if stopped {
            out.finished = Some(FinishReason::Stop);
        } else if self.generated == self.max_tokens {
            out.finished = Some(FinishReason::Length);
        }
        out
    }

    /// Sends the last event: the text held back, unless the stream stopped
    /// on a stop string or was cancelled.
    fn finish(mut self, reason: FinishReason) {
        let mut tail = String::new();
        if reason == FinishReason::Length {
            let rest = self.decoder.finish();
            let (out, stopped) = self.stop.push(&rest);
            tail = out;
            if !stopped {
                tail.push_str(&self.stop.finish());
            }
        }
        let reason = if reason == FinishReason::Length && self.stop.is_stopped() {
            FinishReason::Stop
        } else {
            reason
        };
        (self.sink)(StreamEvent::Finished {
            tail,
            reason,
            prompt_tokens: if self.has_prompt {
                self.inputs.len()
            } else {
                0
            },
            completion_tokens: self.generated,
        });
    }
}

/// `id`'s log-probability under `logits` and the `top` most likely tokens.
fn token_logprob(logits: &[f32], id: u32, top: usize) -> TokenLogprob {
    let lp = log_softmax(logits);
    let mut best: Vec<(u32, f64)> = Vec::new();
    if top > 0 {
        let mut order: Vec<u32> = (0..lp.len() as u32).collect();
        let top = top.min(order.len());
        order.select_nth_unstable_by(top - 1, |&a, &b| {
            lp[b as usize].total_cmp(&lp[a as usize]).then(a.cmp(&b))
        });
        order.truncate(top);
        order.sort_by(|&a, &b| lp[b as usize].total_cmp(&lp[a as usize]).then(a.cmp(&b)));
        best = order.into_iter().map(|t| (t, lp[t as usize])).collect();
    }
    TokenLogprob {
        id,
        logprob: lp[id as usize],
        top: best,
    }
}

#[cfg(test)]
mod tests;
