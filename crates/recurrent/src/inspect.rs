//! Looking inside a language model on a text: how surprised it is by each
//! token, what it expects next, what every hidden unit does, how often its
//! gates saturate, and which units track simple properties of the text
//! (after Karpathy, Johnson and Fei-Fei, "Visualizing and Understanding
//! Recurrent Networks", and LSTMVis).
//!
//! [`inspect`] computes an [`Inspection`]; [`Inspection::to_json`] is the
//! data the HTML view ([`Inspection::to_html`],
//! `recurrent_report::inspect_view_html`) draws, whose shape that function
//! documents.

use recurrent_model::lm::trace::TraceBlock;
use recurrent_model::{CellKind, State, Workspace};
use recurrent_text::{Corpus, Tokenizer};
use serde::{Serialize, Serializer};

use crate::error::{check, Error, Result};
use crate::load::LanguageCheckpoint;
use crate::threads::{resolve_threads, with_threads};

/// The longest text accepted (in characters): the view holds every unit's
/// activation after every token, which grows with the text.
pub const MAX_INSPECT_CHARS: usize = 20_000;

/// A sigmoid gate below this is left-saturated (nearly closed).
pub const SATURATED_LOW: f32 = 0.1;
/// A sigmoid gate above this is right-saturated (nearly open).
pub const SATURATED_HIGH: f32 = 0.9;

/// Steps per traced block: bounds the forward's buffers whatever the text.
const TRACE_BLOCK: usize = 256;

/// What to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InspectOptions {
    /// The longest text accepted, in characters (at most [`MAX_INSPECT_CHARS`]).
    pub max_chars: usize,
    /// Most likely next tokens listed after each token.
    pub top_next: usize,
    /// Units listed per property, best first.
    pub top_units: usize,
    /// Threads for the kernels (default: all cores).
    pub threads: Option<usize>,
}

impl Default for InspectOptions {
    fn default() -> InspectOptions {
        InspectOptions {
            max_chars: 2_000,
            top_next: 5,
            top_units: 10,
            threads: None,
        }
    }
}

/// A model looked at on one text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Inspection {
    /// What the model is.
    pub model: InspectedModel,
    /// The text's tokens, in order.
    pub tokens: Vec<TokenView>,
    /// Each recurrent layer's activity, bottom first.
    pub layers: Vec<LayerActivity>,
    /// The text's properties and the units that track them best.
    pub properties: Vec<PropertyRanking>,
}

/// The model's architecture, as the view names it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InspectedModel {
    /// `lstm`, `gru`, `rnn-tanh` or `rnn-relu`.
    pub cell: String,
    /// `char`, `byte`, `word` or `bpe`.
    pub tokenizer: String,
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Mean surprisal over the predicted tokens (all but the first), in bits.
    pub bits_per_token: Option<f64>,
}

/// One token of the text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TokenView {
    /// The text it adds (the pieces join to the whole text; a byte that
    /// completes no character yet adds nothing).
    pub text: String,
    /// Its id.
    pub id: u32,
    /// `-log2 p(token | the tokens before it)`; `None` for the first token,
    /// which nothing predicts.
    #[serde(serialize_with = "rounded_opt")]
    pub surprisal: Option<f32>,
    /// The most likely next tokens after this one, most likely first.
    pub next: Vec<NextToken>,
}

/// A candidate next token.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NextToken {
    /// What it decodes to (its vocabulary entry when it decodes to nothing
    /// printable on its own).
    pub text: String,
    /// Its id.
    pub id: u32,
    /// Its probability.
    #[serde(serialize_with = "rounded_prob")]
    pub p: f32,
}

/// What one layer's units did over the text (`T` tokens, `H` units).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerActivity {
    /// Units `H`.
    pub hidden: usize,
    /// `[T*H]`, time-major: unit `j`'s output after token `t` at `t*H + j`.
    #[serde(serialize_with = "rounded_vec")]
    pub h: Vec<f32>,
    /// `[T*H]` LSTM cell states, laid out as `h` (`None` for other cells).
    #[serde(serialize_with = "rounded_vec_opt")]
    pub c: Option<Vec<f32>>,
    /// Saturation of each sigmoid gate (LSTM input, forget, output; GRU
    /// reset, update; none for a plain RNN).
    pub gates: Vec<GateSaturation>,
}

