//! Learning-rate schedules, after PyTorch's `lr_scheduler` module.
//!
//! Step decay and cosine annealing are pure functions of the optimizer step,
//! so resuming needs only the step count. Reduce-on-plateau depends on the
//! validation losses seen so far; that state lives in [`LrScheduler`], which
//! serializes into `trainer_state.json`.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How the learning rate changes over training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// The base learning rate throughout.
    Constant,
    /// `StepLR`: multiply by `gamma` every `every` steps.
    Step {
        /// Steps between reductions.
        every: u64,
        /// Factor applied at each reduction.
        gamma: f32,
    },
    /// `CosineAnnealingLR` from the base lr down to `min_lr` at `total_steps`,
    /// after a linear warmup from 0 over the first `warmup_steps` steps.
    Cosine {
        /// The step at which the lr reaches `min_lr` (warmup included).
        total_steps: u64,
        /// The lowest learning rate, reached at `total_steps`.
        min_lr: f32,
        /// Steps of linear warmup from 0 to the base lr.
        warmup_steps: u64,
    },
    /// `ReduceLROnPlateau` (mode 'min', threshold mode 'rel', no cooldown):
    /// multiply by `factor` when the validation loss has not improved by a
    /// relative `threshold` for more than `patience` evaluations.
    Plateau {
        /// Factor applied at each reduction, in (0, 1).
        factor: f32,
        /// Evaluations without improvement tolerated before a reduction.
        patience: u32,
        /// Relative improvement that counts (1e-4: 0.01% lower loss).
        threshold: f32,
        /// The learning rate is never reduced below this.
        min_lr: f32,
    },
}

/// The forms [`Schedule::parse`] accepts, for error messages and CLI help.
pub const SCHEDULE_FORMS: &str =
    "constant, step:EVERY:GAMMA, cosine[:WARMUP[:MIN_LR]], plateau[:FACTOR[:PATIENCE]]";

/// PyTorch's `ReduceLROnPlateau` defaults.
const PLATEAU_FACTOR: f32 = 0.1;
const PLATEAU_PATIENCE: u32 = 10;
const PLATEAU_THRESHOLD: f32 = 1e-4;

/// Why a schedule's text cannot be parsed. Each error names the part of the
/// text that is wrong: the schedule's name, or one of its `:` fields by the
/// name [`SCHEDULE_FORMS`] gives it (`EVERY`, `GAMMA`, `WARMUP`, `MIN_LR`,
/// `FACTOR`, `PATIENCE`).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ScheduleError {
    /// The name before the first `:` is not a schedule.
    #[error("unknown schedule '{name}' (accepted: {SCHEDULE_FORMS})")]
    UnknownName {
        /// The name given.
        name: String,
    },
    /// More `:` fields than the schedule takes.
    #[error("the {schedule} schedule takes at most {max} ':' field(s) ({form}), got {got}")]
    TooManyFields {
        /// The schedule's name.
        schedule: &'static str,
        /// The most fields it takes.
        max: usize,
        /// How many were given.
        got: usize,
        /// Its accepted form, e.g. `cosine[:WARMUP[:MIN_LR]]`.
        form: &'static str,
    },
    /// Fewer `:` fields than the schedule needs.
    #[error(
        "the {schedule} schedule needs {needed} ':' field(s) ({form}, e.g. {example}), got {got}"
    )]
    MissingFields {
        /// The schedule's name.
        schedule: &'static str,
        /// How many fields it needs.
        needed: usize,
        /// How many were given.
        got: usize,
        /// Its accepted form, e.g. `step:EVERY:GAMMA`.
        form: &'static str,
        /// A valid example.
        example: &'static str,
    },
    /// A field is not a number of its kind.
    #[error("the {schedule} schedule's {field} '{text}' is not a valid {kind}")]
    NotANumber {
        /// The schedule's name.
        schedule: &'static str,
        /// The field's name, e.g. `EVERY`.
        field: &'static str,
        /// The field's text.
        text: String,
        /// What it should be: "whole number" or "number".
        kind: &'static str,
    },
    /// A field's value is outside its range.
    #[error("the {schedule} schedule's {field} must be {expected}, got {value}")]
    OutOfRange {
        /// The schedule's name.
        schedule: &'static str,
        /// The field's name, e.g. `GAMMA`.
        field: &'static str,
        /// The value given, as text.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// `cosine` without a known length of training.
    #[error("the cosine schedule needs the total number of training steps, which only a step or epoch limit gives")]
    UnknownTotalSteps,
}

