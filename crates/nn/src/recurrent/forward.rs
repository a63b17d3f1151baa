//! The forward pass over a time block: the input projections of every step
//! at once, then the time loop, its batch rows split across threads.

use std::ops::Range;

use recurrent_kernels::profile::Phase;
use recurrent_kernels::threads::{parallel_for, threads};
use recurrent_kernels::{gemm_packed, sgemm_bias, MatMut, MatRef, PackedB};

use super::cache::grow;
use recurrent_kernels::SharedMut;

use super::row_split::{prefetch_rows, StepBufs};
use super::{Block, CellKind, LayerCache, LayerParams, PackedLayer, RecurrentLayer, TableInput};
use crate::cell::{gru, lstm, rnn};

impl RecurrentLayer {
    /// Runs the block's `T` steps over `x: [T*B, I]` from its start state
    /// (see [`Block`], which also holds the resets). Outputs land in
    /// `cache.h`; the final state is `cache.last_h()` / `cache.last_c()`.
    pub fn forward(
        &self,
        p: LayerParams<'_>,
        x: &[f32],
        block: Block<'_>,
        cache: &mut LayerCache,
        for_backward: bool,
    ) {
        let (t, b) = (block.steps, block.batch);
        let i = self.input_size;
        let gh = self.gate_rows();
        let n = t * b;
        cache.ensure(self, t, b, for_backward);
        let ph = Phase::new("fwd.in_proj");
        // Every step's input projection in one GEMM: gates = x · W_ihᵀ + bias.
        self.fold_bias(p, &mut cache.bias);
        sgemm_bias(
            MatRef::new(x, n, i),
            MatRef::new(p.w_ih, gh, i).t(),
            &cache.bias,
            MatMut::new(&mut cache.gates, n, gh),
        );

        drop(ph);
        self.pack_and_run_forward_steps(p, cache, block);
    }

    /// [`RecurrentLayer::forward`] for inputs that are rows of a table
    /// (embeddings, see [`TableInput`]). The input
    /// projection is computed once per row, `[V, G*H]`, and gathered per
    /// step, which is cheaper than the whole-block GEMM when `V` is below the
    /// block's `T*B` (a character vocabulary). Same results up to rounding.
    pub fn forward_table(
        &self,
        p: LayerParams<'_>,
        input: TableInput<'_>,
        block: Block<'_>,
        cache: &mut LayerCache,
        for_backward: bool,
    ) {
        let TableInput { rows, tokens } = input;
        let (t, b) = (block.steps, block.batch);
        let (i, gh) = (self.input_size, self.gate_rows());
        let (n, v) = (t * b, rows.len() / i.max(1));
        cache.ensure(self, t, b, for_backward);
        let ph = Phase::new("fwd.in_proj");
        self.fold_bias(p, &mut cache.bias);
        grow(&mut cache.table, v * gh);
        let table = &mut cache.table[..v * gh];
        sgemm_bias(
            MatRef::new(rows, v, i),
            MatRef::new(p.w_ih, gh, i).t(),
            &cache.bias,
            MatMut::new(table, v, gh),
        );
        let table = &cache.table[..v * gh];
        let gates = SharedMut::new(&mut cache.gates[..n * gh]);
        let parts = threads().min(n).max(1);
        parallel_for(parts, &|part| {
            let (lo, hi) = (n * part / parts, n * (part + 1) / parts);
            // SAFETY: the parts' row ranges are disjoint.
            let out = unsafe { gates.rows(lo, hi - lo, gh) };
            for (dst, &tok) in out.chunks_exact_mut(gh).zip(&tokens[lo..hi]) {
                dst.copy_from_slice(&table[tok as usize * gh..][..gh]);
            }
        });
        drop(ph);
        self.pack_and_run_forward_steps(p, cache, block);
    }

    /// The forward time loop once the input projections are in `cache.gates`:
    /// `W_hhᵀ` packed for this block, then the steps.
    pub(super) fn pack_and_run_forward_steps(
        &self,
        p: LayerParams<'_>,
        cache: &mut LayerCache,
        block: Block<'_>,
    ) {
        let (h, gh) = (self.hidden_size, self.gate_rows());
        let ph = Phase::new("fwd.pack");
        cache.w_hh_t_packed.pack(MatRef::new(p.w_hh, gh, h).t());
        drop(ph);
        // Taken out for the loop, which borrows the rest of the cache mutably.
        let w = std::mem::take(&mut cache.w_hh_t_packed);
        self.run_forward_steps(p, &StepBufs::new(cache), &w, &block);
        cache.w_hh_t_packed = w;
    }

    /// [`RecurrentLayer::forward`] with weights packed beforehand by
    /// [`PackedLayer::pack`], for callers that run the same weights many times
    /// over short blocks (a decoder stepping one token at a time). Same results.
    pub fn forward_packed(
        &self,
        p: LayerParams<'_>,
        packed: &PackedLayer,
        x: &[f32],
        block: Block<'_>,
        cache: &mut LayerCache,
        for_backward: bool,
    ) {
        let (t, b) = (block.steps, block.batch);
        let (i, gh) = (self.input_size, self.gate_rows());
        let n = t * b;
        cache.ensure(self, t, b, for_backward);
        let ph = Phase::new("fwd.in_proj");
        for row in cache.gates[..n * gh].chunks_exact_mut(gh) {
            row.copy_from_slice(&packed.bias);
        }
        gemm_packed(
            MatRef::new(x, n, i),
            &packed.w_ih_t,
            true,
            MatMut::new(&mut cache.gates, n, gh),
            threads(),
        );
        drop(ph);
        let bufs = StepBufs::new(cache);
        self.run_forward_steps(p, &bufs, &packed.w_hh_t, &block);
    }

