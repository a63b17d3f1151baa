//! `recurrent bench`: training and sampling speed of the reference
//! configurations, next to PyTorch measured in the same run when it is installed.
//!
//! Each configuration runs in a child process so its peak memory (RSS) is its own.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use recurrent::generate::{generate, GenerateOptions, SamplingConfig};
use recurrent::kernels::panel::WeightFormat;
use recurrent::kernels::{sgemm, MatMut, MatRef, Rng};
use recurrent::model::{CellKind, LanguageModel, ModelConfig};
use recurrent::text::{Corpus, Tokenizer, TokenizerKind};
use recurrent::train::optim::{OptimizerConfig, OptimizerKind};
use recurrent::train::schedule::Schedule;
use recurrent::train::trainer::{TrainConfig, Trainer};
use recurrent::train::{Plan, StopRule};
use serde_json::{json, Value};

/// Arguments of `recurrent bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Configurations to run (a-e as in docs/PERFORMANCE.md), comma-separated.
    #[arg(long, default_value = "a,b,c,d,e")]
    configs: String,
    /// Timed training steps per configuration (the median is reported).
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Threads for us and for PyTorch.
    #[arg(long)]
    threads: Option<usize>,
    /// Alternating rounds of ours then PyTorch per configuration: the table
    /// shows each side's median and the median of the rounds' ratios, so one
    /// noisy moment on a shared machine does not decide the ratio.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Skip the PyTorch reference even if it is installed.
    #[arg(long)]
    no_torch: bool,
    /// Skip the sampling benchmark.
    #[arg(long)]
    no_sampling: bool,
    /// The PyTorch reference script.
    #[arg(long, default_value = "bench/torch_lm.py")]
    torch_script: PathBuf,
    /// Internal: run one measurement and print it as JSON.
    #[arg(long, hide = true)]
    child: Option<String>,
}

/// One reference configuration: character level, vocabulary 65, seq_len 100.
struct Config {
    name: &'static str,
    cell: CellKind,
    layers: usize,
    hidden: usize,
    batch: usize,
}

const CONFIGS: [Config; 5] = [
    Config {
        name: "a",
        cell: CellKind::Lstm,
        layers: 2,
        hidden: 128,
        batch: 50,
    },
    Config {
        name: "b",
        cell: CellKind::Lstm,
        layers: 2,
        hidden: 512,
        batch: 64,
    },
    Config {
        name: "c",
        cell: CellKind::Lstm,
        layers: 3,
        hidden: 512,
        batch: 64,
    },
    Config {
        name: "d",
        cell: CellKind::Gru,
        layers: 2,
        hidden: 512,
        batch: 64,
    },
    Config {
        name: "e",
        cell: CellKind::RnnTanh,
        layers: 2,
        hidden: 512,
        batch: 64,
    },
];
const VOCAB: usize = 65;
const EMBED: usize = 64;
const SEQ_LEN: usize = 100;

impl Config {
    fn model(&self) -> ModelConfig {
        ModelConfig {
            cell: self.cell,
            vocab_size: VOCAB,
            embed: EMBED,
            hidden: self.hidden,
            layers: self.layers,
            dense: 0,
            dropout: 0.0,
            tie: false,
            layer_norm: false,
            last_hidden: 0,
        }
    }

    /// Training FLOPs per token: 6 × (Σ_layers G·H·(in + H) + V·H).
    fn flops_per_token(&self) -> f64 {
        let g = self.cell.gates();
        let h = self.hidden;
        let layers: usize = (0..self.layers)
            .map(|k| g * h * (if k == 0 { EMBED } else { h } + h))
            .sum();
        6.0 * (layers + VOCAB * h) as f64
    }

