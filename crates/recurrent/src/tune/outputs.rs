//! A study's results: the ranked table (CSV), a JSON shaped like
//! scikit-learn's `cv_results_`, a Markdown summary, and the best trial kept
//! as a normal run folder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value as Json};

use super::asha::Job;
use super::folds::mean_std;
use super::space::Params;
use super::study::{trial_dir, StudyOptions, TrialState};
use super::{Result, TuneError};

/// Where a trial stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// It trained for the full budget.
    Complete,
    /// Successive halving stopped it after this rung.
    Pruned {
        /// The last rung it finished.
        rung: usize,
    },
    /// It has more to train (the study was stopped, or it waits its turn).
    Running,
    /// Its training failed.
    Failed {
        /// Why.
        message: String,
    },
}

impl Status {
    /// One word: complete, pruned, running or failed.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Pruned { .. } => "pruned",
            Status::Running => "running",
            Status::Failed { .. } => "failed",
        }
    }
}

/// One trial in the results table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// 1 for the best trial.
    pub rank: usize,
    /// The trial's number.
    pub trial: usize,
    /// Its configuration.
    pub params: Params,
    /// Where it stands.
    pub status: Status,
    /// The highest rung it finished, if any.
    pub rung: Option<usize>,
    /// Each fold's validation loss at that rung (nats per token).
    pub losses: Vec<f64>,
    /// Their mean.
    pub mean_loss: f64,
    /// Their standard deviation (0 with one split).
    pub std_loss: f64,
    /// Tokens trained per fold.
    pub tokens: u64,
    /// Seconds trained, all folds together.
    pub secs: f64,
}

impl Row {
    /// Mean validation bits per token (per character with characters).
    pub fn bits_per_token(&self) -> f64 {
        self.mean_loss / std::f64::consts::LN_2
    }

    /// Mean validation perplexity.
    pub fn perplexity(&self) -> f64 {
        self.mean_loss.exp()
    }
}

