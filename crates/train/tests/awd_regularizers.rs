//! AWD-LSTM's regularizers in the trainer: runs with all of them on resume bit
//! for bit, variable BPTT follows AWD's rule and scales the learning rate, and
//! trainer states saved before the regularizers existed still load.

use recurrent_kernels::Rng;
use recurrent_model::{CellKind, LanguageModel, ModelConfig, Regularization};
use recurrent_train::optim::{OptimizerConfig, OptimizerKind};
use recurrent_train::schedule::Schedule;
use recurrent_train::trainer::{
    draw_bptt, Regularizers, TrainConfig, Trainer, TrainerState, MAX_VARIABLE_BPTT_EXTRA,
    MIN_VARIABLE_BPTT,
};
use recurrent_train::{Plan, StopRule};

const AWD: Regularizers = Regularizers {
    model: Regularization {
        dropout_input: 0.3,
        dropout_hidden: 0.25,
        dropout_output: 0.4,
        dropout_embed: 0.1,
        weight_drop: 0.5,
        alpha: 2.0,
        beta: 1.0,
    },
    variable_bptt: true,
};

fn text() -> Vec<u32> {
    // Enough for a few epochs of short blocks: 4 streams of 150 tokens.
    (0..600u32).map(|i| (i * 7 + i / 5) % 11).collect()
}

fn model() -> LanguageModel {
    let config = ModelConfig {
        cell: CellKind::Lstm,
        vocab_size: 11,
        embed: 6,
        hidden: 6,
        layers: 2,
        dense: 0,
        dropout: 0.0,
        tie: true,
        layer_norm: false,
        last_hidden: 0,
    };
    LanguageModel::new(config, &mut Rng::new(1), None).unwrap()
}

fn train_config(steps: u64) -> TrainConfig {
    TrainConfig {
        seq_len: 12,
        batch: 4,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        lr: 0.5,
        clip: 0.25,
        schedule: Schedule::Constant,
        plan: Plan {
            stop: StopRule {
                epochs: None,
                steps: Some(steps),
                time_secs: None,
            },
            eval_every: 0,
            patience: None,
        },
        seed: 3,
        reset_between_docs: false,
        nt_asgd: None,
    }
}

#[test]
fn resuming_with_every_regularizer_is_bit_for_bit() {
    let steps = 40; // about 3 epochs of ~12-token blocks over 150-token streams
    let mut whole =
        Trainer::with_regularizers(model(), train_config(steps), AWD, text(), None, None).unwrap();
    for _ in 0..steps {
        whole.step().unwrap();
    }
    assert!(
        whole.state.progress.epoch >= 2,
        "the run must cross epoch ends"
    );

    let mut first =
        Trainer::with_regularizers(model(), train_config(steps / 2), AWD, text(), None, None)
            .unwrap();
    for _ in 0..steps / 2 {
        first.step().unwrap();
    }
    // What a checkpoint keeps: parameters, optimizer tensors, trainer_state.json.
    first.sync_state();
    let json = serde_json::to_string(&first.state).unwrap();
    let state: TrainerState = serde_json::from_str(&json).unwrap();
    assert_eq!(state.regularizers, AWD);
    let mut second = Trainer::resume(
        first.model.clone(),
        &first.state_tensors(),
        state,
        text(),
        None,
        None,
    )
    .unwrap();
    for _ in 0..steps / 2 {
        second.step().unwrap();
    }
    assert_eq!(second.state.progress.step, whole.state.progress.step);
    assert_eq!(second.state.stream_pos, whole.state.stream_pos);
    assert!(
        second.model.params == whole.model.params,
        "parameters differ"
    );
    assert_eq!(second.state_tensors(), whole.state_tensors());
    assert_eq!(second.state.progress.rng, whole.state.progress.rng);
}

