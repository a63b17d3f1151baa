//! `recurrent train`: read text, build or load a model, train it, checkpoint it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use clap::Args;
use recurrent_checkpoint::append_jsonl;
use recurrent_checkpoint::layout::{BEST_DIR, CONFIG_FILE, LAST_DIR, METRICS_FILE};
use recurrent_checkpoint::lm::{self, ResumeState};
use recurrent_generate::{generate, GenerateOptions, SamplingConfig};
use recurrent_kernels::{threads, Rng};
use recurrent_model::{CellKind, LanguageModel, ModelConfig, Regularization};
use recurrent_text::{Corpus, Tokenizer, TokenizerKind, TokenizerOptions, WordSegmentation};
use recurrent_train::batch::Streams;
use recurrent_train::optim::{OptimizerConfig, OptimizerKind};
use recurrent_train::schedule::Schedule;
use recurrent_train::trainer::{
    EvalReport, Observer, Regularizers, Slot, StepReport, StopReason, TrainConfig, Trainer,
    TrainerState,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::curves::Curves;
use crate::default_corpus;
use crate::duration::parse_duration;
use crate::progress::{human, Progress};

/// Arguments of `recurrent train`.
#[derive(Args, Debug)]
// `--lr -1` must reach our range checks (and `--forget-bias -1` is legitimate).
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// Training text: a file, or a folder of files (documents). Default: the built-in corpus.
    #[arg(long)]
    input: Option<PathBuf>,
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
    /// Stacked recurrent layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Hidden units per layer.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Embedding width; 0 feeds one-hot vectors.
    #[arg(long, default_value_t = 64)]
    embed: usize,
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
    /// Parallel streams per block.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Optimizer: sgd, adam, adamw or rmsprop.
    #[arg(long, default_value = "adam")]
    optimizer: OptimizerKind,
    /// Learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f32,
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
    #[arg(long, value_parser = parse_duration)]
    time: Option<f64>,
    /// Validate every N steps (default: every epoch, or every 100 steps when epochs are shorter).
    #[arg(long)]
    eval_every: Option<u64>,
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
    /// Run folder for checkpoints and metrics (default: runs/NAME, never overwriting).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Random seed for initialization, dropout and the closing sample.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Threads for the kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
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
}

/// Where the text came from, saved with the run so `--resume` can read it again.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct DataSource {
    /// None for the built-in corpus.
    input: Option<PathBuf>,
    val: Option<PathBuf>,
    val_fraction: f64,
}

/// What trainer_state.json holds: the trainer's state and the data source.
#[derive(Serialize, Deserialize)]
struct SavedRun {
    trainer: TrainerState,
    data: DataSource,
}

pub fn run(args: TrainArgs) -> Result<()> {
    super::set_threads(args.threads)?;
    let (mut trainer, tokenizer, data, run_dir) = match &args.resume {
        Some(dir) => resume(&args, dir)?,
        None => start(&args)?,
    };
    let summary = describe(&trainer, &tokenizer, &data);
    eprintln!("{summary}");
    eprintln!("run folder: {}", run_dir.display());

    install_interrupt_handler();
    let mut observer = CliObserver {
        progress: Progress::new(),
        run_dir: run_dir.clone(),
        tokenizer: &tokenizer,
        data,
        curves: Curves::from_metrics(&run_dir.join(METRICS_FILE)),
    };
    let result = trainer.run(&mut observer);
    observer.progress.finish();
    let reason = result.map_err(|e| super::training_failed(e, &run_dir))?;
    let s = &trainer.state;
    let why = reason.describe();
    eprintln!(
        "done ({why}): {} steps, {} epochs, {:.0}s",
        s.step, s.epoch, s.elapsed_secs
    );
    if let Some(best) = s.best_val_loss {
        eprintln!(
            "best validation loss {best:.4} nats/token ({:.4} bits/token, perplexity {:.2}); saved in {}",
            best / std::f64::consts::LN_2,
            best.exp(),
            run_dir.join(BEST_DIR).display()
        );
    }
    if reason == StopReason::Interrupted {
        eprintln!(
            "continue with: recurrent train --resume {}",
            run_dir.display()
        );
    }
    if args.sample_length > 0 {
        print_sample(&trainer.model, &tokenizer, args.sample_length, args.seed)?;
    }
    Ok(())
}

