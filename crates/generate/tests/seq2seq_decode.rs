//! Batched seq2seq decoding (`recurrent_generate::beam`): beam search against
//! greedy decoding and exhaustive search, batches against sources decoded
//! alone, length limits, attention rows, sampling, and option errors.
//!
//! A trained digit-reversal model (`recurrent_model::seq2seq::reversal`,
//! trained once per test binary in about a second) and
//! untrained random models, whose flat distributions make beam search and
//! greedy disagree often.

use std::sync::OnceLock;
use std::time::Instant;

use recurrent_generate::{
    beam_search, beam_search_nbest, greedy_decode, sample_decode, BeamOptions, DecodeError,
    Hypothesis, LengthNorm, MaxLen, SampleOptions, SamplingConfig,
};
use recurrent_kernels::Rng;
use recurrent_model::seq2seq::reversal::{self, sources, BOS, EOS};
use recurrent_model::seq2seq::{
    AttentionKind, Seq2Seq, Seq2SeqBatch, Seq2SeqConfig, Seq2SeqError, Seq2SeqWorkspace,
};
use recurrent_model::CellKind;

/// An untrained model: near-uniform next-token distributions.
fn random_model(cell: CellKind, seed: u64) -> Seq2Seq {
    let c = Seq2SeqConfig {
        layers: 2,
        hidden: 16,
        ..reversal::config(cell, true, AttentionKind::Additive)
    };
    Seq2Seq::new(c, &mut Rng::new(seed)).unwrap()
}

/// Row `b` of a padded batch, as a batch of one.
fn row(src: &[u32], lens: &[usize], b: usize) -> (Vec<u32>, Vec<usize>) {
    let w = src.len() / lens.len();
    (src[b * w..b * w + lens[b]].to_vec(), vec![lens[b]])
}

/// Greedy exact-match rate of the reversal task on `n` strings from `seed`.
fn greedy_exact(model: &Seq2Seq, seed: u64, n: usize) -> f64 {
    let (src, sl) = sources(&mut Rng::new(seed), n, 3, 6);
    let out = greedy_decode(model, &src, &sl, BOS, EOS, &opts(1, LengthNorm::None)).unwrap();
    exact_match(&src, &sl, &out)
}

fn exact_match(src: &[u32], lens: &[usize], out: &[Hypothesis]) -> f64 {
    let w = src.len() / lens.len();
    let hits = out
        .iter()
        .enumerate()
        .filter(|(b, h)| {
            let mut want = src[b * w..b * w + lens[*b]].to_vec();
            want.reverse();
            h.eos && h.tokens == want
        })
        .count();
    hits as f64 / lens.len() as f64
}

/// A reversal model trained (once per test binary) until greedy decoding gets
/// 97% of held-out strings exactly: good, not perfect, so beams have room.
fn trained() -> &'static Seq2Seq {
    static MODEL: OnceLock<Seq2Seq> = OnceLock::new();
    MODEL.get_or_init(|| {
        let start = Instant::now();
        let mut rng = Rng::new(2024);
        let mut model = Seq2Seq::new(
            reversal::config(CellKind::Gru, true, AttentionKind::General),
            &mut rng,
        )
        .unwrap();
        let steps = reversal::train(&mut model, &mut rng, 1e-2, None, 3000, 50, |m, _, _| {
            greedy_exact(m, 7, 200) >= 0.97
        });
        eprintln!(
            "reversal model: {steps} steps, {:.2}s",
            start.elapsed().as_secs_f64()
        );
        model
    })
}

fn opts(width: usize, norm: LengthNorm) -> BeamOptions {
    BeamOptions {
        width,
        max_len: MaxLen::absolute(8),
        length_normalization: norm,
    }
}

const GNMT: LengthNorm = LengthNorm::Gnmt { alpha: 0.6 };

