//! Optimizers that update the model's flat parameter buffer in place.
//!
//! All parameters live in one `Vec<f32>` and their gradients in another of the
//! same length, so an optimizer is a handful of elementwise loops over those
//! two slices plus its own state buffers of the same length.
//!
//! Each update follows the single-tensor (`foreach=False`, the CPU default)
//! code path of the PyTorch 2.x optimizer of the same name operation for
//! operation, including where PyTorch works on Python floats (f64) and where
//! on f32 tensors, so a run here and a run in PyTorch agree to rounding.
//! `tests/optim_vs_pytorch.rs` checks this against recorded PyTorch output.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Errors from parsing an optimizer name, checking a config or restoring state.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OptimError {
    /// The name is not one of [`OptimizerKind::NAMES`].
    #[error("unknown optimizer '{name}' (expected one of: sgd, adam, adamw, rmsprop)")]
    UnknownKind {
        /// The name given.
        name: String,
    },
    /// A hyperparameter is outside the range PyTorch accepts.
    #[error("the optimizer's {field} must be {expected}, got {value}")]
    OutOfRange {
        /// The [`OptimizerConfig`] field.
        field: &'static str,
        /// Its value.
        value: f32,
        /// The range accepted, in words.
        expected: &'static str,
    },
    /// Nesterov momentum asked for without SGD or without momentum.
    #[error(
        "nesterov needs the sgd optimizer with momentum > 0, got {kind} with momentum {momentum}"
    )]
    NesterovWithoutMomentum {
        /// The optimizer asked for.
        kind: OptimizerKind,
        /// Its momentum.
        momentum: f32,
    },
    /// Saved state lacks a buffer this optimizer needs.
    #[error("optimizer state is missing tensor '{name}'")]
    MissingTensor {
        /// The tensor's name.
        name: String,
    },
    /// Saved state holds a buffer this optimizer does not use, e.g. state
    /// from a different optimizer kind or momentum setting.
    #[error("optimizer state has unexpected tensor '{name}' (was it saved with a different optimizer config?)")]
    UnexpectedTensor {
        /// The tensor's name.
        name: String,
    },
    /// A saved buffer's length differs from the number of parameters.
    #[error("optimizer state tensor '{name}' has {found} values, expected {expected}")]
    WrongLength {
        /// The tensor's name.
        name: String,
        /// Values expected: the number of parameters.
        expected: usize,
        /// Values found.
        found: usize,
    },
    /// The saved step count is not four 16-bit limbs.
    #[error("optimizer state tensor 'step' does not hold a valid step count")]
    InvalidStep,
}

/// Which update rule to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// `torch.optim.SGD`, optionally with (Nesterov) momentum.
    Sgd,
    /// `torch.optim.Adam`, weight decay added to the gradient.
    Adam,
    /// `torch.optim.AdamW`, decoupled weight decay.
    AdamW,
    /// `torch.optim.RMSprop` (not centered), optionally with momentum.
    RmsProp,
}

impl OptimizerKind {
    /// Every kind, in the order of [`OptimizerKind::NAMES`].
    pub const ALL: [OptimizerKind; 4] = [Self::Sgd, Self::Adam, Self::AdamW, Self::RmsProp];
    /// The names accepted by `FromStr` and printed by `Display`.
    pub const NAMES: [&'static str; 4] = ["sgd", "adam", "adamw", "rmsprop"];

    /// The lowercase name, as on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sgd => "sgd",
            Self::Adam => "adam",
            Self::AdamW => "adamw",
            Self::RmsProp => "rmsprop",
        }
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OptimizerKind {
    type Err = OptimError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| OptimError::UnknownKind {
                name: s.to_string(),
            })
    }
}

/// Hyperparameters of an optimizer, except the learning rate, which the
/// schedule supplies to every [`Optimizer::step`].
///
/// Every field is present for every kind so that a config file can switch
/// kinds; fields a kind does not use are ignored:
/// SGD uses `momentum`, `nesterov`, `weight_decay`;
/// Adam and AdamW use `beta1`, `beta2`, `eps`, `weight_decay`;
/// RMSprop uses `alpha`, `eps`, `momentum`, `weight_decay`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// The update rule.
    pub kind: OptimizerKind,
    /// Momentum factor (SGD, RMSprop); 0 disables the momentum buffer.
    pub momentum: f32,
    /// Nesterov momentum (SGD only; needs `momentum > 0`).
    pub nesterov: bool,
    /// Decay rate of the first moment (Adam, AdamW).
    pub beta1: f32,
    /// Decay rate of the second moment (Adam, AdamW).
    pub beta2: f32,
    /// Added to the denominator for numerical stability (Adam, AdamW, RMSprop).
    pub eps: f32,
    /// Smoothing constant of the squared-gradient average (RMSprop).
    pub alpha: f32,
    /// L2 penalty added to the gradient (SGD, Adam, RMSprop) or decoupled
    /// decay `p *= 1 - lr * weight_decay` (AdamW).
    pub weight_decay: f32,
}