/// A fresh run (possibly starting from a checkpoint's weights).
fn start(args: &TrainArgs) -> Result<(Trainer, Tokenizer, DataSource, PathBuf)> {
    // Absolute paths, so --resume works from any folder.
    let data = DataSource {
        input: args.input.as_deref().map(absolute),
        val: args.val.as_deref().map(absolute),
        val_fraction: args.val_fraction,
    };
    if !(0.0..1.0).contains(&args.val_fraction) {
        bail!(
            "--val-fraction must be in [0, 1), got {}",
            args.val_fraction
        );
    }
    if args.batch == 0 || args.seq_len == 0 {
        bail!(
            "--batch and --seq-len must be at least 1, got --batch {} --seq-len {}",
            args.batch,
            args.seq_len
        );
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        bail!("--lr must be a finite number > 0, got {}", args.lr);
    }
    if !(args.clip.is_finite() && args.clip >= 0.0) {
        bail!(
            "--clip must be a finite number >= 0 (0 turns clipping off), got {}",
            args.clip
        );
    }
    let regularizers = regularizers(args)?;
    let (corpus, val_corpus) = read_corpora(&data, args.tokenizer)?;
    let mut rng = Rng::new(args.seed);
    let (model, tokenizer) = match &args.init_from {
        Some(path) => init_from(path, args, &corpus, val_corpus.as_ref(), &mut rng)?,
        None => {
            let tokenizer = build_tokenizer(args, &corpus, val_corpus.as_ref())?;
            let config = ModelConfig {
                cell: args.cell,
                vocab_size: tokenizer.vocab().len(),
                embed: args.embed,
                hidden: args.hidden,
                layers: args.layers,
                dense: args.dense,
                dropout: args.dropout.unwrap_or(0.0),
                tie: args.tie,
                layer_norm: args.layer_norm,
                last_hidden: args.last_hidden.unwrap_or(0),
            };
            (
                LanguageModel::new(config, &mut rng, args.forget_bias)?,
                tokenizer,
            )
        }
    };
    let (train, val) = split(&tokenizer, &corpus, val_corpus.as_ref(), args.val_fraction)?;
    if args.nt_asgd.is_some() && args.optimizer != OptimizerKind::Sgd {
        bail!("--nt-asgd averages SGD iterates; use it with --optimizer sgd");
    }
    let mut optimizer = OptimizerConfig::new(args.optimizer);
    if let Some(m) = args.momentum {
        optimizer.momentum = m;
    }
    if let Some(wd) = args.weight_decay {
        optimizer.weight_decay = wd;
    }
    let streams = Streams::for_training(train.len(), args.batch, args.seq_len)?;
    let blocks = streams.blocks_per_epoch(args.seq_len) as u64;
    let (epochs, steps, time_secs) = stop_rule(args, data.input.is_none());
    let total_steps = steps.or(epochs.map(|e| e * blocks));
    let schedule = Schedule::parse(&args.schedule, total_steps)
        .map_err(|e| anyhow::anyhow!("--schedule: {e}"))?;
    let config = TrainConfig {
        seq_len: args.seq_len,
        batch: args.batch,
        optimizer,
        lr: args.lr,
        clip: args.clip,
        schedule,
        epochs,
        steps,
        time_secs,
        eval_every: args
            .eval_every
            .unwrap_or(if blocks >= 100 { 0 } else { 100 }),
        patience: args.patience,
        seed: args.seed,
        reset_between_docs: args.reset_between_docs,
        nt_asgd: args.nt_asgd,
    };
    let boundary = tokenizer.boundary();
    let trainer = Trainer::with_regularizers(model, config, regularizers, train, val, boundary)?;
    let run_dir = match &args.out {
        Some(out) => {
            if out.join(LAST_DIR).exists() || out.join(BEST_DIR).exists() {
                bail!(
                    "{} already holds a run; use --resume {0} to continue it, or another --out",
                    out.display()
                );
            }
            out.clone()
        }
        None => fresh_run_dir(data.input.as_deref()),
    };
    // Fail now, not after training, if the run folder cannot be made.
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create the run folder {}", run_dir.display()))?;
    Ok((trainer, tokenizer, data, run_dir))
}

/// AWD-LSTM's regularizers from the flags, range-checked (all off by default).
fn regularizers(args: &TrainArgs) -> Result<Regularizers> {
    let probability = |flag: &str, p: Option<f32>| -> Result<f32> {
        let p = p.unwrap_or(0.0);
        if !(0.0..1.0).contains(&p) {
            bail!("{flag} must be a probability in [0, 1), got {p}");
        }
        Ok(p)
    };
    let weight = |flag: &str, x: Option<f32>| -> Result<f32> {
        let x = x.unwrap_or(0.0);
        if !(x.is_finite() && x >= 0.0) {
            bail!("{flag} must be a finite number >= 0, got {x}");
        }
        Ok(x)
    };
    Ok(Regularizers {
        model: Regularization {
            dropout_input: probability("--dropout-input", args.dropout_input)?,
            dropout_hidden: probability("--dropout-hidden", args.dropout_hidden)?,
            dropout_output: probability("--dropout-output", args.dropout_output)?,
            dropout_embed: probability("--dropout-embed", args.dropout_embed)?,
            weight_drop: probability("--weight-drop", args.weight_drop)?,
            alpha: weight("--alpha", args.alpha)?,
            beta: weight("--beta", args.beta)?,
        },
        variable_bptt: args.variable_bptt,
    })
}