    /// The time loop of the forward pass, its batch rows split across threads.
    pub(super) fn run_forward_steps(
        &self,
        p: LayerParams<'_>,
        bufs: &StepBufs<'_>,
        w: &PackedB,
        block: &Block<'_>,
    ) {
        let _ph = Phase::new("fwd.steps");
        self.for_row_groups(block.batch, &|rows, gemm_threads| {
            // SAFETY: each group touches only its own batch rows of `bufs`.
            unsafe { self.forward_rows(p, bufs, w, block, rows, gemm_threads) }
        });
    }

    /// The forward time loop for batch rows `rows` (of the block's): every step reads
    /// and writes only those rows of the buffers, because the streams of a
    /// batch do not interact. `gemm_threads` threads split each step's product.
    ///
    /// # Safety
    /// No other thread may access `rows` of `bufs` meanwhile.
    pub(super) unsafe fn forward_rows(
        &self,
        p: LayerParams<'_>,
        bufs: &StepBufs<'_>,
        w: &PackedB,
        block: &Block<'_>,
        rows: Range<usize>,
        gemm_threads: usize,
    ) {
        let Block {
            steps: t,
            batch: b,
            h0,
            c0,
            keep,
        } = *block;
        let (h, gh, m) = (self.hidden_size, self.gate_rows(), rows.len());
        let state = rows.start * h..rows.end * h;
        for s in 0..t {
            let r0 = s * b + rows.start;
            if s + 1 < t {
                // The next step's input projections, written long ago by the
                // whole-block GEMM and out of cache by now.
                prefetch_rows(&bufs.gates, r0 + b, m, gh);
            }
            let keep_s = keep.map(|k| &k[r0..r0 + m]);
            // SAFETY: rows `r0..r0 + m` are this group's rows of step `s` and
            // `r0 - b..` its rows of step `s - 1`; the caller gives the group
            // these rows of every buffer alone, and the slices taken here are
            // of different buffers or of different steps, so none overlap.
            let (hp, out, gates, prev_h) = unsafe {
                (
                    bufs.hprev.rows(r0, m, h),
                    bufs.h.rows(r0, m, h),
                    bufs.gates.rows(r0, m, gh),
                    if s == 0 {
                        &h0[state.clone()]
                    } else {
                        &*bufs.h.rows(r0 - b, m, h)
                    },
                )
            };
            masked_copy(hp, prev_h, keep_s, h);
            let hp = &*hp;
            match self.cell {
                CellKind::RnnTanh | CellKind::RnnRelu => {
                    gemm_packed(
                        MatRef::new(hp, m, h),
                        w,
                        true,
                        MatMut::new(gates, m, gh),
                        gemm_threads,
                    );
                    if self.cell == CellKind::RnnRelu {
                        rnn::relu_forward_units(gates, out);
                    } else {
                        rnn::tanh_forward_units(gates, out);
                    }
                }
                CellKind::Lstm => {
                    gemm_packed(
                        MatRef::new(hp, m, h),
                        w,
                        true,
                        MatMut::new(gates, m, gh),
                        gemm_threads,
                    );
                    // SAFETY: as above, for the cell states.
                    let (cp, prev_c, c, tanh_c) = unsafe {
                        (
                            bufs.cprev.rows(r0, m, h),
                            if s == 0 {
                                &c0[state.clone()]
                            } else {
                                &*bufs.c.rows(r0 - b, m, h)
                            },
                            bufs.c.rows(r0, m, h),
                            bufs.tanh_c.rows(r0, m, h),
                        )
                    };
                    masked_copy(cp, prev_c, keep_s, h);
                    lstm::forward_rows(gates, cp, c, tanh_c, out, m, h);
                }
                CellKind::Gru => {
                    // SAFETY: as above (`hh` holds one step: the group's rows of it).
                    let (hh, hh_n) =
                        unsafe { (bufs.hh.rows(rows.start, m, gh), bufs.hh_n.rows(r0, m, h)) };
                    for row in hh.chunks_exact_mut(gh) {
                        row.copy_from_slice(p.b_hh);
                    }
                    gemm_packed(
                        MatRef::new(hp, m, h),
                        w,
                        true,
                        MatMut::new(hh, m, gh),
                        gemm_threads,
                    );
                    gru::forward_rows(gates, hh, hp, hh_n, out, m, h);
                }
            }
        }
    }
}

/// `dst = src * keep[b]` row by row (`keep` is 0 where a stream resets), or a copy.
pub(super) fn masked_copy(dst: &mut [f32], src: &[f32], keep: Option<&[f32]>, h: usize) {
    match keep {
        None => dst.copy_from_slice(src),
        Some(keep) => {
            for ((d, s), &k) in dst.chunks_exact_mut(h).zip(src.chunks_exact(h)).zip(keep) {
                if k == 0.0 {
                    d.fill(0.0);
                } else {
                    d.copy_from_slice(s);
                }
            }
        }
    }
}