/// Every trial, ranked: trials that went further first, then by mean
/// validation loss; trials without a result, then failed ones, last.
pub(crate) fn rows(options: &StudyOptions, trials: &[TrialState], pending: &[Job]) -> Vec<Row> {
    let top = options.rungs().top();
    let mut rows: Vec<Row> = trials
        .iter()
        .enumerate()
        .map(|(trial, t)| {
            let last = t.rungs.last();
            let rung = last.map(|_| t.rungs.len() - 1);
            let status = match (&t.failed, rung) {
                (Some(message), _) => Status::Failed {
                    message: message.clone(),
                },
                (None, Some(r)) if r == top => Status::Complete,
                (None, Some(r)) if !pending.iter().any(|j| j.trial == trial) && t.target == r => {
                    Status::Pruned { rung: r }
                }
                _ => Status::Running,
            };
            let losses = last.map_or_else(Vec::new, |r| r.losses.clone());
            let (mean_loss, std_loss) = mean_std(&losses);
            Row {
                rank: 0,
                trial,
                params: t.params.clone(),
                status,
                rung,
                losses,
                mean_loss,
                std_loss,
                tokens: last.map_or(0, |r| r.tokens),
                secs: last.map_or(0.0, |r| r.secs),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        let key = |r: &Row| {
            (
                matches!(r.status, Status::Failed { .. }),
                r.rung.is_none(),
                std::cmp::Reverse(r.rung),
            )
        };
        key(a)
            .cmp(&key(b))
            .then(a.mean_loss.total_cmp(&b.mean_loss))
            .then(a.trial.cmp(&b.trial))
    });
    for (i, r) in rows.iter_mut().enumerate() {
        r.rank = i + 1;
    }
    rows
}

/// Writes `results.csv`, `results.json` and `summary.md` into the study folder.
pub(crate) fn write(dir: &Path, options: &StudyOptions, rows: &[Row]) -> Result<Vec<PathBuf>> {
    let files = [
        ("results.csv", csv(options, rows)),
        (
            "results.json",
            serde_json::to_string_pretty(&cv_results(options, rows)).expect("JSON") + "\n",
        ),
        ("summary.md", markdown(options, rows)),
        ("search.svg", super::plot::svg(dir, options, rows)),
    ];
    let mut written = Vec::new();
    for (name, body) in files {
        let path = dir.join(name);
        recurrent_checkpoint::atomic_write(&path, body.as_bytes()).map_err(|e| TuneError::Io {
            action: "write",
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        written.push(path);
    }
    Ok(written)
}

fn param_names(options: &StudyOptions) -> Vec<String> {
    options
        .space
        .params
        .iter()
        .map(|p| p.name.clone())
        .collect()
}

fn folds(options: &StudyOptions) -> usize {
    options.validation.runs()
}

/// A CSV field, quoted when it needs to be.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn number(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6}")
    } else {
        String::new()
    }
}

fn csv(options: &StudyOptions, rows: &[Row]) -> String {
    let names = param_names(options);
    let k = folds(options);
    let mut header = vec![
        "rank".to_string(),
        "trial".into(),
        "status".into(),
        "pruned_at_rung".into(),
    ];
    header.extend(names.iter().cloned());
    header.extend(
        [
            "mean_val_loss",
            "std_val_loss",
            "bits_per_token",
            "perplexity",
        ]
        .map(String::from),
    );
    header.extend((0..k).map(|i| format!("split{i}_val_loss")));
    header.extend(["tokens", "seconds"].map(String::from));
    let mut out = header.join(",") + "\n";
    for r in rows {
        let mut cells = vec![
            r.rank.to_string(),
            r.trial.to_string(),
            r.status.name().to_string(),
            match r.status {
                Status::Pruned { rung } => rung.to_string(),
                _ => String::new(),
            },
        ];
        cells.extend(
            names
                .iter()
                .map(|n| field(&r.params.get(n).map_or(String::new(), |v| v.to_string()))),
        );
        cells.extend([
            number(r.mean_loss),
            number(r.std_loss),
            number(r.bits_per_token()),
            number(r.perplexity()),
        ]);
        cells.extend((0..k).map(|i| r.losses.get(i).map_or(String::new(), |&x| number(x))));
        cells.extend([r.tokens.to_string(), format!("{:.1}", r.secs)]);
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// Columns as scikit-learn's `cv_results_`: one array per key, one entry
/// per trial in trial order.
fn cv_results(options: &StudyOptions, rows: &[Row]) -> Json {
    let mut by_trial: Vec<&Row> = rows.iter().collect();
    by_trial.sort_by_key(|r| r.trial);
    let finite = |x: f64| if x.is_finite() { json!(x) } else { Json::Null };
    let column = |f: &dyn Fn(&Row) -> Json| Json::Array(by_trial.iter().map(|r| f(r)).collect());
    let mut out = Map::new();
    out.insert("trial".into(), column(&|r| json!(r.trial)));
    out.insert("params".into(), column(&|r| json!(r.params)));
    for name in param_names(options) {
        out.insert(
            format!("param_{name}"),
            column(&|r| r.params.get(&name).map_or(Json::Null, |v| json!(v))),
        );
    }
    for i in 0..folds(options) {
        out.insert(
            format!("split{i}_val_loss"),
            column(&|r| r.losses.get(i).map_or(Json::Null, |&x| finite(x))),
        );
    }
    out.insert("mean_val_loss".into(), column(&|r| finite(r.mean_loss)));
    out.insert("std_val_loss".into(), column(&|r| finite(r.std_loss)));
    out.insert("rank_val_loss".into(), column(&|r| json!(r.rank)));
    out.insert(
        "bits_per_token".into(),
        column(&|r| finite(r.bits_per_token())),
    );
    out.insert("perplexity".into(), column(&|r| finite(r.perplexity())));
    out.insert("tokens".into(), column(&|r| json!(r.tokens)));
    out.insert("seconds".into(), column(&|r| json!(r.secs)));
    out.insert("status".into(), column(&|r| json!(r.status.name())));
    out.insert("rung".into(), column(&|r| json!(r.rung)));
    out.insert(
        "pruned_at_rung".into(),
        column(&|r| match r.status {
            Status::Pruned { rung } => json!(rung),
            _ => Json::Null,
        }),
    );
    out.insert(
        "error".into(),
        column(&|r| match &r.status {
            Status::Failed { message } => json!(message),
            _ => Json::Null,
        }),
    );
    out.insert("rung_budgets".into(), json!(options.rungs().budgets));
    Json::Object(out)
}

/// The flags of `recurrent train` that give a configuration.
pub fn train_flags(params: &Params) -> String {
    params
        .iter()
        .map(|(name, value)| {
            let flag = format!("--{}", name.replace('_', "-"));
            match value {
                super::Value::Bool(true) => flag,
                super::Value::Bool(false) => String::new(),
                v => format!("{flag} {v}"),
            }
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn markdown(options: &StudyOptions, rows: &[Row]) -> String {
    let names = param_names(options);
    let unit = match options.tokenizer {
        recurrent_text::TokenizerKind::Char => "bits/char",
        recurrent_text::TokenizerKind::Byte => "bits/byte",
        _ => "bits/token",
    };
    let mut s = String::from("# Hyper-parameter search\n\n");
    let validation = match &options.validation {
        super::Validation::HeldOut { fraction } => format!("the last {fraction} of the input"),
        super::Validation::File { path } => path.display().to_string(),
        super::Validation::Folds { k } => {
            format!("{k}-fold cross-validation over contiguous blocks")
        }
    };
    let budget = match options.budget {
        super::Budget::Tokens => "tokens",
        super::Budget::Seconds => "seconds",
    };
    let _ = writeln!(s, "- input: {}", options.input.display());
    let _ = writeln!(s, "- sampler: {:?}, seed {}", options.sampler, options.seed);
    let _ = writeln!(s, "- validation: {validation}");
    let _ = writeln!(
        s,
        "- budget per trial: {} {budget}; rungs: {:?}",
        options.max_budget,
        options.rungs().budgets
    );
    let _ = writeln!(
        s,
        "- trials: {} ({} complete, {} pruned, {} running, {} failed)\n",
        rows.len(),
        rows.iter().filter(|r| r.status == Status::Complete).count(),
        rows.iter()
            .filter(|r| matches!(r.status, Status::Pruned { .. }))
            .count(),
        rows.iter().filter(|r| r.status == Status::Running).count(),
        rows.iter()
            .filter(|r| matches!(r.status, Status::Failed { .. }))
            .count(),
    );
    if let Some(best) = rows.first().filter(|r| r.rung.is_some()) {
        let _ = writeln!(
            s,
            "Best: trial {}, validation loss {:.4} ± {:.4} ({:.4} {unit}), kept in `best/`.\n\n    recurrent train {}\n",
            best.trial,
            best.mean_loss,
            best.std_loss,
            best.bits_per_token(),
            train_flags(&best.params)
        );
    }
    let _ = write!(s, "| rank | trial | status |");
    for n in &names {
        let _ = write!(s, " {n} |");
    }
    let _ = writeln!(s, " val loss | ± | {unit} | tokens | seconds |");
    let _ = writeln!(s, "|{}", "---|".repeat(names.len() + 8));
    for r in rows {
        let status = match r.status {
            Status::Pruned { rung } => format!("pruned at rung {rung}"),
            ref st => st.name().to_string(),
        };
        let _ = write!(s, "| {} | {} | {status} |", r.rank, r.trial);
        for n in &names {
            let _ = write!(
                s,
                " {} |",
                r.params.get(n).map_or(String::new(), |v| v.to_string())
            );
        }
        let _ = writeln!(
            s,
            " {} | {} | {} | {} | {:.0} |",
            number4(r.mean_loss),
            number4(r.std_loss),
            number4(r.bits_per_token()),
            r.tokens,
            r.secs
        );
    }
    s
}

fn number4(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        "-".into()
    }
}

/// Copies the best trial's run folder (its best fold) to `best/`, replacing
/// an earlier copy.
pub(crate) fn keep_best(
    dir: &Path,
    options: &StudyOptions,
    rows: &[Row],
) -> Result<Option<PathBuf>> {
    let Some(best) = rows.first().filter(|r| r.rung.is_some()) else {
        return Ok(None);
    };
    let fold = best
        .losses
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    let from = trial_dir(dir, options, best.trial, fold);
    let to = dir.join("best");
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| TuneError::Io {
            action,
            path,
            source,
        }
    };
    if to.exists() {
        std::fs::remove_dir_all(&to).map_err(io("remove", &to))?;
    }
    copy_dir(&from, &to).map_err(io("copy the best trial to", &to))?;
    Ok(Some(to))
}

/// Removes the `last/` checkpoint (weights, optimizer state) of every trial
/// that is not training and not the best, keeping its `best/` and metrics:
/// a study of many trials would otherwise fill the disk. A pruned trial
/// promoted later trains again from the start, which gives the same weights
/// as resuming it would (training is deterministic for a seed).
pub(crate) fn drop_checkpoints(dir: &Path, options: &StudyOptions, rows: &[Row]) -> Result<()> {
    for row in rows
        .iter()
        .filter(|r| r.rank != 1 && r.status != Status::Running)
    {
        for fold in 0..folds(options) {
            let last = trial_dir(dir, options, row.trial, fold)
                .join(recurrent_checkpoint::layout::LAST_DIR);
            if last.is_dir() {
                std::fs::remove_dir_all(&last).map_err(|source| TuneError::Io {
                    action: "remove",
                    path: last.clone(),
                    source,
                })?;
            }
        }
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == recurrent_checkpoint::layout::LOCK_FILE {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
