//! bf16 products on pair instructions: operands packed as two bf16 values per
//! 32-bit word (`k` and `k + 1`), each step of the micro-kernel adding two
//! products per lane, as AVX512-BF16's `vdpbf16ps` does.
//!
//! `op(B)` is packed once into panels of [`NR`] columns (`[⌈k/2⌉][NR]` words,
//! zero past `k` and `n`), `op(A)` into tiles of up to [`MR`] rows
//! (`[⌈k/2⌉][rows]` words); a [`PairKernel`] sums one tile against one panel
//! into float32 accumulators. Each element of `C` is summed by one task, in
//! `k` order, so results do not depend on the thread count.
//!
//! Two kernels share this driver: [`PairKernel::Portable`], the same sums in
//! plain Rust (any CPU; it tests the packing and tiling where the instructions
//! are missing), and [`PairKernel::Avx512Bf16`].

use crate::blocked::Init;
use crate::gemm::Product;
use crate::panel::bf16_bits;
use crate::view::{MatMut, MatRef};
use crate::SharedMut;

/// Rows of `A` per tile.
pub const MR: usize = 8;
/// Columns of `B` per panel: two 16-lane vectors.
pub const NR: usize = 32;

/// The micro-kernel that sums a tile against a panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairKernel {
    /// Plain Rust, in `vdpbf16ps`'s order (the odd `k` first, then the even
    /// one, each added in float32).
    Portable,
    /// AVX512-BF16's `vdpbf16ps`.
    Avx512Bf16,
}

impl PairKernel {
    /// `acc[r][j] += Σ_i a[i][r] · b[i][j]` over `kp` word pairs, for `rows`
    /// rows of the tile `a` (`[kp][rows]` words) and the panel `b`
    /// (`[kp][NR]` words); `acc` is `[MR][NR]`.
    ///
    /// # Safety
    /// The slices' lengths are checked; for [`PairKernel::Avx512Bf16`] the
    /// CPU must have AVX-512F and AVX512-BF16.
    unsafe fn tile(self, kp: usize, rows: usize, a: &[u32], b: &[u32], acc: &mut [f32; MR * NR]) {
        assert!((1..=MR).contains(&rows) && a.len() >= kp * rows && b.len() >= kp * NR);
        match self {
            PairKernel::Portable => portable_tile(kp, rows, a, b, acc),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the lengths were checked above, the CPU's features are
            // the caller's promise.
            PairKernel::Avx512Bf16 => unsafe {
                avx512::tile(kp, rows, a.as_ptr(), b.as_ptr(), acc.as_mut_ptr())
            },
            #[cfg(not(target_arch = "x86_64"))]
            PairKernel::Avx512Bf16 => unreachable!("AVX512-BF16 is x86-64 only"),
        }
    }
}

/// The word of bf16 `lo` (low half) and `hi` (high half).
fn pair(lo: f32, hi: f32) -> u32 {
    u32::from(bf16_bits(lo)) | u32::from(bf16_bits(hi)) << 16
}

/// The two float32 values of a word (low, high).
fn unpair(w: u32) -> (f32, f32) {
    (f32::from_bits(w << 16), f32::from_bits(w & 0xffff_0000))
}

/// [`PairKernel::Portable`].
fn portable_tile(kp: usize, rows: usize, a: &[u32], b: &[u32], acc: &mut [f32; MR * NR]) {
    for i in 0..kp {
        let panel = &b[i * NR..(i + 1) * NR];
        for r in 0..rows {
            let (a_lo, a_hi) = unpair(a[i * rows + r]);
            let sums = &mut acc[r * NR..(r + 1) * NR];
            for (s, &w) in sums.iter_mut().zip(panel) {
                let (b_lo, b_hi) = unpair(w);
                // Two roundings, high element first, as `vdpbf16ps`; no
                // `mul_add`, whose fused rounding would differ.
                *s += a_hi * b_hi;
                *s += a_lo * b_lo;
            }
        }
    }
}

