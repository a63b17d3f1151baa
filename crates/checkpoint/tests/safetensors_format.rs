//! safetensors writing and reading: exact round trips, order, metadata, and clean
//! errors (never panics) on truncated, corrupt or wrongly typed files.

use std::collections::HashMap;
use std::path::Path;

use recurrent_checkpoint::{
    read_safetensors, safetensors_bytes, safetensors_from_bytes, write_safetensors,
    CheckpointError, Tensor,
};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

fn t(name: &str, shape: &[usize], data: Vec<f32>) -> Tensor {
    Tensor {
        name: name.into(),
        shape: shape.to_vec(),
        data,
    }
}

/// Awkward values that a sloppy encoder would lose: signed zero, subnormals, NaN payload, infinities.
fn tricky_tensors() -> Vec<Tensor> {
    let cube: Vec<f32> = (0..12).map(|i| i as f32 * 0.1 - 0.6).collect();
    vec![
        t("z.weight", &[2, 3, 2], cube),
        t(
            "a.bias",
            &[8],
            vec![
                -0.0,
                0.0,
                f32::from_bits(1),            // smallest subnormal
                -f32::from_bits(0x007f_ffff), // largest subnormal, negative
                f32::MIN_POSITIVE,
                f32::from_bits(0x7fc0_1234), // NaN with a payload
                f32::NEG_INFINITY,
                f32::MAX,
            ],
        ),
        t("m.scalar", &[], vec![std::f32::consts::PI]),
        t("e.empty", &[0, 5], vec![]),
    ]
}

fn bits(ts: &[Tensor]) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    ts.iter()
        .map(|t| {
            let b = t.data.iter().map(|x| x.to_bits()).collect();
            (t.name.clone(), t.shape.clone(), b)
        })
        .collect()
}

fn sorted(mut ts: Vec<Tensor>) -> Vec<Tensor> {
    ts.sort_by(|a, b| a.name.cmp(&b.name));
    ts
}

#[test]
fn round_trip_is_bit_exact_and_sorted_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let tensors = tricky_tensors();
    write_safetensors(&path, &tensors).unwrap();
    let back = read_safetensors(&path).unwrap();
    assert_eq!(bits(&back), bits(&sorted(tensors)));
    let names: Vec<_> = back.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a.bias", "e.empty", "m.scalar", "z.weight"]);
}

#[test]
fn write_keeps_the_given_order_and_the_reference_parser_accepts_it() {
    let tensors = tricky_tensors();
    let bytes = safetensors_bytes(&tensors, None).unwrap();
    // Data starts 8-byte aligned, as the reference writer guarantees.
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    assert_eq!(header_len % 8, 0);

    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let given: Vec<_> = tensors.iter().map(|t| t.name.clone()).collect();
    assert_eq!(header.offset_keys(), given);

    let parsed = SafeTensors::deserialize(&bytes).unwrap();
    let view = parsed.tensor("z.weight").unwrap();
    assert_eq!(view.dtype(), Dtype::F32);
    assert_eq!(view.shape(), &[2, 3, 2]);
    let first = f32::from_le_bytes(view.data()[..4].try_into().unwrap());
    assert_eq!(first, tensors[0].data[0]);
}

#[test]
fn metadata_map_round_trips() {
    let meta = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("step".to_string(), "1200".to_string()),
    ]);
    let bytes = safetensors_bytes(&tricky_tensors(), Some(meta.clone())).unwrap();
    let (tensors, back) = safetensors_from_bytes(&bytes, Path::new("mem")).unwrap();
    assert_eq!(back, Some(meta));
    assert_eq!(tensors.len(), 4);

    let bytes = safetensors_bytes(&tricky_tensors(), None).unwrap();
    assert_eq!(
        safetensors_from_bytes(&bytes, Path::new("mem")).unwrap().1,
        None
    );
}

