//! `recurrent._recurrent.NativeTranslator`: a sequence-to-sequence
//! checkpoint and beam-search translation.

use std::path::PathBuf;

use pyo3::prelude::*;
use recurrent::{translate, DecodeOptions, Seq2SeqCheckpoint};

use crate::errors::to_py;
use crate::model::resolve_threads;

/// A sequence-to-sequence model loaded from a checkpoint or run folder.
#[pyclass(frozen, module = "recurrent._recurrent")]
pub struct NativeTranslator {
    checkpoint: Seq2SeqCheckpoint,
    threads: usize,
}

#[pymethods]
impl NativeTranslator {
    /// Loads a seq2seq checkpoint (or a run folder's best).
    #[staticmethod]
    #[pyo3(signature = (path, threads=None))]
    fn load(py: Python<'_>, path: PathBuf, threads: Option<usize>) -> PyResult<Self> {
        let threads = resolve_threads(threads)?;
        let checkpoint = py
            .detach(move || Seq2SeqCheckpoint::load(&path))
            .map_err(to_py)?;
        Ok(NativeTranslator {
            checkpoint,
            threads,
        })
    }

    /// The checkpoint folder the model was read from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.checkpoint.path.clone()
    }

    /// Translates each sentence: beam search of width `beam` (1: greedy)
    /// with GNMT length normalization `alpha`.
    #[pyo3(signature = (sentences, beam, alpha))]
    fn translate(
        &self,
        py: Python<'_>,
        sentences: Vec<String>,
        beam: usize,
        alpha: f64,
    ) -> PyResult<Vec<String>> {
        let options = DecodeOptions {
            beam,
            alpha,
            threads: Some(self.threads),
            ..DecodeOptions::default()
        };
        let checkpoint = &self.checkpoint;
        let translations = py
            .detach(|| translate(checkpoint, &sentences, &options))
            .map_err(to_py)?;
        Ok(translations.into_iter().map(|t| t.text).collect())
    }
}
