//! Large GEMMs (whole-block input projections, weight gradients, `dx`, the
//! decoder) on the same AVX-512 register tile as [`crate::packed`].
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
use crate::packed::{transpose8x8, AlignedBuf, Epilogue, Prefetch, MR, NR};

const _: () = assert!(MR == 8, "transpose8x8 packs tiles of 8 rows");

/// Depth of one `K` block.
pub const KC: usize = 512;
/// Rows of `A` packed at a time.
pub const MC: usize = 64;

/// `C[m, n] = op(A)[m, k] · op(B)[k, n] (+ what `init` says), all row-major
/// with BLAS strides as in [`crate::sgemm`], on `threads` threads.
///
/// Requires AVX-512 (see [`crate::simd::has_avx512`]); the caller checked
/// shapes and lengths.
#[cfg(target_arch = "x86_64")]
pub(crate) fn gemm_blocked(
    ta: Trans,
    tb: Trans,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    init: Init<'_>,
    c: &mut [f32],
    ldc: usize,
    threads: usize,
) {
    let rhs = [Rhs {
        b: Operand::new(b, ldb, tb),
        n,
        c: c.as_mut_ptr(),
        ldc,
        init: match init {
            Init::Zero => None,
            Init::Keep => Some(std::ptr::null()),
            Init::Row(r) => Some(r.as_ptr()),
        },
    }];
    let job = Job {
        a: Operand::new(a, lda, ta),
        m,
        k,
        rhs: &rhs,
        row_sums: None,
    };
    job.launch(m >= n, threads);
}

