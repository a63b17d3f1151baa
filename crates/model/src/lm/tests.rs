//! Whole-network gradient checks and the model's behaviour.

use super::*;
use recurrent_kernels::Rng;
use recurrent_nn::{loss, CellKind};

const CELLS: [CellKind; 4] = [
    CellKind::RnnTanh,
    CellKind::RnnRelu,
    CellKind::Lstm,
    CellKind::Gru,
];

fn block_loss(m: &LanguageModel, data: TokenBlock<'_>, s0: &State, reg: &Regularization) -> f64 {
    let mut ws = Workspace::default();
    let mut s = s0.clone();
    // The same seed as the analytic pass: the same masks at every evaluation.
    let mut rng = Rng::new(99);
    m.forward(&mut ws, &data, &mut s, Some(&mut rng), reg, false);
    let (t, b, targets) = (data.steps, data.batch, data.targets);
    let v = m.config.vocab_size;
    let (ar, tar) = m.penalties(&ws, t, b);
    loss::softmax_cross_entropy(&ws.logits[..t * b * v], targets, v, None, 1.0).0 + ar + tar
}

/// Whole-network finite-difference check: every parameter and the initial state.
fn gradcheck(config: ModelConfig, with_reset: bool) {
    gradcheck_regularized(config, with_reset, &Regularization::default());
}

/// [`gradcheck`] of cross-entropy + AR + TAR with AWD-LSTM's regularizers `reg`.
fn gradcheck_regularized(config: ModelConfig, with_reset: bool, reg: &Regularization) {
    let (t, b) = (4, 2);
    let mut rng = Rng::new(1 + config.cell as u64);
    let mut model = LanguageModel::new(config.clone(), &mut rng, None).unwrap();
    if config.layer_norm && config.embed > 0 {
        // LayerNorm of a projection of ±0.1 embeddings divides by a tiny
        // spread, so a finite-difference step of 1e-2 is not small there;
        // ±1 embeddings keep the check well conditioned.
        let e = model.layout.get("encoder.weight").unwrap().range();
        model.params[e].iter_mut().for_each(|p| *p *= 10.0);
    }
    let v = config.vocab_size as u64;
    let tokens: Vec<u32> = (0..t * b).map(|_| rng.below(v) as u32).collect();
    let targets: Vec<u32> = (0..t * b).map(|_| rng.below(v) as u32).collect();
    let mut s0 = State::zeros(&config, b);
    s0.h.iter_mut().for_each(|x| *x = rng.uniform(-0.5, 0.5));
    s0.c.iter_mut().for_each(|x| *x = rng.uniform(-0.5, 0.5));
    let keep: Option<Vec<f32>> =
        with_reset.then(|| (0..t * b).map(|k| if k == 5 { 0.0 } else { 1.0 }).collect());

    let mut ws = Workspace::default();
    let mut s = s0.clone();
    let mut grads = vec![0.0; model.num_params()];
    let mut drop_rng = Rng::new(99);
    model.forward(
        &mut ws,
        &TokenBlock::new(&tokens, &[], t, b).with_keep(keep.as_deref()),
        &mut s,
        Some(&mut drop_rng),
        reg,
        true,
    );
    let mut ds = State::zeros(&config, b);
    let stats = model.backward(
        &mut ws,
        &TokenBlock::new(&tokens, &targets, t, b).with_keep(keep.as_deref()),
        &mut grads,
        Some(&mut ds),
        None,
    );
    assert_eq!(stats.ar > 0.0, reg.alpha > 0.0);
    assert_eq!(stats.tar > 0.0, reg.beta > 0.0);

    // Central differences at two step sizes: ReLU kinks can fall inside the
    // wider one, f32 rounding spoils the narrower one; and a Richardson
    // extrapolation of steps 2e-3 and 1e-3, which cancels the h² error of
    // strongly curved losses (LayerNorm over a small spread). A correct
    // gradient matches at least one of them.
    let numeric = |f: &dyn Fn(f32) -> f64| {
        let d = |h: f32| (f(h) - f(-h)) / (2.0 * h as f64);
        let (d1, d2) = (d(1e-3), d(2e-3));
        [d(1e-2), d1, (4.0 * d1 - d2) / 3.0]
    };
    let close = |what: &str, a: f32, n: [f64; 3]| {
        let err = |n: f64| (n - a as f64).abs() / (1e-2 + n.abs().max(a.abs() as f64));
        assert!(
            n.iter().map(|&n| err(n)).fold(f64::INFINITY, f64::min) < 2e-2,
            "{} {what}: analytic {a} vs numeric {n:?}",
            config.cell
        );
    };
    for e in &model.layout.entries {
        for j in e.range() {
            let n = numeric(&|d| {
                let mut m = model.clone();
                m.params[j] += d;
                block_loss(
                    &m,
                    TokenBlock::new(&tokens, &targets, t, b).with_keep(keep.as_deref()),
                    &s0,
                    reg,
                )
            });
            close(&format!("{}[{}]", e.name, j - e.offset), grads[j], n);
        }
    }
    for j in 0..s0.h.len() {
        let n = numeric(&|d| {
            let mut s = s0.clone();
            s.h[j] += d;
            block_loss(
                &model,
                TokenBlock::new(&tokens, &targets, t, b).with_keep(keep.as_deref()),
                &s,
                reg,
            )
        });
        close(&format!("h0[{j}]"), ds.h[j], n);
    }
    for j in 0..s0.c.len() {
        let n = numeric(&|d| {
            let mut s = s0.clone();
            s.c[j] += d;
            block_loss(
                &model,
                TokenBlock::new(&tokens, &targets, t, b).with_keep(keep.as_deref()),
                &s,
                reg,
            )
        });
        close(&format!("c0[{j}]"), ds.c[j], n);
    }
}

