//! One step through the packed network, and how the threads split it.
//!
//! The outputs live in the step's shared views ([`Bufs`]): a task writes only
//! its own rows, or its own panels' columns and units, of each buffer, and
//! reads a layer's outputs only once the tasks writing them are done. Each
//! `unsafe` function's contract is that promise, passed down from [`StepModel::run`].

use std::ops::Range;

use recurrent_kernels::panel::{panel_gemm_shared, Init, PanelMatrix, LANES};
use recurrent_kernels::threads::parallel_for;
use recurrent_kernels::{activation, MatRef, SharedRows};
use recurrent_nn::cell::{gru, lstm, rnn};

use super::pack::{InputSide, Linear};
use super::workspace::{Bufs, StepWorkspace};
use super::{StepModel, ROWS_PER_THREAD};
use crate::{CellKind, State};

impl StepModel {
    /// [`StepModel::step`] on up to `threads` threads, its arguments checked.
    pub(super) fn step_on<'w>(
        &self,
        ws: &'w mut StepWorkspace,
        tokens: &[u32],
        state: &mut State,
        threads: usize,
    ) -> &'w [f32] {
        let cfg = &self.config;
        let b = tokens.len();
        debug_assert!(
            crate::check::state(cfg, state, b).is_ok(),
            "checked by step"
        );
        ws.ensure(self, b);
        if let InputSide::Embedding(e) = &self.input {
            let w = cfg.embed;
            for (row, &t) in ws.x.chunks_exact_mut(w).zip(tokens) {
                row.copy_from_slice(&e[t as usize * w..][..w]);
            }
        }
        self.run(&Bufs::new(ws, state, tokens, cfg), b, threads);
        // The new hidden state becomes the state; the old one is scratch now.
        std::mem::swap(&mut state.h, &mut ws.h_new);
        &ws.logits[..b * cfg.vocab_size]
    }

    /// Runs every layer and the head on the threads, split as the module
    /// documentation says.
    fn run(&self, bufs: &Bufs<'_>, b: usize, threads: usize) {
        let t = threads.max(1);
        let parts = (b / ROWS_PER_THREAD).clamp(1, t);
        if parts > 1 || t == 1 {
            parallel_for(parts, &|i| {
                let rows = share(b, parts, i);
                for k in 0..self.layers.len() {
                    let all = 0..self.layers[k].w_h.panels();
                    // SAFETY: each task writes only its own rows, and runs
                    // the layers of those rows in order.
                    unsafe {
                        self.layer(k, bufs, rows.clone(), all);
                        self.ln_update(k, bufs, rows.clone());
                    }
                }
                // SAFETY: as above.
                unsafe { self.head(bufs, rows, None) };
            });
            return;
        }
        for k in 0..self.layers.len() {
            let panels = self.layers[k].w_h.panels();
            let t = t.min(panels);
            parallel_for(t, &|i| {
                // SAFETY: each task writes only its own panels' columns and
                // units; the layer below finished in the previous round.
                unsafe { self.layer(k, bufs, 0..b, share(panels, t, i)) };
            });
            // SAFETY: the products are done and nothing else runs.
            unsafe { self.ln_update(k, bufs, 0..b) };
        }
        self.head_split(bufs, b, t);
    }

    /// Multiply-adds per stream and step (for the threading decision).
    pub(super) fn macs_per_row(&self) -> usize {
        let size = |w: &PanelMatrix| w.shape().0 * w.shape().1;
        let layers: usize = self
            .layers
            .iter()
            .map(|l| l.w_x.as_ref().map_or(0, size) + size(&l.w_h))
            .sum();
        layers + self.dense.as_ref().map_or(0, |d| size(&d.w)) + size(&self.decoder.w)
    }

    /// The head with its panels split among `t` threads, the dense layer first.
    fn head_split(&self, bufs: &Bufs<'_>, b: usize, t: usize) {
        let cfg = &self.config;
        if let Some(d) = &self.dense {
            let panels = d.w.panels();
            let t = t.min(panels);
            parallel_for(t, &|i| {
                // SAFETY: the top layer is done, so its output is only read;
                // each task writes only its own panels' columns.
                unsafe {
                    let top = bufs.top(cfg, 0..b);
                    linear(d, top, share(panels, t, i), &bufs.dense, 0..b, true)
                };
            });
        }
        let panels = self.decoder.w.panels();
        let t = t.min(panels);
        parallel_for(t, &|i| {
            // SAFETY: as above.
            unsafe { self.head(bufs, 0..b, Some(share(panels, t, i))) };
        });
    }

    /// The head for `rows`: the dense layer over all its panels (unless
    /// `decoder_panels` is given, which means it ran already), then the
    /// decoder's `decoder_panels` (all by default).
    ///
    /// # Safety
    /// No other thread may touch these rows' (or panels') outputs meanwhile,
    /// and the top layer (and, with `decoder_panels`, the dense layer) must be
    /// done with these rows.
    unsafe fn head(
        &self,
        bufs: &Bufs<'_>,
        rows: Range<usize>,
        decoder_panels: Option<Range<usize>>,
    ) {
        let cfg = &self.config;
        // SAFETY: the top layer is done with these rows (the caller's promise).
        let mut x = unsafe { bufs.top(cfg, rows.clone()) };
        if let Some(d) = &self.dense {
            if decoder_panels.is_none() {
                // SAFETY: these rows of the dense output are this task's alone
                // (the caller's promise).
                unsafe { linear(d, x, 0..d.w.panels(), &bufs.dense, rows.clone(), true) };
            }
            // SAFETY: these rows of the dense output are done (just above, or
            // before the call), and nothing writes them any more.
            let dense = unsafe { bufs.dense.rows_ref(rows.clone(), cfg.dense) };
            x = MatRef::new(dense, rows.len(), cfg.dense);
        }
        let panels = decoder_panels.unwrap_or(0..self.decoder.w.panels());
        // SAFETY: these rows' (or panels') logits are this task's alone.
        unsafe { linear(&self.decoder, x, panels, &bufs.logits, rows, false) };
    }

    /// Layer `k` for `rows` and the units of `panels`: input-side and
    /// hidden-side products of each panel, then its cell update.
    ///
    /// # Safety
    /// No other thread may touch these rows and panels' outputs meanwhile, and
    /// the layer below must be done with these rows.
    unsafe fn layer(&self, k: usize, bufs: &Bufs<'_>, rows: Range<usize>, panels: Range<usize>) {
        let (lay, cfg) = (&self.layers[k], &self.config);
        let (b, h, m) = (bufs.batch, cfg.layer_hidden(k), rows.len());
        let from = cfg.state_range(k, b).start + rows.start * h;
        let h_prev = MatRef::new(&bufs.h_old[from..from + m * h], m, h);
        for p in panels {
            let one = p..p + 1;
            if lay.ln.is_some() {
                // Products only: the norms need whole rows (`ln_update`).
                // SAFETY: panel `p`'s columns of these rows of the sums are
                // this task's alone (the caller's promise).
                unsafe {
                    self.input_side(k, bufs, rows.clone(), p);
                    let y = &bufs.hidden_sums;
                    panel_gemm_shared(h_prev, &lay.w_h, one, Init::Zero, y, rows.clone());
                }
                continue;
            }
            self.prefetch_state(k, bufs, rows.clone(), p);
            // SAFETY: as above; panel `p`'s units of these rows' state are
            // this task's alone too.
            unsafe {
                self.input_side(k, bufs, rows.clone(), p);
                if cfg.cell == CellKind::Gru {
                    let (init, y) = (Init::Row(&lay.bias_h), &bufs.hidden_sums);
                    panel_gemm_shared(h_prev, &lay.w_h, one, init, y, rows.clone());
                } else {
                    let y = &bufs.gates;
                    panel_gemm_shared(h_prev, &lay.w_h, one, Init::Accumulate, y, rows.clone());
                }
                self.update(k, bufs, rows.clone(), p);
            }
        }
    }

    /// Asks for the state the cell update of panel `p` will read (LSTM: `c`;
    /// GRU: `h_prev`) while the products run. A row's units of one panel are
    /// one or two cache lines, a row apart (`H` floats) from the next row's,
    /// and the weights streamed since the last step have pushed them out of
    /// L2: without this, every row's update starts with a cache miss.
    fn prefetch_state(&self, k: usize, bufs: &Bufs<'_>, rows: Range<usize>, p: usize) {
        let (h, b) = (self.config.layer_hidden(k), bufs.batch);
        let layer_start = self.config.state_range(k, b).start;
        let addr = |i: usize| match self.config.cell {
            CellKind::Lstm => bufs.c.addr(i),
            _ => bufs.h_old.as_ptr().wrapping_add(i),
        };
        if !matches!(self.config.cell, CellKind::Lstm | CellKind::Gru) {
            return;
        }
        let u0 = p * self.layers[k].gates.panel_units();
        let last = (h - u0).min(LANES) - 1;
        for r in rows {
            let at = layer_start + r * h + u0;
            prefetch(addr(at));
            prefetch(addr(at + last));
        }
    }

    /// Layer `k`'s input-side sums of panel `p` for `rows`, into `bufs.gates`.
    ///
    /// # Safety
    /// As [`StepModel::layer`].
    unsafe fn input_side(&self, k: usize, bufs: &Bufs<'_>, rows: Range<usize>, p: usize) {
        let (lay, cfg) = (&self.layers[k], &self.config);
        let (b, n, m) = (bufs.batch, lay.gates.cols(), rows.len());
        let one = p..p + 1;
        let init = Init::Row(&lay.bias_x);
        match (&self.input, &lay.w_x) {
            (InputSide::Table(table), None) if k == 0 => {
                let cols = lay.w_h.panel_cols(p);
                for r in rows {
                    let tok = bufs.tokens[r] as usize;
                    let src = &table[tok * n + cols.start..tok * n + cols.end];
                    // SAFETY: panel `p`'s columns of row `r` of the sums are
                    // this task's alone (the caller's promise).
                    unsafe { bufs.gates.row(r, cols.clone()) }.copy_from_slice(src);
                }
            }
            (InputSide::Embedding(_), Some(w)) if k == 0 => {
                let e = cfg.embed;
                let x = MatRef::new(&bufs.x[rows.start * e..], m, e);
                // SAFETY: panel `p`'s columns of these rows of the sums are
                // this task's alone (the caller's promise).
                unsafe { panel_gemm_shared(x, w, one, init, &bufs.gates, rows) };
            }
            (_, Some(w)) => {
                let below = cfg.layer_hidden(k - 1);
                let from = cfg.state_range(k - 1, b).start + rows.start * below;
                // SAFETY: the layer below is done with these rows (the
                // caller's promise), so nothing writes its outputs while read;
                // panel `p`'s columns of these rows of the sums are this task's.
                unsafe {
                    let x = bufs.h_new.read(from..from + m * below);
                    let x = MatRef::new(x, m, below);
                    panel_gemm_shared(x, w, one, init, &bufs.gates, rows)
                };
            }
            (_, None) => unreachable!("only layer 0 reads a table"),
        }
    }

    /// The cell update of layer `k` for the units of panel `p` and `rows`.
    ///
    /// # Safety
    /// As [`StepModel::layer`], with panel `p`'s products of these rows done.
    unsafe fn update(&self, k: usize, bufs: &Bufs<'_>, rows: Range<usize>, p: usize) {
        let (lay, cfg) = (&self.layers[k], &self.config);
        let (b, h) = (bufs.batch, cfg.layer_hidden(k));
        let layer_start = cfg.state_range(k, b).start;
        let units = lay.gates.panel_units();
        let u0 = p * units;
        let u = units.min(h - u0);
        let col0 = p * units * lay.gates.gates;
        for r in rows {
            let cols = |g: usize| col0 + g * units..col0 + g * units + u;
            // SAFETY: panel `p`'s sums of row `r` are this task's alone (the
            // caller's promise), and done.
            let sums = |g| unsafe { bufs.gates.row_ref(r, cols(g)) };
            // SAFETY: see above.
            let hidden = |g| unsafe { bufs.hidden_sums.row_ref(r, cols(g)) };
            let state = layer_start + r * h + u0;
            // SAFETY: panel `p`'s units of row `r` of the new state are this
            // task's alone (the caller's promise).
            let h_out = unsafe { bufs.h_new.slice(state..state + u) };
            match cfg.cell {
                CellKind::Lstm => {
                    // SAFETY: as for `h_out`, in the cell state.
                    let c = unsafe { bufs.c.slice(state..state + u) };
                    lstm::forward_in_place([sums(0), sums(1), sums(2), sums(3)], c, h_out);
                }
                CellKind::Gru => {
                    let hp = &bufs.h_old[state..state + u];
                    let (x, hs) = (
                        [sums(0), sums(1), sums(2)],
                        [hidden(0), hidden(1), hidden(2)],
                    );
                    gru::forward_units(x, hs, hp, h_out);
                }
                CellKind::RnnTanh => rnn::tanh_forward_units(sums(0), h_out),
                CellKind::RnnRelu => {
                    rnn::relu_forward_units(sums(0), h_out);
                }
            }
        }
    }
}

