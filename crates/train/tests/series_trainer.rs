//! The series trainer on the engine: it learns a noisy sine with a trend,
//! and a run stopped and resumed ends with the same bits as a straight run.

use recurrent_kernels::Rng;
use recurrent_model::series::{SeriesConfig, SeriesModel, SeriesOutput};
use recurrent_model::CellKind;
use recurrent_nn::regression::RegressionLoss;
use recurrent_train::engine::{SaveError, Slot};
use recurrent_train::optim::{OptimizerConfig, OptimizerKind};
use recurrent_train::schedule::Schedule;
use recurrent_train::series::data::{Normalization, Part, SeriesData, Split};
use recurrent_train::series::{
    SeriesTrainConfig, SeriesTrainError, SeriesTrainer, SeriesTrainerState,
};
use recurrent_train::{Observer, Plan, StopRule};

/// A noisy sine of period 12 on a rising trend, with a second, noisier column.
fn series(rows: usize) -> Vec<f32> {
    let mut rng = Rng::new(9);
    (0..rows)
        .flat_map(|t| {
            let s = (t as f32 * std::f32::consts::TAU / 12.0).sin();
            let y = 10.0 + 0.02 * t as f32 + 3.0 * s + rng.uniform(-0.3, 0.3);
            [y, s + rng.uniform(-0.5, 0.5)]
        })
        .collect()
}

fn data(rows: usize) -> SeriesData {
    let raw = series(rows);
    let split = Split::new(rows, 0.15, 0.15).unwrap();
    let norm = Normalization::fit(&raw, 2, split.train);
    SeriesData::new(norm.apply(&raw), 2, 24, 3, split).unwrap()
}

fn model(data: &SeriesData) -> SeriesModel {
    let config = SeriesConfig {
        cell: CellKind::Lstm,
        inputs: data.columns,
        hidden: 12,
        layers: 1,
        outputs: data.outputs(),
        output: SeriesOutput::Last,
    };
    SeriesModel::new(config, &mut Rng::new(2)).unwrap()
}

fn config(steps: u64) -> SeriesTrainConfig {
    SeriesTrainConfig {
        batch: 16,
        loss: RegressionLoss::Mse,
        optimizer: OptimizerConfig::new(OptimizerKind::Adam),
        lr: 0.01,
        clip: 1.0,
        schedule: Schedule::Constant,
        plan: Plan {
            stop: StopRule {
                steps: Some(steps),
                ..StopRule::default()
            },
            eval_every: 7,
            patience: None,
        },
        seed: 5,
    }
}

type Saved = (Vec<f32>, Vec<(String, Vec<f32>)>, SeriesTrainerState);

/// Keeps `last/` in memory.
#[derive(Default)]
struct Memory {
    last: Option<Saved>,
    best: u32,
}

impl Observer<SeriesTrainer> for Memory {
    fn save(&mut self, t: &SeriesTrainer, slot: Slot) -> Result<(), SaveError> {
        match slot {
            Slot::Last => {
                self.last = Some((t.model.params.clone(), t.state_tensors(), t.state.clone()))
            }
            Slot::Best => self.best += 1,
        }
        Ok(())
    }
}

#[test]
fn training_beats_the_mean_and_saves_a_best_checkpoint() {
    let d = data(300);
    let mut t = SeriesTrainer::new(model(&d), config(120), d).unwrap();
    let before = t.evaluate(Part::Valid).unwrap().loss;
    let mut mem = Memory::default();
    t.run(&mut mem).unwrap();
    let after = t.evaluate(Part::Valid).unwrap().loss;
    assert!(after < 0.5 * before, "{before} -> {after}");
    assert!(mem.best > 0);
    assert!(
        t.state.progress.epoch >= 7,
        "{} windows an epoch",
        t.batches_per_epoch()
    );
}

#[test]
fn a_run_stopped_and_resumed_gives_the_same_bits_as_a_straight_run() {
    let d = data(200);
    let mut whole = SeriesTrainer::new(model(&d), config(30), d.clone()).unwrap();
    whole.run(&mut Memory::default()).unwrap();
    for stop in [5, 11, 14] {
        let mut first = SeriesTrainer::new(model(&d), config(stop), d.clone()).unwrap();
        let mut mem = Memory::default();
        first.run(&mut mem).unwrap();
        let (params, opt, mut state) = mem.last.unwrap();
        state.config.plan.stop.steps = Some(30);
        let mut m = model(&d);
        m.params = params;
        let mut second = SeriesTrainer::resume(m, &opt, state, d.clone()).unwrap();
        second.run(&mut Memory::default()).unwrap();
        assert!(
            second.model.params == whole.model.params,
            "stopped at {stop}"
        );
        // The history also holds the validation at the stop; the scheduled ones agree.
        let (a, b) = (&second.state.progress, &whole.state.progress);
        assert_eq!(a.scheduled_val_losses, b.scheduled_val_losses);
    }
}

#[test]
fn resuming_on_other_data_or_with_a_model_that_does_not_fit_is_refused() {
    let d = data(200);
    let mut t = SeriesTrainer::new(model(&d), config(3), d.clone()).unwrap();
    let mut mem = Memory::default();
    t.run(&mut mem).unwrap();
    let (_, opt, state) = mem.last.unwrap();
    let mut other = d.clone();
    other.values[0] += 1.0;
    let err = SeriesTrainer::resume(model(&d), &opt, state, other)
        .err()
        .unwrap();
    assert!(matches!(err, SeriesTrainError::DataChanged { .. }), "{err}");
    assert!(err.to_string().contains("differs"), "{err}");
    let mut narrow = model(&d);
    narrow.config.outputs = 2;
    let err = SeriesTrainer::new(narrow, config(1), d).err().unwrap();
    assert!(err.to_string().contains("predicts 2 values"), "{err}");
}