    fn label(&self) -> String {
        format!(
            "({}) {} {}x{} b{}",
            self.name, self.cell, self.layers, self.hidden, self.batch
        )
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.rounds == 0 {
        anyhow::bail!("--rounds must be at least 1, got 0");
    }
    let threads = super::set_threads(args.threads)?;
    if let Some(what) = &args.child {
        println!("{}", child(what, args.steps)?);
        return Ok(());
    }
    let torch = !args.no_torch && torch_available();
    let peak = sgemm_peak();
    println!("threads {threads}; sgemm peak measured here {peak:.0} GFLOP/s");
    if !torch {
        println!(
            "(PyTorch not found: install it with `pip install torch` for the reference column)"
        );
    }
    println!(
        "{:<26} {:>10} {:>10} {:>6} {:>11} {:>8} {:>6} {:>9} {:>9}",
        "training",
        "ours tok/s",
        "torch",
        "ratio",
        "round range",
        "GFLOP/s",
        "peak%",
        "ours MB",
        "torch MB"
    );
    let names: Vec<&str> = args.configs.split(',').map(str::trim).collect();
    for config in CONFIGS.iter().filter(|c| names.contains(&c.name)) {
        let m = measure(&args, torch, || {
            let ours = spawn_child(&format!("train:{}", config.name), args.steps, threads)?;
            let theirs = torch.then(|| torch_train(&args, config, threads).ok());
            Ok((ours, theirs.flatten()))
        })?;
        let gflops = m.ours * config.flops_per_token() / 1e9;
        println!(
            "{:<26} {:>10.0} {:>10} {:>6} {:>11} {:>8.1} {:>5.0}% {:>9.0} {:>9}",
            config.label(),
            m.ours,
            m.theirs_column(),
            m.ratio_column(),
            m.range_column(),
            gflops,
            100.0 * gflops / peak,
            m.ours_mb,
            m.theirs_mb.map_or("-".into(), |x| format!("{x:.0}")),
        );
    }
    if !args.no_sampling {
        println!(
            "{:<26} {:>10} {:>10} {:>6} {:>11}",
            "sampling, model (b)", "ours tok/s", "torch", "ratio", "round range"
        );
        // The bf16 rows (`sample --weights bf16`) are compared with PyTorch's
        // best too, which is f32: its bf16 is no faster at batch 1 and about
        // 7x slower at batch 64 (`bench/torch_lm.py --dtype bf16`).
        for (batch, dtype) in [(1, "f32"), (64, "f32"), (1, "bf16"), (64, "bf16")] {
            let m = measure(&args, torch, || {
                let what = format!("sample:{batch}:{dtype}");
                let ours = spawn_child(&what, args.steps, threads)?;
                let theirs = torch.then(|| torch_sample(&args, batch, "f32", threads).ok());
                Ok((ours, theirs.flatten()))
            })?;
            println!(
                "{:<26} {:>10.0} {:>10} {:>6} {:>11}",
                format!("1000 tokens, batch {batch}, {dtype}"),
                m.ours,
                m.theirs_column(),
                m.ratio_column(),
                m.range_column(),
            );
        }
    }
    Ok(())
}

/// One table row: medians over `--rounds` alternating measurements.
struct Measured {
    ours: f64,
    theirs: Option<f64>,
    /// Each round's ours / PyTorch, sorted.
    ratios: Vec<f64>,
    ours_mb: f64,
    theirs_mb: Option<f64>,
}

/// Runs `round` (ours, then PyTorch when `torch`) `--rounds` times and takes
/// the medians; a round in which PyTorch failed counts for our side only.
fn measure(
    args: &BenchArgs,
    torch: bool,
    mut round: impl FnMut() -> Result<(Value, Option<Value>)>,
) -> Result<Measured> {
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ours_mb, mut theirs_mb) = (0.0f64, None::<f64>);
    for _ in 0..args.rounds {
        let (o, t) = round()?;
        let o_tps = o["tokens_per_sec"].as_f64().unwrap_or(0.0);
        ours.push(o_tps);
        ours_mb = ours_mb.max(o["peak_rss_mb"].as_f64().unwrap_or(0.0));
        if let Some(t) = t.filter(|_| torch) {
            if let Some(t_tps) = t["tokens_per_sec"].as_f64() {
                theirs.push(t_tps);
                ratios.push(o_tps / t_tps);
            }
            if let Some(mb) = t["peak_rss_mb"].as_f64() {
                theirs_mb = Some(theirs_mb.map_or(mb, |x| x.max(mb)));
            }
        }
    }
    ratios.sort_by(f64::total_cmp);
    Ok(Measured {
        ours: median(&mut ours).unwrap_or(0.0),
        theirs: median(&mut theirs),
        ratios,
        ours_mb,
        theirs_mb,
    })
}

impl Measured {
    fn theirs_column(&self) -> String {
        self.theirs.map_or("-".into(), |t| format!("{t:.0}"))
    }

    /// The median of the rounds' ratios (each round compares two runs
    /// taken seconds apart, so a slow moment of the machine hits both).
    fn ratio_column(&self) -> String {
        median(&mut self.ratios.clone()).map_or("-".into(), |r| format!("{r:.2}x"))
    }

    fn range_column(&self) -> String {
        match (self.ratios.first(), self.ratios.last()) {
            (Some(lo), Some(hi)) if self.ratios.len() > 1 => format!("{lo:.2}-{hi:.2}"),
            _ => "-".into(),
        }
    }
}

/// The middle value (the mean of the two middle ones of an even count), or
/// `None` when empty.
fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some(0.5 * (v[n / 2 - 1] + v[n / 2])),
    }
}

/// One measurement in this process: `train:NAME` or `sample:BATCH`.
fn child(what: &str, steps: usize) -> Result<Value> {
    let (kind, arg) = what.split_once(':').context("bad --child")?;
    let tokens_per_sec = match kind {
        "train" => {
            let config = CONFIGS
                .iter()
                .find(|c| c.name == arg)
                .context("unknown configuration")?;
            train_speed(config, steps)?
        }
        "sample" => {
            let (batch, dtype) = arg.split_once(':').unwrap_or((arg, "f32"));
            let weights = match dtype {
                "f32" => WeightFormat::F32,
                "bf16" => WeightFormat::Bf16,
                _ => bail!("bad --child"),
            };
            sample_speed(batch.parse()?, weights)?
        }
        _ => bail!("bad --child"),
    };
    Ok(json!({ "tokens_per_sec": tokens_per_sec, "peak_rss_mb": peak_rss_mb() }))
}

