//! GFLOP/s of `sgemm` and `gemm_packed` at the recurrent layers' shapes.
//! `cargo run --release -p recurrent-kernels --example gemm_bench [threads]`
use recurrent_kernels::{gemm_packed, sgemm, PackedB, Rng, Trans};
use std::time::Instant;

fn main() {
    let threads: usize = std::env::args().nth(1).map_or(2, |s| s.parse().unwrap());
    recurrent_kernels::threads::set_threads(threads);
    let mut rng = Rng::new(1);
    for &(m, n, k) in &[
        (64, 2048, 512),
        (64, 512, 2048),
        (50, 512, 128),
        (50, 128, 512),
        (6400, 2048, 512),
        (2048, 512, 6400),
    ] {
        let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let b: Vec<f32> = (0..n * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let mut c = vec![0.0; m * n];
        let flops = 2.0 * (m * n * k) as f64;
        let reps = (2e10 / flops).max(3.0) as usize;
        let time = |f: &mut dyn FnMut()| {
            f();
            let t0 = Instant::now();
            for _ in 0..reps {
                f();
            }
            flops * reps as f64 / t0.elapsed().as_secs_f64() / 1e9
        };
        let g1 = time(&mut || {
            sgemm(
                Trans::N,
                Trans::T,
                m,
                n,
                k,
                1.0,
                &a,
                k,
                &b,
                k,
                1.0,
                &mut c,
                n,
            )
        });
        let mut p = PackedB::default();
        p.pack(Trans::T, k, n, &b, k);
        let g2 = time(&mut || gemm_packed(m, &a, k, &p, true, &mut c, n, threads));
        println!("{m}x{n}x{k}: sgemm {g1:.0} GFLOP/s, packed {g2:.0} GFLOP/s");
    }
}
