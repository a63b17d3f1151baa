//! Recurrent layers (PyTorch `nn.RNN`, `nn.LSTM`, `nn.GRU`, one layer of them)
//! over a whole time block, forward and backward.
//!
//! Forward, for a block of `T` steps and `B` streams:
//! 1. one GEMM projects every input at once: `gates[T*B, G*H] = x · W_ihᵀ + b_ih` (+ `b_hh`
//!    for RNN/LSTM, whose hidden bias is never gated);
//! 2. per step, one GEMM adds `h_{t-1} · W_hhᵀ` and one fused pass applies the cell's
//!    nonlinearities, keeping the activated gates for the backward pass.
//!
//! Backward walks the steps in reverse with one small GEMM per step
//! (`dh_{t-1} = dgates_t · W_hh`), then forms `dW_hh`, `dW_ih`, the biases and `dx`
//! as large GEMMs over the whole block.

use std::ops::Range;

use recurrent_kernels::multiversion;
use recurrent_kernels::packed::MR;
use recurrent_kernels::profile::Phase;
use recurrent_kernels::simd::prefetch_l2;
use recurrent_kernels::threads::{parallel_for, threads};
use recurrent_kernels::{gemm_packed, sgemm, sgemm_bias, sgemm_shared_a, PackedB, Product, Trans};

pub use crate::cell::CellKind;
use crate::cell::{gru, lstm, rnn};

/// One layer's parameters, PyTorch shapes: `w_ih [G*H, I]`, `w_hh [G*H, H]`, biases `[G*H]`.
#[derive(Clone, Copy)]
pub struct LayerParams<'a> {
    pub w_ih: &'a [f32],
    pub w_hh: &'a [f32],
    pub b_ih: &'a [f32],
    pub b_hh: &'a [f32],
}

/// Gradient accumulators with the shapes of [`LayerParams`]; backward adds into them.
pub struct LayerGrads<'a> {
    pub w_ih: &'a mut [f32],
    pub w_hh: &'a mut [f32],
    pub b_ih: &'a mut [f32],
    pub b_hh: &'a mut [f32],
}

/// The shape of one recurrent layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecurrentLayer {
    pub cell: CellKind,
    pub input_size: usize,
    pub hidden_size: usize,
}

/// Activations kept from the forward pass for the backward pass, and the
/// backward pass's own buffers; sized once per `(T, B)` and reused.
#[derive(Default)]
pub struct LayerCache {
    steps: usize,
    batch: usize,
    /// `[T*B, G*H]` activated gates (RNN: the output before copying).
    gates: Vec<f32>,
    /// `[T*B, H]` outputs `h_t`.
    pub h: Vec<f32>,
    /// `[T*B, H]` the state each step started from (after document resets).
    hprev: Vec<f32>,
    /// LSTM: `[T*B, H]` cell states and the cell state each step started from.
    c: Vec<f32>,
    cprev: Vec<f32>,
    /// LSTM: `[T*B, H]` `tanh(c_t)`, which the forward computes anyway and the
    /// backward would otherwise compute again (about a third of its
    /// elementwise work).
    tanh_c: Vec<f32>,
    /// GRU: `[T*B, H]` the hidden part of the candidate, `W_hn h + b_hn`.
    hh_n: Vec<f32>,
    /// GRU: `[B, 3H]` the hidden projection of the current step.
    hh: Vec<f32>,
    /// Backward: gate pre-activation gradients on the hidden side `[T*B, G*H]`,
    /// and (GRU only, where they differ) on the input side.
    dg_hh: Vec<f32>,
    dg_ih: Vec<f32>,
    dh: Vec<f32>,
    dh_next: Vec<f32>,
    dc: Vec<f32>,
    /// `W_hhᵀ` packed for the forward steps' `h · W_hhᵀ`, and `W_hh` for the
    /// backward steps' `dgates · W_hh`: packed once per block, used at every step.
    w_hh_t_packed: PackedB,
    w_hh_packed: PackedB,
    /// `[G*H]` the bias the input projection adds (`b_ih`, plus `b_hh` but for GRU),
    /// and the backward's column sums of the gate gradients.
    bias: Vec<f32>,
    /// Input by table ([`RecurrentLayer::forward_table`]): `[V, G*H]` each
    /// input row's projection (bias included), then in the backward each
    /// row's summed input-side gate gradients.
    table: Vec<f32>,
}

impl LayerCache {
    fn ensure(&mut self, layer: &RecurrentLayer, t: usize, b: usize, for_backward: bool) {
        let h = layer.hidden_size;
        let gh = layer.cell.gates() * h;
        let n = t * b;
        grow(&mut self.gates, n * gh);
        grow(&mut self.h, n * h);
        grow(&mut self.hprev, n * h);
        if layer.cell == CellKind::Lstm {
            grow(&mut self.c, n * h);
            grow(&mut self.cprev, n * h);
            grow(&mut self.tanh_c, n * h);
        }
        if layer.cell == CellKind::Gru {
            grow(&mut self.hh_n, n * h);
            grow(&mut self.hh, b * gh);
        }
        if for_backward {
            grow(&mut self.dg_hh, n * gh);
            if layer.cell == CellKind::Gru {
                grow(&mut self.dg_ih, n * gh);
            }
            grow(&mut self.dh, b * h);
            grow(&mut self.dh_next, b * h);
            grow(&mut self.dc, b * h);
        }
        self.steps = t;
        self.batch = b;
    }

    /// The output at the last step, `[B, H]` (the new hidden state).
    pub fn last_h(&self, hidden: usize) -> &[f32] {
        last_step(&self.h, self.steps, self.batch, hidden)
    }

    /// The LSTM cell state at the last step, `[B, H]`.
    pub fn last_c(&self, hidden: usize) -> &[f32] {
        last_step(&self.c, self.steps, self.batch, hidden)
    }

    /// Outputs of the last forward, `[T*B, H]`.
    pub fn output(&self, hidden: usize) -> &[f32] {
        &self.h[..self.steps * self.batch * hidden]
    }

