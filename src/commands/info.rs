//! `recurrent info`: what a checkpoint is and how it was trained.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use recurrent::model::seq2seq::Seq2SeqConfig;
use recurrent::model::ModelConfig;
use recurrent::{
    AnyCheckpoint, CheckpointSummary, ModelDescription, TrainingSummary, VocabularyPreview,
    VocabularyRole,
};

/// Arguments of `recurrent info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Checkpoint folder, or a run folder (its best/ checkpoint is used);
    /// a language model or a seq2seq model.
    checkpoint: PathBuf,
}

pub fn run(args: InfoArgs) -> Result<()> {
    let summary = AnyCheckpoint::load(&args.checkpoint)
        .and_then(|c| c.summary())
        .map_err(super::cli_error)?;
    print!("{}", render(&summary));
    Ok(())
}

/// The summary as `info` prints it, one labelled line per part.
fn render(s: &CheckpointSummary) -> String {
    let mut out = format!("checkpoint   {}\n", s.path.display());
    out += &match &s.model {
        ModelDescription::Language(c) => language_model(c),
        ModelDescription::Seq2Seq(c) => seq2seq(c),
    };
    out += &format!("parameters   {}\n", s.parameters);
    for v in &s.vocabularies {
        out += &vocabulary(v);
    }
    for t in &s.tensors {
        out += &format!("  {} {:?}\n", t.name, t.shape);
    }
    match &s.training {
        Some(t) => out += &training(t),
        None => out += "training     (no trainer state)\n",
    }
    out
}

fn language_model(c: &ModelConfig) -> String {
    format!(
        "model        {} layers x {} {} units, embedding {}{}{}, dropout {}\n",
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
    )
}

fn seq2seq(c: &Seq2SeqConfig) -> String {
    let mut extras = String::new();
    if c.bidirectional {
        extras += ", bidirectional encoder";
    }
    if c.input_feeding {
        extras += ", input feeding";
    }
    if c.tie {
        extras += ", tied";
    }
    if c.share_embeddings {
        extras += ", shared embeddings";
    }
    format!(
        "model        seq2seq: {} layers x {} {} units, {} attention, {} bridge, embedding {}{extras}, dropout {}\n",
        c.layers,
        c.hidden,
        c.cell,
        c.attention.name(),
        c.bridge.name(),
        c.embed,
        c.dropout
    )
}

fn vocabulary(v: &VocabularyPreview) -> String {
    let label = match v.role {
        VocabularyRole::Text => "vocabulary  ",
        VocabularyRole::Source => "source vocab",
        VocabularyRole::Target => "target vocab",
        VocabularyRole::Shared => "vocabulary  ",
    };
    let preview: Vec<String> = v.first.iter().map(|t| format!("{t:?}")).collect();
    format!(
        "{label} {} {} tokens{}: {}{}\n",
        v.size,
        v.kind,
        if v.role == VocabularyRole::Shared {
            " (source and target)"
        } else {
            ""
        },
        preview.join(" "),
        if v.size > v.first.len() { " ..." } else { "" }
    )
}

fn training(t: &TrainingSummary) -> String {
    let batch = match t.seq_len {
        Some(seq_len) => format!("batch {} x seq-len {seq_len}", t.batch),
        None => format!("batch {} pairs", t.batch),
    };
    let mut out = format!(
        "training     step {}, epoch {}, {:.0}s; {batch}, optimizer {} lr {}\n",
        t.step, t.epoch, t.elapsed_secs, t.optimizer, t.lr
    );
    if let Some(best) = t.best_val_loss {
        out += &format!(
            "best val     {best:.4} nats/token ({:.4} bits/token, perplexity {:.2})\n",
            best / std::f64::consts::LN_2,
            best.exp()
        );
    }
    out += "history      (step, epoch, validation loss, accuracy)\n";
    for h in &t.recent_history {
        // Unpadded, as this table has always been printed.
        out += &format!(
            "  {} {} {:.4} {:.1}%\n",
            h.step,
            h.epoch,
            h.loss,
            100.0 * h.accuracy
        );
    }
    out
}