impl OptimizerConfig {
    /// PyTorch's defaults for `kind`: betas (0.9, 0.999), eps 1e-8, RMSprop
    /// alpha 0.99, no momentum, weight decay 0 except AdamW's 0.01.
    pub fn new(kind: OptimizerKind) -> Self {
        OptimizerConfig {
            kind,
            momentum: 0.0,
            nesterov: false,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            alpha: 0.99,
            weight_decay: if kind == OptimizerKind::AdamW {
                0.01
            } else {
                0.0
            },
        }
    }

    /// Checks the ranges PyTorch's constructors check, so a bad setting fails
    /// before training rather than producing NaNs.
    pub fn validate(&self) -> Result<(), OptimError> {
        let nonneg = [
            ("momentum", self.momentum),
            ("eps", self.eps),
            ("alpha", self.alpha),
            ("weight_decay", self.weight_decay),
        ];
        for (field, value) in nonneg {
            if !(value >= 0.0 && value.is_finite()) {
                let expected = "a finite value >= 0";
                return Err(OptimError::OutOfRange {
                    field,
                    value,
                    expected,
                });
            }
        }
        for (field, value) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&value) {
                let expected = "in [0, 1)";
                return Err(OptimError::OutOfRange {
                    field,
                    value,
                    expected,
                });
            }
        }
        if self.nesterov && (self.kind != OptimizerKind::Sgd || self.momentum <= 0.0) {
            return Err(OptimError::NesterovWithoutMomentum {
                kind: self.kind,
                momentum: self.momentum,
            });
        }
        Ok(())
    }
}