/// `C_j += op(A) · op(B_j)` for both `j`: two products with one left operand,
/// which each thread packs once for both (a recurrent layer's `dW_hh` and
/// `dW_ih` share the gate gradients). Each `C_j` gets the same bits as a
/// [`gemm_blocked`] call of its own.
///
/// Threads split the rows, so `m` must be at least both `n`; AVX-512 and
/// shapes as for [`gemm_blocked`]. `row_sums`: as in [`crate::sgemm_shared_a`].
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_blocked_shared_a(
    ta: Trans,
    m: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    products: [Product<'_>; 2],
    row_sums: Option<&mut [f32]>,
    threads: usize,
) {
    let rhs = products.map(|p| Rhs {
        b: Operand::new(p.b, p.ldb, p.tb),
        n: p.n,
        c: p.c.as_mut_ptr(),
        ldc: p.ldc,
        init: Some(std::ptr::null()),
    });
    assert!(
        rhs.iter().all(|r| m >= r.n),
        "shared A: threads split the rows"
    );
    let job = Job {
        a: Operand::new(a, lda, ta),
        m,
        k,
        rhs: &rhs,
        row_sums: row_sums.map(|s| s.as_mut_ptr()),
    };
    job.launch(true, threads);
}

/// A read-only operand: `op(X)[r, c]` is `ptr[r * ld + c]`, or `ptr[c * ld + r]`
/// when `trans`.
#[derive(Clone, Copy)]
struct Operand {
    ptr: *const f32,
    ld: usize,
    trans: bool,
}

impl Operand {
    fn new(x: &[f32], ld: usize, t: Trans) -> Operand {
        Operand {
            ptr: x.as_ptr(),
            ld,
            trans: t == Trans::T,
        }
    }

    #[inline(always)]
    unsafe fn at(&self, r: usize, c: usize) -> f32 {
        if self.trans {
            *self.ptr.add(c * self.ld + r)
        } else {
            *self.ptr.add(r * self.ld + c)
        }
    }
}

/// A right-hand operand and where its product goes.
#[derive(Clone, Copy)]
struct Rhs {
    b: Operand,
    n: usize,
    c: *mut f32,
    ldc: usize,
    /// What the first `K` block adds to: nothing, `C` (null), or a row vector.
    init: Option<*const f32>,
}

/// The products of one left operand with one or two right ones.
struct Job<'a> {
    a: Operand,
    m: usize,
    k: usize,
    rhs: &'a [Rhs],
    /// `[m]`: where the row sums of `op(A)` go (threads split the rows).
    row_sums: Option<*mut f32>,
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

// SAFETY: threads read `a` and the `b`s and write disjoint shares of the `c`s.
unsafe impl Sync for Job<'_> {}

thread_local! {
    /// The packed `A` slab, and the packed `B` block of each right-hand side.
    static BUFS: RefCell<(AlignedBuf, [AlignedBuf; 2])> = RefCell::new(Default::default());
}

impl Job<'_> {
    /// Runs on `threads` threads, each owning a contiguous share of the rows
    /// (`by_rows`; every right-hand side) or of the column panels (one side).
    #[cfg(target_arch = "x86_64")]
    fn launch(&self, by_rows: bool, threads: usize) {
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
            // SAFETY: AVX-512 was checked by the caller; shares are disjoint.
            unsafe { self.run(rows, cols) };
        });
    }

    /// Computes rows `rows` of every product, or of the one product only
    /// the columns `cols` (which start on a panel boundary).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run(&self, rows: std::ops::Range<usize>, cols: Option<std::ops::Range<usize>>) {
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
                    pack_b(
                        &r.b,
                        k0,
                        kc,
                        cols.clone(),
                        bb.resize(cols.len().div_ceil(NR) * kc * NR),
                    );
                }
                let mut r0 = rows.start;
                while r0 < rows.end {
                    let mc = MC.min(rows.end - r0);
                    let ap = ab.resize(mc * kc);
                    self.pack_a(r0, mc, k0, kc, ap);
                    if let Some(sums) = self.row_sums {
                        let sums = std::slice::from_raw_parts_mut(sums.add(r0), mc);
                        if blk == 0 {
                            sums.fill(0.0);
                        }
                        add_row_sums(ap, mc, kc, sums);
                    }
                    for (r, bb) in self.rhs.iter().zip(bbs.iter()) {
                        let first = if blk == 0 {
                            r.init
                        } else {
                            Some(std::ptr::null())
                        };
                        r.compute(r0, mc, kc, cols_of(r), ap, bb.get(), first);
                    }
                    r0 += mc;
                }
                k0 = k1;
            }
        });
    }

    /// Row tiles of `op(A)[r0..r0+mc, k0..k0+kc]`: the tile of `mr <= MR` rows
    /// starting `i` rows in is `[kc][mr]` at `i * kc`.
    unsafe fn pack_a(&self, r0: usize, mc: usize, k0: usize, kc: usize, out: &mut [f32]) {
        let ld = self.a.ld;
        let mut i = 0;
        while i < mc {
            let mr = MR.min(mc - i);
            let tile = &mut out[i * kc..(i + mr) * kc];
            if self.a.trans {
                // op(A) rows are contiguous in A's columns.
                for (kk, dst) in tile.chunks_exact_mut(mr).enumerate() {
                    let src = self.a.ptr.add((k0 + kk) * ld + r0 + i);
                    if mr == MR {
                        // A constant-length copy compiles to a vector move, not a `memcpy` call.
                        std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), MR);
                    } else {
                        dst.copy_from_slice(std::slice::from_raw_parts(src, mr));
                    }
                }
            } else if mr == MR {
                // A full tile of a row-major A: 8x8 blocks transposed in registers
                // (scalar gathers were a few percent of a training step).
                let rows: [*const f32; MR] =
                    std::array::from_fn(|ii| self.a.ptr.add((r0 + i + ii) * ld + k0));
                let full = kc / 8 * 8;
                for kk0 in (0..full).step_by(8) {
                    transpose8x8(&rows, kk0, tile.as_mut_ptr().add(kk0 * MR), MR);
                }
                for kk in full..kc {
                    for (ii, row) in rows.iter().enumerate() {
                        tile[kk * MR + ii] = *row.add(kk);
                    }
                }
            } else {
                for (kk, dst) in tile.chunks_exact_mut(mr).enumerate() {
                    for (ii, v) in dst.iter_mut().enumerate() {
                        *v = self.a.at(r0 + i + ii, k0 + kk);
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
unsafe fn pack_b(b: &Operand, k0: usize, kc: usize, cols: std::ops::Range<usize>, out: &mut [f32]) {
    for (p, panel) in out.chunks_exact_mut(kc * NR).enumerate() {
        let j0 = cols.start + p * NR;
        let w = NR.min(cols.end - j0);
        for (kk, row) in panel.chunks_exact_mut(NR).enumerate() {
            if !b.trans {
                let src = b.ptr.add((k0 + kk) * b.ld + j0);
                if w == NR {
                    // A fixed-size copy compiles to vector moves, not a `memcpy` call.
                    std::ptr::copy_nonoverlapping(src, row.as_mut_ptr(), NR);
                } else {
                    row[..w].copy_from_slice(std::slice::from_raw_parts(src, w));
                }
            } else {
                for (jj, v) in row[..w].iter_mut().enumerate() {
                    *v = b.at(k0 + kk, j0 + jj);
                }
            }
            row[w..].fill(0.0);
        }
    }
}

impl Rhs {
    /// Every panel of the share against every row tile of the packed slab.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn compute(
        &self,
        r0: usize,
        mc: usize,
        kc: usize,
        cols: std::ops::Range<usize>,
        ap: &[f32],
        bp: &[f32],
        init: Option<*const f32>,
    ) {
        let (panels, tiles) = (bp.len() / (kc * NR), mc.div_ceil(MR));
        for (p, panel) in bp.chunks_exact(kc * NR).enumerate() {
            let j0 = cols.start + p * NR;
            let w = NR.min(cols.end - j0);
            let epi = match init {
                None => Epilogue::Store,
                Some(row) if row.is_null() => Epilogue::Accumulate,
                Some(row) => Epilogue::AddRow(row.add(j0)),
            };
            let mut i = 0;
            while i < mc {
                let mr = MR.min(mc - i);
                let c = self.c.add((r0 + i) * self.ldc + j0);
                crate::packed::tile(
                    mr,
                    kc,
                    ap.as_ptr().add(i * kc),
                    panel.as_ptr(),
                    c,
                    self.ldc,
                    w,
                    epi,
                    if p + 1 < panels {
                        Prefetch::share(panel.as_ptr().add(kc * NR), kc * NR, i / MR, tiles)
                    } else {
                        Prefetch::NONE
                    },
                );
                i += mr;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;

    #[test]
    fn matches_naive_for_odd_shapes_transposes_and_thread_counts() {
        if !crate::simd::has_avx512() {
            return;
        }
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
                            gemm_blocked(
                                ta, tb, m, n, k, &a, lda, &b, ldb, init, &mut c, ldc, threads,
                            );
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
                                    None => first = Some(c),
                                    Some(f) => assert_eq!(&c, f, "thread count changed the bits"),
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
