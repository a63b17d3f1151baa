//! Training on a prepared data folder gives the same bits as training on the
//! text it was prepared from, resumes exactly, and refuses other data.

use std::fs;
use std::path::{Path, PathBuf};

use recurrent::lm::{Init, ResumeOptions, TextSource, TrainOptions, Training};
use recurrent::text::prepared::{prepare, PrepareOptions, PreparedError, TRAIN_FILE};
use recurrent::text::{TextError, TokenizerOptions};
use recurrent::train::{ResumeError, TrainError};
use recurrent::{Error, ModelConfig, Quiet, RunFolder, StopRule, TokenizerKind};

const TEXT: &str = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n\
    All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n";

fn options(input: TextSource, kind: TokenizerKind, steps: u64) -> TrainOptions {
    TrainOptions {
        input,
        tokenizer: kind,
        tokenizer_options: TokenizerOptions::default(),
        init: Init::Fresh {
            config: ModelConfig::new(recurrent::CellKind::Lstm, 0, 8, 24, 2),
            forget_bias: None,
        },
        stop: StopRule {
            steps: Some(steps),
            ..StopRule::default()
        },
        seq_len: 12,
        batch: 3,
        lr: 1e-2,
        eval_every: Some(5),
        reset_between_docs: true,
        threads: Some(1),
        ..TrainOptions::default()
    }
}

/// A folder of two documents and its prepared data folder.
fn corpus(dir: &Path, kind: TokenizerKind) -> (PathBuf, PathBuf) {
    let input = dir.join("corpus");
    fs::create_dir_all(&input).unwrap();
    fs::write(input.join("a.txt"), TEXT.repeat(6)).unwrap();
    fs::write(input.join("b.txt"), TEXT.repeat(3)).unwrap();
    let data = dir.join(format!("data-{kind}"));
    let prep = PrepareOptions {
        kind,
        threads: Some(2),
        block_bytes: 100,
        ..PrepareOptions::default()
    };
    prepare(&input, &data, &prep, &|_| {}).unwrap();
    (input, data)
}

fn train(dir: &Path, name: &str, options: &TrainOptions) -> Training {
    let mut t = Training::start(options, RunFolder::create(dir.join(name)).unwrap()).unwrap();
    t.run(&mut Quiet).unwrap();
    t
}

#[test]
fn prepared_data_trains_to_the_same_bits_as_its_text() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [TokenizerKind::Char, TokenizerKind::Word] {
        let (input, data) = corpus(dir.path(), kind);
        let text = train(
            dir.path(),
            &format!("text-{kind}"),
            &options(TextSource::Path(input), kind, 12),
        );
        let prepared = train(
            dir.path(),
            &format!("prepared-{kind}"),
            &options(TextSource::Prepared(data), kind, 12),
        );
        assert_eq!(text.tokenizer().vocab(), prepared.tokenizer().vocab());
        assert!(
            text.model().params == prepared.model().params,
            "{kind}: weights differ"
        );
        let (a, b) = (&text.trainer().state, &prepared.trainer().state);
        assert_eq!(a.progress.best_val_loss, b.progress.best_val_loss);
        assert_eq!(a.progress.history, b.progress.history);
        assert!(prepared.describe().contains("(prepared)"));
    }
}

#[test]
fn a_prepared_run_resumes_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (_, data) = corpus(dir.path(), TokenizerKind::Byte);
    let straight = train(
        dir.path(),
        "straight",
        &options(TextSource::Prepared(data.clone()), TokenizerKind::Byte, 14),
    );
    train(
        dir.path(),
        "halves",
        &options(TextSource::Prepared(data.clone()), TokenizerKind::Byte, 7),
    );
    let more = ResumeOptions {
        stop: Some(StopRule {
            steps: Some(14),
            ..StopRule::default()
        }),
        threads: Some(1),
        ..ResumeOptions::default()
    };
    let folder = RunFolder::open(dir.path().join("halves")).unwrap();
    let mut resumed = Training::resume(folder, &more).unwrap();
    resumed.run(&mut Quiet).unwrap();
    assert!(resumed.model().params == straight.model().params);
    // The same validations, besides the extra one that ended the first half.
    let (a, b) = (
        &resumed.trainer().state.progress.history,
        &straight.trainer().state.progress.history,
    );
    assert_eq!(
        a.iter().filter(|r| r.step != 7).collect::<Vec<_>>(),
        b.iter().collect::<Vec<_>>()
    );

    // Other tokens in the folder: the fingerprint (the manifest's checksum) differs.
    let other = dir.path().join("other");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("a.txt"), TEXT.repeat(5)).unwrap();
    fs::write(other.join("b.txt"), TEXT.repeat(4)).unwrap();
    let prep = PrepareOptions {
        kind: TokenizerKind::Byte,
        ..PrepareOptions::default()
    };
    prepare(&other, &data, &prep, &|_| {}).unwrap();
    let folder = RunFolder::open(dir.path().join("halves")).unwrap();
    let err = Training::resume(folder, &more)
        .err()
        .expect("the data changed");
    assert!(
        matches!(
            err,
            Error::Train(TrainError::Resume(ResumeError::DataChanged { .. }))
        ),
        "{err:?}"
    );
}

#[test]
fn a_damaged_or_mismatched_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, data) = corpus(dir.path(), TokenizerKind::Char);
    let run = train(
        dir.path(),
        "char",
        &options(TextSource::Prepared(data.clone()), TokenizerKind::Char, 2),
    );

    // Fine-tuning a char model on byte tokens: the tokenizers differ.
    let (_, bytes) = corpus(dir.path(), TokenizerKind::Byte);
    let from = TrainOptions {
        init: Init::From {
            path: run.folder().path().to_path_buf(),
            extend_vocab: false,
            dropout: None,
        },
        ..options(TextSource::Prepared(bytes), TokenizerKind::Char, 2)
    };
    let err = Training::start(&from, RunFolder::create(dir.path().join("ft")).unwrap())
        .err()
        .expect("another tokenizer");
    assert!(
        matches!(
            err,
            Error::Text(TextError::Prepared(PreparedError::TokenizerMismatch { .. }))
        ),
        "{err:?}"
    );

    // A truncated token file.
    let path = data.join(TRAIN_FILE);
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let opts = options(TextSource::Prepared(data), TokenizerKind::Char, 2);
    let err = Training::start(&opts, RunFolder::create(dir.path().join("t")).unwrap())
        .err()
        .expect("truncated");
    assert!(err.to_string().contains("truncated"), "{err}");
}
