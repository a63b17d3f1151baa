//! `recurrent train`: read text, build or load a model, train it, checkpoint it.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use clap::Args;
use recurrent::lm::{Init, ResumeOptions, TextSource, TrainOptions, Training};
use recurrent::model::Regularization;
use recurrent::sizing::FitToCorpus;
use recurrent::text::{TokenizerOptions, WordSegmentation};
use recurrent::train::engine::SaveEvery;
use recurrent::train::trainer::{PeriodicAveraging, Regularizers};
use recurrent::train::OnDivergence;
use recurrent::Precision;
use recurrent::{
    CellKind, GenerateOptions, Generator, GeneratorOptions, ModelConfig, OptimizerConfig,
    OptimizerKind, RunFolder, SamplingConfig, StopReason, StopRule, Tee, TokenizerKind,
};

use crate::duration::parse_duration;
use crate::progress::{EvalStyle, ProgressObserver};

/// Arguments of `recurrent train`.
#[derive(Args, Debug)]
// `--lr -1` must reach our range checks (and `--forget-bias -1` is legitimate).
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// Training text: a file, or a folder of files (documents). Default: the built-in corpus.
    #[arg(long)]
    input: Option<PathBuf>,
    /// A prepared data folder (`recurrent prepare`) instead of --input: its token
    /// files are memory-mapped, so memory stays flat however large the corpus.
    #[arg(long, value_name = "DATA_DIR", conflicts_with_all = [
        "input", "val", "val_fraction", "tokenizer", "vocab_size", "min_count", "word_segmentation",
    ])]
    data: Option<PathBuf>,
    /// Separate validation text (otherwise the last --val-fraction of the input).
    #[arg(long)]
    val: Option<PathBuf>,
    /// Fraction of the input held out for validation, taken from the end.
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    /// Token level: char (Unicode scalar values), byte, word or bpe (byte-level BPE).
    #[arg(long, default_value = "char")]
    tokenizer: TokenizerKind,
    /// Word and BPE: the largest vocabulary, special tokens included
    /// [default: every word; BPE 1024].
    #[arg(long, conflicts_with_all = ["resume", "init_from"])]
    vocab_size: Option<usize>,
    /// Word: keep words seen at least this often; BPE: merge pairs seen at least this often.
    #[arg(long, conflicts_with_all = ["resume", "init_from"])]
    min_count: Option<usize>,
    /// Word: split on whitespace (as the PTB files) or on Unicode word boundaries.
    #[arg(long, conflicts_with_all = ["resume", "init_from"])]
    word_segmentation: Option<WordSegmentation>,
    /// Recurrent cell: lstm, gru, rnn-tanh or rnn-relu.
    #[arg(long, default_value = "lstm")]
    cell: CellKind,
    /// Stacked recurrent layers [default: fitted to the corpus, 1 or 2 (docs/DEFAULTS.md)].
    #[arg(long)]
    layers: Option<usize>,
    /// Hidden units per layer [default: fitted to the corpus, the time budget and the
    /// threads (docs/DEFAULTS.md)].
    #[arg(long)]
    hidden: Option<usize>,
    /// Embedding width; 0 feeds one-hot vectors [default: fitted to the vocabulary, 64 for
    /// small ones].
    #[arg(long)]
    embed: Option<usize>,
    /// Width of an optional dense ReLU layer before the output; 0 for none.
    #[arg(long, default_value_t = 0)]
    dense: usize,
    /// Dropout on the embedding, between layers and on the output [default: 0, or the
    /// checkpoint's with --init-from].
    #[arg(long)]
    dropout: Option<f32>,
    /// Share the embedding with the output projection (needs --embed equal to the width
    /// feeding the output: --hidden, --last-hidden when given, or --dense when there is a dense layer).
    #[arg(long)]
    tie: bool,
    /// Locked dropout on the embedding output: one mask per stream, shared by every
    /// step of a block (AWD-LSTM's dropouti).
    #[arg(long, value_name = "P", conflicts_with = "resume")]
    dropout_input: Option<f32>,
    /// Locked dropout between recurrent layers (AWD-LSTM's dropouth).
    #[arg(long, value_name = "P", conflicts_with = "resume")]
    dropout_hidden: Option<f32>,
    /// Locked dropout on the last recurrent layer's output (AWD-LSTM's dropout).
    #[arg(long, value_name = "P", conflicts_with = "resume")]
    dropout_output: Option<f32>,
    /// Embedding dropout: drop whole words (embedding rows) for a step (AWD-LSTM's dropoute).
    #[arg(long, value_name = "P", conflicts_with = "resume")]
    dropout_embed: Option<f32>,
    /// DropConnect on the hidden-to-hidden weights, a new mask every step (AWD-LSTM's wdrop).
    #[arg(long, value_name = "P", conflicts_with = "resume")]
    weight_drop: Option<f32>,
    /// Activation regularization: add ALPHA * mean(output²) of the last layer's
    /// dropped-out output to the training loss [2 when given without a value].
    #[arg(long, value_name = "ALPHA", num_args = 0..=1, default_missing_value = "2", conflicts_with = "resume")]
    alpha: Option<f32>,
    /// Temporal activation regularization: add BETA * mean((h_t - h_{t-1})²) of the
    /// last layer's output to the training loss [1 when given without a value].
    #[arg(long, value_name = "BETA", num_args = 0..=1, default_missing_value = "1", conflicts_with = "resume")]
    beta: Option<f32>,
    /// Variable BPTT: each step's length is --seq-len (or half of it, 5% of the time)
    /// plus normal noise of 5, at least 5, with the learning rate scaled by length/--seq-len.
    #[arg(long, conflicts_with = "resume")]
    variable_bptt: bool,
    /// Hidden units of the last recurrent layer when it should differ from --hidden
    /// (AWD-LSTM's 1150/1150/400: as wide as a tied --embed).
    #[arg(long, conflicts_with_all = ["resume", "init_from"])]
    last_hidden: Option<usize>,
    /// Initial LSTM forget-gate bias (char-rnn uses 1); default: PyTorch's initialization.
    #[arg(long)]
    forget_bias: Option<f32>,
    /// Layer-normalized LSTM or GRU cells (Ba et al. 2016): stable at higher learning rates.
    #[arg(long, conflicts_with_all = ["resume", "init_from"])]
    layer_norm: bool,
    /// Steps of back-propagation through time per block.
    #[arg(long, default_value_t = 100)]
    seq_len: usize,
    /// Parallel streams per block [default: with the width fitted to the corpus 32, fewer
    /// for a short text; else 50].
    #[arg(long)]
    batch: Option<usize>,
    /// Optimizer: sgd, adam, adamw or rmsprop.
    #[arg(long, default_value = "adam")]
    optimizer: OptimizerKind,
    /// Learning rate [default: 3e-3 for Adam and AdamW with the width fitted to the corpus,
    /// else 2e-3].
    #[arg(long)]
    lr: Option<f32>,
    /// Momentum (SGD, RMSprop).
    #[arg(long)]
    momentum: Option<f32>,
    /// Weight decay (L2 for SGD/Adam/RMSprop, decoupled for AdamW).
    #[arg(long)]
    weight_decay: Option<f32>,
    /// Clip the global gradient norm to this value; 0 turns clipping off.
    #[arg(long, default_value_t = 5.0)]
    clip: f32,
    /// Learning-rate schedule: constant, step:EVERY:GAMMA, cosine[:WARMUP[:MIN_LR]], plateau[:FACTOR[:PATIENCE]].
    #[arg(long, default_value = "constant")]
    schedule: String,
    /// Stop after this many passes over the training text.
    #[arg(long)]
    epochs: Option<u64>,
    /// Stop at this many optimizer steps in total.
    #[arg(long)]
    steps: Option<u64>,
    /// Stop after this much wall-clock time, e.g. 90s, 10m, 1h30m.
    // `-5m` must reach the parser (which says durations are positive), not
    // be taken for the flags `-5` and `-m`.
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    time: Option<f64>,
    /// Validate every N steps (default: every epoch, or every 100 steps when epochs are shorter).
    #[arg(long)]
    eval_every: Option<u64>,
    /// Also write last/ (for --resume) every N steps, or every DURATION (e.g. 10m), without
    /// validating; best/ stays tied to validations. For this invocation only.
    #[arg(long, value_name = "STEPS|DURATION", value_parser = parse_save_every)]
    save_every: Option<SaveEvery>,
    /// Under mpirun: local SGD. After --average-warmup synchronous steps, each rank steps
    /// on its own gradients and the ranks average their weights every STEPS steps (and
    /// before each validation and checkpoint). For this invocation only.
    #[arg(long, value_name = "STEPS", value_parser = clap::value_parser!(u64).range(1..))]
    average_every: Option<u64>,
    /// Under mpirun: megabytes of gradient per bucket. Each bucket is summed over the ranks
    /// as soon as the backward pass has finished it, while the layers below are still being
    /// differentiated (PyTorch DDP's bucket_cap_mb); 0 sums the whole gradient afterwards.
    #[arg(long, value_name = "MB", default_value_t = 4.0, value_parser = parse_megabytes)]
    bucket_mb: f64,
    /// Synchronous steps before local SGD starts (with --average-every).
    #[arg(
        long,
        value_name = "STEPS",
        default_value_t = 100,
        requires = "average_every"
    )]
    average_warmup: u64,
    /// NT-ASGD (with --optimizer sgd): average the weights from the first validation
    /// that is worse than the best before the last N; evaluation and best/ use the average.
    #[arg(long, value_name = "N")]
    nt_asgd: Option<usize>,
    /// Early stopping: stop after this many validations without improvement.
    #[arg(long)]
    patience: Option<u32>,
    /// Reset a stream's state where a new document starts (folders of documents).
    #[arg(long)]
    reset_between_docs: bool,
    /// When training diverges (a NaN, or a loss that explodes against its recent history):
    /// stop with an error, or rollback: go back to the last checkpoint's state, halve the
    /// learning rate and go on, at most 3 times [default: stop; with --resume, the run's own].
    #[arg(long, value_name = "POLICY")]
    on_divergence: Option<OnDivergence>,
    /// Run folder for checkpoints and metrics (default: runs/NAME, never overwriting).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Random seed for initialization, dropout and the closing sample.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Threads for the kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Number format of the training products: f32, or bf16 (bf16 operands
    /// with float32 sums, where the CPU has AMX-BF16 or AVX512-BF16; float32
    /// with a note elsewhere). A resumed run keeps its own unless given.
    #[arg(long, value_name = "f32|bf16")]
    precision: Option<Precision>,
    /// Continue the run in this folder exactly where it stopped.
    #[arg(long, conflicts_with = "init_from")]
    resume: Option<PathBuf>,
    /// Start from the weights of this checkpoint (fine-tuning on new text).
    #[arg(long)]
    init_from: Option<PathBuf>,
    /// With --init-from: add characters the checkpoint's vocabulary lacks.
    #[arg(long, requires = "init_from")]
    extend_vocab: bool,
    /// Tokens of sample text printed after training (0 for none).
    #[arg(long, default_value_t = 400)]
    sample_length: usize,
    /// Also write TensorBoard event files into this folder (losses, learning rate,
    /// gradient norm, tokens/s, validation figures, a closing sample).
    #[arg(long, value_name = "DIR")]
    tensorboard: Option<PathBuf>,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let job = match crate::parallel::join()? {
        Some(job) if !job.is_leader() => return follow(&args, job),
        job => job,
    };
    let mut training = match &args.resume {
        Some(dir) => {
            let folder = RunFolder::open(dir).map_err(|e| super::resume_error(e, dir))?;
            let folder = with_save_every(folder, args.save_every);
            let options = ResumeOptions {
                input: args.data.clone().or_else(|| args.input.clone()),
                stop: stop_given(&args),
                on_divergence: args.on_divergence,
                threads: args.threads,
                precision: args.precision,
            };
            let t = Training::resume(folder, &options).map_err(super::cli_error)?;
            eprintln!(
                "resuming {} at step {} (epoch {})",
                dir.display(),
                t.trainer().state.progress.step,
                t.trainer().state.progress.epoch
            );
            t
        }
        None => {
            let options = options(&args)?;
            let folder = match &args.out {
                Some(out) => RunFolder::create(out),
                None => {
                    let name = run_name(args.input.as_deref().or(args.data.as_deref()));
                    RunFolder::create_fresh(Path::new("runs"), &name)
                }
            }
            .map_err(super::cli_error)?;
            let folder = with_save_every(folder, args.save_every);
            Training::start(&options, folder).map_err(super::cli_error)?
        }
    };
    match job {
        Some(job) => {
            let ranks = job.ranks();
            training.distribute(job).map_err(super::cli_error)?;
            training.set_gradient_bucket(bucket_values(args.bucket_mb));
            eprintln!(
                "data-parallel: {ranks} ranks share each batch of {} streams",
                training.trainer().state.config.batch
            );
            if let Some(averaging) = averaging(&args) {
                training.average_periodically(averaging);
                eprintln!(
                    "local SGD from step {}: weights averaged every {} steps",
                    averaging.after, averaging.every
                );
            }
        }
        None if args.average_every.is_some() => {
            eprintln!("warning: --average-every does nothing in a single process (use mpirun)");
        }
        None => {}
    }
    train(training, &args)
}

