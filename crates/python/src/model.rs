//! `recurrent._recurrent.NativeModel`: a language-model checkpoint, packed
//! once for generation, and what can be asked of it (generation, scores,
//! hidden states, weights, the tokenizer).

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use recurrent::kernels::threads::with_threads;
use recurrent::model::{State, Workspace};
use recurrent::{
    GenerateOptions, Generator, GeneratorOptions, LanguageCheckpoint, SamplingConfig, WeightFormat,
};

use crate::errors::{generate_to_py, invalid, raise, text_to_py, to_py, Kind};
use crate::stream::{Engine, TextStream};

/// The most samples one call generates: beyond this `n` would only exhaust
/// memory (each sample carries its own state and logits), as the CLI says.
const MAX_SAMPLES: usize = 100_000;

/// Steps per traced block in `score` and `states`: bounds the forward's
/// buffers whatever the text's length.
const TRACE_BLOCK: usize = 256;

/// What a model holds: the checkpoint (for scoring, tracing, weights) and
/// its generator (the weights packed once), shared with streams' threads.
pub struct Loaded {
    /// The checkpoint as read.
    pub checkpoint: LanguageCheckpoint,
    /// Its packed model and tokenizer.
    pub generator: Generator,
    /// Threads for the kernels of every call.
    pub threads: usize,
    /// How the generator holds the weights (streams hold them alike).
    pub weights: WeightFormat,
    /// The engine that steps the model's streams, once one was asked for.
    pub engine: Engine,
}

/// A language model loaded from a checkpoint or run folder.
#[pyclass(frozen, module = "recurrent._recurrent")]
pub struct NativeModel {
    inner: Arc<Loaded>,
}

#[pymethods]
impl NativeModel {
    /// Loads a checkpoint (or a run folder's best) and packs it for generation.
    #[staticmethod]
    #[pyo3(signature = (path, threads=None, weights="f32"))]
    fn load(
        py: Python<'_>,
        path: PathBuf,
        threads: Option<usize>,
        weights: &str,
    ) -> PyResult<Self> {
        let weights = match weights {
            "f32" => WeightFormat::F32,
            "bf16" => WeightFormat::Bf16,
            other => {
                return Err(invalid(
                    "weights",
                    format!("{other:?}"),
                    "\"f32\" or \"bf16\"",
                ))
            }
        };
        let threads = resolve_threads(threads)?;
        let loaded = py.detach(move || -> recurrent::Result<Loaded> {
            let checkpoint = LanguageCheckpoint::load(&path)?;
            let generator = Generator::new(
                &checkpoint,
                GeneratorOptions {
                    weights,
                    threads: Some(threads),
                },
            )?;
            Ok(Loaded {
                checkpoint,
                generator,
                threads,
                weights,
                engine: Engine::default(),
            })
        });
        Ok(NativeModel {
            inner: Arc::new(loaded.map_err(to_py)?),
        })
    }

