//! `recurrent seq2seq train`: read sentence pairs, split them, build the
//! tokenizers and an encoder-decoder, train it, checkpoint it.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use recurrent::seq2seq::{ResumeOptions, TrainOptions, Training};
use recurrent::text::{PairColumns, TokenizerOptions, WordSegmentation};
use recurrent::train::engine::SaveEvery;
use recurrent::train::OnDivergence;
use recurrent::Precision;
use recurrent::{
    AttentionKind, Bridge, CellKind, OptimizerConfig, OptimizerKind, RunFolder, Seq2SeqConfig,
    StopReason, StopRule, Tee, TokenizerKind,
};

use crate::commands::train::{parse_save_every, run_name, with_save_every, INTERRUPTED};
use crate::duration::parse_duration;
use crate::progress::{EvalStyle, ProgressObserver};

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
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    time: Option<f64>,
    /// Validate every N steps (default: every epoch).
    #[arg(long)]
    eval_every: Option<u64>,
    /// Early stopping: stop after this many validations without improvement.
    #[arg(long)]
    patience: Option<u32>,
    /// Also write last/ (for --resume) every N steps, or every DURATION (e.g. 10m), without
    /// validating; best/ stays tied to validations. For this invocation only.
    #[arg(long, value_name = "STEPS|DURATION", value_parser = parse_save_every)]
    save_every: Option<SaveEvery>,
    /// At each validation, greedy-decode this many validation pairs and report their BLEU.
    #[arg(long, default_value_t = 500)]
    val_bleu: usize,
    /// When training diverges (a NaN, or a loss that explodes against its recent history):
    /// stop with an error, or rollback: go back to the last checkpoint's state, halve the
    /// learning rate and go on, at most 3 times [default: stop; with --resume, the run's own].
    #[arg(long, value_name = "POLICY")]
    on_divergence: Option<OnDivergence>,
    /// Run folder (default: runs/NAME, never overwriting).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Random seed for initialization, batch order, dropout and teacher forcing.
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
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Also write TensorBoard event files into this folder (losses, learning rate,
    /// gradient norm, tokens/s, validation loss and BLEU).
    #[arg(long, value_name = "DIR")]
    tensorboard: Option<PathBuf>,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let stop = (args.epochs.is_some() || args.steps.is_some() || args.time.is_some()).then_some(
        StopRule {
            epochs: args.epochs,
            steps: args.steps,
            time_secs: args.time,
        },
    );
    let job = match crate::parallel::join()? {
        Some(job) if !job.is_leader() => return follow(&args, stop, job),
        job => job,
    };
    let mut training = match &args.resume {
        Some(dir) => {
            let folder = RunFolder::open(dir).map_err(|e| match e {
                recurrent::Error::NotARun { .. } => anyhow::anyhow!(
                    "--resume {}: not a seq2seq run folder (it has no last/ checkpoint){}",
                    dir.display(),
                    if dir.join("config.json").exists() {
                        "; give the --out folder of an earlier `recurrent seq2seq train`"
                    } else {
                        ""
                    }
                ),
                e => super::super::cli_error(e),
            })?;
            let folder = with_save_every(folder, args.save_every);
            let options = ResumeOptions {
                pairs: args.pairs.clone(),
                stop,
                on_divergence: args.on_divergence,
                val_bleu: args.val_bleu,
                threads: args.threads,
                precision: args.precision,
            };
            let t = Training::resume(folder, &options).map_err(super::super::cli_error)?;
            let p = &t.trainer().state.progress;
            eprintln!(
                "resuming {} at step {} (epoch {})",
                dir.display(),
                p.step,
                p.epoch
            );
            t
        }
        None => {
            let options = options(&args, stop)?;
            let folder = match &args.out {
                Some(out) => RunFolder::create(out),
                None => {
                    RunFolder::create_fresh(Path::new("runs"), &run_name(args.pairs.as_deref()))
                }
            }
            .map_err(super::super::cli_error)?;
            let folder = with_save_every(folder, args.save_every);
            Training::start(&options, folder).map_err(super::super::cli_error)?
        }
    };
    if let Some(job) = job {
        let ranks = job.ranks();
        training.distribute(job).map_err(super::super::cli_error)?;
        eprintln!(
            "data-parallel: {ranks} ranks share each batch of {} pairs",
            args.batch
        );
    }
    for note in training.notes() {
        eprintln!("{note}");
    }
    eprintln!("{}", training.describe());
    let run_dir = training.folder().path().to_path_buf();
    eprintln!("run folder: {}", run_dir.display());
    super::super::install_interrupt_handler();
    let p = &training.trainer().state.progress;
    let style = EvalStyle::Seq2Seq {
        bleu_pairs: args.val_bleu.min(training.trainer().val_pairs().len()),
    };
    let mut progress = ProgressObserver::new(style, &INTERRUPTED, (p.step, p.epoch));
    let mut board = super::super::tensorboard(args.tensorboard.as_deref())?;
    let result = match board.as_mut() {
        Some(board) => training.run(&mut Tee::new(&mut progress, board)),
        None => training.run(&mut progress),
    };
    progress.finish();
    let outcome = result.map_err(|e| super::super::training_failed(e, &run_dir))?;
    if let Some(board) = &board {
        super::super::report_tensorboard(board, Ok(()));
    }
    eprintln!(
        "done ({}): {} steps, {} epochs, {:.0}s",
        outcome.reason.describe(),
        outcome.steps,
        outcome.epochs,
        outcome.elapsed_secs
    );
    super::super::report_rollbacks(&training.trainer().state.progress);
    if let Some(best) = outcome.best_val_loss {
        eprintln!(
            "best validation loss {best:.4} nats/token (perplexity {:.2}); saved in {}",
            best.exp(),
            training.folder().best_dir().display()
        );
    }
    if outcome.reason == StopReason::Interrupted {
        eprintln!(
            "continue with: recurrent seq2seq train --resume {}",
            run_dir.display()
        );
    }
    let examples = training.examples(5)?;
    if !examples.is_empty() {
        eprintln!("--- validation examples (greedy) ---");
        for (source, reference, output) in examples {
            eprintln!("source:    {source}\nreference: {reference}\noutput:    {output}\n");
        }
    }
    eprintln!(
        "measure it on the held-out test pairs with: recurrent seq2seq eval {} --pairs {}",
        run_dir.display(),
        run_dir.join("test.tsv").display()
    );
    Ok(())
}