#[test]
fn whole_network_gradients_with_embedding_dense_tying_and_dropout() {
    for cell in CELLS {
        let config = ModelConfig {
            dense: 4,
            dropout: 0.3,
            tie: true,
            ..ModelConfig::new(cell, 7, 4, 5, 2)
        };
        gradcheck(config, false);
    }
}

/// No dropout on the embeddings and a vocabulary (7) below `T*B` (8):
/// layer 0 takes its input projection from the per-token table.
#[test]
fn whole_network_gradients_through_the_embedding_table() {
    for cell in CELLS {
        let config = ModelConfig {
            dense: 4,
            tie: true,
            ..ModelConfig::new(cell, 7, 4, 5, 2)
        };
        let m = LanguageModel::new(config.clone(), &mut Rng::new(1), None).unwrap();
        assert!(m.input_table_pays(8, false, &Regularization::default()));
        gradcheck(config, true);
    }
}

/// The table path and the whole-block GEMM path agree (up to rounding)
/// on the loss, every gradient and the carried state.
#[test]
fn the_embedding_table_gives_the_gemm_paths_results() {
    for cell in CELLS {
        let config = ModelConfig::new(cell, 7, 5, 6, 2);
        let mut rng = Rng::new(3 + cell as u64);
        let m = LanguageModel::new(config.clone(), &mut rng, None).unwrap();
        let (t, b) = (6, 3);
        let tokens: Vec<u32> = (0..t * b).map(|_| rng.below(7) as u32).collect();
        let keep: Vec<f32> = (0..t * b).map(|k| if k == 7 { 0.0 } else { 1.0 }).collect();
        let run = |no_table: bool| {
            let mut ws = Workspace {
                no_table,
                ..Workspace::default()
            };
            let mut state = State::zeros(&config, b);
            state.h.iter_mut().for_each(|x| *x = 0.3);
            let mut grads = vec![0.0; m.num_params()];
            let stats = m
                .train_block(
                    &mut ws,
                    TokenBlock::new(&tokens, &tokens, t, b).with_keep(Some(&keep)),
                    &mut state,
                    &mut Rng::new(5),
                    &mut grads,
                )
                .unwrap();
            assert_eq!(ws.table_input, !no_table);
            (stats.loss, grads, state)
        };
        let (table, gemm) = (run(false), run(true));
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * (1.0 + b.abs());
        assert!(close(table.0 as f32, gemm.0 as f32), "{cell}: loss");
        for (e, (a, b)) in table.1.iter().zip(&gemm.1).enumerate() {
            assert!(close(*a, *b), "{cell}: gradient {e}: {a} vs {b}");
        }
        for (a, b) in table.2.h.iter().zip(&gemm.2.h) {
            assert!(close(*a, *b), "{cell}: state");
        }
    }
}

