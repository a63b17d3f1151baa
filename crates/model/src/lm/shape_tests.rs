//! Wrong shapes at the public entry points are errors naming the argument.

use super::*;
use crate::infer::{StepModel, StepWorkspace};
use crate::ModelError;
use recurrent_kernels::Rng;
use recurrent_nn::CellKind;

fn lstm() -> LanguageModel {
    let config = ModelConfig::new(CellKind::Lstm, 7, 4, 6, 2);
    LanguageModel::new(config, &mut Rng::new(3), None).unwrap()
}

fn shape(what: &'static str, expected: usize, got: usize) -> ModelError {
    ModelError::Shape {
        what,
        expected,
        got,
    }
}

#[test]
fn evaluate_block_rejects_each_wrong_argument() {
    let m = lstm();
    let (t, b) = (3, 2);
    let ok = vec![1u32; t * b];
    let mut state = State::zeros(&m.config, b);
    let mut ws = Workspace::default();
    let mut eval = |data: TokenBlock<'_>, state: &mut State| {
        m.evaluate_block(&mut ws, data, state).unwrap_err()
    };
    let short = vec![1u32; t * b - 1];
    assert_eq!(
        eval(TokenBlock::new(&short, &ok, t, b), &mut state),
        shape("tokens", 6, 5)
    );
    assert_eq!(
        eval(TokenBlock::new(&ok, &short, t, b), &mut state),
        shape("targets", 6, 5)
    );
    let mut outside = ok.clone();
    outside[4] = 7;
    let err = eval(TokenBlock::new(&outside, &ok, t, b), &mut state);
    assert_eq!(
        err,
        ModelError::Token {
            what: "tokens",
            index: 4,
            token: 7,
            vocab: 7
        }
    );
    assert_eq!(
        err.to_string(),
        "tokens[4] is 7, outside the vocabulary of 7"
    );
    assert!(matches!(
        eval(TokenBlock::new(&ok, &outside, t, b), &mut state),
        ModelError::Token {
            what: "targets",
            ..
        }
    ));
    let keep = [1.0; 5];
    assert_eq!(
        eval(
            TokenBlock::new(&ok, &ok, t, b).with_keep(Some(&keep)),
            &mut state
        ),
        shape("keep", 6, 5)
    );
    assert_eq!(
        eval(TokenBlock::new(&ok, &ok, 6, 1), &mut state),
        shape("state.batch", 1, 2)
    );
    let mut cut = state.clone();
    cut.c.pop();
    assert_eq!(
        eval(TokenBlock::new(&ok, &ok, t, b), &mut cut),
        shape("state.c", 24, 23)
    );
    assert_eq!(
        eval(TokenBlock::new(&[], &[], 0, b), &mut state),
        ModelError::Empty { what: "steps" }
    );
    // A rejected call leaves the state as it was.
    assert_eq!(state, State::zeros(&m.config, b));
}

#[test]
fn training_entry_points_check_the_gradient_buffer() {
    let m = lstm();
    let (t, b) = (2, 2);
    let tokens = vec![2u32; t * b];
    let mut state = State::zeros(&m.config, b);
    let mut grads = vec![0.0; m.params.len() + 1];
    let err = m
        .train_block(
            &mut Workspace::default(),
            TokenBlock::new(&tokens, &tokens, t, b),
            &mut state,
            &mut Rng::new(1),
            &mut grads,
        )
        .unwrap_err();
    assert_eq!(err, shape("grads", m.params.len(), m.params.len() + 1));
    let err = m
        .loss_and_gradients(&tokens, &tokens[1..], t, b, &mut state, &mut grads)
        .unwrap_err();
    assert_eq!(err, shape("targets", 4, 3));
    assert!(grads.iter().all(|&g| g == 0.0), "nothing was written");
}

#[test]
fn steps_reject_bad_tokens_and_states() {
    let m = lstm();
    let fast = StepModel::new(&m);
    let mut state = State::zeros(&m.config, 2);
    let mut ws = Workspace::default();
    let mut step_ws = StepWorkspace::default();
    assert_eq!(
        m.step(&mut ws, &[], &mut state).unwrap_err(),
        ModelError::Empty { what: "batch" }
    );
    assert_eq!(
        fast.step(&mut step_ws, &[], &mut state).unwrap_err(),
        ModelError::Empty { what: "batch" }
    );
    for err in [
        m.step(&mut ws, &[1, 9], &mut state).unwrap_err(),
        fast.step(&mut step_ws, &[1, 9], &mut state).unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                ModelError::Token {
                    index: 1,
                    token: 9,
                    vocab: 7,
                    ..
                }
            ),
            "{err}"
        );
    }
    assert_eq!(
        fast.step(&mut step_ws, &[1, 2, 3], &mut state).unwrap_err(),
        shape("state.batch", 3, 2)
    );
    let mut short = state.clone();
    short.h.truncate(5);
    assert_eq!(
        fast.step(&mut step_ws, &[1, 2], &mut short).unwrap_err(),
        shape("state.h", 24, 5)
    );
    assert!(fast.step(&mut step_ws, &[1, 2], &mut state).is_ok());
}

#[test]
fn states_are_checked_where_made_and_reset() {
    let config = lstm().config;
    let n = config.state_len(2);
    assert!(State::new(&config, 2, vec![0.0; n], vec![0.0; n]).is_ok());
    assert_eq!(
        State::new(&config, 2, vec![0.0; n], Vec::new()).unwrap_err(),
        shape("state.c", n, 0)
    );
    let gru = ModelConfig::new(CellKind::Gru, 7, 4, 6, 2);
    assert_eq!(
        State::new(&gru, 2, vec![0.0; n], vec![0.0; n]).unwrap_err(),
        shape("state.c", 0, n)
    );
    let mut s = State::zeros(&config, 2);
    assert_eq!(
        s.reset_stream(&config, 2).unwrap_err(),
        ModelError::Index {
            what: "stream",
            got: 2,
            len: 2
        }
    );
    assert!(s.reset_stream(&config, 1).is_ok());
}