/// The stop rule from the flags; with none, 10 epochs (1 minute on the built-in corpus).
fn stop_rule(args: &TrainArgs, builtin: bool) -> (Option<u64>, Option<u64>, Option<f64>) {
    if args.epochs.is_none() && args.steps.is_none() && args.time.is_none() {
        return if builtin {
            (None, None, Some(60.0))
        } else {
            (Some(10), None, None)
        };
    }
    (args.epochs, args.steps, args.time)
}

fn read_corpora(data: &DataSource, kind: TokenizerKind) -> Result<(Corpus, Option<Corpus>)> {
    let corpus = match &data.input {
        Some(path) => Corpus::read(path)?,
        None => Corpus::from_text(default_corpus::NAME, &default_corpus::text()),
    };
    let val = data.val.as_deref().map(Corpus::read).transpose()?;
    if kind.needs_utf8() {
        corpus.check_utf8()?;
        if let Some(v) = &val {
            v.check_utf8()?;
        }
    }
    Ok((corpus, val))
}

/// Token ids for training and validation: a separate validation text, or the
/// last `fraction` of the input (nanoGPT's split).
fn split(
    tokenizer: &Tokenizer,
    corpus: &Corpus,
    val: Option<&Corpus>,
    fraction: f64,
) -> Result<(Vec<u32>, Option<Vec<u32>>)> {
    let mut tokens = tokenizer.encode_corpus(corpus)?;
    if tokens.len() < 2 {
        bail!(
            "the training text has {} token(s); it needs at least 2",
            tokens.len()
        );
    }
    if let Some(v) = val {
        return Ok((tokens, Some(tokenizer.encode_corpus(v)?)));
    }
    let n_val = (tokens.len() as f64 * fraction) as usize;
    if n_val < 2 {
        return Ok((tokens, None));
    }
    let val = tokens.split_off(tokens.len() - n_val);
    Ok((tokens, Some(val)))
}

/// Loads a checkpoint to fine-tune, reconciling its vocabulary with the new text.
fn init_from(
    path: &Path,
    args: &TrainArgs,
    corpus: &Corpus,
    val: Option<&Corpus>,
    rng: &mut Rng,
) -> Result<(LanguageModel, Tokenizer)> {
    let saved = lm::load(path)?;
    let (mut model, mut tokenizer) = (saved.model, saved.tokenizer);
    let mut missing = tokenizer.missing_chars(corpus);
    if let Some(v) = val {
        missing.extend(tokenizer.missing_chars(v));
        missing.sort_unstable();
        missing.dedup();
    }
    if !missing.is_empty() {
        let shown: Vec<String> = missing
            .iter()
            .take(20)
            .map(|c| format!("{:?}", c))
            .collect();
        if !args.extend_vocab {
            bail!(
                "the text has {} character(s) that {} does not know: {}{}; add --extend-vocab to grow its vocabulary",
                missing.len(),
                saved.path.display(),
                shown.join(", "),
                if missing.len() > 20 { ", ..." } else { "" }
            );
        }
        tokenizer.extend(&missing)?;
        model.extend_vocab(tokenizer.vocab().len(), rng)?;
        eprintln!(
            "extended the vocabulary by {} character(s): {}",
            missing.len(),
            shown.join(", ")
        );
    }
    if let Some(p) = args.dropout {
        model.config.dropout = p;
    }
    Ok((model, tokenizer))
}