    /// The checkpoint folder the model was read from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.checkpoint.path.clone()
    }

    /// The architecture and tokenizer as JSON (the Python layer parses it).
    fn config_json(&self) -> PyResult<String> {
        let checkpoint = &self.inner.checkpoint;
        let mut config = serde_json::to_value(&checkpoint.model.config)
            .map_err(|e| raise(Kind::Failure, e.to_string()))?;
        config["tokenizer"] = checkpoint.tokenizer.kind().as_str().into();
        config["parameters"] = checkpoint.model.params.len().into();
        Ok(config.to_string())
    }

    /// The text's token ids.
    fn encode(&self, py: Python<'_>, text: &str) -> PyResult<Vec<u32>> {
        let tokenizer = &self.inner.checkpoint.tokenizer;
        py.detach(|| tokenizer.encode(text)).map_err(text_to_py)
    }

    /// The text of token ids.
    fn decode(&self, py: Python<'_>, ids: Vec<i64>) -> PyResult<String> {
        let vocab = self.vocab_size();
        let ids = checked_ids(&ids, vocab)?;
        let tokenizer = &self.inner.checkpoint.tokenizer;
        Ok(py.detach(|| tokenizer.decode(&ids)))
    }

    /// Tokens in the vocabulary.
    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.checkpoint.tokenizer.vocab().len()
    }

    /// The vocabulary's tokens, in id order.
    fn vocab(&self) -> Vec<String> {
        let vocab = self.inner.checkpoint.tokenizer.vocab();
        (0..vocab.len() as u32)
            .map(|id| vocab.token(id).unwrap_or_default().to_string())
            .collect()
    }

    /// Generates `n` continuations of `prompt` (without the prompt).
    #[pyo3(signature = (prompt, max_tokens, temperature, top_k, top_p, stop, seed, n))]
    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
        py: Python<'_>,
        prompt: String,
        max_tokens: usize,
        temperature: f32,
        top_k: Option<usize>,
        top_p: Option<f32>,
        stop: Vec<String>,
        seed: u64,
        n: usize,
    ) -> PyResult<Vec<String>> {
        let options =
            generate_options(prompt, max_tokens, temperature, top_k, top_p, stop, seed, n)?;
        let generator = &self.inner.generator;
        py.detach(|| generator.generate(&options, |_, _| {}))
            .map_err(to_py)
    }

    /// Generates one continuation of `prompt` on the model's streams engine
    /// (its own thread, started by the first stream; streams from several
    /// threads step as one batch), yielding its text piece by piece.
    #[pyo3(signature = (prompt, max_tokens, temperature, top_k, top_p, stop, seed))]
    #[allow(clippy::too_many_arguments)]
    fn stream(
        &self,
        py: Python<'_>,
        prompt: String,
        max_tokens: usize,
        temperature: f32,
        top_k: Option<usize>,
        top_p: Option<f32>,
        stop: Vec<String>,
        seed: u64,
    ) -> PyResult<TextStream> {
        let options =
            generate_options(prompt, max_tokens, temperature, top_k, top_p, stop, seed, 1)?;
        TextStream::start(py, self.inner.clone(), options)
    }

    /// The text's token ids and, for every token after the first, its
    /// log-probability (natural log) given the tokens before it, read as
    /// one stream from a zero state.
    fn score<'py>(
        &self,
        py: Python<'py>,
        text: &str,
    ) -> PyResult<(Vec<u32>, Bound<'py, PyArray1<f64>>)> {
        let loaded = &*self.inner;
        let ids = encode_nonempty(loaded, py, text)?;
        let logprobs = py.detach(|| {
            let mut logprobs = Vec::with_capacity(ids.len().saturating_sub(1));
            trace(loaded, &ids, |block| {
                let v = block.logits.len() / block.steps;
                for (s, row) in block.logits.chunks_exact(v).enumerate() {
                    if let Some(&next) = ids.get(block.start + s + 1) {
                        logprobs.push(log_softmax_at(row, next as usize));
                    }
                }
            });
            logprobs
        });
        Ok((ids, PyArray1::from_vec(py, logprobs)))
    }

    /// Every layer's hidden states after every token of `text`, read as one
    /// stream from a zero state: `h` (and `c` for an LSTM) as `[T, layers, H]`
    /// float32 arrays, with the token ids.
    fn states<'py>(&self, py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyDict>> {
        let loaded = &*self.inner;
        let config = &loaded.checkpoint.model.config;
        if !config.uniform_widths() {
            return Err(raise(
                Kind::InvalidArgument,
                format!(
                    "states() stacks the layers as [T, layers, H], but this model's layers are {} wide",
                    config.widths_label()
                ),
            ));
        }
        let ids = encode_nonempty(loaded, py, text)?;
        let (layers, hidden) = (config.layers, config.hidden);
        let has_c = config.cell.has_cell_state();
        let (h, c) = py.detach(|| {
            let size = ids.len() * layers * hidden;
            let mut h = vec![0f32; size];
            let mut c = if has_c { vec![0f32; size] } else { Vec::new() };
            trace(loaded, &ids, |block| {
                for (k, layer) in block.layers.iter().enumerate() {
                    for s in 0..block.steps {
                        let at = ((block.start + s) * layers + k) * hidden;
                        let row = s * hidden..(s + 1) * hidden;
                        h[at..at + hidden].copy_from_slice(&layer.h[row.clone()]);
                        if has_c {
                            c[at..at + hidden].copy_from_slice(&layer.c[row]);
                        }
                    }
                }
            });
            (h, c)
        });
        let shape = [ids.len(), layers, hidden];
        let out = PyDict::new(py);
        out.set_item("h", PyArray1::from_vec(py, h).reshape(shape)?)?;
        if has_c {
            out.set_item("c", PyArray1::from_vec(py, c).reshape(shape)?)?;
        }
        out.set_item("tokens", ids)?;
        Ok(out)
    }

    /// The weights as float32 arrays under the names of PyTorch's
    /// `word_language_model` `RNNModel`, as `export_pytorch` writes them.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let model = &self.inner.checkpoint.model;
        check_pytorch_expressible(&model.config)?;
        let tensors = py.detach(|| model.to_tensors());
        let out = PyDict::new(py);
        for (name, shape, data) in tensors {
            out.set_item(name, PyArray1::from_vec(py, data).reshape(shape)?)?;
        }
        Ok(out)
    }
}