/// `op(B)` `[k, n]` packed into bf16 pair panels.
#[derive(Clone, Debug, Default)]
pub struct PairPanels {
    k: usize,
    n: usize,
    words: Vec<u32>,
}

impl PairPanels {
    /// Packs `op(B)`, reusing this buffer.
    pub fn pack(&mut self, b: MatRef<'_>) {
        let (k, n) = (b.rows(), b.cols());
        let (kp, panels) = (k.div_ceil(2), n.div_ceil(NR));
        self.k = k;
        self.n = n;
        self.words.clear();
        self.words.resize(panels * kp * NR, 0);
        let at = |kk: usize, j: usize| if kk < k && j < n { b.at(kk, j) } else { 0.0 };
        for (p, panel) in self.words.chunks_exact_mut(kp * NR).enumerate() {
            for (i, row) in panel.chunks_exact_mut(NR).enumerate() {
                for (jj, w) in row.iter_mut().enumerate() {
                    let j = p * NR + jj;
                    *w = pair(at(2 * i, j), at(2 * i + 1, j));
                }
            }
        }
    }

    /// The `[k, n]` shape of the packed `op(B)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.k, self.n)
    }
}

/// The row tiles `(first row, rows)` of an `m`-row `A`: as few as [`MR`]
/// allows, of nearly equal height.
fn tiles(m: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = m.div_ceil(MR);
    (0..count).map(move |i| (m * i / count, m * (i + 1) / count - m * i / count))
}

/// `op(A)` `[m, k]` packed tile by tile: the tile at row `r0` with `rows`
/// rows is `[kp][rows]` words at offset `r0 * kp`.
fn pack_a(a: MatRef<'_>, out: &mut Vec<u32>) {
    let (m, k) = (a.rows(), a.cols());
    let kp = k.div_ceil(2);
    out.clear();
    out.resize(m * kp, 0);
    let at = |r: usize, kk: usize| if kk < k { a.at(r, kk) } else { 0.0 };
    for (r0, rows) in tiles(m) {
        let tile = &mut out[r0 * kp..(r0 + rows) * kp];
        for (i, words) in tile.chunks_exact_mut(rows).enumerate() {
            for (rr, w) in words.iter_mut().enumerate() {
                *w = pair(at(r0 + rr, 2 * i), at(r0 + rr, 2 * i + 1));
            }
        }
    }
}

thread_local! {
    /// Panels packed for one call of [`gemm_route`], reused from call to call.
    static PANELS: std::cell::Cell<PairPanels> = std::cell::Cell::new(PairPanels::default());
    /// `op(A)` packed by [`pack_a`] for one call, reused from call to call.
    static A_TILES: std::cell::Cell<Vec<u32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// [`gemm_pairs`] on [`crate::threads::threads`] threads, packing `op(B)`
/// here: the entry points' bf16 path on pair kernels.
pub(crate) fn gemm_route(
    a: MatRef<'_>,
    b: MatRef<'_>,
    init: Init<'_>,
    c: MatMut<'_>,
    kernel: PairKernel,
) {
    let mut panels = PANELS.take();
    panels.pack(b);
    // SAFETY: the route chose `kernel` only where the CPU has it.
    unsafe { gemm_pairs(a, &panels, init, c, crate::threads::threads(), kernel) };
    PANELS.set(panels);
}

/// `C_j += op(A) · op(B_j)` for both products, `op(A)` packed once for both
/// (a recurrent layer's two weight gradients share `dG`).
pub(crate) fn gemm_route_shared_a(a: MatRef<'_>, products: [Product<'_>; 2], kernel: PairKernel) {
    let mut panels = PANELS.take();
    with_packed_a(a, |ap| {
        for p in products {
            panels.pack(p.b);
            // SAFETY: the route chose `kernel` only where the CPU has it.
            unsafe {
                run_pairs(
                    ap,
                    a.rows(),
                    &panels,
                    Init::Keep,
                    p.c,
                    crate::threads::threads(),
                    kernel,
                )
            };
        }
    });
    PANELS.set(panels);
}