/// Continues the run in `dir` from its `last/` checkpoint.
fn resume(args: &TrainArgs, dir: &Path) -> Result<(Trainer, Tokenizer, DataSource, PathBuf)> {
    let last = dir.join(LAST_DIR);
    if !dir.is_dir() {
        bail!(
            "--resume {}: {}",
            dir.display(),
            if dir.exists() {
                "not a run folder (it is a file)"
            } else {
                "no such run folder"
            }
        );
    }
    // `last.old` stands in for `last/` after a crash in the middle of a save.
    if !last.exists() && !dir.join(format!("{LAST_DIR}.old")).exists() {
        bail!(
            "--resume {}: not a run folder (it has no {LAST_DIR}/ checkpoint); give the --out folder of an earlier `recurrent train`{}",
            dir.display(),
            if dir.join(CONFIG_FILE).exists() {
                ", or use --init-from to fine-tune from this checkpoint"
            } else {
                ""
            }
        );
    }
    let saved = lm::load(&last)?;
    let Some(state) = saved.resume else {
        bail!("{} has no optimizer and trainer state, so it cannot be resumed; use --init-from to fine-tune from it", last.display());
    };
    let run: SavedRun = serde_json::from_value(state.trainer_state).with_context(|| {
        format!(
            "{}/trainer_state.json is not a trainer state of this version",
            last.display()
        )
    })?;
    let mut data = run.data;
    if let Some(input) = &args.input {
        data.input = Some(input.clone());
    }
    let (corpus, val_corpus) = read_corpora(&data, saved.tokenizer.kind())?;
    let (train, val) = split(
        &saved.tokenizer,
        &corpus,
        val_corpus.as_ref(),
        data.val_fraction,
    )?;
    let mut trainer_state = run.trainer;
    if args.epochs.is_some() || args.steps.is_some() || args.time.is_some() {
        let c = &mut trainer_state.config;
        (c.epochs, c.steps, c.time_secs) = (args.epochs, args.steps, args.time);
    }
    let boundary = saved.tokenizer.boundary();
    let trainer = Trainer::resume(
        saved.model,
        &state.optimizer,
        trainer_state,
        train,
        val,
        boundary,
    )?;
    eprintln!(
        "resuming {} at step {} (epoch {})",
        dir.display(),
        trainer.state.step,
        trainer.state.epoch
    );
    Ok((trainer, saved.tokenizer, data, dir.to_path_buf()))
}

/// `runs/NAME`, `runs/NAME-2`, ...: the first that does not exist yet.
pub(crate) fn fresh_run_dir(input: Option<&Path>) -> PathBuf {
    let name = input
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "default".into());
    let base = PathBuf::from("runs");
    (1..)
        .map(|i| {
            if i == 1 {
                base.join(&name)
            } else {
                base.join(format!("{name}-{i}"))
            }
        })
        .find(|p| !p.exists())
        .expect("some run folder name is free")
}

fn describe(trainer: &Trainer, tokenizer: &Tokenizer, data: &DataSource) -> String {
    let c = &trainer.model.config;
    let t = &trainer.state.config;
    let source = data
        .input
        .as_ref()
        .map_or(default_corpus::NAME.to_string(), |p| {
            p.display().to_string()
        });
    let mut text = format!(
        "training a {}x{} {} (embed {}, {} parameters) on {} ({} tokenizer, {} tokens in the vocabulary)\n\
         batch {} x seq-len {}, {} blocks per epoch, optimizer {} lr {}, threads: {}",
        c.layers,
        c.hidden,
        c.cell,
        c.embed,
        human(trainer.model.num_params() as f64),
        source,
        tokenizer.kind(),
        tokenizer.vocab().len(),
        t.batch,
        t.seq_len,
        trainer.blocks_per_epoch(),
        t.optimizer.kind,
        t.lr,
        threads::threads()
    );
    let r = &trainer.state.regularizers;
    if *r != Regularizers::default() {
        let m = &r.model;
        text.push_str(&format!(
            "\nregularization: dropout input {} hidden {} output {} embed {}, weight drop {}, \
             alpha {}, beta {}{}",
            m.dropout_input,
            m.dropout_hidden,
            m.dropout_output,
            m.dropout_embed,
            m.weight_drop,
            m.alpha,
            m.beta,
            if r.variable_bptt {
                ", variable BPTT"
            } else {
                ""
            }
        ));
    }
    text
}

fn print_sample(
    model: &LanguageModel,
    tokenizer: &Tokenizer,
    length: usize,
    seed: u64,
) -> Result<()> {
    let options = GenerateOptions {
        prime: String::new(),
        length,
        sampling: SamplingConfig {
            temperature: 0.8,
            top_k: None,
            top_p: None,
        },
        stops: Vec::new(),
        seed,
        samples: 1,
        weights: Default::default(),
    };
    eprintln!("--- sample (temperature 0.8) ---");
    let mut out = String::new();
    generate(model, tokenizer, &options, |_, s| out.push_str(s))?;
    println!("{out}");
    Ok(())
}

/// Prints progress and writes metrics and checkpoints into the run folder.
struct CliObserver<'a> {
    progress: Progress,
    run_dir: PathBuf,
    tokenizer: &'a Tokenizer,
    data: DataSource,
    curves: Curves,
}

impl CliObserver<'_> {
    fn metric(&self, value: serde_json::Value) {
        append_metric(&self.progress, &self.run_dir, &value);
    }
}