#[test]
fn width_one_is_greedy_exactly_without_length_normalization() {
    let (src, sl) = sources(&mut Rng::new(1), 16, 1, 6);
    for model in [
        trained(),
        &random_model(CellKind::Lstm, 3),
        &random_model(CellKind::Gru, 4),
    ] {
        let o = opts(1, LengthNorm::None);
        let beam = beam_search(model, &src, &sl, BOS, EOS, &o).unwrap();
        let greedy = greedy_decode(model, &src, &sl, BOS, EOS, &o).unwrap();
        assert_eq!(beam, greedy, "tokens, scores and attention");
        // And the model's own greedy decoder agrees on the tokens.
        let tokens = model.greedy(&src, &sl, BOS, EOS, 8).unwrap();
        let ours: Vec<Vec<u32>> = greedy.iter().map(|h| h.tokens.clone()).collect();
        assert_eq!(ours, tokens);
    }
}

/// A straightforward beam search over one source, as the algorithm is
/// documented (no batching, no candidate pruning, the whole hypothesis in
/// each beam): what the batched one must reproduce.
fn reference_beam(model: &Seq2Seq, src: &[u32], o: &BeamOptions) -> (Vec<u32>, bool, f64) {
    let enc = model.encode(src, &[src.len()]).unwrap();
    let max_len = o.max_len.for_source(src.len());
    let norm = o.length_normalization;
    let penalty = |len| -norm.score(-1.0, len);
    let mut live = vec![(model.initial_state(&enc).unwrap(), vec![BOS], 0.0f64)];
    let mut ended: Vec<(Vec<u32>, bool, f64, f64)> = Vec::new();
    loop {
        let mut cands = Vec::new();
        let mut states = Vec::new();
        for (beam, (state, toks, lp)) in live.iter().enumerate() {
            let step = model
                .decode_step(&enc, state, &toks[toks.len() - 1..])
                .unwrap();
            let logp = recurrent_generate::log_softmax(&step.logits);
            for (tok, l) in logp.iter().enumerate() {
                cands.push((lp + l, tok as u32, beam));
            }
            states.push(step.state);
        }
        cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut next = Vec::new();
        let mut continuing = 0;
        for (rank, &(lp, tok, beam)) in cands.iter().enumerate() {
            if continuing == o.width {
                break;
            }
            if tok == EOS && rank >= o.width {
                continue;
            }
            let mut toks = live[beam].1.clone();
            toks.push(tok);
            let len = toks.len() - 1;
            continuing += usize::from(tok != EOS);
            if tok == EOS || len >= max_len {
                let eos = tok == EOS;
                toks.truncate(len + 1 - usize::from(eos));
                ended.push((toks[1..].to_vec(), eos, lp, norm.score(lp, len)));
            } else {
                next.push((states[beam].clone(), toks, lp));
            }
        }
        live = next;
        let mut scores: Vec<f64> = ended.iter().map(|e| e.3).collect();
        scores.sort_by(|a, b| b.total_cmp(a));
        let best_live = live.iter().map(|l| l.2).reduce(f64::max);
        let stop = match best_live {
            None => true,
            Some(b) => scores.len() >= o.width && scores[o.width - 1] >= b / penalty(max_len),
        };
        if stop {
            ended.sort_by(|a, b| b.3.total_cmp(&a.3));
            let (t, e, lp, _) = ended.swap_remove(0);
            return (t, e, lp);
        }
    }
}

#[test]
fn batched_beam_search_matches_a_straightforward_one() {
    let (src, sl) = sources(&mut Rng::new(21), 8, 1, 6);
    for model in [
        trained(),
        &random_model(CellKind::Lstm, 22),
        &random_model(CellKind::Gru, 23),
    ] {
        for (width, norm) in [(2, LengthNorm::None), (3, GNMT), (5, LengthNorm::Average)] {
            let o = opts(width, norm);
            let out = beam_search(model, &src, &sl, BOS, EOS, &o).unwrap();
            for (b, h) in out.iter().enumerate() {
                let (s, _) = row(&src, &sl, b);
                let (tokens, eos, lp) = reference_beam(model, &s, &o);
                assert_eq!(
                    (&h.tokens, h.eos),
                    (&tokens, eos),
                    "width {width} source {b}"
                );
                // f32 logits round differently in batches of other sizes
                // (a few 1e-6 for the trained model's large logits).
                assert!((h.log_prob - lp).abs() < 1e-4, "{} vs {lp}", h.log_prob);
            }
        }
    }
}

