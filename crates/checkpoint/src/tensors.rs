//! Named f32 tensors to and from the safetensors format.
//!
//! We build the header ourselves (with the safetensors crate's own `Metadata`
//! type, so the JSON is exactly what it would write) because
//! `safetensors::serialize` reorders tensors by dtype and name, and we promise to
//! keep the caller's order in the file. Reading goes through the crate's
//! validating parser, so every offset and length is checked before we touch data.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensorError, SafeTensors};

use crate::atomic::{atomic_write, read_bytes};
use crate::CheckpointError;

/// Header key reserved by the format for the free-form string map.
const METADATA_KEY: &str = "__metadata__";

/// Largest header the reference parser accepts (it is not exported by the crate).
const MAX_HEADER_SIZE: usize = 100_000_000;

/// The free-form string map a safetensors header may carry under `__metadata__`.
pub type HeaderMetadata = HashMap<String, String>;

/// A named f32 tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Unique name within one file, e.g. `"lstm.0.weight_ih"`.
    pub name: String,
    /// Dimensions, outermost first; `[]` is a scalar.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values in row-major order.
    pub data: Vec<f32>,
}

/// Serialize tensors (kept in the given order) and an optional string map into safetensors bytes.
pub fn safetensors_bytes(
    tensors: &[Tensor],
    metadata: Option<HeaderMetadata>,
) -> Result<Vec<u8>, CheckpointError> {
    let mut seen = HashSet::with_capacity(tensors.len());
    let mut infos = Vec::with_capacity(tensors.len());
    let mut offset = 0usize;
    for t in tensors {
        let invalid = |reason: String| CheckpointError::InvalidTensor {
            name: t.name.clone(),
            reason,
        };
        if t.name == METADATA_KEY {
            return Err(invalid(format!(
                "`{METADATA_KEY}` is reserved by safetensors"
            )));
        }
        if !seen.insert(t.name.as_str()) {
            return Err(invalid("the name is used by another tensor".into()));
        }
        let numel = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if numel != Some(t.data.len()) {
            return Err(invalid(format!(
                "shape {:?} does not match its {} values",
                t.shape,
                t.data.len()
            )));
        }
        let len = t.data.len() * 4;
        infos.push((
            t.name.clone(),
            TensorInfo {
                dtype: Dtype::F32,
                shape: t.shape.clone(),
                data_offsets: (offset, offset + len),
            },
        ));
        offset += len;
    }

    let encode_err = |reason: &str| {
        let reason = reason.to_string();
        move |e: Box<dyn std::error::Error + Send + Sync>| CheckpointError::Encode {
            reason,
            source: Some(e),
        }
    };
    let header = Metadata::new(metadata, infos)
        .map_err(|e| encode_err("the header does not describe the tensors")(e.into()))?;
    let mut header = serde_json::to_vec(&header)
        .map_err(|e| encode_err("the header does not serialize")(e.into()))?;
    // Pad with spaces to a multiple of 8 so the data section starts aligned, as
    // the reference writer does (readers may mmap and cast in place).
    header.resize(header.len().next_multiple_of(8), b' ');
    if header.len() > MAX_HEADER_SIZE {
        return Err(CheckpointError::Encode {
            reason: format!(
                "the header is {} bytes, over the format's limit of {MAX_HEADER_SIZE}",
                header.len()
            ),
            source: None,
        });
    }

    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for t in tensors {
        for x in &t.data {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    Ok(out)
}

/// Parse safetensors bytes into tensors sorted by name plus the optional string map; `origin` names the file in errors.
pub fn safetensors_from_bytes(
    bytes: &[u8],
    origin: &Path,
) -> Result<(Vec<Tensor>, Option<HeaderMetadata>), CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: origin.to_path_buf(),
        reason,
        source: None,
    };
    let (header_len, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| CheckpointError::Corrupt {
            path: origin.to_path_buf(),
            reason: describe(&e),
            source: Some(e),
        })?;
    let data = bytes
        .get(8 + header_len..)
        .ok_or_else(|| corrupt("data section missing".into()))?;

    let mut tensors = Vec::with_capacity(header.tensors().len());
    for (name, info) in header.tensors() {
        let (start, end) = info.data_offsets;
        // read_metadata has checked the offsets; this guard only keeps us panic-free.
        let raw = data
            .get(start..end)
            .ok_or_else(|| corrupt(format!("tensor `{name}` lies outside the file")))?;
        let values = to_f32(info.dtype, raw).ok_or_else(|| CheckpointError::WrongDtype {
            path: origin.to_path_buf(),
            tensor: name.clone(),
            dtype: info.dtype.to_string(),
        })?;
        tensors.push(Tensor {
            name,
            shape: info.shape.clone(),
            data: values,
        });
    }
    // The header is a JSON object, so file order carries no meaning on read; sort
    // so callers get a deterministic order.
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((tensors, header.metadata().clone()))
}

