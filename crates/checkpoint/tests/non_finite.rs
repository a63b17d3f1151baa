//! Weights that are not finite numbers (a diverged run's) are refused on
//! load and on import, naming the file, the tensor and the first bad value.

use std::path::PathBuf;

use recurrent_checkpoint::{lm, pytorch, read_safetensors, write_safetensors, CheckpointError};
use recurrent_kernels::Rng;
use recurrent_model::{CellKind, LanguageModel, ModelConfig};
use recurrent_text::{Corpus, Tokenizer, TokenizerKind};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures")
        .join(name)
}

#[test]
fn a_checkpoint_with_a_nan_weight_is_refused_naming_the_tensor() {
    let tokenizer = Tokenizer::build(
        TokenizerKind::Char,
        &Corpus::from_text("t", "hello world\n"),
    )
    .unwrap();
    let config = ModelConfig::new(CellKind::Lstm, tokenizer.vocab().len(), 4, 8, 1);
    let mut model = LanguageModel::new(config, &mut Rng::new(1), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("best");
    lm::save(&folder, &model, &tokenizer, None).unwrap();
    assert!(lm::load(&folder).is_ok());

    // The embedding, [vocab, embed 4], comes first among the parameters.
    model.params[4 + 2] = f32::NAN;
    lm::save(&folder, &model, &tokenizer, None).unwrap();
    let err = lm::load(&folder).err().expect("a NaN weight loads");
    let CheckpointError::NonFinite {
        path,
        tensor,
        index,
        ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(path, &folder.join("model.safetensors"));
    assert_eq!((tensor.as_str(), *index), ("encoder.weight", 6));
    let message = err.to_string();
    assert!(
        message.contains("`encoder.weight` holds NaN at index [1, 2]"),
        "{message}"
    );
}

#[test]
fn pytorch_weights_with_an_infinity_are_refused_naming_the_tensor() {
    let mut tensors = read_safetensors(&fixture("lstm_state_dict.safetensors")).unwrap();
    let hh = tensors
        .iter_mut()
        .find(|t| t.name == "rnn.weight_hh_l1")
        .unwrap();
    assert_eq!(hh.shape, [28, 7]);
    hh.data[7 * 3 + 5] = f32::NEG_INFINITY;
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.safetensors");
    write_safetensors(&weights, &tensors).unwrap();
    let vocab = fixture("lstm_vocab.json");
    let Err(err) = pytorch::import(&weights, &vocab, CellKind::Lstm, TokenizerKind::Char) else {
        panic!("an infinite weight imports");
    };
    assert!(
        matches!(&err, CheckpointError::NonFinite { tensor, index: 26, .. } if tensor == "rnn.weight_hh_l1"),
        "{err}"
    );
    assert!(
        err.to_string().contains("holds -inf at index [3, 5]"),
        "{err}"
    );
}
