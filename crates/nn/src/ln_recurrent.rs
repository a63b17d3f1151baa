//! Layer-normalized LSTM and GRU layers (Ba, Kiros and Hinton 2016, "Layer
//! Normalization", section 3.1), over a whole time block, forward and backward.
//!
//! The input and hidden projections are normalized separately, each over all
//! its `G*H` gate rows jointly, before they are added:
//!
//! ```text
//! a_t = LN(W_ih x_t; γ_ih, β_ih) + LN(W_hh h_{t-1}; γ_hh, β_hh) + b_ih + b_hh
//! LSTM (rows i f g o):  c_t = σ(f) c_{t-1} + σ(i) tanh(g),  h_t = σ(o) tanh(LN(c_t; γ_c, β_c))
//! GRU  (rows r z n):    n = tanh(a_n^ih + b_in + σ(r) (a_n^hh + b_hn)),  h_t = (1 - σ(z)) n + σ(z) h_{t-1}
//! ```
//!
//! (for GRU, `a^ih` and `a^hh` are the two normalized projections and the
//! biases are applied as PyTorch's `nn.GRU` applies them). Normalizing the
//! pre-activations keeps their scale fixed whatever the weights grow to, which
//! is what lets these cells train at learning rates where plain ones diverge.
//!
//! Both passes run the cells of [`crate::cell`] on the normalized sums: the
//! forward the LSTM's [`lstm::gates`] and [`lstm::cell`], then
//! [`lstm::output`] on `LN(c)`, or [`gru::forward`]; the backward their
//! halves in reverse, [`lstm::output_backward`], the LayerNorm of `c`, then
//! [`lstm::cell_backward`], or [`gru::backward`]. (Until session 7 the
//! backward kept formulas of its own, `dh·tanh_c·o·(1 - o)` where the cell
//! has `dh·tanh_c·σ'(o)`; sharing the cell's moved these gradients in their
//! last bits only, well inside the gradient checks and PyTorch fixtures.)
//!
//! The input projections of all steps are one GEMM and one LayerNorm pass;
//! each step is one small GEMM `h_{t-1} · W_hhᵀ`, its LayerNorm and the cell.
//! The backward pass walks the steps in reverse and forms `dW_hh`, `dW_ih`
//! and `dx` as whole-block GEMMs.

mod trace;
use recurrent_kernels::{sgemm, MatMut, MatRef};

use crate::cell::{gru, lstm};
use crate::layer_norm::{self, NormGrads};
use crate::recurrent::{last_step, Block, CellKind, Downstream, LayerGrads, LayerParams, Upstream};

/// A layer-normalized layer's parameters: the plain layer's (PyTorch shapes)
/// and the LayerNorm gains and biases, `[G*H]` for the two projections and
/// `[H]` for the LSTM cell state (empty for GRU).
#[derive(Clone, Copy)]
pub struct LnParams<'a> {
    /// The plain layer's weights and biases.
    pub base: LayerParams<'a>,
    /// LayerNorm gain of the input projection, `[G*H]`.
    pub ih_gain: &'a [f32],
    /// LayerNorm bias of the input projection, `[G*H]`.
    pub ih_bias: &'a [f32],
    /// LayerNorm gain of the hidden projection, `[G*H]`.
    pub hh_gain: &'a [f32],
    /// LayerNorm bias of the hidden projection, `[G*H]`.
    pub hh_bias: &'a [f32],
    /// LSTM: LayerNorm gain of the cell state, `[H]` (empty for GRU).
    pub c_gain: &'a [f32],
    /// LSTM: LayerNorm bias of the cell state, `[H]` (empty for GRU).
    pub c_bias: &'a [f32],
}

/// Gradient accumulators with the shapes of [`LnParams`]; backward adds into them.
pub struct LnGrads<'a> {
    /// Gradients of the plain layer's weights and biases.
    pub base: LayerGrads<'a>,
    /// Gradient of `ih_gain`.
    pub ih_gain: &'a mut [f32],
    /// Gradient of `ih_bias`.
    pub ih_bias: &'a mut [f32],
    /// Gradient of `hh_gain`.
    pub hh_gain: &'a mut [f32],
    /// Gradient of `hh_bias`.
    pub hh_bias: &'a mut [f32],
    /// Gradient of `c_gain`.
    pub c_gain: &'a mut [f32],
    /// Gradient of `c_bias`.
    pub c_bias: &'a mut [f32],
}

