//! A language model with its tokenizer as a checkpoint folder, and back.

use std::path::{Path, PathBuf};

use recurrent_model::{LanguageModel, ModelConfig};
use recurrent_text::{Tokenizer, TokenizerKind, Vocab, WordSegmentation};
use serde::{Deserialize, Serialize};

use crate::error::ModelKind;
use crate::layout::{CONFIG_FILE, VOCAB_FILE};
use crate::{Checkpoint, CheckpointError, Tensor};

/// The `format` field of config.json.
pub const FORMAT: &str = "recurrent-lm";
/// The config.json layout version this build writes and reads.
pub const VERSION: u32 = 1;

/// config.json: what the weights are and how text becomes token ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LmConfigFile {
    /// Always [`FORMAT`]; tells a language model from a seq2seq checkpoint.
    pub format: String,
    /// The layout version, at most [`VERSION`] for this build to read it.
    pub version: u32,
    /// Which tokenizer the vocabulary belongs to.
    pub tokenizer: TokenizerKind,
    /// How a word tokenizer splits text (word models only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_segmentation: Option<WordSegmentation>,
    /// The architecture.
    pub model: ModelConfig,
}

/// Optimizer buffers and trainer state, present in checkpoints that can resume.
#[derive(Clone, Debug, PartialEq)]
pub struct ResumeState {
    /// Each optimizer buffer by name, flat (optimizer.safetensors).
    pub optimizer: Vec<(String, Vec<f32>)>,
    /// The trainer's progress, as the trainer wrote it (trainer_state.json).
    pub trainer_state: serde_json::Value,
}

impl ResumeState {
    /// The optimizer buffers as flat tensors for optimizer.safetensors.
    pub(crate) fn optimizer_tensors(&self) -> Vec<Tensor> {
        self.optimizer
            .iter()
            .map(|(name, data)| Tensor {
                name: name.clone(),
                shape: vec![data.len()],
                data: data.clone(),
            })
            .collect()
    }

    /// The resume state of a loaded folder: present only when both files are.
    pub(crate) fn from_files(
        optimizer: Option<Vec<Tensor>>,
        trainer_state: Option<serde_json::Value>,
    ) -> Option<ResumeState> {
        match (optimizer, trainer_state) {
            (Some(opt), Some(state)) => Some(ResumeState {
                optimizer: opt.into_iter().map(|t| (t.name, t.data)).collect(),
                trainer_state: state,
            }),
            _ => None,
        }
    }
}

/// A model's `(name, shape, data)` tensors as safetensors [`Tensor`]s.
pub(crate) fn named_tensors(tensors: Vec<(String, Vec<usize>, Vec<f32>)>) -> Vec<Tensor> {
    tensors
        .into_iter()
        .map(|(name, shape, data)| Tensor { name, shape, data })
        .collect()
}

/// The reverse of [`named_tensors`].
pub(crate) fn unnamed(tensors: Vec<Tensor>) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    tensors
        .into_iter()
        .map(|t| (t.name, t.shape, t.data))
        .collect()
}

/// Rebuilds a tokenizer from its kind and its vocabulary file (and, for BPE,
/// its tokenizer.json) in the checkpoint folder `dir`. `side` prefixes the file
/// names in messages ("" or "target_"), so an error names the file at fault.
pub(crate) fn restore_tokenizer(
    dir: &Path,
    kind: TokenizerKind,
    word_segmentation: Option<WordSegmentation>,
    vocab: Vocab,
    tokenizer_json: Option<&str>,
    side: &str,
) -> Result<Tokenizer, CheckpointError> {
    let failed = |file: &str| {
        let file = format!("{side}{file}");
        move |source| CheckpointError::Tokenizer {
            path: dir.to_path_buf(),
            file,
            source,
        }
    };
    let mismatch = |reason: String| CheckpointError::Mismatch {
        path: dir.to_path_buf(),
        reason,
    };
    match kind {
        TokenizerKind::Bpe => {
            let json = tokenizer_json.ok_or_else(|| {
                mismatch(format!(
                    "a BPE model needs {side}tokenizer.json, which is missing"
                ))
            })?;
            let t = Tokenizer::from_tokenizer_json(json).map_err(failed("tokenizer.json"))?;
            if t.vocab() != &vocab {
                return Err(mismatch(format!(
                    "{side}tokenizer.json and {side}vocab.json disagree"
                )));
            }
            Ok(t)
        }
        TokenizerKind::Word => {
            Tokenizer::from_word_vocab(vocab, word_segmentation.unwrap_or_default())
                .map_err(failed("vocab.json"))
        }
        kind => Tokenizer::from_vocab(kind, vocab).map_err(failed("vocab.json")),
    }
}

