//! A custom observer: print validation results your own way, keep the
//! learning curve in memory, and stop a run when a target loss is reached.
//!
//! ```sh
//! cargo run --release -p recurrent --example custom_observer [RUN_FOLDER]
//! ```

use recurrent::lm::{TextSource, TrainOptions, Training};
use recurrent::{EvalReport, Observer, RunFolder, StepReport, StopRule};

/// Stops training once the validation loss is below `target`.
struct StopAtTarget {
    target: f64,
    curve: Vec<(u64, f64)>,
    reached: bool,
    step: u64,
}

// One observer works for any trainer (language model or seq2seq).
impl<T: ?Sized> Observer<T> for StopAtTarget {
    fn on_step(&mut self, _: &T, r: &StepReport) {
        self.step = r.step;
    }

    fn on_eval(&mut self, _: &T, r: &EvalReport, improved: bool) {
        self.curve.push((self.step, r.loss));
        println!(
            "step {:>4}: validation {:.3} nats/token{}",
            self.step,
            r.loss,
            if improved { " (best)" } else { "" }
        );
        self.reached |= r.loss < self.target;
    }

    fn should_stop(&self) -> bool {
        self.reached
    }
}

fn main() -> Result<(), recurrent::Error> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "runs/example-observer".into());
    let options = TrainOptions {
        input: TextSource::text(
            "counting",
            "one two three four five six seven eight nine ten\n".repeat(80),
        ),
        stop: StopRule {
            steps: Some(2000),
            ..StopRule::default()
        },
        eval_every: Some(20),
        seq_len: 40,
        batch: 16,
        lr: 1e-2,
        ..TrainOptions::default()
    };
    let mut observer = StopAtTarget {
        target: 0.3,
        curve: Vec::new(),
        reached: false,
        step: 0,
    };
    let mut training = Training::start(&options, RunFolder::create(&out)?)?;
    let outcome = training.run(&mut observer)?;
    println!(
        "stopped after {} steps ({}); {} validations recorded; resume with: recurrent train --resume {out}",
        outcome.steps,
        outcome.reason.describe(),
        observer.curve.len()
    );
    Ok(())
}
