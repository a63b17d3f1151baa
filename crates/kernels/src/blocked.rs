//! Large GEMMs (whole-block input projections, weight gradients, `dx`, the
//! decoder) on the same register tiles as [`crate::packed`] (AVX-512, or
//! AVX2+FMA on CPUs without it).
//!
//! Each thread owns a contiguous share of `C`: rows when `m >= n`, column
//! panels otherwise. It walks `K` in blocks of at most [`KC`], packs its own
//! copy of the `op(B)` block (all the panels of its share) and, [`MC`] rows at
//! a time, the `op(A)` block, then runs every panel over those rows. There is
//! one hand-off per GEMM (no barrier per block, no rayon wake-up), and every
//! element of `C` is summed by one thread in one fixed order, so results do
//! not depend on scheduling; they do not depend on the thread count either.
//!
//! Why this shape: at `K = 6400` (weight gradients) an unblocked panel would
//! not stay in cache; a `KC x NR` panel (64 KB) does, and an `MC x KC` slab of
//! `A` (128 KB) stays in L2 while the panels stream past it, which is the
//! regime in which the per-step kernel runs at ~95% of peak.

use std::cell::RefCell;

use crate::gemm::{Product, Trans};
use crate::packed::{
    per_tile_kernel, transpose8x8, AlignedBuf, Epilogue, Prefetch, Tile, TileKernel, MR, NR,
};
use crate::view::{MatMut, MatRef};
use crate::SharedMut;

const _: () = assert!(MR == 8, "transpose8x8 packs tiles of 8 rows");

/// Depth of one `K` block.
pub const KC: usize = 512;
/// Rows of `A` packed at a time.
pub const MC: usize = 64;

/// `C = op(A) · op(B)` (+ what `init` says), shapes as in [`crate::sgemm`],
/// on `threads` threads, in register tiles of `kernel`.
///
/// # Safety
/// The CPU must have `kernel` (see [`TileKernel::detect`]), and the
/// shapes must fit together (as `crate::gemm::check` asserts; the views
/// hold their elements).
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn gemm_blocked(
    kernel: TileKernel,
    a: MatRef<'_>,
    b: MatRef<'_>,
    init: Init<'_>,
    c: MatMut<'_>,
    threads: usize,
) {
    let (m, n, k) = (a.rows(), b.cols(), a.cols());
    let ldc = c.ld();
    let rhs = [Rhs {
        b: Operand::new(b),
        n,
        c: SharedMut::new(c.into_data()),
        ldc,
        init,
    }];
    let job = Job {
        kernel,
        a: Operand::new(a),
        m,
        k,
        rhs: &rhs,
        row_sums: None,
    };
    // SAFETY: the caller's promises.
    unsafe { job.launch(m >= n, threads) };
}

/// `C_j += op(A) · op(B_j)` for both `j`: two products with one left operand,
/// which each thread packs once for both (a recurrent layer's `dW_hh` and
/// `dW_ih` share the gate gradients). Each `C_j` gets the same bits as a
/// [`gemm_blocked`] call of its own.
///
/// Threads split the rows, so `m` must be at least both `n`. `row_sums`: as
/// in [`crate::sgemm_shared_a`].
///
/// # Safety
/// As [`gemm_blocked`], for both products (and `row_sums` at least `m` long).
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn gemm_blocked_shared_a(
    kernel: TileKernel,
    a: MatRef<'_>,
    products: [Product<'_>; 2],
    row_sums: Option<&mut [f32]>,
    threads: usize,
) {
    let (m, k) = (a.rows(), a.cols());
    let rhs = products.map(|p| {
        let (n, ldc) = (p.b.cols(), p.c.ld());
        Rhs {
            b: Operand::new(p.b),
            n,
            c: SharedMut::new(p.c.into_data()),
            ldc,
            init: Init::Keep,
        }
    });
    assert!(
        rhs.iter().all(|r| m >= r.n),
        "shared A: threads split the rows"
    );
    let job = Job {
        kernel,
        a: Operand::new(a),
        m,
        k,
        rhs: &rhs,
        row_sums: row_sums.map(SharedMut::new),
    };
    // SAFETY: the caller's promises.
    unsafe { job.launch(true, threads) };
}

/// A read-only operand: `op(X)[r, c]` is `x[r * ld + c]`, or `x[c * ld + r]`
/// when `trans`.
#[derive(Clone, Copy)]
struct Operand<'a> {
    x: &'a [f32],
    ld: usize,
    trans: bool,
}

