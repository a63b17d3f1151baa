//! NT-ASGD switches to averaging when validation stops improving and then
//! averages exactly the iterates since the switch.

use recurrent_kernels::Rng;
use recurrent_model::{CellKind, LanguageModel, ModelConfig};
use recurrent_train::optim::{OptimizerConfig, OptimizerKind};
use recurrent_train::schedule::Schedule;
use recurrent_train::trainer::{TrainConfig, Trainer};
use recurrent_train::{Observer, Plan, StepReport, StopRule};

/// Records the parameters after every step.
#[derive(Default)]
struct Recorder {
    params: Vec<(u64, Vec<f32>)>,
}

impl Observer<Trainer> for Recorder {
    fn on_step(&mut self, trainer: &Trainer, r: &StepReport) {
        self.params.push((r.step, trainer.model.params.clone()));
    }
}

#[test]
fn switches_when_validation_worsens_and_averages_the_iterates_since() {
    // Training text alternates a/b; the validation text doubles letters, so the
    // better the model learns the training text, the worse validation gets.
    let train: Vec<u32> = (0..400).map(|i| (i % 2) as u32).collect();
    let val: Vec<u32> = (0..200).map(|i| ((i / 2) % 2) as u32).collect();
    let config = ModelConfig {
        cell: CellKind::Gru,
        vocab_size: 2,
        embed: 4,
        hidden: 8,
        layers: 1,
        dense: 0,
        dropout: 0.0,
        tie: false,
        layer_norm: false,
        last_hidden: 0,
    };
    let model = LanguageModel::new(config, &mut Rng::new(1), None).unwrap();
    let train_config = TrainConfig {
        seq_len: 10,
        batch: 4,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        lr: 1.0,
        clip: 0.25,
        schedule: Schedule::Constant,
        plan: Plan {
            stop: StopRule {
                epochs: None,
                steps: Some(40),
                time_secs: None,
            },
            eval_every: 5,
            patience: None,
        },
        seed: 1,
        reset_between_docs: false,
        nt_asgd: Some(1),
    };
    let mut trainer = Trainer::new(model, train_config, train, Some(val), None).unwrap();
    let mut rec = Recorder::default();
    trainer.run(&mut rec).unwrap();

    let losses = &trainer.state.progress.scheduled_val_losses;
    let since = trainer
        .state
        .averaging_since
        .expect("validation got worse, so averaging started");
    // The switch happened at the first validation worse than the best before the last one.
    let k = losses
        .iter()
        .enumerate()
        .position(|(i, &l)| recurrent_train::asgd::should_start(&losses[..i], l, 1))
        .unwrap();
    assert_eq!(since, 5 * (k as u64 + 1), "losses {losses:?}");
    // The average is the mean of the parameters after every step since the switch.
    let after: Vec<&Vec<f32>> = rec
        .params
        .iter()
        .filter(|(s, _)| *s > since)
        .map(|(_, p)| p)
        .collect();
    assert_eq!(trainer.state.averaging_count as usize, after.len());
    assert!(!after.is_empty());
    let average = trainer.average().unwrap();
    for j in 0..average.len() {
        let mean = after.iter().map(|p| p[j] as f64).sum::<f64>() / after.len() as f64;
        assert!(
            (average[j] as f64 - mean).abs() < 1e-5,
            "param {j}: {} vs {mean}",
            average[j]
        );
    }
}
