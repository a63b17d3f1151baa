//! Data-parallel training gives one process's result: N ranks (threads of
//! this process, through `LocalGroup`, the same code paths as MPI ranks)
//! that share a global batch end with the weights of one process trained on
//! that batch, to float rounding (1e-5 relative after 50 steps), and a run
//! saved by 3 ranks resumes on 2.

use recurrent_kernels::Rng;
use recurrent_model::{CellKind, LanguageModel, ModelConfig};
use recurrent_train::optim::{OptimizerConfig, OptimizerKind};
use recurrent_train::schedule::Schedule;
use recurrent_train::trainer::{TrainConfig, Trainer};
use recurrent_train::{Collective, LocalGroup, Observer, Plan, StopRule};

struct Quiet;
impl Observer<Trainer> for Quiet {}

/// A text with structure and noise, over 7 tokens.
fn text(n: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            if rng.below(5) == 0 {
                rng.below(7) as u32
            } else {
                (i % 5 + i / 50 % 2) as u32
            }
        })
        .collect()
}

fn trainer(steps: u64) -> Trainer {
    let config = ModelConfig::new(CellKind::Lstm, 7, 8, 16, 2);
    let model = LanguageModel::new(config, &mut Rng::new(3), None).unwrap();
    let config = TrainConfig {
        seq_len: 10,
        batch: 6,
        optimizer: OptimizerConfig::new(OptimizerKind::Adam),
        lr: 0.01,
        clip: 1.0,
        schedule: Schedule::Constant,
        plan: Plan {
            stop: StopRule {
                steps: Some(steps),
                ..StopRule::default()
            },
            eval_every: 10,
            patience: None,
        },
        seed: 5,
        reset_between_docs: false,
        nt_asgd: None,
    };
    Trainer::new(model, config, text(4000, 1), Some(text(700, 2)), None).unwrap()
}

