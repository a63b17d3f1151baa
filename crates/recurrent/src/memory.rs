//! Whether a training run fits in memory, checked before anything large is
//! allocated: a model of absurd size is refused with the two numbers, rather
//! than aborting the process on a failed allocation.
//!
//! The estimate counts the largest buffers only (parameters, gradients,
//! optimizer moments, one block's activations, the token ids, BPE training),
//! so it is a lower bound: a run it refuses cannot fit, and a run it accepts
//! may still need somewhat more.
//!
//! ```
//! use recurrent::memory::{Available, MemoryEstimate};
//! use recurrent::{CellKind, ModelConfig, OptimizerConfig, OptimizerKind};
//!
//! let config = ModelConfig::new(CellKind::Lstm, 100, 64, 20_000, 2);
//! let adam = OptimizerConfig::new(OptimizerKind::Adam);
//! let need = MemoryEstimate::language_model(&config, 100, 50, &adam, 1_000_000);
//! assert!(need.check(Some(Available::bytes(16 << 30))).is_err());
//! ```

use std::fmt;
use std::path::Path;

use recurrent_model::seq2seq::Seq2SeqConfig;
use recurrent_model::ModelConfig;
use recurrent_train::optim::{OptimizerConfig, OptimizerKind};

// Sizes are computed in `f64`, which cannot overflow on absurd inputs (a
// `usize::MAX` width), and saturate when turned into bytes.

/// Bytes of one `f32`.
const F32: f64 = 4.0;
/// Bytes of one token id.
const TOKEN: f64 = 4.0;
/// Bytes the BPE trainer reserves per vocabulary entry (a hash map from the
/// token to its id and the list of tokens, sized for the whole vocabulary).
const BPE_BYTES_PER_TOKEN: f64 = 72.0;
/// Bytes the BPE trainer holds per byte of text (word counts and their
/// symbol lists), roughly.
const BPE_BYTES_PER_TEXT_BYTE: f64 = 8.0;

/// The memory a training run needs, in bytes, by part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The model's weights.
    pub parameters: u128,
    /// One gradient per weight.
    pub gradients: u128,
    /// The optimizer's per-weight buffers (Adam's two moments, momentum).
    pub optimizer: u128,
    /// One block's forward values kept for the backward pass, and its
    /// output logits and their gradient.
    pub activations: u128,
    /// The token ids of the training and validation text.
    pub data: u128,
    /// Learning a BPE vocabulary.
    pub tokenizer: u128,
}

impl MemoryEstimate {
    /// A language model of `config` trained on blocks of `batch` streams by
    /// `seq_len` steps with `optimizer`, on `tokens` tokens.
    pub fn language_model(
        config: &ModelConfig,
        seq_len: usize,
        batch: usize,
        optimizer: &OptimizerConfig,
        tokens: usize,
    ) -> MemoryEstimate {
        let params = config.param_count();
        let rows = seq_len as f64 * batch as f64;
        let gates = config.cell.gates() as f64;
        // Per step and stream: each layer's gate pre-activations and its
        // outputs (h, c and tanh(c)), the embedding, the dense layer, and the
        // logits with their gradient. Layers 1.. but the last are alike.
        let layer = |k: usize| (gates + 3.0) * config.layer_hidden(k) as f64;
        let mut per_row = layer(0);
        if config.layers > 1 {
            per_row += (config.layers - 2) as f64 * layer(1) + layer(config.layers - 1);
        }
        per_row += config.embed as f64 + config.dense as f64 + 2.0 * config.vocab_size as f64;
        MemoryEstimate {
            parameters: bytes(params * F32),
            gradients: bytes(params * F32),
            optimizer: bytes(optimizer_buffers(optimizer) * params * F32),
            activations: bytes(rows * per_row * F32),
            data: bytes(tokens as f64 * TOKEN),
            tokenizer: 0,
        }
    }

    /// A sequence-to-sequence model of `config` trained on batches of
    /// `batch` pairs of at most `longest` tokens a side, on `tokens` tokens
    /// of pairs.
    pub fn seq2seq(
        config: &Seq2SeqConfig,
        batch: usize,
        longest: usize,
        optimizer: &OptimizerConfig,
        tokens: usize,
    ) -> MemoryEstimate {
        let params = config.param_count();
        let rows = batch as f64 * (longest as f64 + 2.0);
        let (gates, h, l) = (
            config.cell.gates() as f64,
            config.hidden as f64,
            config.layers as f64,
        );
        // Encoder and decoder layers (gates and outputs), the attention
        // weights over the source, and the target logits with their gradient.
        let per_row = 2.0 * l * (gates + 3.0) * h
            + 2.0 * config.embed as f64
            + 3.0 * h
            + longest as f64
            + 2.0 * config.tgt_vocab as f64;
        MemoryEstimate {
            parameters: bytes(params * F32),
            gradients: bytes(params * F32),
            optimizer: bytes(optimizer_buffers(optimizer) * params * F32),
            activations: bytes(rows * per_row * F32),
            data: bytes(tokens as f64 * TOKEN),
            tokenizer: 0,
        }
    }