/// Runs `f` on `op(A)` packed by [`pack_a`] in this thread's scratch.
fn with_packed_a<R>(a: MatRef<'_>, f: impl FnOnce(&[u32]) -> R) -> R {
    let mut ap = A_TILES.take();
    pack_a(a, &mut ap);
    let out = f(&ap);
    A_TILES.set(ap);
    out
}

/// `C = op(A) · op(B)` plus what `init` says, on bf16 operands with float32
/// sums, on `threads` threads. Shapes as in [`crate::sgemm`] (checked by the
/// caller).
///
/// # Safety
/// For [`PairKernel::Avx512Bf16`] the CPU must have AVX-512F and AVX512-BF16.
pub(crate) unsafe fn gemm_pairs(
    a: MatRef<'_>,
    b: &PairPanels,
    init: Init<'_>,
    c: MatMut<'_>,
    threads: usize,
    kernel: PairKernel,
) {
    let (m, n, k) = (a.rows(), b.n, b.k);
    assert!(
        a.cols() == k && c.rows() == m && c.cols() == n,
        "gemm_pairs: shapes"
    );
    if let Init::Row(bias) = init {
        assert!(
            bias.len() >= n,
            "gemm_pairs: bias of {} for {n} columns",
            bias.len()
        );
    }
    // SAFETY: the caller's promise on the CPU.
    with_packed_a(a, |ap| unsafe {
        run_pairs(ap, m, b, init, c, threads, kernel)
    });
}

