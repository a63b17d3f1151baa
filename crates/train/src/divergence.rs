//! Telling a diverged run from a noisy one, and what the engine does then.
//!
//! `ln V` is the loss of a uniform guess over the vocabulary of `V` tokens
//! (the target vocabulary of a seq2seq model): a model that learned anything
//! is below it. A run has **diverged** when
//!
//! - a training loss, gradient norm or validation loss is NaN or infinite; or
//! - its training loss stays above `max(FACTOR × m, ln V + MARGIN)` for
//!   `PATIENCE` steps in a row, `m` being the median of the last `WINDOW`
//!   training losses that were below that bound; or
//! - a validation loss is above `max(FACTOR × m, ln V + MARGIN)`, `m` being
//!   the median of the last `VAL_WINDOW` validation losses (`ln V` before the
//!   first validation).
//!
//! Both bounds must be crossed, which keeps normal runs free of false alarms:
//! early in a run the losses sit near `ln V`, so `FACTOR × m` is far above
//! them; later `ln V + MARGIN` is far above a model that learned anything,
//! and an overfitting model's validation loss climbs gradually, never by a
//! factor of three between validations. The patience forgives a single
//! unlucky batch. The first training loss of a run (of its weights before
//! any update) always joins the window: a model loaded to fine-tune may start
//! far above `ln V` without having diverged.
//!
//! Separately, a validation loss above `ln V` is never promoted to the best
//! checkpoint: such a model is worse than guessing.
//!
//! On divergence the engine stops with
//! [`TrainError::Diverged`](crate::TrainError::Diverged), or, with
//! [`OnDivergence::Rollback`], goes back to the last good state (the one of
//! the last `last/` checkpoint, kept in memory), multiplies the learning rate
//! by [`ROLLBACK_LR_FACTOR`] and goes on, at most [`MAX_ROLLBACKS`] times.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How many times the recent median a loss must exceed to count as exploding.
pub const FACTOR: f64 = 3.0;

/// How far above `ln V`, in nats per token, a loss must be to count as exploding.
pub const MARGIN: f64 = 1.0;

/// Training losses the median is taken over.
pub const WINDOW: usize = 50;

/// Validation losses the median is taken over.
pub const VAL_WINDOW: usize = 5;

/// Steps in a row a training loss must stay above the bound.
pub const PATIENCE: u32 = 3;

/// Rollbacks a run may take before a divergence stops it.
pub const MAX_ROLLBACKS: u32 = 3;

/// What each rollback multiplies the learning rate by.
pub const ROLLBACK_LR_FACTOR: f32 = 0.5;

/// What the engine does when a run diverges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDivergence {
    /// Stop the run with an error; the last good checkpoint stays as it was.
    #[default]
    Stop,
    /// Go back to the last good state, cut the learning rate and go on.
    /// The engine then keeps a copy of the weights, the optimizer buffers and
    /// the state in memory, taken at each validation that saves `last/`.
    /// A run resumed between a validation and a divergence goes back to where
    /// it was resumed, since the earlier state is not on disk.
    Rollback,
}

impl OnDivergence {
    /// The names accepted by `FromStr` and printed by `Display`.
    pub const ALL: [OnDivergence; 2] = [OnDivergence::Stop, OnDivergence::Rollback];

    fn name(self) -> &'static str {
        match self {
            OnDivergence::Stop => "stop",
            OnDivergence::Rollback => "rollback",
        }
    }
}

impl fmt::Display for OnDivergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not an [`OnDivergence`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown divergence policy '{name}' (expected stop or rollback)")]
pub struct UnknownPolicy {
    /// The name given.
    pub name: String,
}

impl FromStr for OnDivergence {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownPolicy { name: s.into() })
    }
}

/// Why a run counts as diverged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DivergenceReason {
    /// The training loss is NaN or infinite.
    NonFiniteLoss,
    /// The gradient norm is NaN or infinite.
    NonFiniteGradient {
        /// The norm.
        norm: f64,
    },
    /// The validation loss is NaN or infinite.
    NonFiniteValidation,
    /// The training loss stayed above the bound for [`PATIENCE`] steps.
    ExplodingLoss {
        /// The bound: `max(FACTOR × median, baseline + MARGIN)`.
        bound: Bound,
    },
    /// The validation loss is above the bound.
    ExplodingValidation {
        /// The bound: `max(FACTOR × median, baseline + MARGIN)`.
        bound: Bound,
    },
}

