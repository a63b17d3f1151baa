//! `recurrent prepare`: tokenize a corpus once into memory-mapped token files
//! (a prepared data folder) for `recurrent train --data`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use recurrent::text::prepared::{
    prepare, Phase, PrepareOptions, PreparedData, PreparedError, Progress, Verify,
};
use recurrent::text::{TextError, TokenizerOptions, WordSegmentation};
use recurrent::TokenizerKind;

/// Arguments of `recurrent prepare`.
#[derive(Args, Debug)]
pub struct PrepareArgs {
    /// Text to tokenize: a file, or a folder of files (documents).
    #[arg(long, required_unless_present = "check")]
    input: Option<PathBuf>,
    /// The prepared data folder to write (train.bin, val.bin, vocab.json, manifest.json).
    #[arg(long, value_name = "DATA_DIR", required_unless_present = "check")]
    out: Option<PathBuf>,
    /// Check an existing prepared folder instead: every file's size and checksum
    /// and every token id against the vocabulary (reads the files once).
    #[arg(long, value_name = "DATA_DIR", conflicts_with_all = ["input", "out"])]
    check: Option<PathBuf>,
    /// Token level: char (Unicode scalar values), byte, word or bpe (byte-level BPE).
    #[arg(long, default_value = "char")]
    tokenizer: TokenizerKind,
    /// Word and BPE: the largest vocabulary, special tokens included
    /// [default: every word; BPE 1024].
    #[arg(long)]
    vocab_size: Option<usize>,
    /// Word: keep words seen at least this often; BPE: merge pairs seen at least this often.
    #[arg(long)]
    min_count: Option<usize>,
    /// Word: split on whitespace (as the PTB files) or on Unicode word boundaries.
    #[arg(long)]
    word_segmentation: Option<WordSegmentation>,
    /// Fraction of the tokens held out for validation, taken from the end
    /// (the split `train --input` makes).
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    /// Threads for tokenizing (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// Runs `recurrent prepare`.
pub fn run(args: PrepareArgs) -> Result<()> {
    let (input, out) = match (&args.check, &args.input, &args.out) {
        (Some(dir), _, _) => return check(dir),
        (None, Some(input), Some(out)) => (input.clone(), out.clone()),
        // clap requires both unless --check is given.
        _ => anyhow::bail!("--input and --out are required"),
    };
    let defaults = TokenizerOptions::default();
    let options = PrepareOptions {
        kind: args.tokenizer,
        tokenizer_options: TokenizerOptions {
            vocab_size: args.vocab_size,
            min_count: args.min_count.unwrap_or(defaults.min_count),
            word_segmentation: args.word_segmentation.unwrap_or(defaults.word_segmentation),
        },
        val_fraction: args.val_fraction,
        threads: args.threads,
        ..PrepareOptions::default()
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{msg:10} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let tokens_started: OnceLock<Instant> = OnceLock::new();
    let report = |p: Progress| {
        let message = match p.phase {
            Phase::Vocabulary => "vocabulary",
            Phase::Tokens => {
                if tokens_started.set(Instant::now()).is_ok() {
                    bar.reset();
                }
                "tokens"
            }
        };
        bar.set_length(p.bytes_total);
        bar.set_message(message);
        bar.set_position(p.bytes_done);
    };
    let manifest =
        prepare(&input, &out, &options, &report).map_err(|e| prepare_error(e, &args, &input));
    bar.finish_and_clear();
    let manifest = manifest?;
    let end = Instant::now();
    let secs = |from: Instant, to: Instant| to.duration_since(from).as_secs_f64().max(1e-9);
    let mb = manifest.input_bytes as f64 / 1e6;
    let val = manifest.val.as_ref().map_or(0, |v| v.tokens);
    let width = match manifest.token_width {
        recurrent::text::prepared::TokenWidth::U16 => 2,
        recurrent::text::prepared::TokenWidth::U32 => 4,
    };
    eprintln!(
        "prepared {} tokens ({} training, {} validation; {width} bytes each, vocabulary {}) \
         from {:.1} MB in {} document(s) into {}",
        manifest.train.tokens + val,
        manifest.train.tokens,
        val,
        manifest.tokenizer.vocab_size,
        mb,
        manifest.documents,
        out.display()
    );
    let total = secs(started, end);
    match tokens_started.get() {
        Some(&t) if args.tokenizer != TokenizerKind::Byte => eprintln!(
            "{total:.1}s, {:.1} MB/s overall: vocabulary {:.1}s ({:.1} MB/s), tokens {:.1}s ({:.1} MB/s)",
            mb / total,
            secs(started, t),
            mb / secs(started, t),
            secs(t, end),
            mb / secs(t, end)
        ),
        _ => eprintln!("{total:.1}s, {:.1} MB/s", mb / total),
    }
    eprintln!("train on it with: recurrent train --data {}", out.display());
    Ok(())
}

/// The library's error in the command line's words.
fn prepare_error(e: TextError, args: &PrepareArgs, input: &Path) -> anyhow::Error {
    match e {
        TextError::Prepared(PreparedError::InvalidSetting {
            field,
            value,
            expected,
        }) => anyhow::anyhow!(
            "--{} must be {expected}, got {value}",
            field.replace('_', "-")
        ),
        TextError::Prepared(PreparedError::TooFewTokens { tokens, .. }) => anyhow::anyhow!(
            "{} gives {tokens} token(s) with the {} tokenizer; at least 2 are needed",
            input.display(),
            args.tokenizer
        ),
        e => super::cli_error(recurrent::Error::from(e)),
    }
}

/// `--check DATA_DIR`: the full check of a prepared folder.
fn check(dir: &Path) -> Result<()> {
    let started = Instant::now();
    let data = PreparedData::open(dir, Verify::Full)
        .map_err(|e| super::cli_error(recurrent::Error::from(e)))?;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let files = std::iter::once(data.train()).chain(data.val());
    let bytes: u64 = files.map(|f| f.record().file.bytes).sum();
    eprintln!(
        "{}: {} training and {} validation tokens; sizes, checksums and ids check out \
         ({:.1}s, {:.0} MB/s)",
        dir.display(),
        data.train().len(),
        data.val().map_or(0, |v| v.len()),
        secs,
        bytes as f64 / 1e6 / secs
    );
    Ok(())
}
