//! How a block's time loop shares the batch rows among threads, and the
//! cache buffers as the threads see them.

use std::ops::Range;

use recurrent_kernels::packed::MR;
use recurrent_kernels::simd::prefetch_l2;
use recurrent_kernels::threads::{parallel_for, threads};

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

/// The cache buffers the time loops touch, as raw views shared by the threads
/// that split the batch rows (each thread touches only its own rows).
pub(super) struct StepBufs {
    pub(super) gates: Shared,
    pub(super) h: Shared,
    pub(super) hprev: Shared,
    pub(super) c: Shared,
    pub(super) cprev: Shared,
    pub(super) tanh_c: Shared,
    pub(super) hh_n: Shared,
    pub(super) hh: Shared,
    pub(super) dg_hh: Shared,
    pub(super) dg_ih: Shared,
    pub(super) dh: Shared,
    pub(super) dh_next: Shared,
    pub(super) dc: Shared,
}

impl StepBufs {
    pub(super) fn new(c: &mut LayerCache) -> StepBufs {
        StepBufs {
            gates: Shared::new(&mut c.gates),
            h: Shared::new(&mut c.h),
            hprev: Shared::new(&mut c.hprev),
            c: Shared::new(&mut c.c),
            cprev: Shared::new(&mut c.cprev),
            tanh_c: Shared::new(&mut c.tanh_c),
            hh_n: Shared::new(&mut c.hh_n),
            hh: Shared::new(&mut c.hh),
            dg_hh: Shared::new(&mut c.dg_hh),
            dg_ih: Shared::new(&mut c.dg_ih),
            dh: Shared::new(&mut c.dh),
            dh_next: Shared::new(&mut c.dh_next),
            dc: Shared::new(&mut c.dc),
        }
    }
}

/// A `[rows, width]` buffer that several threads write at disjoint rows.
pub(super) struct Shared {
    pub(super) ptr: *mut f32,
    pub(super) len: usize,
}

// SAFETY: `Shared` hands out rows only through the unsafe `rows`, whose
// callers guarantee that no two threads use the same rows at once.
unsafe impl Sync for Shared {}

impl Shared {
    pub(super) fn new(v: &mut [f32]) -> Shared {
        Shared {
            ptr: v.as_mut_ptr(),
            len: v.len(),
        }
    }

    /// Prefetches rows `r0..r0 + m` of width `w` into L2 (see [`prefetch_l2`]).
    pub(super) fn prefetch(&self, r0: usize, m: usize, w: usize) {
        if (r0 + m) * w <= self.len {
            prefetch_l2(self.ptr.wrapping_add(r0 * w), m * w);
        }
    }

    /// Rows `r0..r0 + m` of width `w`.
    ///
    /// # Safety
    /// While the slice lives, no other reference may overlap it.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn rows<'a>(&self, r0: usize, m: usize, w: usize) -> &'a mut [f32] {
        assert!((r0 + m) * w <= self.len, "row range out of the buffer");
        std::slice::from_raw_parts_mut(self.ptr.add(r0 * w), m * w)
    }
}
