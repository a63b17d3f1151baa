use super::*;
use crate::CellKind;
use crate::Workspace;
use recurrent_kernels::Rng;

const CELLS: [CellKind; 4] = [
    CellKind::RnnTanh,
    CellKind::RnnRelu,
    CellKind::Lstm,
    CellKind::Gru,
];

/// `(embed, dense, tie, embedding table)`: one-hot input, an embedding with
/// and without the precomputed table, a dense layer, tying (with and without
/// the dense layer in between).
const INPUTS: [(usize, usize, bool, bool); 6] = [
    (0, 0, false, true),
    (5, 0, false, true),
    (5, 0, false, false),
    (0, 7, false, true),
    (20, 0, true, false),
    (7, 7, true, true),
];

fn model(cell: CellKind, embed: usize, dense: usize, tie: bool, hidden: usize) -> LanguageModel {
    let config = ModelConfig {
        cell,
        vocab_size: 11,
        embed,
        hidden,
        layers: 2,
        dense,
        dropout: 0.3,
        tie,
        layer_norm: false,
        last_hidden: 0,
    };
    let mut rng = Rng::new(7 + cell as u64 + hidden as u64);
    let mut m = LanguageModel::new(config, &mut rng, Some(1.0)).unwrap();
    // Non-zero decoder bias too, and weights big enough to drive the gates
    // away from 0 (where every cell is nearly linear).
    for p in &mut m.params {
        *p += rng.uniform(-0.3, 0.3);
    }
    m
}

fn random_state(config: &ModelConfig, b: usize, rng: &mut Rng) -> State {
    let mut s = State::zeros(config, b);
    s.h.iter_mut().for_each(|x| *x = rng.uniform(-0.9, 0.9));
    s.c.iter_mut().for_each(|x| *x = rng.uniform(-2.0, 2.0));
    s
}

/// Largest `|a - b| / (1 + |b|)`.
fn max_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f32::max)
}

/// Steps `model` both ways for a few tokens from a random state and checks
/// logits and state agree; returns the fast path's logits of every step.
fn compare(m: &LanguageModel, fast: &StepModel, b: usize, threads: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let s0 = random_state(&m.config, b, &mut rng);
    let (mut s_ref, mut s_fast) = (s0.clone(), s0);
    let (mut ws_ref, mut ws_fast) = (Workspace::default(), StepWorkspace::default());
    let mut all = Vec::new();
    for step in 0..4 {
        let v = m.config.vocab_size as u64;
        let tokens: Vec<u32> = (0..b).map(|_| rng.below(v) as u32).collect();
        let want = m.step(&mut ws_ref, &tokens, &mut s_ref).unwrap().to_vec();
        let got = fast.step_on(&mut ws_fast, &tokens, &mut s_fast, threads);
        let what = format!(
            "{} embed {} dense {} tie {} b {b} t {threads} step {step}",
            m.config.cell, m.config.embed, m.config.dense, m.config.tie
        );
        assert!(
            max_err(got, &want) < 1e-5,
            "{what}: logits {}",
            max_err(got, &want)
        );
        assert!(max_err(&s_fast.h, &s_ref.h) < 1e-5, "{what}: h");
        assert!(max_err(&s_fast.c, &s_ref.c) < 1e-5, "{what}: c");
        all.extend_from_slice(got);
    }
    all
}

#[test]
fn steps_match_the_training_forward_for_every_cell_and_head() {
    for cell in CELLS {
        for (embed, dense, tie, table) in INPUTS {
            // 20 units: one full block of 16 and a padded one (RNN: one padded panel).
            let m = model(cell, embed, dense, tie, 20);
            let fast = StepModel::build(&m, table, WeightFormat::F32);
            assert_eq!(
                matches!(fast.input, InputSide::Table(_)),
                table || embed == 0
            );
            for b in [1, 3, 30] {
                compare(&m, &fast, b, 1, b as u64);
            }
        }
    }
}

#[test]
fn threads_and_batch_size_change_no_bit() {
    for cell in CELLS {
        // The second has two panels in the dense layer to split.
        for (embed, dense, tie) in [(5, 0, false), (70, 70, true)] {
            let m = model(cell, embed, dense, tie, 70);
            let fast = StepModel::new(&m);
            for b in [1, 5, 30] {
                let one = compare(&m, &fast, b, 1, 3);
                // Panels split (small batch) or rows split (30 rows, 2-3 threads).
                for t in [2, 3] {
                    assert_eq!(compare(&m, &fast, b, t, 3), one, "{cell} b {b} t {t}");
                }
            }
        }
        let m = model(cell, 5, 0, false, 70);
        let fast = StepModel::new(&m);
        // Each stream of a batch gets the logits it gets alone.
        let (mut s1, mut s3) = (State::zeros(&m.config, 1), State::zeros(&m.config, 3));
        let (mut w1, mut w3) = (StepWorkspace::default(), StepWorkspace::default());
        let v = m.config.vocab_size;
        for tok in [1u32, 4, 9, 2] {
            let alone = fast.step_on(&mut w1, &[tok], &mut s1, 1).to_vec();
            let batch = fast.step_on(&mut w3, &[0, tok, 3], &mut s3, 2);
            assert_eq!(alone, batch[v..2 * v], "{cell}");
        }
    }
}