/// Recovers the decimal value an f32 was written as, as an f64.
///
/// PyTorch keeps hyperparameters as Python floats, so `beta2 = 0.999` enters
/// its bias correction as the f64 0.999. Widening the f32 bit pattern instead
/// would give 0.99900001287..., which moves `1 - beta2` by 1e-5 relative;
/// the shortest decimal that round-trips the f32 is what the user wrote.
fn decimal_f64(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

/// The config's hyperparameters as f64, computed once.
#[derive(Clone, Debug)]
struct Hyper {
    momentum: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    alpha: f64,
    weight_decay: f64,
}

impl Hyper {
    fn new(c: &OptimizerConfig) -> Self {
        Hyper {
            momentum: decimal_f64(c.momentum),
            beta1: decimal_f64(c.beta1),
            beta2: decimal_f64(c.beta2),
            eps: decimal_f64(c.eps),
            alpha: decimal_f64(c.alpha),
            weight_decay: decimal_f64(c.weight_decay),
        }
    }
}

/// An optimizer over one flat parameter buffer: its config, the number of
/// steps taken, and per-parameter state buffers.
#[derive(Clone, Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    hyper: Hyper,
    num_params: usize,
    steps: u64,
    /// Named like PyTorch's per-parameter state, in `state_tensors` order:
    /// SGD `momentum_buffer` (only with momentum), Adam/AdamW `exp_avg` and
    /// `exp_avg_sq`, RMSprop `square_avg` (+ `momentum_buffer` with momentum).
    buffers: Vec<(&'static str, Vec<f32>)>,
}

/// Name of the step-count entry in [`Optimizer::state_tensors`].
pub const STEP_TENSOR: &str = "step";

impl Optimizer {
    /// A fresh optimizer (zeroed state, step 0) for `num_params` parameters.
    pub fn new(config: OptimizerConfig, num_params: usize) -> Self {
        let has_momentum = config.momentum != 0.0;
        let names: &[&'static str] = match config.kind {
            OptimizerKind::Sgd if has_momentum => &["momentum_buffer"],
            OptimizerKind::Sgd => &[],
            OptimizerKind::Adam | OptimizerKind::AdamW => &["exp_avg", "exp_avg_sq"],
            OptimizerKind::RmsProp if has_momentum => &["square_avg", "momentum_buffer"],
            OptimizerKind::RmsProp => &["square_avg"],
        };
        // Zeroed buffers match PyTorch's lazy init: it zero-fills all of them
        // except SGD's momentum buffer, which starts as a copy of the first
        // gradient, and 0 * momentum + g == g with dampening 0.
        let buffers = names.iter().map(|&n| (n, vec![0.0; num_params])).collect();
        Optimizer {
            hyper: Hyper::new(&config),
            config,
            num_params,
            steps: 0,
            buffers,
        }
    }

    /// The hyperparameters this optimizer was built with.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Length of the parameter buffer this optimizer updates.
    pub fn num_params(&self) -> usize {
        self.num_params
    }

    /// Number of calls to [`Optimizer::step`] so far, including those before a
    /// [`Optimizer::load_state`].
    pub fn steps_taken(&self) -> u64 {
        self.steps
    }

    /// One update of `params` from `grads` at learning rate `lr` (the
    /// schedule supplies lr each step).
    ///
    /// Panics if either slice's length differs from `num_params`.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32) {
        assert_eq!(params.len(), self.num_params, "params length");
        assert_eq!(grads.len(), self.num_params, "grads length");
        self.steps += 1;
        let lr = decimal_f64(lr);
        let h = &self.hyper;
        match (self.config.kind, self.buffers.as_mut_slice()) {
            (OptimizerKind::Sgd, [(_, buf)]) => {
                sgd_momentum(params, grads, buf, lr, h, self.config.nesterov)
            }
            (OptimizerKind::Sgd, []) => sgd(params, grads, lr, h),
            (OptimizerKind::Adam, [(_, m), (_, v)]) => {
                let l2 = h.weight_decay as f32;
                adam(params, grads, (m, v), lr, h, l2, self.steps)
            }
            (OptimizerKind::AdamW, [(_, m), (_, v)]) => {
                decay_weights(params, lr, h.weight_decay);
                adam(params, grads, (m, v), lr, h, 0.0, self.steps)
            }
            (OptimizerKind::RmsProp, [(_, sq)]) => rmsprop(params, grads, sq, None, lr, h),
            (OptimizerKind::RmsProp, [(_, sq), (_, buf)]) => {
                rmsprop(params, grads, sq, Some(buf), lr, h)
            }
            _ => unreachable!("buffers are laid out by Optimizer::new"),
        }
    }

    /// State as named flat tensors for `optimizer.safetensors`: the buffers
    /// listed on [`Optimizer`] plus [`STEP_TENSOR`].
    ///
    /// The step count is stored exactly as four f32 values, each a 16-bit
    /// limb of the u64, least significant first (every integer below 2^24 is
    /// exact in f32, and a single f32 would lose counts above 2^24).
    pub fn state_tensors(&self) -> Vec<(String, Vec<f32>)> {
        let limbs = (0..4)
            .map(|i| ((self.steps >> (16 * i)) & 0xFFFF) as f32)
            .collect();
        std::iter::once((STEP_TENSOR.to_string(), limbs))
            .chain(self.buffers.iter().map(|(n, b)| (n.to_string(), b.clone())))
            .collect()
    }

    /// Restores from [`Optimizer::state_tensors`] of an optimizer with the
    /// same kind, momentum setting and parameter count.
    ///
    /// Checks everything before changing anything, so on error the optimizer
    /// is as it was.
    pub fn load_state(&mut self, tensors: &[(String, Vec<f32>)]) -> Result<(), OptimError> {
        if let Some((name, _)) = tensors
            .iter()
            .find(|(n, _)| n != STEP_TENSOR && !self.buffers.iter().any(|(b, _)| b == n))
        {
            return Err(OptimError::UnexpectedTensor { name: name.clone() });
        }
        let find = |name: &str| {
            tensors
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v)
                .ok_or_else(|| OptimError::MissingTensor {
                    name: name.to_string(),
                })
        };
        let steps = decode_step(find(STEP_TENSOR)?)?;
        let mut loaded = Vec::with_capacity(self.buffers.len());
        for (name, _) in &self.buffers {
            let v = find(name)?;
            if v.len() != self.num_params {
                return Err(OptimError::WrongLength {
                    name: name.to_string(),
                    expected: self.num_params,
                    found: v.len(),
                });
            }
            loaded.push(v);
        }
        for ((_, buf), v) in self.buffers.iter_mut().zip(loaded) {
            buf.copy_from_slice(v);
        }
        self.steps = steps;
        Ok(())
    }
}

