//! GEMM against a right-hand matrix packed once and reused many times: the
//! recurrent weights `W_hh`, multiplied by a small `[B, H]` state at each of
//! the block's time steps.
//!
//! The general [`crate::sgemm`] repacks its operands on every call and shines on
//! large shapes; at `M = batch` the repacking of a 4 MB `W_hh` and its thread
//! split dominate. Here `op(B)` is packed once into column panels of [`NR`],
//! the small `A` is packed per call into row tiles of at most 12 rows, and an
//! AVX-512 register-blocked kernel computes each tile's `NR` columns over the
//! full `K`, prefetching the next panel meanwhile. Threads take contiguous
//! ranges of panels, so every element of `C` is computed by one thread in one
//! fixed order: results do not depend on scheduling.
//!
//! CPUs with AVX2 and FMA but not AVX-512 run the same panels and row tiles
//! through an AVX2 tile (module `avx2`) that sums in the same order, so
//! both give the same bits. Without either, the packed matrix is kept
//! row-major and [`crate::sgemm`] runs.

use std::cell::RefCell;

use crate::blocked::Init;
use crate::gemm::{sgemm, Trans};
use crate::pairs::{PairKernel, PairPanels};
use crate::precision::Route;
use crate::simd::{has_avx2, has_avx512};
use crate::view::{MatMut, MatRef};
use crate::SharedMut;

#[cfg(target_arch = "x86_64")]
mod avx2;

/// Defines `unsafe fn $name(kernel: TileKernel, args)` that runs `$body(args)`
/// (an `#[inline(always)]` unsafe fn) compiled for `kernel`'s instruction
/// set: the loops around the tiles are compiled for it too (an AVX-512 CPU
/// keeps its zmm copies), and the tile may be inlined. Like
/// [`crate::multiversion!`], but chosen by the kernel a product was packed
/// for, not by this thread's limit. The caller promises the CPU has `kernel`,
/// and `$body`'s own promises.
macro_rules! per_tile_kernel {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:path) => {
        $(#[$meta])*
        #[cfg(target_arch = "x86_64")]
        unsafe fn $name(kernel: $crate::packed::TileKernel, $($arg: $ty),*) {
            #[target_feature(enable = "avx512f")]
            unsafe fn avx512($($arg: $ty),*) {
                // SAFETY: the outer function's promises.
                unsafe { $body($($arg),*) }
            }
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) {
                // SAFETY: as above.
                unsafe { $body($($arg),*) }
            }
            // SAFETY: the CPU has `kernel` (the caller's promise).
            unsafe {
                match kernel {
                    $crate::packed::TileKernel::Avx512 => avx512($($arg),*),
                    $crate::packed::TileKernel::Avx2 => avx2($($arg),*),
                }
            }
        }
    };
}
pub(crate) use per_tile_kernel;

/// Rows of `A` per register tile of the blocked GEMM; the layers split a
/// batch between threads from two such tiles a thread on.
pub const MR: usize = 8;
/// Columns of `B` per panel: two 16-lane vectors.
pub const NR: usize = 32;

/// `op(B)` as `[k, n]`, packed: panel `p` holds columns `p*NR..(p+1)*NR` as
/// `[k][NR]`, the last one zero-padded (for a register tile kernel), or plain
/// row-major `[k, n]` (for [`crate::sgemm`]).
#[derive(Default, Clone)]
pub struct PackedB {
    k: usize,
    n: usize,
    /// The tile kernel the panels were packed for (the CPU has it), if any.
    kernel: Option<TileKernel>,
    buf: AlignedBuf,
    /// Packed under bf16 on a pair kernel: bf16 pair panels instead of `buf`.
    pairs: Option<(PairKernel, PairPanels)>,
}