/// `--bucket-mb`: a size in megabytes, 0 or more.
fn parse_megabytes(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(mb) if mb.is_finite() && mb >= 0.0 => Ok(mb),
        _ => Err(format!(
            "expected a size in megabytes, 0 or more (e.g. 4), not {text:?}"
        )),
    }
}

/// Float values in a bucket of `mb` megabytes (at least one unless 0).
fn bucket_values(mb: f64) -> usize {
    let values = (mb * 1e6 / 4.0).round() as usize;
    if mb > 0.0 {
        values.max(1)
    } else {
        0
    }
}

/// Local SGD's schedule from the flags, when asked for.
fn averaging(args: &TrainArgs) -> Option<PeriodicAveraging> {
    Some(PeriodicAveraging {
        every: args.average_every?,
        after: args.average_warmup,
    })
}

/// A rank other than 0 of a data-parallel job: the same run, set up the same
/// way, trained quietly; rank 0 writes the folder and prints.
fn follow(args: &TrainArgs, job: Box<dyn recurrent::Collective + Send>) -> Result<()> {
    /// Shows nothing.
    struct Quiet;
    impl recurrent::Observer<recurrent::train::trainer::Trainer> for Quiet {}

    let scratch = std::env::temp_dir().join(format!(
        "recurrent-rank{}-{}",
        job.rank(),
        std::process::id()
    ));
    let mut training = match &args.resume {
        // Only read: rank 0 holds the folder.
        Some(dir) => {
            let options = ResumeOptions {
                input: args.input.clone(),
                stop: stop_given(args),
                on_divergence: args.on_divergence,
                threads: args.threads,
                precision: args.precision,
            };
            Training::resume(RunFolder::at(dir), &options)
        }
        None => Training::start(&options(args)?, RunFolder::at(&scratch)),
    }
    .map_err(super::cli_error)?;
    let result = training.distribute(job).and_then(|()| {
        training.set_gradient_bucket(bucket_values(args.bucket_mb));
        if let Some(averaging) = averaging(args) {
            training.average_periodically(averaging);
        }
        training.run(&mut Quiet)
    });
    let _ = std::fs::remove_dir_all(&scratch);
    result.map_err(super::cli_error)?;
    Ok(())
}

