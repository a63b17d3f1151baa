//! `recurrent tune`: search hyper-parameters by training many small runs,
//! validated on held-out text or by K-fold cross-validation.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use recurrent::tune::{
    AshaOptions, Budget, Limits, Params, Row, SamplerKind, Space, Status, Study, StudyOptions,
    StudyProgress, TuneError, Validation, DEFAULT_TPE_STARTUP,
};
use recurrent::TokenizerKind;

use crate::commands::train::INTERRUPTED;
use crate::duration::parse_duration;

/// Arguments of `recurrent tune`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct TuneArgs {
    /// Training text (a file).
    #[arg(long, required_unless_present = "resume")]
    input: Option<PathBuf>,
    /// The study folder: log, trials, results and best/.
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Continue the study in this folder where it stopped.
    #[arg(long, value_name = "STUDY_DIR")]
    resume: Option<PathBuf>,
    /// Search space as TOML: one key per option, e.g. hidden = [128, 256] or
    /// lr = { low = 1e-4, high = 1e-2, log = true }.
    #[arg(long, conflicts_with = "resume")]
    space: Option<PathBuf>,
    /// A parameter to vary, as NAME=SPEC: a list (hidden=128,256,512), an integer or float
    /// range (layers=1..3, lr=1e-4..1e-2:log, seq_len=50..200:step=50) or one value (cell=gru).
    #[arg(long = "param", value_name = "NAME=SPEC", conflicts_with = "resume")]
    params: Vec<String>,
    /// How configurations are chosen: grid, random, or tpe (random for the first
    /// --tpe-startup trials, then a model of the results).
    #[arg(long, default_value = "tpe", conflicts_with = "resume")]
    sampler: SamplerArg,
    /// Random trials before TPE models the results.
    #[arg(long, default_value_t = DEFAULT_TPE_STARTUP, conflicts_with = "resume")]
    tpe_startup: usize,
    /// Trials in the whole study [default: the whole grid; random and tpe: 20 unless --time].
    #[arg(long)]
    trials: Option<usize>,
    /// Time for this invocation (e.g. 30m, 2h); running trials are saved for --resume.
    #[arg(long, value_parser = parse_duration)]
    time: Option<f64>,
    /// Trials trained at once; --threads are split between them.
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    /// Threads in all [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// K-fold cross-validation over K contiguous blocks of the text (never shuffled).
    #[arg(long, value_name = "K", conflicts_with_all = ["val", "resume"])]
    folds: Option<usize>,
    /// Fraction of the input held out for validation, from the end.
    #[arg(long, default_value_t = 0.1, conflicts_with = "resume")]
    val_fraction: f64,
    /// Separate validation text.
    #[arg(long, conflicts_with = "resume")]
    val: Option<PathBuf>,
    /// What a trial's budget counts: tokens (reproducible) or time.
    #[arg(long, default_value = "tokens", conflicts_with = "resume")]
    budget: BudgetArg,
    /// A trial's full budget per fold: tokens (500k, 2M) or a duration (5m)
    /// [default: 1M tokens or 5m].
    #[arg(long, conflicts_with = "resume")]
    max_budget: Option<String>,
    /// Stop poor trials early by asynchronous successive halving (ASHA).
    #[arg(long, conflicts_with = "resume")]
    asha: bool,
    /// ASHA: the first rung's budget [default: the full budget / reduction²].
    #[arg(long, requires = "asha", conflicts_with = "resume")]
    min_budget: Option<String>,
    /// ASHA: each rung is this many times longer, and keeps the best 1/this.
    #[arg(long, default_value_t = 3, conflicts_with = "resume")]
    reduction: usize,
    /// Token level: char, byte, word or bpe.
    #[arg(long, default_value = "char", conflicts_with = "resume")]
    tokenizer: TokenizerKind,
    /// Seed of the sampler and of every trial's training.
    #[arg(long, default_value_t = 42, conflicts_with = "resume")]
    seed: u64,
    /// Write each trial's curves and the trials' hyper-parameters (the HPARAMS tab) here.
    #[arg(long, value_name = "DIR")]
    tensorboard: Option<PathBuf>,
}

