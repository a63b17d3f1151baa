//! Training-step throughput of the language model at a few sizes.
//!
//! `speed [threads] [hidden] [cell] [vocab batch seq-len]`: optional filters
//! on the hidden size and cell name; the last three switch to a word-level
//! shape (tied embedding of width `hidden`, e.g. `speed 2 200 lstm 10000 20 35`
//! for PyTorch's word_language_model on PTB). With `PROFILE=1` it also prints wall time per phase (see
//! `recurrent_kernels::profile`) and the sustained GFLOP/s of the step;
//! `DROPOUT=p` sets the dropout (default 0.2; `recurrent bench` uses 0);
//! `RECURRENT_GEMM=crate` sends the large products to the `gemm` crate.
use recurrent_kernels::Rng;
use recurrent_model::{CellKind, LanguageModel, ModelConfig, State, TokenBlock, Workspace};
use std::time::Instant;

const CONFIGS: [(CellKind, usize, usize, usize); 5] = [
    (CellKind::Lstm, 2, 128, 50),
    (CellKind::Lstm, 2, 512, 64),
    (CellKind::Gru, 2, 512, 64),
    (CellKind::RnnTanh, 2, 512, 64),
    (CellKind::Gru, 2, 128, 50),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(2);
    let only_hidden: Option<usize> = args.get(2).map(|s| s.parse().unwrap());
    let only_cell: Option<CellKind> = args.get(3).map(|s| s.parse().unwrap());
    let word: Option<Vec<usize>> =
        (args.len() >= 7).then(|| args[4..7].iter().map(|s| s.parse().unwrap()).collect());
    let profile = std::env::var_os("PROFILE").is_some();
    let dropout: f32 = std::env::var("DROPOUT").map_or(0.2, |p| p.parse().unwrap());
    recurrent_kernels::threads::set_this_thread(threads);
    recurrent_kernels::gemm::force_gemm_crate(
        std::env::var("RECURRENT_GEMM").is_ok_and(|v| v == "crate"),
    );
    let mut configs = CONFIGS.to_vec();
    if let (Some(w), Some(h), Some(c)) = (&word, only_hidden, only_cell) {
        configs = vec![(c, 2, h, w[1])];
    }
    for (cell, layers, hidden, batch) in configs {
        if only_hidden.is_some_and(|h| h != hidden) || only_cell.is_some_and(|c| c != cell) {
            continue;
        }
        let (vocab, t) = word.as_ref().map_or((65, 100), |w| (w[0], w[2]));
        let config = ModelConfig {
            cell,
            vocab_size: vocab,
            embed: if word.is_some() { hidden } else { 64 },
            hidden,
            layers,
            dense: 0,
            dropout,
            tie: word.is_some(),
            layer_norm: false,
            last_hidden: 0,
        };
        let mut rng = Rng::new(1);
        let m = LanguageModel::new(config.clone(), &mut rng, None).unwrap();
        let tokens: Vec<u32> = (0..t * batch)
            .map(|_| rng.below(vocab as u64) as u32)
            .collect();
        let mut ws = Workspace::default();
        let mut st = State::zeros(&config, batch);
        let mut g = vec![0.0; m.num_params()];
        let mut step = || {
            m.train_block(
                &mut ws,
                TokenBlock::new(&tokens, &tokens, t, batch),
                &mut st,
                &mut rng,
                &mut g,
            )
            .unwrap();
        };
        step();
        recurrent_kernels::profile::enable(profile);
        let n = 5;
        let mut times: Vec<f64> = (0..n)
            .map(|_| {
                let t0 = Instant::now();
                step();
                t0.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let dt = times[n / 2];
        let gflop = flops(&config, t * batch) / 1e9;
        println!(
            "{cell} {layers}x{hidden} b{batch}: {:.0} tok/s ({:.1} ms/step median of {n}, {:.0} GFLOP/s)",
            (t * batch) as f64 / dt,
            dt * 1e3,
            gflop / dt
        );
        if profile {
            for (name, secs, calls) in recurrent_kernels::profile::totals() {
                println!(
                    "  {name:<14} {:7.1} ms/step ({calls} calls)",
                    secs * 1e3 / n as f64
                );
            }
        }
    }
}

/// Multiply-add FLOPs of one training block of `n` tokens: forward, backward
/// (input, recurrent and weight gradients) of every layer, and the decoder.
fn flops(c: &ModelConfig, n: usize) -> f64 {
    let gh = (c.cell.gates() * c.hidden) as f64;
    let n = n as f64;
    let mut f = 0.0;
    for k in 0..c.layers {
        let i = c.layer_input(k) as f64;
        let h = c.hidden as f64;
        // Forward: x·W_ihᵀ, h·W_hhᵀ. Backward: dG·W_hh, dW_hh, dW_ih, dx.
        f += 2.0 * n * gh * (i + h) * 2.0 + 2.0 * n * gh * h + 2.0 * n * gh * i;
    }
    f + 3.0 * 2.0 * n * (c.hidden * c.vocab_size) as f64
}