/// Median tokens/s of full training steps (forward, backward, clipping, Adam).
fn train_speed(config: &Config, steps: usize) -> Result<f64> {
    let mut rng = Rng::new(1);
    let model = LanguageModel::new(config.model(), &mut rng, None)?;
    let n = config.batch * (SEQ_LEN * (steps + 5) + 1);
    let tokens: Vec<u32> = (0..n).map(|_| rng.below(VOCAB as u64) as u32).collect();
    let train = TrainConfig {
        seq_len: SEQ_LEN,
        batch: config.batch,
        optimizer: OptimizerConfig::new(OptimizerKind::Adam),
        lr: 2e-3,
        clip: 5.0,
        schedule: Schedule::Constant,
        plan: Plan {
            stop: StopRule {
                epochs: None,
                steps: None,
                time_secs: None,
            },
            eval_every: 0,
            patience: None,
        },
        seed: 1,
        reset_between_docs: false,
        nt_asgd: None,
    };
    let mut trainer = Trainer::new(model, train, tokens, None, None)?;
    for _ in 0..3 {
        trainer.step()?; // warm-up: buffers are sized and pages touched here
    }
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps.max(1) {
        let start = Instant::now();
        trainer.step()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok((SEQ_LEN * config.batch) as f64 / times[times.len() / 2])
}

/// Tokens/s generating 1000 tokens per stream with model (b), packing included.
fn sample_speed(batch: usize, weights: WeightFormat) -> Result<f64> {
    let config = &CONFIGS[1];
    let text: String = (0..VOCAB as u8).map(|i| (b'!' + i) as char).collect();
    let tokenizer = Tokenizer::build(TokenizerKind::Char, &Corpus::from_text("bench", &text))?;
    let model = LanguageModel::new(config.model(), &mut Rng::new(1), None)?;
    let options = GenerateOptions {
        prime: String::new(),
        length: 1000,
        sampling: SamplingConfig {
            temperature: 1.0,
            top_k: None,
            top_p: None,
        },
        stops: Vec::new(),
        seed: 1,
        samples: batch,
        weights,
    };
    let start = Instant::now();
    generate(&model, &tokenizer, &options, |_, _| {})?;
    Ok((1000 * batch) as f64 / start.elapsed().as_secs_f64())
}

fn spawn_child(what: &str, steps: usize, threads: usize) -> Result<Value> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args([
            "bench",
            "--child",
            what,
            "--steps",
            &steps.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .output()?;
    if !out.status.success() {
        bail!(
            "benchmark {what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn torch_available() -> bool {
    Command::new("python3")
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn torch_json(args: &BenchArgs, extra: &[String]) -> Result<Value> {
    let out = Command::new("python3")
        .arg(&args.torch_script)
        .args(extra)
        .output()?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The flags that describe model `c` at `batch` streams to bench/torch_lm.py.
fn torch_model_args(c: &Config, batch: usize, threads: usize) -> Vec<String> {
    let flags = [
        ("--cell", c.cell.name().to_string()),
        ("--layers", c.layers.to_string()),
        ("--hidden", c.hidden.to_string()),
        ("--embed", EMBED.to_string()),
        ("--vocab", VOCAB.to_string()),
        ("--batch", batch.to_string()),
        ("--threads", threads.to_string()),
    ];
    flags
        .into_iter()
        .flat_map(|(f, v)| [f.to_string(), v])
        .collect()
}

fn torch_train(args: &BenchArgs, c: &Config, threads: usize) -> Result<Value> {
    let mut a = torch_model_args(c, c.batch, threads);
    a.extend([
        "--seq-len".into(),
        SEQ_LEN.to_string(),
        "--steps".into(),
        args.steps.to_string(),
    ]);
    torch_json(args, &a)
}

fn torch_sample(args: &BenchArgs, batch: usize, dtype: &str, threads: usize) -> Result<Value> {
    let mut a = torch_model_args(&CONFIGS[1], batch, threads);
    a.extend(["--sample".into(), "1000".into(), "--no-mkldnn".into()]);
    a.extend(["--dtype".into(), dtype.into()]);
    torch_json(args, &a)
}

/// The best sgemm rate of a few large square products with our GEMM, in GFLOP/s.
fn sgemm_peak() -> f64 {
    let n = 1024;
    let a = vec![0.5f32; n * n];
    let b = vec![0.25f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let mut best = 0.0f64;
    for _ in 0..5 {
        let start = Instant::now();
        sgemm(
            1.0,
            MatRef::new(&a, n, n),
            MatRef::new(&b, n, n),
            0.0,
            MatMut::new(&mut c, n, n),
        );
        best = best.max(2.0 * (n * n * n) as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    best
}

#[cfg(unix)]
fn peak_rss_mb() -> f64 {
    // SAFETY: `rusage` is plain integers, for which all zeros is a value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct we pass, which outlives the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

#[cfg(not(unix))]
fn peak_rss_mb() -> f64 {
    0.0
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_even_and_empty_lists() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