#[test]
fn beam_search_never_scores_below_greedy() {
    let (src, sl) = sources(&mut Rng::new(2), 24, 1, 6);
    let random = [
        random_model(CellKind::Lstm, 5),
        random_model(CellKind::Gru, 6),
    ];
    for (name, model) in [
        ("trained", trained()),
        ("lstm", &random[0]),
        ("gru", &random[1]),
    ] {
        let greedy = greedy_decode(model, &src, &sl, BOS, EOS, &opts(1, GNMT)).unwrap();
        let (mut better, mut worse, mut sum) = (0, 0, 0.0);
        for width in [2, 3, 5, 8] {
            // On the model's own log-probabilities (no normalization).
            let beam = beam_search(model, &src, &sl, BOS, EOS, &opts(width, LengthNorm::None));
            for (b, (h, g)) in beam.unwrap().iter().zip(&greedy).enumerate() {
                // The same path scores within rounding (~1e-8) of itself when
                // computed in a batch of another size.
                let gain = h.log_prob - g.log_prob;
                better += usize::from(gain > 1e-6);
                sum += gain;
                if gain < -1e-6 {
                    worse += 1;
                    // Beam search is not monotone in general: the greedy
                    // prefix can fall out of the beam. A trained model's peaked
                    // distributions never show it here; a random model's flat
                    // ones may, rarely, and then the straightforward beam
                    // search must agree (it is the algorithm, not a bug).
                    let (s, _) = row(&src, &sl, b);
                    let o = opts(width, LengthNorm::None);
                    assert_eq!(reference_beam(model, &s, &o).0, h.tokens);
                    assert!(name != "trained", "width {width} source {b}: {gain}");
                }
            }
        }
        eprintln!("{name}: beam beat greedy on {better} and lost on {worse} of 96 decodings, total gain {sum:.3} nats");
        assert!(
            // Equal paths score within rounding of each other.
            sum >= -1e-4 && worse * 10 <= better.max(1),
            "{name}: {better} / {worse}"
        );
        // With normalization, width 1 keeps greedy's hypothesis among its
        // finished ones, so it can only find a better-scoring one.
        let beam1 = beam_search(model, &src, &sl, BOS, EOS, &opts(1, GNMT)).unwrap();
        for (h, g) in beam1.iter().zip(&greedy) {
            assert!(h.score >= g.score - 1e-6);
        }
    }
}

/// Every output of at most `max_len` tokens (EOS-terminated or cut off at the
/// limit) with its log-probability, by teacher-forced decode steps.
fn all_outputs(model: &Seq2Seq, src: &[u32], max_len: usize) -> Vec<(Vec<u32>, bool, f64)> {
    let enc = model.encode(src, &[src.len()]).unwrap();
    let mut out = Vec::new();
    let mut stack = vec![(model.initial_state(&enc).unwrap(), BOS, Vec::new(), 0.0f64)];
    while let Some((state, prev, tokens, lp)) = stack.pop() {
        let step = model.decode_step(&enc, &state, &[prev]).unwrap();
        let logp = recurrent_generate::log_softmax(&step.logits);
        for tok in 0..logp.len() as u32 {
            let (lp, mut t) = (lp + logp[tok as usize], tokens.clone());
            if tok == EOS {
                out.push((t, true, lp));
                continue;
            }
            t.push(tok);
            if t.len() == max_len {
                out.push((t, false, lp));
            } else {
                stack.push((step.state.clone(), tok, t, lp));
            }
        }
    }
    out
}

