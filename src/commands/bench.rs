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
use recurrent::kernels::precision::{bf16_kernel, force_bf16_kernel, Bf16Kernel};
use recurrent::kernels::Precision;
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
    /// Our precisions, comma-separated: f32, bf16 (products on bf16 operands
    /// with float32 sums: the CPU's AMX or AVX512-BF16 kernel, or the emulated
    /// one where it has neither, which is slower than f32).
    #[arg(long, default_value = "f32")]
    precision: String,
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
    let torch_bf16 = torch && cpu_has_bf16();
    let peak = sgemm_peak();
    println!(
        "cpu {}; {} tile; threads {threads}; sgemm peak measured here {peak:.0} GFLOP/s",
        cpu_model(),
        recurrent::kernels::gemm::tile_kernel_name()
    );
    if !torch {
        println!(
            "(PyTorch not found: install it with `pip install torch` for the reference column)"
        );
    } else if !torch_bf16 {
        println!(
            "(PyTorch bf16 autocast not run: this CPU has neither AVX512-BF16 nor AMX-BF16, \
             where oneDNN cannot build a bf16 LSTM and runs a bf16 GRU far slower than float32)"
        );
    }
    let precisions = parse_precisions(&args.precision)?;
    if precisions.contains(&Precision::Bf16) {
        println!("{}", bf16_kernel_line());
    }
    println!(
        "{:<31} {:>10} {:>10} {:>10} {:>6} {:>11} {:>8} {:>6} {:>8} {:>8}",
        "training",
        "ours tok/s",
        "torch f32",
        "torch bf16",
        "ratio",
        "round range",
        "GFLOP/s",
        "peak%",
        "ours MB",
        "torch MB"
    );
    let mut torch_notes = Vec::new();
    let names: Vec<&str> = args.configs.split(',').map(str::trim).collect();
    for config in CONFIGS.iter().filter(|c| names.contains(&c.name)) {
        let m = measure(&args, torch, || {
            let ours = precisions
                .iter()
                .map(|p| {
                    spawn_child(
                        &format!("train:{}:{}", config.name, p.name()),
                        args.steps,
                        threads,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let mut theirs = Vec::new();
            if torch {
                theirs.push(torch_train(&args, config, threads, "none").ok());
                theirs.push(if !torch_bf16 {
                    None
                } else {
                    match torch_train(&args, config, threads, "bf16") {
                        Ok(v) => Some(v),
                        Err(e) => {
                            torch_notes.push(format!(
                                "({}) PyTorch bf16 autocast failed: {e}",
                                config.name
                            ));
                            None
                        }
                    }
                });
            }
            Ok((ours, theirs))
        })?;
        for (i, p) in precisions.iter().enumerate() {
            let gflops = m.ours[i] * config.flops_per_token() / 1e9;
            println!(
                "{:<31} {:>10.0} {:>10} {:>10} {:>6} {:>11} {:>8.1} {:>5.0}% {:>8.0} {:>8}",
                format!("{} {}", config.label(), p.name()),
                m.ours[i],
                m.theirs_column(0),
                m.theirs_column(1),
                m.ratio_column(i),
                m.range_column(i),
                gflops,
                100.0 * gflops / peak,
                m.ours_mb[i],
                m.theirs_mb.map_or("-".into(), |x| format!("{x:.0}")),
            );
        }
    }
    if torch {
        println!("(ratio: ours / PyTorch's faster path in the same round; torch bf16 is autocast)");
    }
    torch_notes.dedup();
    for note in torch_notes {
        println!("{note}");
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
                Ok((vec![ours], theirs.into_iter().collect()))
            })?;
            println!(
                "{:<26} {:>10.0} {:>10} {:>6} {:>11}",
                format!("1000 tokens, batch {batch}, {dtype}"),
                m.ours[0],
                m.theirs_column(0),
                m.ratio_column(0),
                m.range_column(0),
            );
        }
    }
    Ok(())
}

/// One configuration's rows: medians over `--rounds` alternating measurements.
struct Measured {
    /// Our tokens/s, one per row (precision).
    ours: Vec<f64>,
    /// PyTorch's tokens/s, one per path (float32, bf16 autocast).
    theirs: Vec<Option<f64>>,
    /// Per row, each round's ours / PyTorch's faster path that round, sorted.
    ratios: Vec<Vec<f64>>,
    ours_mb: Vec<f64>,
    theirs_mb: Option<f64>,
}

