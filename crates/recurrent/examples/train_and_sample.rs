//! Train a character LSTM on a string, then sample from it.
//!
//! ```sh
//! cargo run --release -p recurrent --example train_and_sample [RUN_FOLDER]
//! ```

use recurrent::lm::{TextSource, TrainOptions, Training};
use recurrent::{GenerateOptions, Generator, GeneratorOptions, Quiet, RunFolder, StopRule};

fn main() -> Result<(), recurrent::Error> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "runs/example-rhymes".into());
    let text = "Twinkle, twinkle, little star,\nHow I wonder what you are!\n\
                Up above the world so high,\nLike a diamond in the sky.\n"
        .repeat(50);
    let options = TrainOptions {
        input: TextSource::text("rhymes", text),
        stop: StopRule {
            steps: Some(200),
            ..StopRule::default()
        },
        seq_len: 50,
        batch: 16,
        lr: 5e-3,
        ..TrainOptions::default()
    };
    let mut training = Training::start(&options, RunFolder::create(&out)?)?;
    println!("{}", training.describe());
    let outcome = training.run(&mut Quiet)?;
    println!(
        "{} steps in {:.1}s, best validation loss {:.3} nats/char, saved in {}",
        outcome.steps,
        outcome.elapsed_secs,
        outcome.best_val_loss.unwrap_or(f64::NAN),
        training.folder().path().display()
    );

    // The generator packs the weights once; each call reuses them.
    let generator = Generator::from_model(
        training.model(),
        training.tokenizer().clone(),
        GeneratorOptions::default(),
    )?;
    for seed in 0..2 {
        let sample = GenerateOptions {
            prime: "Twinkle".into(),
            length: 120,
            seed,
            ..GenerateOptions::default()
        };
        let texts = generator.generate(&sample, |_, _| {})?;
        println!("--- sample {seed} ---\nTwinkle{}", texts[0]);
    }
    Ok(())
}
