//! The MPI collectives in a real job: this test starts `mpiexec -n 3` on its
//! own test executable, whose ranks (told apart by an environment variable)
//! run the checks below and exit non-zero on any mismatch. Built only with
//! the `mpi` feature; needs `mpiexec` on the PATH (Debian's mpich).
#![cfg(feature = "mpi")]

use std::process::Command;

use recurrent_train::collective::mpi::MpiWorld;
use recurrent_train::Collective;

const CHILD: &str = "RECURRENT_MPI_TEST_RANK";

/// The body every rank runs.
fn collectives_on_every_rank() {
    let world = MpiWorld::init().expect("MPI starts once");
    let (rank, ranks) = (world.rank(), world.ranks());
    assert_eq!(ranks, 3);

    // Sums: every rank gets the same bits, for sizes above any eager limit too.
    for n in [1usize, 7, 300_001] {
        let mut v: Vec<f32> = (0..n)
            .map(|i| (i as f32 * 0.37 + rank as f32).sin())
            .collect();
        world.sum_f32(&mut v);
        let expected: Vec<f32> = (0..n)
            .map(|i| {
                (0..ranks)
                    .map(|r| (i as f32 * 0.37 + r as f32).sin())
                    .sum::<f32>()
            })
            .collect();
        for (a, b) in v.iter().zip(&expected) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
        // Identical on every rank: the gathered copies agree bit for bit.
        let all = world.gather_f32(&v);
        for r in 1..ranks {
            assert_eq!(
                all[..n].iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                all[r * n..(r + 1) * n]
                    .iter()
                    .map(|x| x.to_bits())
                    .collect::<Vec<_>>()
            );
        }
    }
    // Sums started in the background, several at once (as the gradient's
    // buckets are), come back in full while this thread goes on.
    let sizes = [5usize, 1 << 21, 3];
    let pending: Vec<_> = sizes
        .iter()
        .map(|&n| world.start_sum_f32(vec![rank as f32 + 1.0; n]))
        .collect();
    let busy: f32 = (0..1_000_000).map(|i| (i as f32).sqrt()).sum();
    assert!(busy > 0.0);
    for (p, n) in pending.into_iter().zip(sizes) {
        assert_eq!(p.wait(), vec![6.0; n]);
    }

    let mut d = [rank as f64, 1.0];
    world.sum_f64(&mut d);
    assert_eq!(d, [3.0, 3.0]);

    // Gather of unequal lengths, in rank order.
    let mine: Vec<f32> = vec![rank as f32; rank + 1];
    assert_eq!(world.gather_f32(&mine), [0.0, 1.0, 1.0, 2.0, 2.0, 2.0]);

    // Broadcast: rank 0's bytes, of rank 0's length, everywhere.
    let mut bytes = if rank == 0 {
        b"weights".to_vec()
    } else {
        vec![9; 2]
    };
    world.broadcast(&mut bytes);
    assert_eq!(bytes, b"weights");
}

#[test]
fn collectives_agree_across_three_ranks() {
    if std::env::var_os(CHILD).is_some() {
        collectives_on_every_rank();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("mpiexec")
        .args(["-n", "3"])
        .arg(&exe)
        .args([
            "--exact",
            "collectives_agree_across_three_ranks",
            "--test-threads",
            "1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("mpiexec runs (install mpich)");
    assert!(
        out.status.success(),
        "a rank failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Each of the three ranks ran the one test.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches("test result: ok. 1 passed").count(),
        3,
        "{stdout}"
    );
}