/// Runs `make()` on `ranks` ranks at once; returns every rank's trainer.
fn on_ranks(ranks: usize, make: impl Fn() -> Trainer + Sync) -> Vec<Trainer> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = LocalGroup::new(ranks)
            .into_iter()
            .map(|group| {
                let make = &make;
                scope.spawn(move || {
                    let mut t = make();
                    t.distribute(Box::new(group)).unwrap();
                    t.run(&mut Quiet).unwrap();
                    t
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn max_relative_difference(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn two_and_three_ranks_train_the_weights_of_one_process() {
    let mut single = trainer(50);
    single.run(&mut Quiet).unwrap();
    for ranks in [2, 3] {
        let trained = on_ranks(ranks, || trainer(50));
        // Every rank holds the same weights, bit for bit.
        for t in &trained[1..] {
            assert_eq!(t.model.params, trained[0].model.params);
            assert_eq!(t.state.progress.history, trained[0].state.progress.history);
        }
        let diff = max_relative_difference(&single.model.params, &trained[0].model.params);
        assert!(
            diff < 1e-5,
            "{ranks} ranks: weights differ by {diff:e} relative"
        );
        assert!(
            diff > 0.0 || ranks == 1,
            "suspiciously identical: summation order differs"
        );
        // The same validations, to rounding.
        let (a, b) = (
            &single.state.progress.history,
            &trained[0].state.progress.history,
        );
        assert_eq!(a.len(), 5);
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.step, y.step);
            assert!(
                (x.loss - y.loss).abs() < 1e-5 * x.loss,
                "{} vs {}",
                x.loss,
                y.loss
            );
        }
        // The carried state saved is every stream's, in order.
        let s = &trained[0].state;
        assert_eq!(s.carried_h.len(), single.state.carried_h.len());
        let diff = max_relative_difference(&single.state.carried_h, &s.carried_h);
        assert!(diff < 1e-4, "carried state differs by {diff:e}");
    }
}

/// Summing the gradient in buckets during the backward pass (the default),
/// in many small ones, or in one all-reduce after it: the same sums, so the
/// same weights, bit for bit.
#[test]
fn gradient_buckets_of_any_size_give_the_same_weights() {
    for ranks in [2, 3] {
        let runs: Vec<Vec<f32>> = [None, Some(0), Some(7), Some(300)]
            .into_iter()
            .map(|bucket| {
                let trained = on_ranks(ranks, || {
                    let mut t = trainer(20);
                    if let Some(values) = bucket {
                        t.set_gradient_bucket(values);
                    }
                    t
                });
                trained[0].model.params.clone()
            })
            .collect();
        for (i, run) in runs.iter().enumerate().skip(1) {
            assert!(
                run == &runs[0],
                "{ranks} ranks: bucket setting {i} changed the weights"
            );
        }
    }
}

#[test]
fn a_run_saved_by_three_ranks_resumes_on_two() {
    let mut straight = trainer(50);
    straight.run(&mut Quiet).unwrap();

    let first = on_ranks(3, || trainer(20));
    let saved = &first[0];
    let (params, optimizer) = (saved.model.params.clone(), saved.state_tensors());
    let mut state = saved.state.clone();
    state.config.plan.stop.steps = Some(50);
    let resumed = on_ranks(2, || {
        let mut model = trainer(50).model;
        model.params.clone_from(&params);
        Trainer::resume(
            model,
            &optimizer,
            state.clone(),
            text(4000, 1),
            Some(text(700, 2)),
            None,
        )
        .unwrap()
    });
    assert_eq!(resumed[0].state.progress.step, 50);
    let diff = max_relative_difference(&straight.model.params, &resumed[0].model.params);
    assert!(diff < 1e-5, "weights differ by {diff:e} relative");
}

#[test]
fn local_sgd_averages_the_ranks_into_one_model_that_learns() {
    use recurrent_train::trainer::PeriodicAveraging;
    let mut sync = trainer(50);
    sync.run(&mut Quiet).unwrap();
    let before = trainer(50).validate().unwrap().loss;
    let trained: Vec<Trainer> = std::thread::scope(|scope| {
        let handles: Vec<_> = LocalGroup::new(2)
            .into_iter()
            .map(|group| {
                scope.spawn(move || {
                    let mut t = trainer(50);
                    t.distribute(Box::new(group)).unwrap();
                    t.average_periodically(PeriodicAveraging {
                        every: 4,
                        after: 10,
                    });
                    t.run(&mut Quiet).unwrap();
                    t
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Averaged before every validation and the final save: one model.
    assert_eq!(trained[0].model.params, trained[1].model.params);
    let local = trained[0].state.progress.best_val_loss.unwrap();
    let synchronous = sync.state.progress.best_val_loss.unwrap();
    // It learns, and it is not the synchronous run under another name.
    assert!(local < 0.8 * before, "{before} -> {local}");
    assert!(max_relative_difference(&sync.model.params, &trained[0].model.params) > 1e-3);
    eprintln!("validation after 50 steps: synchronous {synchronous:.4}, local SGD {local:.4}");
}

#[test]
fn a_rank_set_up_differently_is_refused_naming_both() {
    let errors: Vec<Option<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = LocalGroup::new(2)
            .into_iter()
            .map(|group| {
                scope.spawn(move || {
                    let mut t = trainer(5);
                    if group.rank() == 1 {
                        t.model.params[0] += 1.0; // another checkpoint, say
                    }
                    t.distribute(Box::new(group)).err().map(|e| e.to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(errors[0], None);
    let message = errors[1].as_deref().expect("rank 1 differs");
    assert!(
        message.contains("rank 1 was set up differently from rank 0"),
        "{message}"
    );
    assert!(message.matches("weights").count() == 2, "{message}");
}

#[test]
fn more_ranks_than_streams_is_an_error() {
    let groups = LocalGroup::new(7);
    // Only the size is checked before any collective, so one member suffices.
    let group = groups.into_iter().next().unwrap();
    assert_eq!(group.ranks(), 7);
    let err = trainer(5).distribute(Box::new(group)).unwrap_err();
    assert!(err.to_string().contains("batch 6"), "{err}");
}

mod seq2seq {
    use super::max_relative_difference;
    use recurrent_kernels::Rng;
    use recurrent_model::seq2seq::{Seq2Seq, Seq2SeqConfig};
    use recurrent_train::optim::{OptimizerConfig, OptimizerKind};
    use recurrent_train::schedule::Schedule;
    use recurrent_train::seq2seq::{EncodedPair, Seq2SeqTrainConfig, Seq2SeqTrainer};
    use recurrent_train::{LocalGroup, Observer, Plan, StopRule};

    struct Quiet;
    impl Observer<Seq2SeqTrainer> for Quiet {}

    /// Digit strings and their reversals: BOS 10, EOS 11.
    fn pairs(n: usize, seed: u64) -> Vec<EncodedPair> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| {
                let len = 1 + rng.below(6) as usize;
                let src: Vec<u32> = (0..len).map(|_| rng.below(10) as u32).collect();
                let mut tgt = vec![10];
                tgt.extend(src.iter().rev());
                tgt.push(11);
                EncodedPair { src, tgt }
            })
            .collect()
    }

    fn trainer() -> Seq2SeqTrainer {
        let model = Seq2Seq::new(Seq2SeqConfig::new(10, 12, 8, 16), &mut Rng::new(3)).unwrap();
        let config = Seq2SeqTrainConfig {
            batch: 7,
            optimizer: OptimizerConfig::new(OptimizerKind::Adam),
            lr: 0.01,
            clip: 1.0,
            schedule: Schedule::Constant,
            plan: Plan {
                stop: StopRule {
                    steps: Some(50),
                    ..StopRule::default()
                },
                eval_every: 10,
                patience: None,
            },
            seed: 7,
            teacher_forcing: 1.0,
            label_smoothing: 0.1,
        };
        Seq2SeqTrainer::new(model, config, pairs(120, 1), pairs(30, 2)).unwrap()
    }

    #[test]
    fn two_and_three_ranks_train_the_weights_of_one_process() {
        let mut single = trainer();
        single.run(&mut Quiet).unwrap();
        for ranks in [2, 3] {
            let trained: Vec<Seq2SeqTrainer> = std::thread::scope(|scope| {
                let handles: Vec<_> = LocalGroup::new(ranks)
                    .into_iter()
                    .map(|group| {
                        scope.spawn(move || {
                            let mut t = trainer();
                            t.distribute(Box::new(group)).unwrap();
                            t.run(&mut Quiet).unwrap();
                            t
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for t in &trained[1..] {
                assert_eq!(t.model.params, trained[0].model.params);
            }
            let diff = max_relative_difference(&single.model.params, &trained[0].model.params);
            assert!(diff < 1e-5, "{ranks} ranks: {diff:e}");
            let (a, b) = (
                &single.state.progress.history,
                &trained[0].state.progress.history,
            );
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                assert!(
                    (x.loss - y.loss).abs() < 1e-5 * x.loss,
                    "{} vs {}",
                    x.loss,
                    y.loss
                );
            }
        }
    }
}