impl<'a> Operand<'a> {
    fn new(x: MatRef<'a>) -> Operand<'a> {
        Operand {
            x: x.data(),
            ld: x.ld(),
            trans: x.trans() == Trans::T,
        }
    }

    /// The first element, for the packing loops' pointer arithmetic.
    fn ptr(&self) -> *const f32 {
        self.x.as_ptr()
    }

    /// `op(X)[r, c]`, unchecked.
    ///
    /// # Safety
    /// The element must lie inside `x` (the shapes were checked).
    #[inline(always)]
    unsafe fn at(&self, r: usize, c: usize) -> f32 {
        let i = if self.trans {
            c * self.ld + r
        } else {
            r * self.ld + c
        };
        // SAFETY: the caller's promise.
        unsafe { *self.x.get_unchecked(i) }
    }
}

/// A right-hand operand and where its product goes.
struct Rhs<'a> {
    b: Operand<'a>,
    n: usize,
    /// `C`, `[m, ldc]`: each thread writes its own rows or column panels.
    c: SharedMut<'a, f32>,
    ldc: usize,
    /// What the first `K` block adds to.
    init: Init<'a>,
}

/// The products of one left operand with one or two right ones.
struct Job<'a> {
    /// The register tile every panel runs on.
    kernel: TileKernel,
    a: Operand<'a>,
    m: usize,
    k: usize,
    rhs: &'a [Rhs<'a>],
    /// `[m]`: where the row sums of `op(A)` go (threads split the rows).
    row_sums: Option<SharedMut<'a, f32>>,
}

/// What a blocked product adds its result to.
#[derive(Clone, Copy)]
pub(crate) enum Init<'a> {
    /// Nothing: `C = A·B`.
    Zero,
    /// The old `C`: `C += A·B`.
    Keep,
    /// A row vector broadcast down the rows (a bias): `C = A·B + row`.
    Row(&'a [f32]),
}

thread_local! {
    /// The packed `A` slab, and the packed `B` block of each right-hand side.
    static BUFS: RefCell<(AlignedBuf, [AlignedBuf; 2])> = RefCell::new(Default::default());
}

per_tile_kernel! {
    /// [`Job::run_body`] compiled for `kernel` (the job's).
    fn run(
        job: &Job<'_>,
        rows: std::ops::Range<usize>,
        cols: Option<std::ops::Range<usize>>,
    ) => Job::run_body
}

