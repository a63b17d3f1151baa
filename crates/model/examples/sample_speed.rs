//! Generation-step throughput of model (b) (char LSTM 2x512, embedding 64,
//! vocabulary 65): the prepared [`StepModel`] against the training forward's
//! `LanguageModel::step`, at a few batch sizes. Sampling is left out: this
//! times the network only.
//!
//! `sample_speed [threads] [batches, comma-separated] [cell]`; `WEIGHTS=bf16`
//! packs the weights as bfloat16 (`sample --weights bf16`), `LN=1` makes the
//! layers layer-normalized.
use recurrent_kernels::Rng;
use recurrent_model::infer::{StepModel, StepWorkspace, WeightFormat};
use recurrent_model::{CellKind, LanguageModel, ModelConfig, State, Workspace};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).map_or(2, |s| s.parse().unwrap());
    let batches: Vec<usize> = args.get(2).map_or(vec![1, 64], |s| {
        s.split(',').map(|b| b.parse().unwrap()).collect()
    });
    let cell: CellKind = args.get(3).map_or(CellKind::Lstm, |s| s.parse().unwrap());
    recurrent_kernels::threads::set_this_thread(threads);
    let config = ModelConfig {
        cell,
        vocab_size: 65,
        embed: 64,
        hidden: 512,
        layers: 2,
        dense: 0,
        dropout: 0.0,
        tie: false,
        layer_norm: std::env::var_os("LN").is_some(),
        last_hidden: 0,
    };
    let model = LanguageModel::new(config.clone(), &mut Rng::new(1), None).unwrap();
    let start = Instant::now();
    let format = match std::env::var("WEIGHTS").as_deref() {
        Ok("bf16") => WeightFormat::Bf16,
        _ => WeightFormat::F32,
    };
    let fast = StepModel::with_format(&model, format);
    println!(
        "{cell}: prepared {:.1} MB of weights in {:.1} ms",
        fast.weight_bytes() as f64 / 1e6,
        start.elapsed().as_secs_f64() * 1e3
    );
    for b in batches {
        let steps = (4000 / b).clamp(50, 1000);
        let tokens: Vec<u32> = (0..b as u32).map(|i| i % 65).collect();
        let mut runs = Vec::new();
        let mut cpu_runs = Vec::new();
        for _ in 0..5 {
            let mut ws = StepWorkspace::default();
            let mut state = State::zeros(&config, b);
            fast.step(&mut ws, &tokens, &mut state).unwrap();
            let (start, cpu) = (Instant::now(), thread_cpu_ns());
            for _ in 0..steps {
                fast.step(&mut ws, &tokens, &mut state).unwrap();
            }
            runs.push((steps * b) as f64 / start.elapsed().as_secs_f64());
            cpu_runs.push((steps * b) as f64 / ((thread_cpu_ns() - cpu) as f64 * 1e-9));
        }
        cpu_runs.sort_by(f64::total_cmp);
        let mut ws = Workspace::default();
        let mut state = State::zeros(&config, b);
        model.step(&mut ws, &tokens, &mut state).unwrap();
        let ref_steps = steps / 10 + 1;
        let start = Instant::now();
        for _ in 0..ref_steps {
            model.step(&mut ws, &tokens, &mut state).unwrap();
        }
        let reference = (ref_steps * b) as f64 / start.elapsed().as_secs_f64();
        runs.sort_by(f64::total_cmp);
        println!(
            "batch {b:>3}: {:>9.0} tok/s (median of 5, best {:.0}; {:.1} us/step; \
             per CPU second of the main thread {:.0}), training forward {:>8.0}",
            runs[2],
            runs[4],
            1e6 * b as f64 / runs[2],
            cpu_runs[2],
            reference
        );
    }
}

/// CPU time of the calling thread in ns (Linux; 0 elsewhere): with one
/// thread, tokens per CPU second are steadier than per wall second on a
/// machine shared with other work.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
