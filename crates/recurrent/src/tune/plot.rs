//! The study's picture: its rows and each trial's validation curve (read
//! from the first fold's `metrics.jsonl`) handed to `report::search_svg`.

use std::path::Path;

use recurrent_report::{search_svg, SearchAxis, SearchTrial};

use super::outputs::{Row, Status};
use super::space::{Domain, Value};
use super::study::{trial_dir, StudyOptions};
use crate::lm::TrainOptions;

/// The SVG of the study (`search.svg`).
pub(crate) fn svg(dir: &Path, options: &StudyOptions, rows: &[Row]) -> String {
    let params: Vec<_> = options
        .space
        .params
        .iter()
        .filter(|p| !p.domain.is_fixed())
        .collect();
    let axes: Vec<SearchAxis> = params
        .iter()
        .map(|p| SearchAxis {
            name: p.name.clone(),
            log: matches!(
                p.domain,
                Domain::Int { log: true, .. } | Domain::Float { log: true, .. }
            ),
            categories: match &p.domain {
                Domain::Choice { values } if values.iter().any(|v| v.as_f64().is_none()) => {
                    values.iter().map(Value::to_string).collect()
                }
                _ => Vec::new(),
            },
        })
        .collect();
    let defaults = TrainOptions::default();
    let trials: Vec<SearchTrial> = rows
        .iter()
        .map(|r| {
            let values = params
                .iter()
                .zip(&axes)
                .map(|(p, axis)| match r.params.get(&p.name) {
                    Some(v) if !axis.categories.is_empty() => axis
                        .categories
                        .iter()
                        .position(|c| *c == v.to_string())
                        .map_or(f64::NAN, |i| i as f64),
                    Some(v) => v.as_f64().unwrap_or(f64::NAN),
                    None => f64::NAN,
                })
                .collect();
            let int = |name: &str, default: usize| match r.params.get(name) {
                Some(Value::Int(i)) => *i as f64,
                _ => default as f64,
            };
            let tokens_per_step = int("batch", defaults.batch) * int("seq_len", defaults.seq_len);
            let metrics = trial_dir(dir, options, r.trial, 0).join("metrics.jsonl");
            SearchTrial {
                values,
                loss: r.rung.map(|_| r.mean_loss),
                pruned: matches!(r.status, Status::Pruned { .. }),
                curve: validation_curve(&metrics)
                    .into_iter()
                    .map(|(step, loss)| (step * tokens_per_step, loss))
                    .collect(),
            }
        })
        .collect();
    let title = format!("{} trials, {:?} sampler", rows.len(), options.sampler);
    search_svg(&axes, &trials, &title, "tokens trained (first fold)")
}

/// The (step, loss) of every validation in a run's `metrics.jsonl`; none
/// when it cannot be read.
fn validation_curve(path: &Path) -> Vec<(f64, f64)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["kind"] == "val")
        .filter_map(|v| Some((v["step"].as_f64()?, v["loss"].as_f64()?)))
        .collect()
}