    /// What the weight gradients of the last backward are made of:
    /// `(h_prev [T*B, H], dG_hh [T*B, G*H], dG_ih [T*B, G*H])`, `dG_ih` being
    /// `dG_hh` for every cell but GRU. See [`RecurrentLayer::weight_grads`].
    pub fn backward_parts(&self, layer: &RecurrentLayer) -> (&[f32], &[f32], &[f32]) {
        let n = self.steps * self.batch;
        let (h, gh) = (layer.hidden_size, layer.gate_rows());
        let dg_hh = &self.dg_hh[..n * gh];
        let dg_ih = if layer.cell == CellKind::Gru {
            &self.dg_ih[..n * gh]
        } else {
            dg_hh
        };
        (&self.hprev[..n * h], dg_hh, dg_ih)
    }
}

/// The rows of the last of `steps` steps of a time-major `[T*B, w]` buffer.
pub(crate) fn last_step(buf: &[f32], steps: usize, batch: usize, w: usize) -> &[f32] {
    &buf[(steps - 1) * batch * w..steps * batch * w]
}

fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// `dst = src * keep[b]` row by row (`keep` is 0 where a stream resets), or a copy.
fn masked_copy(dst: &mut [f32], src: &[f32], keep: Option<&[f32]>, h: usize) {
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

impl RecurrentLayer {
    /// Gate rows, `G*H`.
    pub fn gate_rows(&self) -> usize {
        self.cell.gates() * self.hidden_size
    }

    /// Runs `t` steps over `x: [T*B, I]` from the state `h0 (, c0): [B, H]`.
    ///
    /// `keep: [T*B]` (optional) is 0 where a stream starts a new document at that
    /// step: its state is reset to zero before the step. Outputs land in
    /// `cache.h`; the final state is `cache.last_h()` / `cache.last_c()`.
    pub fn forward(
        &self,
        p: LayerParams<'_>,
        x: &[f32],
        t: usize,
        b: usize,
        h0: &[f32],
        c0: &[f32],
        keep: Option<&[f32]>,
        cache: &mut LayerCache,
        for_backward: bool,
    ) {
        let i = self.input_size;
        let gh = self.gate_rows();
        let n = t * b;
        cache.ensure(self, t, b, for_backward);
        let ph = Phase::new("fwd.in_proj");
        // Every step's input projection in one GEMM: gates = x · W_ihᵀ + bias.
        self.fold_bias(p, &mut cache.bias);
        sgemm_bias(
            Trans::N,
            Trans::T,
            n,
            gh,
            i,
            x,
            i,
            p.w_ih,
            i,
            &cache.bias,
            &mut cache.gates,
            gh,
        );

        drop(ph);
        self.pack_and_run_forward_steps(p, cache, t, b, h0, c0, keep);
    }

    /// [`RecurrentLayer::forward`] for inputs that are rows of `rows: [V, I]`
    /// (embeddings): step input `r` is `rows[tokens[r]]`. The input
    /// projection is computed once per row, `[V, G*H]`, and gathered per
    /// step, which is cheaper than the whole-block GEMM when `V` is below the
    /// block's `T*B` (a character vocabulary). Same results up to rounding.
    pub fn forward_table(
        &self,
        p: LayerParams<'_>,
        rows: &[f32],
        tokens: &[u32],
        t: usize,
        b: usize,
        h0: &[f32],
        c0: &[f32],
        keep: Option<&[f32]>,
        cache: &mut LayerCache,
        for_backward: bool,
    ) {
        let (i, gh) = (self.input_size, self.gate_rows());
        let (n, v) = (t * b, rows.len() / i.max(1));
        cache.ensure(self, t, b, for_backward);
        let ph = Phase::new("fwd.in_proj");
        self.fold_bias(p, &mut cache.bias);
        grow(&mut cache.table, v * gh);
        let table = &mut cache.table[..v * gh];
        sgemm_bias(
            Trans::N,
            Trans::T,
            v,
            gh,
            i,
            rows,
            i,
            p.w_ih,
            i,
            &cache.bias,
            table,
            gh,
        );
        let table = &cache.table[..v * gh];
        let gates = Shared::new(&mut cache.gates[..n * gh]);
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
        self.pack_and_run_forward_steps(p, cache, t, b, h0, c0, keep);
    }

    /// The forward time loop once the input projections are in `cache.gates`:
    /// `W_hhᵀ` packed for this block, then the steps.
    #[allow(clippy::too_many_arguments)]
    fn pack_and_run_forward_steps(
        &self,
        p: LayerParams<'_>,
        cache: &mut LayerCache,
        t: usize,
        b: usize,
        h0: &[f32],
        c0: &[f32],
        keep: Option<&[f32]>,
    ) {
        let (h, gh) = (self.hidden_size, self.gate_rows());
        let ph = Phase::new("fwd.pack");
        cache.w_hh_t_packed.pack(Trans::T, h, gh, p.w_hh, h);
        drop(ph);
        let bufs = StepBufs::new(cache);
        self.run_forward_steps(p, &bufs, &cache.w_hh_t_packed, t, b, h0, c0, keep);
    }

    /// The bias the input projection adds: `b_ih`, plus `b_hh` but for GRU
    /// (whose `b_hh` stays on the hidden side).
    fn fold_bias(&self, p: LayerParams<'_>, bias: &mut Vec<f32>) {
        bias.clear();
        bias.extend_from_slice(p.b_ih);
        if self.cell != CellKind::Gru {
            for (r, &bh) in bias.iter_mut().zip(p.b_hh) {
                *r += bh;
            }
        }
    }

    /// [`RecurrentLayer::forward`] with weights packed beforehand by
    /// [`PackedLayer::pack`], for callers that run the same weights many times
    /// over short blocks (a decoder stepping one token at a time). Same results.
    pub fn forward_packed(
        &self,
        p: LayerParams<'_>,
        packed: &PackedLayer,
        x: &[f32],
        t: usize,
        b: usize,
        h0: &[f32],
        c0: &[f32],
        cache: &mut LayerCache,
        for_backward: bool,
    ) {
        let (i, gh) = (self.input_size, self.gate_rows());
        let n = t * b;
        cache.ensure(self, t, b, for_backward);
        let ph = Phase::new("fwd.in_proj");
        for row in cache.gates[..n * gh].chunks_exact_mut(gh) {
            row.copy_from_slice(&packed.bias);
        }
        gemm_packed(
            n,
            x,
            i,
            &packed.w_ih_t,
            true,
            &mut cache.gates,
            gh,
            threads(),
        );
        drop(ph);
        let bufs = StepBufs::new(cache);
        self.run_forward_steps(p, &bufs, &packed.w_hh_t, t, b, h0, c0, None);
    }

    /// The time loop of the forward pass, its batch rows split across threads.
    fn run_forward_steps(
        &self,
        p: LayerParams<'_>,
        bufs: &StepBufs,
        w: &PackedB,
        t: usize,
        b: usize,
        h0: &[f32],
        c0: &[f32],
        keep: Option<&[f32]>,
    ) {
        let _ph = Phase::new("fwd.steps");
        self.for_row_groups(b, &|rows, gemm_threads| {
            // SAFETY: each group touches only its own batch rows of `bufs`.
            unsafe { self.forward_rows(p, bufs, w, t, b, rows, h0, c0, keep, gemm_threads) }
        });
    }

    /// Runs `f(rows, gemm_threads)` for each group of batch rows of a `b`-row
    /// time loop, the groups on threads of their own (see [`RowSplit`]).
    fn for_row_groups(&self, b: usize, f: &(dyn Fn(Range<usize>, usize) + Sync)) {
        let split = RowSplit::new(b, 2 * b * self.hidden_size * self.gate_rows());
        parallel_for(split.parts, &|part| f(split.rows(part), split.gemm_threads));
    }

    /// The forward time loop for batch rows `rows` (of `b`): every step reads
    /// and writes only those rows of the buffers, because the streams of a
    /// batch do not interact. `gemm_threads` threads split each step's product.
    ///
    /// # Safety
    /// No other thread may access `rows` of `bufs` meanwhile.
    unsafe fn forward_rows(
        &self,
        p: LayerParams<'_>,
        bufs: &StepBufs,
        w: &PackedB,
        t: usize,
        b: usize,
        rows: Range<usize>,
        h0: &[f32],
        c0: &[f32],
        keep: Option<&[f32]>,
        gemm_threads: usize,
    ) {
        let (h, gh, m) = (self.hidden_size, self.gate_rows(), rows.len());
        let state = rows.start * h..rows.end * h;
        for s in 0..t {
            let r0 = s * b + rows.start;
            if s + 1 < t {
                // The next step's input projections, written long ago by the
                // whole-block GEMM and out of cache by now.
                bufs.gates.prefetch(r0 + b, m, gh);
            }
            let keep_s = keep.map(|k| &k[r0..r0 + m]);
            let hp = bufs.hprev.rows(r0, m, h);
            let prev_h = if s == 0 {
                &h0[state.clone()]
            } else {
                &*bufs.h.rows(r0 - b, m, h)
            };
            masked_copy(hp, prev_h, keep_s, h);
            let hp = &*hp;
            let out = bufs.h.rows(r0, m, h);
            let gates = bufs.gates.rows(r0, m, gh);
            match self.cell {
                CellKind::RnnTanh | CellKind::RnnRelu => {
                    gemm_packed(m, hp, h, w, true, gates, gh, gemm_threads);
                    if self.cell == CellKind::RnnRelu {
                        rnn::relu_forward_units(gates, out);
                    } else {
                        rnn::tanh_forward_units(gates, out);
                    }
                }
                CellKind::Lstm => {
                    gemm_packed(m, hp, h, w, true, gates, gh, gemm_threads);
                    let cp = bufs.cprev.rows(r0, m, h);
                    let prev_c = if s == 0 {
                        &c0[state.clone()]
                    } else {
                        &*bufs.c.rows(r0 - b, m, h)
                    };
                    masked_copy(cp, prev_c, keep_s, h);
                    let (c, tanh_c) = (bufs.c.rows(r0, m, h), bufs.tanh_c.rows(r0, m, h));
                    lstm::forward_rows(gates, cp, c, tanh_c, out, m, h);
                }
                CellKind::Gru => {
                    let hh = bufs.hh.rows(rows.start, m, gh);
                    for row in hh.chunks_exact_mut(gh) {
                        row.copy_from_slice(p.b_hh);
                    }
                    gemm_packed(m, hp, h, w, true, hh, gh, gemm_threads);
                    gru::forward_rows(gates, hh, hp, bufs.hh_n.rows(r0, m, h), out, m, h);
                }
            }
        }
    }

    /// Backward of [`forward`] (which must have run with `for_backward`).
    ///
    /// `dy: [T*B, H]` is the loss gradient w.r.t. the outputs, `dh_n`/`dc_n`
    /// (optional) w.r.t. the final state. Adds parameter gradients into `g`;
    /// writes `dx: [T*B, I]` and the initial-state gradients when asked.
    pub fn backward(
        &self,
        p: LayerParams<'_>,
        g: LayerGrads<'_>,
        x: &[f32],
        dy: &[f32],
        dh_n: Option<&[f32]>,
        dc_n: Option<&[f32]>,
        keep: Option<&[f32]>,
        cache: &mut LayerCache,
        dx: Option<&mut [f32]>,
        dh0: Option<&mut [f32]>,
        dc0: Option<&mut [f32]>,
    ) {
        let (i, gh) = (self.input_size, self.gate_rows());
        let n = cache.steps * cache.batch;
        self.pack_and_run_backward_steps(p, cache, dy, dh_n, dc_n, keep, dh0, dc0);
        let c = &mut *cache;
        let dg_ih = if self.cell == CellKind::Gru {
            &c.dg_ih
        } else {
            &c.dg_hh
        };
        self.weight_grads(g, x, &c.hprev, &c.dg_hh, dg_ih, n, &mut c.bias);
        let _ph = Phase::new("bwd.dx");
        if let Some(dx) = dx {
            sgemm(
                Trans::N,
                Trans::N,
                n,
                i,
                gh,
                1.0,
                dg_ih,
                gh,
                p.w_ih,
                i,
                0.0,
                dx,
                i,
            );
        }
    }

    /// The backward time loop: `W_hh` packed for this block, then the steps,
    /// which leave the gate gradients in the cache.
    #[allow(clippy::too_many_arguments)]
    fn pack_and_run_backward_steps(
        &self,
        p: LayerParams<'_>,
        cache: &mut LayerCache,
        dy: &[f32],
        dh_n: Option<&[f32]>,
        dc_n: Option<&[f32]>,
        keep: Option<&[f32]>,
        dh0: Option<&mut [f32]>,
        dc0: Option<&mut [f32]>,
    ) {
        let (h, gh) = (self.hidden_size, self.gate_rows());
        cache.w_hh_packed.pack(Trans::N, gh, h, p.w_hh, h);
        // Taken out for the loop, which borrows the rest of the cache mutably.
        let w = std::mem::take(&mut cache.w_hh_packed);
        self.run_backward_steps(&w, cache, dy, dh_n, dc_n, keep, dh0, dc0);
        cache.w_hh_packed = w;
    }

    /// Backward of [`RecurrentLayer::forward_table`] (same `rows`, `tokens`
    /// and `keep`): as [`RecurrentLayer::backward`], but the input side goes
    /// through the rows: the input-side gate gradients are summed per row
    /// (`S: [V, G*H]`), so `dW_ih += Sᵀ · rows` and `d_rows += S · W_ih` are
    /// products over `V` rows rather than `T*B`.
    pub fn backward_table(
        &self,
        p: LayerParams<'_>,
        g: LayerGrads<'_>,
        rows: &[f32],
        tokens: &[u32],
        dy: &[f32],
        keep: Option<&[f32]>,
        cache: &mut LayerCache,
        d_rows: Option<&mut [f32]>,
        dh0: Option<&mut [f32]>,
        dc0: Option<&mut [f32]>,
    ) {
        let (i, h, gh) = (self.input_size, self.hidden_size, self.gate_rows());
        let (n, v) = (cache.steps * cache.batch, rows.len() / i.max(1));
        self.pack_and_run_backward_steps(p, cache, dy, None, None, keep, dh0, dc0);
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
                Trans::N,
                Trans::N,
                v,
                i,
                gh,
                1.0,
                s,
                gh,
                p.w_ih,
                i,
                1.0,
                d,
                i,
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
        dy: &[f32],
        dh_n: Option<&[f32]>,
        dc_n: Option<&[f32]>,
        cache: &mut LayerCache,
        dx: &mut [f32],
        dh0: Option<&mut [f32]>,
        dc0: Option<&mut [f32]>,
    ) {
        let (i, gh) = (self.input_size, self.gate_rows());
        let n = cache.steps * cache.batch;
        self.run_backward_steps(&packed.w_hh, cache, dy, dh_n, dc_n, None, dh0, dc0);
        let _ph = Phase::new("bwd.dx");
        let (_, _, dg_ih) = cache.backward_parts(self);
        gemm_packed(n, dg_ih, gh, &packed.w_ih, false, dx, i, threads());
    }

    /// The backward time loop over the cached block: leaves the gate gradients
    /// in the cache and writes the initial-state gradients when asked.
    fn run_backward_steps(
        &self,
        w: &PackedB,
        c: &mut LayerCache,
        dy: &[f32],
        dh_n: Option<&[f32]>,
        dc_n: Option<&[f32]>,
        keep: Option<&[f32]>,
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
                unsafe {
                    self.backward_rows(&bufs, w, t, b, rows, dy, dh_n, dc_n, keep, gemm_threads)
                }
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

    /// Adds the weight and bias gradients of `n` rows into `g`:
    /// `dW_hh += dG_hhᵀ · h_prev`, `dW_ih += dG_ihᵀ · x`, the biases the
    /// column sums. `dg_ih` is `dg_hh` for every cell but GRU (and read only
    /// for GRU): the other cells pack `dG` once for both products. `scratch`
    /// is any buffer (for the column sums).
    pub fn weight_grads(
        &self,
        g: LayerGrads<'_>,
        x: &[f32],
        hprev: &[f32],
        dg_hh: &[f32],
        dg_ih: &[f32],
        n: usize,
        scratch: &mut Vec<f32>,
    ) {
        let (i, h, gh) = (self.input_size, self.hidden_size, self.gate_rows());
        let _ph = Phase::new("bwd.dw");
        // Bias gradients: column sums of the gate gradients, which for all
        // but GRU are the same for both biases (summed once, by the product
        // below as it packs `dG`).
        scratch.clear();
        scratch.resize(gh, 0.0);
        if self.cell == CellKind::Gru {
            column_sums(&dg_hh[..n * gh], gh, scratch);
            add_into(g.b_hh, scratch);
            column_sums(&dg_ih[..n * gh], gh, scratch);
            add_into(g.b_ih, scratch);
            add_weight_grad(g.w_hh, dg_hh, hprev, h, n);
            add_weight_grad(g.w_ih, dg_ih, x, i, n);
            return;
        }
        // One gate gradient for both products: packed once for the two.
        let dw_hh = Product {
            tb: Trans::N,
            n: h,
            b: hprev,
            ldb: h,
            c: g.w_hh,
            ldc: h,
        };
        let dw_ih = Product {
            tb: Trans::N,
            n: i,
            b: x,
            ldb: i,
            c: g.w_ih,
            ldc: i,
        };
        sgemm_shared_a(Trans::T, gh, n, dg_hh, gh, [dw_hh, dw_ih], Some(scratch));
        add_into(g.b_hh, scratch);
        add_into(g.b_ih, scratch);
    }
}

/// A layer's weights packed once for many short forward and backward calls
/// ([`RecurrentLayer::forward_packed`], [`RecurrentLayer::backward_packed`]):
/// a decoder steps every layer one token at a time with the same weights, and
/// repacking them at each step cost about as much as the products themselves.
#[derive(Default)]
pub struct PackedLayer {
    /// `W_ihᵀ` for `x · W_ihᵀ`, `W_hhᵀ` for `h · W_hhᵀ`, `W_hh` for
    /// `dgates · W_hh`, `W_ih` for `dgates · W_ih`.
    w_ih_t: PackedB,
    w_hh_t: PackedB,
    w_hh: PackedB,
    w_ih: PackedB,
    /// The input projection's bias: `b_ih`, plus `b_hh` but for GRU.
    bias: Vec<f32>,
}

impl PackedLayer {
    /// Packs `p` for `layer` (reusing the buffers); `for_backward` also packs
    /// what the backward pass needs.
    pub fn pack(&mut self, layer: &RecurrentLayer, p: LayerParams<'_>, for_backward: bool) {
        let (i, h, gh) = (layer.input_size, layer.hidden_size, layer.gate_rows());
        self.w_ih_t.pack(Trans::T, i, gh, p.w_ih, i);
        self.w_hh_t.pack(Trans::T, h, gh, p.w_hh, h);
        if for_backward {
            self.w_hh.pack(Trans::N, gh, h, p.w_hh, h);
            self.w_ih.pack(Trans::N, gh, i, p.w_ih, i);
        }
        self.bias.clear();
        self.bias.extend_from_slice(p.b_ih);
        if layer.cell != CellKind::Gru {
            for (r, &bh) in self.bias.iter_mut().zip(p.b_hh) {
                *r += bh;
            }
        }
    }
}

impl RecurrentLayer {
    /// The backward time loop for batch rows `rows` (of `b`), as
    /// [`RecurrentLayer::forward_rows`]: leaves the rows' pre-activation gradients in
    /// `dg_hh` (and `dg_ih`), and their initial-state gradients in `dh` / `dh_next`
    /// (by the parity of `t`) and `dc`.
    ///
    /// # Safety
    /// No other thread may access `rows` of `bufs` meanwhile.
    unsafe fn backward_rows(
        &self,
        bufs: &StepBufs,
        w: &PackedB,
        t: usize,
        b: usize,
        rows: Range<usize>,
        dy: &[f32],
        dh_n: Option<&[f32]>,
        dc_n: Option<&[f32]>,
        keep: Option<&[f32]>,
        gemm_threads: usize,
    ) {
        let (h, gh, m) = (self.hidden_size, self.gate_rows(), rows.len());
        let state = rows.start * h..rows.end * h;
        let mut dh = bufs.dh.rows(rows.start, m, h);
        let mut dh_next = bufs.dh_next.rows(rows.start, m, h);
        let dc = bufs.dc.rows(rows.start, m, h);
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
            let gates = &*bufs.gates.rows(r0, m, gh);
            let dg = bufs.dg_hh.rows(r0, m, gh);
            let mut accumulate = false;
            match self.cell {
                CellKind::RnnTanh => rnn::tanh_backward_units(dg, dh, bufs.h.rows(r0, m, h)),
                CellKind::RnnRelu => rnn::relu_backward_units(dg, dh, bufs.h.rows(r0, m, h)),
                CellKind::Lstm => {
                    let tanh_c = bufs.tanh_c.rows(r0, m, h);
                    let cp = bufs.cprev.rows(r0, m, h);
                    lstm::backward_rows(gates, tanh_c, cp, dh, dc, dg, m, h);
                }
                CellKind::Gru => {
                    let dgi = bufs.dg_ih.rows(r0, m, gh);
                    let (hp, hh_n) = (bufs.hprev.rows(r0, m, h), bufs.hh_n.rows(r0, m, h));
                    gru::backward_rows(gates, hp, hh_n, dh, dg, dgi, dh_next, m, h);
                    accumulate = true;
                }
            }
            // dh_{t-1} = dgates · W_hh (GRU adds it to its direct path z ⊙ dh).
            gemm_packed(m, dg, gh, w, accumulate, dh_next, h, gemm_threads);
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

/// How the batch rows of a block's time loop are shared among threads.
struct RowSplit {
    batch: usize,
    /// Row groups, each run by one thread through every time step.
    parts: usize,
    /// Threads splitting each step's product within a group (by columns).
    gemm_threads: usize,
}

impl RowSplit {
    /// Streams of a batch are independent, so each thread can run the whole
    /// time loop for its own rows, with no synchronization between steps. That
    /// needs at least two row tiles per thread (each thread then reads all of
    /// `W_hh`); smaller batches split each step's product by columns instead,
    /// when it is big enough (`flops` per step) to pay for the hand-off.
    fn new(batch: usize, flops: usize) -> RowSplit {
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
    fn rows(&self, i: usize) -> Range<usize> {
        self.batch * i / self.parts..self.batch * (i + 1) / self.parts
    }
}

/// The cache buffers the time loops touch, as raw views shared by the threads
/// that split the batch rows (each thread touches only its own rows).
struct StepBufs {
    gates: Shared,
    h: Shared,
    hprev: Shared,
    c: Shared,
    cprev: Shared,
    tanh_c: Shared,
    hh_n: Shared,
    hh: Shared,
    dg_hh: Shared,
    dg_ih: Shared,
    dh: Shared,
    dh_next: Shared,
    dc: Shared,
}

impl StepBufs {
    fn new(c: &mut LayerCache) -> StepBufs {
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
struct Shared {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: `Shared` hands out rows only through the unsafe `rows`, whose
// callers guarantee that no two threads use the same rows at once.
unsafe impl Sync for Shared {}

impl Shared {
    fn new(v: &mut [f32]) -> Shared {
        Shared {
            ptr: v.as_mut_ptr(),
            len: v.len(),
        }
    }

    /// Prefetches rows `r0..r0 + m` of width `w` into L2 (see [`prefetch_l2`]).
    fn prefetch(&self, r0: usize, m: usize, w: usize) {
        if (r0 + m) * w <= self.len {
            prefetch_l2(self.ptr.wrapping_add(r0 * w), m * w);
        }
    }

    /// Rows `r0..r0 + m` of width `w`.
    ///
    /// # Safety
    /// While the slice lives, no other reference may overlap it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn rows<'a>(&self, r0: usize, m: usize, w: usize) -> &'a mut [f32] {
        assert!((r0 + m) * w <= self.len, "row range out of the buffer");
        std::slice::from_raw_parts_mut(self.ptr.add(r0 * w), m * w)
    }
}

/// `out[j] = Σ_rows m[row, j]` for `m: [rows, cols]`, the columns split among
/// the kernels' threads (each sums its columns in row order, so the result
/// does not depend on the split).
fn column_sums(m: &[f32], cols: usize, out: &mut [f32]) {
    let t = threads().min(cols / 64).max(1);
    let shared = Shared::new(&mut out[..cols]);
    parallel_for(t, &|i| {
        let (lo, hi) = (cols * i / t, cols * (i + 1) / t);
        // SAFETY: the column ranges of the parts are disjoint.
        let out = unsafe { shared.rows(lo, hi - lo, 1) };
        column_sums_range(m, cols, lo, out);
    });
}

multiversion! {
    /// `out[j] = Σ_rows m[row, lo + j]`.
    fn column_sums_range(m: &[f32], cols: usize, lo: usize, out: &mut [f32]) => column_sums_range_body
}

#[inline(always)]
fn column_sums_range_body(m: &[f32], cols: usize, lo: usize, out: &mut [f32]) {
    out.fill(0.0);
    let w = out.len();
    for row in m.chunks_exact(cols) {
        for (o, &v) in out.iter_mut().zip(&row[lo..lo + w]) {
            *o += v;
        }
    }
}

/// `dW += dGᵀ · x` for `dG: [rows, G*H]` and `x: [rows, width]` (a weight
/// gradient `[G*H, width]`).
fn add_weight_grad(dw: &mut [f32], dg: &[f32], x: &[f32], width: usize, rows: usize) {
    let gh = dw.len() / width.max(1);
    sgemm(
        Trans::T,
        Trans::N,
        gh,
        width,
        rows,
        1.0,
        dg,
        gh,
        x,
        width,
        1.0,
        dw,
        width,
    );
}

/// `dst += src`, equal lengths.
fn add_into(dst: &mut [f32], src: &[f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, random_vec};
    use recurrent_kernels::Rng;

    const CELLS: [CellKind; 4] = [
        CellKind::RnnTanh,
        CellKind::RnnRelu,
        CellKind::Lstm,
        CellKind::Gru,
    ];

    struct Case {
        layer: RecurrentLayer,
        t: usize,
        b: usize,
        w_ih: Vec<f32>,
        w_hh: Vec<f32>,
        b_ih: Vec<f32>,
        b_hh: Vec<f32>,
        x: Vec<f32>,
        h0: Vec<f32>,
        c0: Vec<f32>,
        ry: Vec<f32>,
        rh: Vec<f32>,
        rc: Vec<f32>,
        keep: Option<Vec<f32>>,
    }

    impl Case {
        fn new(cell: CellKind, seed: u64, with_reset: bool) -> Case {
            Case::with_batch(cell, seed, with_reset, 3)
        }

        fn with_batch(cell: CellKind, seed: u64, with_reset: bool, b: usize) -> Case {
            let (t, i, h) = (4, 5, 4);
            let layer = RecurrentLayer {
                cell,
                input_size: i,
                hidden_size: h,
            };
            let gh = layer.gate_rows();
            let mut rng = Rng::new(seed);
            let mut v = |n| random_vec(&mut rng, n);
            // Streams 1 and b - 2 start a new document at step 2 (the same one when b = 3).
            let keep = with_reset.then(|| {
                (0..t * b)
                    .map(|k| {
                        if k == 2 * b + 1 || k == 3 * b - 2 {
                            0.0
                        } else {
                            1.0
                        }
                    })
                    .collect()
            });
            Case {
                layer,
                t,
                b,
                w_ih: v(gh * i),
                w_hh: v(gh * h),
                b_ih: v(gh),
                b_hh: v(gh),
                x: v(t * b * i),
                h0: v(b * h),
                c0: v(b * h),
                ry: v(t * b * h),
                rh: v(b * h),
                rc: v(b * h),
                keep,
            }
        }

        /// loss = Σ y ⊙ ry + Σ h_T ⊙ rh (+ Σ c_T ⊙ rc), so every output and the final state matter.
        fn loss(
            &self,
            w_ih: &[f32],
            w_hh: &[f32],
            b_ih: &[f32],
            b_hh: &[f32],
            x: &[f32],
            h0: &[f32],
            c0: &[f32],
        ) -> f64 {
            let mut cache = LayerCache::default();
            let p = LayerParams {
                w_ih,
                w_hh,
                b_ih,
                b_hh,
            };
            self.layer.forward(
                p,
                x,
                self.t,
                self.b,
                h0,
                c0,
                self.keep.as_deref(),
                &mut cache,
                false,
            );
            let h = self.layer.hidden_size;
            let dot =
                |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x * y) as f64).sum::<f64>();
            let mut l = dot(cache.output(h), &self.ry) + dot(cache.last_h(h), &self.rh);
            if self.layer.cell == CellKind::Lstm {
                l += dot(cache.last_c(h), &self.rc);
            }
            l
        }
    }

    /// Everything a forward and backward of a case produce.
    #[derive(Debug, PartialEq)]
    struct Outputs {
        y: Vec<f32>,
        dx: Vec<f32>,
        dh0: Vec<f32>,
        dc0: Vec<f32>,
        grads: [Vec<f32>; 4],
    }

    /// Forward and backward of `k` with the loss of [`Case::loss`].
    fn run(k: &Case) -> Outputs {
        let (i, h) = (k.layer.input_size, k.layer.hidden_size);
        let gh = k.layer.gate_rows();
        let mut cache = LayerCache::default();
        let p = LayerParams {
            w_ih: &k.w_ih,
            w_hh: &k.w_hh,
            b_ih: &k.b_ih,
            b_hh: &k.b_hh,
        };
        let keep = k.keep.as_deref();
        k.layer
            .forward(p, &k.x, k.t, k.b, &k.h0, &k.c0, keep, &mut cache, true);
        let y = cache.output(h).to_vec();
        let [mut gw_ih, mut gw_hh, mut gb_ih, mut gb_hh] =
            [gh * i, gh * h, gh, gh].map(|n| vec![0.0; n]);
        let (mut dx, mut dh0, mut dc0) = (
            vec![0.0; k.x.len()],
            vec![0.0; k.h0.len()],
            vec![0.0; k.c0.len()],
        );
        let g = LayerGrads {
            w_ih: &mut gw_ih,
            w_hh: &mut gw_hh,
            b_ih: &mut gb_ih,
            b_hh: &mut gb_hh,
        };
        let dc_n = (k.layer.cell == CellKind::Lstm).then_some(&k.rc[..]);
        k.layer.backward(
            p,
            g,
            &k.x,
            &k.ry,
            Some(&k.rh),
            dc_n,
            keep,
            &mut cache,
            Some(&mut dx),
            Some(&mut dh0),
            Some(&mut dc0),
        );
        Outputs {
            y,
            dx,
            dh0,
            dc0,
            grads: [gw_ih, gw_hh, gb_ih, gb_hh],
        }
    }

    /// [`run`] one time step at a time through the packed API, as a decoder
    /// uses it: `forward_packed` per step, `backward_packed` per step in
    /// reverse, the weight gradients of all steps in one `weight_grads`.
    fn run_stepwise_packed(k: &Case) -> Outputs {
        let (i, h, l) = (k.layer.input_size, k.layer.hidden_size, &k.layer);
        let (gh, b, bh) = (l.gate_rows(), k.b, k.b * h);
        let p = LayerParams {
            w_ih: &k.w_ih,
            w_hh: &k.w_hh,
            b_ih: &k.b_ih,
            b_hh: &k.b_hh,
        };
        let mut packed = PackedLayer::default();
        packed.pack(l, p, true);
        let lstm = l.cell == CellKind::Lstm;
        let mut caches: Vec<LayerCache> = (0..k.t).map(|_| LayerCache::default()).collect();
        for s in 0..k.t {
            let (done, rest) = caches.split_at_mut(s);
            let (h0, c0) = match done.last() {
                None => (&k.h0[..], &k.c0[..]),
                Some(c) => (c.last_h(h), if lstm { c.last_c(h) } else { &k.c0[..] }),
            };
            let x = &k.x[s * b * i..(s + 1) * b * i];
            l.forward_packed(p, &packed, x, 1, b, h0, c0, &mut rest[0], true);
        }
        let y: Vec<f32> = caches.iter().flat_map(|c| c.output(h).to_vec()).collect();
        let (mut dh, mut dc) = (k.rh.clone(), k.rc.clone());
        let mut dx = vec![0.0; k.x.len()];
        let n = k.t * b;
        let (mut hprev, mut dg_hh, mut dg_ih) =
            (vec![0.0; n * h], vec![0.0; n * gh], vec![0.0; n * gh]);
        for s in (0..k.t).rev() {
            let (dh_n, dc_n) = (dh.clone(), dc.clone());
            let c = &mut caches[s];
            l.backward_packed(
                &packed,
                &k.ry[s * bh..(s + 1) * bh],
                Some(&dh_n),
                lstm.then_some(&dc_n[..]),
                c,
                &mut dx[s * b * i..(s + 1) * b * i],
                Some(&mut dh),
                lstm.then_some(&mut dc[..]),
            );
            let (hp, gh_, gi) = c.backward_parts(l);
            hprev[s * bh..(s + 1) * bh].copy_from_slice(hp);
            dg_hh[s * b * gh..(s + 1) * b * gh].copy_from_slice(gh_);
            dg_ih[s * b * gh..(s + 1) * b * gh].copy_from_slice(gi);
        }
        let [mut gw_ih, mut gw_hh, mut gb_ih, mut gb_hh] =
            [gh * i, gh * h, gh, gh].map(|n| vec![0.0; n]);
        let g = LayerGrads {
            w_ih: &mut gw_ih,
            w_hh: &mut gw_hh,
            b_ih: &mut gb_ih,
            b_hh: &mut gb_hh,
        };
        l.weight_grads(g, &k.x, &hprev, &dg_hh, &dg_ih, n, &mut Vec::new());
        Outputs {
            y,
            dx,
            dh0: dh,
            dc0: if lstm { dc } else { vec![0.0; k.c0.len()] },
            grads: [gw_ih, gw_hh, gb_ih, gb_hh],
        }
    }

    #[test]
    fn stepping_with_packed_weights_matches_the_block_pass() {
        for cell in CELLS {
            let k = Case::new(cell, 31 + cell as u64, false);
            let (want, got) = (run(&k), run_stepwise_packed(&k));
            let close = |a: &[f32], b: &[f32], what: &str| {
                assert_eq!(a.len(), b.len(), "{cell} {what}");
                for (x, y) in a.iter().zip(b) {
                    assert!(
                        (x - y).abs() <= 1e-5 * (1.0 + x.abs()),
                        "{cell} {what}: {x} vs {y}"
                    );
                }
            };
            close(&want.y, &got.y, "outputs");
            close(&want.dx, &got.dx, "dx");
            close(&want.dh0, &got.dh0, "dh0");
            if cell == CellKind::Lstm {
                close(&want.dc0, &got.dc0, "dc0");
            }
            for (n, (a, b)) in want.grads.iter().zip(&got.grads).enumerate() {
                close(a, b, &format!("grad {n}"));
            }
        }
    }

    fn gradcheck(cell: CellKind, with_reset: bool) {
        let k = Case::new(cell, 11 + cell as u64, with_reset);
        let Outputs {
            dx,
            dh0,
            dc0,
            grads: [gw_ih, gw_hh, gb_ih, gb_hh],
            ..
        } = run(&k);
        let name = format!("{cell}{}", if with_reset { " with reset" } else { "" });
        check(&format!("{name} w_ih"), &k.w_ih, &gw_ih, |v| {
            k.loss(v, &k.w_hh, &k.b_ih, &k.b_hh, &k.x, &k.h0, &k.c0)
        });
        check(&format!("{name} w_hh"), &k.w_hh, &gw_hh, |v| {
            k.loss(&k.w_ih, v, &k.b_ih, &k.b_hh, &k.x, &k.h0, &k.c0)
        });
        check(&format!("{name} b_ih"), &k.b_ih, &gb_ih, |v| {
            k.loss(&k.w_ih, &k.w_hh, v, &k.b_hh, &k.x, &k.h0, &k.c0)
        });
        check(&format!("{name} b_hh"), &k.b_hh, &gb_hh, |v| {
            k.loss(&k.w_ih, &k.w_hh, &k.b_ih, v, &k.x, &k.h0, &k.c0)
        });
        check(&format!("{name} x"), &k.x, &dx, |v| {
            k.loss(&k.w_ih, &k.w_hh, &k.b_ih, &k.b_hh, v, &k.h0, &k.c0)
        });
        check(&format!("{name} h0"), &k.h0, &dh0, |v| {
            k.loss(&k.w_ih, &k.w_hh, &k.b_ih, &k.b_hh, &k.x, v, &k.c0)
        });
        if cell == CellKind::Lstm {
            check(&format!("{name} c0"), &k.c0, &dc0, |v| {
                k.loss(&k.w_ih, &k.w_hh, &k.b_ih, &k.b_hh, &k.x, &k.h0, v)
            });
        }
    }

    #[test]
    fn every_cell_passes_the_gradient_check() {
        for cell in CELLS {
            gradcheck(cell, false);
        }
    }

    #[test]
    fn every_cell_passes_the_gradient_check_with_a_document_reset() {
        for cell in CELLS {
            gradcheck(cell, true);
        }
    }

    /// Rows `lo..hi` of every step of a time-major `[t * b, w]` buffer.
    fn stream_rows(v: &[f32], t: usize, b: usize, w: usize, lo: usize, hi: usize) -> Vec<f32> {
        (0..t)
            .flat_map(|s| &v[(s * b + lo) * w..(s * b + hi) * w])
            .copied()
            .collect()
    }

    #[test]
    fn splitting_the_batch_over_threads_changes_nothing() {
        // 33 streams on two threads: rows 0..16 and 16..33 each run their own
        // time loop (see `RowSplit`), with a reset in each group. Streams are
        // independent, so each half run alone must give the same results.
        recurrent_kernels::threads::set_threads(2);
        assert_eq!(RowSplit::new(33, 0).parts, 2);
        for cell in CELLS {
            let full = Case::with_batch(cell, 5, true, 33);
            let out = run(&full);
            let (t, i, h) = (full.t, full.layer.input_size, full.layer.hidden_size);
            let mut sums = out.grads.clone().map(|g| vec![0.0f64; g.len()]);
            for (lo, hi) in [(0, 16), (16, 33)] {
                let sel = |v: &[f32], t: usize, w: usize| stream_rows(v, t, 33, w, lo, hi);
                let part = Case {
                    b: hi - lo,
                    x: sel(&full.x, t, i),
                    h0: sel(&full.h0, 1, h),
                    c0: sel(&full.c0, 1, h),
                    ry: sel(&full.ry, t, h),
                    rh: sel(&full.rh, 1, h),
                    rc: sel(&full.rc, 1, h),
                    keep: full.keep.as_ref().map(|k| sel(k, t, 1)),
                    w_ih: full.w_ih.clone(),
                    w_hh: full.w_hh.clone(),
                    b_ih: full.b_ih.clone(),
                    b_hh: full.b_hh.clone(),
                    ..full
                };
                assert_eq!(RowSplit::new(part.b, 0).parts, 1);
                let o = run(&part);
                // The whole-block products may round differently at another
                // batch size, so "the same" is up to f32 rounding.
                let close = |what: &str, a: &[f32], b: &[f32]| {
                    assert_eq!(a.len(), b.len());
                    for (&x, &y) in a.iter().zip(b) {
                        assert!(
                            (x - y).abs() <= 1e-5 * (1.0 + x.abs()),
                            "{cell} {what}: {x} vs {y}"
                        );
                    }
                };
                close("outputs", &o.y, &sel(&out.y, t, h));
                close("dx", &o.dx, &sel(&out.dx, t, i));
                close("dh0", &o.dh0, &sel(&out.dh0, 1, h));
                close("dc0", &o.dc0, &sel(&out.dc0, 1, h));
                for (s, g) in sums.iter_mut().zip(&o.grads) {
                    for (a, &v) in s.iter_mut().zip(g) {
                        *a += v as f64;
                    }
                }
            }
            // Weight gradients sum over all streams: equal up to rounding.
            for (s, g) in sums.iter().zip(&out.grads) {
                for (&a, &v) in s.iter().zip(g) {
                    assert!(
                        (a - v as f64).abs() <= 1e-5 * (1.0 + a.abs()),
                        "{cell}: {a} vs {v}"
                    );
                }
            }
        }
    }

    #[test]
    fn gradients_hold_on_the_baseline_instruction_set() {
        // The paths a CPU without AVX-512 or AVX2 takes: the `gemm` crate and
        // the plain elementwise loops.
        recurrent_kernels::simd::force_baseline(true);
        for cell in CELLS {
            gradcheck(cell, true);
        }
        recurrent_kernels::simd::force_baseline(false);
    }

    #[test]
    fn a_reset_makes_the_stream_forget_its_past() {
        // With a reset at step 2 for stream 1, that stream's outputs from step 2 on
        // must not depend on h0 for that stream.
        for cell in CELLS {
            let k = Case::new(cell, 3, true);
            let h = k.layer.hidden_size;
            let run = |h0: &[f32]| {
                let mut cache = LayerCache::default();
                let p = LayerParams {
                    w_ih: &k.w_ih,
                    w_hh: &k.w_hh,
                    b_ih: &k.b_ih,
                    b_hh: &k.b_hh,
                };
                k.layer.forward(
                    p,
                    &k.x,
                    k.t,
                    k.b,
                    h0,
                    &k.c0,
                    k.keep.as_deref(),
                    &mut cache,
                    false,
                );
                cache.output(h).to_vec()
            };
            let a = run(&k.h0);
            let mut h0 = k.h0.clone();
            h0[h..2 * h].iter_mut().for_each(|v| *v += 0.5);
            let b = run(&h0);
            let at = |s: usize, r: usize| (s * k.b + r) * h..(s * k.b + r + 1) * h;
            assert_ne!(
                a[at(1, 1)],
                b[at(1, 1)],
                "{cell}: before the reset the state matters"
            );
            assert_eq!(
                a[at(2, 1)],
                b[at(2, 1)],
                "{cell}: after the reset it must not"
            );
            assert_eq!(a[at(3, 1)], b[at(3, 1)]);
        }
    }

    #[test]
    fn cell_names_round_trip() {
        for cell in CELLS {
            assert_eq!(cell.name().parse::<CellKind>().unwrap(), cell);
        }
        assert!("transformer".parse::<CellKind>().is_err());
    }
}