#[test]
fn whole_network_gradients_one_hot_with_document_reset() {
    for cell in CELLS {
        let config = ModelConfig::new(cell, 6, 0, 4, 2);
        gradcheck(config, true);
    }
}

/// AWD-LSTM's shape in miniature: wide inner layers, a last layer as
/// narrow as the tied embedding; with plain dropout, with a dense head and
/// a document reset, with every AWD regularizer, and layer-normalized.
#[test]
fn whole_network_gradients_with_a_narrower_last_layer() {
    let awd_shape = |cell| ModelConfig {
        dropout: 0.2,
        tie: true,
        last_hidden: 3,
        ..ModelConfig::new(cell, 7, 3, 6, 3)
    };
    for cell in CELLS {
        gradcheck(awd_shape(cell), false);
    }
    let dense = ModelConfig {
        embed: 0,
        dense: 4,
        tie: false,
        layers: 2,
        last_hidden: 2,
        ..awd_shape(CellKind::Gru)
    };
    gradcheck(dense, true);
    gradcheck_regularized(awd_shape(CellKind::Lstm), true, &AWD);
    // LayerNorm of the cell state over 3 units is too curved for finite
    // differences; 5 and 4 keep it well conditioned.
    let ln = ModelConfig {
        tie: false,
        dropout: 0.0,
        layer_norm: true,
        hidden: 5,
        last_hidden: 4,
        ..awd_shape(CellKind::Lstm)
    };
    gradcheck(ln, false);
}

#[test]
fn a_narrower_last_layer_lays_out_state_and_weights_by_layer() {
    let config = ModelConfig {
        tie: true,
        last_hidden: 3,
        ..ModelConfig::new(CellKind::Lstm, 9, 3, 5, 3)
    };
    let model = LanguageModel::new(config.clone(), &mut Rng::new(3), None).unwrap();
    let shape = |n: &str| model.layout.get(n).unwrap().shape.clone();
    assert_eq!(shape("rnn.weight_ih_l1"), vec![20, 5]);
    assert_eq!(shape("rnn.weight_ih_l2"), vec![12, 5]);
    assert_eq!(shape("rnn.weight_hh_l2"), vec![12, 3]);
    assert_eq!(config.widths_label(), "5/5/3");
    // PyTorch's bound per layer module: ±1/√H of that layer.
    let l2 = &model.params[model.layout.get("rnn.weight_hh_l2").unwrap().range()];
    assert!(l2.iter().all(|w| w.abs() <= 1.0 / 3f32.sqrt()));
    assert!(l2.iter().any(|w| w.abs() > 1.0 / 5f32.sqrt()));
    // State rows: [B, 5], [B, 5], [B, 3]; resetting stream 1 touches only its rows.
    let b = 2;
    let mut s = State::zeros(&config, b);
    assert_eq!(s.h.len(), b * (5 + 5 + 3));
    assert_eq!(config.state_range(2, b), 20..26);
    s.h.fill(1.0);
    s.c.fill(1.0);
    s.reset_stream(&config, 1).unwrap();
    let zeroed: Vec<usize> = (0..s.h.len()).filter(|&i| s.h[i] == 0.0).collect();
    let want: Vec<usize> = (5..10).chain(15..20).chain(23..26).collect();
    assert_eq!(zeroed, want);
    assert_eq!(s.c, s.h);
    // One layer cannot be both the inner and the last width.
    let one = ModelConfig {
        layers: 1,
        ..config
    };
    assert!(one.validate().unwrap_err().to_string().contains("2 layers"));
}

