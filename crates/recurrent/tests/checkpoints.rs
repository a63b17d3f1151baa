//! Checkpoint summaries of both model kinds, and language-model weights out
//! to PyTorch's format and back.

use std::path::Path;

use recurrent::checkpoint::CheckpointError;
use recurrent::lm::{TextSource, TrainOptions, Training};
use recurrent::{
    export_pytorch, import_pytorch, AnyCheckpoint, Error, LanguageCheckpoint, ModelDescription,
    OptimizerKind, PytorchWeights, Quiet, RunFolder, StopRule, VocabularyRole, PREVIEW_TOKENS,
    RECENT_VALIDATIONS,
};

fn lm_options(steps: u64) -> TrainOptions {
    TrainOptions {
        input: TextSource::text("cat", "the cat sat on the mat. ".repeat(60)),
        stop: StopRule {
            steps: Some(steps),
            ..StopRule::default()
        },
        seq_len: 16,
        batch: 4,
        lr: 1e-2,
        eval_every: Some(1),
        threads: Some(1),
        ..TrainOptions::default()
    }
}

/// Trains a small language model into `dir/name` and returns the training.
fn train_lm(dir: &Path, name: &str, options: &TrainOptions) -> Training {
    let folder = RunFolder::create(dir.join(name)).unwrap();
    let mut t = Training::start(options, folder).unwrap();
    t.run(&mut Quiet).unwrap();
    t
}

#[test]
fn a_language_model_summary_says_what_the_run_did() {
    let dir = tempfile::tempdir().unwrap();
    // A validation per step: more than the summary keeps.
    let steps = RECENT_VALIDATIONS as u64 + 3;
    let t = train_lm(dir.path(), "run", &lm_options(steps));
    let checkpoint = AnyCheckpoint::load(t.folder().path()).unwrap();
    let summary = checkpoint.summary().unwrap();
    assert_eq!(summary.path, t.folder().best_dir());
    let model = t.model();
    assert_eq!(
        summary.model,
        ModelDescription::Language(model.config.clone())
    );
    assert_eq!(summary.parameters, model.num_params());
    let names: Vec<&str> = summary.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names[0], "encoder.weight");
    assert_eq!(summary.tensors.len(), model.layout.entries.len());
    assert_eq!(
        summary.tensors[0].shape,
        vec![model.config.vocab_size, model.config.embed]
    );

    let [vocab] = &summary.vocabularies[..] else {
        panic!("{:?}", summary.vocabularies)
    };
    assert_eq!(vocab.role, VocabularyRole::Text);
    assert_eq!(vocab.size, t.tokenizer().vocab().len());
    assert_eq!(vocab.first, t.tokenizer().vocab().tokens());
    assert!(vocab.first.len() <= PREVIEW_TOKENS);

    let training = summary.training.unwrap();
    let progress = &t.trainer().state.progress;
    assert_eq!((training.step, training.epoch), (steps, progress.epoch));
    assert_eq!(
        (training.batch, training.seq_len, training.lr),
        (4, Some(16), 1e-2)
    );
    assert_eq!(training.optimizer, OptimizerKind::Adam);
    assert_eq!(training.best_val_loss, progress.best_val_loss);
    // best/ was saved at the best validation; its history ends there.
    let best_step = training.recent_history.last().unwrap().step;
    let upto: Vec<_> = progress
        .history
        .iter()
        .filter(|h| h.step <= best_step)
        .cloned()
        .collect();
    let tail = &upto[upto.len().saturating_sub(RECENT_VALIDATIONS)..];
    assert_eq!(training.recent_history, tail);

    // last/ holds the whole run.
    let last = LanguageCheckpoint::load(t.folder().last_dir())
        .unwrap()
        .summary()
        .unwrap()
        .training
        .unwrap();
    assert_eq!(last.step, steps);
    let h = &progress.history;
    assert_eq!(last.recent_history, h[h.len() - RECENT_VALIDATIONS..]);
}

