//! Layer-normalized layers in the packed step. Their norms need whole rows
//! of sums, so the panels only compute the two projections and a pass per row
//! ([`StepModel::ln_update`]) normalizes them and runs the cell. The loops
//! below add the biases as the training forward does
//! (`recurrent_nn::ln_recurrent`) and call the same cell functions; the plain
//! cells' unit loops are `recurrent_nn::cell`'s own (`lstm::forward_in_place`,
//! `gru::forward_units`, `rnn::tanh_forward_units`).

use std::ops::Range;

use recurrent_kernels::multiversion;
use recurrent_nn::cell::{gru, lstm};
use recurrent_nn::layer_norm;

use super::pack::InputSide;
use super::workspace::Bufs;
use super::StepModel;
use crate::CellKind;

impl StepModel {
    /// A layer-normalized layer's norms and cell for `rows`, after its
    /// products: the same formulas and operation order as
    /// `recurrent_nn::ln_recurrent`'s forward step (nothing for plain layers).
    ///
    /// # Safety
    /// As [`StepModel::layer`], with every panel of these rows done.
    pub(super) unsafe fn ln_update(&self, k: usize, bufs: &Bufs<'_>, rows: Range<usize>) {
        let (lay, cfg) = (&self.layers[k], &self.config);
        let Some(ln) = &lay.ln else { return };
        let (b, h) = (bufs.batch, cfg.layer_hidden(k));
        let gh = lay.gates.gates * h;
        let normalized_input = k == 0 && matches!(self.input, InputSide::Table(_));
        for r in rows {
            let state = cfg.state_range(k, b).start + r * h;
            // SAFETY: row `r` of both sums and of the new state are this
            // task's alone, and every product into them is done (the
            // caller's promise).
            let (ax, ah, h_out) = unsafe {
                (
                    bufs.gates.row(r, 0..gh),
                    bufs.hidden_sums.row(r, 0..gh),
                    bufs.h_new.slice(state..state + h),
                )
            };
            if !normalized_input {
                layer_norm::normalize_row(ax, &ln.ih_gain, &ln.ih_bias);
            }
            layer_norm::normalize_row(ah, &ln.hh_gain, &ln.hh_bias);
            let (bi, bh) = (&ln.b_ih, &ln.b_hh);
            if cfg.cell == CellKind::Gru {
                let hp = &bufs.h_old[state..state + h];
                let g = |v| gru_gates(v, h);
                ln_gru(g(ax), g(ah), g(bi), g(bh), hp, h_out);
                continue;
            }
            // LSTM: c = σ(f) c + σ(i) tanh(g), then h = σ(o) tanh(LN(c)),
            // with σ(o) kept in `ax`'s o rows and LN(c) staged in `h_out`.
            // SAFETY: as above, for row `r` of the cell state.
            let c = unsafe { bufs.c.slice(state..state + h) };
            ln_lstm_cell(ax, ah, bi, bh, c);
            h_out.copy_from_slice(c);
            layer_norm::normalize_row(h_out, &ln.c_gain, &ln.c_bias);
            ln_lstm_output(&ax[3 * h..], h_out);
        }
    }
}

/// The `r z n` rows (`[H]` each) of a GRU layer's `[3H]` row.
fn gru_gates(v: &[f32], h: usize) -> [&[f32]; 3] {
    [&v[..h], &v[h..2 * h], &v[2 * h..3 * h]]
}

multiversion! {
    /// Layer-normalized LSTM, after both projections are normalized: for
    /// whole rows `ax`, `ah` (`[4H]`, `i f g o`) and the biases, the
    /// pre-activation is `ax + ah + (b_ih + b_hh)`; writes `c = σ(f) c +
    /// σ(i) tanh(g)` (`[H]`, in place) and leaves `σ(o)` in `ax`'s `o` rows.
    fn ln_lstm_cell(ax: &mut [f32], ah: &[f32], bi: &[f32], bh: &[f32], c: &mut [f32]) => ln_lstm_cell_body
}

#[inline(always)]
fn ln_lstm_cell_body(ax: &mut [f32], ah: &[f32], bi: &[f32], bh: &[f32], c: &mut [f32]) {
    let h = c.len();
    let (ax, ah, bi, bh) = (&mut ax[..4 * h], &ah[..4 * h], &bi[..4 * h], &bh[..4 * h]);
    let pre = |ax: &[f32], k: usize| ax[k] + ah[k] + (bi[k] + bh[k]);
    for j in 0..h {
        let g = lstm::gates(
            pre(ax, j),
            pre(ax, h + j),
            pre(ax, 2 * h + j),
            pre(ax, 3 * h + j),
        );
        ax[3 * h + j] = g.o;
        c[j] = lstm::cell(g, c[j]);
    }
}

multiversion! {
    /// Layer-normalized LSTM output: `h = σ(o) ⊙ tanh(h)`, `h` holding `LN(c)`.
    fn ln_lstm_output(o: &[f32], h: &mut [f32]) => ln_lstm_output_body
}

#[inline(always)]
fn ln_lstm_output_body(o: &[f32], h: &mut [f32]) {
    for (v, &o) in h.iter_mut().zip(o) {
        *v = lstm::output(o, *v).1;
    }
}

multiversion! {
    /// Layer-normalized GRU after both projections are normalized (`x`, `hs`
    /// per gate `r z n`, with their biases): `r = σ(x_r + hs_r + b_ir + b_hr)`,
    /// `z` likewise, `n = tanh(x_n + b_in + r ⊙ (hs_n + b_hn))`,
    /// `h = (1 - z) ⊙ n + z ⊙ h_prev`.
    fn ln_gru(
        x: [&[f32]; 3],
        hs: [&[f32]; 3],
        bi: [&[f32]; 3],
        bh: [&[f32]; 3],
        h_prev: &[f32],
        h: &mut [f32],
    ) => ln_gru_body
}

#[inline(always)]
fn ln_gru_body(
    [xr, xz, xn]: [&[f32]; 3],
    [hr, hz, hn]: [&[f32]; 3],
    [bir, biz, bin]: [&[f32]; 3],
    [bhr, bhz, bhn]: [&[f32]; 3],
    hp: &[f32],
    h: &mut [f32],
) {
    for j in 0..h.len() {
        h[j] = gru::forward(
            xr[j] + hr[j] + bir[j] + bhr[j],
            xz[j] + hz[j] + biz[j] + bhz[j],
            xn[j] + bin[j],
            hn[j] + bhn[j],
            hp[j],
        )
        .h;
    }
}