impl Schedule {
    /// Parses a schedule's text: `constant`, `step:EVERY:GAMMA`, `cosine`
    /// (needs `total_steps`), `cosine:WARMUP`, `cosine:WARMUP:MIN_LR`,
    /// `plateau`, `plateau:FACTOR` or `plateau:FACTOR:PATIENCE` (PyTorch
    /// defaults factor 0.1, patience 10, threshold 1e-4).
    ///
    /// ```
    /// use recurrent_train::schedule::{Schedule, ScheduleError};
    ///
    /// assert_eq!(
    ///     Schedule::parse("step:1000:0.5", None),
    ///     Ok(Schedule::Step { every: 1000, gamma: 0.5 })
    /// );
    /// assert!(matches!(
    ///     Schedule::parse("step:0:0.5", None),
    ///     Err(ScheduleError::OutOfRange { field: "EVERY", .. })
    /// ));
    /// ```
    pub fn parse(s: &str, total_steps: Option<u64>) -> Result<Schedule, ScheduleError> {
        let mut parts = s.trim().split(':');
        let name = parts.next().unwrap_or_default();
        let args: Vec<&str> = parts.collect();
        let arity = |schedule: &'static str, max: usize, form: &'static str| {
            if args.len() > max {
                Err(ScheduleError::TooManyFields {
                    schedule,
                    max,
                    got: args.len(),
                    form,
                })
            } else {
                Ok(())
            }
        };
        let out_of_range =
            |schedule, field, value: &dyn std::fmt::Display, expected| ScheduleError::OutOfRange {
                schedule,
                field,
                value: value.to_string(),
                expected,
            };
        match name {
            "constant" => {
                arity("constant", 0, "constant")?;
                Ok(Schedule::Constant)
            }
            "step" => {
                const FORM: &str = "step:EVERY:GAMMA";
                arity("step", 2, FORM)?;
                if args.len() < 2 {
                    return Err(ScheduleError::MissingFields {
                        schedule: "step",
                        needed: 2,
                        got: args.len(),
                        form: FORM,
                        example: "step:1000:0.5",
                    });
                }
                let every = parse_num::<u64>(args[0], "step", "EVERY")?;
                let gamma = parse_num::<f32>(args[1], "step", "GAMMA")?;
                if every == 0 {
                    return Err(out_of_range("step", "EVERY", &every, "at least 1"));
                }
                if !(gamma > 0.0 && gamma.is_finite()) {
                    return Err(out_of_range("step", "GAMMA", &gamma, "a finite number > 0"));
                }
                Ok(Schedule::Step { every, gamma })
            }
            "cosine" => {
                arity("cosine", 2, "cosine[:WARMUP[:MIN_LR]]")?;
                let warmup_steps = match args.first() {
                    Some(a) => parse_num::<u64>(a, "cosine", "WARMUP")?,
                    None => 0,
                };
                let min_lr = match args.get(1) {
                    Some(a) => parse_num::<f32>(a, "cosine", "MIN_LR")?,
                    None => 0.0,
                };
                if !(min_lr >= 0.0 && min_lr.is_finite()) {
                    return Err(out_of_range(
                        "cosine",
                        "MIN_LR",
                        &min_lr,
                        "a finite number >= 0",
                    ));
                }
                let total_steps = total_steps.ok_or(ScheduleError::UnknownTotalSteps)?;
                Ok(Schedule::Cosine {
                    total_steps,
                    min_lr,
                    warmup_steps,
                })
            }
            "plateau" => {
                arity("plateau", 2, "plateau[:FACTOR[:PATIENCE]]")?;
                let factor = match args.first() {
                    Some(a) => parse_num::<f32>(a, "plateau", "FACTOR")?,
                    None => PLATEAU_FACTOR,
                };
                let patience = match args.get(1) {
                    Some(a) => parse_num::<u32>(a, "plateau", "PATIENCE")?,
                    None => PLATEAU_PATIENCE,
                };
                if !(factor > 0.0 && factor < 1.0) {
                    return Err(out_of_range("plateau", "FACTOR", &factor, "in (0, 1)"));
                }
                Ok(Schedule::Plateau {
                    factor,
                    patience,
                    threshold: PLATEAU_THRESHOLD,
                    min_lr: 0.0,
                })
            }
            _ => Err(ScheduleError::UnknownName { name: name.into() }),
        }
    }
}