/// The library's options from the flags.
fn options(args: &TrainArgs, stop: Option<StopRule>) -> Result<TrainOptions> {
    let pairs = args.pairs.as_deref().expect("clap requires --pairs");
    let super::PairFormat::Tsv = args.columns.format; // the one layout the library reads
    let defaults = TokenizerOptions::default();
    let mut optimizer = OptimizerConfig::new(args.optimizer);
    if let Some(wd) = args.weight_decay {
        optimizer.weight_decay = wd;
    }
    Ok(TrainOptions {
        pairs: pairs.to_path_buf(),
        columns: PairColumns {
            src: args.columns.src_col,
            tgt: args.columns.tgt_col,
            reverse: args.columns.reverse,
        },
        valid_fraction: args.valid_fraction,
        test_fraction: args.test_fraction,
        split_seed: args.split_seed,
        max_tokens: args.max_tokens,
        tokenizer: args.tokenizer,
        tokenizer_options: TokenizerOptions {
            vocab_size: args.vocab_size,
            min_count: args.min_count.unwrap_or(defaults.min_count),
            word_segmentation: args.word_segmentation.unwrap_or(defaults.word_segmentation),
        },
        shared_vocab: args.shared_vocab,
        model: Seq2SeqConfig {
            cell: args.cell,
            src_vocab: 0,
            tgt_vocab: 0,
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
        },
        batch: args.batch,
        optimizer,
        lr: args.lr,
        clip: args.clip,
        schedule: args.schedule.clone(),
        teacher_forcing: args.teacher_forcing,
        label_smoothing: args.label_smoothing,
        stop: stop.unwrap_or_default(),
        eval_every: args.eval_every,
        patience: args.patience,
        val_bleu: args.val_bleu,
        on_divergence: args.on_divergence.unwrap_or_default(),
        seed: args.seed,
        threads: args.threads,
        precision: args.precision.unwrap_or_default(),
    })
}

/// A rank other than 0 of a data-parallel job: the same run, set up the same
/// way, trained quietly; rank 0 writes the folder and prints.
fn follow(
    args: &TrainArgs,
    stop: Option<StopRule>,
    job: Box<dyn recurrent::Collective + Send>,
) -> Result<()> {
    /// Shows nothing.
    struct Quiet;
    impl recurrent::Observer<recurrent::train::seq2seq::Seq2SeqTrainer> for Quiet {}

    let scratch = std::env::temp_dir().join(format!(
        "recurrent-rank{}-{}",
        job.rank(),
        std::process::id()
    ));
    let mut training = match &args.resume {
        // Only read: rank 0 holds the folder.
        Some(dir) => {
            let options = ResumeOptions {
                pairs: args.pairs.clone(),
                stop,
                on_divergence: args.on_divergence,
                val_bleu: args.val_bleu,
                threads: args.threads,
                precision: args.precision,
            };
            Training::resume(RunFolder::at(dir), &options)
        }
        None => Training::start(&options(args, stop)?, RunFolder::at(&scratch)),
    }
    .map_err(super::super::cli_error)?;
    let result = training
        .distribute(job)
        .and_then(|()| training.run(&mut Quiet));
    let _ = std::fs::remove_dir_all(&scratch);
    result.map_err(super::super::cli_error)?;
    Ok(())
}
