//! How a block's time loop shares the batch rows among threads, and the
//! cache buffers as the threads see them.

use std::ops::Range;

use recurrent_kernels::packed::MR;
use recurrent_kernels::simd::prefetch_l2;
use recurrent_kernels::threads::{parallel_for, threads};
use recurrent_kernels::SharedMut;

use super::{LayerCache, RecurrentLayer};

/// How the batch rows of a block's time loop are shared among threads.
pub(super) struct RowSplit {
    pub(super) batch: usize,
    /// Row groups, each run by one thread through every time step.
    pub(super) parts: usize,
    /// Threads splitting each step's product within a group (by columns).
    pub(super) gemm_threads: usize,
}

impl RowSplit {
    /// Streams of a batch are independent, so each thread can run the whole
    /// time loop for its own rows, with no synchronization between steps. That
    /// needs at least two row tiles per thread (each thread then reads all of
    /// `W_hh`); smaller batches split each step's product by columns instead,
    /// when it is big enough (`flops` per step) to pay for the hand-off.
    pub(super) fn new(batch: usize, flops: usize) -> RowSplit {
        let t = threads();
        let parts = (batch / (2 * MR)).clamp(1, t);
        let gemm_threads = if parts == 1 && flops >= 1 << 20 { t } else { 1 };
        RowSplit {
            batch,
            parts,
            gemm_threads,
        }
    }

    /// The rows of group `i`: contiguous, nearly equal shares (the per-step
    /// product cuts any share into register tiles of nearly equal height).
    pub(super) fn rows(&self, i: usize) -> Range<usize> {
        self.batch * i / self.parts..self.batch * (i + 1) / self.parts
    }
}

impl RecurrentLayer {
    /// Runs `f(rows, gemm_threads)` for each group of batch rows of a `b`-row
    /// time loop, the groups on threads of their own (see [`RowSplit`]).
    pub(super) fn for_row_groups(&self, b: usize, f: &(dyn Fn(Range<usize>, usize) + Sync)) {
        let split = RowSplit::new(b, 2 * b * self.hidden_size * self.gate_rows());
        parallel_for(split.parts, &|part| f(split.rows(part), split.gemm_threads));
    }
}

/// The cache buffers the time loops touch, as views shared by the threads
/// that split the batch rows (each thread takes only its own rows), borrowed
/// from the cache for as long as the views live.
pub(super) struct StepBufs<'a> {
    /// The cached block's `T` and `B`.
    pub(super) steps: usize,
    pub(super) batch: usize,
    pub(super) gates: SharedMut<'a, f32>,
    pub(super) h: SharedMut<'a, f32>,
    pub(super) hprev: SharedMut<'a, f32>,
    pub(super) c: SharedMut<'a, f32>,
    pub(super) cprev: SharedMut<'a, f32>,
    pub(super) tanh_c: SharedMut<'a, f32>,
    pub(super) hh_n: SharedMut<'a, f32>,
    pub(super) hh: SharedMut<'a, f32>,
    pub(super) dg_hh: SharedMut<'a, f32>,
    pub(super) dg_ih: SharedMut<'a, f32>,
    pub(super) dh: SharedMut<'a, f32>,
    pub(super) dh_next: SharedMut<'a, f32>,
    pub(super) dc: SharedMut<'a, f32>,
}

impl<'a> StepBufs<'a> {
    /// Views of `c`'s step buffers (not its packed weights, which stay
    /// readable).
    pub(super) fn new(c: &'a mut LayerCache) -> StepBufs<'a> {
        StepBufs {
            steps: c.steps,
            batch: c.batch,
            gates: SharedMut::new(&mut c.gates),
            h: SharedMut::new(&mut c.h),
            hprev: SharedMut::new(&mut c.hprev),
            c: SharedMut::new(&mut c.c),
            cprev: SharedMut::new(&mut c.cprev),
            tanh_c: SharedMut::new(&mut c.tanh_c),
            hh_n: SharedMut::new(&mut c.hh_n),
            hh: SharedMut::new(&mut c.hh),
            dg_hh: SharedMut::new(&mut c.dg_hh),
            dg_ih: SharedMut::new(&mut c.dg_ih),
            dh: SharedMut::new(&mut c.dh),
            dh_next: SharedMut::new(&mut c.dh_next),
            dc: SharedMut::new(&mut c.dc),
        }
    }
}

/// Prefetches rows `r0..r0 + m` of width `w` of `buf` into L2 (see
/// [`prefetch_l2`]); nothing when they are not all inside it.
pub(super) fn prefetch_rows(buf: &SharedMut<'_, f32>, r0: usize, m: usize, w: usize) {
    if (r0 + m) * w <= buf.len() {
        prefetch_l2(buf.addr(r0 * w), m * w);
    }
}