impl PackedB {
    /// Packs `op(B)`, `[k, n]`, reusing this buffer.
    /// Under bf16 ([`crate::precision`]) the values are rounded to bf16 as
    /// they are packed.
    pub fn pack(&mut self, b: MatRef<'_>) {
        let (k, n) = (b.rows(), b.cols());
        self.k = k;
        self.n = n;
        self.pairs = match crate::precision::route() {
            Route::Pairs(kernel) => {
                let mut panels = self.pairs.take().map_or_else(Default::default, |p| p.1);
                panels.pack(b);
                Some((kernel, panels))
            }
            _ => None,
        };
        if self.pairs.is_some() {
            return;
        }
        let bf16 = crate::precision::precision() == crate::Precision::Bf16;
        let at = |kk: usize, j: usize| {
            let v = b.at(kk, j);
            if bf16 {
                crate::precision::round_bf16(v)
            } else {
                v
            }
        };
        self.kernel = TileKernel::detect();
        if self.kernel.is_none() {
            let out = self.buf.resize(k * n);
            for kk in 0..k {
                for j in 0..n {
                    out[kk * n + j] = at(kk, j);
                }
            }
            return;
        }
        let panels = n.div_ceil(NR);
        let out = self.buf.resize(panels * k * NR);
        for p in 0..panels {
            let panel = &mut out[p * k * NR..(p + 1) * k * NR];
            for (kk, row) in panel.chunks_exact_mut(NR).enumerate() {
                for (jj, v) in row.iter_mut().enumerate() {
                    let j = p * NR + jj;
                    *v = if j < n { at(kk, j) } else { 0.0 };
                }
            }
        }
    }

    /// The `[k, n]` shape of the packed `op(B)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.k, self.n)
    }
}

/// `C = A · op(B) (+ C when accumulate)`: `A` `[m, k]` as stored (not
/// transposed), `C` `[m, n]`, split over `threads` threads by column panels.
///
/// # Panics
/// If `A` is a transposed view or the shapes do not fit together.
#[track_caller]
pub fn gemm_packed(
    a: MatRef<'_>,
    b: &PackedB,
    accumulate: bool,
    mut c: MatMut<'_>,
    threads: usize,
) {
    let (k, n) = (b.k, b.n);
    let m = a.rows();
    assert!(
        a.trans() == Trans::N && a.cols() == k && c.rows() == m && c.cols() == n,
        "gemm_packed: [{}, {}]{} · [{k}, {n}] does not give [{}, {}]",
        a.rows(),
        a.cols(),
        if a.trans() == Trans::T {
            " (transposed)"
        } else {
            ""
        },
        c.rows(),
        c.cols()
    );
    if m == 0 || n == 0 {
        return;
    }
    if let Some((kernel, panels)) = &b.pairs {
        let init = if accumulate { Init::Keep } else { Init::Zero };
        // SAFETY: `pack` chose `kernel` only where the CPU has it.
        unsafe { crate::pairs::gemm_pairs(a, panels, init, c, threads, *kernel) };
        return;
    }
    if crate::precision::emulate() {
        return crate::precision::with_rounded_a(a, |a| gemm_packed(a, b, accumulate, c, threads));
    }
    let beta = if accumulate { 1.0 } else { 0.0 };
    let kernel = match b.kernel {
        Some(kernel) if k > 0 => kernel,
        // Row-major (or empty when `k = 0`).
        _ => return sgemm(1.0, a, MatRef::new(b.buf.get(), k, n), beta, c),
    };
    let (lda, ldc) = (a.ld(), c.ld());
    let (a, c) = (a.data(), c.data());
    #[cfg(target_arch = "x86_64")]
    A_PACK.with(|ap| {
        let mut ap = ap.borrow_mut();
        let ap = ap.resize(m * k);
        // SAFETY: `pack` chose a kernel the CPU has (and so AVX); the asserts
        // above bound `a`.
        unsafe { pack_a(kernel, m, k, a, lda, ap) };
        let panels = n.div_ceil(NR);
        let job = Job {
            m,
            k,
            n,
            ap,
            bp: b.buf.get(),
            c: SharedMut::new(c),
            ldc,
            accumulate,
            kernel,
        };
        let t = threads.clamp(1, panels);
        run_split(&job, 0, panels, t);
    });
}

thread_local! {
    static A_PACK: RefCell<AlignedBuf> = RefCell::new(AlignedBuf::default());
}

