//! The backward pass over a time block: the time loop in reverse (one small
//! product per step), then the weight gradients and `dx` as whole-block
//! products.

use std::ops::Range;

use recurrent_kernels::profile::Phase;
use recurrent_kernels::threads::{parallel_for, threads};
use recurrent_kernels::{gemm_packed, sgemm, MatMut, MatRef, PackedB};

use super::cache::grow;
use super::row_split::StepBufs;
use super::weight_grads::{add_into, add_weight_grad, column_sums};
use super::{
    CellKind, Downstream, GateGrads, LayerCache, LayerGrads, LayerParams, PackedLayer,
    RecurrentLayer, TableInput, Upstream,
};
use crate::cell::{gru, lstm, rnn};

impl RecurrentLayer {
    /// Backward of [`RecurrentLayer::forward`] (which must have run with `for_backward`).
    ///
    /// From the gradients arriving from above (`up`) adds the parameter
    /// gradients into `g`, and writes those of the inputs `x: [T*B, I]` and
    /// of the initial state that `down` asks for.
    pub fn backward(
        &self,
        p: LayerParams<'_>,
        g: LayerGrads<'_>,
        x: &[f32],
        up: Upstream<'_>,
        cache: &mut LayerCache,
        down: Downstream<'_>,
    ) {
        let Downstream { dx, dh0, dc0 } = down;
        let (i, gh) = (self.input_size, self.gate_rows());
        let n = cache.steps * cache.batch;
        self.pack_and_run_backward_steps(p, cache, up, dh0, dc0);
        let c = &mut *cache;
        let dg_ih = if self.cell == CellKind::Gru {
            &c.dg_ih
        } else {
            &c.dg_hh
        };
        let parts = GateGrads {
            hprev: &c.hprev,
            dg_hh: &c.dg_hh,
            dg_ih,
        };
        self.weight_grads(g, x, parts, n, &mut c.bias);
        let _ph = Phase::new("bwd.dx");
        if let Some(dx) = dx {
            sgemm(
                1.0,
                MatRef::new(dg_ih, n, gh),
                MatRef::new(p.w_ih, gh, i),
                0.0,
                MatMut::new(dx, n, i),
            );
        }
    }

    /// The backward time loop: `W_hh` packed for this block, then the steps,
    /// which leave the gate gradients in the cache.
    pub(super) fn pack_and_run_backward_steps(
        &self,
        p: LayerParams<'_>,
        cache: &mut LayerCache,
        up: Upstream<'_>,
        dh0: Option<&mut [f32]>,
        dc0: Option<&mut [f32]>,
    ) {
        let (h, gh) = (self.hidden_size, self.gate_rows());
        cache.w_hh_packed.pack(MatRef::new(p.w_hh, gh, h));
        // Taken out for the loop, which borrows the rest of the cache mutably.
        let w = std::mem::take(&mut cache.w_hh_packed);
        self.run_backward_steps(&w, cache, &up, dh0, dc0);
        cache.w_hh_packed = w;
    }

