//! Teacher forcing as documented, the decoding building blocks (`encode`,
//! `decode_step`, row selection for beams) agreeing with the training pass,
//! and the model's configuration, names and tensors.

use recurrent_kernels::Rng;
use recurrent_model::seq2seq::{
    argmax, layout, AttentionKind, Bridge, FeedMode, Seq2Seq, Seq2SeqBatch, Seq2SeqConfig,
    Seq2SeqError, Seq2SeqWorkspace, TrainOptions,
};
use recurrent_model::CellKind;

const BOS: u32 = 1;
const EOS: u32 = 2;

fn config() -> Seq2SeqConfig {
    Seq2SeqConfig {
        cell: CellKind::Lstm,
        src_vocab: 10,
        tgt_vocab: 12,
        embed: 6,
        hidden: 8,
        layers: 2,
        bidirectional: true,
        attention: AttentionKind::General,
        input_feeding: true,
        bridge: Bridge::Copy,
        dropout: 0.0,
        tie: false,
        share_embeddings: false,
    }
}

/// Four pairs, padded batch-major, targets `BOS y… EOS`.
struct Data {
    src: Vec<u32>,
    src_lens: Vec<usize>,
    tgt: Vec<u32>,
    tgt_lens: Vec<usize>,
    tw: usize,
}

fn data(rng: &mut Rng) -> Data {
    let (sw, tw) = (6, 7);
    let src_lens = vec![5, 2, 6, 3];
    let tgt_lens = vec![7, 4, 5, 3];
    let mut src = vec![0; 4 * sw];
    let mut tgt = vec![0; 4 * tw];
    for b in 0..4 {
        for s in 0..src_lens[b] {
            src[b * sw + s] = rng.below(10) as u32;
        }
        tgt[b * tw] = BOS;
        for t in 1..tgt_lens[b] - 1 {
            tgt[b * tw + t] = 3 + rng.below(9) as u32;
        }
        tgt[b * tw + tgt_lens[b] - 1] = EOS;
    }
    Data {
        src,
        src_lens,
        tgt,
        tgt_lens,
        tw,
    }
}

impl Data {
    fn batch(&self) -> Seq2SeqBatch<'_> {
        Seq2SeqBatch {
            src: &self.src,
            src_lens: &self.src_lens,
            tgt: &self.tgt,
            tgt_lens: &self.tgt_lens,
        }
    }

    fn gold(&self, t: usize, b: usize) -> u32 {
        self.tgt[b * self.tw + t]
    }

    fn live(&self, t: usize, b: usize) -> bool {
        t + 1 < self.tgt_lens[b]
    }
}

/// Trains on the data with `opts`; returns the fed tokens `[T, B]`, the logits and the loss.
fn train(model: &Seq2Seq, d: &Data, opts: TrainOptions, seed: u64) -> (Vec<u32>, Vec<f32>, f64) {
    let mut ws = Seq2SeqWorkspace::default();
    let mut grads = vec![0.0; model.num_params()];
    let stats = model
        .train_batch(&mut ws, &d.batch(), &opts, &mut Rng::new(seed), &mut grads)
        .unwrap();
    let v = model.config.tgt_vocab;
    (ws.fed_tokens(), ws.logits(v).to_vec(), stats.loss)
}

#[test]
fn teacher_forcing_one_reads_the_gold_tokens_and_equals_evaluation() {
    let mut rng = Rng::new(1);
    let model = Seq2Seq::new(config(), &mut rng).unwrap();
    let d = data(&mut rng);
    let (fed, _, loss) = train(&model, &d, TrainOptions::default(), 9);
    let b = 4;
    assert_eq!(fed.len(), 6 * b, "T = longest target - 1");
    for t in 0..6 {
        for r in 0..b {
            let want = if d.live(t, r) { d.gold(t, r) } else { 0 };
            assert_eq!(fed[t * b + r], want, "step {t} pair {r}");
        }
    }
    let eval = model
        .evaluate(&mut Seq2SeqWorkspace::default(), &d.batch(), 0.0)
        .unwrap();
    assert_eq!(loss, eval.loss);
    // Label smoothing raises the objective but not the cross-entropy.
    let smooth = TrainOptions {
        label_smoothing: 0.1,
        ..TrainOptions::default()
    };
    let mut ws = Seq2SeqWorkspace::default();
    let mut g = vec![0.0; model.num_params()];
    let s = model
        .train_batch(&mut ws, &d.batch(), &smooth, &mut Rng::new(9), &mut g)
        .unwrap();
    assert_eq!(s.nll, eval.nll);
    assert_ne!(s.loss, s.nll);
}