/// How often one gate's units sat near 0 or 1 over the text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateSaturation {
    /// `input`, `forget`, `output`, `reset` or `update`.
    pub name: &'static str,
    /// `[H]`: per unit, the fraction of tokens with the gate below [`SATURATED_LOW`].
    #[serde(serialize_with = "rounded_vec")]
    pub left: Vec<f32>,
    /// `[H]`: per unit, the fraction of tokens with the gate above [`SATURATED_HIGH`].
    #[serde(serialize_with = "rounded_vec")]
    pub right: Vec<f32>,
}

/// Which state vector of a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StateKind {
    /// The output `h`.
    H,
    /// The LSTM cell state `c`.
    C,
}

/// A unit and how well it tracks a property.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct UnitScore {
    /// Its layer, 0 at the bottom.
    pub layer: usize,
    /// Its index in the layer.
    pub unit: usize,
    /// Its `h` or its `c`.
    pub state: StateKind,
    /// Pearson correlation of its activation with the property over the
    /// text, in -1..=1 (negative: it falls as the property rises).
    #[serde(serialize_with = "rounded")]
    pub correlation: f32,
}

/// A property of the text, token by token, and the units that track it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PropertyRanking {
    /// `quotes`, `line_position`, `bracket_depth` or `word_start`.
    pub name: &'static str,
    /// What it measures, in a few words.
    pub description: &'static str,
    /// `[T]`: its value after each token.
    #[serde(serialize_with = "rounded_vec")]
    pub values: Vec<f32>,
    /// The best-correlated units, by absolute correlation (empty when the
    /// property does not vary over the text).
    pub units: Vec<UnitScore>,
}

impl Inspection {
    /// The data as JSON, activations rounded to 3 decimals (the shape is
    /// documented at `recurrent_report::inspect_view_html`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an inspection always serializes")
    }

    /// One self-contained HTML page showing the inspection (no network needed).
    pub fn to_html(&self, title: &str) -> String {
        recurrent_report::inspect_view_html(title, &self.to_json())
    }
}

/// Runs `checkpoint`'s model over `text` from a zero state, as one stream
/// (as evaluation does), and collects what the view shows.
///
/// Errors: a text with characters outside a character vocabulary
/// ([`Error::UnknownChars`]); an empty text, or one longer than
/// `options.max_chars` ([`Error::InvalidOption`] on `text`); options out of
/// range.
///
/// ```no_run
/// use recurrent::{inspect, InspectOptions, LanguageCheckpoint};
///
/// let checkpoint = LanguageCheckpoint::load("runs/novel")?;
/// let view = inspect(&checkpoint, "He said \"wait (please)\".", &InspectOptions::default())?;
/// let depth = &view.properties[2]; // bracket_depth
/// if let Some(best) = depth.units.first() {
///     println!("layer {} unit {} ({:?}): r = {:.2}", best.layer, best.unit, best.state, best.correlation);
/// }
/// std::fs::write("view.html", view.to_html("novel"))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inspect(
    checkpoint: &LanguageCheckpoint,
    text: &str,
    options: &InspectOptions,
) -> Result<Inspection> {
    check(
        (1..=MAX_INSPECT_CHARS).contains(&options.max_chars),
        "max_chars",
        options.max_chars,
        "between 1 and 20000",
    )?;
    check(
        (1..=100).contains(&options.top_next),
        "top_next",
        options.top_next,
        "between 1 and 100",
    )?;
    check(
        (1..=1000).contains(&options.top_units),
        "top_units",
        options.top_units,
        "between 1 and 1000",
    )?;
    let threads = resolve_threads(options.threads)?;
    let chars = text.chars().count();
    if chars > options.max_chars {
        return Err(Error::InvalidOption {
            field: "text",
            value: format!("{chars} characters"),
            expected: format!("at most {} characters (`max_chars`)", options.max_chars),
        });
    }
    let tokenizer = &checkpoint.tokenizer;
    let ids = encode(checkpoint, text)?;
    if ids.is_empty() {
        return Err(Error::InvalidOption {
            field: "text",
            value: "an empty text".to_string(),
            expected: "at least one token".to_string(),
        });
    }

    let model = &checkpoint.model;
    let cfg = &model.config;
    let mut collect = Collector::new(checkpoint, &ids, options.top_next);
    with_threads(threads, || {
        let mut state = State::zeros(cfg, 1);
        model.trace(
            &mut Workspace::default(),
            &ids,
            &mut state,
            TRACE_BLOCK,
            |block| collect.block(block),
        );
    });
    let texts = token_texts(tokenizer, &ids);
    let tokens: Vec<TokenView> = texts
        .into_iter()
        .zip(&ids)
        .zip(collect.surprisal)
        .zip(collect.next)
        .map(|(((text, &id), surprisal), next)| TokenView {
            text,
            id,
            surprisal,
            next,
        })
        .collect();
    let layers: Vec<LayerActivity> = collect
        .layers
        .into_iter()
        .map(|l| l.finish(ids.len()))
        .collect();
    let pieces: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
    let properties = text_properties(&pieces)
        .into_iter()
        .map(|(name, description, values)| {
            let units = rank_units(&values, &layers, options.top_units);
            PropertyRanking {
                name,
                description,
                values,
                units,
            }
        })
        .collect();
    let predicted: Vec<f64> = tokens
        .iter()
        .filter_map(|t| t.surprisal.map(f64::from))
        .collect();
    Ok(Inspection {
        model: InspectedModel {
            cell: cfg.cell.name().to_string(),
            tokenizer: tokenizer.kind().as_str().to_string(),
            vocab_size: cfg.vocab_size,
            bits_per_token: (!predicted.is_empty())
                .then(|| predicted.iter().sum::<f64>() / predicted.len() as f64),
        },
        tokens,
        layers,
        properties,
    })
}

