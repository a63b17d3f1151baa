//! Bounded resources: sizes that cannot fit are refused before anything is
//! allocated, translation is bounded by what training saw, evaluation
//! settings of zero are refused, and metrics that are not records are not
//! drawn.

use std::path::Path;

use recurrent::lm::{Init, TextSource, TrainOptions, Training};
use recurrent::seq2seq::{self, TrainOptions as PairOptions};
use recurrent::text::TokenizerOptions;
use recurrent::{
    evaluate_text, translate, CellKind, DecodeOptions, Error, EvalOptions, LanguageCheckpoint,
    ModelConfig, Quiet, RunFolder, Seq2SeqCheckpoint, StopRule, TokenizerKind,
};

fn options(config: ModelConfig) -> TrainOptions {
    TrainOptions {
        input: TextSource::text("cat", "the cat sat on the mat. ".repeat(60)),
        init: Init::Fresh {
            config,
            forget_bias: None,
        },
        stop: StopRule {
            steps: Some(2),
            ..StopRule::default()
        },
        seq_len: 16,
        batch: 4,
        threads: Some(1),
        ..TrainOptions::default()
    }
}

#[test]
fn a_run_that_cannot_fit_is_refused_with_the_memory_needed_and_available() {
    // 3.1e9 weights (below the model's cap of 2^32) with Adam, and blocks of
    // a million steps x streams of 16000-wide layers: 46 GiB of weights,
    // gradients and moments, and 835 GiB of activations.
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(ModelConfig::new(CellKind::Lstm, 0, 64, 16_000, 2));
    o.input = TextSource::text("cat", "the cat sat on the mat. ".repeat(50_000));
    (o.batch, o.seq_len) = (1000, 1000);
    let run = dir.path().join("run");
    let err = Training::start(&o, RunFolder::create(&run).unwrap())
        .err()
        .expect("the run cannot fit");
    assert!(matches!(err, Error::Memory(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("this run needs at least 880.6 GiB"),
        "{text}"
    );
    assert!(
        text.contains("GiB of memory (activations of a block"),
        "{text}"
    );
    assert!(text.contains("is available ("), "{text}");
    assert!(!run.exists(), "a refused run leaves no folder");
    // Beyond the model's parameter cap, the model's own error comes first.
    let deep = options(ModelConfig::new(CellKind::Lstm, 0, 64, 128, 1_000_000));
    let err = Training::start(&deep, RunFolder::create(&run).unwrap())
        .err()
        .expect("a million layers are refused");
    assert!(err.to_string().contains("parameters"), "{err}");
}

#[test]
fn an_absurd_bpe_vocabulary_is_capped_not_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(ModelConfig::new(CellKind::Gru, 0, 8, 8, 1));
    o.input = TextSource::text("cat", "the cat sat on the mat. ".repeat(300));
    o.tokenizer = TokenizerKind::Bpe;
    o.tokenizer_options = TokenizerOptions {
        vocab_size: Some(4_000_000_000),
        ..TokenizerOptions::default()
    };
    let mut training = Training::start(&o, RunFolder::create(dir.path().join("r")).unwrap())
        .expect("the vocabulary is capped at what the text can produce");
    assert!(training.tokenizer().vocab().len() < 1000);
    training.run(&mut Quiet).unwrap();
}

#[test]
fn evaluation_with_no_streams_or_no_steps_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut training = Training::start(
        &options(ModelConfig::new(CellKind::Gru, 0, 8, 8, 1)),
        RunFolder::create(dir.path().join("r")).unwrap(),
    )
    .unwrap();
    training.run(&mut Quiet).unwrap();
    let saved = LanguageCheckpoint::load(dir.path().join("r")).unwrap();
    for (batch, seq_len, field) in [(0, 100, "batch"), (1, 0, "seq_len")] {
        let o = EvalOptions {
            batch,
            seq_len,
            ..EvalOptions::default()
        };
        let err = evaluate_text(&saved, "the cat sat", &o).unwrap_err();
        match err {
            Error::InvalidOption { field: f, .. } => assert_eq!(f, field),
            e => panic!("{e:?}"),
        }
    }
}

/// A tiny reversal task: sources of 3 to 8 letters.
fn train_seq2seq(dir: &Path) -> Seq2SeqCheckpoint {
    let mut text = String::new();
    for i in 0..120usize {
        let word: String = (0..3 + i % 6)
            .map(|k| (b'a' + ((i * 7 + k * 3) % 26) as u8) as char)
            .collect();
        let reversed: String = word.chars().rev().collect();
        text.push_str(&format!("{word}\t{reversed}\n"));
    }
    let pairs = dir.join("pairs.tsv");
    std::fs::write(&pairs, text).unwrap();
    let mut o = PairOptions::new(&pairs);
    o.tokenizer = TokenizerKind::Char;
    o.max_tokens = 10;
    o.model.embed = 8;
    o.model.hidden = 8;
    o.model.layers = 1;
    o.batch = 8;
    o.val_bleu = 0;
    o.threads = Some(1);
    o.stop = StopRule {
        steps: Some(2),
        ..StopRule::default()
    };
    let run = dir.join("s2s");
    let mut training = seq2seq::Training::start(&o, RunFolder::create(&run).unwrap()).unwrap();
    training.run(&mut Quiet).unwrap();
    Seq2SeqCheckpoint::load(&run).unwrap()
}

#[test]
fn a_source_far_longer_than_training_saw_is_an_error_not_minutes_of_work() {
    let dir = tempfile::tempdir().unwrap();
    let saved = train_seq2seq(dir.path());
    assert_eq!(saved.trained_source_tokens(), Some(10));
    assert_eq!(saved.max_source_tokens(), 40);
    let options = DecodeOptions {
        threads: Some(1),
        ..DecodeOptions::default()
    };
    let ok = translate(&saved, &["abc".into(), "a".repeat(40)], &options).unwrap();
    assert_eq!(ok.len(), 2);
    // Outputs stay within 2 x source + 10 tokens.
    assert!(ok[1].hypothesis.tokens.len() <= 90);
    let long = "abcdefgh".repeat(5_000);
    let err = translate(&saved, &["abc".into(), long], &options).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("source line 2 has 40000 source tokens, more than the 40 this model translates (4 times the 10 tokens"),
        "{text}"
    );
    let err =
        recurrent::score_pairs(&saved, &[("a".repeat(41), "x".into())], &options).unwrap_err();
    assert!(
        err.to_string().starts_with("pair 1 has 41 source tokens"),
        "{err}"
    );
}

#[test]
fn garbage_metrics_are_not_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let folder = RunFolder::at(dir.path());
    std::fs::write(folder.metrics_path(), "garbage\n").unwrap();
    let err = folder.plot_metrics(None).unwrap_err();
    assert!(matches!(err, Error::Metrics(_)), "{err:?}");
    assert!(err.to_string().contains("metrics.jsonl, line 1"), "{err}");
    assert!(!folder.loss_plot_path().exists(), "nothing is written");
}