impl DivergenceReason {
    /// What happened, in words, for a loss of `loss`.
    pub fn describe(&self, loss: f64) -> String {
        match self {
            DivergenceReason::NonFiniteLoss => format!("the training loss became {loss}"),
            DivergenceReason::NonFiniteGradient { norm } => {
                format!("the gradient norm became {norm}")
            }
            DivergenceReason::NonFiniteValidation => format!("the validation loss became {loss}"),
            DivergenceReason::ExplodingLoss { bound } => format!(
                "the training loss was {loss:.4e}, above {bound} for {PATIENCE} steps in a row"
            ),
            DivergenceReason::ExplodingValidation { bound } => {
                format!("the validation loss was {loss:.4e}, above {bound}")
            }
        }
    }
}

/// The bound a loss is compared with, and what it was made of.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bound {
    /// The median of the recent losses (`baseline` before any).
    pub median: f64,
    /// `ln V`, the loss of a uniform guess.
    pub baseline: f64,
}

impl Bound {
    /// `max(FACTOR × median, baseline + MARGIN)`.
    pub fn value(&self) -> f64 {
        (FACTOR * self.median).max(self.baseline + MARGIN)
    }

    /// Whether `loss` is beyond the bound (NaN is).
    pub fn exceeded_by(&self, loss: f64) -> bool {
        loss.is_nan() || loss > self.value()
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.4} (the larger of {FACTOR} x {:.4}, the median of the recent losses, and \
             ln V + {MARGIN} = {:.4}, V being the vocabulary size)",
            self.value(),
            self.median,
            self.baseline + MARGIN
        )
    }
}

/// The divergence watch of a run: its policy, its rollbacks, and the recent
/// training losses it compares each new one with. Saved with the run (a state
/// saved before it existed reads as a fresh watch that stops).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DivergenceWatch {
    /// What to do on divergence.
    pub on_divergence: OnDivergence,
    /// Rollbacks taken so far.
    pub rollbacks: u32,
    /// What the rollbacks have multiplied the learning rate by (1 without any).
    pub lr_factor: f32,
    /// The last [`WINDOW`] training losses below the bound, oldest first.
    pub recent_losses: Vec<f64>,
    /// Steps in a row whose training loss was above the bound.
    pub over_bound: u32,
}

impl Default for DivergenceWatch {
    fn default() -> DivergenceWatch {
        DivergenceWatch {
            on_divergence: OnDivergence::Stop,
            rollbacks: 0,
            lr_factor: 1.0,
            recent_losses: Vec::new(),
            over_bound: 0,
        }
    }
}

impl DivergenceWatch {
    /// The bound the next training loss is compared with; `None` before the
    /// first loss, which is always accepted.
    pub fn bound(&self, baseline: f64) -> Option<Bound> {
        median(&self.recent_losses).map(|median| Bound { median, baseline })
    }

    /// Records a step's training loss; `Some` when the run has diverged.
    /// `baseline` is `ln V`.
    pub fn observe(&mut self, loss: f64, baseline: f64) -> Option<DivergenceReason> {
        if !loss.is_finite() {
            return Some(DivergenceReason::NonFiniteLoss);
        }
        if let Some(bound) = self.bound(baseline).filter(|b| b.exceeded_by(loss)) {
            self.over_bound += 1;
            return (self.over_bound >= PATIENCE)
                .then_some(DivergenceReason::ExplodingLoss { bound });
        }
        self.over_bound = 0;
        if self.recent_losses.len() == WINDOW {
            self.recent_losses.remove(0);
        }
        self.recent_losses.push(loss);
        None
    }

    /// Whether the run is clear of divergence now (no step above the bound
    /// since the last one below it).
    pub fn is_clear(&self) -> bool {
        self.over_bound == 0
    }
}

/// Whether a validation loss means the run diverged, given the earlier
/// validation losses (oldest first) and `baseline`, `ln V`.
pub fn check_validation(loss: f64, earlier: &[f64], baseline: f64) -> Option<DivergenceReason> {
    if !loss.is_finite() {
        return Some(DivergenceReason::NonFiniteValidation);
    }
    let recent = &earlier[earlier.len().saturating_sub(VAL_WINDOW)..];
    let median = median(recent).unwrap_or(baseline);
    let bound = Bound { median, baseline };
    bound
        .exceeded_by(loss)
        .then_some(DivergenceReason::ExplodingValidation { bound })
}