/// Writes `n` digit-reversal pairs (`3 1 4<TAB>4 1 3`) to `path`.
fn write_reversal_pairs(path: &Path, n: usize) {
    let mut x: u64 = 7;
    let mut out = String::new();
    for _ in 0..n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = 1 + (x >> 60) as usize % 5;
        let digits: Vec<String> = (0..len)
            .map(|k| ((x >> (8 * k + 8)) % 10).to_string())
            .collect();
        let reversed: Vec<String> = digits.iter().rev().cloned().collect();
        out += &format!("{}\t{}\n", digits.join(" "), reversed.join(" "));
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn a_seq2seq_summary_has_both_vocabularies_and_no_block_length() {
    use recurrent::seq2seq::{TrainOptions, Training};
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.tsv");
    write_reversal_pairs(&pairs, 200);
    let mut options = TrainOptions::new(&pairs);
    options.tokenizer = recurrent::TokenizerKind::Char;
    options.model = recurrent::Seq2SeqConfig::new(0, 0, 8, 16);
    options.batch = 8;
    options.stop.steps = Some(6);
    options.eval_every = Some(3);
    options.val_bleu = 0;
    options.threads = Some(1);
    let folder = RunFolder::create(dir.path().join("run")).unwrap();
    let mut t = Training::start(&options, folder.clone()).unwrap();
    t.run(&mut Quiet).unwrap();

    let summary = AnyCheckpoint::load(folder.last_dir())
        .unwrap()
        .summary()
        .unwrap();
    let ModelDescription::Seq2Seq(config) = &summary.model else {
        panic!("{:?}", summary.model)
    };
    assert_eq!(config, &t.trainer().model.config);
    assert_eq!(summary.parameters, t.trainer().model.num_params());
    let roles: Vec<VocabularyRole> = summary.vocabularies.iter().map(|v| v.role).collect();
    assert_eq!(roles, [VocabularyRole::Source, VocabularyRole::Target]);
    assert_eq!(
        summary.vocabularies[0].size,
        t.tokenizers().source.vocab().len()
    );
    assert!(summary
        .tensors
        .iter()
        .any(|t| t.name.starts_with("decoder.attention")));
    let training = summary.training.unwrap();
    assert_eq!(
        (training.step, training.batch, training.seq_len),
        (6, 8, None)
    );
    assert_eq!(training.recent_history, t.trainer().state.progress.history);
}

#[test]
fn weights_go_to_pytorch_and_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = lm_options(3);
    if let recurrent::lm::Init::Fresh { config, .. } = &mut options.init {
        config.tie = true;
        config.hidden = config.embed;
    }
    let t = train_lm(dir.path(), "run", &options);
    let trained = LanguageCheckpoint::load(t.folder().best_dir()).unwrap();
    let weights = dir.path().join("w.safetensors");
    // A tied model lists decoder.weight too, as state_dict() does.
    let written = export_pytorch(&trained, &weights).unwrap();
    assert_eq!(written, trained.model.layout.entries.len() + 1);

    let source = PytorchWeights {
        weights: weights.clone(),
        vocab: trained.path.join("vocab.json"),
        cell: trained.model.config.cell,
        tokenizer: trained.tokenizer.kind(),
    };
    let out = dir.path().join("imported");
    let imported = import_pytorch(&source, &out).unwrap();
    assert_eq!(imported.path, out);
    assert!(imported.model.params == trained.model.params);
    assert!(imported.model.config.tie);
    assert_eq!(imported.tokenizer.vocab(), trained.tokenizer.vocab());
    // The folder written is a checkpoint that loads, without trainer state.
    let summary = AnyCheckpoint::load(&out).unwrap().summary().unwrap();
    assert_eq!(summary.parameters, trained.model.num_params());
    assert!(summary.training.is_none());

    // The wrong cell is found from the shapes, and named.
    let gru = PytorchWeights {
        cell: recurrent::CellKind::Gru,
        ..source
    };
    let err = import_pytorch(&gru, dir.path().join("gru")).err().unwrap();
    assert!(
        matches!(&err, Error::Checkpoint(CheckpointError::WrongCell { path, .. }) if *path == weights),
        "{err}"
    );
    assert!(!dir.path().join("gru").exists());
}

#[test]
fn a_model_pytorch_cannot_express_is_not_exported() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = lm_options(2);
    if let recurrent::lm::Init::Fresh { config, .. } = &mut options.init {
        config.layer_norm = true;
    }
    let t = train_lm(dir.path(), "run", &options);
    let checkpoint = LanguageCheckpoint::load(t.folder().path()).unwrap();
    let out = dir.path().join("w.safetensors");
    let err = export_pytorch(&checkpoint, &out).err().unwrap();
    assert!(
        matches!(&err, Error::Checkpoint(CheckpointError::Mismatch { reason, .. }) if reason.contains("layer-normalized")),
        "{err}"
    );
    assert!(!out.exists());
}
