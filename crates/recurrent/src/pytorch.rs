//! Language-model weights to and from PyTorch: pytorch/examples'
//! `word_language_model` (`RNNModel`) state dicts, saved with safetensors.

use std::path::{Path, PathBuf};

use recurrent_checkpoint::{lm, pytorch};
use recurrent_model::CellKind;
use recurrent_text::TokenizerKind;

use crate::error::Result;
use crate::load::LanguageCheckpoint;

/// A PyTorch `RNNModel` state dict to import, and what its tensors cannot
/// say.
#[derive(Clone, Debug, PartialEq)]
pub struct PytorchWeights {
    /// The state dict, as written by `safetensors.torch.save_file`.
    pub weights: PathBuf,
    /// The vocabulary: a JSON array of token strings in id order.
    pub vocab: PathBuf,
    /// The cell the weights belong to (LSTM and GRU differ only in rows per
    /// gate, so the shapes are checked against it).
    pub cell: CellKind,
    /// How the vocabulary's tokens map to text (a word vocabulary needs
    /// `<unk>` and `<eos>`).
    pub tokenizer: TokenizerKind,
}

/// Reads a PyTorch state dict and its vocabulary, writes them as a checkpoint
/// folder at `out`, and returns that checkpoint.
///
/// Layers, sizes and tying are read from the tensors; a wrong cell, a
/// vocabulary of another size than the embedding, or tensors that do not
/// make an `RNNModel` are errors naming the file.
///
/// ```
/// use recurrent::{export_pytorch, import_pytorch, LanguageCheckpoint, PytorchWeights};
/// # use recurrent::lm::{TextSource, TrainOptions, Training};
/// # use recurrent::{Quiet, RunFolder, StopRule};
/// # let dir = tempfile::tempdir()?;
/// # let options = TrainOptions {
/// #     input: TextSource::text("abc", "abcabcabc\n".repeat(40)),
/// #     stop: StopRule { steps: Some(2), ..StopRule::default() },
/// #     seq_len: 10,
/// #     batch: 2,
/// #     threads: Some(1),
/// #     ..TrainOptions::default()
/// # };
/// # Training::start(&options, RunFolder::create(dir.path().join("run"))?)?.run(&mut Quiet)?;
///
/// // A language model out to PyTorch's format and back.
/// let trained = LanguageCheckpoint::load(dir.path().join("run"))?;
/// let weights = dir.path().join("weights.safetensors");
/// assert_eq!(export_pytorch(&trained, &weights)?, 11);
/// let source = PytorchWeights {
///     weights,
///     vocab: trained.path.join("vocab.json"),
///     cell: trained.model.config.cell,
///     tokenizer: trained.tokenizer.kind(),
/// };
/// let imported = import_pytorch(&source, dir.path().join("imported"))?;
/// assert!(imported.model.params == trained.model.params);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn import_pytorch(
    source: &PytorchWeights,
    out: impl AsRef<Path>,
) -> Result<LanguageCheckpoint> {
    let (model, tokenizer) = pytorch::import(
        &source.weights,
        &source.vocab,
        source.cell,
        source.tokenizer,
    )?;
    let out = out.as_ref();
    lm::save(out, &model, &tokenizer, None)?;
    Ok(LanguageCheckpoint {
        path: out.to_path_buf(),
        model,
        tokenizer,
        resume: None,
    })
}

/// Writes `checkpoint`'s weights to `out` as a PyTorch `RNNModel` state dict
/// (safetensors; a tied model lists `decoder.weight` too, as `state_dict()`
/// does), and returns how many tensors it wrote.
///
/// Models `RNNModel` cannot express (layer-normalized cells, layers of
/// different widths, a dense layer, one-hot input) are errors.
///
/// ```
/// use recurrent::checkpoint::read_safetensors;
/// use recurrent::{export_pytorch, LanguageCheckpoint};
/// # use recurrent::lm::{TextSource, TrainOptions, Training};
/// # use recurrent::{Quiet, RunFolder, StopRule};
/// # let dir = tempfile::tempdir()?;
/// # let options = TrainOptions {
/// #     input: TextSource::text("abc", "abcabcabc\n".repeat(40)),
/// #     stop: StopRule { steps: Some(2), ..StopRule::default() },
/// #     seq_len: 10,
/// #     batch: 2,
/// #     threads: Some(1),
/// #     ..TrainOptions::default()
/// # };
/// # Training::start(&options, RunFolder::create(dir.path().join("run"))?)?.run(&mut Quiet)?;
///
/// let checkpoint = LanguageCheckpoint::load(dir.path().join("run"))?;
/// let out = dir.path().join("weights.safetensors");
/// export_pytorch(&checkpoint, &out)?;
/// let names: Vec<String> = read_safetensors(&out)?.into_iter().map(|t| t.name).collect();
/// assert!(names.contains(&"encoder.weight".to_string()));
/// assert!(names.contains(&"rnn.weight_hh_l1".to_string()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn export_pytorch(checkpoint: &LanguageCheckpoint, out: impl AsRef<Path>) -> Result<usize> {
    Ok(pytorch::export(&checkpoint.model, out.as_ref())?)
}