/// The text's ids, or the checkpoint's [`Error::UnknownChars`].
fn encode(checkpoint: &LanguageCheckpoint, text: &str) -> Result<Vec<u32>> {
    let missing = checkpoint
        .tokenizer
        .missing_chars(&Corpus::from_text("text", text));
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(20).map(|c| format!("{c:?}")).collect();
        return Err(Error::UnknownChars {
            path: checkpoint.path.clone(),
            count: missing.len(),
            shown: format!(
                "{}{}",
                shown.join(", "),
                if missing.len() > 20 { ", ..." } else { "" }
            ),
        });
    }
    Ok(checkpoint.tokenizer.encode(text)?)
}

/// What each token adds to the text, decoded as a stream so that bytes of
/// one character split over tokens land on the token that completes it.
fn token_texts(tokenizer: &Tokenizer, ids: &[u32]) -> Vec<String> {
    let mut decoder = tokenizer.decoder();
    let mut texts: Vec<String> = ids.iter().map(|&id| decoder.push(id)).collect();
    if let Some(last) = texts.last_mut() {
        last.push_str(&decoder.finish());
    }
    texts
}

/// How a candidate token is shown: its text, or its vocabulary entry when it
/// decodes to nothing whole (a special token, a lone byte).
fn candidate_text(tokenizer: &Tokenizer, id: u32) -> String {
    let text = tokenizer.decode(&[id]);
    if text.is_empty() || text.contains('\u{FFFD}') {
        tokenizer.vocab().token(id).unwrap_or("?").to_string()
    } else {
        text
    }
}

/// Gathers the traced blocks into per-token and per-unit results.
struct Collector<'a> {
    tokenizer: &'a Tokenizer,
    ids: &'a [u32],
    cell: CellKind,
    top_next: usize,
    surprisal: Vec<Option<f32>>,
    next: Vec<Vec<NextToken>>,
    layers: Vec<LayerCollector>,
}

/// One layer's outputs and gate counts, growing block by block.
struct LayerCollector {
    hidden: usize,
    h: Vec<f32>,
    c: Vec<f32>,
    /// Per sigmoid gate: its name, its block in a `[G*H]` gate row, and per
    /// unit the counts of tokens below and above the thresholds.
    gates: Vec<(&'static str, usize, Vec<u32>, Vec<u32>)>,
}

impl<'a> Collector<'a> {
    fn new(checkpoint: &'a LanguageCheckpoint, ids: &'a [u32], top_next: usize) -> Self {
        let cfg = &checkpoint.model.config;
        let layers = (0..cfg.layers)
            .map(|k| {
                let hidden = cfg.layer_hidden(k);
                let gates = sigmoid_gates(cfg.cell)
                    .iter()
                    .map(|&(name, block)| (name, block, vec![0; hidden], vec![0; hidden]))
                    .collect();
                LayerCollector {
                    hidden,
                    h: Vec::with_capacity(ids.len() * hidden),
                    c: Vec::new(),
                    gates,
                }
            })
            .collect();
        Collector {
            tokenizer: &checkpoint.tokenizer,
            ids,
            cell: cfg.cell,
            top_next: top_next.min(cfg.vocab_size),
            surprisal: vec![None; ids.len()],
            next: Vec::with_capacity(ids.len()),
            layers,
        }
    }

