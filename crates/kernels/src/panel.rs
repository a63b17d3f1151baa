//! Products `Y[m, n] = init + A[m, k] · Wᵀ` with a tiny `m` (one row per
//! generated stream: 1 at batch 1, 64 at batch 64) against a weight matrix
//! packed once per model and reused for every token.
//!
//! At `m = 1` such a product is a matrix-vector product: each weight is used
//! once, so its speed is how fast the weights stream in (about 13 MB per token
//! for a 2x512 LSTM, which fits in L3). Everything here serves that: the
//! columns of `W` (the rows of the PyTorch weight) are packed into panels of
//! `P` vectors of [`LANES`] columns, each panel one contiguous `[k][P * 16]`
//! block, so that one thread reads its panels front to back in one sequential
//! stream, with no packing, no `A` reshuffle and no thread hand-off per call.
//!
//! The caller chooses which weight row lands in which packed column: the
//! recurrent layers interleave their gates so that one panel holds every gate
//! of 16 hidden units, and the cell update can run right after the panel's
//! product while its sums are still in L1.
//!
//! Every output element is one sum, started from `init` and taken over `k` in
//! order, whatever the row count, panel range or thread: results do not depend
//! on the batch size or on how the work is split (they do depend on the
//! instruction set, since the AVX-512 kernel uses FMA).
//!
//! [`WeightFormat::Bf16`] stores the weights as bfloat16, half the bytes to
//! stream, for generation where a matrix-vector product is bound by them. Two
//! consecutive `k` share one 32-bit word (`k` even in the low half), so one
//! load, one shift and one mask give two `f32` weight vectors; the sums are
//! still `f32` and in the same order, so a bf16 matrix gives exactly the
//! results of an `f32` matrix packed from the same weights rounded with
//! [`round_bf16`].

use std::ops::Range;
use std::sync::Mutex;

use crate::gemm::Trans;
use crate::packed::AlignedBuf;
use crate::shared::SharedRows;
use crate::simd::{has_avx2, has_avx512};
use crate::view::{MatMut, MatRef};

/// How a [`PanelMatrix`] stores its weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightFormat {
    /// As given.
    #[default]
    F32,
    /// Rounded to bfloat16 (8 bits of mantissa, nearest even): half the bytes.
    Bf16,
}

/// The bfloat16 bits of `x`, rounded to nearest even (NaN stays NaN).
pub fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let lsb = (bits >> 16) & 1;
    (bits.wrapping_add(0x7fff + lsb) >> 16) as u16
}

/// `x` rounded to the nearest bfloat16 (ties to even), as an `f32`.
pub fn round_bf16(x: f32) -> f32 {
    f32::from_bits((bf16_bits(x) as u32) << 16)
}

/// Columns per vector (one AVX-512 register of `f32`).
pub const LANES: usize = 16;
/// The most vectors a panel may hold.
pub const MAX_VECTORS: usize = 4;
/// Rows of `A` per register tile: `6 x 4` accumulators plus the 4 vectors of
/// `W` leave 4 of the 32 zmm registers free.
pub const TILE_ROWS: usize = 6;

/// A weight matrix of `n` packed columns by `k`, in panels of `vectors * 16`
/// columns (the last panel may be narrower, still a multiple of 16).
///
/// In `f32`, panel `p` starts at `p * k * width` and is `[k][width_p]`; in
/// bf16 it starts at `p * ⌈k/2⌉ * width` words and is `[⌈k/2⌉][width_p]`, each
/// word the bf16 weights of `2i` (low half) and `2i + 1` (high half, zero past
/// `k`). Columns without a source row (padding) are zero.
#[derive(Default, Clone)]
pub struct PanelMatrix {
    k: usize,
    n: usize,
    vectors: usize,
    storage: Storage,
}

/// Writes row `r` of a panel from the panel's source columns: `fill(sources, r, row)`.
type FillRow<'f, T> = dyn Fn(&[&[f32]], usize, &mut [T]) + Sync + 'f;

#[derive(Clone)]
enum Storage {
    F32(AlignedBuf),
    Bf16(AlignedBuf<u32>),
}

impl Default for Storage {
    fn default() -> Storage {
        Storage::F32(AlignedBuf::default())
    }
}