per_tile_kernel! {
    /// [`pack_a_body`] compiled for `kernel`.
    fn pack_a(m: usize, k: usize, a: &[f32], lda: usize, out: &mut [f32]) => pack_a_body
}

per_tile_kernel! {
    /// [`run_panels_body`] compiled for `kernel` (`job.kernel`).
    fn run_panels(job: &Job<'_>, lo: usize, hi: usize) => run_panels_body
}

/// Packs `A[m, k]` into the row tiles of [`step_tiles`]: the tile starting at
/// row `r0` with `mr` rows is `[k][mr]` at offset `r0 * k`.
///
/// The first 8 rows of a tile go through [`transpose8x8`] (this runs at every
/// time step, and a scalar gather was most of the packing time of small models).
///
/// # Safety
/// The CPU must have AVX (every CPU with a [`TileKernel`] does), and `a` must
/// hold `m` rows of `k` floats at stride `lda`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn pack_a_body(m: usize, k: usize, a: &[f32], lda: usize, out: &mut [f32]) {
    for (r0, mr) in step_tiles(m) {
        let tile = &mut out[r0 * k..(r0 + mr) * k];
        // Rows past the tile's repeat its last one (they are never used).
        let rows: [*const f32; 8] =
            std::array::from_fn(|i| a.as_ptr().wrapping_add((r0 + i.min(mr - 1)) * lda));
        // The first 8 rows 8 columns at a time, the rest one by one.
        let (mut kk0, first) = (0, if mr >= 8 { 8 } else { 0 });
        if first == 8 {
            while kk0 + 8 <= k {
                // SAFETY: rows `r0..r0 + 8` of `a` have `k` floats each (the
                // caller's promise), so 8 from `kk0 <= k - 8`; the tile is
                // `[k][mr]`, so 8 rows of `mr` from row `kk0` fit; the CPU
                // has AVX.
                unsafe { transpose8x8(&rows, kk0, tile.as_mut_ptr().add(kk0 * mr), mr) };
                kk0 += 8;
            }
        }
        for (kk, dst) in tile.chunks_exact_mut(mr).enumerate() {
            let from = if kk < kk0 { first } else { 0 };
            for (i, v) in dst.iter_mut().enumerate().skip(from) {
                *v = a[(r0 + i) * lda + kk];
            }
        }
    }
}

/// Most rows of one per-step tile: 24 of the 32 vector registers hold sums.
const STEP_MR: usize = 12;

/// The row tiles `(first row, rows)` of an `m`-row `A` at each step: as few
/// as [`STEP_MR`] allows, of nearly equal height (25 rows: 8, 8, 9), so no
/// tile is a sliver that runs at a fraction of the kernel's rate.
fn step_tiles(m: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = m.div_ceil(STEP_MR);
    (0..count).map(move |i| (m * i / count, m * (i + 1) / count - m * i / count))
}

/// `dst[kk * stride + ii] = rows[ii][kk0 + kk]` for `ii, kk < 8`: an 8x8 block
/// of a row-major matrix, transposed with the classic unpack/shuffle/permute
/// steps, into rows of a tile `stride` wide.
///
/// # Safety
/// Each `rows[ii]` must have 8 readable floats at `kk0`, `dst` 8 writable
/// ones at each of 8 rows `stride` apart;
/// the CPU must have AVX (every AVX-512 CPU does).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
pub(crate) unsafe fn transpose8x8(
    rows: &[*const f32; 8],
    kk0: usize,
    dst: *mut f32,
    stride: usize,
) {
    use std::arch::x86_64::*;
    // SAFETY: each row has 8 readable floats at `kk0` (the caller's promise).
    let r: [__m256; 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(rows[i].add(kk0)) });
    // Pairs of rows interleaved: t0 = r0_0 r1_0 r0_1 r1_1 | r0_4 r1_4 r0_5 r1_5, ...
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    // Columns c | c + 4 of four rows: s0 = col 0 | col 4 of rows 0..4, ...
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    // Low halves give columns 0..4, high halves columns 4..8.
    let cols = [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ];
    for (kk, v) in cols.iter().enumerate() {
        // SAFETY: `dst` has 8 writable floats at each of 8 rows `stride` apart.
        unsafe { _mm256_storeu_ps(dst.add(kk * stride), *v) };
    }
}