/// `requested`, checked as the library checks it, or all cores.
pub fn resolve_threads(requested: Option<usize>) -> PyResult<usize> {
    let n = requested
        .unwrap_or_else(|| recurrent::kernels::threads::available().min(recurrent::MAX_THREADS));
    if !(1..=recurrent::MAX_THREADS).contains(&n) {
        return Err(invalid("threads", n, "between 1 and 256"));
    }
    Ok(n)
}

/// The generation options for one call, `n` checked.
#[allow(clippy::too_many_arguments)]
fn generate_options(
    prompt: String,
    max_tokens: usize,
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
    stop: Vec<String>,
    seed: u64,
    n: usize,
) -> PyResult<GenerateOptions> {
    if !(1..=MAX_SAMPLES).contains(&n) {
        return Err(invalid("n", n, "between 1 and 100000"));
    }
    let sampling = SamplingConfig {
        temperature,
        top_k,
        top_p,
    };
    // Checked here so a stream fails at once, not on its first piece.
    sampling.validate().map_err(|e| generate_to_py(e.into()))?;
    Ok(GenerateOptions {
        prime: prompt,
        length: max_tokens,
        sampling,
        stops: stop,
        seed,
        samples: n,
        ..GenerateOptions::default()
    })
}

/// The text's ids; an empty text is an invalid argument.
fn encode_nonempty(loaded: &Loaded, py: Python<'_>, text: &str) -> PyResult<Vec<u32>> {
    let tokenizer = &loaded.checkpoint.tokenizer;
    let ids = py.detach(|| tokenizer.encode(text)).map_err(text_to_py)?;
    if ids.is_empty() {
        return Err(invalid("text", "an empty text", "at least one token"));
    }
    Ok(ids)
}

/// Runs the model's traced forward over `ids` as one stream from a zero
/// state, on the model's thread count.
fn trace(
    loaded: &Loaded,
    ids: &[u32],
    visit: impl FnMut(&recurrent::model::lm::trace::TraceBlock<'_>),
) {
    let model = &loaded.checkpoint.model;
    with_threads(loaded.threads, || {
        let mut state = State::zeros(&model.config, 1);
        model.trace(
            &mut Workspace::default(),
            ids,
            &mut state,
            TRACE_BLOCK,
            visit,
        );
    });
}

/// `log softmax(row)[target]`, in f64.
fn log_softmax_at(row: &[f32], target: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    row[target] as f64 - max - sum.ln()
}

/// Ids as the tokenizer takes them: each in `0..vocab`.
fn checked_ids(ids: &[i64], vocab: usize) -> PyResult<Vec<u32>> {
    ids.iter()
        .map(|&id| {
            if (0..vocab as i64).contains(&id) {
                Ok(id as u32)
            } else {
                Err(invalid(
                    "token id",
                    id,
                    &format!(
                        "between 0 and {} (the vocabulary has {vocab} tokens)",
                        vocab.max(1) - 1
                    ),
                ))
            }
        })
        .collect()
}

/// PyTorch's `RNNModel` has one recurrent module of one width, an embedding,
/// no dense layer and no layer norm; `export_pytorch` refuses other models
/// with these reasons.
fn check_pytorch_expressible(config: &recurrent::ModelConfig) -> PyResult<()> {
    let reason = if config.layer_norm {
        Some("word_language_model's RNNModel has no layer-normalized cells; this model cannot be expressed as one".to_string())
    } else if !config.uniform_widths() {
        Some(format!(
            "word_language_model's RNNModel uses one recurrent module whose layers share one width; this model's layers are {} wide",
            config.widths_label()
        ))
    } else if config.dense > 0 || config.embed == 0 {
        Some("word_language_model's RNNModel has an embedding and no dense layer; this model cannot be expressed as one".to_string())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(raise(Kind::InvalidArgument, reason)),
        None => Ok(()),
    }
}