/// The shape of one layer-normalized LSTM or GRU layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LnRecurrentLayer {
    /// `Lstm` or `Gru`.
    pub cell: CellKind,
    /// `I`, the width of an input row.
    pub input_size: usize,
    /// `H`, the width of the state and of an output row.
    pub hidden_size: usize,
}

/// Activations kept for the backward pass and the backward's buffers, sized
/// once per `(T, B)` and reused.
#[derive(Default)]
pub struct LnCache {
    steps: usize,
    batch: usize,
    /// `[T*B, G*H]` raw input projections, then (backward) their gradients.
    xp: Vec<f32>,
    /// `[T*B, G*H]` normalized input projections `LN(W_ih x)` and their `x̂`, `1/σ`.
    ax: Vec<f32>,
    xhat_x: Vec<f32>,
    rstd_x: Vec<f32>,
    /// `[B, G*H]` one step's raw hidden projection and its normalized form.
    hp: Vec<f32>,
    ah: Vec<f32>,
    /// `[T*B, G*H]` `x̂` of every step's hidden projection, and `1/σ` `[T*B]`.
    xhat_h: Vec<f32>,
    rstd_h: Vec<f32>,
    /// `[T*B, G*H]` activated gates (`i f g o` or `r z n`).
    gates: Vec<f32>,
    /// `[T*B, H]` outputs and the state each step started from.
    pub h: Vec<f32>,
    hprev: Vec<f32>,
    /// LSTM: `[T*B, H]` cell states, the ones each step started from,
    /// `x̂` of `LN(c)`, `1/σ` `[T*B]`, and `tanh(LN(c))`.
    c: Vec<f32>,
    cprev: Vec<f32>,
    xhat_c: Vec<f32>,
    rstd_c: Vec<f32>,
    tc: Vec<f32>,
    /// GRU: `[T*B, H]` the hidden part of the candidate, `a_n^hh + b_hn`.
    hn: Vec<f32>,
    /// Backward: `[T*B, G*H]` gradients of the normalized input projections and
    /// of the raw hidden projections; `[B, G*H]` one step's gate gradients
    /// (input side) and hidden-side ones; `[B, H]` running state gradients.
    dax: Vec<f32>,
    dhp: Vec<f32>,
    da: Vec<f32>,
    dah: Vec<f32>,
    dh: Vec<f32>,
    dc: Vec<f32>,
    /// `[B, H]` scratch: `d LN(c)` (LSTM) or the direct `dh_{t-1}` (GRU).
    tmp: Vec<f32>,
}

fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// Zeroes the `h`-wide rows of `v` whose `keep` is 0.
fn reset_rows(v: &mut [f32], keep: Option<&[f32]>, h: usize) {
    if let Some(keep) = keep {
        for (row, &k) in v.chunks_exact_mut(h).zip(keep) {
            if k == 0.0 {
                row.fill(0.0);
            }
        }
    }
}

impl LnCache {
    fn ensure(&mut self, layer: &LnRecurrentLayer, t: usize, b: usize) {
        let (h, gh) = (layer.hidden_size, layer.gate_rows());
        let n = t * b;
        for (v, len) in [
            (&mut self.xp, n * gh),
            (&mut self.ax, n * gh),
            (&mut self.xhat_x, n * gh),
            (&mut self.rstd_x, n),
            (&mut self.hp, b * gh),
            (&mut self.ah, b * gh),
            (&mut self.xhat_h, n * gh),
            (&mut self.rstd_h, n),
            (&mut self.gates, n * gh),
            (&mut self.h, n * h),
            (&mut self.hprev, n * h),
        ] {
            grow(v, len);
        }
        if layer.cell == CellKind::Lstm {
            for v in [&mut self.c, &mut self.cprev, &mut self.xhat_c, &mut self.tc] {
                grow(v, n * h);
            }
            grow(&mut self.rstd_c, n);
        } else {
            grow(&mut self.hn, n * h);
        }
        self.steps = t;
        self.batch = b;
    }

    /// The output at the last step, `[B, H]`.
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
}

impl LnRecurrentLayer {
    /// Gate rows, `G*H`.
    pub fn gate_rows(&self) -> usize {
        self.cell.gates() * self.hidden_size
    }

