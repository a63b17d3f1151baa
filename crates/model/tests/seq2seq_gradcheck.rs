//! Whole-model finite-difference gradient checks of the seq2seq model: every
//! parameter, for GRU and LSTM, uni- and bidirectional encoders, each attention
//! scoring, with input feeding, dropout (fixed by seeding), label smoothing,
//! and padding in both the source and the target.

use recurrent_kernels::Rng;
use recurrent_model::seq2seq::{
    AttentionKind, Bridge, Seq2Seq, Seq2SeqBatch, Seq2SeqConfig, Seq2SeqWorkspace, TrainOptions,
};
use recurrent_model::CellKind;

/// Three pairs; the sources have 4, 2 and 3 tokens in rows 5 wide, the targets
/// 3, 1 and 2 tokens between BOS (1) and EOS (2) in rows 6 wide. Padding holds
/// out-of-vocabulary ids, which the model must never read.
struct Data {
    src: Vec<u32>,
    src_lens: Vec<usize>,
    tgt: Vec<u32>,
    tgt_lens: Vec<usize>,
}

fn data(config: &Seq2SeqConfig, rng: &mut Rng) -> Data {
    let (sw, tw) = (5, 6);
    let src_lens = vec![4, 2, 3];
    let tgt_lens = vec![5, 3, 4];
    let mut src = vec![999; 3 * sw];
    let mut tgt = vec![777; 3 * tw];
    for b in 0..3 {
        for s in 0..src_lens[b] {
            src[b * sw + s] = rng.below(config.src_vocab as u64) as u32;
        }
        tgt[b * tw] = 1;
        for t in 1..tgt_lens[b] - 1 {
            tgt[b * tw + t] = 3 + rng.below(config.tgt_vocab as u64 - 3) as u32;
        }
        tgt[b * tw + tgt_lens[b] - 1] = 2;
    }
    Data {
        src,
        src_lens,
        tgt,
        tgt_lens,
    }
}

fn gradcheck(config: Seq2SeqConfig, opts: TrainOptions) {
    let what = format!(
        "{} {} {}{}",
        config.cell,
        if config.bidirectional { "bi" } else { "uni" },
        config.attention,
        if config.tie { " tied" } else { "" }
    );
    let mut rng = Rng::new(17);
    let model = Seq2Seq::new(config.clone(), &mut rng).unwrap();
    let d = data(&config, &mut rng);
    let batch = Seq2SeqBatch {
        src: &d.src,
        src_lens: &d.src_lens,
        tgt: &d.tgt,
        tgt_lens: &d.tgt_lens,
    };
    let mut ws = Seq2SeqWorkspace::default();
    // The same seed every time: the same dropout masks.
    let loss = |m: &Seq2Seq, ws: &mut Seq2SeqWorkspace| {
        let mut scratch = vec![0.0; m.num_params()];
        m.train_batch(ws, &batch, &opts, &mut Rng::new(5), &mut scratch)
            .unwrap()
            .loss
    };
    let mut grads = vec![0.0; model.num_params()];
    let stats = model
        .train_batch(&mut ws, &batch, &opts, &mut Rng::new(5), &mut grads)
        .unwrap();
    assert_eq!(stats.tokens, 4 + 2 + 3, "{what}: predicted tokens");

    // Central differences at two step sizes (f32 rounding spoils the narrow
    // one, curvature the wide one); a correct gradient matches at least one.
    let mut m = model.clone();
    let mut worst = (0.0f64, String::new());
    for e in &model.layout.entries {
        let norm: f32 = grads[e.range()].iter().map(|g| g * g).sum();
        assert!(norm > 0.0, "{what}: {} gets no gradient at all", e.name);
        for j in e.range() {
            let mut numeric = [0.0; 2];
            for (n, h) in numeric.iter_mut().zip([1e-2f32, 1e-3]) {
                m.params[j] = model.params[j] + h;
                let lp = loss(&m, &mut ws);
                m.params[j] = model.params[j] - h;
                let lm = loss(&m, &mut ws);
                m.params[j] = model.params[j];
                *n = (lp - lm) / (2.0 * h as f64);
            }
            let a = grads[j] as f64;
            let err = numeric
                .map(|n| (n - a).abs() / (1e-2 + n.abs().max(a.abs())))
                .into_iter()
                .fold(f64::INFINITY, f64::min);
            if err > worst.0 {
                worst = (err, e.name.clone());
            }
            assert!(
                err < 2e-2,
                "{what}: {}[{}] analytic {a} vs numeric {numeric:?}",
                e.name,
                j - e.offset
            );
        }
    }
    eprintln!(
        "{what}: worst relative error {:.2e} in {}",
        worst.0, worst.1
    );
}

fn config(cell: CellKind, bidirectional: bool, attention: AttentionKind) -> Seq2SeqConfig {
    let gru = cell == CellKind::Gru;
    Seq2SeqConfig {
        cell,
        src_vocab: if gru { 6 } else { 7 },
        tgt_vocab: 7,
        embed: 4,
        hidden: 4,
        layers: 2,
        bidirectional,
        attention,
        input_feeding: true,
        bridge: if bidirectional {
            Bridge::Linear
        } else {
            Bridge::Copy
        },
        dropout: 0.2,
        // GRU models tie the generator to the target embedding; LSTM models
        // share one embedding between encoder and decoder.
        tie: gru,
        share_embeddings: !gru,
    }
}

fn check_all_scorings(cell: CellKind, bidirectional: bool) {
    for (i, kind) in AttentionKind::ALL.into_iter().enumerate() {
        let opts = TrainOptions {
            label_smoothing: if i == 2 { 0.1 } else { 0.0 },
            ..TrainOptions::default()
        };
        gradcheck(config(cell, bidirectional, kind), opts);
    }
}

#[test]
fn gru_unidirectional_every_scoring() {
    check_all_scorings(CellKind::Gru, false);
}

#[test]
fn gru_bidirectional_every_scoring() {
    check_all_scorings(CellKind::Gru, true);
}

#[test]
fn lstm_unidirectional_every_scoring() {
    check_all_scorings(CellKind::Lstm, false);
}

#[test]
fn lstm_bidirectional_every_scoring() {
    check_all_scorings(CellKind::Lstm, true);
}

#[test]
fn tanh_rnn_one_layer_without_input_feeding_or_bridge() {
    let config = Seq2SeqConfig {
        layers: 1,
        input_feeding: false,
        bridge: Bridge::Zero,
        tie: false,
        share_embeddings: false,
        ..config(CellKind::RnnTanh, true, AttentionKind::General)
    };
    gradcheck(config, TrainOptions::default());
}
