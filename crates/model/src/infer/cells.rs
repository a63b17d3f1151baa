//! The cell updates of one generation step, applied to one panel of gate sums
//! right after its product (while the sums are still in L1).
//!
//! The formulas are those of `recurrent_nn::recurrent`'s forward step, with
//! the same activation functions and the same operation order, so the only
//! difference from [`crate::LanguageModel::step`] is the rounding of the sums.

use recurrent_kernels::activation::{sigmoid, tanh};
use recurrent_kernels::multiversion;

multiversion! {
    /// LSTM: from the pre-activations of the `i f g o` gates of some units,
    /// `c = σ(f) ⊙ c + σ(i) ⊙ tanh(g)` (in place) and `h = σ(o) ⊙ tanh(c)`.
    /// All slices have the same length (the units).
    pub(super) fn lstm(gates: [&[f32]; 4], c: &mut [f32], h: &mut [f32]) => lstm_body
}

#[inline(always)]
fn lstm_body([gi, gf, gg, go]: [&[f32]; 4], c: &mut [f32], h: &mut [f32]) {
    let n = c.len();
    let (gi, gf, gg, go, h) = (&gi[..n], &gf[..n], &gg[..n], &go[..n], &mut h[..n]);
    for j in 0..n {
        let i = sigmoid(gi[j]);
        let f = sigmoid(gf[j]);
        let g = tanh(gg[j]);
        let o = sigmoid(go[j]);
        let cv = f * c[j] + i * g;
        c[j] = cv;
        h[j] = o * tanh(cv);
    }
}

multiversion! {
    /// GRU: from the input-side sums `x` and hidden-side sums `hs` of the
    /// `r z n` gates (biases included), `r = σ(x_r + hs_r)`, `z = σ(x_z + hs_z)`,
    /// `n = tanh(x_n + r ⊙ hs_n)`, `h = (1 - z) ⊙ n + z ⊙ h_prev`.
    pub(super) fn gru(x: [&[f32]; 3], hs: [&[f32]; 3], h_prev: &[f32], h: &mut [f32]) => gru_body
}

#[inline(always)]
fn gru_body([xr, xz, xn]: [&[f32]; 3], [hr, hz, hn]: [&[f32]; 3], hp: &[f32], h: &mut [f32]) {
    let n = h.len();
    let (xr, xz, xn, hr, hz, hn, hp) = (
        &xr[..n],
        &xz[..n],
        &xn[..n],
        &hr[..n],
        &hz[..n],
        &hn[..n],
        &hp[..n],
    );
    for j in 0..n {
        let r = sigmoid(xr[j] + hr[j]);
        let z = sigmoid(xz[j] + hz[j]);
        let nv = tanh(xn[j] + r * hn[j]);
        h[j] = (1.0 - z) * nv + z * hp[j];
    }
}

multiversion! {
    /// Tanh RNN: `h = tanh(sums)`, equal lengths.
    pub(super) fn rnn_tanh(sums: &[f32], h: &mut [f32]) => rnn_tanh_body
}

#[inline(always)]
fn rnn_tanh_body(sums: &[f32], h: &mut [f32]) {
    for (o, &s) in h.iter_mut().zip(sums) {
        *o = tanh(s);
    }
}

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
        let (ig, fg, gg) = (
            sigmoid(pre(ax, j)),
            sigmoid(pre(ax, h + j)),
            tanh(pre(ax, 2 * h + j)),
        );
        ax[3 * h + j] = sigmoid(pre(ax, 3 * h + j));
        c[j] = fg * c[j] + ig * gg;
    }
}

multiversion! {
    /// Layer-normalized LSTM output: `h = σ(o) ⊙ tanh(h)`, `h` holding `LN(c)`.
    pub(super) fn ln_lstm_output(o: &[f32], h: &mut [f32]) => ln_lstm_output_body
}

#[inline(always)]
fn ln_lstm_output_body(o: &[f32], h: &mut [f32]) {
    for (v, &o) in h.iter_mut().zip(o) {
        *v = o * tanh(*v);
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
    let n = h.len();
    for j in 0..n {
        let r = sigmoid(xr[j] + hr[j] + bir[j] + bhr[j]);
        let z = sigmoid(xz[j] + hz[j] + biz[j] + bhz[j]);
        let nv = tanh(xn[j] + bin[j] + r * (hn[j] + bhn[j]));
        h[j] = (1.0 - z) * nv + z * hp[j];
    }
}

/// ReLU (the ReLU RNN's update and the dense layer's activation), in place.
pub(super) fn relu(v: &mut [f32]) {
    for x in v {
        *x = x.max(0.0);
    }
}
