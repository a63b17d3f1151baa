//! Compatibility with the reference Python implementation: a committed fixture
//! written by `safetensors.torch.save_file` (checked everywhere), and a live round
//! trip through Python when it is installed (skipped in CI, which has no PyTorch).

use std::path::{Path, PathBuf};
use std::process::Command;

use recurrent_checkpoint::{
    read_safetensors, safetensors_from_bytes, write_safetensors, HeaderMetadata, Tensor,
};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python_written.safetensors")
}

fn get<'a>(ts: &'a [Tensor], name: &str) -> &'a Tensor {
    ts.iter().find(|t| t.name == name).unwrap()
}

#[test]
fn reads_a_file_written_by_python() {
    let bytes = std::fs::read(fixture()).unwrap();
    let (ts, meta) = safetensors_from_bytes(&bytes, &fixture()).unwrap();
    assert_eq!(
        meta,
        Some(HeaderMetadata::from([
            ("format".into(), "pt".into()),
            ("written_by".into(), "python".into()),
        ]))
    );
    let names: Vec<_> = ts.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "as_bf16",
            "as_f16",
            "as_f64",
            "cube",
            "embedding.weight",
            "empty",
            "rnn.bias",
            "scalar"
        ]
    );

    let emb = get(&ts, "embedding.weight");
    assert_eq!(emb.shape, [3, 2]);
    let expected = [0.5f32, -1.25, 3.0, -0.0, 1e-40, 65504.0];
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&emb.data), bits(&expected));

    let cube = get(&ts, "cube");
    assert_eq!(cube.shape, [2, 3, 4]);
    assert_eq!(
        cube.data,
        (0..24).map(|i| i as f32 - 12.0).collect::<Vec<_>>()
    );
    assert_eq!(get(&ts, "rnn.bias").data, [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(get(&ts, "scalar").shape, Vec::<usize>::new());
    assert_eq!(get(&ts, "scalar").data, [7.0]);
    assert_eq!(get(&ts, "empty").shape, [0, 3]);
    assert!(get(&ts, "empty").data.is_empty());

    // Converted dtypes: f64 narrowed (overflow to -inf), f16/bf16 widened exactly.
    assert_eq!(get(&ts, "as_f64").data, [0.1f32, f32::NEG_INFINITY]);
    assert_eq!(get(&ts, "as_f16").data, [1.0, -2.0, 0.333_251_95, 65504.0]);
    assert_eq!(get(&ts, "as_bf16").data, [1.0, -0.5, 3.140625]);

    assert_eq!(read_safetensors(&fixture()).unwrap(), ts);
}

/// Loads with `safetensors.torch` (or `safetensors.numpy` without PyTorch), checks
/// names and shapes, and saves everything again to argv[2].
const PY_ROUND_TRIP: &str = r#"
import json, sys
try:
    from safetensors.torch import load_file, save_file
except ImportError:
    from safetensors.numpy import load_file, save_file
tensors = load_file(sys.argv[1])
print(json.dumps({k: list(v.shape) for k, v in tensors.items()}))
save_file(tensors, sys.argv[2], metadata={"format": "pt"})
"#;

#[test]
fn round_trip_through_python_when_available() {
    let available = Command::new("python3")
        .args(["-c", "import safetensors"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !available {
        eprintln!("skipped: python3 with the safetensors package is not installed");
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("rust.safetensors");
    let theirs = dir.path().join("python.safetensors");
    let tensors = vec![
        Tensor {
            name: "rnn.weight_hh".into(),
            shape: vec![2, 3, 2],
            data: (0..12).map(|i| (i as f32 - 6.0) / 7.0).collect(),
        },
        Tensor {
            name: "bias".into(),
            shape: vec![5],
            data: vec![
                -0.0,
                f32::from_bits(1),
                -f32::from_bits(0x007f_ffff),
                1e30,
                -3.5,
            ],
        },
        Tensor {
            name: "scale".into(),
            shape: vec![],
            data: vec![0.125],
        },
    ];
    write_safetensors(&ours, &tensors).unwrap();

    let out = Command::new("python3")
        .args(["-c", PY_ROUND_TRIP])
        .arg(&ours)
        .arg(&theirs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shapes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        shapes,
        serde_json::json!({"bias": [5], "rnn.weight_hh": [2, 3, 2], "scale": []})
    );

    let mut expected = tensors;
    expected.sort_by(|a, b| a.name.cmp(&b.name));
    let back = read_safetensors(&theirs).unwrap();
    let bits = |ts: &[Tensor]| {
        ts.iter()
            .map(|t| {
                (
                    t.name.clone(),
                    t.shape.clone(),
                    t.data.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(&back), bits(&expected));
}
