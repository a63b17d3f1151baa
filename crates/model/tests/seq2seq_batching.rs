//! Variable-length batches: a padded batch gives exactly (to 1e-6) the losses and
//! gradients of its pairs run alone, and padding (its values or its amount)
//! changes nothing at all.

use recurrent_kernels::Rng;
use recurrent_model::seq2seq::{
    AttentionKind, Bridge, Seq2Seq, Seq2SeqBatch, Seq2SeqConfig, Seq2SeqError, Seq2SeqWorkspace,
    TrainOptions,
};
use recurrent_model::CellKind;
use recurrent_nn::recurrent::Block;

const BOS: u32 = 1;
const EOS: u32 = 2;

/// A pair: source tokens and target tokens (without BOS/EOS).
type Pair = (Vec<u32>, Vec<u32>);

fn pairs(config: &Seq2SeqConfig, rng: &mut Rng) -> Vec<Pair> {
    // Lengths chosen so that sorting by source length reorders the batch and
    // several pairs share a length (chunks of more than one step).
    let shapes = [(3, 4), (6, 1), (1, 3), (6, 5), (4, 2)];
    shapes
        .iter()
        .map(|&(s, t)| {
            let src = (0..s)
                .map(|_| rng.below(config.src_vocab as u64) as u32)
                .collect();
            let tgt = (0..t)
                .map(|_| 3 + rng.below(config.tgt_vocab as u64 - 3) as u32)
                .collect();
            (src, tgt)
        })
        .collect()
}

/// A padded, batch-major batch of `pairs`, rows `extra` wider than needed,
/// padding filled with `pad`.
struct Padded {
    src: Vec<u32>,
    src_lens: Vec<usize>,
    tgt: Vec<u32>,
    tgt_lens: Vec<usize>,
}

impl Padded {
    fn new(pairs: &[Pair], extra: usize, pad: u32) -> Padded {
        let sw = pairs.iter().map(|p| p.0.len()).max().unwrap() + extra;
        let tw = pairs.iter().map(|p| p.1.len() + 2).max().unwrap() + extra;
        let mut out = Padded {
            src: vec![pad; pairs.len() * sw],
            src_lens: Vec::new(),
            tgt: vec![pad; pairs.len() * tw],
            tgt_lens: Vec::new(),
        };
        for (b, (s, t)) in pairs.iter().enumerate() {
            out.src[b * sw..b * sw + s.len()].copy_from_slice(s);
            out.src_lens.push(s.len());
            let row = &mut out.tgt[b * tw..];
            row[0] = BOS;
            row[1..=t.len()].copy_from_slice(t);
            row[t.len() + 1] = EOS;
            out.tgt_lens.push(t.len() + 2);
        }
        out
    }

    fn batch(&self) -> Seq2SeqBatch<'_> {
        Seq2SeqBatch {
            src: &self.src,
            src_lens: &self.src_lens,
            tgt: &self.tgt,
            tgt_lens: &self.tgt_lens,
        }
    }
}

/// Per-pair scores, the mean loss and the gradient of a batch.
fn run(model: &Seq2Seq, p: &Padded) -> (Vec<f64>, f64, Vec<f32>) {
    let mut ws = Seq2SeqWorkspace::default();
    let scores = model.score(&mut ws, &p.batch()).unwrap();
    let mut grads = vec![0.0; model.num_params()];
    let stats = model
        .train_batch(
            &mut ws,
            &p.batch(),
            &TrainOptions::default(),
            &mut Rng::new(1),
            &mut grads,
        )
        .unwrap();
    let eval = model.evaluate(&mut ws, &p.batch(), 0.0).unwrap();
    assert_eq!(
        eval.loss, stats.loss,
        "without dropout, training and evaluation agree"
    );
    (scores, stats.loss, grads)
}

fn configs() -> Vec<Seq2SeqConfig> {
    let base = |cell, bidirectional, attention, bridge| Seq2SeqConfig {
        cell,
        src_vocab: 9,
        tgt_vocab: 11,
        embed: 6,
        hidden: 8,
        layers: 2,
        bidirectional,
        attention,
        input_feeding: true,
        bridge,
        dropout: 0.0,
        tie: false,
        share_embeddings: false,
    };
    vec![
        base(
            CellKind::Lstm,
            true,
            AttentionKind::Additive,
            Bridge::Linear,
        ),
        base(CellKind::Gru, false, AttentionKind::General, Bridge::Copy),
        base(CellKind::Gru, true, AttentionKind::Dot, Bridge::Copy),
        base(CellKind::Lstm, false, AttentionKind::Dot, Bridge::Zero),
    ]
}