/// Inverse of the limb encoding in [`Optimizer::state_tensors`].
fn decode_step(limbs: &[f32]) -> Result<u64, OptimError> {
    if limbs.len() != 4 {
        return Err(OptimError::InvalidStep);
    }
    let mut steps = 0u64;
    for (i, &l) in limbs.iter().enumerate() {
        if !(0.0..=65535.0).contains(&l) || l.fract() != 0.0 {
            return Err(OptimError::InvalidStep);
        }
        steps |= (l as u64) << (16 * i);
    }
    Ok(steps)
}

// The update loops below mirror PyTorch's tensor ops one by one. Scalars that
// PyTorch passes as Python floats into a float32 kernel are cast to f32 where
// the kernel casts them; scalars it computes in Python stay f64 until then.

/// `grad.add(param, alpha=weight_decay)`: the L2 penalty folded into the gradient.
#[inline]
fn l2_grad(g: f32, p: f32, wd: f32) -> f32 {
    if wd != 0.0 {
        g + wd * p
    } else {
        g
    }
}

/// Plain SGD: `p -= lr * (g + wd * p)`.
fn sgd(params: &mut [f32], grads: &[f32], lr: f64, h: &Hyper) {
    let (neg_lr, wd) = (-lr as f32, h.weight_decay as f32);
    for (p, &g) in params.iter_mut().zip(grads) {
        *p += neg_lr * l2_grad(g, *p, wd);
    }
}

/// SGD with momentum (dampening 0): `buf = m * buf + g`, then step along
/// `buf`, or along `g + m * buf` for Nesterov.
fn sgd_momentum(
    params: &mut [f32],
    grads: &[f32],
    buf: &mut [f32],
    lr: f64,
    h: &Hyper,
    nesterov: bool,
) {
    let (neg_lr, wd, m) = (-lr as f32, h.weight_decay as f32, h.momentum as f32);
    for ((p, &g), b) in params.iter_mut().zip(grads).zip(buf) {
        let g = l2_grad(g, *p, wd);
        *b = *b * m + g;
        let d = if nesterov { g + m * *b } else { *b };
        *p += neg_lr * d;
    }
}

/// AdamW's decoupled decay `param.mul_(1 - lr * weight_decay)`.
fn decay_weights(params: &mut [f32], lr: f64, wd: f64) {
    if wd == 0.0 {
        return;
    }
    let keep = (1.0 - lr * wd) as f32;
    for p in params {
        *p *= keep;
    }
}

/// ATen's `lerp`, which switches formula at weight 0.5 for accuracy.
#[inline]
fn lerp(start: f32, end: f32, w: f32) -> f32 {
    if w.abs() < 0.5 {
        start + w * (end - start)
    } else {
        end - (end - start) * (1.0 - w)
    }
}

/// Adam with bias correction and L2 penalty `l2` (0 for AdamW, which decays
/// the weights separately); `step` counts from 1.
fn adam(
    params: &mut [f32],
    grads: &[f32],
    (exp_avg, exp_avg_sq): (&mut [f32], &mut [f32]),
    lr: f64,
    h: &Hyper,
    l2: f32,
    step: u64,
) {
    let t = step as f64;
    // PyTorch computes these in Python: `beta ** step` is C pow, and so is `** 0.5`.
    let bias_correction1 = 1.0 - h.beta1.powf(t);
    let bias_correction2 = 1.0 - h.beta2.powf(t);
    let neg_step_size = (-(lr / bias_correction1)) as f32;
    let bc2_sqrt = bias_correction2.powf(0.5) as f32;
    let (w1, b2, one_minus_b2, eps) = (
        (1.0 - h.beta1) as f32,
        h.beta2 as f32,
        (1.0 - h.beta2) as f32,
        h.eps as f32,
    );
    let state = exp_avg.iter_mut().zip(exp_avg_sq.iter_mut());
    for ((p, &g), (m, v)) in params.iter_mut().zip(grads).zip(state) {
        let g = l2_grad(g, *p, l2);
        *m = lerp(*m, g, w1);
        *v = *v * b2 + one_minus_b2 * g * g;
        let denom = v.sqrt() / bc2_sqrt + eps;
        *p += neg_step_size * *m / denom;
    }
}

