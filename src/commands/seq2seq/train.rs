//! `recurrent seq2seq train`: read sentence pairs, split them, build the
//! tokenizers and an encoder-decoder, train it, checkpoint it.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{bail, Context, Result};
use clap::Args;
use recurrent_checkpoint::atomic_write;
use recurrent_checkpoint::layout::{BEST_DIR, CONFIG_FILE, LAST_DIR, METRICS_FILE};
use recurrent_checkpoint::lm::ResumeState;
use recurrent_checkpoint::seq2seq as ckpt;
use recurrent_kernels::{threads, Rng};
use recurrent_model::seq2seq::{AttentionKind, Bridge, Seq2Seq, Seq2SeqConfig};
use recurrent_model::CellKind;
use recurrent_report::corpus_bleu;
use recurrent_text::{
    read_pairs, split_pairs, Pair, PairColumns, PairSplit, PairTokenizers, SplitFractions,
    TokenizerKind, TokenizerOptions, WordSegmentation,
};
use recurrent_train::optim::{OptimizerConfig, OptimizerKind};
use recurrent_train::schedule::Schedule;
use recurrent_train::seq2seq::{
    EncodedPair, Seq2SeqEvalReport, Seq2SeqObserver, Seq2SeqStepReport, Seq2SeqTrainConfig,
    Seq2SeqTrainer, Seq2SeqTrainerState,
};
use recurrent_train::trainer::{Slot, StopReason};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::decode::{translate, DecodeArgs};
use crate::commands::train::{
    absolute, append_metric, fresh_run_dir, install_interrupt_handler, short_f32, slot_dir,
    INTERRUPTED,
};
use crate::curves::Curves;
use crate::duration::parse_duration;
use crate::progress::{human, Progress};

/// BPE vocabulary per side when --vocab-size is not given: room for the
/// words of a few hundred thousand sentences.
const DEFAULT_BPE_VOCAB: usize = 8000;

/// Arguments of `recurrent seq2seq train`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// Sentence pairs: one pair per line, source and target separated by a tab.
    #[arg(long, required_unless_present = "resume")]
    pairs: Option<PathBuf>,
    #[command(flatten)]
    columns: super::ColumnArgs,
    /// Share of the pairs held out for validation.
    #[arg(long, default_value_t = 0.05)]
    valid_fraction: f64,
    /// Share of the pairs held out for the final test (written to test.tsv in the run folder).
    #[arg(long, default_value_t = 0.05)]
    test_fraction: f64,
    /// Seed of the validation/test split (kept apart from --seed so the test set stays put).
    #[arg(long, default_value_t = 1)]
    split_seed: u64,
    /// Leave out training pairs with more tokens than this on either side.
    #[arg(long, default_value_t = 100)]
    max_tokens: usize,
    /// Token level of both sides: char, byte, word or bpe.
    #[arg(long, default_value = "bpe")]
    tokenizer: TokenizerKind,
    /// Word and BPE: the largest vocabulary of each side [default: every word; BPE 8000].
    #[arg(long)]
    vocab_size: Option<usize>,
    /// Word: keep words seen at least this often; BPE: merge pairs seen at least this often.
    #[arg(long)]
    min_count: Option<usize>,
    /// Word: split on whitespace or on Unicode word boundaries.
    #[arg(long)]
    word_segmentation: Option<WordSegmentation>,
    /// One vocabulary for source and target (needed by --share-embeddings).
    #[arg(long)]
    shared_vocab: bool,
    /// Recurrent cell of encoder and decoder: lstm, gru, rnn-tanh or rnn-relu.
    #[arg(long, default_value = "lstm")]
    cell: CellKind,
    /// Stacked layers in the encoder and in the decoder.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Hidden units (a bidirectional encoder gives each direction half).
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// Embedding width.
    #[arg(long, default_value_t = 256)]
    embed: usize,
    /// Read the source in both directions.
    #[arg(long)]
    bidirectional: bool,
    /// Attention scoring: dot, general or additive.
    #[arg(long, default_value = "general")]
    attention: AttentionKind,
    /// Do not feed the previous attentional vector to the decoder.
    #[arg(long)]
    no_input_feeding: bool,
    /// Decoder initial state from the encoder's: copy, linear or zero.
    #[arg(long, default_value = "copy")]
    bridge: Bridge,
    /// Dropout on embeddings, between layers and on the attentional vector.
    #[arg(long, default_value_t = 0.2)]
    dropout: f32,
    /// The output layer reads the target embedding matrix (needs --embed == --hidden).
    #[arg(long)]
    tie: bool,
    /// Encoder and decoder share one embedding matrix (needs --shared-vocab).
    #[arg(long, requires = "shared_vocab")]
    share_embeddings: bool,
    /// Sentence pairs per batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Optimizer: sgd, adam, adamw or rmsprop.
    #[arg(long, default_value = "adam")]
    optimizer: OptimizerKind,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Weight decay (L2 for SGD/Adam/RMSprop, decoupled for AdamW).
    #[arg(long)]
    weight_decay: Option<f32>,
    /// Clip the global gradient norm to this value; 0 turns clipping off.
    #[arg(long, default_value_t = 5.0)]
    clip: f32,
    /// Learning-rate schedule: constant, step:EVERY:GAMMA, cosine[:WARMUP[:MIN_LR]], plateau[:FACTOR[:PATIENCE]].
    #[arg(long, default_value = "constant")]
    schedule: String,
    /// Probability that the decoder reads the gold previous token (1 is teacher forcing).
    #[arg(long, default_value_t = 1.0)]
    teacher_forcing: f32,
    /// Label smoothing of the training loss.
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    /// Stop after this many passes over the training pairs [default: 10 with no other limit].
    #[arg(long)]
    epochs: Option<u64>,
    /// Stop at this many optimizer steps in total.
    #[arg(long)]
    steps: Option<u64>,
    /// Stop after this much wall-clock time, e.g. 90s, 10m, 1h.
    #[arg(long, value_parser = parse_duration)]
    time: Option<f64>,
    /// Validate every N steps (default: every epoch).
    #[arg(long)]
    eval_every: Option<u64>,
    /// Early stopping: stop after this many validations without improvement.
    #[arg(long)]
    patience: Option<u32>,
    /// At each validation, greedy-decode this many validation pairs and report their BLEU.
    #[arg(long, default_value_t = 500)]
    val_bleu: usize,
    /// Run folder (default: runs/NAME, never overwriting).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Random seed for initialization, batch order, dropout and teacher forcing.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Threads for the kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Continue the run in this folder exactly where it stopped.
    #[arg(long)]
    resume: Option<PathBuf>,
}