impl PanelMatrix {
    /// Packs `n` columns of length `k`: column `j` is `row(j)[..k]`, or zeros
    /// when `row(j)` is `None`. `vectors` (1 to [`MAX_VECTORS`]) sets the panel
    /// width; the caller's column order decides what shares a panel.
    ///
    /// # Panics
    /// If `vectors` is outside `1..=MAX_VECTORS` or a column is shorter than `k`.
    pub fn pack<'a>(
        k: usize,
        n: usize,
        vectors: usize,
        format: WeightFormat,
        row: impl Fn(usize) -> Option<&'a [f32]> + Sync,
    ) -> PanelMatrix {
        Self::pack_on(k, n, vectors, format, row, crate::threads::threads())
    }

    /// [`PanelMatrix::pack`] on up to `threads` threads.
    fn pack_on<'a>(
        k: usize,
        n: usize,
        vectors: usize,
        format: WeightFormat,
        row: impl Fn(usize) -> Option<&'a [f32]> + Sync,
        threads: usize,
    ) -> PanelMatrix {
        assert!((1..=MAX_VECTORS).contains(&vectors), "panel width");
        let mut m = PanelMatrix {
            k,
            n,
            vectors,
            storage: Storage::default(),
        };
        let zeros = vec![0.0; k];
        let source = |j: usize| if j < n { row(j) } else { None }.unwrap_or(&zeros);
        m.storage = match format {
            WeightFormat::F32 => {
                let mut buf = AlignedBuf::default();
                let out = buf.resize(n.div_ceil(LANES) * LANES * k);
                m.pack_panels(out, k, threads, &source, &|sources, kk, dst| {
                    for (d, src) in dst.iter_mut().zip(sources) {
                        *d = src[kk];
                    }
                });
                Storage::F32(buf)
            }
            WeightFormat::Bf16 => {
                let mut buf = AlignedBuf::<u32>::default();
                let pairs = k.div_ceil(2);
                let out = buf.resize(n.div_ceil(LANES) * LANES * pairs);
                m.pack_panels(out, pairs, threads, &source, &|sources, i, dst| {
                    for (d, src) in dst.iter_mut().zip(sources) {
                        let hi = if 2 * i + 1 < k { src[2 * i + 1] } else { 0.0 };
                        *d = bf16_bits(src[2 * i]) as u32 | (bf16_bits(hi) as u32) << 16;
                    }
                });
                Storage::Bf16(buf)
            }
        };
        m
    }

    /// Fills `out`, the panels in order, each `[rows][its width]`, calling
    /// `fill(panel's source columns, row, panel row)` for each row, in
    /// contiguous shares for the threads: packing 13 MB (page faults
    /// included) takes long enough against a 1000-token generation to be
    /// worth two cores. The stores run row by row, sequentially, and the loads
    /// hit one cache line per column, which stays in L1 for 16 rows.
    fn pack_panels<'a, T: Send>(
        &self,
        out: &mut [T],
        rows: usize,
        threads: usize,
        source: &(dyn Fn(usize) -> &'a [f32] + Sync),
        fill: &FillRow<'_, T>,
    ) {
        let mut panels: Vec<&mut [T]> = out.chunks_mut(self.panel_width() * rows.max(1)).collect();
        let per = panels.len().div_ceil(threads.max(1)).max(1);
        let shares: Vec<Mutex<&mut [&mut [T]]>> = panels.chunks_mut(per).map(Mutex::new).collect();
        crate::threads::parallel_for(shares.len(), &|i| {
            for (q, panel) in shares[i].lock().unwrap().iter_mut().enumerate() {
                let first = self.panel_cols(i * per + q).start;
                let width = panel.len() / rows.max(1);
                let sources: Vec<&[f32]> = (first..first + width).map(source).collect();
                for (r, dst) in panel.chunks_exact_mut(width.max(1)).take(rows).enumerate() {
                    fill(&sources, r, dst);
                }
            }
        });
    }

    /// How the weights are stored.
    pub fn format(&self) -> WeightFormat {
        match self.storage {
            Storage::F32(_) => WeightFormat::F32,
            Storage::Bf16(_) => WeightFormat::Bf16,
        }
    }

    /// `(k, n)`: the length of a column and the number of packed columns.
    pub fn shape(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// Number of panels.
    pub fn panels(&self) -> usize {
        self.n.div_ceil(self.vectors * LANES)
    }

    /// Columns of full panels.
    pub fn panel_width(&self) -> usize {
        self.vectors * LANES
    }

    /// The packed columns panel `p` computes.
    pub fn panel_cols(&self, p: usize) -> Range<usize> {
        let w = self.panel_width();
        p * w..((p + 1) * w).min(self.n)
    }

    /// Bytes of packed weights.
    pub fn bytes(&self) -> usize {
        let cols = self.n.div_ceil(LANES) * LANES;
        match self.storage {
            Storage::F32(_) => cols * self.k * 4,
            Storage::Bf16(_) => cols * self.k.div_ceil(2) * 4,
        }
    }
}

/// Where a product's sums start.
#[derive(Clone, Copy, Debug)]
pub enum Init<'a> {
    /// From zero: `Y = A · Wᵀ`.
    Zero,
    /// From a row of `n` values broadcast down the rows (a bias in packed
    /// column order): `Y = row + A · Wᵀ`.
    Row(&'a [f32]),
    /// From the output's old contents: `Y += A · Wᵀ`.
    Accumulate,
}