    fn block(&mut self, block: &TraceBlock<'_>) {
        let v = block.logits.len() / block.steps;
        for (s, row) in block.logits.chunks_exact(v).enumerate() {
            let t = block.start + s;
            let log_z = log_sum_exp(row);
            if let Some(&target) = self.ids.get(t + 1) {
                let nats = log_z - f64::from(row[target as usize]);
                self.surprisal[t + 1] = Some((nats / std::f64::consts::LN_2) as f32);
            }
            let next = top_indices(row, self.top_next)
                .into_iter()
                .map(|id| NextToken {
                    text: candidate_text(self.tokenizer, id as u32),
                    id: id as u32,
                    p: (f64::from(row[id]) - log_z).exp() as f32,
                })
                .collect();
            self.next.push(next);
        }
        for (layer, trace) in self.layers.iter_mut().zip(&block.layers) {
            layer.h.extend_from_slice(trace.h);
            if self.cell.has_cell_state() {
                layer.c.extend_from_slice(trace.c);
            }
            let h = layer.hidden;
            let g = self.cell.gates();
            for row in trace.gates.chunks_exact(g * h) {
                for (_, gate, low, high) in &mut layer.gates {
                    let values = &row[*gate * h..(*gate + 1) * h];
                    for (j, &x) in values.iter().enumerate() {
                        low[j] += u32::from(x < SATURATED_LOW);
                        high[j] += u32::from(x > SATURATED_HIGH);
                    }
                }
            }
        }
    }
}

impl LayerCollector {
    fn finish(self, tokens: usize) -> LayerActivity {
        let fraction = |counts: Vec<u32>| -> Vec<f32> {
            counts
                .into_iter()
                .map(|n| n as f32 / tokens as f32)
                .collect()
        };
        LayerActivity {
            hidden: self.hidden,
            h: self.h,
            c: (!self.c.is_empty()).then_some(self.c),
            gates: self
                .gates
                .into_iter()
                .map(|(name, _, low, high)| GateSaturation {
                    name,
                    left: fraction(low),
                    right: fraction(high),
                })
                .collect(),
        }
    }
}

/// A cell's sigmoid gates and their blocks in its gate rows (LSTM `i f g o`,
/// GRU `r z n`; the tanh blocks are candidates, not gates).
fn sigmoid_gates(cell: CellKind) -> &'static [(&'static str, usize)] {
    match cell {
        CellKind::Lstm => &[("input", 0), ("forget", 1), ("output", 3)],
        CellKind::Gru => &[("reset", 0), ("update", 1)],
        CellKind::RnnTanh | CellKind::RnnRelu => &[],
    }
}

/// `ln Σ exp(x)`, in f64.
fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    max + row
        .iter()
        .map(|&x| (f64::from(x) - max).exp())
        .sum::<f64>()
        .ln()
}

/// The indices of the `k` largest values, largest first (ties: lower index).
fn top_indices(row: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..row.len()).collect();
    let by_value = |a: &usize, b: &usize| row[*b].total_cmp(&row[*a]).then(a.cmp(b));
    if k < order.len() {
        order.select_nth_unstable_by(k, by_value);
        order.truncate(k);
    }
    order.sort_by(by_value);
    order
}

