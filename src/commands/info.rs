//! `recurrent info`: what a checkpoint is and how it was trained.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use recurrent::checkpoint::lm;

/// Arguments of `recurrent info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Checkpoint folder, or a run folder (its best/ checkpoint is used).
    checkpoint: PathBuf,
}

pub fn run(args: InfoArgs) -> Result<()> {
    let saved = lm::load(&args.checkpoint)?;
    let c = &saved.model.config;
    let v = saved.tokenizer.vocab();
    println!("checkpoint   {}", saved.path.display());
    println!(
        "model        {} layers x {} {} units, embedding {}{}{}, dropout {}",
        c.layers,
        c.widths_label(),
        c.cell,
        if c.embed == 0 {
            "one-hot".to_string()
        } else {
            c.embed.to_string()
        },
        if c.dense > 0 {
            format!(", dense {}", c.dense)
        } else {
            String::new()
        },
        if c.tie { ", tied" } else { "" },
        c.dropout
    );
    println!("parameters   {}", saved.model.num_params());
    let preview: String = v
        .tokens()
        .iter()
        .take(40)
        .map(|t| format!("{t:?}"))
        .collect::<Vec<_>>()
        .join(" ");
    println!(
        "vocabulary   {} {} tokens: {preview}{}",
        v.len(),
        saved.tokenizer.kind(),
        if v.len() > 40 { " ..." } else { "" }
    );
    for name in saved
        .model
        .layout
        .entries
        .iter()
        .map(|e| format!("{} {:?}", e.name, e.shape))
    {
        println!("  {name}");
    }
    let Some(resume) = &saved.resume else {
        println!("training     (no trainer state)");
        return Ok(());
    };
    let t = &resume.trainer_state["trainer"];
    let cfg = &t["config"];
    println!(
        "training     step {}, epoch {}, {:.0}s; batch {} x seq-len {}, optimizer {} lr {}",
        t["step"],
        t["epoch"],
        t["elapsed_secs"].as_f64().unwrap_or(0.0),
        cfg["batch"],
        cfg["seq_len"],
        cfg["optimizer"]["kind"].as_str().unwrap_or("?"),
        cfg["lr"]
            .as_f64()
            .map_or("?".into(), |lr| format!("{}", lr as f32))
    );
    if let Some(best) = t["best_val_loss"].as_f64() {
        println!(
            "best val     {best:.4} nats/token ({:.4} bits/token, perplexity {:.2})",
            best / std::f64::consts::LN_2,
            best.exp()
        );
    }
    if let Some(history) = t["history"].as_array() {
        println!("history      (step, epoch, validation loss, accuracy)");
        for h in history.iter().rev().take(10).rev() {
            println!(
                "  {:>8} {:>5} {:.4} {:.1}%",
                h["step"],
                h["epoch"],
                h["loss"].as_f64().unwrap_or(f64::NAN),
                100.0 * h["accuracy"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    Ok(())
}