/// Appends one line to the run's metrics.jsonl; a failure is a warning, not
/// the end of the run (shared by the language-model and seq2seq commands).
pub(crate) fn append_metric(progress: &Progress, run_dir: &Path, value: &serde_json::Value) {
    if let Err(e) = append_jsonl(&run_dir.join(METRICS_FILE), value) {
        progress.println(&format!("warning: {e}"));
    }
}

/// The folder of a run that holds checkpoint `slot`.
pub(crate) fn slot_dir(run_dir: &Path, slot: Slot) -> PathBuf {
    run_dir.join(match slot {
        Slot::Best => BEST_DIR,
        Slot::Last => LAST_DIR,
    })
}

impl Observer for CliObserver<'_> {
    fn should_stop(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }

    fn on_step(&mut self, trainer: &Trainer, r: &StepReport) {
        self.progress
            .step(r.step, r.epoch, r.loss, r.tokens, r.progress);
        self.curves.train(r.step, r.loss);
        let mut line = json!({
            "kind": "train", "step": r.step, "epoch": r.epoch, "loss": r.loss,
            "lr": short_f32(r.lr), "grad_norm": r.grad_norm, "elapsed": trainer.state.elapsed_secs,
        });
        // The AR and TAR penalties, only when they are on (`loss` is the cross-entropy).
        let m = &trainer.state.regularizers.model;
        if m.alpha > 0.0 {
            line["ar"] = json!(r.ar);
        }
        if m.beta > 0.0 {
            line["tar"] = json!(r.tar);
        }
        self.metric(line);
    }

    fn on_eval(&mut self, trainer: &Trainer, r: &EvalReport, improved: bool) {
        let s = &trainer.state;
        self.curves.val(s.step, r.loss);
        if let Err(e) = self.curves.write(&self.run_dir) {
            self.progress
                .println(&format!("warning: cannot write the loss curve: {e}"));
        }
        self.progress.println(&format!(
            "step {} epoch {}: validation loss {:.4} ({:.4} bits/token, perplexity {:.2}, accuracy {:.1}%){}",
            s.step,
            s.epoch,
            r.loss,
            r.bits_per_token(),
            r.perplexity(),
            100.0 * r.accuracy,
            if improved { " best" } else { "" }
        ));
        self.metric(json!({
            "kind": "val", "step": s.step, "epoch": s.epoch, "loss": r.loss,
            "bits_per_token": r.bits_per_token(), "perplexity": r.perplexity(),
            "accuracy": r.accuracy, "elapsed": s.elapsed_secs,
        }));
    }

    fn save(&mut self, trainer: &Trainer, slot: Slot) -> Result<(), String> {
        let dir = slot_dir(&self.run_dir, slot);
        let run = SavedRun {
            trainer: trainer.state.clone(),
            data: self.data.clone(),
        };
        let resume = ResumeState {
            optimizer: trainer.state_tensors(),
            trainer_state: serde_json::to_value(&run).map_err(|e| e.to_string())?,
        };
        lm::save(&dir, &trainer.model, self.tokenizer, Some(&resume)).map_err(|e| e.to_string())
    }
}

/// A char vocabulary covers the training and validation text (so validation
/// never meets an unknown character); word and BPE vocabularies are learned
/// from the training text only, as the benchmarks require. The document
/// boundary token is added only when the training text has several documents.
fn build_tokenizer(args: &TrainArgs, train: &Corpus, val: Option<&Corpus>) -> Result<Tokenizer> {
    let defaults = TokenizerOptions::default();
    let options = TokenizerOptions {
        vocab_size: args.vocab_size,
        min_count: args.min_count.unwrap_or(defaults.min_count),
        word_segmentation: args.word_segmentation.unwrap_or(defaults.word_segmentation),
    };
    let kind = args.tokenizer;
    let mut all = train.clone();
    if let (Some(val), TokenizerKind::Char) = (val, kind) {
        // Appended to the last document: only the characters matter here.
        let last = all.docs.last_mut().expect("a corpus has a document");
        for doc in &val.docs {
            last.bytes.extend_from_slice(&doc.bytes);
        }
    }
    Ok(Tokenizer::build_with(kind, &all, &options)?)
}

pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

pub(crate) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The first Ctrl-C finishes the current step, validates and saves, so the run
/// can be resumed; a second one quits at once.
pub(crate) fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: saving after this step (Ctrl-C again to quit without saving)");
    });
}

/// An f32 as the f64 its shortest decimal form reads as (`0.002`, not `0.0020000000949949026`).
pub(crate) fn short_f32(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}