#[test]
fn truncated_or_padded_files_are_reported_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    write_safetensors(&path, &tricky_tensors()).unwrap();
    let good = std::fs::read(&path).unwrap();
    let header_end = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;

    let mut cuts = vec![0, 1, 7, 8, 20, header_end - 1, header_end, header_end + 3];
    cuts.extend([good.len() - 4, good.len() - 1]);
    for cut in cuts {
        std::fs::write(&path, &good[..cut]).unwrap();
        let err = read_safetensors(&path).unwrap_err();
        assert!(
            matches!(err, CheckpointError::Corrupt { .. }),
            "cut at {cut}: {err:?}"
        );
        if let CheckpointError::Corrupt {
            source: Some(parser),
            ..
        } = &err
        {
            // The parser's own error stays reachable as the source.
            let source = std::error::Error::source(&err).expect("a source");
            assert_eq!(source.to_string(), parser.to_string());
        }
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("{} is truncated or corrupt (", path.display())),
            "cut at {cut}: {msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
    }

    // Trailing junk is as wrong as a missing tail.
    let mut padded = good.clone();
    padded.extend_from_slice(b"junk");
    std::fs::write(&path, &padded).unwrap();
    assert!(read_safetensors(&path)
        .unwrap_err()
        .to_string()
        .contains("truncated or corrupt"));
}

#[test]
fn garbage_headers_are_reported() {
    let origin = Path::new("x.safetensors");
    // Length prefix far beyond the file (and beyond the format's header limit).
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(b"{}");
    // A plausible length followed by text that is not JSON.
    let mut not_json = 8u64.to_le_bytes().to_vec();
    not_json.extend_from_slice(b"hello!!!");
    // Valid JSON whose offsets point past the data.
    let header = br#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    let mut short = (header.len() as u64).to_le_bytes().to_vec();
    short.extend_from_slice(header);
    short.extend_from_slice(&[0; 8]);
    // Offsets that disagree with the shape.
    let header = br#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#;
    let mut mismatch = (header.len() as u64).to_le_bytes().to_vec();
    mismatch.extend_from_slice(header);
    mismatch.extend_from_slice(&[0; 16]);

    for bytes in [
        huge,
        not_json,
        short,
        mismatch,
        b"PK\x03\x04zipfile".to_vec(),
    ] {
        let err = safetensors_from_bytes(&bytes, origin).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("x.safetensors is truncated or corrupt ("),
            "{err}"
        );
    }
}

#[test]
fn unsupported_dtype_names_the_tensor_and_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ids.safetensors");
    let ids: Vec<u8> = [1i32, -2, 3].iter().flat_map(|x| x.to_le_bytes()).collect();
    let weights: Vec<u8> = [0.5f32, 1.5].iter().flat_map(|x| x.to_le_bytes()).collect();
    let bytes = safetensors::serialize(
        [
            (
                "token_ids",
                TensorView::new(Dtype::I32, vec![3], &ids).unwrap(),
            ),
            ("w", TensorView::new(Dtype::F32, vec![2], &weights).unwrap()),
        ],
        None,
    )
    .unwrap();
    std::fs::write(&path, bytes).unwrap();

    let err = read_safetensors(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: tensor `token_ids` has dtype I32, expected F32 (F64, F16 and BF16 are converted)",
            path.display()
        )
    );
}

#[test]
fn wider_and_narrower_floats_are_converted() {
    let f64s: Vec<u8> = [0.25f64, -1e300]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    // 1.0, -2.0, smallest f16 subnormal in IEEE half.
    let f16s: Vec<u8> = [0x3c00u16, 0xc000, 0x0001]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    // bfloat16 of 1.0 and -0.5.
    let bf16s: Vec<u8> = [0x3f80u16, 0xbf00]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let bytes = safetensors::serialize(
        [
            ("d", TensorView::new(Dtype::F64, vec![2], &f64s).unwrap()),
            ("h", TensorView::new(Dtype::F16, vec![3], &f16s).unwrap()),
            (
                "b",
                TensorView::new(Dtype::BF16, vec![1, 2], &bf16s).unwrap(),
            ),
        ],
        None,
    )
    .unwrap();
    let (ts, _) = safetensors_from_bytes(&bytes, Path::new("mem")).unwrap();
    assert_eq!(ts[0], t("b", &[1, 2], vec![1.0, -0.5]));
    assert_eq!(ts[1], t("d", &[2], vec![0.25, f32::NEG_INFINITY]));
    assert_eq!(ts[2], t("h", &[3], vec![1.0, -2.0, 2f32.powi(-24)]));
}

#[test]
fn missing_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.safetensors");
    assert_eq!(
        read_safetensors(&path).unwrap_err().to_string(),
        format!("{} does not exist", path.display())
    );
}

#[test]
fn write_into_a_missing_folder_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/w.safetensors");
    let msg = write_safetensors(&path, &tricky_tensors())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&dir.path().join("no/such/dir").display().to_string()),
        "{msg}"
    );
}
