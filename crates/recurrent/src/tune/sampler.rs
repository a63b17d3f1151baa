//! Samplers: which configuration a study tries next.
//!
//! Every draw of trial `n` comes from a generator seeded by the study's seed
//! and `n`, so a study is reproducible, and a resumed study draws what the
//! uninterrupted one would have drawn.

use recurrent_kernels::Rng;
use serde::{Deserialize, Serialize};

use super::space::{Domain, Params, Space, Value};
use super::tpe;
use super::TuneError;

/// How configurations are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    /// Every configuration of the grid, in order.
    Grid,
    /// Each parameter drawn independently and uniformly (on its scale).
    Random,
    /// The tree-structured Parzen estimator (Bergstra et al. 2011, Optuna's
    /// default) after `startup` random trials.
    Tpe,
}

impl std::str::FromStr for SamplerKind {
    type Err = TuneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "grid" => Ok(SamplerKind::Grid),
            "random" => Ok(SamplerKind::Random),
            "tpe" => Ok(SamplerKind::Tpe),
            _ => Err(TuneError::BadSpec {
                name: "sampler".into(),
                spec: s.to_string(),
                expected: "grid, random or tpe".into(),
            }),
        }
    }
}

/// A sampler over a space.
#[derive(Clone, Debug)]
pub struct Sampler {
    kind: SamplerKind,
    space: Space,
    seed: u64,
    /// Random trials before TPE models the results.
    startup: usize,
    grid: Vec<Params>,
}

/// A finished (or partly finished) trial as a sampler sees it: its
/// configuration and a score where lower is better.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The configuration.
    pub params: Params,
    /// Its score (validation loss; trials stopped early sort after).
    pub score: f64,
}

/// Random trials before TPE takes over, unless the study says otherwise (Optuna's 10).
pub const DEFAULT_TPE_STARTUP: usize = 10;

impl Sampler {
    /// A sampler of `kind` over `space`, seeded.
    pub fn new(
        kind: SamplerKind,
        space: Space,
        seed: u64,
        startup: usize,
    ) -> Result<Sampler, TuneError> {
        let grid = match kind {
            SamplerKind::Grid => space.grid()?,
            _ => Vec::new(),
        };
        Ok(Sampler {
            kind,
            space,
            seed,
            startup,
            grid,
        })
    }

    /// How many configurations there are at most (the grid's size).
    pub fn limit(&self) -> Option<usize> {
        (self.kind == SamplerKind::Grid).then_some(self.grid.len())
    }

    /// The configuration of trial `n`, given what is known of the earlier
    /// ones; `None` when a grid is exhausted.
    pub fn suggest(&self, n: usize, history: &[Observation]) -> Option<Params> {
        let mut rng = trial_rng(self.seed, n);
        match self.kind {
            SamplerKind::Grid => self.grid.get(n).cloned(),
            SamplerKind::Random => Some(random(&self.space, &mut rng)),
            SamplerKind::Tpe if history.len() < self.startup.max(1) => {
                Some(random(&self.space, &mut rng))
            }
            SamplerKind::Tpe => Some(tpe::suggest(&self.space, history, &mut rng)),
        }
    }
}

/// The generator of trial `n`'s draws.
fn trial_rng(seed: u64, n: usize) -> Rng {
    Rng::new(
        seed ^ (n as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(17),
    )
}

/// A configuration with every parameter drawn uniformly on its scale.
pub fn random(space: &Space, rng: &mut Rng) -> Params {
    space
        .params
        .iter()
        .map(|p| (p.name.clone(), draw(&p.domain, rng)))
        .collect()
}

/// `x` to four significant digits: finer steps of a hyper-parameter make no
/// difference, and short numbers read better in tables and flags.
pub fn round_sig(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    format!("{x:.3e}").parse().unwrap_or(x)
}

/// One uniform draw from a domain.
pub fn draw(domain: &Domain, rng: &mut Rng) -> Value {
    match domain {
        Domain::Choice { values } => values[rng.below(values.len() as u64) as usize].clone(),
        Domain::Int {
            low,
            high,
            log: false,
            step,
        } => {
            let n = (high - low) / step + 1;
            Value::Int(low + step * rng.below(n as u64) as i64)
        }
        Domain::Int {
            low,
            high,
            log: true,
            ..
        } => {
            // Uniform in log(x) over [low - 0.5, high + 0.5], so every integer
            // gets its share, then rounded.
            let (a, b) = ((*low as f64 - 0.5).max(0.5).ln(), (*high as f64 + 0.5).ln());
            let x = (a + (b - a) * rng.next_f64()).exp().round() as i64;
            Value::Int(x.clamp(*low, *high))
        }
        Domain::Float { low, high, log } => Value::Float(
            round_sig(if *log {
                let (a, b) = (low.ln(), high.ln());
                (a + (b - a) * rng.next_f64()).exp()
            } else {
                low + (high - low) * rng.next_f64()
            })
            .clamp(*low, *high),
        ),
    }
}
