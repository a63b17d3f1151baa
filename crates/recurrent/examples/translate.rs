//! Translate lines from stdin with a seq2seq checkpoint (or run folder).
//!
//! ```sh
//! recurrent seq2seq train --pairs eng-fra.txt --time 10m --out runs/en-fr
//! echo "I am cold." | cargo run --release -p recurrent --example translate runs/en-fr
//! ```

use std::io::BufRead;

use recurrent::{translate, DecodeOptions, Seq2SeqCheckpoint};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = std::env::args().nth(1) else {
        return Err("usage: translate CHECKPOINT < sources.txt".into());
    };
    let checkpoint = Seq2SeqCheckpoint::load(path)?;
    let sources: Vec<String> = std::io::stdin().lock().lines().collect::<Result<_, _>>()?;
    let options = DecodeOptions {
        beam: 5,
        ..DecodeOptions::default()
    };
    for t in translate(&checkpoint, &sources, &options)? {
        println!("{}\t(log-probability {:.2})", t.text, t.hypothesis.log_prob);
    }
    Ok(())
}