/// Where the pairs came from and how they were split, saved with the run so
/// `--resume` rebuilds the same sets.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PairSource {
    pairs: PathBuf,
    src_col: usize,
    tgt_col: usize,
    reverse: bool,
    valid_fraction: f64,
    test_fraction: f64,
    split_seed: u64,
    max_tokens: usize,
}

/// What trainer_state.json holds.
#[derive(Serialize, Deserialize)]
struct SavedRun {
    trainer: Seq2SeqTrainerState,
    data: PairSource,
}

pub fn run(args: TrainArgs) -> Result<()> {
    crate::commands::set_threads(args.threads)?;
    let (mut trainer, tokenizers, data, run_dir, valid) = match &args.resume {
        Some(dir) => resume(&args, dir)?,
        None => start(&args)?,
    };
    eprintln!("{}", describe(&trainer, &tokenizers, &data));
    eprintln!("run folder: {}", run_dir.display());
    install_interrupt_handler();
    let bleu_pairs: Vec<Pair> = valid.iter().take(args.val_bleu).cloned().collect();
    let mut observer = CliObserver {
        progress: Progress::new(),
        run_dir: run_dir.clone(),
        tokenizers: &tokenizers,
        data,
        curves: Curves::from_metrics(&run_dir.join(METRICS_FILE)),
        bleu_pairs,
    };
    let result = trainer.run(&mut observer);
    observer.progress.finish();
    let reason = result.map_err(|e| crate::commands::training_failed(e, &run_dir))?;
    let s = &trainer.state;
    eprintln!(
        "done ({}): {} steps, {} epochs, {:.0}s",
        reason.describe(),
        s.step,
        s.epoch,
        s.elapsed_secs
    );
    if let Some(best) = s.best_val_loss {
        eprintln!(
            "best validation loss {best:.4} nats/token (perplexity {:.2}); saved in {}",
            best.exp(),
            run_dir.join(BEST_DIR).display()
        );
    }
    if reason == StopReason::Interrupted {
        eprintln!(
            "continue with: recurrent seq2seq train --resume {}",
            run_dir.display()
        );
    }
    show_examples(&trainer.model, &tokenizers, &valid)?;
    eprintln!(
        "measure it on the held-out test pairs with: recurrent seq2seq eval {} --pairs {}",
        run_dir.display(),
        run_dir.join("test.tsv").display()
    );
    Ok(())
}

