//! The AVX2+FMA register tile of the packed and blocked products, for CPUs
//! without AVX-512 (AMD EPYC up to Zen 3, most desktop CPUs).
//!
//! It reads the AVX-512 kernel's operands as they are packed: `[k][32]`
//! panels of `B` and `[k][mr]` row tiles of `A` (up to 12 rows). With 16 ymm
//! registers instead of 32 zmm, a tile cannot hold all its sums at once, so
//! it runs as one or two sub-tiles of at most 6 rows,
//! each over the panel in column chunks with `R x C` accumulators, `C`
//! vectors of `B` and one broadcast of `A`:
//!
//! | rows | chunk | registers |
//! | --- | --- | --- |
//! | 1 to 2 | 32 columns (4 ymm) | 8 + 4 + 1 at 2 rows |
//! | 3 to 6 | 16 columns (2 ymm) | 12 + 2 + 1 at 6 rows, the 6x16 tile of AVX2 GEMMs |
//!
//! A tile of more than 6 rows runs as 6 rows and then the rest (8 is 6 + 2,
//! which measured a little faster than 4 + 4), and the last chunk of a
//! panel with at most 8 valid columns is one register wide.
//!
//! Every element of `C` is still one FMA sum over `k` in order, started from
//! zero, and then the epilogue: the bits of the AVX-512 kernel.

use std::arch::x86_64::*;

use super::{Epilogue, Tile, NR};

/// Floats per ymm register.
const YMM: usize = 8;
/// The most rows a sub-tile holds.
const SUB_MR: usize = 6;

/// A tile of `mr` rows (1 to 12) and `t.cols` columns (1 to 32).
///
/// # Safety
/// As [`super::tile`], but the CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn tile(mr: usize, t: Tile) {
    // Six rows, then the rest: 8 is 6 + 2 (the 2 rows take 32 columns a pass).
    let mut prefetch = t.prefetch;
    let mut i0 = 0;
    while i0 < mr {
        let rows = (mr - i0).min(SUB_MR);
        let wide = if rows <= 2 { 4 } else { 2 };
        let mut c0 = 0;
        while c0 * YMM < t.cols {
            // A last chunk of at most 8 valid columns (a vocabulary of 65 leaves
            // one) takes one register a row, not a whole chunk of zeros.
            let chunk = if t.cols - c0 * YMM <= YMM { 1 } else { wide };
            let sub = Sub {
                i0,
                c0,
                stride: mr,
                prefetch,
            };
            // The first pass over `k` fetches the next panel for all of them.
            prefetch = super::Prefetch::NONE;
            // SAFETY: the sub-tile's rows and columns lie inside the tile
            // (the caller's promises).
            unsafe {
                match (rows, chunk) {
                    (1, 4) => kernel::<1, 4>(&t, sub),
                    (2, 4) => kernel::<2, 4>(&t, sub),
                    (3, 2) => kernel::<3, 2>(&t, sub),
                    (4, 2) => kernel::<4, 2>(&t, sub),
                    (5, 2) => kernel::<5, 2>(&t, sub),
                    (6, 2) => kernel::<6, 2>(&t, sub),
                    (1, 1) => kernel::<1, 1>(&t, sub),
                    (2, 1) => kernel::<2, 1>(&t, sub),
                    (3, 1) => kernel::<3, 1>(&t, sub),
                    (4, 1) => kernel::<4, 1>(&t, sub),
                    (5, 1) => kernel::<5, 1>(&t, sub),
                    (6, 1) => kernel::<6, 1>(&t, sub),
                    (rows, chunk) => unreachable!("sub-tile of {rows} rows, chunk of {chunk} ymm"),
                }
            }
            c0 += chunk;
        }
        i0 += rows;
    }
}

/// Where a sub-tile sits in its tile.
#[derive(Clone, Copy)]
struct Sub {
    /// First row (of the tile).
    i0: usize,
    /// First ymm column (of the panel).
    c0: usize,
    /// Rows of the packed `A` tile: its row `i` at `k = p` is `ap[p * stride + i]`.
    stride: usize,
    prefetch: super::Prefetch,
}

/// The lanes of a ymm register below `valid` (0 to 8), as a load/store mask.
#[target_feature(enable = "avx2")]
#[inline]
fn mask(valid: usize) -> __m256i {
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(valid as i32), lanes)
}

/// `R x C` accumulators over the sub-tile's rows and column chunk, one pass
/// over `k`, then the tile's epilogue for the chunk's valid columns.
///
/// # Safety
/// As [`tile`], with the sub-tile inside the tile and at least one valid
/// column in its chunk.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn kernel<const R: usize, const C: usize>(t: &Tile, sub: Sub) {
    let Sub {
        i0,
        c0,
        stride,
        prefetch,
    } = sub;
    // Wrapping: only the loop below reads through these, inside the tile.
    let (ap, bp) = (t.ap.wrapping_add(i0), t.bp.wrapping_add(c0 * YMM));
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let lines = prefetch.lines.min(t.k);
    for p in 0..t.k {
        if p < lines {
            // A hint: it never faults, whatever the address.
            _mm_prefetch::<_MM_HINT_T1>(prefetch.at.wrapping_add(p * 16) as *const i8);
        }
        // SAFETY: the panel holds `[k][NR]` and the `A` tile `[k][stride]`
        // floats, and the chunk's columns and sub-tile's rows lie inside them
        // (the caller's promises).
        unsafe {
            let mut b = [_mm256_setzero_ps(); C];
            for (v, x) in b.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(bp.add(p * NR + v * YMM));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let a = _mm256_broadcast_ss(&*ap.add(p * stride + i));
                for (s, &b) in row.iter_mut().zip(&b) {
                    *s = _mm256_fmadd_ps(a, b, *s);
                }
            }
        }
    }
    let cols = t.cols - c0 * YMM;
    for (i, row) in acc.iter().enumerate() {
        for (v, &r) in row.iter().enumerate() {
            let valid = cols.saturating_sub(v * YMM).min(YMM);
            if valid == 0 {
                break;
            }
            let col = (c0 + v) * YMM;
            let m = mask(valid);
            // SAFETY: `valid` columns from `col` are inside `C` (and the added
            // row) in each row of the tile (the caller's promise).
            unsafe {
                let dst = t.c.add((i0 + i) * t.ldc + col);
                let add = match t.epilogue {
                    Epilogue::Store => None,
                    Epilogue::Accumulate => Some(dst.cast_const()),
                    Epilogue::AddRow(row) => Some(row.add(col)),
                };
                let r = match add {
                    None => r,
                    Some(src) if valid == YMM => _mm256_add_ps(r, _mm256_loadu_ps(src)),
                    Some(src) => _mm256_add_ps(r, _mm256_maskload_ps(src, m)),
                };
                if valid == YMM {
                    _mm256_storeu_ps(dst, r);
                } else {
                    _mm256_maskstore_ps(dst, m, r);
                }
            }
        }
    }
}