/// `Y[i, j] = init + Σ_k A[i, k] · W[j, k]` for the rows `i` of `A` (`[m, k]`,
/// as stored) and the columns of `panels`; `Y` is `[m, n]` (packed column `j`
/// at offset `j`). Columns outside `panels` are untouched.
///
/// # Panics
/// If `A` is a transposed view, the shapes do not fit together, `panels`
/// runs past `w`'s panels, or `Init::Row` holds fewer than `n` values.
#[track_caller]
pub fn panel_gemm(
    a: MatRef<'_>,
    w: &PanelMatrix,
    panels: Range<usize>,
    init: Init<'_>,
    mut y: MatMut<'_>,
) {
    let m = a.rows();
    assert!(
        a.trans() == Trans::N && a.cols() == w.k && y.rows() == m && y.cols() == w.n,
        "panel_gemm: [{}, {}]{} · [{}, {}]ᵀ does not give [{}, {}]",
        a.rows(),
        a.cols(),
        if a.trans() == Trans::T {
            " (transposed)"
        } else {
            ""
        },
        w.n,
        w.k,
        y.rows(),
        y.cols()
    );
    if m == 0 || panels.is_empty() {
        return;
    }
    assert!(panels.end <= w.panels(), "panel_gemm: panel out of range");
    if let Init::Row(r) = init {
        assert!(r.len() >= w.n, "panel_gemm: init row");
    }
    let a = Rows::new(a.data().as_ptr(), a.ld());
    let y = Rows::new(y.data().as_mut_ptr(), y.ld());
    // SAFETY: the views and the asserts cover every element read or written.
    unsafe { panel_gemm_raw(m, a, w, panels, init, y) }
}

/// [`panel_gemm`] into rows `rows` of a shared output `y` (rows at least
/// `n` wide) that other tasks write at other rows or other panels' columns:
/// the threads of a generation step split one product's panels this way.
///
/// # Panics
/// As [`panel_gemm`] (with `a` holding `rows.len()` rows), and if the rows
/// or the panels' columns lie outside `y`.
///
/// # Safety
/// While it runs, nothing else may read or write the columns of `panels` in
/// rows `rows` of `y`.
#[track_caller]
pub unsafe fn panel_gemm_shared(
    a: MatRef<'_>,
    w: &PanelMatrix,
    panels: Range<usize>,
    init: Init<'_>,
    y: &SharedRows<'_, f32>,
    rows: Range<usize>,
) {
    let m = a.rows();
    assert!(
        a.trans() == Trans::N && a.cols() == w.k && m == rows.len(),
        "panel_gemm_shared: [{}, {}]{} · [{}, {}]ᵀ into {} rows",
        a.rows(),
        a.cols(),
        if a.trans() == Trans::T {
            " (transposed)"
        } else {
            ""
        },
        w.n,
        w.k,
        rows.len()
    );
    if m == 0 || panels.is_empty() {
        return;
    }
    assert!(
        panels.end <= w.panels(),
        "panel_gemm_shared: panel out of range"
    );
    if let Init::Row(r) = init {
        assert!(r.len() >= w.n, "panel_gemm_shared: init row");
    }
    let (y, ldy) = y.check_block(rows, 0..w.panel_cols(panels.end - 1).end);
    let a = Rows::new(a.data().as_ptr(), a.ld());
    // SAFETY: the view `a` holds its rows; the block of `y` is inside the
    // buffer (checked above) and the caller's alone (its promise).
    unsafe { panel_gemm_raw(m, a, w, panels, init, Rows::new(y, ldy)) }
}

/// Rows of a matrix behind a raw pointer, `ld` elements apart: the operands
/// of [`panel_gemm_raw`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rows<P> {
    /// The first element of the first row.
    pub ptr: P,
    /// Distance between consecutive rows.
    pub ld: usize,
}

impl<P> Rows<P> {
    /// Rows `ld` apart from `ptr` on.
    pub fn new(ptr: P, ld: usize) -> Rows<P> {
        Rows { ptr, ld }
    }
}

