//! `recurrent runs`: run folders side by side, as a table to compare them.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, ValueEnum};
use recurrent::{list_runs, ListedModel, RunListing, TokenizerKind};
use serde_json::json;

/// Arguments of `recurrent runs`.
#[derive(Args, Debug)]
pub struct RunsArgs {
    /// Folder of run folders (searched a few levels down), or one run folder.
    #[arg(default_value = "runs")]
    dir: PathBuf,
    /// Order of the rows: best validation loss first, by name, by size, or by
    /// training time.
    #[arg(long, value_enum, default_value = "loss")]
    sort: SortKey,
    /// Print JSON (one object per run) instead of a table.
    #[arg(long)]
    json: bool,
}

/// How `runs` orders its rows.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum SortKey {
    /// Lowest best validation loss first; runs without one last.
    Loss,
    /// By folder.
    Name,
    /// Most parameters first.
    Params,
    /// Longest training first.
    Time,
}

pub fn run(args: RunsArgs) -> Result<()> {
    let mut runs = list_runs(&args.dir).map_err(super::cli_error)?;
    sort(&mut runs, args.sort);
    if args.json {
        let rows: Vec<_> = runs.iter().map(|r| to_json(r, &args.dir)).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if runs.is_empty() {
        println!("no run folders in {}", args.dir.display());
    } else {
        print!("{}", table(&runs, &args.dir));
    }
    Ok(())
}

fn sort(runs: &mut [RunListing], key: SortKey) {
    // Missing figures sort last whatever the direction.
    fn last_if_none<T: PartialOrd>(a: Option<T>, b: Option<T>, descending: bool) -> Ordering {
        match (a, b) {
            (Some(a), Some(b)) => {
                let o = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
                if descending {
                    o.reverse()
                } else {
                    o
                }
            }
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    }
    // Stable: ties keep the listing's order by path; unreadable runs go last.
    let unreadable_last = |a: &RunListing, b: &RunListing| a.model.is_err().cmp(&b.model.is_err());
    match key {
        SortKey::Name => {}
        SortKey::Loss => runs.sort_by(|a, b| {
            unreadable_last(a, b).then(last_if_none(a.best_val_loss(), b.best_val_loss(), false))
        }),
        SortKey::Params => runs
            .sort_by(|a, b| unreadable_last(a, b).then(last_if_none(params(a), params(b), true))),
        SortKey::Time => runs
            .sort_by(|a, b| unreadable_last(a, b).then(last_if_none(seconds(a), seconds(b), true))),
    }
}

fn params(r: &RunListing) -> Option<usize> {
    r.model.as_ref().ok()?.parameters()
}

fn seconds(r: &RunListing) -> Option<f64> {
    Some(r.training.as_ref()?.elapsed_secs)
}

/// The run's folder relative to the listed folder (`.` for the folder itself).
fn name(r: &RunListing, dir: &Path) -> String {
    match r.path.strip_prefix(dir) {
        Ok(p) if p.as_os_str().is_empty() => ".".into(),
        Ok(p) => p.display().to_string(),
        Err(_) => r.path.display().to_string(),
    }
}

/// `lstm 2x128 e64`, `seq2seq gru 1x256 additive`.
fn model(m: &ListedModel) -> String {
    match m {
        ListedModel::Language { config: c, .. } => {
            let mut s = format!("{} {}x{}", c.cell, c.layers, c.widths_label());
            s += &if c.embed == 0 {
                " one-hot".to_string()
            } else {
                format!(" e{}", c.embed)
            };
            if c.tie {
                s += " tied";
            }
            if c.layer_norm {
                s += " ln";
            }
            s
        }
        ListedModel::Seq2Seq { config: c, .. } => {
            format!(
                "seq2seq {} {}x{} {}",
                c.cell, c.layers, c.hidden, c.attention
            )
        }
        ListedModel::Other { format } => format!("({format})"),
    }
}

/// The validation loss in the unit users of the token level compare: bits
/// per character for characters and bytes, perplexity for words and subwords.
fn figure(loss: f64, tokenizer: Option<TokenizerKind>) -> String {
    match tokenizer {
        Some(TokenizerKind::Char) => format!("{:.3} bpc", loss / std::f64::consts::LN_2),
        Some(TokenizerKind::Byte) => format!("{:.3} bits/byte", loss / std::f64::consts::LN_2),
        Some(_) => format!("ppl {:.2}", loss.exp()),
        None => String::new(),
    }
}

/// The training data's file name; a language model that recorded none
/// trained on the built-in corpus.
fn data(r: &RunListing) -> String {
    match (&r.input, &r.model) {
        (Some(path), _) => path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        (None, Ok(ListedModel::Language { .. })) if r.training.is_some() => "built-in".into(),
        (None, _) => String::new(),
    }
}

fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

fn table(runs: &[RunListing], dir: &Path) -> String {
    let header = [
        "run", "model", "params", "tokens", "data", "steps", "time", "best val", "", "status",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    for r in runs {
        let t = r.training.as_ref();
        let (model_text, params_text, tokens) = match &r.model {
            Ok(m) => (
                model(m),
                m.parameters()
                    .map_or(String::new(), |n| recurrent::lm::human(n as f64)),
                m.tokenizer().map_or(String::new(), |k| k.to_string()),
            ),
            Err(_) => ("?".into(), String::new(), String::new()),
        };
        let loss = r.best_val_loss();
        rows.push(vec![
            name(r, dir),
            model_text,
            params_text,
            tokens,
            data(r),
            t.map_or(String::new(), |t| t.step.to_string()),
            t.map_or(String::new(), |t| duration(t.elapsed_secs)),
            loss.map_or("-".into(), |l| format!("{l:.4}")),
            loss.map_or(String::new(), |l| {
                figure(l, r.model.as_ref().ok().and_then(|m| m.tokenizer()))
            }),
            match &r.model {
                Err(problem) => format!("unreadable: {problem}"),
                Ok(_) if r.running => "running".into(),
                Ok(_) => String::new(),
            },
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| format!("{cell:<w$}"))
            .collect();
        out += cells.join("  ").trim_end();
        out += "\n";
    }
    out
}

fn to_json(r: &RunListing, dir: &Path) -> serde_json::Value {
    let t = r.training.as_ref();
    let (model_text, tokenizer, problem) = match &r.model {
        Ok(m) => (Some(model(m)), m.tokenizer().map(|k| k.to_string()), None),
        Err(p) => (None, None, Some(p.clone())),
    };
    json!({
        "run": name(r, dir),
        "path": r.path,
        "model": model_text,
        "parameters": params(r),
        "tokenizer": tokenizer,
        "input": r.input,
        "step": t.map(|t| t.step),
        "epoch": t.map(|t| t.epoch),
        "elapsed_secs": t.map(|t| t.elapsed_secs),
        "batch": t.map(|t| t.batch),
        "seq_len": t.and_then(|t| t.seq_len),
        "optimizer": t.map(|t| t.optimizer.to_string()),
        "lr": t.map(|t| shortest(t.lr)),
        "best_val_loss": r.best_val_loss(),
        "last_val_loss": t.and_then(|t| t.recent_history.last()).map(|e| e.loss),
        "running": r.running,
        "problem": problem,
    })
}

/// An `f32` as the `f64` its shortest decimal names (2e-3, not 0.0020000000949949026).
fn shortest(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}
