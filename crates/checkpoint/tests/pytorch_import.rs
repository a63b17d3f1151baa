//! Import of a real PyTorch state dict (written by `safetensors.torch.save_file`
//! in scripts/make_lm_fixtures.py), and export back.

use std::path::PathBuf;

use recurrent_checkpoint::{pytorch, read_safetensors, CheckpointError};
use recurrent_model::CellKind;
use recurrent_text::TokenizerKind;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures")
        .join(name)
}

#[test]
fn imports_a_pytorch_state_dict_and_exports_it_unchanged() {
    let (model, tok) = pytorch::import(
        &fixture("lstm_state_dict.safetensors"),
        &fixture("lstm_vocab.json"),
        CellKind::Lstm,
        TokenizerKind::Char,
    )
    .unwrap();
    assert_eq!(
        (
            model.config.layers,
            model.config.hidden,
            model.config.embed,
            model.config.vocab_size
        ),
        (2, 7, 5, 11)
    );
    assert!(!model.config.tie);
    assert_eq!(tok.vocab().len(), 11);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    pytorch::export(&model, &out).unwrap();
    let mut a = read_safetensors(&fixture("lstm_state_dict.safetensors")).unwrap();
    let mut b = read_safetensors(&out).unwrap();
    a.sort_by(|x, y| x.name.cmp(&y.name));
    b.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(a, b);
}

#[test]
fn detects_tying_from_equal_tensors() {
    let w = fixture("lstm_tied_state_dict.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let vocab = dir.path().join("v.json");
    std::fs::write(
        &vocab,
        serde_json::to_string(&"abcdefghijk".chars().map(String::from).collect::<Vec<_>>())
            .unwrap(),
    )
    .unwrap();
    let (model, _) = pytorch::import(&w, &vocab, CellKind::Lstm, TokenizerKind::Char).unwrap();
    assert!(model.config.tie);
}

#[test]
fn wrong_cell_is_named() {
    let err = pytorch::import(
        &fixture("lstm_state_dict.safetensors"),
        &fixture("lstm_vocab.json"),
        CellKind::Gru,
        TokenizerKind::Char,
    )
    .err()
    .unwrap();
    assert!(
        matches!(
            err,
            CheckpointError::WrongCell {
                cell: CellKind::Gru,
                rows: 28,
                hidden: 7,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("28 rows") && msg.contains("a gru layer has 3"),
        "{msg}"
    );
}

#[test]
fn a_tied_state_dict_saved_with_save_model_keeps_only_decoder_weight() {
    let dir = tempfile::tempdir().unwrap();
    let tensors: Vec<_> = read_safetensors(&fixture("lstm_tied_state_dict.safetensors"))
        .unwrap()
        .into_iter()
        .filter(|t| t.name != "encoder.weight")
        .collect();
    let w = dir.path().join("w.safetensors");
    recurrent_checkpoint::write_safetensors(&w, &tensors).unwrap();
    let vocab = dir.path().join("v.json");
    std::fs::write(
        &vocab,
        serde_json::to_string(&"abcdefghijk".chars().map(String::from).collect::<Vec<_>>())
            .unwrap(),
    )
    .unwrap();
    let (model, _) = pytorch::import(&w, &vocab, CellKind::Lstm, TokenizerKind::Char).unwrap();
    assert!(model.config.tie);
    let dec = tensors.iter().find(|t| t.name == "decoder.weight").unwrap();
    let enc = model.layout.get("encoder.weight").unwrap();
    assert_eq!(model.params[enc.range()], dec.data[..]);
}