#[test]
fn a_beam_wider_than_the_search_space_finds_the_exact_best() {
    // 12 tokens, at most 2: 1 + 11 + 121 outputs; a width of 200 keeps them all.
    let model = random_model(CellKind::Lstm, 7);
    let src = [3, 1, 4, 1];
    let all = all_outputs(&model, &src, 2);
    assert_eq!(all.len(), 133);
    for norm in [LengthNorm::None, LengthNorm::Average, GNMT] {
        let o = BeamOptions {
            width: 200,
            max_len: MaxLen::absolute(2),
            length_normalization: norm,
        };
        let nbest = beam_search_nbest(&model, &src, &[4], BOS, EOS, &o).unwrap();
        let nbest = &nbest[0];
        assert_eq!(nbest.len(), all.len(), "{norm:?}: every output finished");
        let mut want: Vec<f64> = all
            .iter()
            .map(|(t, eos, lp)| norm.score(*lp, t.len() + usize::from(*eos)))
            .collect();
        want.sort_by(|a, b| b.total_cmp(a));
        for (h, w) in nbest.iter().zip(&want) {
            // Rounding differs between batch sizes (1 here, up to 12 rows in the beam).
            assert!((h.score - w).abs() < 1e-6, "{norm:?}: {} vs {w}", h.score);
        }
    }
}

#[test]
fn beam_search_matches_or_beats_greedy_exact_match_on_reversal() {
    let model = trained();
    let (src, sl) = sources(&mut Rng::new(8), 500, 3, 6);
    let start = Instant::now();
    let greedy = greedy_decode(model, &src, &sl, BOS, EOS, &opts(1, LengthNorm::None)).unwrap();
    let greedy_time = start.elapsed();
    let g = exact_match(&src, &sl, &greedy);
    for (width, norm) in [(3, LengthNorm::None), (5, LengthNorm::None), (5, GNMT)] {
        let start = Instant::now();
        let beam = beam_search(model, &src, &sl, BOS, EOS, &opts(width, norm)).unwrap();
        let b = exact_match(&src, &sl, &beam);
        eprintln!(
            "500 sources: greedy {g:.3} in {:.0} ms, beam {width} {norm:?} {b:.3} in {:.0} ms",
            greedy_time.as_secs_f64() * 1e3,
            start.elapsed().as_secs_f64() * 1e3
        );
        // Beam search maximizes the model's probability, not exact match, so
        // it may lose a sentence or two that greedy happened to get right.
        assert!(b >= g - 0.01, "width {width} {norm:?}: {b} < greedy {g}");
    }
}

#[test]
fn a_batch_decodes_like_each_source_alone() {
    let (src, sl) = sources(&mut Rng::new(9), 7, 1, 6);
    let model = random_model(CellKind::Lstm, 10);
    for norm in [LengthNorm::None, GNMT] {
        let o = opts(4, norm);
        let batch = beam_search_nbest(&model, &src, &sl, BOS, EOS, &o).unwrap();
        let greedy = greedy_decode(&model, &src, &sl, BOS, EOS, &o).unwrap();
        for b in 0..sl.len() {
            let (s, l) = row(&src, &sl, b);
            let alone = beam_search_nbest(&model, &s, &l, BOS, EOS, &o).unwrap();
            assert_same(&batch[b], &alone[0]);
            let g = greedy_decode(&model, &s, &l, BOS, EOS, &o).unwrap();
            assert_same(&greedy[b..=b], &g);
        }
    }
}

/// Same tokens; scores and attention equal up to the rounding of a different batch size.
fn assert_same(a: &[Hypothesis], b: &[Hypothesis]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!((&x.tokens, x.eos), (&y.tokens, y.eos));
        assert!(
            (x.score - y.score).abs() < 1e-5,
            "{} vs {}",
            x.score,
            y.score
        );
        for (r, s) in x.attention.iter().zip(&y.attention) {
            assert!(r.iter().zip(s).all(|(p, q)| (p - q).abs() < 1e-5));
        }
    }
}

