//! Times the gradient all-reduce of data-parallel training under MPI:
//! `mpiexec -n 2 target/release/examples/allreduce [PARAMS] [REPEATS]`
//! sums a buffer of PARAMS floats (default 3,322,497: model (b) of `recurrent
//! bench`) over the ranks REPEATS times (default 30) and prints the median
//! and the bandwidth reached by the 2 (N-1)/N of the bytes each rank moves.
//! Build: `cargo build --release --features mpi -p recurrent-train --example allreduce`.

#[cfg(feature = "mpi")]
fn main() {
    use recurrent_train::collective::mpi::MpiWorld;
    use recurrent_train::Collective;
    use std::time::Instant;

    let mut args = std::env::args().skip(1);
    let params: usize = args
        .next()
        .map_or(3_322_497, |a| a.parse().expect("PARAMS"));
    let repeats: usize = args.next().map_or(30, |a| a.parse().expect("REPEATS"));
    let world = MpiWorld::init().expect("MPI starts");
    let mut grads: Vec<f32> = (0..params).map(|i| (i % 97) as f32 * 1e-3).collect();
    let mut times = Vec::with_capacity(repeats + 3);
    for _ in 0..repeats + 3 {
        let started = Instant::now();
        world.sum_f32(&mut grads);
        times.push(started.elapsed().as_secs_f64());
    }
    times.drain(..3); // warm-up: connections and buffers
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    if world.is_leader() {
        let n = world.ranks() as f64;
        let moved = 2.0 * (n - 1.0) / n * 4.0 * params as f64;
        println!(
            "all-reduce of {params} floats ({:.1} MB) on {} ranks: median {:.2} ms, \
             min {:.2} ms, {:.2} GB/s per rank",
            4.0 * params as f64 / 1e6,
            world.ranks(),
            median * 1e3,
            times[0] * 1e3,
            moved / median / 1e9
        );
    }
}

#[cfg(not(feature = "mpi"))]
fn main() {
    eprintln!("build with --features mpi and run under mpiexec");
    std::process::exit(2);
}