/// One packed product, shared by the threads that split its panels.
struct Job<'a> {
    m: usize,
    k: usize,
    n: usize,
    /// `A` packed by [`pack_a`].
    ap: &'a [f32],
    /// The panels of [`PackedB`].
    bp: &'a [f32],
    /// `C`, `[m, ldc]`: each thread writes the columns of its own panels.
    c: SharedMut<'a, f32>,
    ldc: usize,
    accumulate: bool,
    kernel: TileKernel,
}

/// Computes panels `lo..hi` on `t` threads, each taking a contiguous range.
fn run_split(job: &Job<'_>, lo: usize, hi: usize, t: usize) {
    let range = |i: usize| (lo + (hi - lo) * i / t, lo + (hi - lo) * (i + 1) / t);
    crate::threads::parallel_for(t, &|i| {
        let (a, b) = range(i);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `gemm_packed` checked the shapes, and `pack` the kernel; the
        // ranges are disjoint, so no two tasks write the same column of `C`.
        unsafe {
            run_panels(job.kernel, job, a, b)
        };
    });
}

/// Panels `lo..hi`, every row tile each: the panel (`k * NR` floats) stays in
/// cache while the tiles of `A` stream past it.
///
/// # Safety
/// The CPU must have `job.kernel`; `job` must hold shapes [`gemm_packed`]
/// checked against its buffers; no other thread may write these panels'
/// columns of `C`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn run_panels_body(job: &Job<'_>, lo: usize, hi: usize) {
    let (k, ldc) = (job.k, job.ldc);
    let tiles = job.m.div_ceil(STEP_MR);
    let epi = if job.accumulate {
        Epilogue::Accumulate
    } else {
        Epilogue::Store
    };
    for p in lo..hi {
        let bp = &job.bp[p * k * NR..(p + 1) * k * NR];
        let cols = NR.min(job.n - p * NR);
        for (t, (r0, mr)) in step_tiles(job.m).enumerate() {
            let ap = &job.ap[r0 * k..(r0 + mr) * k];
            let prefetch = if p + 1 < hi {
                Prefetch::share(bp.as_ptr().wrapping_add(k * NR), k * NR, t, tiles)
            } else {
                Prefetch::NONE
            };
            // SAFETY: `ap` is the `[k][mr]` tile and `bp` the `[k][NR]` panel
            // (slices); the tile's block of `C`, rows `r0..r0 + mr` and columns
            // `p * NR..p * NR + cols`, lies inside `C` (`gemm_packed` checked its
            // length) and belongs to this thread (the caller's promise).
            unsafe {
                let c = job.c.as_mut_ptr().add(r0 * ldc + p * NR);
                let (ap, bp) = (ap.as_ptr(), bp.as_ptr());
                let t = Tile {
                    k,
                    ap,
                    bp,
                    c,
                    ldc,
                    cols,
                    epilogue: epi,
                    prefetch,
                };
                job.kernel.tile(mr, t);
            }
        }
    }
}

/// Lines of memory a tile asks the L2 cache to fetch while it computes.
///
/// The per-step product reads `W_hh` (4 MB at 512 units) from L3 at every
/// time step; the first row tile of each panel used to wait for it. With
/// each panel's tiles prefetching the next panel, the wait overlaps the
/// arithmetic.
#[derive(Clone, Copy)]
pub(crate) struct Prefetch {
    /// First byte of the first line.
    pub at: *const f32,
    /// How many 64-byte lines (one per `k` step, at most `k` of them).
    pub lines: usize,
}

impl Prefetch {
    /// Nothing to fetch.
    pub const NONE: Prefetch = Prefetch {
        at: std::ptr::null(),
        lines: 0,
    };

    /// Row tile `tile` of `tiles`' share of a panel of `floats` at `next`:
    /// the tiles of one panel split the prefetching of the next between them.
    pub fn share(next: *const f32, floats: usize, tile: usize, tiles: usize) -> Prefetch {
        let lines = floats / 16;
        let (l0, l1) = (lines * tile / tiles, lines * (tile + 1) / tiles);
        Prefetch {
            at: next.wrapping_add(l0 * 16),
            lines: l1 - l0,
        }
    }
}