    /// Whether `cell` has a layer-normalized form here (LSTM and GRU).
    pub fn supports(cell: CellKind) -> bool {
        matches!(cell, CellKind::Lstm | CellKind::Gru)
    }

    /// Runs the block's `T` steps over `x: [T*B, I]` from its start state
    /// (see [`Block`], which also holds the resets); outputs land in `cache.h`.
    ///
    /// # Panics
    /// If the cell has no layer-normalized form ([`Self::supports`]) or a
    /// buffer is shorter than the block's shape.
    pub fn forward(&self, p: LnParams<'_>, x: &[f32], block: Block<'_>, cache: &mut LnCache) {
        let Block {
            steps: t,
            batch: b,
            h0,
            c0,
            keep,
        } = block;
        assert!(Self::supports(self.cell), "layer norm needs an LSTM or GRU");
        let (i, h, gh) = (self.input_size, self.hidden_size, self.gate_rows());
        let n = t * b;
        cache.ensure(self, t, b);
        let c = cache;
        // Every step's input projection at once, and its LayerNorm.
        sgemm(
            1.0,
            MatRef::new(x, n, i),
            MatRef::new(p.base.w_ih, gh, i).t(),
            0.0,
            MatMut::new(&mut c.xp, n, gh),
        );
        layer_norm::forward(
            MatRef::new(&c.xp, n, gh),
            p.ih_gain,
            p.ih_bias,
            &mut c.ax,
            &mut c.xhat_x,
            &mut c.rstd_x,
        );
        for s in 0..t {
            let (r0, bh) = (s * b, b * h);
            let prev = if s == 0 {
                &h0[..bh]
            } else {
                &c.h[(r0 - b) * h..r0 * h]
            };
            let hprev = &mut c.hprev[r0 * h..r0 * h + bh];
            hprev.copy_from_slice(prev);
            reset_rows(hprev, keep.map(|k| &k[r0..r0 + b]), h);
            sgemm(
                1.0,
                MatRef::new(hprev, b, h),
                MatRef::new(p.base.w_hh, gh, h).t(),
                0.0,
                MatMut::new(&mut c.hp, b, gh),
            );
            let rows = r0 * gh..(r0 + b) * gh;
            layer_norm::forward(
                MatRef::new(&c.hp, b, gh),
                p.hh_gain,
                p.hh_bias,
                &mut c.ah,
                &mut c.xhat_h[rows],
                &mut c.rstd_h[r0..r0 + b],
            );
            match self.cell {
                CellKind::Lstm => self.lstm_step(p, c, s, b, c0, keep),
                _ => self.gru_step(p, c, s, b),
            }
        }
    }

    /// One LSTM step's cell after both projections are normalized.
    fn lstm_step(
        &self,
        p: LnParams<'_>,
        c: &mut LnCache,
        s: usize,
        b: usize,
        c0: &[f32],
        keep: Option<&[f32]>,
    ) {
        let (h, gh) = (self.hidden_size, self.gate_rows());
        let r0 = s * b;
        let bias = |k: usize| p.base.b_ih[k] + p.base.b_hh[k];
        for rr in 0..b {
            let row = r0 + rr;
            for j in 0..h {
                let pre = |q: usize| {
                    let k = q * h + j;
                    c.ax[row * gh + k] + c.ah[rr * gh + k] + bias(k)
                };
                let gt = lstm::gates(pre(0), pre(1), pre(2), pre(3));
                let g = &mut c.gates[row * gh..(row + 1) * gh];
                (g[j], g[h + j], g[2 * h + j], g[3 * h + j]) = (gt.i, gt.f, gt.g, gt.o);
                let cp = if keep.is_some_and(|k| k[row] == 0.0) {
                    0.0
                } else if s == 0 {
                    c0[rr * h + j]
                } else {
                    c.c[(row - b) * h + j]
                };
                c.cprev[row * h + j] = cp;
                c.c[row * h + j] = lstm::cell(gt, cp);
            }
        }
        // h = o ⊙ tanh(LN(c)); LN(c) goes through `tc` first.
        let cells = r0 * h..(r0 + b) * h;
        layer_norm::forward(
            MatRef::new(&c.c[cells.clone()], b, h),
            p.c_gain,
            p.c_bias,
            &mut c.tc[cells.clone()],
            &mut c.xhat_c[cells.clone()],
            &mut c.rstd_c[r0..r0 + b],
        );
        for rr in 0..b {
            let row = r0 + rr;
            for j in 0..h {
                let k = row * h + j;
                (c.tc[k], c.h[k]) = lstm::output(c.gates[row * gh + 3 * h + j], c.tc[k]);
            }
        }
    }