    /// Learning a BPE vocabulary of `vocab_size` tokens from `text_bytes`
    /// bytes of text.
    pub fn bpe_training(vocab_size: usize, text_bytes: usize) -> MemoryEstimate {
        MemoryEstimate {
            tokenizer: bytes(
                vocab_size as f64 * BPE_BYTES_PER_TOKEN
                    + text_bytes as f64 * BPE_BYTES_PER_TEXT_BYTE,
            ),
            ..MemoryEstimate::default()
        }
    }

    /// The whole estimate, in bytes.
    pub fn total(&self) -> u128 {
        [
            self.gradients,
            self.optimizer,
            self.activations,
            self.data,
            self.tokenizer,
        ]
        .iter()
        .fold(self.parameters, |sum, &b| sum.saturating_add(b))
    }

    /// `Ok` if the estimate fits in `available` (no limit known: `None`
    /// always fits), else [`MemoryError`] with both numbers and the parts.
    pub fn check(&self, available: Option<Available>) -> Result<(), MemoryError> {
        match available {
            Some(a) if self.total() > a.bytes as u128 => Err(MemoryError {
                needed: *self,
                available: a,
            }),
            _ => Ok(()),
        }
    }

    /// The non-zero parts, largest first: "parameters 6.0 GiB, ...".
    fn parts(&self) -> String {
        let mut parts = [
            ("parameters", self.parameters),
            ("gradients", self.gradients),
            ("optimizer state", self.optimizer),
            ("activations of a block", self.activations),
            ("token ids", self.data),
            ("tokenizer training", self.tokenizer),
        ];
        parts.sort_by_key(|&(_, b)| std::cmp::Reverse(b));
        parts
            .iter()
            .filter(|(_, b)| *b > 0)
            .map(|(name, b)| format!("{name} {}", human_bytes(*b)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The memory this process may still use, and where that figure comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Available {
    /// Bytes.
    pub bytes: u64,
    /// Where the figure comes from.
    pub source: AvailableSource,
}

impl Available {
    /// A given amount (tests, or a caller's own budget).
    pub fn bytes(bytes: u64) -> Available {
        Available {
            bytes,
            source: AvailableSource::Given,
        }
    }
}

/// Where an [`Available`] figure comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AvailableSource {
    /// The control group's limit less its usage (`memory.max`, cgroup v2).
    CgroupV2,
    /// The control group's limit less its usage (`memory.limit_in_bytes`, cgroup v1).
    CgroupV1,
    /// `MemAvailable` in `/proc/meminfo`.
    MemAvailable,
    /// Set by the caller.
    Given,
}

impl fmt::Display for AvailableSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AvailableSource::CgroupV2 => "the cgroup limit (memory.max) less its usage",
            AvailableSource::CgroupV1 => "the cgroup limit (memory.limit_in_bytes) less its usage",
            AvailableSource::MemAvailable => "MemAvailable in /proc/meminfo",
            AvailableSource::Given => "as given",
        })
    }
}

/// A run that cannot fit in the memory available.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "this run needs at least {} of memory ({}), but only {} is available ({})",
    human_bytes(needed.total()),
    needed.parts(),
    human_bytes(available.bytes as u128),
    available.source
)]
pub struct MemoryError {
    /// What the run needs.
    pub needed: MemoryEstimate,
    /// What is available.
    pub available: Available,
}

/// The memory this process may still use: the smallest of its cgroup's
/// limit less usage (v2, then v1) and the system's `MemAvailable`; `None`
/// where none of these can be read (not Linux).
pub fn available_memory() -> Option<Available> {
    let mem_available = read_meminfo_available().map(|bytes| Available {
        bytes,
        source: AvailableSource::MemAvailable,
    });
    let cgroup = cgroup_available();
    match (cgroup, mem_available) {
        (Some(c), Some(m)) => Some(if c.bytes < m.bytes { c } else { m }),
        (c, m) => c.or(m),
    }
}

fn read_meminfo_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// The cgroup's limit less its usage, if the process has a limit.
fn cgroup_available() -> Option<Available> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in membership.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let path = path.trim_start_matches('/');
        let found = if controllers.is_empty() {
            limit_less_usage(
                Path::new("/sys/fs/cgroup"),
                path,
                "memory.max",
                "memory.current",
            )
            .map(|bytes| (bytes, AvailableSource::CgroupV2))
        } else if controllers.split(',').any(|c| c == "memory") {
            limit_less_usage(
                Path::new("/sys/fs/cgroup/memory"),
                path,
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
            )
            .map(|bytes| (bytes, AvailableSource::CgroupV1))
        } else {
            None
        };
        if let Some((bytes, source)) = found {
            return Some(Available { bytes, source });
        }
    }
    None
}