#[test]
fn the_baseline_instruction_set_matches_too() {
    recurrent_kernels::simd::force_baseline(true);
    for cell in CELLS {
        let m = model(cell, 5, 7, false, 20);
        for table in [false, true] {
            let fast = StepModel::build(&m, table, WeightFormat::F32);
            for b in [1, 7] {
                compare(&m, &fast, b, 1, 11);
            }
        }
    }
    recurrent_kernels::simd::force_baseline(false);
}

#[test]
fn the_workspace_follows_a_change_of_batch() {
    let m = model(CellKind::Lstm, 5, 0, false, 20);
    let fast = StepModel::new(&m);
    let mut ws = StepWorkspace::default();
    for b in [4, 1, 9] {
        let mut s = State::zeros(&m.config, b);
        let mut s_ref = s.clone();
        let tokens: Vec<u32> = (0..b as u32).collect();
        let got = fast.step_on(&mut ws, &tokens, &mut s, 2).to_vec();
        let want = m
            .step(&mut Workspace::default(), &tokens, &mut s_ref)
            .unwrap()
            .to_vec();
        assert!(max_err(&got, &want) < 1e-5);
    }
}

#[test]
fn a_narrower_last_layer_steps_like_the_training_forward() {
    for cell in CELLS {
        // (hidden, last_hidden, embed, dense, tie): AWD's shape (tied to the
        // narrow top), a wider top, and a dense head over a narrow top.
        for (hidden, last, embed, dense, tie) in [
            (40, 20, 20, 0, true),
            (20, 37, 5, 0, false),
            (35, 9, 0, 7, false),
        ] {
            let config = ModelConfig {
                hidden,
                last_hidden: last,
                embed,
                dense,
                tie,
                layers: 3,
                ..model(cell, 5, 0, false, 20).config
            };
            let mut rng = Rng::new(11 + cell as u64);
            let mut m = LanguageModel::new(config, &mut rng, Some(1.0)).unwrap();
            for p in &mut m.params {
                *p += rng.uniform(-0.3, 0.3);
            }
            let fast = StepModel::new(&m);
            for b in [1, 3, 30] {
                let one = compare(&m, &fast, b, 1, 5);
                assert_eq!(compare(&m, &fast, b, 2, 5), one, "{cell} b {b}");
            }
        }
    }
}

#[test]
fn bf16_weights_step_the_rounded_model() {
    for cell in CELLS {
        for (embed, dense, tie, table) in INPUTS {
            let m = model(cell, embed, dense, tie, 20);
            let mut rounded = m.clone();
            rounded.round_weights_to_bf16();
            assert_ne!(rounded.params, m.params);
            // Built from the unrounded model: the packing rounds.
            let half = StepModel::build(&m, table, WeightFormat::Bf16);
            let full = StepModel::build(&m, table, WeightFormat::F32);
            assert!(half.weight_bytes() < full.weight_bytes());
            for b in [1, 3, 30] {
                let one = compare(&rounded, &half, b, 1, b as u64);
                assert_eq!(
                    compare(&rounded, &half, b, 2, b as u64),
                    one,
                    "{cell} b {b}"
                );
            }
            // The rounding moves the logits, but only a little.
            let mut state = random_state(&m.config, 1, &mut Rng::new(1));
            let want = m
                .step(&mut Workspace::default(), &[3], &mut state)
                .unwrap()
                .to_vec();
            let got = StepModel::with_format(&m, WeightFormat::Bf16)
                .step(
                    &mut StepWorkspace::default(),
                    &[3],
                    &mut random_state(&m.config, 1, &mut Rng::new(1)),
                )
                .unwrap()
                .to_vec();
            let err = max_err(&got, &want);
            assert!(
                err > 0.0 && err < 0.05,
                "{cell}: bf16 moved the logits by {err}"
            );
        }
    }
}

#[test]
fn layer_normalized_models_step_like_the_training_forward() {
    for cell in [CellKind::Lstm, CellKind::Gru] {
        // One-hot, an embedding with and without the table, a dense layer,
        // tying, and a narrower last layer.
        for (embed, dense, tie, table, last) in [
            (0, 0, false, true, 0),
            (5, 0, false, true, 0),
            (5, 0, false, false, 0),
            (0, 7, false, true, 0),
            (9, 0, true, false, 9),
        ] {
            let config = ModelConfig {
                layer_norm: true,
                last_hidden: last,
                tie,
                ..model(cell, embed, dense, false, 20).config
            };
            let mut rng = Rng::new(5 + cell as u64);
            let mut m = LanguageModel::new(config, &mut rng, Some(1.0)).unwrap();
            for p in &mut m.params {
                *p += rng.uniform(-0.3, 0.3);
            }
            let fast = StepModel::build(&m, table, WeightFormat::F32);
            for b in [1, 3, 30] {
                let one = compare(&m, &fast, b, 1, b as u64);
                assert_eq!(compare(&m, &fast, b, 2, b as u64), one, "{cell} b {b}");
            }
            // bf16 steps the rounded model here too.
            let mut rounded = m.clone();
            rounded.round_weights_to_bf16();
            compare(
                &rounded,
                &StepModel::build(&m, table, WeightFormat::Bf16),
                3,
                2,
                9,
            );
        }
    }
}