    /// One GRU step after both projections are normalized.
    fn gru_step(&self, p: LnParams<'_>, c: &mut LnCache, s: usize, b: usize) {
        let (h, gh) = (self.hidden_size, self.gate_rows());
        let r0 = s * b;
        let (bi, bh) = (p.base.b_ih, p.base.b_hh);
        for rr in 0..b {
            let row = r0 + rr;
            for j in 0..h {
                let (ax, ah) = (
                    &c.ax[row * gh..(row + 1) * gh],
                    &c.ah[rr * gh..(rr + 1) * gh],
                );
                let hn = ah[2 * h + j] + bh[2 * h + j];
                let u = gru::forward(
                    ax[j] + ah[j] + bi[j] + bh[j],
                    ax[h + j] + ah[h + j] + bi[h + j] + bh[h + j],
                    ax[2 * h + j] + bi[2 * h + j],
                    hn,
                    c.hprev[row * h + j],
                );
                let g = &mut c.gates[row * gh..(row + 1) * gh];
                (g[j], g[h + j], g[2 * h + j]) = (u.r, u.z, u.n);
                c.hn[row * h + j] = hn;
                c.h[row * h + j] = u.h;
            }
        }
    }

    /// Backward of [`LnRecurrentLayer::forward`] (with the same `keep`):
    /// from the gradients arriving from above (`up`) adds the parameter
    /// gradients into `g`, and writes those of the inputs `x: [T*B, I]` and
    /// of the initial state that `down` asks for.
    pub fn backward(
        &self,
        p: LnParams<'_>,
        g: LnGrads<'_>,
        x: &[f32],
        up: Upstream<'_>,
        cache: &mut LnCache,
        down: Downstream<'_>,
    ) {
        let Upstream {
            dy,
            dh_n,
            dc_n,
            keep,
        } = up;
        let Downstream { dx, dh0, dc0 } = down;
        let (i, h, gh) = (self.input_size, self.hidden_size, self.gate_rows());
        let c = cache;
        let (t, b) = (c.steps, c.batch);
        let (n, bh) = (t * b, b * h);
        let lstm = self.cell == CellKind::Lstm;
        for (v, len) in [
            (&mut c.dax, n * gh),
            (&mut c.dhp, n * gh),
            (&mut c.da, b * gh),
            (&mut c.dah, b * gh),
            (&mut c.dh, bh),
            (&mut c.dc, bh),
            (&mut c.tmp, bh),
        ] {
            grow(v, len);
        }
        let LnGrads {
            base: gb,
            ih_gain,
            ih_bias,
            hh_gain,
            hh_bias,
            c_gain,
            c_bias,
        } = g;
        match dh_n {
            Some(d) => c.dh[..bh].copy_from_slice(&d[..bh]),
            None => c.dh[..bh].fill(0.0),
        }
        match dc_n {
            Some(d) if lstm => c.dc[..bh].copy_from_slice(&d[..bh]),
            _ => c.dc[..bh].fill(0.0),
        }
        for s in (0..t).rev() {
            let r0 = s * b;
            // The gradient w.r.t. h_s: from the output and from step s + 1.
            for k in 0..bh {
                c.dh[k] += dy[r0 * h + k];
            }
            if lstm {
                self.lstm_step_backward(p, c_gain, c_bias, c, s, b);
            } else {
                self.gru_step_backward(c, s, b);
            }
            // Biases: every gate gradient reaches both biases, but GRU's b_hn,
            // which sits inside the reset gate.
            for rr in 0..b {
                for k in 0..gh {
                    gb.b_ih[k] += c.da[rr * gh + k];
                    gb.b_hh[k] += c.dah[rr * gh + k];
                }
            }
            c.dax[r0 * gh..(r0 + b) * gh].copy_from_slice(&c.da[..b * gh]);
            // Through the hidden projection's LayerNorm, then to h_{s-1}.
            let rows = r0 * gh..(r0 + b) * gh;
            layer_norm::backward(
                MatRef::new(&c.dah[..b * gh], b, gh),
                &c.xhat_h[rows.clone()],
                &c.rstd_h[r0..r0 + b],
                p.hh_gain,
                &mut c.dhp[rows.clone()],
                false,
                NormGrads {
                    gain: hh_gain,
                    bias: hh_bias,
                },
            );
            sgemm(
                1.0,
                MatRef::new(&c.dhp[rows], b, gh),
                MatRef::new(p.base.w_hh, gh, h),
                0.0,
                MatMut::new(&mut c.dh, b, h),
            );
            if !lstm {
                // GRU's h_t = ... + z h_{t-1}: the direct path.
                for k in 0..bh {
                    c.dh[k] += c.tmp[k];
                }
            }
            // A stream that started over at this step took nothing from before.
            let keep_s = keep.map(|k| &k[r0..r0 + b]);
            reset_rows(&mut c.dh[..bh], keep_s, h);
            if lstm {
                reset_rows(&mut c.dc[..bh], keep_s, h);
            }
        }
        if let Some(d) = dh0 {
            d[..bh].copy_from_slice(&c.dh[..bh]);
        }
        if let Some(d) = dc0 {
            if lstm {
                d[..bh].copy_from_slice(&c.dc[..bh]);
            }
        }
        // Whole-block weight gradients: dW_hh += dHPᵀ · h_prev.
        sgemm(
            1.0,
            MatRef::new(&c.dhp, n, gh).t(),
            MatRef::new(&c.hprev, n, h),
            1.0,
            MatMut::new(gb.w_hh, gh, h),
        );
        // Through the input projection's LayerNorm (into `xp`), then
        // dW_ih += dXPᵀ · x and dx = dXP · W_ih.
        layer_norm::backward(
            MatRef::new(&c.dax[..n * gh], n, gh),
            &c.xhat_x,
            &c.rstd_x,
            p.ih_gain,
            &mut c.xp,
            false,
            NormGrads {
                gain: ih_gain,
                bias: ih_bias,
            },
        );
        sgemm(
            1.0,
            MatRef::new(&c.xp, n, gh).t(),
            MatRef::new(x, n, i),
            1.0,
            MatMut::new(gb.w_ih, gh, i),
        );
        if let Some(dx) = dx {
            sgemm(
                1.0,
                MatRef::new(&c.xp, n, gh),
                MatRef::new(p.base.w_ih, gh, i),
                0.0,
                MatMut::new(dx, n, i),
            );
        }
    }

