//! Language models as ONNX files, for runtimes that read ONNX
//! (onnxruntime, and the deployment stacks built on it).

use std::path::{Path, PathBuf};

use recurrent_checkpoint::atomic_write;

use crate::error::Result;
use crate::LanguageCheckpoint;

pub use recurrent_onnx::{OnnxError, OPSET as ONNX_OPSET};

/// The files [`export_onnx`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnnxFiles {
    /// The sequence graph: `tokens [T, B]` and states in, `logits [T, B, V]`
    /// and the states after the last token out.
    pub sequence: PathBuf,
    /// The step graph: `token [B]` and states in, `logits [B, V]` and the
    /// next states out (next to `sequence`, named `<stem>.step.onnx`).
    pub step: PathBuf,
}

/// The step graph's path for the sequence graph at `out`:
/// `model.onnx` -> `model.step.onnx`.
pub fn onnx_step_path(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    out.with_file_name(format!("{stem}.step.onnx"))
}

/// Writes `checkpoint`'s language model as two ONNX files (opset
/// [`ONNX_OPSET`], native `LSTM`/`GRU`/`RNN` operators): the sequence graph at
/// `out` and the step graph beside it (see [`OnnxFiles`]; the layout of
/// inputs and outputs is documented in `recurrent_onnx::lm`). Each layer's
/// state is `h.{k}` (and `c.{k}` for an LSTM), shape `[1, B, H_k]`, in, and
/// `h_next.{k}` (`c_next.{k}`) out; start from zeros. Both files carry the
/// model configuration (`recurrent.config`), the vocabulary
/// (`recurrent.vocab`, token strings in id order), the tokenizer kind and, for
/// BPE models, the tokenizer (`recurrent.tokenizer_json`) in their metadata.
/// Each file is written atomically.
///
/// Layer-normalized models are an error ([`OnnxError::LayerNorm`]).
///
/// ```
/// use recurrent::{export_onnx, LanguageCheckpoint};
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
/// let files = export_onnx(&checkpoint, dir.path().join("model.onnx"))?;
/// assert!(files.step.ends_with("model.step.onnx"));
/// assert!(std::fs::metadata(&files.sequence)?.len() > 1000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn export_onnx(checkpoint: &LanguageCheckpoint, out: impl AsRef<Path>) -> Result<OnnxFiles> {
    let out = out.as_ref().to_path_buf();
    let tokenizer = &checkpoint.tokenizer;
    let mut metadata = vec![
        (
            "recurrent.config",
            serde_json::to_string(&checkpoint.model.config)
                .expect("a model configuration serializes"),
        ),
        ("recurrent.vocab", tokenizer.vocab().to_json()),
        ("recurrent.tokenizer", tokenizer.kind().to_string()),
    ];
    if let Some(json) = tokenizer.to_tokenizer_json() {
        metadata.push(("recurrent.tokenizer_json", json));
    }
    let graphs = recurrent_onnx::export_language_model(&checkpoint.model, &metadata)?;
    let step = onnx_step_path(&out);
    atomic_write(&out, &graphs.sequence)?;
    atomic_write(&step, &graphs.step)?;
    Ok(OnnxFiles {
        sequence: out,
        step,
    })
}