/// A vocabulary from the token list of `file` in the checkpoint folder `dir`.
pub(crate) fn restore_vocab(
    dir: &Path,
    tokens: Vec<String>,
    file: &str,
) -> Result<Vocab, CheckpointError> {
    Vocab::from_tokens(tokens).map_err(|source| CheckpointError::Tokenizer {
        path: dir.to_path_buf(),
        file: file.to_string(),
        source,
    })
}

/// Refuses to save a tokenizer of `tokens` tokens with a model of `model_vocab`.
pub(crate) fn check_vocab_size(
    dir: &Path,
    which: &'static str,
    tokens: usize,
    model_vocab: usize,
) -> Result<(), CheckpointError> {
    if tokens == model_vocab {
        return Ok(());
    }
    Err(CheckpointError::VocabSize {
        path: dir.to_path_buf(),
        which,
        tokens,
        model_vocab,
    })
}

/// A loaded checkpoint.
pub struct SavedLm {
    /// The checkpoint folder it came from (a run folder's `best/` or `last/`).
    pub path: PathBuf,
    /// The model, weights loaded.
    pub model: LanguageModel,
    /// The tokenizer its vocabulary belongs to.
    pub tokenizer: Tokenizer,
    /// Optimizer and trainer state, when the folder can resume training.
    pub resume: Option<ResumeState>,
}

/// Writes `model` and `tokenizer` (and the resume state) to the folder `dir`,
/// atomically. The tokenizer's vocabulary must be the model's
/// ([`CheckpointError::VocabSize`] otherwise): such a folder would not load.
pub fn save(
    dir: &Path,
    model: &LanguageModel,
    tokenizer: &Tokenizer,
    resume: Option<&ResumeState>,
) -> Result<(), CheckpointError> {
    check_vocab_size(
        dir,
        "tokenizer",
        tokenizer.vocab().len(),
        model.config.vocab_size,
    )?;
    let config = LmConfigFile {
        format: FORMAT.into(),
        version: VERSION,
        tokenizer: tokenizer.kind(),
        word_segmentation: tokenizer.word_segmentation(),
        model: model.config.clone(),
    };
    let checkpoint = Checkpoint {
        config: serde_json::to_value(&config).expect("config serializes"),
        weights: named_tensors(model.to_tensors()),
        vocab: tokenizer.vocab().tokens().to_vec(),
        optimizer: resume.map(ResumeState::optimizer_tensors),
        trainer_state: resume.map(|r| r.trainer_state.clone()),
        tokenizer_json: tokenizer.to_tokenizer_json(),
        ..Checkpoint::default()
    };
    checkpoint.save(dir)
}

/// What a loader accepts in config.json, and the format of the other kind.
pub(crate) struct ConfigKind {
    pub format: &'static str,
    pub version: u32,
    /// The kind of model the loader reads.
    pub kind: ModelKind,
    pub other_format: &'static str,
    /// The kind of model `other_format` holds.
    pub other_kind: ModelKind,
}