/// A cgroup's limit less its usage, read in the group's folder under `root`
/// (or at `root` itself, where a container shows its own group as the root).
/// `None` without a limit ("max", or v1's huge number).
fn limit_less_usage(root: &Path, group: &str, limit: &str, usage: &str) -> Option<u64> {
    let read = |dir: &Path, file: &str| -> Option<String> {
        std::fs::read_to_string(dir.join(file))
            .ok()
            .map(|s| s.trim().to_string())
    };
    let dir = [root.join(group), root.to_path_buf()]
        .into_iter()
        .find(|d| d.join(limit).is_file())?;
    let limit: u64 = read(&dir, limit)?.parse().ok()?;
    // cgroup v1 writes "no limit" as the largest page-aligned i64.
    if limit >= 1 << 60 {
        return None;
    }
    let usage: u64 = read(&dir, usage).and_then(|u| u.parse().ok()).unwrap_or(0);
    Some(limit.saturating_sub(usage))
}

/// Optimizer buffers per weight.
fn optimizer_buffers(o: &OptimizerConfig) -> f64 {
    let momentum = if o.momentum != 0.0 { 1.0 } else { 0.0 };
    match o.kind {
        OptimizerKind::Sgd => momentum,
        OptimizerKind::Adam | OptimizerKind::AdamW => 2.0,
        OptimizerKind::RmsProp => 1.0 + momentum,
    }
}

/// Bytes from a size computed in `f64` (saturating: `as` maps infinity to
/// the largest value).
fn bytes(x: f64) -> u128 {
    x.ceil() as u128
}

/// Bytes in binary units: `512 B`, `3.2 MiB`, `6.0 GiB`, `1.5 PiB`.
pub fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use recurrent_model::CellKind;

    const GIB: u64 = 1 << 30;

    fn adam() -> OptimizerConfig {
        OptimizerConfig::new(OptimizerKind::Adam)
    }

    #[test]
    fn sizes_that_cannot_fit_are_refused_with_both_numbers() {
        let plenty = Some(Available::bytes(16 * GIB));
        let wide = ModelConfig::new(CellKind::Lstm, 100, 64, 20_000, 2);
        let err = MemoryEstimate::language_model(&wide, 100, 50, &adam(), 1_000_000)
            .check(plenty)
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("16.0 GiB is available"), "{text}");
        // 4.8e9 weights: 17.9 GiB each of weights and gradients, twice that of Adam.
        assert!(text.contains("needs at least 7"), "{text}");
        assert!(text.contains("optimizer state 35.8 GiB"), "{text}");
        assert!(
            text.contains("parameters 17.9 GiB, gradients 17.9 GiB"),
            "{text}"
        );

        let deep = ModelConfig::new(CellKind::Lstm, 100, 64, 128, 1_000_000);
        let err = MemoryEstimate::language_model(&deep, 100, 50, &adam(), 1_000_000)
            .check(plenty)
            .unwrap_err();
        assert!(err.needed.total() > 1 << 40, "{err}");
        assert!(err.to_string().contains("TiB"), "{err}");
    }

    #[test]
    fn widths_of_usize_max_saturate_instead_of_overflowing() {
        let m = usize::MAX;
        let c = ModelConfig::new(CellKind::Lstm, m, m, m, m);
        let need = MemoryEstimate::language_model(&c, m, m, &adam(), m);
        assert_eq!(need.total(), u128::MAX);
        assert!(need.check(Some(Available::bytes(u64::MAX))).is_err());
        let s = Seq2SeqConfig::new(m, m, m, m);
        let need = MemoryEstimate::seq2seq(&s, m, m, &adam(), 1);
        assert!(need.check(Some(Available::bytes(u64::MAX))).is_err());
    }

    #[test]
    fn the_default_run_fits_in_a_small_machine() {
        let config = ModelConfig::new(CellKind::Lstm, 100, 64, 128, 2);
        let need = MemoryEstimate::language_model(&config, 100, 50, &adam(), 1_000_000);
        assert!(need.total() < 100 << 20, "{need:?}");
        need.check(Some(Available::bytes(GIB))).unwrap();
        // No known limit: nothing to refuse.
        need.check(None).unwrap();
    }

    #[test]
    fn absurd_bpe_vocabularies_and_seq2seq_models_are_refused() {
        let need = MemoryEstimate::bpe_training(4_000_000_000, 20_000);
        assert!(need.check(Some(Available::bytes(16 * GIB))).is_err());
        MemoryEstimate::bpe_training(8000, 10 << 20)
            .check(Some(Available::bytes(GIB)))
            .unwrap();
        let mut wide = Seq2SeqConfig::new(8000, 8000, 256, 30_000);
        let need = MemoryEstimate::seq2seq(&wide, 64, 100, &adam(), 1_000_000);
        assert!(need.check(Some(Available::bytes(16 * GIB))).is_err());
        wide.hidden = 256;
        let need = MemoryEstimate::seq2seq(&wide, 64, 100, &adam(), 1_000_000);
        need.check(Some(Available::bytes(GIB))).unwrap();
    }

    #[test]
    fn the_available_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let a = available_memory().expect("MemAvailable at least");
            assert!(a.bytes > 0);
        }
    }

    #[test]
    fn bytes_are_shown_in_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(human_bytes(6 * (1 << 30) + (1 << 29)), "6.5 GiB");
    }
}
