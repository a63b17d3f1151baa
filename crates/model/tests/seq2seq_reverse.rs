//! A synthetic task learned in a test: reversing strings of 3 to 6 digits
//! (`recurrent_model::seq2seq::reversal`). Trained with Adam from scratch,
//! then decoded greedily with the model's `encode` / `decode_step` building
//! blocks; it must reach at least 95% exact match on strings it has not been
//! trained on.

use std::time::Instant;

use recurrent_kernels::Rng;
use recurrent_model::seq2seq::reversal::{self, BOS, EOS};
use recurrent_model::seq2seq::{AttentionKind, Seq2Seq, Seq2SeqConfig};
use recurrent_model::CellKind;

/// Exact-match rate of greedy decoding on `n` fresh strings.
fn exact_match(model: &Seq2Seq, rng: &mut Rng, n: usize) -> f64 {
    let pairs = reversal::batch(rng, n);
    let out = model
        .greedy(&pairs.src, &pairs.src_lens, BOS, EOS, 8)
        .unwrap();
    let tw = pairs.tgt.len() / n;
    let hits = (0..n)
        .filter(|&b| out[b][..] == pairs.tgt[b * tw + 1..b * tw + pairs.tgt_lens[b] - 1])
        .count();
    hits as f64 / n as f64
}

/// Trains `config` until greedy decoding reverses 99% of a held-out sample (or
/// 3000 steps), then checks at least 95% exact match on another sample.
fn learns_to_reverse(config: Seq2SeqConfig) {
    let start = Instant::now();
    let what = format!(
        "{} {} {}",
        config.cell,
        if config.bidirectional { "bi" } else { "uni" },
        config.attention
    );
    let mut rng = Rng::new(2024);
    let mut model = Seq2Seq::new(config, &mut rng).unwrap();
    // Evaluation strings come from their own generators, apart from training's.
    let held_out = Rng::new(7);
    let mut accuracy = 0.0;
    // Clip the global norm at 5, as a training loop would.
    let steps = reversal::train(
        &mut model,
        &mut rng,
        1e-2,
        Some(5.0),
        3000,
        100,
        |m, step, stats| {
            accuracy = exact_match(m, &mut held_out.clone(), 200);
            eprintln!(
            "{what} step {step}: loss {:.4}, token accuracy {:.3}, exact match {accuracy:.3}, {:.1}s",
            stats.loss,
            stats.correct as f64 / stats.tokens as f64,
            start.elapsed().as_secs_f64()
        );
            accuracy >= 0.99
        },
    );
    // A second sample, not the one that decided when to stop.
    let fresh = exact_match(&model, &mut Rng::new(8), 500);
    eprintln!(
        "{what}: exact match {fresh:.3} on 500 other strings after {steps} steps in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    assert!(
        accuracy >= 0.95 && fresh >= 0.95,
        "{what}: exact match {accuracy} / {fresh}"
    );
}

#[test]
fn bidirectional_gru_with_general_attention_learns_to_reverse() {
    learns_to_reverse(reversal::config(
        CellKind::Gru,
        true,
        AttentionKind::General,
    ));
}

#[test]
fn lstm_with_additive_attention_learns_to_reverse() {
    learns_to_reverse(reversal::config(
        CellKind::Lstm,
        false,
        AttentionKind::Additive,
    ));
}