#[test]
fn a_padded_batch_gives_each_pair_its_own_loss_and_gradient() {
    for config in configs() {
        let mut rng = Rng::new(3);
        let model = Seq2Seq::new(config.clone(), &mut rng).unwrap();
        let ps = pairs(&config, &mut rng);
        let (scores, loss, grads) = run(&model, &Padded::new(&ps, 2, 0));
        let total: usize = ps.iter().map(|p| p.1.len() + 1).sum();
        let mut want_loss = 0.0f64;
        let mut want_grads = vec![0.0f64; grads.len()];
        for (i, pair) in ps.iter().enumerate() {
            let (s, l, g) = run(&model, &Padded::new(std::slice::from_ref(pair), 0, 0));
            let n = (pair.1.len() + 1) as f64;
            assert!(
                (scores[i] - s[0]).abs() <= 1e-6,
                "{config:?}: pair {i} scores {} in the batch, {} alone",
                scores[i],
                s[0]
            );
            assert!((s[0] / n - l).abs() < 1e-9, "score is the summed NLL");
            want_loss += l * n / total as f64;
            for (w, &x) in want_grads.iter_mut().zip(&g) {
                *w += x as f64 * n / total as f64;
            }
        }
        assert!((loss - want_loss).abs() <= 1e-6, "{loss} vs {want_loss}");
        let mut worst = 0.0f64;
        for e in &model.layout.entries {
            for j in e.range() {
                let d = (grads[j] as f64 - want_grads[j]).abs();
                worst = worst.max(d);
                assert!(
                    d <= 1e-6,
                    "{}[{}]: batch {} vs pairs alone {}",
                    e.name,
                    j - e.offset,
                    grads[j],
                    want_grads[j]
                );
            }
        }
        eprintln!(
            "{} {} {}: worst gradient difference {worst:.1e}",
            config.cell,
            if config.bidirectional { "bi" } else { "uni" },
            config.attention
        );
    }
}

#[test]
fn padding_values_and_width_change_nothing() {
    for config in configs() {
        let mut rng = Rng::new(8);
        let model = Seq2Seq::new(config.clone(), &mut rng).unwrap();
        let ps = pairs(&config, &mut rng);
        let base = run(&model, &Padded::new(&ps, 0, 0));
        // Other padding values, even ids outside both vocabularies.
        assert_eq!(base, run(&model, &Padded::new(&ps, 0, 5)));
        assert_eq!(base, run(&model, &Padded::new(&ps, 0, u32::MAX)));
        // Wider rows: more padding columns.
        assert_eq!(base, run(&model, &Padded::new(&ps, 3, 4)));
        // And the encoder's view: the same keys and states.
        let a = Padded::new(&ps, 0, 0);
        let b = Padded::new(&ps, 2, 7);
        assert_eq!(
            model.encode(&a.src, &a.src_lens).unwrap(),
            model.encode(&b.src, &b.src_lens).unwrap()
        );
    }
}

#[test]
fn decode_steps_over_a_batch_match_each_source_alone() {
    let config = &configs()[0];
    let mut rng = Rng::new(4);
    let model = Seq2Seq::new(config.clone(), &mut rng).unwrap();
    let ps = pairs(config, &mut rng);
    let all = Padded::new(&ps, 1, 3);
    let enc = model.encode(&all.src, &all.src_lens).unwrap();
    let mut state = model.initial_state(&enc).unwrap();
    let v = config.tgt_vocab;
    let s = enc.src_len;
    let alone: Vec<_> = ps
        .iter()
        .map(|p| {
            let e = model.encode(&p.0, &[p.0.len()]).unwrap();
            let st = model.initial_state(&e).unwrap();
            (e, st)
        })
        .collect();
    let mut alone = alone;
    for step in 0..4u32 {
        let prev: Vec<u32> = (0..ps.len() as u32).map(|i| (i + step) % 5 + 1).collect();
        let out = model.decode_step(&enc, &state, &prev).unwrap();
        for (i, (e, st)) in alone.iter_mut().enumerate() {
            let one = model.decode_step(e, st, &prev[i..i + 1]).unwrap();
            for (a, b) in out.logits[i * v..(i + 1) * v].iter().zip(&one.logits) {
                assert!((a - b).abs() <= 1e-6, "step {step} pair {i}: {a} vs {b}");
            }
            let len = ps[i].0.len();
            let w = &out.attention[i * s..(i + 1) * s];
            for (a, b) in w[..len].iter().zip(&one.attention) {
                assert!((a - b).abs() <= 1e-6);
            }
            assert!(w[len..].iter().all(|&x| x == 0.0), "no weight on padding");
            *st = one.state;
        }
        state = out.state;
    }
}