#[test]
fn whole_network_gradients_with_layer_norm() {
    // (Tying is left out: with the ±1 embeddings the check needs here,
    // the tied output layer's logits get too sharp for finite differences.)
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let config = ModelConfig {
            dense: 4,
            dropout: 0.3,
            layer_norm: true,
            ..ModelConfig::new(cell, 7, 4, 5, 2)
        };
        gradcheck(config.clone(), false);
        // A document reset, and every AWD regularizer (weight drop included).
        let config = ModelConfig { dense: 0, ..config };
        gradcheck(config.clone(), true);
        gradcheck_regularized(config, true, &AWD);
    }
}

#[test]
fn layer_norm_starts_as_the_identity_and_needs_a_gated_cell() {
    let config = ModelConfig {
        layer_norm: true,
        ..ModelConfig::new(CellKind::Lstm, 7, 4, 5, 2)
    };
    let model = LanguageModel::new(config.clone(), &mut Rng::new(1), None).unwrap();
    assert_eq!(model.num_params(), config.checked_num_params().unwrap());
    for e in model
        .layout
        .entries
        .iter()
        .filter(|e| e.name.starts_with("rnn.ln_"))
    {
        let want = if e.name.contains("_weight_") {
            1.0
        } else {
            0.0
        };
        assert!(
            model.params[e.range()].iter().all(|&p| p == want),
            "{}",
            e.name
        );
    }
    assert!(model.layout.get("rnn.ln_c_weight_l1").is_some());
    let rnn = ModelConfig {
        cell: CellKind::RnnTanh,
        ..config
    };
    let err = rnn.validate().unwrap_err().to_string();
    assert!(err.contains("LSTM or GRU"), "{err}");
}

/// All of AWD-LSTM's regularizers at once, with rates high enough that
/// every mask drops something in this tiny network.
const AWD: Regularization = Regularization {
    dropout_input: 0.4,
    dropout_hidden: 0.3,
    dropout_output: 0.5,
    dropout_embed: 0.3,
    weight_drop: 0.5,
    alpha: 2.0,
    beta: 1.0,
};

#[test]
fn whole_network_gradients_with_awd_regularizers() {
    for cell in CELLS {
        let config = ModelConfig {
            tie: true,
            ..ModelConfig::new(cell, 7, 5, 5, 2)
        };
        gradcheck_regularized(config, false, &AWD);
    }
    // One-hot input, a document reset and plain dropout on top of them.
    let config = ModelConfig {
        dense: 3,
        dropout: 0.2,
        ..ModelConfig::new(CellKind::Lstm, 6, 0, 4, 3)
    };
    gradcheck_regularized(config, true, &AWD);
}

#[test]
fn each_regularizer_alone_passes_the_gradient_check() {
    let config = ModelConfig::new(CellKind::Gru, 6, 4, 4, 2);
    let off = Regularization::default();
    for reg in [
        Regularization {
            dropout_input: 0.5,
            ..off
        },
        Regularization {
            dropout_hidden: 0.5,
            ..off
        },
        Regularization {
            dropout_output: 0.5,
            ..off
        },
        Regularization {
            dropout_embed: 0.5,
            ..off
        },
        Regularization {
            weight_drop: 0.5,
            ..off
        },
        Regularization { alpha: 2.0, ..off },
        Regularization { beta: 1.0, ..off },
    ] {
        gradcheck_regularized(config.clone(), false, &reg);
    }
}

