//! Training-step throughput of the seq2seq model on batches shaped like the
//! eng-fra pairs (sources of ~8 tokens, targets of ~10), with `PROFILE=1`
//! printing wall time per phase.
//!
//! `seq2seq_speed [threads] [hidden] [vocab] [batch]`
use recurrent_kernels::Rng;
use recurrent_model::seq2seq::{
    Seq2Seq, Seq2SeqBatch, Seq2SeqConfig, Seq2SeqWorkspace, TrainOptions,
};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap())
        .collect();
    let arg = |i: usize, d: usize| args.get(i).copied().unwrap_or(d);
    let (threads, hidden, vocab, b) = (arg(0, 2), arg(1, 256), arg(2, 8000), arg(3, 64));
    recurrent_kernels::threads::set_this_thread(threads);
    let mut c = Seq2SeqConfig::new(vocab, vocab + 2, hidden, hidden);
    c.layers = 2;
    c.dropout = 0.2;
    let mut rng = Rng::new(1);
    let m = Seq2Seq::new(c, &mut rng).unwrap();
    let (s, t) = (8, 12);
    let src: Vec<u32> = (0..b * s).map(|_| rng.below(vocab as u64) as u32).collect();
    let tgt: Vec<u32> = (0..b * t).map(|_| rng.below(vocab as u64) as u32).collect();
    let src_lens: Vec<usize> = (0..b).map(|i| s - i % 3).collect();
    let tgt_lens: Vec<usize> = (0..b).map(|i| t - i % 4).collect();
    let batch = Seq2SeqBatch {
        src: &src,
        src_lens: &src_lens,
        tgt: &tgt,
        tgt_lens: &tgt_lens,
    };
    let mut ws = Seq2SeqWorkspace::default();
    let mut g = vec![0.0; m.num_params()];
    let opts = TrainOptions::default();
    let mut step = || {
        m.train_batch(&mut ws, &batch, &opts, &mut rng, &mut g)
            .unwrap()
            .tokens
    };
    step();
    recurrent_kernels::profile::enable(std::env::var_os("PROFILE").is_some());
    let n = 10;
    let t0 = Instant::now();
    let tokens: usize = (0..n).map(|_| step()).sum();
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "seq2seq 2x{hidden} V={vocab} b{b}: {:.0} target tok/s ({:.1} ms/step)",
        tokens as f64 / dt,
        dt * 1e3 / n as f64
    );
    for (name, secs, calls) in recurrent_kernels::profile::totals() {
        println!(
            "  {name:<16} {:7.1} ms/step ({calls} calls)",
            secs * 1e3 / n as f64
        );
    }
}