/// Refuses tensors holding a NaN or an infinity, naming the first such
/// tensor and value; `origin` names the file in the error.
pub fn check_finite(tensors: &[Tensor], origin: &Path) -> Result<(), CheckpointError> {
    for t in tensors {
        if let Some(index) = t.data.iter().position(|x| !x.is_finite()) {
            return Err(CheckpointError::NonFinite {
                path: origin.to_path_buf(),
                tensor: t.name.clone(),
                shape: t.shape.clone(),
                index,
                value: t.data[index],
            });
        }
    }
    Ok(())
}

/// Write tensors (in the given order, no string map) to a safetensors file atomically.
pub fn write_safetensors(path: &Path, tensors: &[Tensor]) -> Result<(), CheckpointError> {
    atomic_write(path, &safetensors_bytes(tensors, None)?)
}

/// Read every tensor of a safetensors file as f32, sorted by name.
pub fn read_safetensors(path: &Path) -> Result<Vec<Tensor>, CheckpointError> {
    let bytes = read_bytes(path)?;
    Ok(safetensors_from_bytes(&bytes, path)?.0)
}

/// The parenthesised reason of a "truncated or corrupt" message for a parser
/// error (which stays attached as the source).
fn describe(e: &SafeTensorError) -> String {
    match e {
        // The header's length prefix or offsets point past the end of the file:
        // by far the most common cause is a file cut short by a crash or a full disk.
        SafeTensorError::HeaderTooSmall
        | SafeTensorError::InvalidHeaderLength
        | SafeTensorError::MetadataIncompleteBuffer => {
            "the file is shorter or longer than its header says".to_string()
        }
        _ => "its header does not parse".to_string(),
    }
}

/// Decode little-endian values of a float dtype to f32; `None` for dtypes we do not accept.
fn to_f32(dtype: Dtype, raw: &[u8]) -> Option<Vec<f32>> {
    let values = match dtype {
        Dtype::F32 => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        // Narrowing: values beyond f32 range become infinite, as with PyTorch's `.float()`.
        Dtype::F64 => raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        Dtype::F16 => raw
            .chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        // bfloat16 is the top half of an f32.
        Dtype::BF16 => raw
            .chunks_exact(2)
            .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
            .collect(),
        _ => return None,
    };
    Some(values)
}

/// Exact IEEE half to single conversion (every f16 value is representable in f32).
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = (h >> 10) & 0x1f;
    let mant = (h & 0x3ff) as u32;
    match exp {
        // Zero and subnormals: mant * 2^-24, exact in f32.
        0 => sign * (mant as f32) * f32::from_bits(0x3380_0000),
        // Infinities and NaNs keep their payload bits.
        0x1f => f32::from_bits(((h as u32 & 0x8000) << 16) | 0x7f80_0000 | (mant << 13)),
        _ => {
            f32::from_bits(((h as u32 & 0x8000) << 16) | ((exp as u32 + 112) << 23) | (mant << 13))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_matches_known_values() {
        assert_eq!(f16_to_f32(0x0000).to_bits(), 0.0f32.to_bits());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn bad_tensors_are_rejected_on_write() {
        let t = |name: &str, shape: Vec<usize>, n: usize| Tensor {
            name: name.into(),
            shape,
            data: vec![0.0; n],
        };
        let msg = |r: Result<Vec<u8>, CheckpointError>| r.unwrap_err().to_string();
        assert!(msg(safetensors_bytes(&[t("w", vec![2, 3], 5)], None))
            .contains("cannot save tensor `w`: shape [2, 3] does not match its 5 values"));
        assert!(msg(safetensors_bytes(
            &[t("w", vec![1], 1), t("w", vec![1], 1)],
            None
        ))
        .contains("`w`: the name is used by another tensor"));
        assert!(
            msg(safetensors_bytes(&[t("__metadata__", vec![1], 1)], None)).contains("reserved")
        );
        assert!(msg(safetensors_bytes(&[t("w", vec![usize::MAX, 2], 0)], None)).contains("shape"));
    }
}