fn describe(t: &Seq2SeqTrainer, tokenizers: &PairTokenizers, data: &PairSource) -> String {
    let c = &t.model.config;
    let s = &t.state.config;
    format!(
        "training a {}x{} {} encoder-decoder{} with {} attention (embed {}, {} parameters) on {}\n\
         {} training pairs, {} validation pairs; {} tokenizer, vocabularies {} (source) and {} (target)\n\
         batch {}, {} batches per epoch, optimizer {} lr {}, threads: {}",
        c.layers,
        c.hidden,
        c.cell,
        if c.bidirectional { " (bidirectional encoder)" } else { "" },
        c.attention.name(),
        c.embed,
        human(t.model.num_params() as f64),
        data.pairs.display(),
        t.train_pairs(),
        t.val_pairs().len(),
        tokenizers.source.kind(),
        c.src_vocab,
        c.tgt_vocab,
        s.batch,
        t.batches_per_epoch(),
        s.optimizer.kind,
        s.lr,
        threads::threads()
    )
}

/// Reads and splits the pairs as `data` says.
fn read_split(data: &PairSource) -> Result<PairSplit> {
    let columns = PairColumns {
        src: data.src_col,
        tgt: data.tgt_col,
        reverse: data.reverse,
    };
    let pairs = read_pairs(&data.pairs, &columns)?;
    let fractions = SplitFractions {
        valid: data.valid_fraction,
        test: data.test_fraction,
    };
    Ok(split_pairs(pairs, fractions, data.split_seed)?)
}

/// Encodes pairs; with `max_tokens`, leaves out those longer on either side
/// (returning how many were left out).
fn encode(
    tokenizers: &PairTokenizers,
    pairs: &[Pair],
    max_tokens: Option<usize>,
    what: &str,
) -> Result<(Vec<EncodedPair>, usize)> {
    let mut out = Vec::with_capacity(pairs.len());
    let mut dropped = 0;
    for (i, (s, t)) in pairs.iter().enumerate() {
        let src = tokenizers
            .encode_source(s)
            .with_context(|| format!("{what} pair {}: source", i + 1))?;
        let tgt = tokenizers
            .encode_target(t)
            .with_context(|| format!("{what} pair {}: target", i + 1))?;
        let too_long = max_tokens.is_some_and(|m| src.len() > m || tgt.len() > m + 2);
        if src.is_empty() || too_long {
            dropped += 1;
            continue;
        }
        out.push(EncodedPair { src, tgt });
    }
    Ok((out, dropped))
}

type Started = (
    Seq2SeqTrainer,
    PairTokenizers,
    PairSource,
    PathBuf,
    Vec<Pair>,
);

fn start(args: &TrainArgs) -> Result<Started> {
    let pairs = args.pairs.as_deref().expect("clap requires --pairs");
    let data = PairSource {
        pairs: absolute(pairs),
        src_col: args.columns.src_col,
        tgt_col: args.columns.tgt_col,
        reverse: args.columns.reverse,
        valid_fraction: args.valid_fraction,
        test_fraction: args.test_fraction,
        split_seed: args.split_seed,
        max_tokens: args.max_tokens,
    };
    check_args(args)?;
    let super::PairFormat::Tsv = args.columns.format; // the one layout read_split knows
    let split = read_split(&data)?;
    if split.train.is_empty() {
        bail!("no training pairs are left after holding out validation and test pairs");
    }
    let defaults = TokenizerOptions::default();
    let vocab_size = match (args.vocab_size, args.tokenizer) {
        (None, TokenizerKind::Bpe) => Some(DEFAULT_BPE_VOCAB),
        (v, _) => v,
    };
    let options = TokenizerOptions {
        vocab_size,
        min_count: args.min_count.unwrap_or(defaults.min_count),
        word_segmentation: args.word_segmentation.unwrap_or(defaults.word_segmentation),
    };
    let tokenizers = PairTokenizers::build(
        args.tokenizer,
        &options,
        &split.train,
        &[&split.valid, &split.test],
        args.shared_vocab,
    )?;
    let (train, dropped) = encode(&tokenizers, &split.train, Some(args.max_tokens), "training")?;
    if dropped > 0 {
        eprintln!(
            "left out {dropped} training pair(s) with a blank side or more than {} tokens (--max-tokens)",
            args.max_tokens
        );
    }
    if train.is_empty() {
        bail!("no training pairs are left (see --max-tokens)");
    }
    let (val, _) = encode(&tokenizers, &split.valid, None, "validation")?;
    let config = Seq2SeqConfig {
        cell: args.cell,
        src_vocab: tokenizers.source_vocab_size(),
        tgt_vocab: tokenizers.target_vocab_size(),
        embed: args.embed,
        hidden: args.hidden,
        layers: args.layers,
        bidirectional: args.bidirectional,
        attention: args.attention,
        input_feeding: !args.no_input_feeding,
        bridge: args.bridge,
        dropout: args.dropout,
        tie: args.tie,
        share_embeddings: args.share_embeddings,
    };
    let model = Seq2Seq::new(config, &mut Rng::new(args.seed))?;
    let mut optimizer = OptimizerConfig::new(args.optimizer);
    if let Some(wd) = args.weight_decay {
        optimizer.weight_decay = wd;
    }
    let batches = train.len().div_ceil(args.batch) as u64;
    let no_limit = args.epochs.is_none() && args.steps.is_none() && args.time.is_none();
    let epochs = if no_limit { Some(10) } else { args.epochs };
    let total_steps = args.steps.or(epochs.map(|e| e * batches));
    let schedule = Schedule::parse(&args.schedule, total_steps)
        .map_err(|e| anyhow::anyhow!("--schedule: {e}"))?;
    let config = Seq2SeqTrainConfig {
        batch: args.batch,
        optimizer,
        lr: args.lr,
        clip: args.clip,
        schedule,
        epochs,
        steps: args.steps,
        time_secs: args.time,
        eval_every: args.eval_every.unwrap_or(0),
        patience: args.patience,
        seed: args.seed,
        teacher_forcing: args.teacher_forcing,
        label_smoothing: args.label_smoothing,
    };
    let trainer = Seq2SeqTrainer::new(model, config, train, val)?;
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
        None => fresh_run_dir(Some(pairs)),
    };
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create the run folder {}", run_dir.display()))?;
    write_tsv(&run_dir.join("valid.tsv"), &split.valid)?;
    write_tsv(&run_dir.join("test.tsv"), &split.test)?;
    Ok((trainer, tokenizers, data, run_dir, split.valid))
}

