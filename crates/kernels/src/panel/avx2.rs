//! The AVX2+FMA register tiles of [`super::panel_gemm_raw`], for CPUs without
//! AVX-512 (AMD EPYC up to Zen 3, most desktop CPUs).
//!
//! A 16-float panel vector is two ymm registers here, and there are 16 of
//! them, not 32: a tile of `R` rows cannot hold a whole 64-column panel. So a
//! tile runs over the panel in column chunks of `C` ymm registers, with
//! `R x C` accumulators, `C` weight vectors and one broadcast of `A` at most
//! 16 registers:
//!
//! | rows | chunk | registers |
//! | --- | --- | --- |
//! | 1 | the whole panel (up to 8 ymm) | 8 + 1 (weights feed the FMAs from memory: each is used once) |
//! | 2 | 4 ymm (32 columns) | 8 + 4 + 1 |
//! | 3 to 6 | 2 ymm (16 columns) | 12 + 2 + 1 at 6 rows, the 6x16 tile of AVX2 GEMMs |
//!
//! A chunk takes one pass over `k`, reading its columns of each panel row (a
//! stride of the panel's width); the rows of `A` it rereads are in L1.
//!
//! Every accumulator is still one sum started from `init` and taken over `k`
//! in order with FMA, as in the AVX-512 kernel, so both give the same bits.
//! bf16 panels are widened as there: per 32-bit word, a shift gives the
//! weight of `k = 2i` and a mask that of `2i + 1`.

use super::{Job, LANES};
use std::arch::x86_64::*;

/// Floats per ymm register.
const YMM: usize = 8;

/// The widest chunk (in ymm registers) a tile of `rows` rows takes at once.
fn chunk(rows: usize) -> usize {
    match rows {
        1 => 8,
        2 => 4,
        _ => 2,
    }
}

/// Runs `$kernel::<R, C>` over the chunks of a tile of `$rows` rows: the
/// panel's `2 * vectors` ymm columns, [`chunk`] at a time.
macro_rules! chunks {
    ($kernel:ident, $rows:expr, $job:expr, $b:expr, $cols:expr) => {{
        let (rows, job, b, cols): (usize, &Job, _, usize) = ($rows, $job, $b, $cols);
        let stride = cols.div_ceil(LANES) * LANES;
        let width = stride / YMM;
        let mut c = 0;
        while c < width {
            let wide = (width - c).min(chunk(rows));
            // Chunks are whole panel vectors (even ymm counts), so each starts
            // at a column below `cols`.
            let at = job.at(0, c * YMM);
            let (b, cols) = (b.add(c * YMM), cols - c * YMM);
            match (rows, wide) {
                (1, 8) => $kernel::<1, 8>(&at, b, stride, cols),
                (1, 6) => $kernel::<1, 6>(&at, b, stride, cols),
                (1, 4) => $kernel::<1, 4>(&at, b, stride, cols),
                (1, 2) => $kernel::<1, 2>(&at, b, stride, cols),
                (2, 4) => $kernel::<2, 4>(&at, b, stride, cols),
                (2, 2) => $kernel::<2, 2>(&at, b, stride, cols),
                (3, 2) => $kernel::<3, 2>(&at, b, stride, cols),
                (4, 2) => $kernel::<4, 2>(&at, b, stride, cols),
                (5, 2) => $kernel::<5, 2>(&at, b, stride, cols),
                (6, 2) => $kernel::<6, 2>(&at, b, stride, cols),
                _ => unreachable!("tile of {rows} rows, chunk of {wide} ymm"),
            }
            c += wide;
        }
    }};
}

/// A tile of `rows` (1 to 6) rows and `cols` columns of an `f32` panel, in
/// the column chunks its height allows.
///
/// # Safety
/// As [`super::portable_tile`], and the CPU has AVX2 and FMA.
pub(super) unsafe fn tile(rows: usize, job: &Job, b: *const f32, cols: usize) {
    // SAFETY: each chunk's rows and columns lie inside the tile, whose
    // operands are the caller's to read and write (its promise), and the
    // chunk's weights inside the panel (each row `stride` floats wide).
    unsafe { chunks!(kernel, rows, job, b, cols) }
}

/// [`tile`] for a bf16 panel (`[⌈k/2⌉][cols rounded up to 16]` words).
///
/// # Safety
/// As [`super::portable_tile_bf16`], and the CPU has AVX2 and FMA.
pub(super) unsafe fn tile_bf16(rows: usize, job: &Job, b: *const u32, cols: usize) {
    // SAFETY: as in [`tile`], for a panel of words.
    unsafe { chunks!(kernel_bf16, rows, job, b, cols) }
}

/// The lanes of a ymm register below `valid` (0 to 8), as a load/store mask.
#[target_feature(enable = "avx2")]
#[inline]
fn mask(valid: usize) -> __m256i {
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(valid as i32), lanes)
}

/// The valid columns of ymm `v` of a chunk `cols` wide (0 to 8).
#[inline(always)]
fn valid(cols: usize, v: usize) -> usize {
    cols.saturating_sub(v * YMM).min(YMM)
}

