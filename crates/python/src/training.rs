//! `recurrent._recurrent.train`: a language-model run through the facade's
//! [`recurrent::lm::Training`], watched by a Python progress callback, and
//! stopped cleanly by Ctrl-C.

use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use recurrent::lm::{Init, ResumeOptions, TextSource, TrainOptions, Training};
use recurrent::model::Regularization;
use recurrent::sizing::FitToCorpus;
use recurrent::train::trainer::{Regularizers, Trainer};
use recurrent::train::OnDivergence;
use recurrent::Precision;
use recurrent::{
    CellKind, EvalReport, ModelConfig, Observer, OptimizerConfig, OptimizerKind, RunFolder,
    StepReport, StopReason, StopRule, TokenizerKind, TokenizerOptions,
};

use crate::errors::{raise, to_py, Kind};

/// Watches a run for Python: calls the progress callback after every step
/// and validation, and lets Python's signal handlers run (Ctrl-C raises
/// KeyboardInterrupt there). The first exception stops the run cleanly: it
/// is saved and can be resumed; the exception is raised afterwards.
struct PythonObserver {
    progress: Option<Py<PyAny>>,
    error: Option<PyErr>,
    last_val_loss: Option<f64>,
}

impl PythonObserver {
    /// Runs signal handlers, then calls the callback with `event`'s fields.
    fn report(&mut self, fill: impl FnOnce(&Bound<'_, PyDict>) -> PyResult<()>) {
        if self.error.is_some() {
            return;
        }
        let result = Python::attach(|py| -> PyResult<()> {
            py.check_signals()?;
            if let Some(callback) = &self.progress {
                let event = PyDict::new(py);
                fill(&event)?;
                callback.call1(py, (event,))?;
            }
            Ok(())
        });
        self.error = result.err();
    }
}

impl Observer<Trainer> for PythonObserver {
    fn on_step(&mut self, _trainer: &Trainer, r: &StepReport) {
        self.report(|e| {
            e.set_item("kind", "step")?;
            e.set_item("step", r.step)?;
            e.set_item("epoch", r.epoch)?;
            e.set_item("loss", r.loss)?;
            e.set_item("lr", r.lr)?;
            e.set_item("grad_norm", r.grad_norm)?;
            e.set_item("tokens", r.tokens)?;
            e.set_item("progress", r.progress)?;
            e.set_item("elapsed", r.elapsed_secs)
        });
    }

    fn on_eval(&mut self, trainer: &Trainer, r: &EvalReport, improved: bool) {
        self.last_val_loss = Some(r.loss);
        let (step, epoch) = (trainer.state.progress.step, trainer.state.progress.epoch);
        self.report(|e| {
            e.set_item("kind", "eval")?;
            e.set_item("step", step)?;
            e.set_item("epoch", epoch)?;
            e.set_item("val_loss", r.loss)?;
            e.set_item("accuracy", r.accuracy)?;
            e.set_item("improved", improved)
        });
    }

    fn on_warning(&mut self, message: &str) {
        let message = message.to_string();
        self.report(|e| {
            e.set_item("kind", "warning")?;
            e.set_item("message", message)
        });
    }