/// `--save-every`: a step count (`500`) or a duration with a unit (`10m`).
pub(crate) fn parse_save_every(text: &str) -> Result<SaveEvery, String> {
    let expected = "expected a number of steps (e.g. 500) or a duration with its unit (e.g. 90s, \
                    10m, 1h30m)";
    match text.trim().parse::<u64>() {
        Ok(0) => return Err(format!("{expected}, not 0")),
        Ok(steps) => return Ok(SaveEvery::Steps(steps)),
        Err(_) => {}
    }
    // A bare number is a step count, never seconds: `1.5` is a mistake either way.
    if text.trim().parse::<f64>().is_ok() {
        return Err(expected.to_string());
    }
    parse_duration(text)
        .ok()
        .and_then(|secs| std::time::Duration::try_from_secs_f64(secs).ok())
        .map(SaveEvery::Time)
        .ok_or_else(|| expected.to_string())
}

/// `folder`, saving `last/` on the `--save-every` cadence when one is given.
pub(crate) fn with_save_every(folder: RunFolder, every: Option<SaveEvery>) -> RunFolder {
    match every {
        Some(every) => folder.with_save_every(every),
        None => folder,
    }
}

/// Trains with a progress display (and TensorBoard logs), then reports and
/// prints a sample.
fn train(mut training: Training, args: &TrainArgs) -> Result<()> {
    let (sample_length, seed) = (args.sample_length, args.seed);
    for note in training.notes() {
        eprintln!("{note}");
    }
    eprintln!("{}", training.describe());
    let run_dir = training.folder().path().to_path_buf();
    eprintln!("run folder: {}", run_dir.display());
    super::install_interrupt_handler();
    let p = &training.trainer().state.progress;
    let at = (p.step, p.epoch);
    let mut progress = ProgressObserver::new(EvalStyle::LanguageModel, &INTERRUPTED, at);
    let mut board = super::tensorboard(args.tensorboard.as_deref())?;
    let result = match board.as_mut() {
        Some(board) => training.run(&mut Tee::new(&mut progress, board)),
        None => training.run(&mut progress),
    };
    progress.finish();
    let outcome = result.map_err(|e| super::training_failed(e, &run_dir))?;
    if let Some(board) = board.as_mut() {
        let step = training.trainer().state.progress.step;
        let text = sample_text(&training, TENSORBOARD_SAMPLE_TOKENS, seed)?;
        // A code block keeps the sample's line breaks and spaces in TensorBoard's Markdown.
        let logged = board.text("sample", step, &format!("```\n{text}\n```"));
        super::report_tensorboard(board, logged);
    }
    eprintln!(
        "done ({}): {} steps, {} epochs, {:.0}s",
        outcome.reason.describe(),
        outcome.steps,
        outcome.epochs,
        outcome.elapsed_secs
    );
    super::report_rollbacks(&training.trainer().state.progress);
    if let Some(best) = outcome.best_val_loss {
        eprintln!(
            "best validation loss {best:.4} nats/token ({:.4} bits/token, perplexity {:.2}); saved in {}",
            best / std::f64::consts::LN_2,
            best.exp(),
            training.folder().best_dir().display()
        );
    }
    if outcome.reason == StopReason::Interrupted {
        eprintln!(
            "continue with: recurrent train --resume {}",
            run_dir.display()
        );
    }
    if sample_length > 0 {
        print_sample(&training, sample_length, seed)?;
    }
    Ok(())
}

