//! `recurrent inspect`: one self-contained HTML page showing what a language
//! model does on a text (surprisal, next-token guesses, hidden units, gates).

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use recurrent::inspect::MAX_INSPECT_CHARS;
use recurrent::{inspect, Error, InspectOptions, LanguageCheckpoint};

/// Arguments of `recurrent inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Checkpoint folder, or a run folder (its best/ checkpoint is used).
    checkpoint: PathBuf,
    /// The text to look at, from a file.
    #[arg(long, conflicts_with = "text", required_unless_present = "text")]
    input: Option<PathBuf>,
    /// The text to look at, given inline.
    #[arg(long)]
    text: Option<String>,
    /// Where to write the HTML page.
    #[arg(long, default_value = "view.html")]
    out: PathBuf,
    /// The longest text accepted, in characters (at most 20000).
    #[arg(long, default_value_t = InspectOptions::default().max_chars)]
    max_chars: usize,
    /// Threads for the kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let saved = LanguageCheckpoint::load(&args.checkpoint).map_err(super::cli_error)?;
    let text = match (&args.text, &args.input) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the text {}", path.display()))?,
        (None, None) => unreachable!("clap requires --input or --text"),
    };
    let options = InspectOptions {
        max_chars: args.max_chars,
        threads: args.threads,
        ..InspectOptions::default()
    };
    let view = inspect(&saved, &text, &options).map_err(|e| inspect_error(e, &args))?;
    let title = format!("{} on {}", args.checkpoint.display(), source_name(&args));
    std::fs::write(&args.out, view.to_html(&title))
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "wrote {} ({} tokens, {} layers{})",
        args.out.display(),
        view.tokens.len(),
        view.layers.len(),
        view.model
            .bits_per_token
            .map(|b| format!(", {b:.3} bits per token"))
            .unwrap_or_default()
    );
    Ok(())
}

/// What the text is called in the page's title.
fn source_name(args: &InspectArgs) -> String {
    match &args.input {
        Some(path) => path.display().to_string(),
        None => "the given text".to_string(),
    }
}

/// The library's errors about the text, in the command line's words.
fn inspect_error(e: Error, args: &InspectArgs) -> anyhow::Error {
    let what = match &args.input {
        Some(path) => path.display().to_string(),
        None => "--text".to_string(),
    };
    match e {
        Error::UnknownChars { path, count, shown } => anyhow!(
            "{what} has {count} character(s) that {} does not know: {shown}",
            path.display()
        ),
        Error::InvalidOption {
            field: "text",
            value,
            expected,
        } => {
            if value == "an empty text" {
                anyhow!("{what} is empty: there is nothing to inspect")
            } else {
                anyhow!(
                    "{what} has {value}; inspect takes {}",
                    expected.replace(
                        "`max_chars`",
                        &format!("raise --max-chars, up to {MAX_INSPECT_CHARS}")
                    )
                )
            }
        }
        e => super::cli_error(e),
    }
}