/// `--sampler`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum SamplerArg {
    Grid,
    Random,
    Tpe,
}

/// `--budget`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum BudgetArg {
    Tokens,
    Time,
}

/// Runs `recurrent tune`.
pub fn run(args: TuneArgs) -> Result<()> {
    if args.parallel == 0 {
        bail!("--parallel must be at least 1, got 0");
    }
    if args.trials == Some(0) {
        bail!("--trials must be at least 1, got 0");
    }
    let mut study = match &args.resume {
        Some(dir) => Study::open(dir).map_err(tune_error)?,
        None => Study::create(
            args.out.clone().expect("clap requires --out"),
            study_options(&args)?,
        )
        .map_err(tune_error)?,
    };
    crate::commands::install_interrupt_handler();
    let limits = Limits {
        trials: args.trials,
        time_secs: args.time,
        parallel: args.parallel,
        threads: args.threads,
        tensorboard: args.tensorboard.clone(),
    };
    let o = study.options();
    eprintln!(
        "study {}: {:?} sampler over {}; {}",
        study.dir().display(),
        o.sampler,
        o.space
            .params
            .iter()
            .filter(|p| !p.domain.is_fixed())
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        match &o.validation {
            Validation::Folds { k } => format!("{k}-fold cross-validation"),
            Validation::HeldOut { fraction } => format!("validated on the last {fraction}"),
            Validation::File { path } => format!("validated on {}", path.display()),
        }
    );
    let summary = study.run(&limits, &Printer).map_err(tune_error)?;
    print_table(&summary.rows);
    for file in &summary.files {
        eprintln!("wrote {}", file.display());
    }
    if let Some(best) = &summary.best {
        eprintln!(
            "best configuration kept as a run: {} (recurrent sample {0})",
            best.display()
        );
    }
    if !summary.complete {
        eprintln!(
            "the study stopped before its end; continue it with: recurrent tune --resume {}",
            study.dir().display()
        );
    }
    Ok(())
}

fn study_options(args: &TuneArgs) -> Result<StudyOptions> {
    let input = args.input.clone().expect("clap requires --input");
    let mut space = Space::default();
    if let Some(path) = &args.space {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read --space {}: {e}", path.display()))?;
        space = Space::from_toml(&text)
            .map_err(|e| anyhow::anyhow!("--space {}: {e}", path.display()))?;
    }
    space = space
        .merge(Space::from_specs(&args.params).map_err(tune_error)?)
        .map_err(tune_error)?;
    if space.params.is_empty() {
        bail!("give the options to search with --param NAME=SPEC or --space FILE");
    }
    let budget = match args.budget {
        BudgetArg::Tokens => Budget::Tokens,
        BudgetArg::Time => Budget::Seconds,
    };
    let amount = |flag: &str, text: &str| -> Result<f64> {
        match budget {
            Budget::Tokens => parse_count(text).ok_or_else(|| {
                anyhow::anyhow!("{flag} must be a token count such as 500k or 2M, got {text}")
            }),
            Budget::Seconds => parse_duration(text).map_err(|e| anyhow::anyhow!("{flag}: {e}")),
        }
    };
    let max_budget = match &args.max_budget {
        Some(text) => amount("--max-budget", text)?,
        None if budget == Budget::Tokens => 1e6,
        None => 300.0,
    };
    let asha = if args.asha {
        let reduction = args.reduction;
        let min_budget = match &args.min_budget {
            Some(text) => amount("--min-budget", text)?,
            None => max_budget / (reduction.max(1) as f64).powi(2),
        };
        Some(AshaOptions {
            min_budget,
            reduction,
        })
    } else {
        None
    };
    let validation = match (args.folds, &args.val) {
        (Some(k), _) => Validation::Folds { k },
        (None, Some(path)) => Validation::File { path: path.clone() },
        (None, None) => Validation::HeldOut {
            fraction: args.val_fraction,
        },
    };
    Ok(StudyOptions {
        input,
        tokenizer: args.tokenizer,
        validation,
        space,
        sampler: match args.sampler {
            SamplerArg::Grid => SamplerKind::Grid,
            SamplerArg::Random => SamplerKind::Random,
            SamplerArg::Tpe => SamplerKind::Tpe,
        },
        tpe_startup: args.tpe_startup,
        seed: args.seed,
        budget,
        max_budget,
        asha,
    })
}