/// RMSprop (not centered), with an optional momentum buffer.
fn rmsprop(
    params: &mut [f32],
    grads: &[f32],
    square_avg: &mut [f32],
    momentum_buf: Option<&mut [f32]>,
    lr: f64,
    h: &Hyper,
) {
    let (neg_lr, wd, a, one_minus_a, eps, m) = (
        -lr as f32,
        h.weight_decay as f32,
        h.alpha as f32,
        (1.0 - h.alpha) as f32,
        h.eps as f32,
        h.momentum as f32,
    );
    // Updates one element's square average and returns its denominator.
    let denom = |s: &mut f32, g: f32| {
        *s = *s * a + one_minus_a * g * g;
        s.sqrt() + eps
    };
    let elems = params.iter_mut().zip(grads).zip(square_avg.iter_mut());
    match momentum_buf {
        Some(buf) => {
            for (((p, &g), s), b) in elems.zip(buf) {
                let g = l2_grad(g, *p, wd);
                let avg = denom(s, g);
                *b = *b * m + g / avg;
                *p += neg_lr * *b;
            }
        }
        None => {
            for ((p, &g), s) in elems {
                let g = l2_grad(g, *p, wd);
                let avg = denom(s, g);
                *p += neg_lr * g / avg;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recurrent_kernels::Rng;

    const N: usize = 13;

    fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
    }

    fn configs() -> Vec<OptimizerConfig> {
        let mut v: Vec<_> = OptimizerKind::ALL
            .into_iter()
            .map(OptimizerConfig::new)
            .collect();
        for kind in [OptimizerKind::Sgd, OptimizerKind::RmsProp] {
            v.push(OptimizerConfig {
                momentum: 0.9,
                nesterov: kind == OptimizerKind::Sgd,
                weight_decay: 0.01,
                ..OptimizerConfig::new(kind)
            });
        }
        v
    }

    #[test]
    fn kind_names_round_trip() {
        for (kind, name) in OptimizerKind::ALL.into_iter().zip(OptimizerKind::NAMES) {
            assert_eq!(kind.to_string(), name);
            assert_eq!(name.parse::<OptimizerKind>().unwrap(), kind);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
        }
        assert_eq!(
            "AdamW".parse::<OptimizerKind>().unwrap(),
            OptimizerKind::AdamW
        );
        let err = "adagrad".parse::<OptimizerKind>().unwrap_err().to_string();
        assert!(
            err.contains("adagrad") && err.contains("sgd, adam, adamw, rmsprop"),
            "{err}"
        );
    }

    #[test]
    fn defaults_follow_pytorch() {
        let adam = OptimizerConfig::new(OptimizerKind::Adam);
        assert_eq!(
            (adam.beta1, adam.beta2, adam.eps, adam.weight_decay),
            (0.9, 0.999, 1e-8, 0.0)
        );
        assert_eq!(
            OptimizerConfig::new(OptimizerKind::AdamW).weight_decay,
            0.01
        );
        let rms = OptimizerConfig::new(OptimizerKind::RmsProp);
        assert_eq!((rms.alpha, rms.eps, rms.momentum), (0.99, 1e-8, 0.0));
        for c in configs() {
            c.validate().unwrap();
        }
    }

    #[test]
    fn validate_rejects_bad_settings() {
        let sgd = OptimizerConfig::new(OptimizerKind::Sgd);
        let nesterov_without_momentum = OptimizerConfig {
            nesterov: true,
            ..sgd.clone()
        };
        assert_eq!(
            nesterov_without_momentum.validate(),
            Err(OptimError::NesterovWithoutMomentum {
                kind: OptimizerKind::Sgd,
                momentum: 0.0
            })
        );
        let bad_beta = OptimizerConfig {
            beta2: 1.0,
            ..OptimizerConfig::new(OptimizerKind::Adam)
        };
        assert_eq!(
            bad_beta.validate(),
            Err(OptimError::OutOfRange {
                field: "beta2",
                value: 1.0,
                expected: "in [0, 1)"
            })
        );
        let bad_wd = OptimizerConfig {
            weight_decay: -0.1,
            ..sgd
        };
        let err = bad_wd.validate().unwrap_err();
        assert!(matches!(
            err,
            OptimError::OutOfRange {
                field: "weight_decay",
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "the optimizer's weight_decay must be a finite value >= 0, got -0.1"
        );
    }

    #[test]
    fn decimal_widening_recovers_written_value() {
        assert_eq!(decimal_f64(0.999), 0.999);
        assert_eq!(decimal_f64(1e-8), 1e-8);
        assert_eq!(decimal_f64(0.0), 0.0);
        assert_eq!(decimal_f64(3e-4) as f32, 3e-4f32);
    }

    /// Saving after 3 steps and resuming in a fresh optimizer for 2 more
    /// must give exactly the parameters of 5 uninterrupted steps.
    #[test]
    fn state_round_trip_continues_bit_identically() {
        for config in configs() {
            let mut rng = Rng::new(7);
            let init = random(&mut rng, N);
            let grads: Vec<Vec<f32>> = (0..5).map(|_| random(&mut rng, N)).collect();
            let lr = |i: usize| 0.05 / (i + 1) as f32;

            let mut straight = init.clone();
            let mut opt = Optimizer::new(config.clone(), N);
            for (i, g) in grads.iter().enumerate() {
                opt.step(&mut straight, g, lr(i));
            }

            let mut resumed = init;
            let mut first = Optimizer::new(config.clone(), N);
            for (i, g) in grads[..3].iter().enumerate() {
                first.step(&mut resumed, g, lr(i));
            }
            let saved = first.state_tensors();
            let mut second = Optimizer::new(config.clone(), N);
            second.load_state(&saved).unwrap();
            assert_eq!(second.steps_taken(), 3);
            for (i, g) in grads.iter().enumerate().skip(3) {
                second.step(&mut resumed, g, lr(i));
            }

            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&straight), bits(&resumed), "{:?}", config.kind);
            assert_eq!(second.steps_taken(), 5);
            assert_eq!(opt.state_tensors(), second.state_tensors());
        }
    }

    #[test]
    fn step_count_is_stored_exactly() {
        let mut opt = Optimizer::new(OptimizerConfig::new(OptimizerKind::Adam), 1);
        let big = (1u64 << 40) + (1 << 24) + 1;
        let mut state = opt.state_tensors();
        state[0].1 = (0..4)
            .map(|i| ((big >> (16 * i)) & 0xFFFF) as f32)
            .collect();
        opt.load_state(&state).unwrap();
        assert_eq!(opt.steps_taken(), big);
        assert_eq!(opt.state_tensors(), state);
    }

    #[test]
    fn load_state_rejects_mismatches() {
        let config = OptimizerConfig::new(OptimizerKind::Adam);
        let good = Optimizer::new(config.clone(), N).state_tensors();
        let mut opt = Optimizer::new(config, N);

        let mut short = good.clone();
        short[1].1.pop();
        assert_eq!(
            opt.load_state(&short),
            Err(OptimError::WrongLength {
                name: "exp_avg".into(),
                expected: N,
                found: N - 1
            })
        );

        let missing: Vec<_> = good
            .iter()
            .filter(|(n, _)| n != "exp_avg_sq")
            .cloned()
            .collect();
        assert_eq!(
            opt.load_state(&missing),
            Err(OptimError::MissingTensor {
                name: "exp_avg_sq".into()
            })
        );

        let mut extra = good.clone();
        extra.push(("momentum_buffer".into(), vec![0.0; N]));
        assert_eq!(
            opt.load_state(&extra),
            Err(OptimError::UnexpectedTensor {
                name: "momentum_buffer".into()
            })
        );

        let mut bad_step = good.clone();
        bad_step[0].1[0] = 0.5;
        assert_eq!(opt.load_state(&bad_step), Err(OptimError::InvalidStep));

        // A failed load leaves the optimizer untouched.
        assert_eq!(opt.state_tensors(), good);
    }

    #[test]
    fn state_names_follow_pytorch() {
        let names = |c: OptimizerConfig| -> Vec<String> {
            Optimizer::new(c, 2)
                .state_tensors()
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        assert_eq!(names(OptimizerConfig::new(OptimizerKind::Sgd)), ["step"]);
        assert_eq!(
            names(OptimizerConfig::new(OptimizerKind::AdamW)),
            ["step", "exp_avg", "exp_avg_sq"]
        );
        let rms = OptimizerConfig {
            momentum: 0.5,
            ..OptimizerConfig::new(OptimizerKind::RmsProp)
        };
        assert_eq!(names(rms), ["step", "square_avg", "momentum_buffer"]);
    }
}