/// `R x C` accumulators started from `init` (masked loads for a last
/// register that is not full).
///
/// # Safety
/// As [`tile`], for `R` rows and the columns of a chunk `cols` wide.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn start<const R: usize, const C: usize>(job: &Job, cols: usize) -> [[__m256; C]; R] {
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    if job.init.is_null() {
        return acc;
    }
    for (r, row) in acc.iter_mut().enumerate() {
        for (v, s) in row.iter_mut().enumerate() {
            let valid = valid(cols, v);
            if valid == 0 {
                continue;
            }
            // SAFETY: the `valid` columns from `v * 8` on of row `r` of
            // `init` are readable (the caller's promise).
            *s = unsafe {
                let src = job.init.add(r * job.init_rs + v * YMM);
                if valid == YMM {
                    _mm256_loadu_ps(src)
                } else {
                    _mm256_maskload_ps(src, mask(valid))
                }
            };
        }
    }
    acc
}

/// Stores the valid columns of the accumulators to `Y`.
///
/// # Safety
/// As [`start`].
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn finish<const R: usize, const C: usize>(job: &Job, cols: usize, acc: &[[__m256; C]; R]) {
    for (r, row) in acc.iter().enumerate() {
        for (v, &s) in row.iter().enumerate() {
            let valid = valid(cols, v);
            if valid == 0 {
                continue;
            }
            // SAFETY: the `valid` columns from `v * 8` on of row `r` of `Y`
            // are the caller's to write.
            unsafe {
                let dst = job.y.add(r * job.ldy + v * YMM);
                if valid == YMM {
                    _mm256_storeu_ps(dst, s);
                } else {
                    _mm256_maskstore_ps(dst, mask(valid), s);
                }
            }
        }
    }
}

/// One chunk of an `f32` panel: `R x C` accumulators, one pass over `k` in
/// order, the panel's rows `stride` floats apart.
///
/// # Safety
/// As [`tile`], for `R` rows, a chunk `cols` wide (valid columns, at least
/// 1) and `C` ymm registers of weights at `b` in each of the `k` panel rows.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel<const R: usize, const C: usize>(
    job: &Job,
    b: *const f32,
    stride: usize,
    cols: usize,
) {
    // SAFETY: the caller's promises.
    let mut acc = unsafe { start::<R, C>(job, cols) };
    let mut bp = b;
    for kk in 0..job.k {
        // SAFETY: the chunk has `k` rows of `C` registers, and each of the
        // `R` rows of `A` `k` floats (the caller's promises).
        unsafe {
            let mut wv = [_mm256_setzero_ps(); C];
            for (v, x) in wv.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(bp.add(v * YMM));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*job.a.add(r * job.lda + kk));
                for (s, &x) in row.iter_mut().zip(&wv) {
                    *s = _mm256_fmadd_ps(av, x, *s);
                }
            }
            // Wrapping: past the last row this points beyond the panel, unread.
            bp = bp.wrapping_add(stride);
        }
    }
    // SAFETY: the caller's promises.
    unsafe { finish::<R, C>(job, cols, &acc) };
}

/// [`kernel`] for a bf16 panel: the shift of a word vector gives the
/// weights of `k = 2i`, its mask those of `2i + 1`; every accumulator still
/// takes its `k` in order.
///
/// # Safety
/// As [`kernel`], with `⌈k/2⌉` panel rows of words.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_bf16<const R: usize, const C: usize>(
    job: &Job,
    b: *const u32,
    stride: usize,
    cols: usize,
) {
    // SAFETY: the caller's promises.
    let mut acc = unsafe { start::<R, C>(job, cols) };
    let high = _mm256_set1_epi32(0xffff_0000u32 as i32);
    let mut bp = b;
    for i in 0..job.k / 2 {
        // SAFETY: the chunk has `⌈k/2⌉` rows of `C` registers, and each of
        // the `R` rows of `A` `k` floats (the caller's promises).
        unsafe {
            let mut wv = [_mm256_setzero_ps(); C];
            for (v, x) in wv.iter_mut().enumerate() {
                let words = _mm256_loadu_si256(bp.add(v * YMM) as *const __m256i);
                *x = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(words));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*job.a.add(r * job.lda + 2 * i));
                for (s, &x) in row.iter_mut().zip(&wv) {
                    *s = _mm256_fmadd_ps(av, x, *s);
                }
            }
            for (v, x) in wv.iter_mut().enumerate() {
                let words = _mm256_loadu_si256(bp.add(v * YMM) as *const __m256i);
                *x = _mm256_castsi256_ps(_mm256_and_si256(words, high));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*job.a.add(r * job.lda + 2 * i + 1));
                for (s, &x) in row.iter_mut().zip(&wv) {
                    *s = _mm256_fmadd_ps(av, x, *s);
                }
            }
            // Wrapping: past the last row this points beyond the panel, unread.
            bp = bp.wrapping_add(stride);
        }
    }
    if job.k % 2 == 1 {
        let last = job.k - 1;
        // SAFETY: as above, for the last row of the chunk.
        unsafe {
            let mut wv = [_mm256_setzero_ps(); C];
            for (v, x) in wv.iter_mut().enumerate() {
                let words = _mm256_loadu_si256(bp.add(v * YMM) as *const __m256i);
                *x = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(words));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*job.a.add(r * job.lda + last));
                for (s, &x) in row.iter_mut().zip(&wv) {
                    *s = _mm256_fmadd_ps(av, x, *s);
                }
            }
        }
    }
    // SAFETY: the caller's promises.
    unsafe { finish::<R, C>(job, cols, &acc) };
}
