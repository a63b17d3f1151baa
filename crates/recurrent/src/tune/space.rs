//! The search space: which training options a study varies, and over what.
//!
//! A parameter is a list of choices (`hidden=128,256,512`), an integer range
//! (`layers=1..3`, `hidden=64..1024:log`, `seq_len=50..200:step=50`) or a float
//! range (`dropout=0.0..0.5`, `lr=1e-4..1e-2:log`), given on the command line
//! as `name=spec` or in a TOML file (see [`Space::from_toml`]). Names are the
//! fields of [`TrainOptions`] (see [`PARAMETERS`]).

use std::collections::BTreeMap;
use std::fmt;

use recurrent_model::CellKind;
use recurrent_train::optim::OptimizerKind;
use serde::{Deserialize, Serialize};

use super::TuneError;
use crate::lm::{Init, TrainOptions};

/// A parameter's value in one configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A switch (`tie`, `layer_norm`, `variable_bptt`).
    Bool(bool),
    /// A count (`hidden`, `layers`, ...).
    Int(i64),
    /// A real number (`lr`, `dropout`, ...).
    Float(f64),
    /// A name (`cell`, `optimizer`, `schedule`).
    Text(String),
}

impl Value {
    /// The value as a number, for samplers and plots (a switch is 0 or 1).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Int(i) => Some(*i as f64),
            Value::Float(x) => Some(*x),
            Value::Text(_) => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => write!(f, "{s}"),
        }
    }
}

/// One configuration: a value for every parameter of the space, by name.
pub type Params = BTreeMap<String, Value>;

/// What a parameter's values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Whole numbers.
    Int,
    /// Real numbers.
    Float,
    /// Names.
    Text,
    /// true or false.
    Bool,
}

/// The training options a study can vary, and the kind of each.
pub const PARAMETERS: &[(&str, Kind)] = &[
    ("alpha", Kind::Float),
    ("batch", Kind::Int),
    ("beta", Kind::Float),
    ("cell", Kind::Text),
    ("clip", Kind::Float),
    ("dense", Kind::Int),
    ("dropout", Kind::Float),
    ("dropout_embed", Kind::Float),
    ("dropout_hidden", Kind::Float),
    ("dropout_input", Kind::Float),
    ("dropout_output", Kind::Float),
    ("embed", Kind::Int),
    ("eval_every", Kind::Int),
    ("forget_bias", Kind::Float),
    ("hidden", Kind::Int),
    ("last_hidden", Kind::Int),
    ("layer_norm", Kind::Bool),
    ("layers", Kind::Int),
    ("lr", Kind::Float),
    ("momentum", Kind::Float),
    ("optimizer", Kind::Text),
    ("schedule", Kind::Text),
    ("seq_len", Kind::Int),
    ("tie", Kind::Bool),
    ("variable_bptt", Kind::Bool),
    ("weight_decay", Kind::Float),
    ("weight_drop", Kind::Float),
];

/// The kind of the parameter `name`, if a study can vary it.
pub fn kind_of(name: &str) -> Option<Kind> {
    PARAMETERS.iter().find(|(n, _)| *n == name).map(|&(_, k)| k)
}

/// The values one parameter ranges over.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Domain {
    /// One of these values.
    Choice {
        /// The values, in the order given.
        values: Vec<Value>,
    },
    /// An integer in `[low, high]`, a multiple of `step` above `low`.
    Int {
        /// Smallest value.
        low: i64,
        /// Largest value.
        high: i64,
        /// Sample uniformly on a log scale.
        log: bool,
        /// Spacing of the values (1 for every integer).
        step: i64,
    },
    /// A real number in `[low, high]`.
    Float {
        /// Smallest value.
        low: f64,
        /// Largest value.
        high: f64,
        /// Sample uniformly on a log scale.
        log: bool,
    },
}