/// The properties the view ranks units by, each `[T]`, from what each token
/// adds to the text: `(name, description, values)`.
pub fn text_properties(pieces: &[&str]) -> Vec<(&'static str, &'static str, Vec<f32>)> {
    let t = pieces.len();
    let (mut quotes, mut column, mut depth, mut word_start) = (
        Vec::with_capacity(t),
        Vec::with_capacity(t),
        Vec::with_capacity(t),
        Vec::with_capacity(t),
    );
    let (mut in_quote, mut col, mut d, mut prev_alnum) = (false, 0usize, 0usize, false);
    for piece in pieces {
        let mut starts = false;
        for (i, ch) in piece.chars().enumerate() {
            if i == 0 {
                starts = ch.is_alphanumeric() && !prev_alnum;
            }
            match ch {
                '"' => in_quote = !in_quote,
                '“' => in_quote = true,
                '”' => in_quote = false,
                '(' | '[' | '{' => d += 1,
                ')' | ']' | '}' => d = d.saturating_sub(1),
                _ => {}
            }
            col = if ch == '\n' { 0 } else { col + 1 };
            prev_alnum = ch.is_alphanumeric();
        }
        quotes.push(f32::from(u8::from(in_quote)));
        column.push(col as f32);
        depth.push(d as f32);
        word_start.push(f32::from(u8::from(starts)));
    }
    vec![
        ("quotes", "inside double quotes (1) or not (0)", quotes),
        ("line_position", "characters since the last newline", column),
        ("bracket_depth", "open ( [ { not yet closed", depth),
        (
            "word_start",
            "the token starts a word (1) or not (0)",
            word_start,
        ),
    ]
}

/// The `top` units (`h`, and `c` for LSTM, of every layer) whose activation
/// correlates best with `property` (`[T]`) over the tokens, by absolute
/// Pearson correlation, with its sign; ties go to the lower layer, `h`
/// before `c`, then the lower unit. Empty when the property is constant;
/// units that never change are skipped.
pub fn rank_units(property: &[f32], layers: &[LayerActivity], top: usize) -> Vec<UnitScore> {
    let t = property.len();
    let mean_p = property.iter().map(|&x| f64::from(x)).sum::<f64>() / t.max(1) as f64;
    let dev_p: Vec<f64> = property.iter().map(|&x| f64::from(x) - mean_p).collect();
    let var_p: f64 = dev_p.iter().map(|d| d * d).sum();
    if t < 2 || var_p <= 0.0 {
        return Vec::new();
    }
    let mut scores = Vec::new();
    for (layer, activity) in layers.iter().enumerate() {
        let h = activity.hidden;
        let states = [
            (StateKind::H, Some(&activity.h)),
            (StateKind::C, activity.c.as_ref()),
        ];
        for (state, values) in states {
            let Some(values) = values.filter(|v| v.len() == t * h) else {
                continue;
            };
            for unit in 0..h {
                let series = || values.iter().skip(unit).step_by(h).map(|&x| f64::from(x));
                let mean = series().sum::<f64>() / t as f64;
                let (mut cov, mut var) = (0.0, 0.0);
                for (x, dp) in series().zip(&dev_p) {
                    cov += (x - mean) * dp;
                    var += (x - mean) * (x - mean);
                }
                let r = cov / (var * var_p).sqrt();
                if var > 0.0 && r.is_finite() {
                    scores.push(UnitScore {
                        layer,
                        unit,
                        state,
                        correlation: r.clamp(-1.0, 1.0) as f32,
                    });
                }
            }
        }
    }
    scores.sort_by(|a, b| {
        b.correlation
            .abs()
            .total_cmp(&a.correlation.abs())
            .then((a.layer, a.state, a.unit).cmp(&(b.layer, b.state, b.unit)))
    });
    scores.truncate(top);
    scores
}

/// `x` rounded to 3 decimals, for compact JSON.
fn round3(x: f32) -> f32 {
    (x * 1000.0).round() / 1000.0
}

fn rounded<S: Serializer>(x: &f32, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f32(round3(*x))
}

fn rounded_opt<S: Serializer>(x: &Option<f32>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match x {
        Some(x) => s.serialize_some(&round3(*x)),
        None => s.serialize_none(),
    }
}

/// Probabilities keep 4 significant digits, small ones too.
fn rounded_prob<S: Serializer>(p: &f32, s: S) -> std::result::Result<S::Ok, S::Error> {
    let p = *p;
    let rounded = if p > 0.0 && p.is_finite() {
        let scale = 10f32.powi(3 - p.log10().floor() as i32);
        (p * scale).round() / scale
    } else {
        p
    };
    s.serialize_f32(rounded)
}

fn rounded_vec<S: Serializer>(v: &[f32], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|&x| round3(x)))
}

fn rounded_vec_opt<S: Serializer>(
    v: &Option<Vec<f32>>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_some(&Rounded(v)),
        None => s.serialize_none(),
    }
}

/// A slice serialized rounded to 3 decimals.
struct Rounded<'a>(&'a [f32]);

impl Serialize for Rounded<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        rounded_vec(self.0, s)
    }
}