#[test]
fn regularized_steps_differ_from_plain_ones_and_report_the_penalties() {
    let mut plain = Trainer::new(model(), train_config(3), text(), None, None).unwrap();
    let regs = Regularizers {
        variable_bptt: false,
        ..AWD
    };
    let mut awd =
        Trainer::with_regularizers(model(), train_config(3), regs, text(), None, None).unwrap();
    let (p, a) = (plain.step().unwrap(), awd.step().unwrap());
    assert_eq!((p.ar, p.tar), (0.0, 0.0));
    assert!(a.ar > 0.0 && a.tar > 0.0, "{a:?}");
    assert_eq!(p.tokens, a.tokens);
    assert_ne!(plain.model.params, awd.model.params);
    // The reported loss is the cross-entropy: near ln 11 for a fresh model.
    assert!((a.loss - 11f64.ln()).abs() < 0.3, "{}", a.loss);
}

#[test]
fn variable_bptt_follows_awds_rule() {
    let mut rng = Rng::new(9);
    let seq_len = 70;
    let draws: Vec<usize> = (0..20_000).map(|_| draw_bptt(&mut rng, seq_len)).collect();
    let mean = draws.iter().sum::<usize>() as f64 / draws.len() as f64;
    // E = 0.95 * 70 + 0.05 * 35, less about 0.5 from truncating toward zero.
    assert!((mean - 67.75).abs() < 0.3, "mean {mean}");
    let short = draws.iter().filter(|&&l| l < 52).count() as f64 / draws.len() as f64;
    assert!((short - 0.05).abs() < 0.01, "half-length blocks: {short}");
    assert!(draws
        .iter()
        .all(|&l| (MIN_VARIABLE_BPTT..=seq_len + MAX_VARIABLE_BPTT_EXTRA).contains(&l)));
    // A short seq_len hits the floor of 5.
    let mut rng = Rng::new(9);
    assert!((0..1000).any(|_| draw_bptt(&mut rng, 6) == MIN_VARIABLE_BPTT));
}

#[test]
fn variable_bptt_scales_the_learning_rate_and_covers_each_epoch_once() {
    let regs = Regularizers {
        variable_bptt: true,
        ..Regularizers::default()
    };
    let config = train_config(100);
    let (lr, seq_len, batch) = (config.lr, config.seq_len, config.batch);
    let mut trainer =
        Trainer::with_regularizers(model(), config, regs, text(), None, None).unwrap();
    let stream_len = 600 / batch;
    let mut covered = 0;
    let mut lengths = Vec::new();
    loop {
        let r = trainer.step().unwrap();
        let t = r.tokens / batch;
        covered += t;
        lengths.push(t);
        if r.epoch == 1 {
            break;
        }
        // Not the epoch's last block: the drawn length is the block's length.
        let want = lr * t as f32 / seq_len as f32;
        assert!(
            (r.lr - want).abs() <= 1e-6 * want,
            "lr {} for length {t}",
            r.lr
        );
    }
    // One epoch predicts every stream token but the first, exactly once.
    assert_eq!(covered, stream_len - 1);
    assert_eq!(trainer.state.stream_pos, 0);
    lengths.sort_unstable();
    lengths.dedup();
    assert!(lengths.len() > 3, "lengths vary: {lengths:?}");
}

#[test]
fn trainer_states_saved_before_the_regularizers_load_with_them_off() {
    let mut trainer = Trainer::new(model(), train_config(2), text(), None, None).unwrap();
    trainer.step().unwrap();
    trainer.sync_state();
    let mut json = serde_json::to_value(&trainer.state).unwrap();
    let obj = json.as_object_mut().unwrap();
    assert!(obj.remove("regularizers").is_some() && obj.remove("stream_pos").is_some());
    let state: TrainerState = serde_json::from_value(json).unwrap();
    assert_eq!(state.regularizers, Regularizers::default());
    assert_eq!(state, trainer.state);
    // Out-of-range settings are refused with the setting's name.
    let bad = Regularizers {
        model: Regularization {
            dropout_hidden: 1.5,
            ..Regularization::default()
        },
        variable_bptt: false,
    };
    let err = Trainer::with_regularizers(model(), train_config(2), bad, text(), None, None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("dropout_hidden"), "{err}");
}