/// Parses config.json after checking its `format` and `version`, so that a
/// checkpoint of the other kind or of a newer build gets an error that says so
/// rather than a missing-field message.
pub(crate) fn parse_config<T: serde::de::DeserializeOwned>(
    checkpoint: &Checkpoint,
    dir: &Path,
    kind: &ConfigKind,
) -> Result<T, CheckpointError> {
    let mismatch = |reason: String| CheckpointError::Mismatch {
        path: dir.to_path_buf(),
        reason,
    };
    let field = |name: &str| checkpoint.config.get(name);
    let format = field("format").and_then(|f| f.as_str());
    if format == Some(kind.other_format) {
        return Err(CheckpointError::WrongModelKind {
            path: dir.to_path_buf(),
            found: kind.other_kind,
            expected: kind.kind,
        });
    }
    let version = field("version").and_then(|v| v.as_u64());
    if format != Some(kind.format) || version.is_none_or(|v| v > kind.version.into()) {
        let shown = |v: Option<&serde_json::Value>| v.map_or("none".into(), |v| v.to_string());
        return Err(mismatch(format!(
            "config.json has format {} version {}, this build reads '{}' up to version {}",
            shown(field("format")),
            shown(field("version")),
            kind.format,
            kind.version
        )));
    }
    serde_json::from_value(checkpoint.config.clone()).map_err(|cause| CheckpointError::BadJson {
        path: dir.join(CONFIG_FILE),
        expected: match kind.kind {
            ModelKind::LanguageModel => "a recurrent language-model config",
            ModelKind::Seq2Seq => "a recurrent seq2seq config",
        },
        cause,
    })
}

