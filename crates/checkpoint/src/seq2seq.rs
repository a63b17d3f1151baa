//! A sequence-to-sequence model with its two tokenizers as a checkpoint
//! folder, and back.
//!
//! Same folder as a language model's (see the crate docs), with:
//!
//! ```text
//! config.json             format "recurrent-seq2seq", both tokenizers, BOS/EOS ids, the model
//! vocab.json              the source vocabulary (or the one shared by both sides)
//! target_vocab.json       the target vocabulary, when the sides have their own
//! tokenizer.json          BPE only: the source (or shared) tokenizer
//! target_tokenizer.json   BPE only: the target tokenizer, when the sides have their own
//! ```

use std::path::{Path, PathBuf};

use recurrent_model::seq2seq::{Seq2Seq, Seq2SeqConfig};
use recurrent_text::{PairTokenizers, TokenizerKind, WordSegmentation};
use serde::{Deserialize, Serialize};

use crate::error::ModelKind;
use crate::layout::{TARGET_VOCAB_FILE, VOCAB_FILE};
use crate::lm::{
    check_vocab_size, named_tensors, parse_config, restore_tokenizer, restore_vocab, unnamed,
    ConfigKind, ResumeState,
};
use crate::{Checkpoint, CheckpointError};

/// The `format` field of a seq2seq config.json.
pub const FORMAT: &str = "recurrent-seq2seq";
/// The config.json layout version this build writes and reads.
pub const VERSION: u32 = 1;

/// How one side's text becomes ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenizerSpec {
    /// Which tokenizer.
    pub kind: TokenizerKind,
    /// How a word tokenizer splits text (word tokenizers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_segmentation: Option<WordSegmentation>,
}

/// config.json of a seq2seq checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seq2SeqConfigFile {
    /// Always [`FORMAT`]; tells a seq2seq from a language-model checkpoint.
    pub format: String,
    /// The layout version, at most [`VERSION`] for this build to read it.
    pub version: u32,
    /// The source side's tokenizer.
    pub source: TokenizerSpec,
    /// The target side's tokenizer.
    pub target: TokenizerSpec,
    /// One vocabulary serves both sides (vocab.json only).
    pub shared_vocab: bool,
    /// The target ids of BOS and EOS (just past the target tokenizer's
    /// vocabulary), written for readers of the folder; checked on load.
    pub bos: u32,
    /// The target id of EOS (BOS + 1).
    pub eos: u32,
    /// The architecture.
    pub model: Seq2SeqConfig,
}

/// A loaded seq2seq checkpoint.
pub struct SavedSeq2Seq {
    /// The checkpoint folder it came from (a run folder's `best/` or `last/`).
    pub path: PathBuf,
    /// The model, weights loaded.
    pub model: Seq2Seq,
    /// The source and target tokenizers.
    pub tokenizers: PairTokenizers,
    /// Optimizer and trainer state, when the folder can resume training.
    pub resume: Option<ResumeState>,
}