/// The median of `xs` (the mean of the middle two for an even count).
fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LN_65: f64 = 4.174_387_269_895_637;

    #[test]
    fn the_first_loss_is_accepted_however_high() {
        let mut watch = DivergenceWatch::default();
        assert_eq!(watch.observe(40.0, LN_65), None);
        assert_eq!(watch.recent_losses, [40.0]);
    }

    #[test]
    fn a_loss_must_stay_above_both_bounds_for_the_patience() {
        let mut watch = DivergenceWatch::default();
        for _ in 0..10 {
            assert_eq!(watch.observe(1.5, LN_65), None);
        }
        // 3 x 1.5 = 4.5 is below ln 65 + 1 = 5.17, which is the bound.
        let bound = watch.bound(LN_65).unwrap();
        assert!((bound.value() - (LN_65 + MARGIN)).abs() < 1e-12);
        assert!(!bound.exceeded_by(5.0));
        // One unlucky batch is forgiven, and does not join the window.
        assert_eq!(watch.observe(6.0, LN_65), None);
        assert_eq!(watch.observe(1.4, LN_65), None);
        assert_eq!(watch.recent_losses.len(), 11);
        assert!(watch.is_clear());
        assert_eq!(watch.observe(1e30, LN_65), None);
        assert_eq!(watch.observe(1e30, LN_65), None);
        assert!(!watch.is_clear());
        assert!(matches!(
            watch.observe(1e30, LN_65),
            Some(DivergenceReason::ExplodingLoss { .. })
        ));
    }

    #[test]
    fn early_losses_near_the_baseline_leave_room_to_rise() {
        let mut watch = DivergenceWatch::default();
        watch.observe(LN_65, LN_65);
        // Adam's first steps may overshoot: 3 x ln V is allowed.
        for _ in 0..5 {
            assert_eq!(watch.observe(9.0, LN_65), None);
        }
        assert!(matches!(
            watch.observe(f64::NAN, LN_65),
            Some(DivergenceReason::NonFiniteLoss)
        ));
    }

    #[test]
    fn the_window_keeps_the_latest_losses() {
        let mut watch = DivergenceWatch::default();
        for i in 0..(WINDOW + 7) {
            watch.observe(1.0 + i as f64 * 1e-3, LN_65);
        }
        assert_eq!(watch.recent_losses.len(), WINDOW);
        assert_eq!(watch.recent_losses[0], 1.007);
    }

    #[test]
    fn validation_losses_are_checked_against_their_own_history() {
        let check = |loss, earlier: &[f64]| check_validation(loss, earlier, LN_65);
        assert_eq!(check(4.0, &[]), None);
        // Overfitting climbs above ln V gradually: not a divergence.
        assert_eq!(check(6.0, &[1.2, 1.5, 2.5, 3.6, 4.8]), None);
        assert!(matches!(
            check(9.95e30, &[1.5]),
            Some(DivergenceReason::ExplodingValidation { .. })
        ));
        // Before any validation the median is ln V.
        assert!(matches!(
            check(13.0, &[]),
            Some(DivergenceReason::ExplodingValidation { .. })
        ));
        assert!(matches!(
            check(f64::INFINITY, &[]),
            Some(DivergenceReason::NonFiniteValidation)
        ));
    }

    #[test]
    fn policies_parse_and_print() {
        for p in OnDivergence::ALL {
            assert_eq!(p.to_string().parse::<OnDivergence>(), Ok(p));
        }
        assert_eq!(" Rollback ".parse(), Ok(OnDivergence::Rollback));
        assert!("retry".parse::<OnDivergence>().is_err());
        assert_eq!(
            serde_json::to_string(&OnDivergence::Rollback).unwrap(),
            "\"rollback\""
        );
    }

    #[test]
    fn a_watch_saved_before_it_had_a_field_reads_with_defaults() {
        let w: DivergenceWatch = serde_json::from_str(r#"{"rollbacks":2}"#).unwrap();
        assert_eq!(w.rollbacks, 2);
        assert_eq!(w.lr_factor, 1.0);
        assert_eq!(w.on_divergence, OnDivergence::Stop);
    }
}