/// One register tile's operands: packed `ap` (`[k][mr]`) and `bp` (`[k][NR]`),
/// and where its `cols` columns of `C` go.
#[derive(Clone, Copy)]
pub(crate) struct Tile {
    /// Depth of the sums.
    pub k: usize,
    /// The packed row tile of `A`, `[k][mr]`.
    pub ap: *const f32,
    /// The packed panel of `B`, `[k][NR]`.
    pub bp: *const f32,
    /// The tile's top-left element of `C`.
    pub c: *mut f32,
    /// Row stride of `C`.
    pub ldc: usize,
    /// Columns of `C` the tile writes (at most `NR`).
    pub cols: usize,
    /// What to do with `C`.
    pub epilogue: Epilogue,
    /// What to fetch meanwhile.
    pub prefetch: Prefetch,
}

/// The register tiles a CPU can run [`PackedB`] panels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TileKernel {
    /// `R x 32` sums in zmm registers ([`tile`]).
    Avx512,
    /// Sub-tiles of at most `6 x 16` sums in ymm registers (module `avx2`).
    Avx2,
}

impl TileKernel {
    /// The best tile this CPU has (within this thread's instruction-set limit).
    pub(crate) fn detect() -> Option<TileKernel> {
        if has_avx512() {
            Some(TileKernel::Avx512)
        } else if has_avx2() {
            Some(TileKernel::Avx2)
        } else {
            None
        }
    }

    /// `"avx512"` or `"avx2"`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            TileKernel::Avx512 => "avx512",
            TileKernel::Avx2 => "avx2",
        }
    }

    /// A tile of `mr` (1 to 12) rows.
    ///
    /// # Safety
    /// The CPU must have this kernel's instructions, and `t` as [`tile`] says.
    #[cfg(target_arch = "x86_64")]
    pub(crate) unsafe fn tile(self, mr: usize, t: Tile) {
        // SAFETY: the caller's promises.
        unsafe {
            match self {
                TileKernel::Avx512 => tile(mr, t),
                TileKernel::Avx2 => avx2::tile(mr, t),
            }
        }
    }
}

/// Dispatches a tile of `mr` rows to the kernel compiled for that row count.
///
/// # Safety
/// The CPU must have AVX-512F; `t.ap` must hold `[k][mr]` floats and `t.bp`
/// `[k][NR]`; `t.c` must have `mr` rows of `cols` floats at stride `ldc` that
/// no other thread accesses meanwhile (`Epilogue::AddRow`: a row of `cols`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn tile(mr: usize, t: Tile) {
    let m = |v: usize| -> u16 {
        let valid = t.cols.saturating_sub(v * 16).min(16);
        ((1u32 << valid) - 1) as u16
    };
    let masks = [m(0), m(1)];
    // SAFETY: the caller's promises are each kernel's, for `R = mr`.
    unsafe {
        match mr {
            12 => kernel::<12>(&t, masks),
            11 => kernel::<11>(&t, masks),
            10 => kernel::<10>(&t, masks),
            9 => kernel::<9>(&t, masks),
            8 => kernel::<8>(&t, masks),
            7 => kernel::<7>(&t, masks),
            6 => kernel::<6>(&t, masks),
            5 => kernel::<5>(&t, masks),
            4 => kernel::<4>(&t, masks),
            3 => kernel::<3>(&t, masks),
            2 => kernel::<2>(&t, masks),
            _ => kernel::<1>(&t, masks),
        }
    }
}

/// What a register tile does with `C` once its sums are done.
#[derive(Clone, Copy)]
pub(crate) enum Epilogue {
    /// `C = sums`.
    Store,
    /// `C = sums + C`.
    Accumulate,
    /// `C = sums + row`, `row` pointing at the tile's first column of a
    /// row vector (a bias broadcast down the rows).
    AddRow(*const f32),
}

