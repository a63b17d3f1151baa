//! Writes an example loss curve and attention heatmap, to look at:
//!
//! ```text
//! cargo run -p recurrent-report --example plots -- /tmp/plots
//! rsvg-convert /tmp/plots/loss.svg -o /tmp/plots/loss.png
//! ```

use std::path::PathBuf;

use recurrent_report::{attention_heatmap_svg, loss_curve_svg, Series};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    std::fs::create_dir_all(&dir)?;

    // A made-up run: training loss falls with noise, validation every 500 steps.
    let train: Vec<(f64, f64)> = (0..=60)
        .map(|i| {
            let step = i as f64 * 100.0;
            let noise = 0.05 * ((i * 7919) % 13) as f64 / 13.0;
            let loss = if i == 33 {
                f64::NAN
            } else {
                1.2 + 3.0 * (-step / 1500.0).exp() + noise
            };
            (step, loss)
        })
        .collect();
    let valid: Vec<(f64, f64)> = (0..=12)
        .map(|i| {
            let step = i as f64 * 500.0;
            (step, 1.35 + 2.9 * (-step / 1600.0).exp())
        })
        .collect();
    let series = [
        Series::new("train", train),
        Series::new("validation <held-out & \"5%\">", valid),
    ];
    let svg = loss_curve_svg(
        &series,
        "LSTM 2x512 on eng-fra",
        "step",
        "loss (nats/token)",
    );
    std::fs::write(dir.join("loss.svg"), svg)?;

    let src: Vec<String> = ["I", "don't", "think", "so", ".", "<eos>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let tgt: Vec<String> = ["Je", "ne", "pense", "pas", "\u{202f}", "«&»", "."]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut weights = Vec::new();
    for t in 0..tgt.len() {
        // Mostly diagonal, softmax-like rows.
        let center = t as f64 * (src.len() - 1) as f64 / (tgt.len() - 1) as f64;
        let row: Vec<f64> = (0..src.len())
            .map(|s| (-(s as f64 - center).powi(2) / 0.6).exp())
            .collect();
        let sum: f64 = row.iter().sum();
        weights.extend(row.iter().map(|w| (w / sum) as f32));
    }
    let svg = attention_heatmap_svg(&src, &tgt, &weights)?;
    std::fs::write(dir.join("attention.svg"), svg)?;

    // Long sentence with long tokens, to see the labels turn.
    let src: Vec<String> = (0..30).map(|i| format!("source_token_{i}")).collect();
    let tgt: Vec<String> = (0..25).map(|i| format!("cible{i}")).collect();
    let weights: Vec<f32> = (0..src.len() * tgt.len())
        .map(|k| {
            let (t, s) = (k / src.len(), k % src.len());
            1.0 / (1.0 + (s as f32 - t as f32 * 1.2).abs())
        })
        .collect();
    let svg = attention_heatmap_svg(&src, &tgt, &weights)?;
    std::fs::write(dir.join("attention_long.svg"), svg)?;
    println!(
        "wrote loss.svg, attention.svg and attention_long.svg to {}",
        dir.display()
    );
    Ok(())
}
