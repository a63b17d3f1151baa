//! Checks the optimizers, gradient clipping and learning-rate schedules
//! against PyTorch 2.x, step by step, using values PyTorch recorded in
//! `tests/fixtures/optim_pytorch.json` (regenerate with
//! `scripts/make_optim_fixtures.py`; CI needs no PyTorch).

use recurrent_train::clip::{clip_grad_norm, grad_norm};
use recurrent_train::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use recurrent_train::schedule::{LrScheduler, Schedule};
use serde::Deserialize;

/// Relative tolerance for every compared value.
///
/// Bit equality with PyTorch is not possible: its CPU kernels fuse some
/// multiply-adds (add with alpha, lerp, addcmul) and take sqrt from MKL,
/// which is not correctly rounded, so intermediates differ by an ulp or so.
const REL_TOL: f64 = 1e-6;

/// Parameters are O(1) and each update carries the rounding error of O(1)
/// intermediates, so a parameter passing near zero is compared relative to
/// this scale rather than to its own tiny magnitude.
const PARAM_SCALE: f64 = 1.0;

#[derive(Deserialize)]
struct Fixture {
    init: Vec<f32>,
    grads: Vec<Vec<f32>>,
    lrs: Vec<f32>,
    optimizers: Vec<OptimizerCase>,
    clip: Vec<ClipCase>,
    schedules: Vec<ScheduleCase>,
}

#[derive(Deserialize)]
struct OptimizerCase {
    name: String,
    kind: OptimizerKind,
    options: Options,
    /// Parameters after each step.
    expected: Vec<Vec<f32>>,
}

/// Settings that differ from PyTorch's defaults; everything else must come
/// out right from `OptimizerConfig::new`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    momentum: Option<f32>,
    nesterov: Option<bool>,
    beta1: Option<f32>,
    beta2: Option<f32>,
    eps: Option<f32>,
    alpha: Option<f32>,
    weight_decay: Option<f32>,
}

impl Options {
    fn config(&self, kind: OptimizerKind) -> OptimizerConfig {
        let d = OptimizerConfig::new(kind);
        OptimizerConfig {
            kind,
            momentum: self.momentum.unwrap_or(d.momentum),
            nesterov: self.nesterov.unwrap_or(d.nesterov),
            beta1: self.beta1.unwrap_or(d.beta1),
            beta2: self.beta2.unwrap_or(d.beta2),
            eps: self.eps.unwrap_or(d.eps),
            alpha: self.alpha.unwrap_or(d.alpha),
            weight_decay: self.weight_decay.unwrap_or(d.weight_decay),
        }
    }
}

#[derive(Deserialize)]
struct ClipCase {
    name: String,
    max_norm: f32,
    grads: Vec<f32>,
    norm: f32,
    clipped: Vec<f32>,
}

#[derive(Deserialize)]
struct ScheduleCase {
    schedule: Schedule,
    base_lr: f32,
    /// Learning rate before each step, or after each validation for plateau.
    lrs: Vec<f64>,
    val_losses: Option<Vec<f32>>,
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/optim_pytorch.json"
    );
    let text = std::fs::read_to_string(path).expect("read fixture");
    serde_json::from_str(&text).expect("parse fixture")
}

/// `got` must be within `REL_TOL` of `want`, relative to `|want|` or to
/// `floor` if that is larger.
fn assert_close(got: f64, want: f64, floor: f64, what: &str) {
    let err = (got - want).abs();
    let scale = want.abs().max(floor);
    assert!(
        err <= REL_TOL * scale,
        "{what}: got {got}, PyTorch {want}, error {:e} relative to {scale}",
        err / scale
    );
}

fn assert_all_close(got: &[f32], want: &[f32], floor: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert_close(g.into(), w.into(), floor, &format!("{what}[{i}]"));
    }
}

#[test]
fn optimizers_match_pytorch_every_step() {
    let f = fixture();
    assert!(f.optimizers.len() >= 8);
    for case in &f.optimizers {
        let config = case.options.config(case.kind);
        config.validate().unwrap();
        let mut params = f.init.clone();
        let mut opt = Optimizer::new(config, params.len());
        assert_eq!(case.expected.len(), f.grads.len());
        for (step, ((grads, &lr), want)) in
            f.grads.iter().zip(&f.lrs).zip(&case.expected).enumerate()
        {
            opt.step(&mut params, grads, lr);
            assert_all_close(
                &params,
                want,
                PARAM_SCALE,
                &format!("{} step {}", case.name, step + 1),
            );
        }
        assert_eq!(opt.steps_taken(), f.grads.len() as u64);
    }
}

#[test]
fn clipping_matches_pytorch() {
    let f = fixture();
    for case in &f.clip {
        assert_close(
            grad_norm(&case.grads).into(),
            case.norm.into(),
            0.0,
            &case.name,
        );
        let mut grads = case.grads.clone();
        let norm = clip_grad_norm(&mut grads, case.max_norm);
        assert_close(norm.into(), case.norm.into(), 0.0, &case.name);
        assert_all_close(&grads, &case.clipped, 0.0, &case.name);
    }
    assert!(f.clip.iter().any(|c| c.norm > c.max_norm));
    assert!(f.clip.iter().any(|c| c.norm < c.max_norm));
}

#[test]
fn schedules_match_pytorch() {
    let f = fixture();
    for case in &f.schedules {
        let mut sched = LrScheduler::new(case.schedule.clone(), case.base_lr);
        let what = format!("{:?}", case.schedule);
        match &case.val_losses {
            None => {
                for (step, &want) in case.lrs.iter().enumerate() {
                    assert_close(
                        sched.lr(step as u64).into(),
                        want,
                        0.0,
                        &format!("{what} step {step}"),
                    );
                }
            }
            Some(losses) => {
                for (i, (&loss, &want)) in losses.iter().zip(&case.lrs).enumerate() {
                    let before = sched.lr(0);
                    let reduced = sched.observe_validation(loss);
                    let after = sched.lr(0);
                    assert_eq!(reduced, after < before, "{what} eval {i}");
                    assert_close(after.into(), want, 0.0, &format!("{what} eval {i}"));
                }
            }
        }
    }
}