fn check_args(args: &TrainArgs) -> Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let (v, t) = (args.valid_fraction, args.test_fraction);
    let unit = |f: f64| (0.0..=1.0).contains(&f);
    if !(unit(v) && unit(t) && v + t < 1.0) {
        bail!(
            "--valid-fraction ({v}) and --test-fraction ({t}) must each be in [0, 1] and leave \
             some pairs for training"
        );
    }
    if args.max_tokens == 0 {
        bail!("--max-tokens must be at least 1");
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
    if !(0.0..=1.0).contains(&args.teacher_forcing) {
        bail!(
            "--teacher-forcing must be in [0, 1], got {}",
            args.teacher_forcing
        );
    }
    if !(0.0..1.0).contains(&args.label_smoothing) {
        bail!(
            "--label-smoothing must be in [0, 1), got {}",
            args.label_smoothing
        );
    }
    Ok(())
}

/// Held-out pairs as `source<TAB>target` lines, for `seq2seq eval --pairs`.
fn write_tsv(path: &Path, pairs: &[Pair]) -> Result<()> {
    let text: String = pairs.iter().map(|(s, t)| format!("{s}\t{t}\n")).collect();
    atomic_write(path, text.as_bytes())?;
    Ok(())
}

fn resume(args: &TrainArgs, dir: &Path) -> Result<Started> {
    let last = dir.join(LAST_DIR);
    if !last.exists() && !dir.join(format!("{LAST_DIR}.old")).exists() {
        bail!(
            "--resume {}: not a seq2seq run folder (it has no {LAST_DIR}/ checkpoint){}",
            dir.display(),
            if dir.join(CONFIG_FILE).exists() {
                "; give the --out folder of an earlier `recurrent seq2seq train`"
            } else {
                ""
            }
        );
    }
    let saved = ckpt::load(&last)?;
    let Some(state) = saved.resume else {
        bail!(
            "{} has no optimizer and trainer state, so it cannot be resumed",
            last.display()
        );
    };
    let run: SavedRun = serde_json::from_value(state.trainer_state).with_context(|| {
        format!(
            "{}/trainer_state.json is not a seq2seq trainer state of this version",
            last.display()
        )
    })?;
    let mut data = run.data;
    if let Some(p) = &args.pairs {
        data.pairs = absolute(p);
    }
    let split = read_split(&data)?;
    let tokenizers = saved.tokenizers;
    let (train, _) = encode(&tokenizers, &split.train, Some(data.max_tokens), "training")?;
    let (val, _) = encode(&tokenizers, &split.valid, None, "validation")?;
    let mut trainer_state = run.trainer;
    if args.epochs.is_some() || args.steps.is_some() || args.time.is_some() {
        let c = &mut trainer_state.config;
        (c.epochs, c.steps, c.time_secs) = (args.epochs, args.steps, args.time);
    }
    let trainer = Seq2SeqTrainer::resume(saved.model, &state.optimizer, trainer_state, train, val)?;
    eprintln!(
        "resuming {} at step {} (epoch {})",
        dir.display(),
        trainer.state.step,
        trainer.state.epoch
    );
    Ok((trainer, tokenizers, data, dir.to_path_buf(), split.valid))
}

