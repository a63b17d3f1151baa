//! Conformance of the sequence-regression model with PyTorch: the fixtures in
//! `tests/fixtures/series/` (made by `scripts/make_series_fixtures.py` in
//! float64) give weights, inputs and targets; our predictions, loss and every
//! gradient must match to 1e-5 relative to each tensor's scale, for RNN,
//! LSTM and GRU, sequence to vector and sequence to sequence.

use std::collections::HashMap;
use std::path::Path;

use recurrent_model::series::{
    SeriesBatch, SeriesConfig, SeriesModel, SeriesOutput, SeriesWorkspace,
};
use recurrent_model::CellKind;
use recurrent_nn::regression::RegressionLoss;
use safetensors::SafeTensors;

type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

fn load(case: &str) -> (HashMap<String, String>, Tensors) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/series")
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
    (meta, tensors)
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
    let (meta, t) = load(case);
    let num = |k: &str| meta[k].parse::<usize>().unwrap();
    let config = SeriesConfig {
        cell: meta["cell"].parse::<CellKind>().unwrap(),
        inputs: num("inputs"),
        hidden: num("hidden"),
        layers: num("layers"),
        outputs: num("outputs"),
        output: match meta["output"].as_str() {
            "last" => SeriesOutput::Last,
            _ => SeriesOutput::Every,
        },
    };
    let loss = match meta["loss"].as_str() {
        "mse" => RegressionLoss::Mse,
        "mae" => RegressionLoss::Mae,
        _ => RegressionLoss::Huber {
            delta: meta["huber_delta"].parse().unwrap(),
        },
    };
    let weights: Vec<(String, Vec<usize>, Vec<f32>)> = t
        .iter()
        .filter(|(n, _)| n.starts_with("rnn.") || n.starts_with("head."))
        .map(|(n, (s, d))| (n.clone(), s.clone(), d.clone()))
        .collect();
    let model = SeriesModel::from_tensors(config, &weights).unwrap();
    let batch = SeriesBatch {
        x: &t["x"].1,
        steps: num("steps"),
        batch: num("batch"),
        target: &t["target"].1,
        weights: t.get("weights").map(|w| &w.1[..]),
    };
    let mut ws = SeriesWorkspace::default();
    let pred = model
        .predict(&mut ws, batch.x, batch.steps, batch.batch)
        .unwrap();
    assert_close(&format!("{case} pred"), pred, &t["pred"].1);
    let mut grads = vec![0.0; model.num_params()];
    let value = model
        .loss_and_grad(&mut ws, &batch, loss, &mut grads)
        .unwrap();
    let want = t["loss"].1[0] as f64;
    assert!(
        (value - want).abs() <= 1e-5 * want.abs().max(1e-6),
        "{case} loss: {value} vs {want}"
    );
    assert_eq!(model.loss(&mut ws, &batch, loss).unwrap(), value);
    for e in &model.layout().entries {
        let name = format!("grad.{}", e.name);
        assert_close(&format!("{case} {name}"), &grads[e.range()], &t[&name].1);
    }
}

#[test]
fn lstm_sequence_to_vector_matches_pytorch() {
    check_case("lstm_last");
}

#[test]
fn lstm_sequence_to_sequence_with_weights_matches_pytorch() {
    check_case("lstm_every");
}

#[test]
fn gru_sequence_to_vector_with_huber_matches_pytorch() {
    check_case("gru_last");
}

#[test]
fn gru_sequence_to_sequence_matches_pytorch() {
    check_case("gru_every");
}

#[test]
fn rnn_sequence_to_vector_with_mae_matches_pytorch() {
    check_case("rnn_tanh_last");
}

#[test]
fn rnn_sequence_to_sequence_with_weights_matches_pytorch() {
    check_case("rnn_tanh_every");
}