    fn should_stop(&self) -> bool {
        self.error.is_some()
    }
}

/// Trains a language model and returns what the run became, as a dict.
#[pyfunction]
#[pyo3(signature = (
    *, input, text, out, cell, layers, hidden, embed, dense, dropout, tie, tokenizer,
    vocab_size, seq_len, batch, optimizer, lr, clip, schedule, steps, epochs, time,
    eval_every, patience, val, val_fraction, seed, threads, progress,
    min_count=None, last_hidden=0, layer_norm=false, forget_bias=None, momentum=None,
    weight_decay=None, regularization=Vec::new(), variable_bptt=false, nt_asgd=None,
    reset_between_docs=false, on_divergence=None, init_from=None, extend_vocab=false,
    resume=None, precision=None
))]
#[allow(clippy::too_many_arguments)]
pub fn train<'py>(
    py: Python<'py>,
    input: Option<PathBuf>,
    text: Option<String>,
    out: Option<PathBuf>,
    cell: &str,
    layers: Option<usize>,
    hidden: Option<usize>,
    embed: Option<usize>,
    dense: usize,
    dropout: Option<f32>,
    tie: bool,
    tokenizer: &str,
    vocab_size: Option<usize>,
    seq_len: usize,
    batch: Option<usize>,
    optimizer: &str,
    lr: Option<f32>,
    clip: f32,
    schedule: String,
    steps: Option<u64>,
    epochs: Option<u64>,
    time: Option<f64>,
    eval_every: Option<u64>,
    patience: Option<u32>,
    val: Option<PathBuf>,
    val_fraction: f64,
    seed: u64,
    threads: Option<usize>,
    progress: Option<Py<PyAny>>,
    min_count: Option<usize>,
    last_hidden: usize,
    layer_norm: bool,
    forget_bias: Option<f32>,
    momentum: Option<f32>,
    weight_decay: Option<f32>,
    regularization: Vec<(String, f32)>,
    variable_bptt: bool,
    nt_asgd: Option<usize>,
    reset_between_docs: bool,
    on_divergence: Option<&str>,
    init_from: Option<PathBuf>,
    extend_vocab: bool,
    resume: Option<PathBuf>,
    precision: Option<&str>,
) -> PyResult<Bound<'py, PyDict>> {
    let parse_error = |message: String| raise(Kind::InvalidArgument, message);
    let explicit_precision: Option<Precision> =
        precision.map(str::parse).transpose().map_err(parse_error)?;
    let cell: CellKind = cell.parse().map_err(parse_error)?;
    let tokenizer: TokenizerKind = tokenizer
        .parse()
        .map_err(|e: <TokenizerKind as std::str::FromStr>::Err| parse_error(e.to_string()))?;
    let optimizer: OptimizerKind = optimizer
        .parse()
        .map_err(|e: <OptimizerKind as std::str::FromStr>::Err| parse_error(e.to_string()))?;
    let on_divergence: Option<OnDivergence> = on_divergence
        .map(|p| p.parse())
        .transpose()
        .map_err(|e: <OnDivergence as std::str::FromStr>::Err| parse_error(e.to_string()))?;
    let stop = StopRule {
        epochs,
        steps,
        time_secs: time,
    };
    let mut observer = PythonObserver {
        progress,
        error: None,
        last_val_loss: None,
    };
    if let Some(folder) = resume {
        if text.is_some() {
            return Err(parse_error(
                "a resumed run reads its own text (or input, a path to the same text)".into(),
            ));
        }
        let options = ResumeOptions {
            input,
            stop: (epochs.is_some() || steps.is_some() || time.is_some()).then_some(stop),
            on_divergence,
            threads,
            precision: explicit_precision,
        };
        let result = py.detach(|| -> recurrent::Result<_> {
            let mut training = Training::resume(RunFolder::open(folder)?, &options)?;
            let outcome = training.run(&mut observer)?;
            Ok((
                training.folder().path().to_path_buf(),
                training.notes().to_vec(),
                outcome,
            ))
        });
        return finish(py, observer, result);
    }
    let mut model_regularization = Regularization::default();
    for (name, value) in regularization {
        let field = match name.as_str() {
            "dropout_input" => &mut model_regularization.dropout_input,
            "dropout_hidden" => &mut model_regularization.dropout_hidden,
            "dropout_output" => &mut model_regularization.dropout_output,
            "dropout_embed" => &mut model_regularization.dropout_embed,
            "weight_drop" => &mut model_regularization.weight_drop,
            "alpha" => &mut model_regularization.alpha,
            "beta" => &mut model_regularization.beta,
            other => return Err(parse_error(format!("unknown regularization {other:?}"))),
        };
        *field = value;
    }
    let mut optimizer = OptimizerConfig::new(optimizer);
    if let Some(m) = momentum {
        optimizer.momentum = m;
    }
    if let Some(wd) = weight_decay {
        optimizer.weight_decay = wd;
    }
    // As the command line: the sizes left unset are fitted to the corpus.
    let hidden = FitToCorpus::given_width(hidden, embed, tie, last_hidden, dense);
    let fit = match init_from {
        Some(_) => FitToCorpus::NONE,
        None => FitToCorpus::unset(layers, hidden, embed, batch, lr),
    };
    let (fixed, fixed_model) = (TrainOptions::default(), TrainOptions::fixed_model());
    let init = match init_from {
        Some(path) => Init::From {
            path,
            extend_vocab,
            dropout,
        },
        None => Init::Fresh {
            config: ModelConfig {
                cell,
                vocab_size: 0,
                embed: embed.unwrap_or(fixed_model.embed),
                hidden: hidden.unwrap_or(fixed_model.hidden),
                layers: layers.unwrap_or(fixed_model.layers),
                dense,
                dropout: dropout.unwrap_or(0.0),
                tie,
                layer_norm,
                last_hidden,
            },
            forget_bias,
        },
    };
    let (input_source, name) = match (input, text) {
        (Some(_), Some(_)) => {
            return Err(parse_error(
                "give the training text as input (a path) or as text, not both".into(),
            ))
        }
        (Some(path), None) => {
            let name = run_name(&path);
            (TextSource::Path(path), name)
        }
        (None, Some(text)) => (TextSource::text("text", text), "text".to_string()),
        (None, None) => (TextSource::Builtin, "default".to_string()),
    };
    let options = TrainOptions {
        input: input_source,
        val,
        val_fraction,
        tokenizer,
        tokenizer_options: TokenizerOptions {
            vocab_size,
            min_count: min_count.unwrap_or(TokenizerOptions::default().min_count),
            ..TokenizerOptions::default()
        },
        init,
        regularizers: Regularizers {
            model: model_regularization,
            variable_bptt,
        },
        seq_len,
        batch: batch.unwrap_or(fixed.batch),
        optimizer,
        lr: lr.unwrap_or(fixed.lr),
        clip,
        schedule,
        stop,
        eval_every,
        patience,
        nt_asgd,
        reset_between_docs,
        on_divergence: on_divergence.unwrap_or(OnDivergence::Stop),
        seed,
        threads,
        fit,
        precision: explicit_precision.unwrap_or_default(),
    };
    let result = py.detach(|| -> recurrent::Result<_> {
        let folder = match out {
            Some(path) => RunFolder::create(path)?,
            None => RunFolder::create_fresh(Path::new("runs"), &name)?,
        };
        let mut training = Training::start(&options, folder)?;
        let outcome = training.run(&mut observer)?;
        Ok((
            training.folder().path().to_path_buf(),
            training.notes().to_vec(),
            outcome,
        ))
    });
    finish(py, observer, result)
}