impl Job<'_> {
    /// Runs on `threads` threads, each owning a contiguous share of the rows
    /// (`by_rows`; every right-hand side) or of the column panels (one side).
    ///
    /// # Safety
    /// As [`gemm_blocked`], for every product of the job.
    #[cfg(target_arch = "x86_64")]
    unsafe fn launch(&self, by_rows: bool, threads: usize) {
        let (m, n) = (self.m, self.rhs[0].n);
        assert!(by_rows || self.rhs.len() == 1);
        let units = if by_rows {
            m.div_ceil(MR)
        } else {
            n.div_ceil(NR)
        };
        let t = threads.clamp(1, units);
        crate::threads::parallel_for(t, &|i| {
            // Shares are whole row tiles or whole panels.
            let (lo, hi) = (units * i / t, units * (i + 1) / t);
            let (rows, cols) = if by_rows {
                ((lo * MR).min(m)..(hi * MR).min(m), None)
            } else {
                (0..m, Some((lo * NR).min(n)..(hi * NR).min(n)))
            };
            // SAFETY: the kernel and the shapes are the caller's promise; the
            // shares are disjoint.
            unsafe { run(self.kernel, self, rows, cols) };
        });
    }

    /// Computes rows `rows` of every product, or of the one product only
    /// the columns `cols` (which start on a panel boundary); [`run`] compiles
    /// it for the job's kernel.
    ///
    /// # Safety
    /// As [`Job::launch`], and no other thread may write these rows (or
    /// columns) of the products, or these rows' sums, meanwhile.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn run_body(&self, rows: std::ops::Range<usize>, cols: Option<std::ops::Range<usize>>) {
        let cols_of = |r: &Rhs| cols.clone().unwrap_or(0..r.n);
        if rows.is_empty() || self.rhs.iter().all(|r| cols_of(r).is_empty()) {
            return;
        }
        let blocks = self.k.div_ceil(KC);
        BUFS.with(|bufs| {
            let (ab, bbs) = &mut *bufs.borrow_mut();
            let mut k0 = 0;
            for blk in 0..blocks {
                let k1 = self.k * (blk + 1) / blocks;
                let kc = k1 - k0;
                for (r, bb) in self.rhs.iter().zip(bbs.iter_mut()) {
                    let cols = cols_of(r);
                    let out = bb.resize(cols.len().div_ceil(NR) * kc * NR);
                    // SAFETY: rows `k0..k1` and columns `cols` of `op(B)` lie
                    // inside `B` (the caller's promise).
                    unsafe { pack_b(&r.b, k0, kc, cols, out) };
                }
                let mut r0 = rows.start;
                while r0 < rows.end {
                    let mc = MC.min(rows.end - r0);
                    let ap = ab.resize(mc * kc);
                    // SAFETY: rows `r0..r0 + mc` and columns `k0..k1` of
                    // `op(A)` lie inside `A`; the CPU has AVX (it has a tile kernel).
                    unsafe { self.pack_a(r0, mc, k0, kc, ap) };
                    if let Some(sums) = &self.row_sums {
                        // SAFETY: these rows are this thread's alone.
                        let sums = unsafe { sums.slice(r0..r0 + mc) };
                        if blk == 0 {
                            sums.fill(0.0);
                        }
                        add_row_sums(ap, mc, kc, sums);
                    }
                    for (r, bb) in self.rhs.iter().zip(bbs.iter()) {
                        let first = if blk == 0 { r.init } else { Init::Keep };
                        let (cols, bp) = (cols_of(r), bb.get());
                        // SAFETY: the rows and columns are this thread's alone
                        // and inside `C`; the CPU has the kernel.
                        unsafe { r.compute(self.kernel, r0..r0 + mc, kc, cols, ap, bp, first) };
                    }
                    r0 += mc;
                }
                k0 = k1;
            }
        });
    }

    /// Row tiles of `op(A)[r0..r0+mc, k0..k0+kc]`: the tile of `mr <= MR` rows
    /// starting `i` rows in is `[kc][mr]` at `i * kc`.
    ///
    /// # Safety
    /// Those rows and columns of `op(A)` must lie inside `A`, and the CPU
    /// must have AVX.
    unsafe fn pack_a(&self, r0: usize, mc: usize, k0: usize, kc: usize, out: &mut [f32]) {
        let ld = self.a.ld;
        let mut i = 0;
        while i < mc {
            let mr = MR.min(mc - i);
            let tile = &mut out[i * kc..(i + mr) * kc];
            if self.a.trans {
                // op(A) rows are contiguous in A's columns.
                for (kk, dst) in tile.chunks_exact_mut(mr).enumerate() {
                    // SAFETY: `A` holds `mr` floats of row `k0 + kk` from
                    // column `r0 + i` (the caller's promise), read below.
                    let src = unsafe { self.a.ptr().add((k0 + kk) * ld + r0 + i) };
                    if mr == MR {
                        // A constant-length copy compiles to a vector move, not a `memcpy` call.
                        // SAFETY: as above; `dst` is `MR` long.
                        unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), MR) };
                    } else {
                        // SAFETY: as above.
                        dst.copy_from_slice(unsafe { std::slice::from_raw_parts(src, mr) });
                    }
                }
            } else if mr == MR {
                // A full tile of a row-major A: 8x8 blocks transposed in registers
                // (scalar gathers were a few percent of a training step).
                // Rows `r0 + i..r0 + i + MR` of `A` from column `k0`, `kc` floats each
                // (the caller's promise).
                let rows: [*const f32; MR] =
                    std::array::from_fn(|ii| self.a.ptr().wrapping_add((r0 + i + ii) * ld + k0));
                let full = kc / 8 * 8;
                for kk0 in (0..full).step_by(8) {
                    // SAFETY: each row has 8 floats from `kk0 <= kc - 8`; the tile
                    // is `[kc][MR]`; the CPU has AVX (the caller's promise).
                    unsafe { transpose8x8(&rows, kk0, tile.as_mut_ptr().add(kk0 * MR), MR) };
                }
                for kk in full..kc {
                    for (ii, row) in rows.iter().enumerate() {
                        // SAFETY: `kk < kc`.
                        tile[kk * MR + ii] = unsafe { *row.add(kk) };
                    }
                }
            } else {
                for (kk, dst) in tile.chunks_exact_mut(mr).enumerate() {
                    for (ii, v) in dst.iter_mut().enumerate() {
                        // SAFETY: inside `op(A)` (the caller's promise).
                        *v = unsafe { self.a.at(r0 + i + ii, k0 + kk) };
                    }
                }
            }
            i += mr;
        }
    }
}

