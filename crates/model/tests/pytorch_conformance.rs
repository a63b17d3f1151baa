//! Conformance with PyTorch: for each cell, the fixtures in `tests/fixtures/`
//! (made by `scripts/make_lm_fixtures.py` with word_language_model's `RNNModel`
//! in float64) give weights, tokens and initial state; our logits, final state,
//! loss and every gradient must match to 1e-5 relative to each tensor's scale.

use std::collections::HashMap;
use std::path::Path;

use recurrent_model::{CellKind, LanguageModel, ModelConfig, State};
use safetensors::SafeTensors;

struct Fixture {
    meta: HashMap<String, String>,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

fn load(case: &str) -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{case}.safetensors"));
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, (view.shape().to_vec(), data))
        })
        .collect();
    Fixture { meta, tensors }
}

impl Fixture {
    fn get(&self, name: &str) -> &[f32] {
        &self
            .tensors
            .get(name)
            .unwrap_or_else(|| panic!("fixture lacks {name}"))
            .1
    }
    fn num(&self, key: &str) -> usize {
        self.meta[key].parse().unwrap()
    }
}

fn assert_close(what: &str, ours: &[f32], want: &[f32]) {
    assert_eq!(ours.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-6);
    for (i, (a, b)) in ours.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * scale,
            "{what}[{i}]: ours {a} vs PyTorch {b} (scale {scale})"
        );
    }
}

fn check_case(case: &str) {
    let f = load(case);
    let cell: CellKind = f.meta["cell"].parse().unwrap();
    let config = ModelConfig {
        cell,
        vocab_size: f.num("ntoken"),
        embed: f.num("ninp"),
        hidden: f.num("nhid"),
        layers: f.num("nlayers"),
        dense: 0,
        dropout: 0.0,
        tie: f.meta["tied"] == "true",
        layer_norm: false,
        last_hidden: 0,
    };
    let weights: Vec<(String, Vec<usize>, Vec<f32>)> = f
        .tensors
        .iter()
        .filter(|(n, _)| {
            n.starts_with("encoder.") || n.starts_with("rnn.") || n.starts_with("decoder.")
        })
        .map(|(n, (s, d))| (n.clone(), s.clone(), d.clone()))
        .collect();
    let model = LanguageModel::from_tensors(config.clone(), &weights).unwrap();
    let (t, b) = (f.num("seq_len"), f.num("batch"));
    let ids = |name| f.get(name).iter().map(|&x| x as u32).collect::<Vec<u32>>();
    let mut state = State::zeros(&config, b);
    state.h.copy_from_slice(f.get("h0"));
    if cell == CellKind::Lstm {
        state.c.copy_from_slice(f.get("c0"));
    }
    let mut grads = vec![0.0; model.num_params()];
    let (stats, logits, dstate) = model
        .loss_and_gradients(&ids("input"), &ids("target"), t, b, &mut state, &mut grads)
        .unwrap();

    assert_close(&format!("{case} logits"), &logits, f.get("logits"));
    assert_close(&format!("{case} loss"), &[stats.loss as f32], f.get("loss"));
    assert_close(&format!("{case} h_n"), &state.h, f.get("h_n"));
    assert_close(&format!("{case} grad.h0"), &dstate.h, f.get("grad.h0"));
    if cell == CellKind::Lstm {
        assert_close(&format!("{case} c_n"), &state.c, f.get("c_n"));
        assert_close(&format!("{case} grad.c0"), &dstate.c, f.get("grad.c0"));
    }
    for e in &model.layout.entries {
        assert_close(
            &format!("{case} grad.{}", e.name),
            &grads[e.range()],
            f.get(&format!("grad.{}", e.name)),
        );
    }
}

#[test]
fn lstm_matches_pytorch() {
    check_case("lstm");
}

#[test]
fn gru_matches_pytorch() {
    check_case("gru");
}

#[test]
fn rnn_tanh_matches_pytorch() {
    check_case("rnn_tanh");
}

#[test]
fn rnn_relu_matches_pytorch() {
    check_case("rnn_relu");
}

#[test]
fn tied_lstm_matches_pytorch() {
    check_case("lstm_tied");
}

#[test]
fn one_layer_gru_matches_pytorch() {
    check_case("gru_1layer");
}