    /// LSTM step `s` backward: from `dh` (w.r.t. `h_s`) and `dc` (w.r.t. `c_s`
    /// from later steps), leaves the gate gradients in `da` and `dah` (the
    /// same for LSTM) and the gradient w.r.t. `c_{s-1}` in `dc`.
    fn lstm_step_backward(
        &self,
        p: LnParams<'_>,
        c_gain: &mut [f32],
        c_bias: &mut [f32],
        c: &mut LnCache,
        s: usize,
        b: usize,
    ) {
        let (h, gh) = (self.hidden_size, self.gate_rows());
        let r0 = s * b;
        // h = o ⊙ tanh(LN(c)): the output gate and d LN(c) (into `tmp`).
        for rr in 0..b {
            let row = r0 + rr;
            for j in 0..h {
                let (k, d) = (row * h + j, c.dh[rr * h + j]);
                let (o, tc) = (c.gates[row * gh + 3 * h + j], c.tc[k]);
                (c.da[rr * gh + 3 * h + j], c.tmp[rr * h + j]) = lstm::output_backward(o, tc, d);
            }
        }
        let cells = r0 * h..(r0 + b) * h;
        layer_norm::backward(
            MatRef::new(&c.tmp[..b * h], b, h),
            &c.xhat_c[cells.clone()],
            &c.rstd_c[r0..r0 + b],
            p.c_gain,
            &mut c.dc[..b * h],
            true,
            NormGrads {
                gain: c_gain,
                bias: c_bias,
            },
        );
        // c = f ⊙ c_prev + i ⊙ g.
        for rr in 0..b {
            let row = r0 + rr;
            let gates = &c.gates[row * gh..(row + 1) * gh];
            for j in 0..h {
                let unit = lstm::Gates {
                    i: gates[j],
                    f: gates[h + j],
                    g: gates[2 * h + j],
                    o: gates[3 * h + j],
                };
                let dc = c.dc[rr * h + j];
                let ([d_i, d_f, d_g], dc_prev) =
                    lstm::cell_backward(unit, c.cprev[row * h + j], dc);
                let da = &mut c.da[rr * gh..(rr + 1) * gh];
                (da[j], da[h + j], da[2 * h + j]) = (d_i, d_f, d_g);
                c.dc[rr * h + j] = dc_prev;
            }
        }
        let n = b * gh;
        c.dah[..n].copy_from_slice(&c.da[..n]);
    }