/// Parses one `:` field of `schedule`, naming it in the error.
fn parse_num<T: std::str::FromStr + Number>(
    s: &str,
    schedule: &'static str,
    field: &'static str,
) -> Result<T, ScheduleError> {
    s.trim().parse().map_err(|_| ScheduleError::NotANumber {
        schedule,
        field,
        text: s.into(),
        kind: T::KIND,
    })
}

/// What a field's number type is called in an error.
trait Number {
    /// "whole number" or "number".
    const KIND: &'static str;
}

impl Number for u64 {
    const KIND: &'static str = "whole number";
}

impl Number for u32 {
    const KIND: &'static str = "whole number";
}

impl Number for f32 {
    const KIND: &'static str = "number";
}

/// A schedule with its base learning rate and evolving state. Serializable
/// into `trainer_state.json`, so a resumed run continues the same schedule.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LrScheduler {
    /// How the learning rate changes.
    pub schedule: Schedule,
    /// The learning rate the schedule starts from and scales.
    pub base_lr: f32,
    /// Plateau: the learning rate after the reductions so far (starts at
    /// `base_lr`). Other schedules derive their lr from the step and leave
    /// this at `base_lr`.
    pub current_lr: f32,
    /// Plateau: the best validation loss so far, `None` before the first
    /// (PyTorch starts from infinity, which JSON cannot hold).
    pub best_loss: Option<f32>,
    /// Plateau: evaluations since the last improvement or reduction.
    pub bad_evals: u32,
}

impl LrScheduler {
    /// A scheduler at the start of training.
    pub fn new(schedule: Schedule, base_lr: f32) -> Self {
        LrScheduler {
            schedule,
            base_lr,
            current_lr: base_lr,
            best_loss: None,
            bad_evals: 0,
        }
    }

    /// Learning rate to use for optimizer step number `step` (0-based).
    ///
    /// Step decay: `base * gamma^(step / every)`. Cosine: `base * step /
    /// warmup` during warmup, then `min + (base - min) * (1 + cos(pi *
    /// progress)) / 2` with progress from 0 at the end of warmup to 1 at
    /// `total_steps`, clamped there. Plateau: the current reduced lr.
    pub fn lr(&self, step: u64) -> f32 {
        let base = f64::from(self.base_lr);
        let lr = match self.schedule {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => {
                let drops = step / every.max(1);
                base * f64::from(gamma).powf(drops as f64)
            }
            Schedule::Cosine {
                total_steps,
                min_lr,
                warmup_steps,
            } => {
                if step < warmup_steps {
                    base * step as f64 / warmup_steps as f64
                } else {
                    let span = total_steps.saturating_sub(warmup_steps).max(1);
                    let progress = ((step - warmup_steps) as f64 / span as f64).min(1.0);
                    let min = f64::from(min_lr);
                    min + (base - min) * (1.0 + (PI * progress).cos()) / 2.0
                }
            }
            Schedule::Plateau { .. } => f64::from(self.current_lr),
        };
        lr as f32
    }

