//! Whole-network gradient check of the sequence-regression model: every
//! parameter's analytic gradient against central differences of the loss,
//! for each cell, both outputs and each loss (with tolerances of
//! recurrent-nn's gradcheck module); and its shape errors.

use recurrent_kernels::Rng;
use recurrent_model::series::{
    SeriesBatch, SeriesConfig, SeriesModel, SeriesOutput, SeriesWorkspace,
};
use recurrent_model::{CellKind, ModelError};
use recurrent_nn::regression::RegressionLoss;

/// Checks `analytic` against central differences of `loss` at `x` (h = 1e-2,
/// loss accumulated in f64), as recurrent-nn's gradcheck does.
fn check(what: &str, x: &[f32], analytic: &[f32], loss: impl Fn(&[f32]) -> f64) {
    let h = 1e-2f32;
    for i in 0..x.len() {
        let mut xp = x.to_vec();
        xp[i] += h;
        let lp = loss(&xp);
        xp[i] = x[i] - h;
        let lm = loss(&xp);
        let numeric = (lp - lm) / (2.0 * h as f64);
        let a = analytic[i] as f64;
        let err = (numeric - a).abs() / (1e-2 + numeric.abs().max(a.abs()));
        assert!(
            err < 2e-2,
            "{what}[{i}]: analytic {a:.6} vs numeric {numeric:.6}"
        );
    }
}

fn values(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

fn config(cell: CellKind, output: SeriesOutput) -> SeriesConfig {
    SeriesConfig {
        cell,
        inputs: 3,
        hidden: 4,
        layers: 2,
        outputs: 2,
        output,
    }
}

#[test]
fn every_parameter_gradient_matches_finite_differences() {
    let (t, b) = (5, 2);
    let cells = [CellKind::Lstm, CellKind::Gru, CellKind::RnnTanh];
    for (i, cell) in cells.into_iter().enumerate() {
        for output in [SeriesOutput::Last, SeriesOutput::Every] {
            // MSE everywhere; Huber's quadratic part once, with a delta no error reaches.
            let losses = [RegressionLoss::Mse, RegressionLoss::Huber { delta: 10.0 }];
            for loss in losses {
                let mut rng = Rng::new(10 + i as u64);
                let model = SeriesModel::new(config(cell, output), &mut rng).unwrap();
                let x = values(&mut rng, t * b * 3);
                let rows = model.prediction_rows(t, b);
                let target = values(&mut rng, rows * 2);
                let weights: Vec<f32> = (0..rows * 2).map(|k| (k % 3 != 0) as u8 as f32).collect();
                let batch = SeriesBatch {
                    x: &x,
                    steps: t,
                    batch: b,
                    target: &target,
                    weights: Some(&weights),
                };
                let mut ws = SeriesWorkspace::default();
                let mut grads = vec![0.0; model.num_params()];
                model
                    .loss_and_grad(&mut ws, &batch, loss, &mut grads)
                    .unwrap();
                let what = format!("{cell} {output:?} {loss:?}");
                check(&what, &model.params, &grads, |p| {
                    let mut m = model.clone();
                    m.params.copy_from_slice(p);
                    m.loss(&mut SeriesWorkspace::default(), &batch, loss)
                        .unwrap()
                });
            }
        }
    }
}

#[test]
fn gradients_add_into_the_buffer_and_one_workspace_serves_every_shape() {
    let mut rng = Rng::new(3);
    let model = SeriesModel::new(config(CellKind::Gru, SeriesOutput::Last), &mut rng).unwrap();
    let mut ws = SeriesWorkspace::default();
    let mut run = |t: usize, b: usize, grads: &mut [f32]| {
        let x = vec![0.3; t * b * 3];
        let target = vec![0.5; b * 2];
        let batch = SeriesBatch {
            x: &x,
            steps: t,
            batch: b,
            target: &target,
            weights: None,
        };
        model
            .loss_and_grad(&mut ws, &batch, RegressionLoss::Mse, grads)
            .unwrap()
    };
    let mut once = vec![0.0; model.num_params()];
    let first = run(4, 3, &mut once);
    run(7, 1, &mut vec![0.0; model.num_params()]);
    let mut twice = once.clone();
    let again = run(4, 3, &mut twice);
    assert_eq!(first, again);
    // Products that add into their output round differently: close, not equal.
    for (a, b) in once.iter().zip(&twice) {
        assert!((2.0 * a - b).abs() <= 1e-5 * a.abs().max(1e-3), "{a} {b}");
    }
}

#[test]
fn wrong_shapes_are_errors_naming_the_argument() {
    let mut rng = Rng::new(3);
    let model = SeriesModel::new(config(CellKind::Lstm, SeriesOutput::Every), &mut rng).unwrap();
    let mut ws = SeriesWorkspace::default();
    let x = vec![0.0; 4 * 2 * 3];
    let err = model.predict(&mut ws, &x[1..], 4, 2).unwrap_err();
    assert_eq!(
        err,
        ModelError::Shape {
            what: "x",
            expected: 24,
            got: 23
        }
    );
    assert_eq!(
        model.predict(&mut ws, &x, 0, 2).unwrap_err(),
        ModelError::Empty { what: "steps" }
    );
    let target = vec![0.0; 4 * 2 * 2 - 1];
    let batch = SeriesBatch {
        x: &x,
        steps: 4,
        batch: 2,
        target: &target,
        weights: None,
    };
    let err = model
        .loss(&mut ws, &batch, RegressionLoss::Mse)
        .unwrap_err();
    assert_eq!(
        err,
        ModelError::Shape {
            what: "target",
            expected: 16,
            got: 15
        }
    );
    let bad = SeriesConfig {
        hidden: 0,
        ..config(CellKind::Lstm, SeriesOutput::Last)
    };
    assert!(SeriesModel::new(bad, &mut rng)
        .unwrap_err()
        .to_string()
        .contains("hidden"));
}

#[test]
fn named_tensors_round_trip_under_pytorch_names() {
    let mut rng = Rng::new(5);
    let model = SeriesModel::new(config(CellKind::Lstm, SeriesOutput::Last), &mut rng).unwrap();
    let tensors = model.to_tensors();
    let names: Vec<&str> = tensors.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names[..4],
        [
            "rnn.weight_ih_l0",
            "rnn.weight_hh_l0",
            "rnn.bias_ih_l0",
            "rnn.bias_hh_l0"
        ]
    );
    assert_eq!(names[names.len() - 2..], ["head.weight", "head.bias"]);
    assert_eq!(tensors[0].1, [16, 3]);
    let back = SeriesModel::from_tensors(model.config.clone(), &tensors).unwrap();
    assert_eq!(back.params, model.params);
    let mut extra = tensors.clone();
    extra.push(("decoder.bias".into(), vec![1], vec![0.0]));
    assert_eq!(
        SeriesModel::from_tensors(model.config.clone(), &extra).unwrap_err(),
        ModelError::UnexpectedTensor("decoder.bias".into())
    );
}
