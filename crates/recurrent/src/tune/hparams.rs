//! A study's trials in TensorBoard's hparams form: the experiment (every
//! parameter of the space and the metrics) in the log directory's root run,
//! and one session per trial under `hparams/trial-NNNN` with its values, its
//! validation loss and bits per token, and its status. Both are rewritten at
//! the end of every invocation, so a resumed study shows each trial once.

use std::path::Path;

use recurrent_report::{
    EventWriter, HParamDomain, HParamInfo, HParamKind, HParamValue, SessionStatus,
};

use super::outputs::{Row, Status};
use super::space::{Domain, Value};
use super::study::StudyOptions;
use super::{Result, TuneError};

/// The metrics the HPARAMS tab shows.
pub const METRICS: [&str; 2] = ["hparams/val_loss", "hparams/bits_per_token"];

/// Writes the experiment and every trial's session under `dir`.
pub(crate) fn write(dir: &Path, options: &StudyOptions, rows: &[Row]) -> Result<()> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| TuneError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    // The root run holds only the experiment: earlier invocations' go.
    for entry in std::fs::read_dir(dir).map_err(io("read", dir))? {
        let path = entry.map_err(io("read", dir))?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_file()
            && name.starts_with("events.out.tfevents.")
            && name.contains(".recurrent.")
        {
            std::fs::remove_file(&path).map_err(io("remove", &path))?;
        }
    }
    let sessions = dir.join("hparams");
    if sessions.exists() {
        std::fs::remove_dir_all(&sessions).map_err(io("remove", &sessions))?;
    }
    let infos: Vec<HParamInfo> = options
        .space
        .params
        .iter()
        .map(|p| info(&p.name, &p.domain))
        .collect();
    let mut root = EventWriter::create(dir).map_err(io("write to", dir))?;
    root.hparams_experiment(&infos, &METRICS)
        .and_then(|()| root.flush())
        .map_err(io("write to", dir))?;
    for row in rows {
        let run = sessions.join(format!("trial-{:04}", row.trial));
        let mut w = EventWriter::create(&run).map_err(io("write to", &run))?;
        let values: Vec<(String, HParamValue)> = row
            .params
            .iter()
            .map(|(k, v)| (k.clone(), value(v)))
            .collect();
        let status = match row.status {
            Status::Complete | Status::Pruned { .. } => SessionStatus::Success,
            Status::Failed { .. } => SessionStatus::Failure,
            Status::Running => SessionStatus::Running,
        };
        let written = w
            .hparams_session_start(&values)
            .and_then(|()| {
                if row.rung.is_some() {
                    w.scalar(METRICS[0], row.tokens, row.mean_loss)?;
                    w.scalar(METRICS[1], row.tokens, row.bits_per_token())?;
                }
                Ok(())
            })
            .and_then(|()| w.hparams_session_end(status))
            .and_then(|()| w.flush());
        written.map_err(io("write to", &run))?;
    }
    Ok(())
}

fn value(v: &Value) -> HParamValue {
    match v {
        Value::Bool(b) => HParamValue::Bool(*b),
        Value::Int(i) => HParamValue::Number(*i as f64),
        Value::Float(x) => HParamValue::Number(*x),
        Value::Text(s) => HParamValue::Text(s.clone()),
    }
}

fn info(name: &str, domain: &Domain) -> HParamInfo {
    let (kind, domain) = match domain {
        Domain::Choice { values } => {
            let kind = match values.first() {
                Some(Value::Text(_)) => HParamKind::Text,
                Some(Value::Bool(_)) => HParamKind::Bool,
                _ => HParamKind::Number,
            };
            (
                kind,
                HParamDomain::Discrete(values.iter().map(value).collect()),
            )
        }
        Domain::Int { low, high, .. } => (
            HParamKind::Number,
            HParamDomain::Interval {
                min: *low as f64,
                max: *high as f64,
            },
        ),
        Domain::Float { low, high, .. } => (
            HParamKind::Number,
            HParamDomain::Interval {
                min: *low,
                max: *high,
            },
        ),
    };
    HParamInfo {
        name: name.to_string(),
        kind,
        domain,
    }
}
