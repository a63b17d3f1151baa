//! A language-model run that diverges stops with a typed error and never
//! saves the diverged weights as its best; under the rollback policy it goes
//! back to its last good state with a lower learning rate, a bounded number of
//! times, and a run stopped and resumed after a rollback takes the same steps.

use recurrent_kernels::Rng;
use recurrent_model::{CellKind, LanguageModel, ModelConfig};
use recurrent_train::divergence::{DivergenceReason, OnDivergence, MAX_ROLLBACKS};
use recurrent_train::optim::{OptimizerConfig, OptimizerKind};
use recurrent_train::schedule::Schedule;
use recurrent_train::trainer::{TrainConfig, Trainer, TrainerState};
use recurrent_train::{Observer, Plan, SaveError, Slot, StopReason, StopRule, TrainError};

const VOCAB: usize = 8;

fn model() -> LanguageModel {
    let config = ModelConfig::new(CellKind::Lstm, VOCAB, 8, 16, 1);
    LanguageModel::new(config, &mut Rng::new(2), None).unwrap()
}

/// A text with some structure: a walk that mostly steps up by one.
fn text(n: usize) -> Vec<u32> {
    let mut rng = Rng::new(9);
    let mut t = 0u32;
    (0..n)
        .map(|_| {
            t = if rng.below(4) == 0 {
                rng.below(VOCAB as u64) as u32
            } else {
                (t + 1) % VOCAB as u32
            };
            t
        })
        .collect()
}

fn config(optimizer: OptimizerKind, lr: f32, clip: f32, steps: u64) -> TrainConfig {
    TrainConfig {
        seq_len: 10,
        batch: 4,
        optimizer: OptimizerConfig::new(optimizer),
        lr,
        clip,
        schedule: Schedule::Constant,
        plan: Plan {
            stop: StopRule {
                steps: Some(steps),
                ..StopRule::default()
            },
            eval_every: 4,
            patience: None,
        },
        seed: 5,
        reset_between_docs: false,
        nt_asgd: None,
    }
}

fn trainer(config: TrainConfig, on_divergence: OnDivergence) -> Trainer {
    let (train, val) = (text(2000), text(300));
    let mut t = Trainer::new(model(), config, train, Some(val), None).unwrap();
    t.state.progress.divergence.on_divergence = on_divergence;
    t
}

/// Parameters, optimizer buffers and trainer state of a checkpoint.
type Saved = (Vec<f32>, Vec<(String, Vec<f32>)>, TrainerState);

/// Keeps `last/` in memory, and records the best saves and the warnings.
#[derive(Default)]
struct Memory {
    last: Option<Saved>,
    best_saves: Vec<u64>,
    warnings: Vec<String>,
}

impl Observer<Trainer> for Memory {
    fn on_warning(&mut self, message: &str) {
        self.warnings.push(message.into());
    }
    fn save(&mut self, t: &Trainer, slot: Slot) -> Result<(), SaveError> {
        match slot {
            Slot::Best => self.best_saves.push(t.state.progress.step),
            Slot::Last => {
                self.last = Some((t.model.params.clone(), t.state_tensors(), t.state.clone()))
            }
        }
        Ok(())
    }
}

#[test]
fn a_learning_rate_of_1e30_stops_the_run_without_saving_a_best() {
    let mut t = trainer(
        config(OptimizerKind::Adam, 1e30, 5.0, 40),
        OnDivergence::Stop,
    );
    let mut memory = Memory::default();
    let err = t.run(&mut memory).unwrap_err();
    assert!(
        matches!(err, TrainError::Diverged { rollbacks: 0, .. }),
        "{err:?}"
    );
    assert!(memory.best_saves.is_empty(), "{:?}", memory.best_saves);
    assert!(memory.last.is_none());
    let message = err.to_string();
    assert!(
        message.contains("diverged") && message.contains("learning rate"),
        "{message}"
    );
}

#[test]
fn rollbacks_at_1e30_give_up_after_the_last_one() {
    let mut t = trainer(
        config(OptimizerKind::Adam, 1e30, 5.0, 40),
        OnDivergence::Rollback,
    );
    let mut memory = Memory::default();
    let err = t.run(&mut memory).unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::Diverged {
                rollbacks: MAX_ROLLBACKS,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(memory.warnings.len(), MAX_ROLLBACKS as usize);
    assert!(memory.best_saves.is_empty());
}

#[test]
fn a_normal_run_is_no_divergence() {
    let mut t = trainer(
        config(OptimizerKind::Adam, 0.01, 5.0, 60),
        OnDivergence::Stop,
    );
    let mut memory = Memory::default();
    assert_eq!(t.run(&mut memory).unwrap(), StopReason::Steps);
    let watch = &t.state.progress.divergence;
    assert_eq!((watch.rollbacks, watch.over_bound), (0, 0));
    assert!(!memory.best_saves.is_empty());
    let first = t.state.progress.history[0].loss;
    assert!(t.state.progress.best_val_loss.unwrap() < first);
}

// The reason of a NaN loss is named.
#[test]
fn a_nan_in_the_weights_is_a_non_finite_loss() {
    let mut t = trainer(
        config(OptimizerKind::Adam, 0.01, 5.0, 10),
        OnDivergence::Stop,
    );
    t.model.params.fill(f32::NAN);
    let err = t.run(&mut Memory::default()).unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::Diverged {
                step: 1,
                reason: DivergenceReason::NonFiniteLoss,
                ..
            }
        ),
        "{err:?}"
    );
}

/// Adam at a learning rate of 3 diverges within a few steps here; at half of
/// it the run learns.
fn recovering(steps: u64) -> Trainer {
    trainer(
        config(OptimizerKind::Adam, 3.0, 0.0, steps),
        OnDivergence::Rollback,
    )
}

#[test]
fn a_rollback_halves_the_learning_rate_and_the_run_goes_on() {
    let mut t = recovering(60);
    let mut memory = Memory::default();
    assert_eq!(t.run(&mut memory).unwrap(), StopReason::Steps);
    let watch = &t.state.progress.divergence;
    assert_eq!((watch.rollbacks, watch.lr_factor), (1, 0.5));
    assert_eq!(memory.warnings.len(), 1);
    assert!(
        memory.warnings[0].contains("rolled back to step 0"),
        "{}",
        memory.warnings[0]
    );
    let best = t.state.progress.best_val_loss.unwrap();
    assert!(best < (VOCAB as f64).ln() - 0.5, "best {best}");
    assert_eq!(t.state.progress.step, 60);
}

#[test]
fn a_run_resumed_after_a_rollback_continues_exactly() {
    let mut whole = recovering(60);
    whole.run(&mut Memory::default()).unwrap();

    let mut first = recovering(20);
    let mut memory = Memory::default();
    first.run(&mut memory).unwrap();
    let (params, optimizer, state) = memory.last.unwrap();
    // Through JSON, as trainer_state.json.
    let mut state: TrainerState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    assert_eq!(state.progress.divergence.rollbacks, 1);
    state.config.plan.stop.steps = Some(60);
    let mut model = model();
    model.params = params;
    let (train, val) = (text(2000), text(300));
    let mut second = Trainer::resume(model, &optimizer, state, train, Some(val), None).unwrap();
    second.run(&mut Memory::default()).unwrap();
    assert!(second.model.params == whole.model.params);
    assert_eq!(
        second.state.progress.divergence,
        whole.state.progress.divergence
    );
}
