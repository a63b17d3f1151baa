//! Resume a run, whether this library or `recurrent train` started it, and
//! train it further.
//!
//! ```sh
//! recurrent train --input my-novel.txt --steps 100 --out runs/novel
//! cargo run --release -p recurrent --example resume runs/novel 200
//! recurrent train --resume runs/novel --steps 300   # and back again
//! ```

use recurrent::lm::{ResumeOptions, Training};
use recurrent::{Quiet, RunFolder, StopRule};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(run), Some(steps)) = (args.next(), args.next()) else {
        return Err("usage: resume RUN_FOLDER TOTAL_STEPS".into());
    };
    let options = ResumeOptions {
        stop: Some(StopRule {
            steps: Some(steps.parse()?),
            ..StopRule::default()
        }),
        ..ResumeOptions::default()
    };
    let mut training = Training::resume(RunFolder::open(run)?, &options)?;
    let before = training.trainer().state.progress.step;
    let outcome = training.run(&mut Quiet)?;
    println!(
        "steps {before} -> {} ({}), best validation loss {:?}",
        outcome.steps,
        outcome.reason.describe(),
        outcome.best_val_loss
    );
    Ok(())
}