/// The stop rule the flags give, if any.
fn stop_given(args: &TrainArgs) -> Option<StopRule> {
    (args.epochs.is_some() || args.steps.is_some() || args.time.is_some()).then_some(StopRule {
        epochs: args.epochs,
        steps: args.steps,
        time_secs: args.time,
    })
}

/// The library's options from the flags.
fn options(args: &TrainArgs) -> Result<TrainOptions> {
    let defaults = TokenizerOptions::default();
    let fixed = TrainOptions::default();
    let fixed_model = TrainOptions::fixed_model();
    let last_hidden = args.last_hidden.unwrap_or(0);
    let hidden =
        FitToCorpus::given_width(args.hidden, args.embed, args.tie, last_hidden, args.dense);
    let fit = match &args.init_from {
        Some(_) => FitToCorpus::NONE,
        None => FitToCorpus::unset(args.layers, hidden, args.embed, args.batch, args.lr),
    };
    let mut optimizer = OptimizerConfig::new(args.optimizer);
    if let Some(m) = args.momentum {
        optimizer.momentum = m;
    }
    if let Some(wd) = args.weight_decay {
        optimizer.weight_decay = wd;
    }
    let init = match &args.init_from {
        Some(path) => Init::From {
            path: path.clone(),
            extend_vocab: args.extend_vocab,
            dropout: args.dropout,
        },
        None => Init::Fresh {
            config: ModelConfig {
                cell: args.cell,
                vocab_size: 0,
                embed: args.embed.unwrap_or(fixed_model.embed),
                hidden: hidden.unwrap_or(fixed_model.hidden),
                layers: args.layers.unwrap_or(fixed_model.layers),
                dense: args.dense,
                dropout: args.dropout.unwrap_or(0.0),
                tie: args.tie,
                layer_norm: args.layer_norm,
                last_hidden,
            },
            forget_bias: args.forget_bias,
        },
    };
    let p = |x: Option<f32>| x.unwrap_or(0.0);
    Ok(TrainOptions {
        input: match (&args.data, &args.input) {
            (Some(data), _) => TextSource::Prepared(data.clone()),
            (None, input) => input.clone().map_or(TextSource::Builtin, TextSource::Path),
        },
        val: args.val.clone(),
        val_fraction: args.val_fraction,
        tokenizer: args.tokenizer,
        tokenizer_options: TokenizerOptions {
            vocab_size: args.vocab_size,
            min_count: args.min_count.unwrap_or(defaults.min_count),
            word_segmentation: args.word_segmentation.unwrap_or(defaults.word_segmentation),
        },
        init,
        regularizers: Regularizers {
            model: Regularization {
                dropout_input: p(args.dropout_input),
                dropout_hidden: p(args.dropout_hidden),
                dropout_output: p(args.dropout_output),
                dropout_embed: p(args.dropout_embed),
                weight_drop: p(args.weight_drop),
                alpha: p(args.alpha),
                beta: p(args.beta),
            },
            variable_bptt: args.variable_bptt,
        },
        seq_len: args.seq_len,
        batch: args.batch.unwrap_or(fixed.batch),
        optimizer,
        lr: args.lr.unwrap_or(fixed.lr),
        clip: args.clip,
        schedule: args.schedule.clone(),
        stop: stop_given(args).unwrap_or_default(),
        eval_every: args.eval_every,
        patience: args.patience,
        nt_asgd: args.nt_asgd,
        reset_between_docs: args.reset_between_docs,
        on_divergence: args.on_divergence.unwrap_or_default(),
        seed: args.seed,
        threads: args.threads,
        fit,
        precision: args.precision.unwrap_or_default(),
    })
}