/// [`panel_gemm`] on raw pointers, for threads that write disjoint columns of
/// the same rows of `Y` (which slices cannot express).
///
/// # Safety
/// `a` must be valid for reads of `m` rows (the first `k` of each read), `y`
/// for reads and writes of the columns of `panels` in `m` rows, `Init::Row`
/// must hold `n` values, and nothing else may access those columns of `y`
/// meanwhile.
pub(crate) unsafe fn panel_gemm_raw(
    m: usize,
    a: Rows<*const f32>,
    w: &PanelMatrix,
    panels: Range<usize>,
    init: Init<'_>,
    y: Rows<*mut f32>,
) {
    let (a, lda, y, ldy) = (a.ptr, a.ld, y.ptr, y.ld);
    let (init_ptr, init_rs) = match init {
        Init::Zero => (std::ptr::null(), 0),
        Init::Row(r) => (r.as_ptr(), 0),
        Init::Accumulate => (y as *const f32, ldy),
    };
    let job = Job {
        k: w.k,
        a,
        lda,
        init: init_ptr,
        init_rs,
        y,
        ldy,
    };
    let avx512 = has_avx512();
    let avx2 = !avx512 && has_avx2();
    for p in panels {
        let cols = w.panel_cols(p);
        // Tiles of nearly equal height (32 rows: 5 5 5 5 6 6, not 6 6 6 6 6 2):
        // a short tile reloads the panel for few rows.
        let tiles = m.div_ceil(TILE_ROWS);
        for t in 0..tiles {
            let (r0, r1) = (m * t / tiles, m * (t + 1) / tiles);
            // SAFETY: row `r0 < m` and column `cols.start < n` of the operands
            // (the caller's promise).
            let at = unsafe { job.at(r0, cols.start) };
            // SAFETY (each tile below): the tile's rows and columns are the
            // caller's to read and write (its promise), and the panel, sliced
            // from the matrix (which holds `k` or `⌈k/2⌉` rows of each panel's
            // width), holds what the tile reads; the instruction set was checked.
            match &w.storage {
                Storage::F32(buf) => {
                    let b = buf.get()[p * w.panel_width() * w.k..].as_ptr();
                    #[cfg(target_arch = "x86_64")]
                    if avx512 {
                        // SAFETY: see above.
                        unsafe { avx512::tile(r1 - r0, &at, b, cols.len()) };
                        continue;
                    }
                    #[cfg(target_arch = "x86_64")]
                    if avx2 {
                        // SAFETY: see above.
                        unsafe { avx2::tile(r1 - r0, &at, b, cols.len()) };
                        continue;
                    }
                    // SAFETY: see above.
                    unsafe { portable_tile(r1 - r0, &at, b, cols.len()) };
                }
                Storage::Bf16(buf) => {
                    let b = buf.get()[p * w.panel_width() * w.k.div_ceil(2)..].as_ptr();
                    #[cfg(target_arch = "x86_64")]
                    if avx512 {
                        // SAFETY: see above.
                        unsafe { avx512::tile_bf16(r1 - r0, &at, b, cols.len()) };
                        continue;
                    }
                    #[cfg(target_arch = "x86_64")]
                    if avx2 {
                        // SAFETY: see above.
                        unsafe { avx2::tile_bf16(r1 - r0, &at, b, cols.len()) };
                        continue;
                    }
                    // SAFETY: see above.
                    unsafe { portable_tile_bf16(r1 - r0, &at, b, cols.len()) };
                }
            }
        }
    }
    let _ = (avx512, avx2);
}

/// The operands of one product, or of one tile once moved by [`Job::at`].
#[derive(Clone, Copy)]
struct Job {
    k: usize,
    a: *const f32,
    lda: usize,
    /// Null for zero; row stride 0 for a broadcast row.
    init: *const f32,
    init_rs: usize,
    y: *mut f32,
    ldy: usize,
}

impl Job {
    /// The same product seen from row `r0` and column `c0` on.
    ///
    /// # Safety
    /// Row `r0` and column `c0` must lie inside the operands.
    unsafe fn at(&self, r0: usize, c0: usize) -> Job {
        // SAFETY: the caller's promise; a broadcast row (stride 0) has `c0`.
        unsafe {
            Job {
                a: self.a.add(r0 * self.lda),
                init: if self.init.is_null() {
                    self.init
                } else {
                    self.init.add(r0 * self.init_rs + c0)
                },
                y: self.y.add(r0 * self.ldy + c0),
                ..*self
            }
        }
    }
}

/// Any instruction set: the same sums (without FMA), one row at a time,
/// vectorized by LLVM for what the CPU has.
///
/// # Safety
/// As [`panel_gemm_raw`], for `rows` rows at `job` and `cols` columns of the
/// panel at `b` (`[k][cols rounded up to 16]`).
unsafe fn portable_tile(rows: usize, job: &Job, b: *const f32, cols: usize) {
    let w = cols.div_ceil(LANES) * LANES;
    // SAFETY: the caller's promises, passed on.
    unsafe {
        let panel = std::slice::from_raw_parts(b, job.k * w);
        portable_rows(rows, job, cols, |acc, a| portable_row(acc, a, panel));
    }
}

/// [`portable_tile`] for a bf16 panel (`[⌈k/2⌉][cols rounded up to 16]` words).
///
/// # Safety
/// As [`portable_tile`].
unsafe fn portable_tile_bf16(rows: usize, job: &Job, b: *const u32, cols: usize) {
    let w = cols.div_ceil(LANES) * LANES;
    // SAFETY: the caller's promises, passed on.
    unsafe {
        let panel = std::slice::from_raw_parts(b, job.k.div_ceil(2) * w);
        portable_rows(rows, job, cols, |acc, a| portable_row_bf16(acc, a, panel));
    }
}

/// Runs `row(acc, a)` for each row of a tile, `acc` one panel row wide and
/// started from the tile's `init`, and stores the `cols` valid sums.
///
/// # Safety
/// As [`portable_tile`].
unsafe fn portable_rows(rows: usize, job: &Job, cols: usize, row: impl Fn(&mut [f32], &[f32])) {
    let w = cols.div_ceil(LANES) * LANES;
    for r in 0..rows {
        // SAFETY: row `r` of `A` has `k` readable floats (the caller's promise).
        let a = unsafe { std::slice::from_raw_parts(job.a.add(r * job.lda), job.k) };
        let mut acc = [0.0f32; MAX_VECTORS * LANES];
        if !job.init.is_null() {
            // SAFETY: the init row has `cols` floats; read before `y` is written.
            let init = unsafe { std::slice::from_raw_parts(job.init.add(r * job.init_rs), cols) };
            acc[..cols].copy_from_slice(init);
        }
        row(&mut acc[..w], a);
        // SAFETY: row `r` of the tile's `Y` is the caller's to write, `cols` wide.
        let y = unsafe { std::slice::from_raw_parts_mut(job.y.add(r * job.ldy), cols) };
        y.copy_from_slice(&acc[..cols]);
    }
}