/// `y[rows, cols of panels] = x · Wᵀ + b` (then ReLU when `relu`), `x`
/// holding those rows' inputs.
///
/// # Safety
/// No other thread may touch the panels' columns of these rows of `y` meanwhile.
unsafe fn linear(
    l: &Linear,
    x: MatRef<'_>,
    panels: Range<usize>,
    y: &SharedRows<'_, f32>,
    rows: Range<usize>,
    relu: bool,
) {
    if panels.is_empty() {
        return;
    }
    let cols = l.w.panel_cols(panels.start).start..l.w.panel_cols(panels.end - 1).end;
    // SAFETY: the caller's promise.
    unsafe { panel_gemm_shared(x, &l.w, panels, Init::Row(&l.bias), y, rows.clone()) };
    if relu {
        for r in rows {
            // SAFETY: the panels' columns of row `r`, the caller's to write.
            let row = unsafe { y.row(r, cols.clone()) };
            row.iter_mut().for_each(|v| *v = activation::relu(*v));
        }
    }
}

/// Hints the CPU to bring the cache line holding `p` into L1 (no-op elsewhere).
#[inline(always)]
fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Part `i` of `0..n` split in `parts` contiguous, nearly equal pieces.
pub(super) fn share(n: usize, parts: usize, i: usize) -> Range<usize> {
    n * i / parts..n * (i + 1) / parts
}