impl Domain {
    /// Every value, for a grid; `None` for a float range.
    pub fn grid_values(&self) -> Option<Vec<Value>> {
        match self {
            Domain::Choice { values } => Some(values.clone()),
            Domain::Int {
                low, high, step, ..
            } => Some(
                (0..)
                    .map(|i| low + i * step)
                    .take_while(|v| v <= high)
                    .map(Value::Int)
                    .collect(),
            ),
            Domain::Float { .. } => None,
        }
    }

    /// Whether the domain has a single value.
    pub fn is_fixed(&self) -> bool {
        match self {
            Domain::Choice { values } => values.len() == 1,
            Domain::Int { low, high, .. } => low == high,
            Domain::Float { low, high, .. } => low == high,
        }
    }
}

/// A named parameter and its domain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// The training option (a field of [`TrainOptions`]).
    pub name: String,
    /// Its values.
    pub domain: Domain,
}

/// The parameters of a study, sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Space {
    /// The parameters.
    pub params: Vec<Param>,
}

impl Space {
    /// Parses `name=spec` items (the command line's form).
    pub fn from_specs<S: AsRef<str>>(items: &[S]) -> Result<Space, TuneError> {
        let mut space = Space::default();
        for item in items {
            let item = item.as_ref();
            let (name, spec) = item.split_once('=').ok_or_else(|| TuneError::BadSpec {
                name: item.trim().to_string(),
                spec: String::new(),
                expected: "name=values, e.g. hidden=128,256 or lr=1e-4..1e-2:log".into(),
            })?;
            space.add(name.trim(), parse_spec(name.trim(), spec.trim())?)?;
        }
        Ok(space)
    }

    /// Parses a TOML file's text: one key per parameter, whose value is an
    /// array of choices, a table `{ low, high, log, step }`, a single value,
    /// or a string in the command line's form (`"1e-4..1e-2:log"`). The
    /// keys may also sit in a `[space]` table.
    pub fn from_toml(text: &str) -> Result<Space, TuneError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| TuneError::Toml {
            message: e.to_string(),
        })?;
        let table = match table.get("space") {
            Some(toml::Value::Table(inner)) => inner.clone(),
            _ => table,
        };
        let mut space = Space::default();
        for (name, value) in &table {
            space.add(name, domain_from_toml(name, value)?)?;
        }
        Ok(space)
    }

    /// Adds a parameter; a name given twice is an error.
    pub fn add(&mut self, name: &str, domain: Domain) -> Result<(), TuneError> {
        if self.params.iter().any(|p| p.name == name) {
            return Err(TuneError::Duplicate {
                name: name.to_string(),
            });
        }
        let at = self.params.partition_point(|p| p.name.as_str() < name);
        self.params.insert(
            at,
            Param {
                name: name.to_string(),
                domain,
            },
        );
        Ok(())
    }

    /// The other space's parameters added to this one's.
    pub fn merge(mut self, other: Space) -> Result<Space, TuneError> {
        for p in other.params {
            self.add(&p.name, p.domain)?;
        }
        Ok(self)
    }

    /// The parameter named `name`.
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Every configuration of the grid, the last parameter varying fastest
    /// (as scikit-learn's `ParameterGrid`). A float range has no grid.
    pub fn grid(&self) -> Result<Vec<Params>, TuneError> {
        let mut axes = Vec::new();
        for p in &self.params {
            let values = p.domain.grid_values().ok_or_else(|| TuneError::NoGrid {
                name: p.name.clone(),
            })?;
            axes.push((p.name.clone(), values));
        }
        let size: usize = axes.iter().map(|(_, v)| v.len()).product();
        if size > MAX_GRID {
            return Err(TuneError::GridTooLarge {
                size,
                max: MAX_GRID,
            });
        }
        let mut grid = vec![Params::new()];
        for (name, values) in axes {
            grid = grid
                .into_iter()
                .flat_map(|params| {
                    let name = &name;
                    values.iter().map(move |v| {
                        let mut p = params.clone();
                        p.insert(name.clone(), v.clone());
                        p
                    })
                })
                .collect();
        }
        Ok(grid)
    }
}

/// The most configurations a grid may have.
pub const MAX_GRID: usize = 100_000;