#[test]
fn teacher_forcing_zero_feeds_back_the_greedy_predictions_of_decode_step() {
    let mut rng = Rng::new(2);
    let model = Seq2Seq::new(config(), &mut rng).unwrap();
    let d = data(&mut rng);
    let opts = TrainOptions {
        teacher_forcing: 0.0,
        ..TrainOptions::default()
    };
    let (fed, logits, loss) = train(&model, &d, opts, 9);
    let (b, v) = (4, model.config.tgt_vocab);
    // Free-running greedy decoding with the building blocks.
    let enc = model.encode(&d.src, &d.src_lens).unwrap();
    let mut state = model.initial_state(&enc).unwrap();
    let mut prev = vec![BOS; b];
    let mut differs = 0;
    for t in 0..6 {
        let step = model.decode_step(&enc, &state, &prev).unwrap();
        for r in (0..b).filter(|&r| d.live(t, r)) {
            assert_eq!(
                fed[t * b + r],
                prev[r],
                "step {t} pair {r} read the greedy token"
            );
            let row = &logits[(t * b + r) * v..(t * b + r + 1) * v];
            for (a, c) in row.iter().zip(&step.logits[r * v..(r + 1) * v]) {
                assert!((a - c).abs() <= 1e-6, "step {t} pair {r}: {a} vs {c}");
            }
            differs += usize::from(t > 0 && prev[r] != d.gold(t, r));
        }
        prev = (0..b)
            .map(|r| argmax(&step.logits[r * v..(r + 1) * v]) as u32)
            .collect();
        state = step.state;
    }
    assert!(
        differs > 0,
        "an untrained model's guesses differ from the gold tokens"
    );
    let (_, _, forced) = train(&model, &d, TrainOptions::default(), 9);
    assert_ne!(loss, forced);
}

#[test]
fn a_mixed_ratio_feeds_gold_or_predicted_tokens_drawn_from_the_rng() {
    let mut rng = Rng::new(3);
    let model = Seq2Seq::new(config(), &mut rng).unwrap();
    let d = data(&mut rng);
    let (b, v) = (4, model.config.tgt_vocab);
    let half = TrainOptions {
        teacher_forcing: 0.5,
        ..TrainOptions::default()
    };
    let (mut gold, mut own) = (0, 0);
    for seed in 0..6 {
        let (fed, logits, _) = train(&model, &d, half, seed);
        assert_eq!(
            fed,
            train(&model, &d, half, seed).0,
            "same seed, same choices"
        );
        for t in 1..6 {
            for r in (0..b).filter(|&r| d.live(t, r)) {
                let pred = argmax(&logits[((t - 1) * b + r) * v..((t - 1) * b + r + 1) * v]) as u32;
                let f = fed[t * b + r];
                assert!(f == d.gold(t, r) || f == pred, "step {t} pair {r}: {f}");
                if pred != d.gold(t, r) {
                    gold += usize::from(f == d.gold(t, r));
                    own += usize::from(f == pred);
                }
            }
        }
    }
    assert!(
        gold > 5 && own > 5,
        "both kinds occur: {gold} gold, {own} own"
    );
    // Sampling feeds tokens of the vocabulary, not always the argmax.
    let sample = TrainOptions {
        teacher_forcing: 0.0,
        feed: FeedMode::Sample,
        ..TrainOptions::default()
    };
    let mut not_argmax = 0;
    for seed in 0..4 {
        let (fed, logits, _) = train(&model, &d, sample, seed);
        for t in 1..6 {
            for r in (0..b).filter(|&r| d.live(t, r)) {
                let pred = argmax(&logits[((t - 1) * b + r) * v..((t - 1) * b + r + 1) * v]) as u32;
                assert!((fed[t * b + r] as usize) < v);
                not_argmax += usize::from(fed[t * b + r] != pred);
            }
        }
    }
    assert!(not_argmax > 0);
}