/// Source, source lengths, target, target lengths, and what is wrong.
type BadBatch = (
    &'static [u32],
    &'static [usize],
    &'static [u32],
    &'static [usize],
    &'static str,
);

#[test]
fn bad_batches_options_and_configs_are_errors_not_panics() {
    let config = &configs()[1]; // source vocabulary 9, target 11
    let model = Seq2Seq::new(config.clone(), &mut Rng::new(1)).unwrap();
    let mut ws = Seq2SeqWorkspace::default();
    let mut grads = vec![0.0; model.num_params()];
    let mut train = |src: &[u32], sl: &[usize], tgt: &[u32], tl: &[usize], o: TrainOptions| {
        let batch = Seq2SeqBatch {
            src,
            src_lens: sl,
            tgt,
            tgt_lens: tl,
        };
        model.train_batch(&mut ws, &batch, &o, &mut Rng::new(1), &mut grads)
    };
    let ok = TrainOptions::default();
    assert!(train(&[1, 2, 3], &[3], &[1, 10, 2], &[3], ok).is_ok());
    let bad_batches: [BadBatch; 8] = [
        (&[], &[], &[], &[], "empty"),
        (&[1, 2, 3], &[0], &[1, 5, 2], &[3], "empty source"),
        (
            &[1, 2, 3],
            &[4],
            &[1, 5, 2],
            &[3],
            "source longer than its row",
        ),
        (
            &[1, 9, 3],
            &[3],
            &[1, 5, 2],
            &[3],
            "source token outside the vocabulary",
        ),
        (&[1, 2, 3], &[3], &[1, 5, 2], &[1], "target without EOS"),
        (
            &[1, 2, 3],
            &[3],
            &[1, 11, 2],
            &[3],
            "target token outside the vocabulary",
        ),
        (&[1, 2, 3, 4], &[3, 1], &[1, 5, 2], &[3], "lengths disagree"),
        (
            &[1, 2, 3],
            &[1, 1],
            &[1, 5, 2, 2],
            &[2, 2],
            "ragged source rows",
        ),
    ];
    for (src, sl, tgt, tl, what) in bad_batches {
        match train(src, sl, tgt, tl, ok) {
            Err(Seq2SeqError::Batch(m)) => eprintln!("{what}: {m}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    for o in [
        TrainOptions {
            teacher_forcing: 1.5,
            ..ok
        },
        TrainOptions {
            label_smoothing: 1.0,
            ..ok
        },
    ] {
        let r = train(&[1, 2, 3], &[3], &[1, 10, 2], &[3], o);
        assert!(matches!(r, Err(Seq2SeqError::Options(_))), "{r:?}");
    }
    // Decoding with mismatched pieces.
    let enc = model.encode(&[1, 2, 3, 4], &[2, 2]).unwrap();
    let state = model.initial_state(&enc).unwrap();
    assert!(model.decode_step(&enc, &state, &[1]).is_err());
    assert!(model.decode_step(&enc, &state, &[1, 11]).is_err());
    assert!(state.select(&[0, 2]).is_err());
    assert!(enc.select(&[5]).is_err());
    assert!(model.encode(&[1, 2], &[3]).is_err());
    // Configurations that make no model.
    let bad_configs = [
        Seq2SeqConfig {
            hidden: 7,
            bidirectional: true,
            ..config.clone()
        },
        Seq2SeqConfig {
            tie: true,
            ..config.clone()
        },
        Seq2SeqConfig {
            share_embeddings: true,
            ..config.clone()
        },
        Seq2SeqConfig {
            dropout: 1.0,
            ..config.clone()
        },
        Seq2SeqConfig {
            tgt_vocab: 0,
            ..config.clone()
        },
        Seq2SeqConfig {
            layers: 0,
            ..config.clone()
        },
        Seq2SeqConfig {
            hidden: usize::MAX / 2,
            ..config.clone()
        },
        Seq2SeqConfig {
            layers: usize::MAX,
            ..config.clone()
        },
    ];
    for c in bad_configs {
        match Seq2Seq::new(c.clone(), &mut Rng::new(1)) {
            Err(Seq2SeqError::Config(m)) => eprintln!("{m}"),
            other => panic!("{c:?}: {:?}", other.map(|m| m.num_params())),
        }
    }
}

#[test]
fn the_reverse_direction_reads_each_source_backwards_within_its_own_length() {
    use recurrent_nn::recurrent::LayerParams;
    use recurrent_nn::{LayerCache, RecurrentLayer};
    let config = Seq2SeqConfig {
        layers: 1,
        ..configs()[0].clone() // bidirectional LSTM, hidden 8: 4 per direction
    };
    let mut rng = Rng::new(12);
    let model = Seq2Seq::new(config.clone(), &mut rng).unwrap();
    let ps = pairs(&config, &mut rng);
    let p = Padded::new(&ps, 1, 0);
    let enc = model.encode(&p.src, &p.src_lens).unwrap();
    let (e, h, hd) = (config.embed, config.hidden, config.hidden / 2);
    let t = |name: &str| &model.params[model.layout.get(name).unwrap().range()];
    let layer = RecurrentLayer {
        cell: config.cell,
        input_size: e,
        hidden_size: hd,
    };
    let s = enc.src_len;
    for (b, (src, _)) in ps.iter().enumerate() {
        // PyTorch's nn.LSTM(bidirectional=True) on this one sequence, by hand.
        let emb: Vec<f32> = src
            .iter()
            .flat_map(|&tok| t("encoder.embedding.weight")[tok as usize * e..][..e].to_vec())
            .collect();
        let rev: Vec<f32> = emb.chunks(e).rev().flatten().copied().collect();
        let run = |x: &[f32], sfx: &str| {
            let p = LayerParams {
                w_ih: t(&format!("encoder.rnn.weight_ih_l0{sfx}")),
                w_hh: t(&format!("encoder.rnn.weight_hh_l0{sfx}")),
                b_ih: t(&format!("encoder.rnn.bias_ih_l0{sfx}")),
                b_hh: t(&format!("encoder.rnn.bias_hh_l0{sfx}")),
            };
            let mut cache = LayerCache::default();
            let zeros = vec![0.0; hd];
            layer.forward(
                p,
                x,
                Block::new(src.len(), 1, &zeros, &zeros),
                &mut cache,
                false,
            );
            (
                cache.output(hd).to_vec(),
                cache.last_h(hd).to_vec(),
                cache.last_c(hd).to_vec(),
            )
        };
        let (fwd, fwd_h, fwd_c) = run(&emb, "");
        let (bwd, bwd_h, bwd_c) = run(&rev, "_reverse");
        let len = src.len();
        for pos in 0..len {
            let key = &enc.keys[(b * s + pos) * h..(b * s + pos + 1) * h];
            let want: Vec<f32> = [
                &fwd[pos * hd..(pos + 1) * hd],
                &bwd[(len - 1 - pos) * hd..(len - pos) * hd],
            ]
            .concat();
            for (a, w) in key.iter().zip(&want) {
                assert!((a - w).abs() <= 1e-6, "pair {b} position {pos}: {a} vs {w}");
            }
        }
        assert!(enc.keys[(b * s + len) * h..(b + 1) * s * h]
            .iter()
            .all(|&x| x == 0.0));
        let close = |a: &[f32], w: &[f32]| a.iter().zip(w).all(|(a, w)| (a - w).abs() <= 1e-6);
        assert!(close(
            &enc.final_h[b * h..(b + 1) * h],
            &[fwd_h, bwd_h].concat()
        ));
        assert!(close(
            &enc.final_c[b * h..(b + 1) * h],
            &[fwd_c, bwd_c].concat()
        ));
    }
}

#[test]
fn an_encoder_output_that_does_not_fit_is_an_error() {
    for config in configs() {
        let mut rng = Rng::new(5);
        let model = Seq2Seq::new(config.clone(), &mut rng).unwrap();
        let ps = pairs(&config, &mut rng);
        let all = Padded::new(&ps, 1, 3);
        let enc = model.encode(&all.src, &all.src_lens).unwrap();
        let state = model.initial_state(&enc).unwrap();
        let mut short = enc.clone();
        short.keys.pop();
        let err = model.initial_state(&short).unwrap_err();
        assert!(
            matches!(
                err,
                Seq2SeqError::Shape {
                    what: "encoder output keys",
                    ..
                }
            ),
            "{err}"
        );
        let prev = vec![1; enc.batch];
        assert_eq!(model.decode_step(&short, &state, &prev).unwrap_err(), err);
        let mut rows = enc.clone();
        rows.batch += 1;
        assert!(model.initial_state(&rows).is_err());
        let mut cut = state.clone();
        cut.h.pop();
        let err = model.decode_step(&enc, &cut, &prev).unwrap_err();
        assert!(
            matches!(
                err,
                Seq2SeqError::Shape {
                    what: "state.h",
                    ..
                }
            ),
            "{err}"
        );
        let err = model.decode_step(&enc, &state, &prev[1..]).unwrap_err();
        assert!(
            matches!(
                err,
                Seq2SeqError::Shape {
                    what: "encoder output rows",
                    ..
                }
            ),
            "{err}"
        );
    }
}