/// Runs `round` (ours, then PyTorch's paths when `torch`) `--rounds` times
/// and takes the medians; a PyTorch path that failed is left out of a round.
fn measure(
    args: &BenchArgs,
    torch: bool,
    mut round: impl FnMut() -> Result<(Vec<Value>, Vec<Option<Value>>)>,
) -> Result<Measured> {
    let tps = |v: &Value| v["tokens_per_sec"].as_f64();
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ours_mb, mut theirs_mb) = (Vec::new(), None::<f64>);
    for _ in 0..args.rounds {
        let (o, t) = round()?;
        ours.resize(o.len(), Vec::new());
        ratios.resize(o.len(), Vec::new());
        ours_mb.resize(o.len(), 0.0f64);
        theirs.resize(t.len(), Vec::new());
        let t: Vec<Option<&Value>> = t.iter().map(|t| t.as_ref().filter(|_| torch)).collect();
        let best = t
            .iter()
            .flatten()
            .filter_map(|v| tps(v))
            .fold(None, |b: Option<f64>, x| Some(b.map_or(x, |b| b.max(x))));
        for (i, o) in o.iter().enumerate() {
            let o_tps = tps(o).unwrap_or(0.0);
            ours[i].push(o_tps);
            ours_mb[i] = ours_mb[i].max(o["peak_rss_mb"].as_f64().unwrap_or(0.0));
            if let Some(best) = best {
                ratios[i].push(o_tps / best);
            }
        }
        for (j, t) in t.iter().enumerate() {
            let Some(t) = t else { continue };
            if let Some(x) = tps(t) {
                theirs[j].push(x);
            }
            if let Some(mb) = t["peak_rss_mb"].as_f64() {
                theirs_mb = Some(theirs_mb.map_or(mb, |x| x.max(mb)));
            }
        }
    }
    ratios.iter_mut().for_each(|r| r.sort_by(f64::total_cmp));
    Ok(Measured {
        ours: ours.iter_mut().map(|v| median(v).unwrap_or(0.0)).collect(),
        theirs: theirs.iter_mut().map(|v| median(v)).collect(),
        ratios,
        ours_mb,
        theirs_mb,
    })
}

impl Measured {
    fn theirs_column(&self, path: usize) -> String {
        self.theirs
            .get(path)
            .copied()
            .flatten()
            .map_or("-".into(), |t| format!("{t:.0}"))
    }

    /// The median of the rounds' ratios (each round compares runs taken
    /// seconds apart, so a slow moment of the machine hits both).
    fn ratio_column(&self, row: usize) -> String {
        median(&mut self.ratios[row].clone()).map_or("-".into(), |r| format!("{r:.2}x"))
    }

    fn range_column(&self, row: usize) -> String {
        let r = &self.ratios[row];
        match (r.first(), r.last()) {
            (Some(lo), Some(hi)) if r.len() > 1 => format!("{lo:.2}-{hi:.2}"),
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
            let (name, precision) = arg.split_once(':').unwrap_or((arg, "f32"));
            let config = CONFIGS
                .iter()
                .find(|c| c.name == name)
                .context("unknown configuration")?;
            let precision: Precision = precision.parse().map_err(anyhow::Error::msg)?;
            if precision == Precision::Bf16 && bf16_kernel().is_none() {
                // No bf16 instructions: measure the emulated kernel rather
                // than a float32 run under bf16's name.
                force_bf16_kernel(Some(Bf16Kernel::Emulated));
            }
            train_speed(config, steps, precision)?
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
fn train_speed(config: &Config, steps: usize, precision: Precision) -> Result<f64> {
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
    trainer.set_precision(precision);
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
        // Python's last line says what failed (the traceback is above it).
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!("{}", stderr.trim().lines().last().unwrap_or("no message"));
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

/// PyTorch's training speed, in float32 (`autocast` "none") or under bf16
/// autocast.
fn torch_train(args: &BenchArgs, c: &Config, threads: usize, autocast: &str) -> Result<Value> {
    let mut a = torch_model_args(c, c.batch, threads);
    a.extend([
        "--seq-len".into(),
        SEQ_LEN.to_string(),
        "--steps".into(),
        args.steps.to_string(),
        "--autocast".into(),
        autocast.into(),
    ]);
    torch_json(args, &a)
}

fn torch_sample(args: &BenchArgs, batch: usize, dtype: &str, threads: usize) -> Result<Value> {
    let mut a = torch_model_args(&CONFIGS[1], batch, threads);
    a.extend(["--sample".into(), "1000".into(), "--no-mkldnn".into()]);
    a.extend(["--dtype".into(), dtype.into()]);
    torch_json(args, &a)
}

/// `f32`, `bf16` or both, comma-separated.
fn parse_precisions(list: &str) -> Result<Vec<Precision>> {
    let mut out = Vec::new();
    for p in list.split(',').map(str::trim) {
        let p: Precision = p.parse().map_err(|e| anyhow::anyhow!("--precision: {e}"))?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Whether the CPU has bf16 instructions (AVX512-BF16 or AMX-BF16), without
/// which PyTorch's bf16 autocast cannot be its faster path: oneDNN cannot build
/// a bf16 LSTM there, and ran the bf16 GRU of (d) for over 7 minutes per 20
/// steps on an AVX2 EPYC (session 13), so the bench does not run it.
fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bf16") {
        return true;
    }
    // AMX's detection is not stable in `std` yet; Linux lists it.
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "amx_bf16"))
    })
}

/// The CPU's model name as Linux reports it, or "unknown".
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Which kernel our bf16 rows run on.
fn bf16_kernel_line() -> String {
    match bf16_kernel() {
        Some(k) => format!("bf16 kernel: {}", k.name()),
        None => "bf16 kernel: emulated (this CPU has neither AMX-BF16 nor AVX512-BF16, so our \
                 bf16 rows round operands in memory and run the float32 kernels: slower than f32)"
            .into(),
    }
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