/// The register tile: `R x 32` accumulators (`2R` zmm registers), one pass over
/// `k`, then the epilogue for the columns `masks` select.
///
/// `t.ap` is `[k][R]`, `t.bp` is `[k][32]`; `t.c` points at the tile's top-left.
///
/// # Safety
/// As [`tile`], with `mr = R`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn kernel<const R: usize>(t: &Tile, masks: [u16; 2]) {
    use std::arch::x86_64::*;
    let Tile {
        k,
        ap,
        bp,
        c,
        ldc,
        epilogue,
        prefetch,
        ..
    } = *t;
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let lines = prefetch.lines.min(k);
    for p in 0..k {
        if p < lines {
            // A hint: it never faults, whatever the address.
            _mm_prefetch::<_MM_HINT_T1>(prefetch.at.wrapping_add(p * 16) as *const i8);
        }
        // SAFETY: `bp` holds `[k][32]` and `ap` `[k][R]` floats (the caller's promise).
        unsafe {
            let b0 = _mm512_loadu_ps(bp.add(p * NR));
            let b1 = _mm512_loadu_ps(bp.add(p * NR + 16));
            for (i, row) in acc.iter_mut().enumerate() {
                let a = _mm512_set1_ps(*ap.add(p * R + i));
                row[0] = _mm512_fmadd_ps(a, b0, row[0]);
                row[1] = _mm512_fmadd_ps(a, b1, row[1]);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (v, &r) in row.iter().enumerate() {
            // SAFETY: the masks select the tile's `cols` columns, which `c`
            // (and an added row) hold in each of the `R` rows.
            unsafe {
                let dst = c.add(i * ldc + v * 16);
                let r = match epilogue {
                    Epilogue::Store => r,
                    Epilogue::Accumulate => _mm512_add_ps(r, _mm512_maskz_loadu_ps(masks[v], dst)),
                    Epilogue::AddRow(row) => {
                        _mm512_add_ps(r, _mm512_maskz_loadu_ps(masks[v], row.add(v * 16)))
                    }
                };
                _mm512_mask_storeu_ps(dst, masks[v], r);
            }
        }
    }
}

/// A reusable buffer (of `f32` unless said otherwise) whose contents start on
/// a 64-byte boundary, so the kernel's vector loads never split a cache line.
#[derive(Default, Clone)]
pub(crate) struct AlignedBuf<T = f32> {
    raw: Vec<T>,
    start: usize,
    len: usize,
}

impl<T: Copy + Default> AlignedBuf<T> {
    /// Makes room for `len` elements (contents unspecified) and returns them.
    pub(crate) fn resize(&mut self, len: usize) -> &mut [T] {
        let size = std::mem::size_of::<T>();
        let pad = 64 / size;
        if self.raw.len() < len + pad {
            self.raw = vec![T::default(); len + pad];
        }
        let addr = self.raw.as_ptr() as usize;
        self.start = (64 - addr % 64) % 64 / size;
        self.len = len;
        &mut self.raw[self.start..self.start + len]
    }

    pub(crate) fn get(&self) -> &[T] {
        &self.raw[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::{has_avx2, has_avx512, with_isa_limit, Isa};
    use crate::view::op;
    use crate::Rng;

    fn naive(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f64> {
        let (m, n, k) = (a.rows(), b.cols(), a.cols());
        let mut c = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    c[i * n + j] += a.at(i, p) as f64 * b.at(p, j) as f64;
                }
            }
        }
        c
    }

    /// Every product of a set of odd shapes, transposes, thread counts and
    /// both epilogues, checked against `naive`, with dispatch limited to
    /// `isa` (when packing and multiplying); returns the results.
    fn check(isa: Isa) -> Vec<Vec<f32>> {
        let mut rng = Rng::new(5);
        let shapes = [
            (1, 1, 1),
            (13, 33, 7),
            (7, 5, 129),
            (2, 45, 17),
            (25, 64, 40),
            (12, 96, 9),
            (50, 100, 31),
            (64, 97, 3),
            (9, 70, 600),
        ];
        // Miri interprets every instruction: the three smaller shapes there.
        let shapes = if cfg!(miri) {
            &shapes[..3]
        } else {
            &shapes[..]
        };
        let mut results = Vec::new();
        for &(m, n, k) in shapes {
            for tb in [Trans::N, Trans::T] {
                let lda = k + 3;
                let ldb = if tb == Trans::N { n + 1 } else { k + 2 };
                let b_rows = if tb == Trans::N { k } else { n };
                let a: Vec<f32> = (0..m * lda).map(|_| rng.uniform(-1.0, 1.0)).collect();
                let b: Vec<f32> = (0..b_rows * ldb).map(|_| rng.uniform(-1.0, 1.0)).collect();
                let (av, bv) = (MatRef::with_ld(&a, m, k, lda), op(&b, tb, k, n, ldb));
                let want = naive(av, bv);
                let mut packed = PackedB::default();
                with_isa_limit(isa, || packed.pack(bv));
                for threads in [1, 2, 3] {
                    for accumulate in [false, true] {
                        let ldc = n + 2;
                        let c0: Vec<f32> = (0..m * ldc).map(|_| rng.uniform(-1.0, 1.0)).collect();
                        let mut c = c0.clone();
                        let cv = MatMut::with_ld(&mut c, m, n, ldc);
                        with_isa_limit(isa, || gemm_packed(av, &packed, accumulate, cv, threads));
                        for i in 0..m {
                            for j in 0..ldc {
                                let got = c[i * ldc + j];
                                if j >= n {
                                    assert_eq!(got, c0[i * ldc + j], "padding column written");
                                    continue;
                                }
                                let w = want[i * n + j]
                                    + if accumulate {
                                        c0[i * ldc + j] as f64
                                    } else {
                                        0.0
                                    };
                                assert!(
                                    (got as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                                    "{isa:?} {m}x{n}x{k} {tb:?} t{threads}: {got} vs {w}"
                                );
                            }
                        }
                        results.push(c);
                    }
                }
            }
        }
        results
    }

    #[test]
    fn matches_naive_for_odd_shapes_and_thread_counts() {
        check(Isa::Avx512);
    }

    #[test]
    fn the_avx2_tile_matches_too() {
        check(Isa::Avx2);
    }

    #[test]
    fn the_row_major_fallback_matches_too() {
        check(Isa::Baseline);
    }

    /// Both tiles sum each element in `k` order with FMA from zero, so where
    /// the CPU has both they give the same bits.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn the_avx2_and_avx512_tiles_agree_bit_for_bit() {
        if !(has_avx512() && has_avx2()) {
            eprintln!("skipped: this CPU lacks AVX-512, so there is only one tile kernel");
            return;
        }
        assert!(check(Isa::Avx512) == check(Isa::Avx2));
    }

    /// A matrix packed for a tile kernel keeps it: a later, lower limit
    /// on the thread that multiplies changes nothing.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_packed_matrix_runs_on_the_kernel_it_was_packed_for() {
        let (m, n, k) = (10, 40, 20);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.25).collect();
        let mut packed = PackedB::default();
        packed.pack(MatRef::new(&b, k, n));
        let run = |isa| {
            let mut c = vec![0.0; m * n];
            let cv = MatMut::new(&mut c, m, n);
            with_isa_limit(isa, || {
                gemm_packed(MatRef::new(&a, m, k), &packed, false, cv, 2)
            });
            c
        };
        let want = naive(MatRef::new(&a, m, k), MatRef::new(&b, k, n));
        let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        assert_eq!(run(Isa::Baseline), want);
        assert_eq!(run(Isa::Avx512), want);
    }

    #[test]
    fn thread_split_is_bit_identical_run_to_run() {
        let mut rng = Rng::new(9);
        let (m, n, k) = (50, 300, 64);
        let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let b: Vec<f32> = (0..n * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let mut packed = PackedB::default();
        packed.pack(MatRef::new(&b, n, k).t());
        let run = || {
            let mut c = vec![0.0; m * n];
            gemm_packed(
                MatRef::new(&a, m, k),
                &packed,
                false,
                MatMut::new(&mut c, m, n),
                2,
            );
            c
        };
        let first = run();
        for _ in 0..5 {
            assert_eq!(run(), first);
        }
    }
}