    /// Backward of [`RecurrentLayer::forward_table`] (same `input` and
    /// `keep`): as [`RecurrentLayer::backward`] (with no final-state
    /// gradients; `down.dx` is added into, `[V, I]`), but the input side goes
    /// through the rows: the input-side gate gradients are summed per row
    /// (`S: [V, G*H]`), so `dW_ih += Sᵀ · rows` and `d_rows += S · W_ih` are
    /// products over `V` rows rather than `T*B`.
    pub fn backward_table(
        &self,
        p: LayerParams<'_>,
        g: LayerGrads<'_>,
        input: TableInput<'_>,
        up: Upstream<'_>,
        cache: &mut LayerCache,
        down: Downstream<'_>,
    ) {
        let (
            TableInput { rows, tokens },
            Downstream {
                dx: d_rows,
                dh0,
                dc0,
            },
        ) = (input, down);
        let (i, h, gh) = (self.input_size, self.hidden_size, self.gate_rows());
        let (n, v) = (cache.steps * cache.batch, rows.len() / i.max(1));
        let up = Upstream {
            dh_n: None,
            dc_n: None,
            ..up
        };
        self.pack_and_run_backward_steps(p, cache, up, dh0, dc0);
        let c = &mut *cache;
        let _ph = Phase::new("bwd.dw");
        let gru = self.cell == CellKind::Gru;
        // S: the input-side gate gradients summed per row, each thread its
        // own columns in row order (the same sums on any thread count).
        let dg_ih = if gru { &c.dg_ih } else { &c.dg_hh };
        let parts = threads().min(gh / 64).max(1);
        let shares: Vec<std::sync::Mutex<Vec<f32>>> =
            (0..parts).map(|_| Default::default()).collect();
        parallel_for(parts, &|part| {
            let (lo, hi) = (gh * part / parts, gh * (part + 1) / parts);
            let w = hi - lo;
            let mut local = vec![0.0f32; v * w];
            for (d, &tok) in dg_ih[..n * gh].chunks_exact(gh).zip(tokens) {
                let dst = &mut local[tok as usize * w..(tok as usize + 1) * w];
                for (a, &x) in dst.iter_mut().zip(&d[lo..hi]) {
                    *a += x;
                }
            }
            *shares[part].lock().unwrap() = local;
        });
        grow(&mut c.table, v * gh);
        for (part, share) in shares.into_iter().enumerate() {
            let (lo, hi) = (gh * part / parts, gh * (part + 1) / parts);
            let local = share.into_inner().unwrap();
            for (row, src) in c.table[..v * gh]
                .chunks_exact_mut(gh)
                .zip(local.chunks_exact(hi - lo))
            {
                row[lo..hi].copy_from_slice(src);
            }
        }
        let s = &c.table[..v * gh];
        c.bias.clear();
        c.bias.resize(gh, 0.0);
        column_sums(s, gh, &mut c.bias);
        add_into(g.b_ih, &c.bias);
        if gru {
            column_sums(&c.dg_hh[..n * gh], gh, &mut c.bias);
        }
        add_into(g.b_hh, &c.bias);
        let (dg_hh, hprev) = (&c.dg_hh[..n * gh], &c.hprev[..n * h]);
        add_weight_grad(g.w_hh, dg_hh, hprev, h, n);
        add_weight_grad(g.w_ih, s, rows, i, v);
        if let Some(d) = d_rows {
            let _ph = Phase::new("bwd.dx");
            sgemm(
                1.0,
                MatRef::new(s, v, gh),
                MatRef::new(p.w_ih, gh, i),
                1.0,
                MatMut::new(d, v, i),
            );
        }
    }

    /// The backward of [`RecurrentLayer::forward_packed`] *without* the weight
    /// gradients: the time loop, `dx` and the initial-state gradients. The
    /// caller forms the weight gradients of many such calls at once with
    /// [`RecurrentLayer::weight_grads`] from [`LayerCache::backward_parts`]
    /// (one large product instead of one per call).
    pub fn backward_packed(
        &self,
        packed: &PackedLayer,
        up: Upstream<'_>,
        cache: &mut LayerCache,
        down: Downstream<'_>,
    ) {
        let Downstream { dx, dh0, dc0 } = down;
        let (i, gh) = (self.input_size, self.gate_rows());
        let n = cache.steps * cache.batch;
        self.run_backward_steps(&packed.w_hh, cache, &up, dh0, dc0);
        let Some(dx) = dx else { return };
        let _ph = Phase::new("bwd.dx");
        let dg_ih = cache.backward_parts(self).dg_ih;
        gemm_packed(
            MatRef::new(dg_ih, n, gh),
            &packed.w_ih,
            false,
            MatMut::new(dx, n, i),
            threads(),
        );
    }

    /// The backward time loop over the cached block: leaves the gate gradients
    /// in the cache and writes the initial-state gradients when asked.
    pub(super) fn run_backward_steps(
        &self,
        w: &PackedB,
        c: &mut LayerCache,
        up: &Upstream<'_>,
        dh0: Option<&mut [f32]>,
        dc0: Option<&mut [f32]>,
    ) {
        let h = self.hidden_size;
        let (t, b) = (c.steps, c.batch);
        let bh = b * h;
        let _ph = Phase::new("bwd.steps");
        {
            let bufs = StepBufs::new(c);
            self.for_row_groups(b, &|rows, gemm_threads| {
                // SAFETY: each group touches only its own batch rows of `bufs`.
                unsafe { self.backward_rows(&bufs, w, rows, up, gemm_threads) }
            });
        }
        // After `t` swaps the gradient w.r.t. the initial state is in `dh_next` when `t` is odd.
        let dh_first = if t % 2 == 1 { &c.dh_next } else { &c.dh };
        if let Some(d) = dh0 {
            d[..bh].copy_from_slice(&dh_first[..bh]);
        }
        if let Some(d) = dc0 {
            d[..bh].copy_from_slice(&c.dc[..bh]);
        }
    }

