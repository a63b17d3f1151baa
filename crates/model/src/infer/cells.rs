//! Glue between the packed step and the cells of `recurrent_nn::cell` for
//! layer-normalized layers, whose sums arrive as whole normalized rows with
//! the biases apart: these loops add them up as the training forward does
//! (`recurrent_nn::ln_recurrent`) and run the same cell functions. The plain
//! cells' unit loops are `recurrent_nn::cell`'s own
//! (`lstm::forward_in_place`, `gru::forward_units`, `rnn::tanh_forward_units`).

use recurrent_kernels::multiversion;
use recurrent_nn::cell::{gru, lstm};

multiversion! {
    /// Layer-normalized LSTM, after both projections are normalized: for
    /// whole rows `ax`, `ah` (`[4H]`, `i f g o`) and the biases, the
    /// pre-activation is `ax + ah + (b_ih + b_hh)`; writes `c = σ(f) c +
    /// σ(i) tanh(g)` (`[H]`, in place) and leaves `σ(o)` in `ax`'s `o` rows.
    pub(super) fn ln_lstm_cell(ax: &mut [f32], ah: &[f32], bi: &[f32], bh: &[f32], c: &mut [f32]) => ln_lstm_cell_body
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
    pub(super) fn ln_lstm_output(o: &[f32], h: &mut [f32]) => ln_lstm_output_body
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
    pub(super) fn ln_gru(
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
