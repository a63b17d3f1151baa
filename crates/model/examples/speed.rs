use recurrent_kernels::Rng;
use recurrent_model::{CellKind, LanguageModel, ModelConfig, State, Workspace};
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(2);
    // Optional second argument: run only the configs with this hidden size.
    let only: Option<usize> = args.get(2).map(|s| s.parse().unwrap());
    recurrent_kernels::threads::set_threads(threads);
    for (cell, layers, hidden, batch) in
        [(CellKind::Lstm, 2, 128, 50), (CellKind::Lstm, 2, 512, 64)]
    {
        if only.is_some_and(|h| h != hidden) {
            continue;
        }
        let config = ModelConfig {
            cell,
            vocab_size: 65,
            embed: 64,
            hidden,
            layers,
            dense: 0,
            dropout: 0.2,
            tie: false,
        };
        let mut rng = Rng::new(1);
        let m = LanguageModel::new(config.clone(), &mut rng, None).unwrap();
        let t = 100;
        let tokens: Vec<u32> = (0..t * batch).map(|_| rng.below(65) as u32).collect();
        let mut ws = Workspace::default();
        let mut st = State::zeros(&config, batch);
        let mut g = vec![0.0; m.num_params()];
        m.train_block(
            &mut ws, &tokens, &tokens, t, batch, &mut st, None, &mut rng, &mut g,
        );
        let n = 5;
        let t0 = Instant::now();
        for _ in 0..n {
            m.train_block(
                &mut ws, &tokens, &tokens, t, batch, &mut st, None, &mut rng, &mut g,
            );
        }
        let dt = t0.elapsed().as_secs_f64() / n as f64;
        println!(
            "{cell} {layers}x{hidden} b{batch}: {:.0} tok/s ({:.1} ms/step)",
            (t * batch) as f64 / dt,
            dt * 1e3
        );
    }
}