    /// The backward time loop for batch rows `rows` (of `b`), as
    /// [`RecurrentLayer::forward_rows`]: leaves the rows' pre-activation gradients in
    /// `dg_hh` (and `dg_ih`), and their initial-state gradients in `dh` / `dh_next`
    /// (by the parity of `t`) and `dc`.
    ///
    /// # Safety
    /// No other thread may access `rows` of `bufs` meanwhile.
    pub(super) unsafe fn backward_rows(
        &self,
        bufs: &StepBufs<'_>,
        w: &PackedB,
        rows: Range<usize>,
        up: &Upstream<'_>,
        gemm_threads: usize,
    ) {
        let Upstream {
            dy,
            dh_n,
            dc_n,
            keep,
        } = *up;
        let (t, b) = (bufs.steps, bufs.batch);
        let (h, gh, m) = (self.hidden_size, self.gate_rows(), rows.len());
        let state = rows.start * h..rows.end * h;
        // SAFETY: the group's rows of the one-step state gradients, which the
        // caller gives it alone; one slice per buffer.
        let (mut dh, mut dh_next, dc) = unsafe {
            (
                bufs.dh.rows(rows.start, m, h),
                bufs.dh_next.rows(rows.start, m, h),
                bufs.dc.rows(rows.start, m, h),
            )
        };
        match dh_n {
            Some(d) => dh.copy_from_slice(&d[state.clone()]),
            None => dh.fill(0.0),
        }
        match dc_n {
            Some(d) => dc.copy_from_slice(&d[state.clone()]),
            None => dc.fill(0.0),
        }
        for s in (0..t).rev() {
            let r0 = s * b + rows.start;
            for (d, &y) in dh.iter_mut().zip(&dy[r0 * h..(r0 + m) * h]) {
                *d += y;
            }
            // SAFETY: this group's rows of step `s`, which the caller gives it
            // alone; one slice per buffer.
            let (gates, dg) = unsafe { (&*bufs.gates.rows(r0, m, gh), bufs.dg_hh.rows(r0, m, gh)) };
            let mut accumulate = false;
            match self.cell {
                CellKind::RnnTanh | CellKind::RnnRelu => {
                    // SAFETY: as above.
                    let y = unsafe { bufs.h.rows(r0, m, h) };
                    if self.cell == CellKind::RnnTanh {
                        rnn::tanh_backward_units(dg, dh, y);
                    } else {
                        rnn::relu_backward_units(dg, dh, y);
                    }
                }
                CellKind::Lstm => {
                    // SAFETY: as above.
                    let (tanh_c, cp) =
                        unsafe { (bufs.tanh_c.rows(r0, m, h), bufs.cprev.rows(r0, m, h)) };
                    lstm::backward_rows(gates, tanh_c, cp, dh, dc, dg, h);
                }
                CellKind::Gru => {
                    // SAFETY: as above.
                    let (dgi, hp, hh_n) = unsafe {
                        (
                            bufs.dg_ih.rows(r0, m, gh),
                            bufs.hprev.rows(r0, m, h),
                            bufs.hh_n.rows(r0, m, h),
                        )
                    };
                    gru::backward_rows(gates, hp, hh_n, dh, dg, dgi, dh_next, m, h);
                    accumulate = true;
                }
            }
            // dh_{t-1} = dgates · W_hh (GRU adds it to its direct path z ⊙ dh).
            gemm_packed(
                MatRef::new(dg, m, gh),
                w,
                accumulate,
                MatMut::new(dh_next, m, h),
                gemm_threads,
            );
            if let Some(keep) = keep {
                for (r, &k) in keep[r0..r0 + m].iter().enumerate() {
                    if k == 0.0 {
                        dh_next[r * h..(r + 1) * h].fill(0.0);
                        dc[r * h..(r + 1) * h].fill(0.0);
                    }
                }
            }
            std::mem::swap(&mut dh, &mut dh_next);
        }
    }
}