/// A count with an optional k, M or G suffix: `500k`, `2M`, `1.5e6`.
fn parse_count(text: &str) -> Option<f64> {
    let t = text.trim();
    let (number, scale) = match t.chars().last()? {
        'k' | 'K' => (&t[..t.len() - 1], 1e3),
        'm' | 'M' => (&t[..t.len() - 1], 1e6),
        'g' | 'G' => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    let x: f64 = number.parse().ok()?;
    (x.is_finite() && x > 0.0).then_some(x * scale)
}

/// A study error in the command line's words.
fn tune_error(e: TuneError) -> anyhow::Error {
    match e {
        TuneError::Run(e) => crate::commands::cli_error(e),
        TuneError::InvalidOption {
            field,
            value,
            expected,
        } => {
            let flag = match field {
                "space" => "--param".to_string(),
                f => format!("--{}", f.replace('_', "-")),
            };
            anyhow::anyhow!("{flag} must be {expected}, got {value}")
        }
        TuneError::NoStudy { path } => anyhow::anyhow!(
            "--resume {}: no study there (no {})",
            path.display(),
            recurrent::tune::LOG_FILE
        ),
        TuneError::StudyExists { path } => anyhow::anyhow!(
            "{} already holds a study; use --resume {0} to continue it, or another --out",
            path.display()
        ),
        TuneError::BadSpec { .. }
        | TuneError::UnknownParam { .. }
        | TuneError::Duplicate { .. } => {
            anyhow::anyhow!("--param {e}")
        }
        e => anyhow::Error::new(e),
    }
}

/// Prints each trial as it starts and ends; stops at Ctrl-C.
struct Printer;

impl StudyProgress for Printer {
    fn started(&self, trial: usize, rung: usize, params: &Params) {
        let params: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        eprintln!("trial {trial} (rung {rung}): {}", params.join(" "));
    }

    fn finished(&self, row: &Row) {
        match &row.status {
            Status::Failed { message } => eprintln!("trial {} failed: {message}", row.trial),
            _ => eprintln!(
                "trial {}: val loss {:.4} ± {:.4} ({:.3} bits/token) after {} tokens, {:.0}s",
                row.trial,
                row.mean_loss,
                row.std_loss,
                row.bits_per_token(),
                row.tokens,
                row.secs
            ),
        }
    }

    fn should_stop(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}

fn print_table(rows: &[Row]) {
    println!("rank  trial  status      val loss  ±        bits/token  tokens      configuration");
    for r in rows.iter().take(20) {
        let status = match r.status {
            Status::Pruned { rung } => format!("pruned@{rung}"),
            ref s => s.name().to_string(),
        };
        println!(
            "{:<5} {:<6} {:<11} {:<9} {:<8} {:<11} {:<11} {}",
            r.rank,
            r.trial,
            status,
            fmt(r.mean_loss),
            fmt(r.std_loss),
            fmt(r.bits_per_token()),
            r.tokens,
            recurrent::tune::train_flags(&r.params)
        );
    }
    if rows.len() > 20 {
        println!("... {} more in results.csv", rows.len() - 20);
    }
}

fn fmt(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        "-".into()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_count;

    #[test]
    fn counts_take_suffixes() {
        assert_eq!(parse_count("500k"), Some(5e5));
        assert_eq!(parse_count("2M"), Some(2e6));
        assert_eq!(parse_count("1500"), Some(1500.0));
        for bad in ["", "k", "-5", "0", "x"] {
            assert_eq!(parse_count(bad), None, "{bad}");
        }
    }
}