/// Parses one parameter's spec: `a,b,c`, `low..high[:log][:step=S]`, or a value.
pub fn parse_spec(name: &str, spec: &str) -> Result<Domain, TuneError> {
    let kind = kind_of(name).ok_or_else(|| unknown(name))?;
    let bad = |expected: &str| TuneError::BadSpec {
        name: name.to_string(),
        spec: spec.to_string(),
        expected: expected.to_string(),
    };
    if spec.is_empty() {
        return Err(bad("a list of values or a range low..high"));
    }
    if let Some((low, rest)) = spec.split_once("..") {
        let mut parts = rest.split(':');
        let high = parts.next().unwrap_or_default();
        let (mut log, mut step) = (false, None);
        for flag in parts {
            match flag.trim() {
                "log" => log = true,
                s if s.starts_with("step=") => step = Some(s["step=".len()..].to_string()),
                _ => return Err(bad("a range low..high with optional :log and :step=S")),
            }
        }
        return match kind {
            Kind::Int => {
                let low = parse_int(name, spec, low)?;
                let high = parse_int(name, spec, high)?;
                let step = step.map_or(Ok(1), |s| parse_int(name, spec, &s))?;
                range_int(name, spec, low, high, log, step)
            }
            Kind::Float => {
                if step.is_some() {
                    return Err(bad("a float range without :step (list the values instead)"));
                }
                let low = parse_float(name, spec, low)?;
                let high = parse_float(name, spec, high)?;
                range_float(name, spec, low, high, log)
            }
            Kind::Text | Kind::Bool => Err(bad("a list of values (it has no range)")),
        };
    }
    let values = spec
        .split(',')
        .map(|v| parse_value(name, kind, v.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Domain::Choice { values })
}

fn unknown(name: &str) -> TuneError {
    TuneError::UnknownParam {
        name: name.to_string(),
        known: PARAMETERS
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn parse_int(name: &str, spec: &str, text: &str) -> Result<i64, TuneError> {
    text.trim().parse().map_err(|_| TuneError::BadSpec {
        name: name.to_string(),
        spec: spec.to_string(),
        expected: format!("whole numbers ({text:?} is not one)"),
    })
}

fn parse_float(name: &str, spec: &str, text: &str) -> Result<f64, TuneError> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| TuneError::BadSpec {
            name: name.to_string(),
            spec: spec.to_string(),
            expected: format!("finite numbers ({text:?} is not one)"),
        })
}

fn range_int(
    name: &str,
    spec: &str,
    low: i64,
    high: i64,
    log: bool,
    step: i64,
) -> Result<Domain, TuneError> {
    let bad = |expected: &str| TuneError::BadSpec {
        name: name.to_string(),
        spec: spec.to_string(),
        expected: expected.to_string(),
    };
    if low > high {
        return Err(bad("a range whose low end is not above its high end"));
    }
    if step < 1 {
        return Err(bad("a step of at least 1"));
    }
    if log && low < 1 {
        return Err(bad("a log range above 0"));
    }
    if log && step != 1 {
        return Err(bad("either :log or :step, not both"));
    }
    Ok(Domain::Int {
        low,
        high,
        log,
        step,
    })
}

fn range_float(
    name: &str,
    spec: &str,
    low: f64,
    high: f64,
    log: bool,
) -> Result<Domain, TuneError> {
    let bad = |expected: &str| TuneError::BadSpec {
        name: name.to_string(),
        spec: spec.to_string(),
        expected: expected.to_string(),
    };
    if low > high {
        return Err(bad("a range whose low end is not above its high end"));
    }
    if log && low <= 0.0 {
        return Err(bad("a log range above 0"));
    }
    Ok(Domain::Float { low, high, log })
}

fn parse_value(name: &str, kind: Kind, text: &str) -> Result<Value, TuneError> {
    let spec = text;
    match kind {
        Kind::Int => parse_int(name, spec, text).map(Value::Int),
        Kind::Float => parse_float(name, spec, text).map(Value::Float),
        Kind::Bool => match text {
            "true" | "yes" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "0" => Ok(Value::Bool(false)),
            _ => Err(TuneError::BadSpec {
                name: name.to_string(),
                spec: spec.to_string(),
                expected: "true or false".into(),
            }),
        },
        Kind::Text => {
            check_text(name, text)?;
            Ok(Value::Text(text.to_string()))
        }
    }
}

/// Names are checked as the space is read, not when a trial starts.
fn check_text(name: &str, text: &str) -> Result<(), TuneError> {
    let ok = match name {
        "cell" => text.parse::<CellKind>().is_ok(),
        "optimizer" => text.parse::<OptimizerKind>().is_ok(),
        "schedule" => recurrent_train::schedule::Schedule::parse(text, Some(1_000_000)).is_ok(),
        _ => !text.is_empty(),
    };
    if ok {
        Ok(())
    } else {
        Err(TuneError::BadSpec {
            name: name.to_string(),
            spec: text.to_string(),
            expected: match name {
                "cell" => "a cell: lstm, gru, rnn-tanh or rnn-relu".into(),
                "optimizer" => "an optimizer: sgd, adam, adamw or rmsprop".into(),
                _ => "a schedule: constant, step:EVERY:GAMMA, cosine[:WARMUP[:MIN_LR]] or plateau[:FACTOR[:PATIENCE]]".into(),
            },
        })
    }
}

fn domain_from_toml(name: &str, value: &toml::Value) -> Result<Domain, TuneError> {
    let kind = kind_of(name).ok_or_else(|| unknown(name))?;
    let spec = value.to_string();
    let one = |v: &toml::Value| -> Result<Value, TuneError> {
        match (kind, v) {
            (Kind::Int, toml::Value::Integer(i)) => Ok(Value::Int(*i)),
            (Kind::Float, toml::Value::Integer(i)) => Ok(Value::Float(*i as f64)),
            (Kind::Float, toml::Value::Float(x)) if x.is_finite() => Ok(Value::Float(*x)),
            (Kind::Bool, toml::Value::Boolean(b)) => Ok(Value::Bool(*b)),
            (Kind::Text, toml::Value::String(s)) => {
                check_text(name, s)?;
                Ok(Value::Text(s.clone()))
            }
            _ => Err(TuneError::BadSpec {
                name: name.to_string(),
                spec: v.to_string(),
                expected: format!("a {} value", kind_name(kind)),
            }),
        }
    };
    match value {
        toml::Value::Array(items) if items.is_empty() => Err(TuneError::BadSpec {
            name: name.to_string(),
            spec,
            expected: "at least one value".into(),
        }),
        toml::Value::Array(items) => Ok(Domain::Choice {
            values: items.iter().map(one).collect::<Result<_, _>>()?,
        }),
        toml::Value::Table(t) => {
            let bad = |expected: &str| TuneError::BadSpec {
                name: name.to_string(),
                spec: spec.clone(),
                expected: expected.to_string(),
            };
            if let Some(key) = t
                .keys()
                .find(|k| !["low", "high", "log", "step"].contains(&k.as_str()))
            {
                return Err(bad(&format!(
                    "a table of low, high, log and step (not {key})"
                )));
            }
            let log = match t.get("log") {
                None => false,
                Some(toml::Value::Boolean(b)) => *b,
                Some(_) => return Err(bad("log = true or false")),
            };
            let (low, high) = match (t.get("low"), t.get("high")) {
                (Some(l), Some(h)) => (l, h),
                _ => return Err(bad("a table with low and high")),
            };
            match kind {
                Kind::Int => {
                    let int = |v: &toml::Value| v.as_integer().ok_or_else(|| bad("whole numbers"));
                    let step = t.get("step").map_or(Ok(1), int)?;
                    range_int(name, &spec, int(low)?, int(high)?, log, step)
                }
                Kind::Float => {
                    if t.contains_key("step") {
                        return Err(bad("a float range without step (list the values instead)"));
                    }
                    let float = |v: &toml::Value| {
                        v.as_float()
                            .or(v.as_integer().map(|i| i as f64))
                            .filter(|x| x.is_finite())
                            .ok_or_else(|| bad("finite numbers"))
                    };
                    range_float(name, &spec, float(low)?, float(high)?, log)
                }
                Kind::Text | Kind::Bool => Err(bad("a list of values (it has no range)")),
            }
        }
        toml::Value::String(s) if kind != Kind::Text => parse_spec(name, s),
        toml::Value::String(s) => parse_spec(name, s),
        v => Ok(Domain::Choice {
            values: vec![one(v)?],
        }),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Int => "whole-number",
        Kind::Float => "numeric",
        Kind::Text => "text",
        Kind::Bool => "true/false",
    }
}

/// `base` with the configuration's values set.
pub fn apply(base: &TrainOptions, params: &Params) -> Result<TrainOptions, TuneError> {
    let mut o = base.clone();
    for (name, value) in params {
        set(&mut o, name, value)?;
    }
    Ok(o)
}

fn set(o: &mut TrainOptions, name: &str, value: &Value) -> Result<(), TuneError> {
    let wrong = || TuneError::BadSpec {
        name: name.to_string(),
        spec: value.to_string(),
        expected: format!("a {} value", kind_of(name).map_or("known", kind_name)),
    };
    let int = || match value {
        Value::Int(i) if *i >= 0 => Ok(*i as usize),
        _ => Err(wrong()),
    };
    let float = || value.as_f64().ok_or_else(wrong);
    let flag = || match value {
        Value::Bool(b) => Ok(*b),
        _ => Err(wrong()),
    };
    let text = || match value {
        Value::Text(s) => Ok(s.as_str()),
        _ => Err(wrong()),
    };
    let Init::Fresh {
        config,
        forget_bias,
    } = &mut o.init
    else {
        return Err(TuneError::FineTuning);
    };
    let m = &mut o.regularizers.model;
    match name {
        "alpha" => m.alpha = float()? as f32,
        "beta" => m.beta = float()? as f32,
        "dropout_embed" => m.dropout_embed = float()? as f32,
        "dropout_hidden" => m.dropout_hidden = float()? as f32,
        "dropout_input" => m.dropout_input = float()? as f32,
        "dropout_output" => m.dropout_output = float()? as f32,
        "weight_drop" => m.weight_drop = float()? as f32,
        "variable_bptt" => o.regularizers.variable_bptt = flag()?,
        "batch" => o.batch = int()?,
        "seq_len" => o.seq_len = int()?,
        "clip" => o.clip = float()? as f32,
        "lr" => o.lr = float()? as f32,
        "eval_every" => o.eval_every = Some(int()? as u64),
        "schedule" => o.schedule = text()?.to_string(),
        "momentum" => o.optimizer.momentum = float()? as f32,
        "weight_decay" => o.optimizer.weight_decay = float()? as f32,
        "optimizer" => {
            let kind: OptimizerKind = text()?.parse().map_err(|_| wrong())?;
            // PyTorch's defaults of the new kind, keeping settings a space sets.
            let (momentum, decay) = (o.optimizer.momentum, o.optimizer.weight_decay);
            let defaults = recurrent_train::optim::OptimizerConfig::new(o.optimizer.kind);
            o.optimizer = recurrent_train::optim::OptimizerConfig::new(kind);
            if momentum != defaults.momentum {
                o.optimizer.momentum = momentum;
            }
            if decay != defaults.weight_decay {
                o.optimizer.weight_decay = decay;
            }
        }
        "cell" => config.cell = text()?.parse().map_err(|_| wrong())?,
        "layers" => config.layers = int()?,
        "hidden" => config.hidden = int()?,
        "embed" => config.embed = int()?,
        "dense" => config.dense = int()?,
        "last_hidden" => config.last_hidden = int()?,
        "dropout" => config.dropout = float()? as f32,
        "tie" => config.tie = flag()?,
        "layer_norm" => config.layer_norm = flag()?,
        "forget_bias" => *forget_bias = Some(float()? as f32),
        _ => return Err(unknown(name)),
    }
    Ok(())
}
