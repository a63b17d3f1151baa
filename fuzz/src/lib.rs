//! What the fuzz targets share: a tiny trained checkpoint, made once per
//! process in a scratch folder (under /dev/shm when it exists: the targets
//! rewrite files on every input).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use recurrent::lm::{Init, TextSource, TrainOptions, Training};
use recurrent::{CellKind, ModelConfig, Quiet, RunFolder, StopRule, TokenizerKind, TokenizerOptions};

/// A scratch folder of this process.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new("/dev/shm");
        let base = if base.is_dir() { base.to_path_buf() } else { std::env::temp_dir() };
        let dir = base.join(format!("recurrent-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        dir
    })
}

/// A run trained for two steps: `bpe` picks a BPE tokenizer (its checkpoint
/// has tokenizer.json) over a character one.
pub fn tiny_run(bpe: bool) -> PathBuf {
    let run = scratch().join(if bpe { "bpe-run" } else { "char-run" });
    let (tokenizer, vocab_size) = if bpe {
        (TokenizerKind::Bpe, Some(280))
    } else {
        (TokenizerKind::Char, None)
    };
    let options = TrainOptions {
        input: TextSource::text("tiny", "the cat sat on the mat. (a dog) ran.\n".repeat(30)),
        tokenizer,
        tokenizer_options: TokenizerOptions {
            vocab_size,
            ..TokenizerOptions::default()
        },
        init: Init::Fresh {
            config: ModelConfig::new(CellKind::Lstm, 0, 6, 8, 1),
            forget_bias: None,
        },
        stop: StopRule {
            steps: Some(2),
            ..StopRule::default()
        },
        seq_len: 8,
        batch: 2,
        threads: Some(1),
        ..TrainOptions::default()
    };
    let folder = RunFolder::create(&run).expect("a run folder");
    Training::start(&options, folder)
        .and_then(|mut t| t.run(&mut Quiet))
        .expect("the tiny run trains");
    run
}

/// A prepared data folder (`recurrent prepare`) of a small text: `bpe` picks
/// a BPE tokenizer (tokenizer.json) over a character one (vocab.json).
pub fn tiny_prepared(bpe: bool) -> PathBuf {
    use recurrent::text::prepared::{prepare, PrepareOptions};
    let name = if bpe { "bpe-data" } else { "char-data" };
    let out = scratch().join(name);
    let text = scratch().join(format!("{name}.txt"));
    std::fs::write(&text, "the cat sat on the mat. (a dog) ran.\n".repeat(40)).expect("a text");
    let options = PrepareOptions {
        kind: if bpe { TokenizerKind::Bpe } else { TokenizerKind::Char },
        tokenizer_options: TokenizerOptions {
            vocab_size: bpe.then_some(280),
            ..TokenizerOptions::default()
        },
        threads: Some(1),
        ..PrepareOptions::default()
    };
    prepare(&text, &out, &options, &|_| {}).expect("the tiny text prepares");
    out
}