/// `sums[i] += Σ_kk` of row `i` of a packed slab of `mc` rows (tiles of
/// [`Job::pack_a`]), in `kk` order: read back from L2 right after packing.
fn add_row_sums(ap: &[f32], mc: usize, kc: usize, sums: &mut [f32]) {
    let mut i = 0;
    while i < mc {
        let mr = MR.min(mc - i);
        let tile = &ap[i * kc..(i + mr) * kc];
        if mr == MR {
            let mut acc: [f32; MR] = sums[i..i + MR].try_into().unwrap();
            for col in tile.chunks_exact(MR) {
                for (s, &v) in acc.iter_mut().zip(col) {
                    *s += v;
                }
            }
            sums[i..i + MR].copy_from_slice(&acc);
        } else {
            for col in tile.chunks_exact(mr) {
                for (s, &v) in sums[i..i + mr].iter_mut().zip(col) {
                    *s += v;
                }
            }
        }
        i += mr;
    }
}

/// Panels of `op(B)[k0..k0+kc, cols]`: panel `p` is `[kc][NR]` at `p * kc * NR`,
/// zero-padded past the last column.
///
/// # Safety
/// Rows `k0..k0 + kc` and columns `cols` of `op(B)` must lie inside `B`.
unsafe fn pack_b(
    b: &Operand<'_>,
    k0: usize,
    kc: usize,
    cols: std::ops::Range<usize>,
    out: &mut [f32],
) {
    for (p, panel) in out.chunks_exact_mut(kc * NR).enumerate() {
        let j0 = cols.start + p * NR;
        let w = NR.min(cols.end - j0);
        for (kk, row) in panel.chunks_exact_mut(NR).enumerate() {
            if !b.trans {
                // SAFETY: `B` holds `w` floats of row `k0 + kk` from
                // column `j0` (the caller's promise), read below.
                let src = unsafe { b.ptr().add((k0 + kk) * b.ld + j0) };
                if w == NR {
                    // A fixed-size copy compiles to vector moves, not a `memcpy` call.
                    // SAFETY: as above; `row` is `NR` long.
                    unsafe { std::ptr::copy_nonoverlapping(src, row.as_mut_ptr(), NR) };
                } else {
                    // SAFETY: as above.
                    row[..w].copy_from_slice(unsafe { std::slice::from_raw_parts(src, w) });
                }
            } else {
                for (jj, v) in row[..w].iter_mut().enumerate() {
                    // SAFETY: inside `op(B)` (the caller's promise).
                    *v = unsafe { b.at(k0 + kk, j0 + jj) };
                }
            }
            row[w..].fill(0.0);
        }
    }
}