/// Loads a checkpoint folder, or the `best/` (else `last/`) checkpoint of a run folder,
/// checking that config, weights and vocabulary agree.
pub fn load(path: &Path) -> Result<SavedLm, CheckpointError> {
    let dir = Checkpoint::resolve(path)?;
    let checkpoint = Checkpoint::load(&dir)?;
    let mismatch = |reason: String| CheckpointError::Mismatch {
        path: dir.clone(),
        reason,
    };
    let config: LmConfigFile = parse_config(
        &checkpoint,
        &dir,
        &ConfigKind {
            format: FORMAT,
            version: VERSION,
            kind: ModelKind::LanguageModel,
            other_format: crate::seq2seq::FORMAT,
            other_kind: ModelKind::Seq2Seq,
        },
    )?;
    let vocab = restore_vocab(&dir, checkpoint.vocab, VOCAB_FILE)?;
    if vocab.len() != config.model.vocab_size {
        return Err(mismatch(format!(
            "vocab.json has {} tokens but config.json says vocab_size {}",
            vocab.len(),
            config.model.vocab_size
        )));
    }
    let tokenizer = restore_tokenizer(
        &dir,
        config.tokenizer,
        config.word_segmentation,
        vocab,
        checkpoint.tokenizer_json.as_deref(),
        "",
    )?;
    let model = LanguageModel::from_tensors(config.model, &unnamed(checkpoint.weights)).map_err(
        |source| CheckpointError::Model {
            path: dir.clone(),
            what: "model.safetensors does not match config.json",
            source,
        },
    )?;
    let resume = ResumeState::from_files(checkpoint.optimizer, checkpoint.trainer_state);
    Ok(SavedLm {
        path: dir,
        model,
        tokenizer,
        resume,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use recurrent_model::CellKind;
    use recurrent_text::Corpus;

    fn tiny() -> (LanguageModel, Tokenizer) {
        let tok =
            Tokenizer::build(TokenizerKind::Char, &Corpus::from_text("t", "hello world")).unwrap();
        let config = ModelConfig {
            cell: CellKind::Gru,
            vocab_size: tok.vocab().len(),
            embed: 4,
            hidden: 4,
            layers: 1,
            dense: 0,
            dropout: 0.0,
            tie: true,
            layer_norm: false,
            last_hidden: 0,
        };
        let mut rng = recurrent_kernels::Rng::new(3);
        (LanguageModel::new(config, &mut rng, None).unwrap(), tok)
    }

    #[test]
    fn saving_a_tokenizer_of_another_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (model, _) = tiny();
        let other = Tokenizer::build(TokenizerKind::Char, &Corpus::from_text("t", "abc")).unwrap();
        let err = save(&dir.path().join("ck"), &model, &other, None).unwrap_err();
        assert!(
            matches!(
                err,
                CheckpointError::VocabSize {
                    tokens: 3,
                    model_vocab: 8,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("has 3 tokens"), "{err}");
        assert!(!dir.path().join("ck").exists(), "nothing is written");
    }

    #[test]
    fn round_trip_keeps_weights_vocab_and_resume_state() {
        let dir = tempfile::tempdir().unwrap();
        let (model, tok) = tiny();
        let resume = ResumeState {
            optimizer: vec![("exp_avg".into(), vec![1.0, 2.0])],
            trainer_state: serde_json::json!({"step": 3}),
        };
        save(&dir.path().join("ck"), &model, &tok, Some(&resume)).unwrap();
        let back = load(&dir.path().join("ck")).unwrap();
        assert_eq!(back.model.params, model.params);
        assert_eq!(back.model.config, model.config);
        assert_eq!(back.tokenizer.vocab(), tok.vocab());
        assert_eq!(back.resume, Some(resume));
    }

    #[test]
    fn config_that_does_not_match_the_weights_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (model, tok) = tiny();
        let ck = dir.path().join("ck");
        save(&ck, &model, &tok, None).unwrap();
        let cfg = std::fs::read_to_string(ck.join("config.json"))
            .unwrap()
            .replace("\"hidden\": 4", "\"hidden\": 8");
        std::fs::write(ck.join("config.json"), cfg).unwrap();
        let err = load(&ck).err().unwrap().to_string();
        assert!(err.contains("does not match config.json"), "{err}");
    }

    #[test]
    fn format_and_version_are_checked_before_the_fields() {
        let dir = tempfile::tempdir().unwrap();
        let (model, tok) = tiny();
        let ck = dir.path().join("ck");
        let with_config = |edit: &dyn Fn(&mut serde_json::Value)| {
            save(&ck, &model, &tok, None).unwrap();
            let path = ck.join("config.json");
            let mut cfg: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            edit(&mut cfg);
            std::fs::write(&path, cfg.to_string()).unwrap();
        };
        let lm_err = || load(&ck).err().unwrap().to_string();
        with_config(&|c| c["version"] = (VERSION + 1).into());
        let err = lm_err();
        assert!(
            err.contains(&format!(
                "version {}, this build reads 'recurrent-lm' up to version {VERSION}",
                VERSION + 1
            )),
            "{err}"
        );
        with_config(&|c| {
            c.as_object_mut().unwrap().remove("format");
        });
        assert!(lm_err().contains("format none"), "{}", lm_err());
        with_config(&|c| c["format"] = crate::seq2seq::FORMAT.into());
        let err = load(&ck).err().unwrap();
        assert!(
            matches!(
                err,
                CheckpointError::WrongModelKind {
                    found: ModelKind::Seq2Seq,
                    expected: ModelKind::LanguageModel,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .ends_with("ck: this is a sequence-to-sequence model, not a language model"),
            "{err}"
        );
        with_config(&|_| {});
        let err = crate::seq2seq::load(&ck).err().unwrap().to_string();
        assert!(err.contains("this is a language model"), "{err}");
    }

    #[test]
    fn vocab_size_disagreement_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (model, tok) = tiny();
        let ck = dir.path().join("ck");
        save(&ck, &model, &tok, None).unwrap();
        std::fs::write(ck.join("vocab.json"), "[\"a\", \"b\"]").unwrap();
        let err = load(&ck).err().unwrap().to_string();
        assert!(err.contains("vocab.json has 2 tokens"), "{err}");
    }

    #[test]
    fn word_and_bpe_tokenizers_survive_a_round_trip() {
        let corpus = Corpus::from_text("t", "the cat sat on the mat\nthe dog sat\n");
        for kind in [TokenizerKind::Word, TokenizerKind::Bpe] {
            let tok = Tokenizer::build(kind, &corpus).unwrap();
            let config = ModelConfig {
                cell: CellKind::Lstm,
                vocab_size: tok.vocab().len(),
                embed: 4,
                hidden: 4,
                layers: 1,
                dense: 0,
                dropout: 0.0,
                tie: false,
                layer_norm: false,
                last_hidden: 0,
            };
            let model =
                LanguageModel::new(config, &mut recurrent_kernels::Rng::new(1), None).unwrap();
            let dir = tempfile::tempdir().unwrap();
            save(dir.path(), &model, &tok, None).unwrap();
            let back = load(dir.path()).unwrap();
            assert_eq!(back.tokenizer.kind(), kind);
            let text = "the cat sat\n";
            assert_eq!(
                back.tokenizer.encode(text).unwrap(),
                tok.encode(text).unwrap()
            );
            assert_eq!(
                back.tokenizer.decode(&tok.encode(text).unwrap()),
                tok.decode(&tok.encode(text).unwrap())
            );
        }
    }
}