#[test]
fn outputs_respect_the_length_limit() {
    let (src, sl) = sources(&mut Rng::new(11), 12, 1, 6);
    // A random model rarely says EOS, so most outputs run into the limit.
    let model = random_model(CellKind::Gru, 12);
    let sampling = |max_len| SampleOptions {
        sampling: SamplingConfig::default(),
        max_len,
        length_normalization: GNMT,
    };
    for max_len in [
        MaxLen::absolute(1),
        MaxLen::absolute(3),
        MaxLen { a: 0.5, b: 1 },
    ] {
        let o = BeamOptions {
            max_len,
            ..opts(3, GNMT)
        };
        let runs = [
            beam_search(&model, &src, &sl, BOS, EOS, &o).unwrap(),
            greedy_decode(&model, &src, &sl, BOS, EOS, &o).unwrap(),
            sample_decode(
                &model,
                &src,
                &sl,
                BOS,
                EOS,
                &sampling(max_len),
                &mut Rng::new(1),
            )
            .unwrap(),
        ];
        for (run, out) in runs.iter().enumerate() {
            let mut cut = 0;
            for (h, &len) in out.iter().zip(&sl) {
                let limit = max_len.for_source(len);
                assert!(h.tokens.len() <= limit, "{max_len:?}: {h:?}");
                assert!(h.eos || h.tokens.len() == limit, "ended early without EOS");
                cut += usize::from(!h.eos);
            }
            // Greedy decoding of a random model rarely meets EOS; beam search
            // (normalized) may prefer the short EOS-terminated outputs.
            assert!(run != 1 || cut > 0, "{max_len:?}: the limit was reached");
        }
    }
}

/// Attention has a row per step (EOS's included) over the real source
/// positions, each a distribution.
fn check_attention(out: &[Hypothesis], lens: &[usize]) {
    for (h, &len) in out.iter().zip(lens) {
        assert_eq!(h.attention.len(), h.tokens.len() + usize::from(h.eos));
        for r in &h.attention {
            assert_eq!(r.len(), len);
            assert!(r.iter().all(|&w| w >= 0.0));
            let sum: f32 = r.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "sum {sum}");
        }
    }
}

#[test]
fn attention_rows_cover_the_source_and_sum_to_one() {
    let (src, sl) = sources(&mut Rng::new(13), 10, 1, 6);
    for model in [trained(), &random_model(CellKind::Lstm, 14)] {
        let o = opts(4, GNMT);
        let nbest = beam_search_nbest(model, &src, &sl, BOS, EOS, &o).unwrap();
        for (list, &len) in nbest.iter().zip(&sl) {
            // Every hypothesis of a source has that source's length.
            check_attention(list, &vec![len; list.len()]);
        }
        check_attention(&greedy_decode(model, &src, &sl, BOS, EOS, &o).unwrap(), &sl);
        let s = SampleOptions {
            sampling: SamplingConfig::default(),
            max_len: o.max_len,
            length_normalization: GNMT,
        };
        check_attention(
            &sample_decode(model, &src, &sl, BOS, EOS, &s, &mut Rng::new(2)).unwrap(),
            &sl,
        );
    }
}

#[test]
fn nbest_lists_are_sorted_distinct_and_scored_by_the_model() {
    let (src, sl) = sources(&mut Rng::new(15), 6, 1, 6);
    let model = random_model(CellKind::Gru, 16);
    let o = opts(5, GNMT);
    let nbest = beam_search_nbest(&model, &src, &sl, BOS, EOS, &o).unwrap();
    let mut ws = Seq2SeqWorkspace::default();
    for (b, list) in nbest.iter().enumerate() {
        assert!(!list.is_empty() && list.len() <= 5);
        assert!(list.windows(2).all(|w| w[0].score >= w[1].score));
        for (i, h) in list.iter().enumerate() {
            assert!(list[..i]
                .iter()
                .all(|o| o.tokens != h.tokens || o.eos != h.eos));
            let len = h.tokens.len() + usize::from(h.eos);
            assert_eq!(h.score, GNMT.score(h.log_prob, len));
            if h.eos {
                // The log-probability is the model's teacher-forced score.
                let (s, l) = row(&src, &sl, b);
                let mut tgt = vec![BOS];
                tgt.extend(&h.tokens);
                tgt.push(EOS);
                let batch = Seq2SeqBatch {
                    src: &s,
                    src_lens: &l,
                    tgt: &tgt,
                    tgt_lens: &[tgt.len()],
                };
                let nll = model.score(&mut ws, &batch).unwrap()[0];
                assert!((nll + h.log_prob).abs() < 1e-4, "{nll} vs {}", h.log_prob);
            }
        }
    }
}