/// Runs one training block of `m` with `reg` and returns the logits, the
/// final state and the gradient.
fn train_once(
    m: &LanguageModel,
    reg: &Regularization,
    tokens: &[u32],
    t: usize,
    b: usize,
) -> (Vec<f32>, State, Vec<f32>) {
    let mut ws = Workspace::default();
    let mut state = State::zeros(&m.config, b);
    let mut grads = vec![0.0; m.num_params()];
    m.train_block_regularized(
        &mut ws,
        TokenBlock::new(tokens, tokens, t, b),
        &mut state,
        reg,
        &mut Rng::new(5),
        &mut grads,
    )
    .unwrap();
    let logits = ws.logits[..t * b * m.config.vocab_size].to_vec();
    (logits, state, grads)
}

#[test]
fn locked_masks_hold_over_time_and_differ_between_streams() {
    // Only output dropout, on a model whose head sees the last layer
    // directly: a unit dropped for a stream is dropped at every step.
    let config = ModelConfig::new(CellKind::Lstm, 5, 3, 16, 1);
    let m = LanguageModel::new(config, &mut Rng::new(2), None).unwrap();
    let (t, b, h) = (6, 3, 16);
    let tokens: Vec<u32> = (0..t * b).map(|i| (i % 5) as u32).collect();
    let reg = Regularization {
        dropout_output: 0.5,
        ..Regularization::default()
    };
    let mut ws = Workspace::default();
    let mut state = State::zeros(&m.config, b);
    let mut grads = vec![0.0; m.num_params()];
    m.train_block_regularized(
        &mut ws,
        TokenBlock::new(&tokens, &tokens, t, b),
        &mut state,
        &reg,
        &mut Rng::new(5),
        &mut grads,
    )
    .unwrap();
    let dropped = &ws.inputs[1];
    let zero_units = |s: usize, r: usize| -> Vec<bool> {
        (0..h)
            .map(|j| dropped[(s * b + r) * h + j] == 0.0)
            .collect()
    };
    for r in 0..b {
        assert!(zero_units(0, r).contains(&true));
        for s in 1..t {
            assert_eq!(zero_units(s, r), zero_units(0, r), "stream {r} step {s}");
        }
    }
    assert_ne!(zero_units(0, 0), zero_units(0, 1));
}

#[test]
fn masks_depend_on_the_seed_only_not_on_the_thread_count() {
    // W_hh of 4 * 160 * 160 weights spans two of sample_apply's pieces.
    let config = ModelConfig::new(CellKind::Lstm, 9, 6, 160, 2);
    let m = LanguageModel::new(config, &mut Rng::new(4), None).unwrap();
    let (t, b) = (3, 2);
    let tokens: Vec<u32> = (0..t * b).map(|i| (i % 9) as u32).collect();
    let masks = |threads: usize, seed: u64| {
        recurrent_kernels::threads::set_this_thread(threads);
        let mut ws = Workspace::default();
        let mut state = State::zeros(&m.config, b);
        let mut grads = vec![0.0; m.num_params()];
        m.train_block_regularized(
            &mut ws,
            TokenBlock::new(&tokens, &tokens, t, b),
            &mut state,
            &AWD,
            &mut Rng::new(seed),
            &mut grads,
        )
        .unwrap();
        (ws.locked, ws.word_mask, ws.w_hh_mask)
    };
    let one = masks(1, 7);
    assert_eq!(masks(2, 7), one);
    assert_ne!(masks(1, 8), one);
}