#[test]
fn teacher_forced_decode_steps_reproduce_the_evaluation_logits() {
    for (cell, kind, feeding) in [
        (CellKind::Gru, AttentionKind::Additive, true),
        (CellKind::Lstm, AttentionKind::Dot, false),
    ] {
        let c = Seq2SeqConfig {
            cell,
            attention: kind,
            input_feeding: feeding,
            bridge: Bridge::Linear,
            dropout: 0.3, // evaluation and decoding use none
            ..config()
        };
        let mut rng = Rng::new(4);
        let model = Seq2Seq::new(c, &mut rng).unwrap();
        let d = data(&mut rng);
        let mut ws = Seq2SeqWorkspace::default();
        model.evaluate(&mut ws, &d.batch(), 0.0).unwrap();
        let (b, v) = (4, model.config.tgt_vocab);
        let logits = ws.logits(v).to_vec();
        let enc = model.encode(&d.src, &d.src_lens).unwrap();
        let mut state = model.initial_state(&enc).unwrap();
        for t in 0..6 {
            let prev: Vec<u32> = (0..b)
                .map(|r| if d.live(t, r) { d.gold(t, r) } else { 0 })
                .collect();
            let step = model.decode_step(&enc, &state, &prev).unwrap();
            for (a, c) in logits[t * b * v..(t + 1) * b * v].iter().zip(&step.logits) {
                assert!((a - c).abs() <= 1e-6, "{cell} step {t}: {a} vs {c}");
            }
            let s = enc.src_len;
            for r in 0..b {
                let w = &step.attention[r * s..(r + 1) * s];
                let sum: f32 = w.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5);
                assert!(w[d.src_lens[r]..].iter().all(|&x| x == 0.0));
            }
            state = step.state;
        }
    }
}

#[test]
fn selected_rows_decode_as_their_originals() {
    let mut rng = Rng::new(5);
    let model = Seq2Seq::new(config(), &mut rng).unwrap();
    let d = data(&mut rng);
    let v = model.config.tgt_vocab;
    let enc = model.encode(&d.src, &d.src_lens).unwrap();
    let s0 = model.initial_state(&enc).unwrap();
    let first = model.decode_step(&enc, &s0, &[BOS; 4]).unwrap();
    // Beams of 3 over sources 2 and 0, reordered after one step.
    let rows = [2, 2, 2, 0, 0, 0];
    let beams = enc.select(&rows).unwrap();
    let b0 = model.initial_state(&beams).unwrap();
    assert_eq!(b0, s0.select(&rows).unwrap());
    let step = model.decode_step(&beams, &b0, &[BOS; 6]).unwrap();
    for (i, &r) in rows.iter().enumerate() {
        assert_eq!(
            step.logits[i * v..(i + 1) * v],
            first.logits[r * v..(r + 1) * v]
        );
    }
    // Keep beam 1 twice and beam 4: the survivors continue like their parents.
    let keep = [1, 1, 4];
    let st = step.state.select(&keep).unwrap();
    let en = beams.select(&keep).unwrap();
    let next = model.decode_step(&en, &st, &[5, 6, 7]).unwrap();
    let want = model
        .decode_step(
            &enc.select(&[2, 2, 0]).unwrap(),
            &first.state.select(&[2, 2, 0]).unwrap(),
            &[5, 6, 7],
        )
        .unwrap();
    assert_eq!(next, want);
}

#[test]
fn greedy_decoding_stops_at_eos_and_max_len() {
    let mut rng = Rng::new(6);
    let model = Seq2Seq::new(config(), &mut rng).unwrap();
    let d = data(&mut rng);
    let out = model.greedy(&d.src, &d.src_lens, BOS, EOS, 5).unwrap();
    assert_eq!(out.len(), 4);
    assert!(out.iter().all(|o| o.len() <= 5 && !o.contains(&EOS)));
    assert!(matches!(
        model.greedy(&d.src, &d.src_lens, BOS, 99, 5),
        Err(Seq2SeqError::Batch(_))
    ));
}