crate::multiversion! {
    /// `acc[j] += Σ_k a[k] · panel[k][j]`, `acc` one panel row wide.
    fn portable_row(acc: &mut [f32], a: &[f32], panel: &[f32]) => portable_row_body
}

#[inline(always)]
fn portable_row_body(acc: &mut [f32], a: &[f32], panel: &[f32]) {
    let w = acc.len();
    for (&av, wrow) in a.iter().zip(panel.chunks_exact(w)) {
        for (s, &wv) in acc.iter_mut().zip(wrow) {
            *s += av * wv;
        }
    }
}

crate::multiversion! {
    /// [`portable_row`] over a bf16 panel: the same sums in the same order.
    fn portable_row_bf16(acc: &mut [f32], a: &[f32], panel: &[u32]) => portable_row_bf16_body
}

#[inline(always)]
fn portable_row_bf16_body(acc: &mut [f32], a: &[f32], panel: &[u32]) {
    let w = acc.len();
    for (pair, wrow) in a.chunks(2).zip(panel.chunks_exact(w)) {
        for (s, &x) in acc.iter_mut().zip(wrow) {
            *s += pair[0] * f32::from_bits(x << 16);
        }
        if let Some(&a1) = pair.get(1) {
            for (s, &x) in acc.iter_mut().zip(wrow) {
                *s += a1 * f32::from_bits(x & 0xffff_0000);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Job, LANES};
    use std::arch::x86_64::*;

    /// Dispatches a tile of `rows` rows and `cols` columns (the panel's
    /// vectors are `cols / 16` rounded up) to the kernel built for that shape.
    ///
    /// # Safety
    /// As [`super::portable_tile`], and the CPU has AVX-512F.
    pub(super) unsafe fn tile(rows: usize, job: &Job, b: *const f32, cols: usize) {
        let vectors = cols.div_ceil(LANES);
        macro_rules! rows {
            ($p:literal) => {
                match rows {
                    1 => kernel::<1, $p>(job, b, cols),
                    2 => kernel::<2, $p>(job, b, cols),
                    3 => kernel::<3, $p>(job, b, cols),
                    4 => kernel::<4, $p>(job, b, cols),
                    5 => kernel::<5, $p>(job, b, cols),
                    _ => kernel::<6, $p>(job, b, cols),
                }
            };
        }
        // SAFETY: the caller's promises are the kernel's, for this shape.
        unsafe {
            match vectors {
                1 => rows!(1),
                2 => rows!(2),
                3 => rows!(3),
                _ => rows!(4),
            }
        }
    }

    /// [`tile`] for a bf16 panel.
    ///
    /// # Safety
    /// As [`super::portable_tile_bf16`], and the CPU has AVX-512F.
    pub(super) unsafe fn tile_bf16(rows: usize, job: &Job, b: *const u32, cols: usize) {
        let vectors = cols.div_ceil(LANES);
        macro_rules! rows {
            ($p:literal) => {
                match rows {
                    1 => kernel_bf16::<1, $p>(job, b, cols),
                    2 => kernel_bf16::<2, $p>(job, b, cols),
                    3 => kernel_bf16::<3, $p>(job, b, cols),
                    4 => kernel_bf16::<4, $p>(job, b, cols),
                    5 => kernel_bf16::<5, $p>(job, b, cols),
                    _ => kernel_bf16::<6, $p>(job, b, cols),
                }
            };
        }
        // SAFETY: the caller's promises are the kernel's, for this shape.
        unsafe {
            match vectors {
                1 => rows!(1),
                2 => rows!(2),
                3 => rows!(3),
                _ => rows!(4),
            }
        }
    }

    /// `R x P` accumulators started from `init` (masked loads for a last
    /// vector that is not full).
    ///
    /// # Safety
    /// As [`tile`], for `R` rows and the columns `masks` select.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn start<const R: usize, const P: usize>(
        job: &Job,
        masks: &[u16; P],
    ) -> [[__m512; P]; R] {
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        if !job.init.is_null() {
            for (r, row) in acc.iter_mut().enumerate() {
                for (v, s) in row.iter_mut().enumerate() {
                    // SAFETY: the masked columns of row `r` of `init` are
                    // readable (the caller's promise).
                    *s = unsafe {
                        let src = job.init.add(r * job.init_rs + v * LANES);
                        _mm512_maskz_loadu_ps(masks[v], src)
                    };
                }
            }
        }
        acc
    }

    /// The store masks of a tile `cols` wide.
    #[inline(always)]
    fn masks<const P: usize>(cols: usize) -> [u16; P] {
        std::array::from_fn(|v| {
            let valid = cols.saturating_sub(v * LANES).min(LANES);
            ((1u32 << valid) - 1) as u16
        })
    }

    /// Stores the accumulators to `Y`.
    ///
    /// # Safety
    /// As [`start`].
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn finish<const R: usize, const P: usize>(
        job: &Job,
        masks: &[u16; P],
        acc: &[[__m512; P]; R],
    ) {
        for (r, row) in acc.iter().enumerate() {
            for (v, &s) in row.iter().enumerate() {
                // SAFETY: the masked columns of row `r` of `Y` are the
                // caller's to write.
                unsafe { _mm512_mask_storeu_ps(job.y.add(r * job.ldy + v * LANES), masks[v], s) };
            }
        }
    }

    /// The bf16 register tile: per word vector, the shift gives the weights
    /// of `k = 2i` and the mask those of `2i + 1`, each a full `f32` vector;
    /// every accumulator still takes its `k` in order.
    ///
    /// # Safety
    /// As [`tile_bf16`], for `R` rows and a panel of `P` vectors.
    #[target_feature(enable = "avx512f")]
    unsafe fn kernel_bf16<const R: usize, const P: usize>(job: &Job, b: *const u32, cols: usize) {
        let masks = masks::<P>(cols);
        // SAFETY: the caller's promises.
        let mut acc = unsafe { start::<R, P>(job, &masks) };
        let high = _mm512_set1_epi32(0xffff_0000u32 as i32);
        let mut bp = b;
        for i in 0..job.k / 2 {
            // SAFETY: the panel has `⌈k/2⌉` rows of `P` vectors, and each of
            // the `R` rows of `A` `k` floats (the caller's promises).
            unsafe {
                for v in 0..P {
                    let x = _mm512_loadu_si512(bp.add(v * LANES) as *const _);
                    let lo = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(x));
                    for (r, row) in acc.iter_mut().enumerate() {
                        let av = _mm512_set1_ps(*job.a.add(r * job.lda + 2 * i));
                        row[v] = _mm512_fmadd_ps(av, lo, row[v]);
                    }
                    let hi = _mm512_castsi512_ps(_mm512_and_si512(x, high));
                    for (r, row) in acc.iter_mut().enumerate() {
                        let av = _mm512_set1_ps(*job.a.add(r * job.lda + 2 * i + 1));
                        row[v] = _mm512_fmadd_ps(av, hi, row[v]);
                    }
                }
                bp = bp.add(P * LANES);
            }
        }
        if job.k % 2 == 1 {
            let last = job.k - 1;
            for v in 0..P {
                // SAFETY: as above, for the last row of the panel.
                unsafe {
                    let x = _mm512_loadu_si512(bp.add(v * LANES) as *const _);
                    let lo = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(x));
                    for (r, row) in acc.iter_mut().enumerate() {
                        let av = _mm512_set1_ps(*job.a.add(r * job.lda + last));
                        row[v] = _mm512_fmadd_ps(av, lo, row[v]);
                    }
                }
            }
        }
        // SAFETY: the caller's promises.
        unsafe { finish::<R, P>(job, &masks, &acc) };
    }

    /// The register tile: `R x P` accumulators, one pass over `k` in order,
    /// masked loads and stores for a last vector that is not full.
    ///
    /// # Safety
    /// As [`tile`], for `R` rows and a panel of `P` vectors.
    #[target_feature(enable = "avx512f")]
    unsafe fn kernel<const R: usize, const P: usize>(job: &Job, b: *const f32, cols: usize) {
        let masks = masks::<P>(cols);
        // SAFETY: the caller's promises.
        let mut acc = unsafe { start::<R, P>(job, &masks) };
        let mut bp = b;
        for kk in 0..job.k {
            // SAFETY: the panel has `k` rows of `P` vectors, and each of the
            // `R` rows of `A` `k` floats (the caller's promises).
            unsafe {
                let mut wv = [_mm512_setzero_ps(); P];
                for (v, x) in wv.iter_mut().enumerate() {
                    *x = _mm512_loadu_ps(bp.add(v * LANES));
                }

                for (r, row) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*job.a.add(r * job.lda + kk));
                    for (s, &x) in row.iter_mut().zip(&wv) {
                        *s = _mm512_fmadd_ps(av, x, *s);
                    }
                }
                bp = bp.add(P * LANES);
            }
        }
        // SAFETY: the caller's promises.
        unsafe { finish::<R, P>(job, &masks, &acc) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::{has_avx2, has_avx512, with_isa_limit, Isa};
    use crate::Rng;
    use WeightFormat::{Bf16, F32};

    impl PanelMatrix {
        /// The packed words, to compare two packings.
        fn bits(&self) -> Vec<u32> {
            match &self.storage {
                Storage::F32(b) => b.get().iter().map(|x| x.to_bits()).collect(),
                Storage::Bf16(b) => b.get().to_vec(),
            }
        }
    }

    /// `Y = init + A · Wᵀ` in f64, with `W` given by rows and a column map.
    fn naive(
        m: usize,
        k: usize,
        a: &[f32],
        lda: usize,
        rows: &[Option<Vec<f32>>],
        init: &[f32],
    ) -> Vec<f64> {
        let n = rows.len();
        let mut y = vec![0.0f64; m * n];
        for i in 0..m {
            for (j, r) in rows.iter().enumerate() {
                let mut s = init[i * n + j] as f64;
                if let Some(r) = r {
                    for p in 0..k {
                        s += a[i * lda + p] as f64 * r[p] as f64;
                    }
                }
                y[i * n + j] = s;
            }
        }
        y
    }

    fn check(isa: Isa) {
        with_isa_limit(isa, check_here);
    }

    fn check_here() {
        let mut rng = Rng::new(3);
        for &(m, n, k, vectors) in &[
            (1, 1, 1, 1),
            (1, 65, 512, 4),
            (3, 48, 7, 3),
            (7, 100, 33, 4),
            (13, 40, 64, 2),
            (2, 70, 9, 4),
            (64, 130, 20, 4),
        ] {
            let rows: Vec<Option<Vec<f32>>> = (0..n)
                .map(|j| (j % 7 != 3).then(|| (0..k + 2).map(|_| rng.uniform(-1.0, 1.0)).collect()))
                .collect();
            let w = PanelMatrix::pack(k, n, vectors, F32, |j| rows[j].as_deref());
            for threads in [2, 3] {
                let again =
                    PanelMatrix::pack_on(k, n, vectors, F32, |j| rows[j].as_deref(), threads);
                assert_eq!(again.bits(), w.bits(), "packed on {threads} threads");
            }
            let lda = k + 1;
            let a: Vec<f32> = (0..m * lda).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let ldy = n + 3;
            let y0: Vec<f32> = (0..m * ldy).map(|_| rng.uniform(-1.0, 1.0)).collect();
            for init in [Init::Zero, Init::Row(&bias), Init::Accumulate] {
                let base: Vec<f32> = (0..m * n)
                    .map(|e| match init {
                        Init::Zero => 0.0,
                        Init::Row(r) => r[e % n],
                        Init::Accumulate => y0[e / n * ldy + e % n],
                    })
                    .collect();
                let want = naive(m, k, &a, lda, &rows, &base);
                // All panels at once, and one panel at a time, must agree exactly.
                let mut y = y0.clone();
                let av = MatRef::with_ld(&a, m, k, lda);
                panel_gemm(
                    av,
                    &w,
                    0..w.panels(),
                    init,
                    MatMut::with_ld(&mut y, m, n, ldy),
                );
                let mut y1 = y0.clone();
                for p in (0..w.panels()).rev() {
                    let y1v = MatMut::with_ld(&mut y1, m, n, ldy);
                    panel_gemm(av, &w, p..p + 1, init, y1v);
                }
                assert_eq!(y, y1);
                for i in 0..m {
                    for j in 0..ldy {
                        let got = y[i * ldy + j];
                        if j >= n {
                            assert_eq!(got, y0[i * ldy + j], "padding column written");
                            continue;
                        }
                        let want = want[i * n + j];
                        assert!(
                            (got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
                            "{m}x{n}x{k}/{vectors} {init:?}: {got} vs {want}"
                        );
                    }
                }
                // Row i of a batch equals the same row computed alone.
                if m > 1 {
                    let i = m - 1;
                    let mut alone = y0[i * ldy..(i + 1) * ldy].to_vec();
                    let ai = MatRef::new(&a[i * lda..i * lda + k], 1, k);
                    let alone_v = MatMut::new(&mut alone[..n], 1, n);
                    panel_gemm(ai, &w, 0..w.panels(), init, alone_v);
                    assert_eq!(alone[..n], y[i * ldy..i * ldy + n]);
                }
            }
        }
    }

    /// A bf16 matrix gives exactly the sums of an f32 matrix of the rounded
    /// weights, for odd and even `k`, on either instruction set.
    fn check_bf16(isa: Isa) {
        with_isa_limit(isa, check_bf16_here);
    }

    fn check_bf16_here() {
        let mut rng = Rng::new(5);
        for &(m, n, k, vectors) in &[
            (1, 65, 512, 4),
            (1, 40, 7, 3),
            (6, 100, 33, 4),
            (13, 17, 1, 2),
        ] {
            let rows: Vec<Option<Vec<f32>>> = (0..n)
                .map(|j| (j % 5 != 2).then(|| (0..k).map(|_| rng.uniform(-1.0, 1.0)).collect()))
                .collect();
            let rounded: Vec<Option<Vec<f32>>> = rows
                .iter()
                .map(|r| {
                    r.as_ref()
                        .map(|r| r.iter().map(|&x| round_bf16(x)).collect())
                })
                .collect();
            let half = PanelMatrix::pack(k, n, vectors, Bf16, |j| rows[j].as_deref());
            assert_eq!(half.format(), Bf16);
            assert_eq!(half.bytes(), n.div_ceil(16) * 16 * k.div_ceil(2) * 4);
            let again = PanelMatrix::pack_on(k, n, vectors, Bf16, |j| rows[j].as_deref(), 3);
            assert_eq!(again.bits(), half.bits(), "packed on 3 threads");
            let full = PanelMatrix::pack(k, n, vectors, F32, |j| rounded[j].as_deref());
            let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let (mut y_half, mut y_full) = (vec![0.0; m * n], vec![0.0; m * n]);
            let all = 0..half.panels();
            let av = MatRef::new(&a, m, k);
            let yh = MatMut::new(&mut y_half, m, n);
            panel_gemm(av, &half, all.clone(), Init::Row(&bias), yh);
            let yf = MatMut::new(&mut y_full, m, n);
            panel_gemm(av, &full, all, Init::Row(&bias), yf);
            assert_eq!(y_half, y_full, "{m}x{n}x{k}");
        }
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(round_bf16(1.0), 1.0);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even 1.
        assert_eq!(round_bf16(1.0 + 1.0 / 256.0), 1.0);
        assert_eq!(round_bf16(1.0 + 3.0 / 256.0), 1.0 + 4.0 / 256.0);
        assert_eq!(round_bf16(1.0 + 1.5 / 256.0), 1.0 + 1.0 / 128.0);
        assert_eq!(round_bf16(-2.5e-3), -f32::from_bits(0x3b24_0000));
        assert!(round_bf16(f32::NAN).is_nan());
        assert_eq!(round_bf16(f32::INFINITY), f32::INFINITY);
        assert_eq!(
            round_bf16(f32::MAX),
            f32::INFINITY,
            "rounds up past the largest bf16"
        );
    }

    #[test]
    fn bf16_panels_match_f32_panels_of_rounded_weights() {
        check_bf16(Isa::Avx512);
    }

    #[test]
    fn bf16_panels_on_avx2_match_too() {
        check_bf16(Isa::Avx2);
    }

    #[test]
    fn bf16_panels_on_the_baseline_instruction_set_match_too() {
        check_bf16(Isa::Baseline);
    }

    #[test]
    fn matches_naive_products_with_every_init() {
        check(Isa::Avx512);
    }

    #[test]
    fn the_avx2_instruction_set_matches_too() {
        check(Isa::Avx2);
    }

    #[test]
    fn the_baseline_instruction_set_matches_too() {
        check(Isa::Baseline);
    }

    /// `Y[i, j] = init + Σ_k A[i, k] · W[j, k]` with one `mul_add` per `k`,
    /// in order: the bits of the FMA kernels.
    fn fused(m: usize, k: usize, a: &[f32], rows: &[Option<Vec<f32>>], init: &[f32]) -> Vec<f32> {
        let n = rows.len();
        let mut y = init.to_vec();
        for i in 0..m {
            for (j, r) in rows.iter().enumerate() {
                if let Some(r) = r {
                    let s = &mut y[i * n + j];
                    for p in 0..k {
                        *s = a[i * k + p].mul_add(r[p], *s);
                    }
                }
            }
        }
        y
    }

    /// The AVX2 and AVX-512 kernels give the same bits (those of
    /// [`fused`]) for every tile height, panel width, partial last panel and
    /// partial last register, in f32 and bf16, whichever of them this CPU has.
    #[test]
    fn the_fma_kernels_agree_bit_for_bit() {
        let mut rng = Rng::new(9);
        let kernels: Vec<Isa> = [
            (Isa::Avx2, has_avx2 as fn() -> bool),
            (Isa::Avx512, has_avx512),
        ]
        .into_iter()
        .filter(|&(isa, has)| with_isa_limit(isa, has))
        .map(|(isa, _)| isa)
        .collect();
        for vectors in 1..=MAX_VECTORS {
            // Full panels only; a last panel of 5 columns; one whose last
            // register is partly valid.
            for n in [
                2 * vectors * LANES,
                vectors * LANES + 5,
                2 * vectors * LANES - 3,
            ] {
                for k in [1, 6, 33] {
                    let rows: Vec<Option<Vec<f32>>> = (0..n)
                        .map(|j| {
                            (j % 9 != 4).then(|| (0..k).map(|_| rng.uniform(-1.0, 1.0)).collect())
                        })
                        .collect();
                    let rounded: Vec<Option<Vec<f32>>> = rows
                        .iter()
                        .map(|r| {
                            r.as_ref()
                                .map(|r| r.iter().map(|&x| round_bf16(x)).collect())
                        })
                        .collect();
                    for m in 1..=13 {
                        let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
                        let y0: Vec<f32> = (0..m * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
                        for (format, weights) in [(F32, &rows), (Bf16, &rounded)] {
                            let w =
                                PanelMatrix::pack(k, n, vectors, format, |j| rows[j].as_deref());
                            let want = fused(m, k, &a, weights, &y0);
                            for &isa in &kernels {
                                let mut y = y0.clone();
                                with_isa_limit(isa, || {
                                    let (av, yv) =
                                        (MatRef::new(&a, m, k), MatMut::new(&mut y, m, n));
                                    panel_gemm(av, &w, 0..w.panels(), Init::Accumulate, yv)
                                });
                                assert!(
                                    y.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()),
                                    "{isa:?} {format:?}: {m}x{n}x{k}/{vectors}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