/// Writes `model` and its tokenizers (and the resume state) to the folder
/// `dir`, atomically. The tokenizers' vocabularies must be the model's
/// ([`CheckpointError::VocabSize`] otherwise).
pub fn save(
    dir: &Path,
    model: &Seq2Seq,
    tokenizers: &PairTokenizers,
    resume: Option<&ResumeState>,
) -> Result<(), CheckpointError> {
    let c = &model.config;
    check_vocab_size(
        dir,
        "source tokenizer",
        tokenizers.source_vocab_size(),
        c.src_vocab,
    )?;
    check_vocab_size(
        dir,
        "target tokenizer",
        tokenizers.target_vocab_size(),
        c.tgt_vocab,
    )?;
    let spec = |t: &recurrent_text::Tokenizer| TokenizerSpec {
        kind: t.kind(),
        word_segmentation: t.word_segmentation(),
    };
    let (src, tgt) = (&tokenizers.source, &tokenizers.target);
    let config = Seq2SeqConfigFile {
        format: FORMAT.into(),
        version: VERSION,
        source: spec(src),
        target: spec(tgt),
        shared_vocab: tokenizers.shared,
        bos: tokenizers.bos(),
        eos: tokenizers.eos(),
        model: model.config.clone(),
    };
    let own_target = !tokenizers.shared;
    let checkpoint = Checkpoint {
        config: serde_json::to_value(&config).expect("config serializes"),
        weights: named_tensors(model.to_tensors()),
        vocab: src.vocab().tokens().to_vec(),
        optimizer: resume.map(ResumeState::optimizer_tensors),
        trainer_state: resume.map(|r| r.trainer_state.clone()),
        tokenizer_json: src.to_tokenizer_json(),
        target_vocab: own_target.then(|| tgt.vocab().tokens().to_vec()),
        target_tokenizer_json: tgt.to_tokenizer_json().filter(|_| own_target),
    };
    checkpoint.save(dir)
}