/// [`gemm_pairs`] on `op(A)` already packed by [`pack_a`] (`m` rows).
///
/// # Safety
/// As [`gemm_pairs`]; `ap` must be `op(A)` packed, of `b`'s depth, and the
/// shapes must fit (checked by the callers).
unsafe fn run_pairs(
    ap: &[u32],
    m: usize,
    b: &PairPanels,
    init: Init<'_>,
    mut c: MatMut<'_>,
    threads: usize,
    kernel: PairKernel,
) {
    let (n, k) = (b.n, b.k);
    if m == 0 || n == 0 {
        return;
    }
    let kp = k.div_ceil(2);
    let tile_list: Vec<(usize, usize)> = tiles(m).collect();
    let panels = n.div_ceil(NR);
    let ldc = c.ld();
    let out = SharedMut::new(c.data());
    // Split the larger of the two dimensions between the threads.
    let by_panels = panels >= tile_list.len();
    let units = if by_panels { panels } else { tile_list.len() };
    let t = threads.clamp(1, units);
    let task = |i: usize| {
        let (lo, hi) = (units * i / t, units * (i + 1) / t);
        let mut acc = [0.0f32; MR * NR];
        for u in lo..hi {
            let (ps, ts) = if by_panels {
                (u..u + 1, 0..tile_list.len())
            } else {
                (0..panels, u..u + 1)
            };
            for p in ps {
                let panel = &b.words[p * kp * NR..(p + 1) * kp * NR];
                let cols = NR.min(n - p * NR);
                for &(r0, rows) in &tile_list[ts.clone()] {
                    for r in 0..rows {
                        let sums = &mut acc[r * NR..r * NR + cols];
                        match init {
                            Init::Zero => sums.fill(0.0),
                            Init::Row(bias) => sums.copy_from_slice(&bias[p * NR..p * NR + cols]),
                            // SAFETY: this task alone writes these columns
                            // of these rows (tasks split panels or tiles).
                            Init::Keep => sums.copy_from_slice(unsafe {
                                out.read((r0 + r) * ldc + p * NR..(r0 + r) * ldc + p * NR + cols)
                            }),
                        }
                    }
                    let tile = &ap[r0 * kp..(r0 + rows) * kp];
                    // SAFETY: the caller's promise on the CPU; lengths are
                    // checked inside.
                    unsafe { kernel.tile(kp, rows, tile, panel, &mut acc) };
                    for r in 0..rows {
                        let at = (r0 + r) * ldc + p * NR;
                        // SAFETY: as for the read above.
                        unsafe { out.slice(at..at + cols) }
                            .copy_from_slice(&acc[r * NR..r * NR + cols]);
                    }
                }
            }
        }
    };
    crate::threads::parallel_for(t, &task);
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    //! The AVX512-BF16 micro-kernel: a leaf function (no calls), so that
    //! `scripts/emulate_kernel.py` can run its machine code in an emulator on
    //! CPUs without the instructions.
    use std::arch::x86_64::*;

    use super::{MR, NR};

    /// [`super::PairKernel::tile`] on `vdpbf16ps`: `rows` rows of 32 columns
    /// in 2 × `rows` vector accumulators.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX512-BF16; `a` must hold `kp * rows`
    /// words, `b` `kp * NR` words and `acc` `MR * NR` floats; `rows <= MR`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(crate) unsafe extern "C" fn tile(
        kp: usize,
        rows: usize,
        a: *const u32,
        b: *const u32,
        acc: *mut f32,
    ) {
        // SAFETY: the caller's promises, for each row count.
        unsafe {
            match rows {
                1 => kernel::<1>(kp, a, b, acc),
                2 => kernel::<2>(kp, a, b, acc),
                3 => kernel::<3>(kp, a, b, acc),
                4 => kernel::<4>(kp, a, b, acc),
                5 => kernel::<5>(kp, a, b, acc),
                6 => kernel::<6>(kp, a, b, acc),
                7 => kernel::<7>(kp, a, b, acc),
                _ => kernel::<MR>(kp, a, b, acc),
            }
        }
    }

    /// [`tile`] for `R` rows.
    ///
    /// # Safety
    /// As [`tile`]. Inlined into it (the only caller), which carries the
    /// target features, so the function stays a leaf.
    #[inline(always)]
    unsafe fn kernel<const R: usize>(kp: usize, a: *const u32, b: *const u32, acc: *mut f32) {
        // SAFETY: `acc` has `R * NR` floats, `b` `kp * NR` words and `a`
        // `kp * R` words (the caller's promise); every access below stays
        // inside them. (Pointers step with `wrapping_add`, whose debug builds
        // add no checks, so the function stays a leaf in every profile.)
        unsafe {
            let (mut lo, mut hi) = ([_mm512_setzero_ps(); R], [_mm512_setzero_ps(); R]);
            let mut row = acc;
            for r in 0..R {
                lo[r] = _mm512_loadu_ps(row);
                hi[r] = _mm512_loadu_ps(row.wrapping_add(16));
                row = row.wrapping_add(NR);
            }
            let (mut ap, mut bp) = (a, b);
            for _ in 0..kp {
                let b_lo = as_bf16(_mm512_loadu_si512(bp as *const _));
                let b_hi = as_bf16(_mm512_loadu_si512(bp.wrapping_add(16) as *const _));
                for r in 0..R {
                    let a_r =
                        as_bf16(_mm512_set1_epi32(ap.wrapping_add(r).read_unaligned() as i32));
                    lo[r] = _mm512_dpbf16_ps(lo[r], a_r, b_lo);
                    hi[r] = _mm512_dpbf16_ps(hi[r], a_r, b_hi);
                }
                ap = ap.wrapping_add(R);
                bp = bp.wrapping_add(NR);
            }
            let mut row = acc;
            for r in 0..R {
                _mm512_storeu_ps(row, lo[r]);
                _mm512_storeu_ps(row.wrapping_add(16), hi[r]);
                row = row.wrapping_add(NR);
            }
        }
    }

    /// 32 bf16 values from the bits of a vector.
    #[inline(always)]
    fn as_bf16(x: __m512i) -> __m512bh {
        // SAFETY: both are 64 plain bytes; every bit pattern is a value.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(x) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::round_bf16;
    use crate::Rng;

    /// The float32 sums of the rounded operands, in `vdpbf16ps`'s order.
    fn reference(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, init: &[f32]) -> Vec<f32> {
        let mut c = init.to_vec();
        for r in 0..m {
            for j in 0..n {
                let s = &mut c[r * n + j];
                for i in (0..k).step_by(2) {
                    let x = |kk: usize| {
                        if kk < k {
                            round_bf16(a[r * k + kk])
                        } else {
                            0.0
                        }
                    };
                    let y = |kk: usize| {
                        if kk < k {
                            round_bf16(b[kk * n + j])
                        } else {
                            0.0
                        }
                    };
                    *s += x(i + 1) * y(i + 1);
                    *s += x(i) * y(i);
                }
            }
        }
        c
    }

    /// Every kernel this CPU has, through the whole driver, on odd shapes
    /// and thread counts: the portable kernel bit for bit the reference's
    /// sums, the instructions within float32 rounding of them.
    #[test]
    fn pair_products_are_the_rounded_operands_sums_in_pair_order() {
        let mut kernels = vec![PairKernel::Portable];
        if crate::precision::has_avx512_bf16() {
            kernels.push(PairKernel::Avx512Bf16);
        }
        let mut rng = Rng::new(11);
        for &(m, n, k) in &[
            (1, 1, 1),
            (3, 5, 7),
            (8, 32, 64),
            (25, 70, 129),
            (64, 33, 300),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let old: Vec<f32> = (0..m * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let row: Vec<f32> = (0..m * n).map(|i| bias[i % n]).collect();
            let mut panels = PairPanels::default();
            panels.pack(MatRef::new(&b, k, n));
            for &kernel in &kernels {
                for threads in [1, 2, 3] {
                    let cases: [(Init<'_>, &[f32]); 3] = [
                        (Init::Zero, &vec![0.0; m * n]),
                        (Init::Keep, &old),
                        (Init::Row(&bias), &row),
                    ];
                    for (init, start) in cases {
                        let mut c = if matches!(init, Init::Keep) {
                            old.clone()
                        } else {
                            vec![f32::NAN; m * n]
                        };
                        // SAFETY: the CPU has the kernel (checked above).
                        unsafe {
                            gemm_pairs(
                                MatRef::new(&a, m, k),
                                &panels,
                                init,
                                MatMut::new(&mut c, m, n),
                                threads,
                                kernel,
                            )
                        };
                        let want = reference(&a, &b, m, n, k, start);
                        if kernel == PairKernel::Portable {
                            assert_eq!(c, want, "{m}x{n}x{k} on {threads} threads");
                        } else {
                            // The instruction's order per the SDM (the
                            // emulator's check is bit for bit); a CPU may
                            // round its pair differently, within float32
                            // accumulation-order error.
                            let tol = 2e-6 * (k + 2) as f32;
                            for (x, y) in c.iter().zip(&want) {
                                assert!((x - y).abs() <= tol, "{kernel:?} {m}x{n}x{k}: {x} vs {y}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn transposed_operands_pack_as_their_transpose() {
        let mut rng = Rng::new(5);
        let (m, n, k) = (9, 40, 21);
        let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let transpose = |x: &[f32], rows: usize, cols: usize| -> Vec<f32> {
            (0..cols * rows)
                .map(|i| x[(i % rows) * cols + i / rows])
                .collect()
        };
        let (at, bt) = (transpose(&a, m, k), transpose(&b, k, n));
        let run = |a: MatRef<'_>, b: MatRef<'_>| {
            let mut panels = PairPanels::default();
            panels.pack(b);
            let mut c = vec![0.0; m * n];
            // SAFETY: the portable kernel runs anywhere.
            unsafe {
                gemm_pairs(
                    a,
                    &panels,
                    Init::Zero,
                    MatMut::new(&mut c, m, n),
                    2,
                    PairKernel::Portable,
                )
            };
            c
        };
        let plain = run(MatRef::new(&a, m, k), MatRef::new(&b, k, n));
        let transposed = run(MatRef::new(&at, k, m).t(), MatRef::new(&bt, n, k).t());
        assert_eq!(plain, transposed);
    }
}