impl Rhs<'_> {
    /// Every panel of the share against every row tile of the packed slab.
    ///
    /// # Safety
    /// The CPU must have `kernel`; rows `r0..r0 + mc` and columns `cols` must
    /// lie inside `C` and be this thread's alone; `ap` and `bp` are packed
    /// by [`Job::pack_a`] and [`pack_b`] for these rows, columns and `kc`.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn compute(
        &self,
        kernel: TileKernel,
        rows: std::ops::Range<usize>,
        kc: usize,
        cols: std::ops::Range<usize>,
        ap: &[f32],
        bp: &[f32],
        init: Init<'_>,
    ) {
        let (r0, mc) = (rows.start, rows.len());
        let (panels, tiles) = (bp.len() / (kc * NR), mc.div_ceil(MR));
        for (p, panel) in bp.chunks_exact(kc * NR).enumerate() {
            let j0 = cols.start + p * NR;
            let w = NR.min(cols.end - j0);
            let epi = match init {
                Init::Zero => Epilogue::Store,
                Init::Keep => Epilogue::Accumulate,
                Init::Row(row) => Epilogue::AddRow(row[j0..].as_ptr()),
            };
            let mut i = 0;
            while i < mc {
                let mr = MR.min(mc - i);
                let prefetch = if p + 1 < panels {
                    let next = panel.as_ptr().wrapping_add(kc * NR);
                    Prefetch::share(next, kc * NR, i / MR, tiles)
                } else {
                    Prefetch::NONE
                };
                // SAFETY: the tile reads `[kc][mr]` of `ap` at `i * kc` and the
                // `[kc][NR]` panel, and writes `mr` rows of `w` columns of `C`
                // from row `r0 + i`, column `j0`: inside `C` and this thread's
                // (the caller's promise); a bias row holds `w` columns from `j0`.
                unsafe {
                    let c = self.c.as_mut_ptr().add((r0 + i) * self.ldc + j0);
                    let a = ap[i * kc..].as_ptr();
                    let t = Tile {
                        k: kc,
                        ap: a,
                        bp: panel.as_ptr(),
                        c,
                        ldc: self.ldc,
                        cols: w,
                        epilogue: epi,
                        prefetch,
                    };
                    kernel.tile(mr, t);
                }
                i += mr;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::{with_isa_limit, Isa};
    use crate::view::op;
    use crate::Rng;

    /// Every tile kernel the CPU has, by the limit that selects it.
    fn kernels() -> Vec<(Isa, TileKernel)> {
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter_map(|isa| Some((isa, with_isa_limit(isa, TileKernel::detect)?)))
            .filter(|&(isa, kernel)| (isa == Isa::Avx512) == (kernel == TileKernel::Avx512))
            .collect()
    }

    #[test]
    fn matches_naive_for_odd_shapes_transposes_and_thread_counts() {
        let kernels = kernels();
        if kernels.is_empty() {
            eprintln!("skipped: this CPU has neither AVX-512 nor AVX2+FMA");
        }
        let mut bits: Vec<Vec<Vec<f32>>> = vec![Vec::new(); kernels.len()];
        for (&(isa, kernel), bits) in kernels.iter().zip(&mut bits) {
            eprintln!("{isa:?}");
            *bits = check(kernel);
        }
        // Both kernels sum each element in `k` order with FMA: the same bits.
        if let [avx512, avx2] = &bits[..] {
            assert!(avx512 == avx2, "the AVX-512 and AVX2 tiles differ");
        }
    }

    /// Checks `kernel` on odd shapes against a naive product; returns its results.
    fn check(kernel: TileKernel) -> Vec<Vec<f32>> {
        let mut results = Vec::new();
        let mut rng = Rng::new(17);
        // Includes K spanning several blocks, M and N not multiples of the tiles,
        // and both the row and the column split.
        for &(m, n, k) in &[
            (1, 1, 1),
            (9, 33, 5),
            (70, 31, 1100),
            (13, 150, 600),
            (130, 65, 7),
        ] {
            for ta in [Trans::N, Trans::T] {
                for tb in [Trans::N, Trans::T] {
                    let lda = if ta == Trans::N { k + 1 } else { m + 2 };
                    let ldb = if tb == Trans::N { n + 3 } else { k + 1 };
                    let a_rows = if ta == Trans::N { m } else { k };
                    let b_rows = if tb == Trans::N { k } else { n };
                    let a: Vec<f32> = (0..a_rows * lda).map(|_| rng.uniform(-1.0, 1.0)).collect();
                    let b: Vec<f32> = (0..b_rows * ldb).map(|_| rng.uniform(-1.0, 1.0)).collect();
                    let ldc = n + 1;
                    let c0: Vec<f32> = (0..m * ldc).map(|_| rng.uniform(-1.0, 1.0)).collect();
                    let opa = |i: usize, p: usize| {
                        if ta == Trans::N {
                            a[i * lda + p]
                        } else {
                            a[p * lda + i]
                        }
                    };
                    let opb = |p: usize, j: usize| {
                        if tb == Trans::N {
                            b[p * ldb + j]
                        } else {
                            b[j * ldb + p]
                        }
                    };
                    let bias: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
                    let mut first: Option<Vec<f32>> = None;
                    for threads in [1, 2, 3] {
                        for mode in 0..3 {
                            let init = [Init::Zero, Init::Keep, Init::Row(&bias)][mode];
                            let mut c = c0.clone();
                            // SAFETY: the CPU has `kernel` (`kernels`); the
                            // slices fit the shapes.
                            unsafe {
                                gemm_blocked(
                                    kernel,
                                    op(&a, ta, m, k, lda),
                                    op(&b, tb, k, n, ldb),
                                    init,
                                    MatMut::with_ld(&mut c, m, n, ldc),
                                    threads,
                                )
                            };
                            for i in 0..m {
                                for j in 0..ldc {
                                    let got = c[i * ldc + j];
                                    if j >= n {
                                        assert_eq!(got, c0[i * ldc + j], "padding column written");
                                        continue;
                                    }
                                    let w: f64 = (0..k)
                                        .map(|p| opa(i, p) as f64 * opb(p, j) as f64)
                                        .sum::<f64>()
                                        + [0.0, c0[i * ldc + j] as f64, bias[j] as f64][mode];
                                    assert!(
                                        (got as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()),
                                        "{m}x{n}x{k} {ta:?}{tb:?} t{threads} init {mode}: {got} vs {w}"
                                    );
                                }
                            }
                            if mode == 0 {
                                // Each element is summed in one fixed order whatever the split.
                                match &first {
                                    None => first = Some(c.clone()),
                                    Some(f) => assert_eq!(&c, f, "thread count changed the bits"),
                                }
                            }
                            results.push(c);
                        }
                    }
                }
            }
        }
        results
    }
}