/// Greedy translations of a few validation sources, next to their references.
fn show_examples(model: &Seq2Seq, tokenizers: &PairTokenizers, valid: &[Pair]) -> Result<()> {
    let shown: Vec<&Pair> = valid.iter().take(5).collect();
    if shown.is_empty() {
        return Ok(());
    }
    let sources: Vec<String> = shown.iter().map(|p| p.0.clone()).collect();
    let out = translate(model, tokenizers, &sources, &DecodeArgs::greedy())?;
    eprintln!("--- validation examples (greedy) ---");
    for (p, t) in shown.iter().zip(out) {
        eprintln!(
            "source:    {}\nreference: {}\noutput:    {}\n",
            p.0, p.1, t.text
        );
    }
    Ok(())
}

/// Prints progress and writes metrics and checkpoints into the run folder.
struct CliObserver<'a> {
    progress: Progress,
    run_dir: PathBuf,
    tokenizers: &'a PairTokenizers,
    data: PairSource,
    curves: Curves,
    /// Validation pairs whose greedy BLEU is reported at each validation.
    bleu_pairs: Vec<Pair>,
}

impl CliObserver<'_> {
    fn metric(&self, value: serde_json::Value) {
        append_metric(&self.progress, &self.run_dir, &value);
    }

    /// Greedy BLEU of the model on `bleu_pairs`, or None without any.
    fn bleu(&self, model: &Seq2Seq) -> Option<f64> {
        if self.bleu_pairs.is_empty() {
            return None;
        }
        let sources: Vec<String> = self.bleu_pairs.iter().map(|p| p.0.clone()).collect();
        let out = translate(model, self.tokenizers, &sources, &DecodeArgs::greedy()).ok()?;
        let hyps: Vec<String> = out.into_iter().map(|t| t.text).collect();
        let refs: Vec<&str> = self.bleu_pairs.iter().map(|p| p.1.as_str()).collect();
        Some(corpus_bleu(&hyps, &refs).ok()?.score)
    }
}

impl Seq2SeqObserver for CliObserver<'_> {
    fn should_stop(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }

    fn on_step(&mut self, t: &Seq2SeqTrainer, r: &Seq2SeqStepReport) {
        self.progress
            .step(r.step, r.epoch, r.loss, r.tokens, r.progress);
        self.curves.train(r.step, r.loss);
        self.metric(json!({
            "kind": "train", "step": r.step, "epoch": r.epoch, "loss": r.loss,
            "lr": short_f32(r.lr), "grad_norm": r.grad_norm, "elapsed": t.state.elapsed_secs,
        }));
    }

    fn on_eval(&mut self, t: &Seq2SeqTrainer, r: &Seq2SeqEvalReport, best: bool) {
        let s = &t.state;
        self.curves.val(s.step, r.loss);
        if let Err(e) = self.curves.write(&self.run_dir) {
            self.progress
                .println(&format!("warning: cannot write the loss curve: {e}"));
        }
        let bleu = self.bleu(&t.model);
        self.progress.println(&format!(
            "step {} epoch {}: validation loss {:.4} (perplexity {:.2}, accuracy {:.1}%){}{}",
            s.step,
            s.epoch,
            r.loss,
            r.perplexity(),
            100.0 * r.accuracy,
            bleu.map_or(String::new(), |b| format!(
                ", greedy BLEU {b:.2} on {} pairs",
                self.bleu_pairs.len()
            )),
            if best { " best" } else { "" }
        ));
        self.metric(json!({
            "kind": "val", "step": s.step, "epoch": s.epoch, "loss": r.loss,
            "perplexity": r.perplexity(), "accuracy": r.accuracy, "bleu": bleu,
            "elapsed": s.elapsed_secs,
        }));
    }

    fn save(&mut self, t: &Seq2SeqTrainer, slot: Slot) -> Result<(), String> {
        let dir = slot_dir(&self.run_dir, slot);
        let run = SavedRun {
            trainer: t.state.clone(),
            data: self.data.clone(),
        };
        let resume = ResumeState {
            optimizer: t.state_tensors(),
            trainer_state: serde_json::to_value(&run).map_err(|e| e.to_string())?,
        };
        ckpt::save(&dir, &t.model, self.tokenizers, Some(&resume)).map_err(|e| e.to_string())
    }
}