/// What a run ended as, or the exception that ended it.
fn finish<'py>(
    py: Python<'py>,
    mut observer: PythonObserver,
    result: recurrent::Result<(PathBuf, Vec<String>, recurrent::Outcome)>,
) -> PyResult<Bound<'py, PyDict>> {
    // A Python exception (Ctrl-C, a failing callback) stopped the run; it
    // was saved first, so it can be resumed.
    if let Some(error) = observer.error.take() {
        return Err(error);
    }
    let (path, notes, outcome) = result.map_err(to_py)?;
    let run = PyDict::new(py);
    let folder = RunFolder::at(&path);
    run.set_item("best", folder.best_dir())?;
    run.set_item("last", folder.last_dir())?;
    run.set_item("path", path)?;
    run.set_item("steps", outcome.steps)?;
    run.set_item("epochs", outcome.epochs)?;
    run.set_item("elapsed", outcome.elapsed_secs)?;
    run.set_item("best_val_loss", outcome.best_val_loss)?;
    run.set_item("val_loss", observer.last_val_loss)?;
    run.set_item("stop_reason", outcome.reason.describe())?;
    run.set_item("interrupted", outcome.reason == StopReason::Interrupted)?;
    run.set_item("notes", notes)?;
    Ok(run)
}

/// A run's default folder name: the input file's stem, as the CLI names it.
fn run_name(input: &Path) -> String {
    input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "default".into())
}