#[test]
fn sampling_is_seeded_and_tends_to_greedy_as_the_temperature_falls() {
    let (src, sl) = sources(&mut Rng::new(17), 12, 1, 6);
    let model = random_model(CellKind::Lstm, 18);
    let at = |temperature| SampleOptions {
        sampling: SamplingConfig {
            temperature,
            ..SamplingConfig::default()
        },
        max_len: MaxLen::absolute(8),
        length_normalization: GNMT,
    };
    let run = |t, seed| sample_decode(&model, &src, &sl, BOS, EOS, &at(t), &mut Rng::new(seed));
    let greedy = greedy_decode(&model, &src, &sl, BOS, EOS, &opts(1, GNMT)).unwrap();
    assert_eq!(run(1e-6, 1).unwrap(), greedy);
    assert_eq!(run(0.0, 1).unwrap(), greedy);
    assert_eq!(run(1.0, 5).unwrap(), run(1.0, 5).unwrap(), "same seed");
    assert_ne!(run(1.0, 5).unwrap(), run(1.0, 6).unwrap(), "other seed");
    assert_ne!(run(1.0, 5).unwrap(), greedy);
    // A source decodes the same in any batch it leads (its rng is forked first).
    let (s, l) = row(&src, &sl, 0);
    let alone = sample_decode(&model, &s, &l, BOS, EOS, &at(1.0), &mut Rng::new(5)).unwrap();
    assert_eq!(alone[0].tokens, run(1.0, 5).unwrap()[0].tokens);
}

#[test]
fn bad_options_and_batches_are_errors_not_panics() {
    let model = random_model(CellKind::Gru, 19);
    let (src, sl) = sources(&mut Rng::new(20), 3, 1, 4);
    let beam = |o: &BeamOptions, bos| beam_search(&model, &src, &sl, bos, EOS, o);
    assert_eq!(
        beam(&opts(0, GNMT), BOS),
        Err(DecodeError::Width { value: 0 })
    );
    assert!(matches!(
        beam(&opts(2, LengthNorm::Gnmt { alpha: f64::NAN }), BOS),
        Err(DecodeError::Alpha { .. })
    ));
    let neg = BeamOptions {
        max_len: MaxLen { a: -1.0, b: 3 },
        ..opts(2, GNMT)
    };
    assert_eq!(beam(&neg, BOS), Err(DecodeError::MaxLenA { value: -1.0 }));
    assert_eq!(
        greedy_decode(&model, &src, &sl, BOS, EOS, &neg),
        Err(DecodeError::MaxLenA { value: -1.0 })
    );
    let err = beam(&opts(2, GNMT), 12).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Token {
            which: "BOS",
            id: 12,
            vocab: 12
        }
    );
    assert!(err.to_string().contains("BOS id 12"), "{err}");
    // The model's own checks come through typed.
    for (s, l) in [
        (&src[..], &[][..]),
        (&src[..], &[9, 1, 1][..]),
        (&[99][..], &[1][..]),
    ] {
        let err = beam_search(&model, s, l, BOS, EOS, &opts(2, GNMT)).unwrap_err();
        assert!(
            matches!(err, DecodeError::Model(Seq2SeqError::Batch(_))),
            "{err}"
        );
    }
    let cold = SampleOptions {
        sampling: SamplingConfig {
            temperature: -1.0,
            ..SamplingConfig::default()
        },
        max_len: MaxLen::absolute(3),
        length_normalization: GNMT,
    };
    let err = sample_decode(&model, &src, &sl, BOS, EOS, &cold, &mut Rng::new(1));
    assert!(matches!(err, Err(DecodeError::Sampling(_))));
}
