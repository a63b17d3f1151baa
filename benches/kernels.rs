//! Criterion micro-benchmarks of the hot kernels, so a regression is visible:
//! one recurrent layer's forward and backward over a `T=100` block for each
//! cell, the per-step GEMM shape, the fused softmax cross-entropy, and one
//! generation step of model (b) with f32 and bf16 weights.
//!
//! `cargo bench --bench kernels` (add `-- lstm` to pick some).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use recurrent::kernels::{sgemm, threads, MatMut, MatRef, Rng};
use recurrent::model::infer::{StepModel, StepWorkspace, WeightFormat};
use recurrent::model::{LanguageModel, ModelConfig, State};
use recurrent::nn::loss::softmax_cross_entropy;
use recurrent::nn::recurrent::{Block, Downstream, LayerGrads, LayerParams, Upstream};
use recurrent::nn::{CellKind, LayerCache, RecurrentLayer};
use std::hint::black_box;

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(-0.1, 0.1)).collect()
}

/// Forward + backward of one layer, `T=100`, at the widths.
fn layers(c: &mut Criterion) {
    threads::set_this_thread(threads::available().min(2));
    let (t, b) = (100, 64);
    let mut group = c.benchmark_group("layer_fwd_bwd");
    group.sample_size(10);
    for (cell, h) in [
        (CellKind::Lstm, 128),
        (CellKind::Lstm, 512),
        (CellKind::Gru, 512),
        (CellKind::RnnTanh, 512),
    ] {
        let layer = RecurrentLayer {
            cell,
            input_size: h,
            hidden_size: h,
        };
        let gh = layer.gate_rows();
        let mut rng = Rng::new(1);
        let (w_ih, w_hh, b_ih, b_hh) = (
            random(&mut rng, gh * h),
            random(&mut rng, gh * h),
            random(&mut rng, gh),
            random(&mut rng, gh),
        );
        let x = random(&mut rng, t * b * h);
        let dy = random(&mut rng, t * b * h);
        let zeros = vec![0.0; b * h];
        let (mut gw_ih, mut gw_hh, mut gb_ih, mut gb_hh) = (
            vec![0.0; gh * h],
            vec![0.0; gh * h],
            vec![0.0; gh],
            vec![0.0; gh],
        );
        let mut dx = vec![0.0; t * b * h];
        let mut cache = LayerCache::default();
        group.throughput(Throughput::Elements((t * b) as u64));
        group.bench_function(BenchmarkId::new(cell.name(), h), |bench| {
            bench.iter(|| {
                let p = LayerParams {
                    w_ih: &w_ih,
                    w_hh: &w_hh,
                    b_ih: &b_ih,
                    b_hh: &b_hh,
                };
                layer.forward(p, &x, Block::new(t, b, &zeros, &zeros), &mut cache, true);
                let g = LayerGrads {
                    w_ih: &mut gw_ih,
                    w_hh: &mut gw_hh,
                    b_ih: &mut gb_ih,
                    b_hh: &mut gb_hh,
                };
                layer.backward(
                    p,
                    g,
                    &x,
                    Upstream::outputs(&dy),
                    &mut cache,
                    Downstream {
                        dx: Some(&mut dx),
                        dh0: None,
                        dc0: None,
                    },
                );
                black_box(&dx);
            })
        });
    }
    group.finish();
}

/// The per-time-step product `h · W_hhᵀ` (M = batch) and a whole-block product.
fn gemm_shapes(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm");
    for (m, n, k) in [(64, 2048, 512), (6400, 2048, 512), (2048, 512, 6400)] {
        let mut rng = Rng::new(2);
        let a = random(&mut rng, m * k);
        let bm = random(&mut rng, n * k);
        let mut out = vec![0.0; m * n];
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.bench_function(format!("{m}x{n}x{k}"), |bench| {
            bench.iter(|| {
                sgemm(
                    1.0,
                    MatRef::new(&a, m, k),
                    MatRef::new(&bm, n, k).t(),
                    0.0,
                    MatMut::new(&mut out, m, n),
                )
            })
        });
    }
    group.finish();
}

/// Fused softmax + cross-entropy + gradient over a `[6400, 65]` block.
fn loss(c: &mut Criterion) {
    let (n, v) = (6400, 65);
    let mut rng = Rng::new(3);
    let logits = random(&mut rng, n * v);
    let targets: Vec<u32> = (0..n).map(|_| rng.below(v as u64) as u32).collect();
    let mut d = vec![0.0; n * v];
    c.bench_function("softmax_ce_6400x65", |bench| {
        bench.iter(|| {
            black_box(softmax_cross_entropy(
                &logits,
                &targets,
                v,
                Some(&mut d),
                1.0 / n as f32,
            ))
        })
    });
}

/// One generation step of model (b) (char LSTM 2x512) at batch 1 (bound by
/// streaming the weights) and batch 64 (bound by arithmetic), per format.
fn generation(c: &mut Criterion) {
    threads::set_this_thread(threads::available().min(2));
    let config = ModelConfig {
        cell: CellKind::Lstm,
        vocab_size: 65,
        embed: 64,
        hidden: 512,
        layers: 2,
        dense: 0,
        dropout: 0.0,
        tie: false,
        layer_norm: false,
        last_hidden: 0,
    };
    let model = LanguageModel::new(config.clone(), &mut Rng::new(4), None).unwrap();
    let mut group = c.benchmark_group("generation_step");
    for (format, name) in [(WeightFormat::F32, "f32"), (WeightFormat::Bf16, "bf16")] {
        let fast = StepModel::with_format(&model, format);
        for b in [1, 64] {
            let tokens: Vec<u32> = (0..b as u32).map(|i| i % 65).collect();
            let (mut ws, mut state) = (StepWorkspace::default(), State::zeros(&config, b));
            group.throughput(Throughput::Elements(b as u64));
            group.bench_function(BenchmarkId::new(name, b), |bench| {
                bench.iter(|| black_box(fast.step(&mut ws, &tokens, &mut state).unwrap()[0]))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, layers, gemm_shapes, loss, generation);
criterion_main!(benches);
