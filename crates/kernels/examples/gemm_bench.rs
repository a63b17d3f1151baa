//! GFLOP/s of `sgemm` at the layers' whole-block shapes (with their real
//! transposes) and of `gemm_packed` at the per-step shapes.
//! `cargo run --release -p recurrent-kernels --example gemm_bench [threads]`;
//! `RECURRENT_GEMM=crate` times the `gemm` crate behind `sgemm` instead.
//! Rates are of the fastest call (`BENCH_MEAN=1`: of the mean call).
use recurrent_kernels::{gemm_packed, sgemm, MatMut, MatRef, PackedB, Rng, Trans};
use std::time::Instant;

fn main() {
    let threads: usize = std::env::args().nth(1).map_or(2, |s| s.parse().unwrap());
    recurrent_kernels::threads::set_this_thread(threads);
    recurrent_kernels::gemm::force_gemm_crate(
        std::env::var("RECURRENT_GEMM").is_ok_and(|v| v == "crate"),
    );
    let mut rng = Rng::new(1);
    let mut v = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect() };
    // The fastest of many timed calls: a call that was not preempted, so the
    // figure holds on a busy machine too (set BENCH_MEAN=1 for the mean).
    let mean = std::env::var_os("BENCH_MEAN").is_some();
    let time = |flops: f64, f: &mut dyn FnMut()| {
        let reps = (2e10 / flops).max(3.0) as usize;
        f();
        let (t0, mut best) = (Instant::now(), f64::INFINITY);
        for _ in 0..reps {
            let t = Instant::now();
            f();
            best = best.min(t.elapsed().as_secs_f64());
        }
        let secs = if mean {
            t0.elapsed().as_secs_f64() / reps as f64
        } else {
            best
        };
        flops / secs / 1e9
    };
    // (what, ta, tb, m, n, k)
    for &(what, ta, tb, m, n, k) in &[
        ("in_proj", Trans::N, Trans::T, 6400, 2048, 512),
        ("in_proj l0", Trans::N, Trans::T, 6400, 2048, 64),
        ("dW", Trans::T, Trans::N, 2048, 512, 6400),
        ("dW l0", Trans::T, Trans::N, 2048, 64, 6400),
        ("dx", Trans::N, Trans::N, 6400, 512, 2048),
        ("decoder", Trans::N, Trans::T, 6400, 65, 512),
        ("dW dec", Trans::T, Trans::N, 65, 512, 6400),
        ("dW 128", Trans::T, Trans::N, 512, 128, 5000),
        // Word level: 35x20 tokens, 10k words, width 200 (PTB, tied).
        ("word dec", Trans::N, Trans::T, 700, 10000, 200),
        ("word dW", Trans::T, Trans::N, 10000, 200, 700),
        ("word dh", Trans::N, Trans::N, 700, 200, 10000),
    ] {
        let (ar, ac) = if ta == Trans::N { (m, k) } else { (k, m) };
        let (br, bc) = if tb == Trans::N { (k, n) } else { (n, k) };
        let (a, b, mut c) = (v(ar * ac), v(br * bc), v(m * n));
        let g = time(2.0 * (m * n * k) as f64, &mut || {
            let a = MatRef::new(&a, ar, ac);
            let b = MatRef::new(&b, br, bc);
            let a = if ta == Trans::T { a.t() } else { a };
            let b = if tb == Trans::T { b.t() } else { b };
            sgemm(1.0, a, b, 1.0, MatMut::new(&mut c, m, n))
        });
        println!("{what:<10} {m}x{n}x{k} {ta:?}{tb:?}: sgemm {g:.0} GFLOP/s");
    }
    for &(m, n, k) in &[
        (64, 2048, 512),
        (32, 2048, 512),
        (32, 512, 2048),
        (25, 512, 128),
    ] {
        let (a, b, mut c) = (v(m * k), v(n * k), v(m * n));
        let mut p = PackedB::default();
        p.pack(MatRef::new(&b, n, k).t());
        for t in [1, threads] {
            let g = time(2.0 * (m * n * k) as f64, &mut || {
                gemm_packed(
                    MatRef::new(&a, m, k),
                    &p,
                    true,
                    MatMut::new(&mut c, m, n),
                    t,
                )
            });
            println!("step {m}x{n}x{k}: packed {g:.0} GFLOP/s on {t} thread(s)");
        }
    }
}