    /// GRU step `s` backward: from `dh` (w.r.t. `h_s`), leaves the input-side
    /// gate gradients in `da`, the hidden-side ones in `dah`, and the direct
    /// gradient w.r.t. `h_{s-1}` (through `z`) in `tmp`.
    fn gru_step_backward(&self, c: &mut LnCache, s: usize, b: usize) {
        let (h, gh) = (self.hidden_size, self.gate_rows());
        let r0 = s * b;
        for rr in 0..b {
            let row = r0 + rr;
            for j in 0..h {
                let g = &c.gates[row * gh..(row + 1) * gh];
                let unit = gru::Unit {
                    r: g[j],
                    z: g[h + j],
                    n: g[2 * h + j],
                    h: 0.0, // not read by the backward
                };
                let (d, hp, hn) = (c.dh[rr * h + j], c.hprev[row * h + j], c.hn[row * h + j]);
                let gru::UnitGrad {
                    d_x: [dar, daz, dan],
                    d_s,
                    d_h_prev,
                } = gru::backward(unit, hp, hn, d);
                let (da, dah) = (
                    &mut c.da[rr * gh..(rr + 1) * gh],
                    &mut c.dah[rr * gh..(rr + 1) * gh],
                );
                (da[j], da[h + j], da[2 * h + j]) = (dar, daz, dan);
                (dah[j], dah[h + j], dah[2 * h + j]) = (d_s[0], d_s[1], d_s[2]);
                c.tmp[rr * h + j] = d_h_prev;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, random_vec};
    use recurrent_kernels::Rng;

    /// Sizes and random values for one gradient check.
    struct Case {
        layer: LnRecurrentLayer,
        t: usize,
        b: usize,
        /// w_ih, w_hh, b_ih, b_hh, ih_gain, ih_bias, hh_gain, hh_bias, c_gain, c_bias
        params: Vec<Vec<f32>>,
        x: Vec<f32>,
        h0: Vec<f32>,
        c0: Vec<f32>,
        ry: Vec<f32>,
        rh: Vec<f32>,
        rc: Vec<f32>,
        /// Stream 1 starts a new document at step 1.
        keep: Vec<f32>,
    }

    impl Case {
        fn new(cell: CellKind, seed: u64) -> Case {
            let (t, b, i, h) = (3, 2, 3, 4);
            let layer = LnRecurrentLayer {
                cell,
                input_size: i,
                hidden_size: h,
            };
            let gh = layer.gate_rows();
            let ch = if cell == CellKind::Lstm { h } else { 0 };
            let mut rng = Rng::new(seed);
            let mut v = |n| random_vec(&mut rng, n);
            let params = [gh * i, gh * h, gh, gh, gh, gh, gh, gh, ch, ch]
                .iter()
                .map(|&n| v(n))
                .collect();
            Case {
                layer,
                t,
                b,
                params,
                x: v(t * b * i),
                h0: v(b * h),
                c0: v(b * h),
                ry: v(t * b * h),
                rh: v(b * h),
                rc: v(b * h),
                keep: (0..t * b)
                    .map(|k| if k == b + 1 { 0.0 } else { 1.0 })
                    .collect(),
            }
        }

        fn p<'a>(&self, q: &'a [Vec<f32>]) -> LnParams<'a> {
            LnParams {
                base: LayerParams {
                    w_ih: &q[0],
                    w_hh: &q[1],
                    b_ih: &q[2],
                    b_hh: &q[3],
                },
                ih_gain: &q[4],
                ih_bias: &q[5],
                hh_gain: &q[6],
                hh_bias: &q[7],
                c_gain: &q[8],
                c_bias: &q[9],
            }
        }

        /// loss = Σ y ⊙ ry + Σ h_T ⊙ rh (+ Σ c_T ⊙ rc).
        fn loss(&self, q: &[Vec<f32>], x: &[f32], h0: &[f32], c0: &[f32]) -> f64 {
            let mut cache = LnCache::default();
            let keep = Some(&self.keep[..]);
            self.layer.forward(
                self.p(q),
                x,
                Block::new(self.t, self.b, h0, c0).with_keep(keep),
                &mut cache,
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

    fn gradcheck(cell: CellKind) {
        let k = Case::new(cell, 5 + cell as u64);
        let lstm = cell == CellKind::Lstm;
        let mut cache = LnCache::default();
        let p = k.p(&k.params);
        let keep = Some(&k.keep[..]);
        k.layer.forward(
            p,
            &k.x,
            Block::new(k.t, k.b, &k.h0, &k.c0).with_keep(keep),
            &mut cache,
        );
        let mut grads: Vec<Vec<f32>> = k.params.iter().map(|v| vec![0.0; v.len()]).collect();
        let (mut dx, mut dh0, mut dc0) = (
            vec![0.0; k.x.len()],
            vec![0.0; k.h0.len()],
            vec![0.0; k.c0.len()],
        );
        {
            let [w_ih, w_hh, b_ih, b_hh, ih_gain, ih_bias, hh_gain, hh_bias, c_gain, c_bias] =
                &mut grads[..]
            else {
                unreachable!()
            };
            let g = LnGrads {
                base: LayerGrads {
                    w_ih,
                    w_hh,
                    b_ih,
                    b_hh,
                },
                ih_gain,
                ih_bias,
                hh_gain,
                hh_bias,
                c_gain,
                c_bias,
            };
            k.layer.backward(
                p,
                g,
                &k.x,
                Upstream {
                    dy: &k.ry,
                    dh_n: Some(&k.rh),
                    dc_n: lstm.then_some(&k.rc[..]),
                    keep,
                },
                &mut cache,
                Downstream {
                    dx: Some(&mut dx),
                    dh0: Some(&mut dh0),
                    dc0: Some(&mut dc0),
                },
            );
        }
        let names = [
            "w_ih", "w_hh", "b_ih", "b_hh", "ih_gain", "ih_bias", "hh_gain", "hh_bias", "c_gain",
            "c_bias",
        ];
        for (q, name) in names.iter().enumerate() {
            check(&format!("{cell} {name}"), &k.params[q], &grads[q], |v| {
                let mut params = k.params.clone();
                params[q] = v.to_vec();
                k.loss(&params, &k.x, &k.h0, &k.c0)
            });
        }
        check(&format!("{cell} x"), &k.x, &dx, |v| {
            k.loss(&k.params, v, &k.h0, &k.c0)
        });
        check(&format!("{cell} h0"), &k.h0, &dh0, |v| {
            k.loss(&k.params, &k.x, v, &k.c0)
        });
        if lstm {
            check(&format!("{cell} c0"), &k.c0, &dc0, |v| {
                k.loss(&k.params, &k.x, &k.h0, v)
            });
        }
    }

    #[test]
    fn lstm_gradients_match_finite_differences() {
        gradcheck(CellKind::Lstm);
    }

    #[test]
    fn gru_gradients_match_finite_differences() {
        gradcheck(CellKind::Gru);
    }

    #[test]
    fn outputs_do_not_depend_on_the_scale_of_the_weights() {
        // LayerNorm makes each projection scale-free: multiplying W_ih and
        // W_hh by 100 (a diverging plain cell) leaves the outputs unchanged.
        for cell in [CellKind::Lstm, CellKind::Gru] {
            let k = Case::new(cell, 9);
            let mut big = k.params.clone();
            for w in &mut big[..2] {
                w.iter_mut().for_each(|v| *v *= 100.0);
            }
            let run = |q: &[Vec<f32>]| {
                let mut cache = LnCache::default();
                k.layer
                    .forward(k.p(q), &k.x, Block::new(k.t, k.b, &k.h0, &k.c0), &mut cache);
                cache.output(k.layer.hidden_size).to_vec()
            };
            for (a, b) in run(&k.params).iter().zip(run(&big)) {
                assert!((a - b).abs() < 1e-3, "{cell}: {a} vs {b}");
            }
        }
    }
}