#[test]
fn config_json_defaults_and_round_trip() {
    let json = r#"{"cell":"gru","src_vocab":5,"tgt_vocab":6,"embed":3,"hidden":4,"layers":1}"#;
    let c: Seq2SeqConfig = serde_json::from_str(json).unwrap();
    assert_eq!(c.attention, AttentionKind::General);
    assert!(c.input_feeding && !c.bidirectional && !c.tie);
    assert_eq!(c.bridge, Bridge::Copy);
    let full = Seq2SeqConfig {
        attention: AttentionKind::Additive,
        bridge: Bridge::Linear,
        ..config()
    };
    let s = serde_json::to_string(&full).unwrap();
    assert!(s.contains(r#""attention":"additive""#) && s.contains(r#""bridge":"linear""#));
    assert_eq!(serde_json::from_str::<Seq2SeqConfig>(&s).unwrap(), full);
}

#[test]
fn parameter_names_follow_pytorch() {
    let c = Seq2SeqConfig {
        layers: 1,
        attention: AttentionKind::Additive,
        bridge: Bridge::Linear,
        ..config()
    };
    let l = layout(&c);
    let names: Vec<(&str, &[usize])> = l
        .entries
        .iter()
        .map(|e| (e.name.as_str(), &e.shape[..]))
        .collect();
    let want: [(&str, &[usize]); 20] = [
        ("encoder.embedding.weight", &[10, 6]),
        ("encoder.rnn.weight_ih_l0", &[16, 6]),
        ("encoder.rnn.weight_hh_l0", &[16, 4]),
        ("encoder.rnn.bias_ih_l0", &[16]),
        ("encoder.rnn.bias_hh_l0", &[16]),
        ("encoder.rnn.weight_ih_l0_reverse", &[16, 6]),
        ("encoder.rnn.weight_hh_l0_reverse", &[16, 4]),
        ("encoder.rnn.bias_ih_l0_reverse", &[16]),
        ("encoder.rnn.bias_hh_l0_reverse", &[16]),
        ("bridge.h.0.weight", &[8, 8]),
        ("bridge.h.0.bias", &[8]),
        ("bridge.c.0.weight", &[8, 8]),
        ("bridge.c.0.bias", &[8]),
        ("decoder.embedding.weight", &[12, 6]),
        ("decoder.rnn.weight_ih_l0", &[32, 14]),
        ("decoder.rnn.weight_hh_l0", &[32, 8]),
        ("decoder.rnn.bias_ih_l0", &[32]),
        ("decoder.rnn.bias_hh_l0", &[32]),
        ("decoder.attention.query.weight", &[8, 8]),
        ("decoder.attention.key.weight", &[8, 8]),
    ];
    assert_eq!(names[..20], want);
    let rest: Vec<&str> = names[20..].iter().map(|n| n.0).collect();
    assert_eq!(
        rest,
        [
            "decoder.attention.key.bias",
            "decoder.attention.v.weight",
            "decoder.attention.linear_out.weight",
            "decoder.attention.linear_out.bias",
            "generator.weight",
            "generator.bias"
        ]
    );
    // Tied and shared models drop the copies.
    let tied = layout(&Seq2SeqConfig {
        embed: 8,
        tie: true,
        share_embeddings: true,
        src_vocab: 12,
        ..config()
    });
    assert!(tied.get("generator.weight").is_none());
    assert!(tied.get("decoder.embedding.weight").is_none());
}

#[test]
fn tensors_round_trip_and_mismatches_are_named() {
    let model = Seq2Seq::new(config(), &mut Rng::new(7)).unwrap();
    let mut t = model.to_tensors();
    let back = Seq2Seq::from_tensors(config(), &t).unwrap();
    assert_eq!(back.params, model.params);
    t[3].1 = vec![9];
    let err = Seq2Seq::from_tensors(config(), &t).unwrap_err().to_string();
    assert!(
        err.contains("encoder.rnn.bias_ih_l0") && err.contains("[9]"),
        "{err}"
    );
    t.remove(3);
    let err = Seq2Seq::from_tensors(config(), &t).unwrap_err();
    assert_eq!(
        err,
        Seq2SeqError::MissingTensor("encoder.rnn.bias_ih_l0".into())
    );
    let mut t = model.to_tensors();
    t.push(("extra".into(), vec![1], vec![0.0]));
    let err = Seq2Seq::from_tensors(config(), &t).unwrap_err();
    assert_eq!(err, Seq2SeqError::UnexpectedTensor("extra".into()));
}