#[test]
fn regularizers_off_change_nothing_and_evaluation_ignores_them() {
    let config = ModelConfig {
        tie: true,
        ..ModelConfig::new(CellKind::Lstm, 7, 5, 5, 2)
    };
    let m = LanguageModel::new(config, &mut Rng::new(3), None).unwrap();
    let (t, b) = (4, 2);
    let tokens: Vec<u32> = (0..t * b).map(|i| (i % 7) as u32).collect();
    let off = Regularization::default();
    let plain = {
        let mut ws = Workspace::default();
        let mut state = State::zeros(&m.config, b);
        let mut grads = vec![0.0; m.num_params()];
        m.train_block(
            &mut ws,
            TokenBlock::new(&tokens, &tokens, t, b),
            &mut state,
            &mut Rng::new(5),
            &mut grads,
        )
        .unwrap();
        (ws.logits[..t * b * 7].to_vec(), state, grads)
    };
    assert_eq!(train_once(&m, &off, &tokens, t, b), plain);
    let awd = train_once(&m, &AWD, &tokens, t, b);
    assert_ne!(awd.0, plain.0);
    assert_ne!(awd.2, plain.2);
    // Evaluation after a regularized block uses the plain weights.
    let mut ws = Workspace::default();
    let mut state = State::zeros(&m.config, b);
    let mut grads = vec![0.0; m.num_params()];
    m.train_block_regularized(
        &mut ws,
        TokenBlock::new(&tokens, &tokens, t, b),
        &mut state,
        &AWD,
        &mut Rng::new(5),
        &mut grads,
    )
    .unwrap();
    let mut state = State::zeros(&m.config, b);
    let eval = m
        .evaluate_block(&mut ws, TokenBlock::new(&tokens, &tokens, t, b), &mut state)
        .unwrap();
    let mut fresh = Workspace::default();
    let mut state2 = State::zeros(&m.config, b);
    let want = m
        .evaluate_block(
            &mut fresh,
            TokenBlock::new(&tokens, &tokens, t, b),
            &mut state2,
        )
        .unwrap();
    assert_eq!(eval, want);
    assert_eq!(state, state2);
    assert!(AWD.validate().is_ok());
    let bad = Regularization {
        weight_drop: 1.0,
        ..off
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("weight_drop"));
}

#[test]
fn forget_bias_is_set_on_the_forget_rows_only() {
    let config = ModelConfig::new(CellKind::Lstm, 5, 3, 4, 1);
    let m = LanguageModel::new(config, &mut Rng::new(1), Some(1.0)).unwrap();
    let b = m.param("rnn.bias_ih_l0");
    assert!(b[4..8].iter().all(|&x| x == 1.0));
    assert!(b[..4].iter().all(|&x| x != 1.0));
}

#[test]
fn from_tensors_names_the_problem() {
    let config = ModelConfig::new(CellKind::Gru, 5, 3, 4, 1);
    let m = LanguageModel::new(config.clone(), &mut Rng::new(1), None).unwrap();
    let mut t = m.to_tensors();
    assert!(LanguageModel::from_tensors(config.clone(), &t).is_ok());
    t[1].1 = vec![9, 3];
    let err = LanguageModel::from_tensors(config.clone(), &t)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rnn.weight_ih_l0") && err.contains("[9, 3]"),
        "{err}"
    );
    t.remove(1);
    let err = LanguageModel::from_tensors(config, &t)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing tensor 'rnn.weight_ih_l0'"), "{err}");
}

#[test]
fn extending_the_vocabulary_keeps_what_was_learned() {
    for embed in [0, 3] {
        let config = ModelConfig::new(CellKind::Lstm, 5, embed, 4, 2);
        let mut rng = Rng::new(4);
        let m = LanguageModel::new(config, &mut rng, None).unwrap();
        let mut big = m.clone();
        big.extend_vocab(7, &mut rng).unwrap();
        assert_eq!(big.config.vocab_size, 7);
        // Old tokens get exactly the old logits and state, whatever the new rows hold.
        let tokens = [1u32, 4, 0, 2];
        let (mut wa, mut wb) = (Workspace::default(), Workspace::default());
        let (mut sa, mut sb) = (State::zeros(&m.config, 1), State::zeros(&big.config, 1));
        for &tok in &tokens {
            let a = m.step(&mut wa, &[tok], &mut sa).unwrap().to_vec();
            let b = big.step(&mut wb, &[tok], &mut sb).unwrap().to_vec();
            assert_eq!(a[..], b[..5]);
        }
        assert_eq!(sa, sb);
        assert!(big.extend_vocab(6, &mut rng).is_err());
    }
}