/// Loads a seq2seq checkpoint folder, or the `best/` (else `last/`) one of a
/// run folder, checking that config, weights and vocabularies agree.
pub fn load(path: &Path) -> Result<SavedSeq2Seq, CheckpointError> {
    let dir = Checkpoint::resolve(path)?;
    let checkpoint = Checkpoint::load(&dir)?;
    let mismatch = |reason: String| CheckpointError::Mismatch {
        path: dir.clone(),
        reason,
    };
    let config: Seq2SeqConfigFile = parse_config(
        &checkpoint,
        &dir,
        &ConfigKind {
            format: FORMAT,
            version: VERSION,
            kind: ModelKind::Seq2Seq,
            other_format: crate::lm::FORMAT,
            other_kind: ModelKind::LanguageModel,
        },
    )?;
    let vocab = restore_vocab(&dir, checkpoint.vocab, VOCAB_FILE)?;
    let source = restore_tokenizer(
        &dir,
        config.source.kind,
        config.source.word_segmentation,
        vocab,
        checkpoint.tokenizer_json.as_deref(),
        "",
    )?;
    let target = if config.shared_vocab {
        source.clone()
    } else {
        let tokens = checkpoint.target_vocab.ok_or_else(|| {
            mismatch(
                "the sides have their own vocabularies but target_vocab.json is missing".into(),
            )
        })?;
        let vocab = restore_vocab(&dir, tokens, TARGET_VOCAB_FILE)?;
        restore_tokenizer(
            &dir,
            config.target.kind,
            config.target.word_segmentation,
            vocab,
            checkpoint.target_tokenizer_json.as_deref(),
            "target_",
        )?
    };
    let tokenizers = PairTokenizers {
        source,
        target,
        shared: config.shared_vocab,
    };
    let m = &config.model;
    if m.src_vocab != tokenizers.source_vocab_size()
        || m.tgt_vocab != tokenizers.target_vocab_size()
        || config.bos != tokenizers.bos()
        || config.eos != tokenizers.eos()
    {
        return Err(mismatch(format!(
            "the vocabularies ({} source, {} target tokens plus BOS and EOS) do not match \
             config.json (src_vocab {}, tgt_vocab {}, bos {}, eos {})",
            tokenizers.source_vocab_size(),
            tokenizers.target.vocab().len(),
            m.src_vocab,
            m.tgt_vocab,
            config.bos,
            config.eos
        )));
    }
    let model =
        Seq2Seq::from_tensors(config.model, &unnamed(checkpoint.weights)).map_err(|source| {
            CheckpointError::Seq2Seq {
                path: dir.clone(),
                what: "model.safetensors does not match config.json",
                source,
            }
        })?;
    Ok(SavedSeq2Seq {
        path: dir,
        model,
        tokenizers,
        resume: ResumeState::from_files(checkpoint.optimizer, checkpoint.trainer_state),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use recurrent_kernels::Rng;
    use recurrent_text::{Pair, TokenizerOptions};

    fn tiny(kind: TokenizerKind, shared: bool) -> (Seq2Seq, PairTokenizers) {
        let pairs: Vec<Pair> = [("I see.", "Je vois."), ("Run!", "Cours !")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let options = TokenizerOptions {
            vocab_size: (kind == TokenizerKind::Bpe).then_some(265),
            ..TokenizerOptions::default()
        };
        let t = PairTokenizers::build(kind, &options, &pairs, &[], shared).unwrap();
        let mut c = Seq2SeqConfig::new(t.source_vocab_size(), t.target_vocab_size(), 4, 6);
        c.share_embeddings = shared;
        (Seq2Seq::new(c, &mut Rng::new(5)).unwrap(), t)
    }

    #[test]
    fn round_trip_keeps_weights_tokenizers_and_resume_state() {
        for (kind, shared) in [
            (TokenizerKind::Char, false),
            (TokenizerKind::Word, true),
            (TokenizerKind::Bpe, false),
            (TokenizerKind::Bpe, true),
        ] {
            let (model, tok) = tiny(kind, shared);
            let dir = tempfile::tempdir().unwrap();
            let resume = ResumeState {
                optimizer: vec![("exp_avg".into(), vec![1.0, 2.0])],
                trainer_state: serde_json::json!({"step": 3}),
            };
            save(dir.path(), &model, &tok, Some(&resume)).unwrap();
            assert_eq!(dir.path().join("target_vocab.json").exists(), !shared);
            let back = load(dir.path()).unwrap();
            assert_eq!(back.model.params, model.params);
            assert_eq!(back.model.config, model.config);
            assert_eq!(back.tokenizers.shared, shared);
            assert_eq!(back.tokenizers.source.vocab(), tok.source.vocab());
            assert_eq!(back.tokenizers.target.vocab(), tok.target.vocab());
            assert_eq!(
                back.tokenizers.encode_target("Je vois.").unwrap(),
                tok.encode_target("Je vois.").unwrap(),
                "{kind:?}"
            );
            assert_eq!(back.resume, Some(resume));
        }
    }

    #[test]
    fn saving_tokenizers_of_another_size_is_refused() {
        let (model, _) = tiny(TokenizerKind::Char, false);
        let (_, other) = tiny(TokenizerKind::Word, false);
        let dir = tempfile::tempdir().unwrap();
        let err = save(&dir.path().join("ck"), &model, &other, None).unwrap_err();
        assert!(
            matches!(
                err,
                CheckpointError::VocabSize {
                    which: "source tokenizer",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!dir.path().join("ck").exists());
    }

    #[test]
    fn a_vocabulary_that_does_not_fit_the_model_is_named() {
        let (model, tok) = tiny(TokenizerKind::Char, false);
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &model, &tok, None).unwrap();
        std::fs::write(dir.path().join("target_vocab.json"), "[\"a\", \"b\"]").unwrap();
        let err = load(dir.path()).err().unwrap().to_string();
        assert!(err.contains("do not match config.json"), "{err}");
        std::fs::remove_file(dir.path().join("target_vocab.json")).unwrap();
        let err = load(dir.path()).err().unwrap().to_string();
        assert!(err.contains("target_vocab.json is missing"), "{err}");
    }

    #[test]
    fn a_language_model_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let (model, tok) = tiny(TokenizerKind::Char, false);
        save(dir.path(), &model, &tok, None).unwrap();
        let cfg = std::fs::read_to_string(dir.path().join("config.json"))
            .unwrap()
            .replace("recurrent-seq2seq", "recurrent-lm");
        std::fs::write(dir.path().join("config.json"), cfg).unwrap();
        let err = load(dir.path()).err().unwrap().to_string();
        assert!(err.contains("this is a language model"), "{err}");
    }
}