    /// Report a validation loss. The plateau schedule reduces the lr by
    /// `factor` after more than `patience` evaluations without a relative
    /// improvement of `threshold` (PyTorch 'rel' mode), never below `min_lr`;
    /// returns true if the lr was reduced. A no-op for other schedules.
    pub fn observe_validation(&mut self, val_loss: f32) -> bool {
        let Schedule::Plateau {
            factor,
            patience,
            threshold,
            min_lr,
        } = self.schedule
        else {
            return false;
        };
        // Comparisons in f64 as PyTorch does them on Python floats. A NaN
        // loss is never an improvement.
        let improved = match self.best_loss {
            None => !val_loss.is_nan(),
            Some(best) => f64::from(val_loss) < f64::from(best) * (1.0 - f64::from(threshold)),
        };
        if improved {
            self.best_loss = Some(val_loss);
            self.bad_evals = 0;
        } else {
            self.bad_evals += 1;
        }
        if self.bad_evals <= patience {
            return false;
        }
        self.bad_evals = 0;
        let old = f64::from(self.current_lr);
        let new = (old * f64::from(factor)).max(f64::from(min_lr));
        // PyTorch's eps: changes smaller than this are ignored.
        if old - new > 1e-8 {
            self.current_lr = new as f32;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-6 * b.abs().max(1e-3)
    }

    #[test]
    fn constant_is_constant() {
        let s = LrScheduler::new(Schedule::Constant, 0.002);
        assert_eq!(s.lr(0), 0.002);
        assert_eq!(s.lr(1_000_000), 0.002);
    }

    #[test]
    fn step_decay_values() {
        let s = LrScheduler::new(
            Schedule::Step {
                every: 3,
                gamma: 0.5,
            },
            0.1,
        );
        let lrs: Vec<f32> = (0..8).map(|i| s.lr(i)).collect();
        assert_eq!(lrs, [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025]);
    }

    #[test]
    fn cosine_endpoints() {
        let s = LrScheduler::new(
            Schedule::Cosine {
                total_steps: 100,
                min_lr: 0.001,
                warmup_steps: 0,
            },
            0.01,
        );
        assert_eq!(s.lr(0), 0.01);
        assert!(close(s.lr(50), 0.0055), "{}", s.lr(50));
        assert!(close(s.lr(100), 0.001));
        // Clamped past the end rather than rising again as PyTorch would.
        assert!(close(s.lr(250), 0.001));
        // Monotone decreasing.
        assert!((1..=100).all(|i| s.lr(i) <= s.lr(i - 1)));
    }

    #[test]
    fn cosine_warmup() {
        let s = LrScheduler::new(
            Schedule::Cosine {
                total_steps: 110,
                min_lr: 0.0,
                warmup_steps: 10,
            },
            0.01,
        );
        assert_eq!(s.lr(0), 0.0);
        assert!(close(s.lr(5), 0.005));
        assert!(close(s.lr(9), 0.009));
        assert_eq!(s.lr(10), 0.01);
        assert!(close(s.lr(60), 0.005));
        assert!(s.lr(110).abs() < 1e-9);
    }

    fn plateau(patience: u32, min_lr: f32) -> LrScheduler {
        LrScheduler::new(
            Schedule::Plateau {
                factor: 0.5,
                patience,
                threshold: 1e-4,
                min_lr,
            },
            0.1,
        )
    }

    #[test]
    fn plateau_reduces_after_patience() {
        let mut s = plateau(2, 0.0);
        assert!(!s.observe_validation(3.0));
        assert!(!s.observe_validation(2.5)); // improvement
        assert!(!s.observe_validation(2.5)); // bad 1
        assert!(!s.observe_validation(2.49999)); // below the relative threshold: bad 2
        assert_eq!(s.lr(123), 0.1);
        assert!(s.observe_validation(2.6)); // bad 3 > patience
        assert!(close(s.lr(0), 0.05));
        assert_eq!(s.bad_evals, 0);
        assert!(!s.observe_validation(2.0)); // improvement resets the count
        assert!(!s.observe_validation(2.0));
        assert!(!s.observe_validation(2.0));
        assert!(s.observe_validation(2.0));
        assert!(close(s.lr(0), 0.025));
    }

    #[test]
    fn plateau_respects_min_lr() {
        let mut s = plateau(0, 0.03);
        s.observe_validation(1.0);
        assert!(s.observe_validation(1.0));
        assert!(close(s.lr(0), 0.05));
        assert!(s.observe_validation(1.0));
        assert!(close(s.lr(0), 0.03));
        assert!(!s.observe_validation(1.0));
        assert!(close(s.lr(0), 0.03));
    }

    #[test]
    fn other_schedules_ignore_validation() {
        let mut s = LrScheduler::new(Schedule::Constant, 0.1);
        assert!((0..20).all(|_| !s.observe_validation(1.0)));
        assert_eq!(s, LrScheduler::new(Schedule::Constant, 0.1));
    }

    #[test]
    fn serde_round_trip_mid_run() {
        let mut s = plateau(1, 0.0);
        for loss in [2.0, 1.5, 1.6, 1.7, 1.4, 1.45] {
            s.observe_validation(loss);
        }
        let json = serde_json::to_string(&s).unwrap();
        let mut back: LrScheduler = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        // Both continue identically.
        for loss in [1.5, 1.5, 1.3, 1.3, 1.3] {
            assert_eq!(back.observe_validation(loss), s.observe_validation(loss));
            assert_eq!(back, s);
        }

        let fresh = plateau(1, 0.0);
        let back: LrScheduler =
            serde_json::from_str(&serde_json::to_string(&fresh).unwrap()).unwrap();
        assert_eq!(back, fresh);

        let cosine = Schedule::Cosine {
            total_steps: 10,
            min_lr: 0.0,
            warmup_steps: 2,
        };
        let json = serde_json::to_string(&cosine).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"cosine","total_steps":10,"min_lr":0.0,"warmup_steps":2}"#
        );
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), cosine);
    }

    #[test]
    fn parse_accepted_forms() {
        assert_eq!(Schedule::parse("constant", None), Ok(Schedule::Constant));
        assert_eq!(
            Schedule::parse("step:1000:0.5", None),
            Ok(Schedule::Step {
                every: 1000,
                gamma: 0.5
            })
        );
        assert_eq!(
            Schedule::parse("cosine", Some(500)),
            Ok(Schedule::Cosine {
                total_steps: 500,
                min_lr: 0.0,
                warmup_steps: 0
            })
        );
        assert_eq!(
            Schedule::parse("cosine:50:1e-5", Some(500)),
            Ok(Schedule::Cosine {
                total_steps: 500,
                min_lr: 1e-5,
                warmup_steps: 50
            })
        );
        assert_eq!(
            Schedule::parse("plateau", None),
            Ok(Schedule::Plateau {
                factor: 0.1,
                patience: 10,
                threshold: 1e-4,
                min_lr: 0.0
            })
        );
        assert_eq!(
            Schedule::parse("plateau:0.5:3", None),
            Ok(Schedule::Plateau {
                factor: 0.5,
                patience: 3,
                threshold: 1e-4,
                min_lr: 0.0
            })
        );
    }

    #[test]
    fn parse_errors_name_the_part_that_is_wrong() {
        use ScheduleError as E;
        let range = |schedule, field, value: &str, expected| E::OutOfRange {
            schedule,
            field,
            value: value.into(),
            expected,
        };
        let nan = |schedule, field, text: &str, kind| E::NotANumber {
            schedule,
            field,
            text: text.into(),
            kind,
        };
        let cases = [
            ("cosine", E::UnknownTotalSteps),
            ("step:abc:0.5", nan("step", "EVERY", "abc", "whole number")),
            ("step:0:0.5", range("step", "EVERY", "0", "at least 1")),
            (
                "step:10",
                E::MissingFields {
                    schedule: "step",
                    needed: 2,
                    got: 1,
                    form: "step:EVERY:GAMMA",
                    example: "step:1000:0.5",
                },
            ),
            (
                "step:10:-1",
                range("step", "GAMMA", "-1", "a finite number > 0"),
            ),
            ("plateau:2", range("plateau", "FACTOR", "2", "in (0, 1)")),
            (
                "plateau:0.5:x",
                nan("plateau", "PATIENCE", "x", "whole number"),
            ),
            (
                "cosine:5:-1",
                range("cosine", "MIN_LR", "-1", "a finite number >= 0"),
            ),
            (
                "constant:1",
                E::TooManyFields {
                    schedule: "constant",
                    max: 0,
                    got: 1,
                    form: "constant",
                },
            ),
            (
                "linear",
                E::UnknownName {
                    name: "linear".into(),
                },
            ),
        ];
        for (input, expected) in cases {
            let e = Schedule::parse(input, None).unwrap_err();
            assert_eq!(e, expected, "{input}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
        assert!(Schedule::parse("linear", None)
            .unwrap_err()
            .to_string()
            .contains(SCHEDULE_FORMS));
    }
}