/// The run folder name for a text: its file name without the extension.
pub(crate) fn run_name(input: Option<&Path>) -> String {
    input
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "default".into())
}

/// Tokens of the sample logged to TensorBoard at the end of a run.
const TENSORBOARD_SAMPLE_TOKENS: usize = 300;

fn print_sample(training: &Training, length: usize, seed: u64) -> Result<()> {
    let (generator, options) = sampler(training, length, seed)?;
    eprintln!("--- sample (temperature 0.8) ---");
    super::sample::stream_to_stdout(&generator, &options, "")
}

/// `length` tokens sampled at temperature 0.8 from the trained model.
fn sample_text(training: &Training, length: usize, seed: u64) -> Result<String> {
    let (generator, options) = sampler(training, length, seed)?;
    let mut texts = generator.generate(&options, |_, _| {})?;
    Ok(texts.swap_remove(0))
}

/// The trained model's generator and the closing sample's settings.
fn sampler(training: &Training, length: usize, seed: u64) -> Result<(Generator, GenerateOptions)> {
    let generator = Generator::from_model(
        training.model(),
        training.tokenizer().clone(),
        GeneratorOptions {
            threads: Some(training.threads()),
            ..GeneratorOptions::default()
        },
    )?;
    let options = GenerateOptions {
        length,
        sampling: SamplingConfig {
            temperature: 0.8,
            top_k: None,
            top_p: None,
        },
        seed,
        ..GenerateOptions::default()
    };
    Ok((generator, options))
}

/// Set by the first Ctrl-C: the run stops after the current step, saved.
pub(crate) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_every_is_a_step_count_or_a_duration_with_a_unit() {
        use std::time::Duration;
        assert_eq!(parse_save_every("500"), Ok(SaveEvery::Steps(500)));
        assert_eq!(
            parse_save_every("10m"),
            Ok(SaveEvery::Time(Duration::from_secs(600)))
        );
        assert_eq!(
            parse_save_every("1h30m"),
            Ok(SaveEvery::Time(Duration::from_secs(5400)))
        );
        for bad in ["0", "0.5", "-3", "x", "", "10m5", "0s"] {
            assert!(parse_save_every(bad).is_err(), "{bad}");
        }
    }
}
