//! A saved language-model run that cannot be continued says why, in fields a
//! front end can render: the data it was trained on, the carried state, the
//! NT-ASGD average.

use recurrent_kernels::Rng;
use recurrent_model::{CellKind, LanguageModel, ModelConfig};
use recurrent_train::error::{ResumeError, TrainingData};
use recurrent_train::optim::{OptimizerConfig, OptimizerKind};
use recurrent_train::schedule::Schedule;
use recurrent_train::trainer::{TrainConfig, Trainer, TrainerState};
use recurrent_train::{DataFingerprint, Observer, Plan, StopRule, TrainError};

/// Shows nothing and keeps no checkpoints.
struct Quiet;

impl Observer<Trainer> for Quiet {}

fn model() -> LanguageModel {
    let config = ModelConfig::new(CellKind::Lstm, 3, 4, 6, 1);
    LanguageModel::new(config, &mut Rng::new(2), None).unwrap()
}

fn text(n: usize) -> Vec<u32> {
    (0..n).map(|i| (i % 3) as u32).collect()
}

/// A run of two steps: its optimizer tensors and state, as saved.
fn saved_run() -> (Vec<(String, Vec<f32>)>, TrainerState) {
    let config = TrainConfig {
        seq_len: 5,
        batch: 2,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        lr: 0.1,
        clip: 1.0,
        schedule: Schedule::Constant,
        plan: Plan {
            stop: StopRule {
                epochs: None,
                steps: Some(2),
                time_secs: None,
            },
            eval_every: 0,
            patience: None,
        },
        seed: 3,
        reset_between_docs: false,
        nt_asgd: None,
    };
    let mut trainer = Trainer::new(model(), config, text(60), None, None).unwrap();
    trainer.run(&mut Quiet).unwrap();
    trainer.sync_state();
    (trainer.state_tensors(), trainer.state.clone())
}

fn resume_error(opt: &[(String, Vec<f32>)], state: TrainerState, tokens: usize) -> ResumeError {
    match Trainer::resume(model(), opt, state, text(tokens), None, None) {
        Err(TrainError::Resume(e)) => e,
        Err(e) => panic!("not a resume error: {e}"),
        Ok(_) => panic!("resumed"),
    }
}

#[test]
fn other_data_is_refused_naming_both_fingerprints() {
    let (opt, state) = saved_run();
    let saved = state.progress.train_data.clone();
    let err = resume_error(&opt, state, 61);
    assert_eq!(
        err,
        ResumeError::DataChanged {
            data: TrainingData::Text,
            saved,
            found: DataFingerprint::of(&text(61)),
        }
    );
    let message = err.to_string();
    assert!(
        message.contains("cannot resume") && message.contains("differs"),
        "{message}"
    );
    assert!(message.contains("61 token ids now, 60 before"), "{message}");
}

#[test]
fn a_carried_state_of_another_shape_is_refused() {
    let (opt, mut state) = saved_run();
    state.carried_c.pop();
    assert_eq!(
        resume_error(&opt, state, 60),
        ResumeError::CarriedState {
            state: "cell",
            saved: 11,
            expected: 12
        }
    );
}

#[test]
fn an_average_and_its_state_must_agree() {
    let (opt, mut state) = saved_run();
    state.averaging_since = Some(1);
    assert_eq!(
        resume_error(&opt, state, 60),
        ResumeError::AverageMissing { since: 1 }
    );
}