/// Records what a [`GradientSink`] is handed: offset and values, in order.
#[derive(Default)]
struct Recorder(Vec<(usize, Vec<f32>)>);

impl GradientSink for Recorder {
    fn ready(&mut self, offset: usize, grad: &[f32]) {
        self.0.push((offset, grad.to_vec()));
    }
}

/// Data-parallel training sums each tensor's gradient as soon as the sink
/// has it: it must be handed every tensor once, with its final values, the
/// layers from the top down and the embedding (tied or not) last.
#[test]
fn a_gradient_sink_gets_every_tensor_once_when_it_is_final() {
    let configs = [
        (
            "tied, dense, dropout",
            ModelConfig {
                dense: 4,
                dropout: 0.3,
                tie: true,
                ..ModelConfig::new(CellKind::Lstm, 7, 4, 5, 2)
            },
            Regularization::default(),
        ),
        (
            "embedding table",
            ModelConfig {
                dense: 4,
                tie: true,
                ..ModelConfig::new(CellKind::Gru, 7, 4, 5, 2)
            },
            Regularization::default(),
        ),
        (
            "one-hot",
            ModelConfig::new(CellKind::RnnTanh, 7, 0, 5, 3),
            Regularization::default(),
        ),
        (
            "layer norm",
            ModelConfig {
                layer_norm: true,
                ..ModelConfig::new(CellKind::Lstm, 7, 4, 5, 2)
            },
            Regularization::default(),
        ),
        (
            "weight drop and AWD",
            ModelConfig::new(CellKind::Lstm, 7, 4, 5, 3),
            AWD,
        ),
    ];
    let (t, b) = (4, 2);
    let tokens: Vec<u32> = (0..t * b).map(|i| (i * 3 % 7) as u32).collect();
    for (name, config, reg) in configs {
        let m = LanguageModel::new(config, &mut Rng::new(8), None).unwrap();
        let (_, _, plain) = train_once(&m, &reg, &tokens, t, b);
        let mut grads = vec![0.0; m.num_params()];
        let mut sink = Recorder::default();
        m.train_block_with_sink(
            &mut Workspace::default(),
            TokenBlock::new(&tokens, &tokens, t, b),
            &mut State::zeros(&m.config, b),
            &reg,
            &mut Rng::new(5),
            &mut grads,
            Some(&mut sink),
        )
        .unwrap();
        assert_eq!(grads, plain, "{name}: the sink changes nothing");
        let mut offsets: Vec<usize> = sink.0.iter().map(|(o, _)| *o).collect();
        let entries = &m.layout.entries;
        let at = |o: usize| entries.iter().position(|e| e.offset == o).unwrap();
        let order: Vec<usize> = offsets.iter().map(|&o| at(o)).collect();
        for (offset, values) in &sink.0 {
            let e = &entries[at(*offset)];
            assert_eq!(
                values[..],
                grads[e.range()],
                "{name}: {} was not final",
                e.name
            );
        }
        if m.config.embed > 0 {
            assert_eq!(
                entries[*order.last().unwrap()].name,
                "encoder.weight",
                "{name}"
            );
        }
        let layer_of = |i: usize| {
            let name = &entries[i].name;
            name.rsplit_once("_l")
                .and_then(|(_, k)| k.parse::<usize>().ok())
        };
        let layers: Vec<usize> = order.iter().filter_map(|&i| layer_of(i)).collect();
        assert!(
            layers.windows(2).all(|w| w[0] >= w[1]),
            "{name}: {layers:?}"
        );
        offsets.sort_unstable();
        let all: Vec<usize> = entries.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, all, "{name}: every tensor once");
    }
}
