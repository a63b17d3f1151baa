//! The LSTM cell (PyTorch `nn.LSTM`), one unit at a time: forward and
//! backward side by side.
//!
//! Per unit `j` of `H`, from the four gate pre-activations `a = (a_i, a_f,
//! a_g, a_o)` (row `[4H]` of the gate sums, blocks `i f g o`, each `[H]`) and
//! the previous cell state `c_prev`:
//!
//! ```text
//! i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
//! c = f·c_prev + i·g
//! h = o·tanh(c)
//! ```
//!
//! Every caller (the training layer, the layer-normalized layer, the packed
//! inference step) computes a unit through these functions, so the
//! operations, their order and the activation functions are the same
//! everywhere: the same sums give the same bits on every path (the paths'
//! products may round the sums differently). The layer-normalized LSTM runs
//! [`gates`] and [`cell`], normalizes `c`, then [`output`].

use recurrent_kernels::activation::{dsigmoid, dtanh, sigmoid, tanh};
use recurrent_kernels::multiversion;

use super::{blocks, blocks_mut, row, row_mut};

/// The activated gates of one unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gates {
    /// Input gate `σ(a_i)`.
    pub i: f32,
    /// Forget gate `σ(a_f)`.
    pub f: f32,
    /// Candidate `tanh(a_g)`.
    pub g: f32,
    /// Output gate `σ(a_o)`.
    pub o: f32,
}

/// `i = σ(a_i)`, `f = σ(a_f)`, `g = tanh(a_g)`, `o = σ(a_o)`.
#[inline(always)]
pub fn gates(a_i: f32, a_f: f32, a_g: f32, a_o: f32) -> Gates {
    Gates {
        i: sigmoid(a_i),
        f: sigmoid(a_f),
        g: tanh(a_g),
        o: sigmoid(a_o),
    }
}

/// `c = f·c_prev + i·g`.
#[inline(always)]
pub fn cell(gates: Gates, c_prev: f32) -> f32 {
    gates.f * c_prev + gates.i * gates.g
}

/// `h = o·tanh(c)`: returns `(tanh(c), h)` (`c` is `LN(c)` in the
/// layer-normalized cell).
#[inline(always)]
pub fn output(o: f32, c: f32) -> (f32, f32) {
    let tc = tanh(c);
    (tc, o * tc)
}

/// One unit's forward: everything the backward needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Unit {
    /// The activated gates.
    pub gates: Gates,
    /// The new cell state `c`.
    pub c: f32,
    /// `tanh(c)`.
    pub tanh_c: f32,
    /// The output `h`.
    pub h: f32,
}

/// One unit's forward from its pre-activations `a_i a_f a_g a_o` and `c_prev`.
///
/// ```
/// use recurrent_nn::cell::lstm;
///
/// let u = lstm::forward(0.5, 2.0, -0.3, 1.0, 0.7);
/// assert_eq!(u.c, u.gates.f * 0.7 + u.gates.i * u.gates.g);
/// assert_eq!(u.h, u.gates.o * u.tanh_c);
/// // The backward from dh = 1, nothing from later steps.
/// let (d_pre, dc_prev) = lstm::backward(u.gates, u.tanh_c, 0.7, 1.0, 0.0);
/// assert!(d_pre[1] > 0.0 && dc_prev > 0.0); // a larger forget gate or c_prev raises h
/// ```
#[inline(always)]
pub fn forward(a_i: f32, a_f: f32, a_g: f32, a_o: f32, c_prev: f32) -> Unit {
    let gates = gates(a_i, a_f, a_g, a_o);
    let c = cell(gates, c_prev);
    let (tanh_c, h) = output(gates.o, c);
    Unit {
        gates,
        c,
        tanh_c,
        h,
    }
}

/// One unit's backward: `dh` w.r.t. `h`, `dc` w.r.t. `c` from later steps.
/// Returns the pre-activation gradients `[d a_i, d a_f, d a_g, d a_o]` and
/// the gradient w.r.t. `c_prev`.
#[inline(always)]
pub fn backward(gates: Gates, tanh_c: f32, c_prev: f32, dh: f32, dc: f32) -> ([f32; 4], f32) {
    let (d_o, dc_from_h) = output_backward(gates.o, tanh_c, dh);
    let ([d_i, d_f, d_g], dc_prev) = cell_backward(gates, c_prev, dc + dc_from_h);
    ([d_i, d_f, d_g, d_o], dc_prev)
}

/// Backward of [`output`], `h = o·tanh_c`, from `dh`: the output gate's
/// pre-activation gradient `d a_o` and the gradient reaching `tanh`'s input
/// (`c`, or `LN(c)` in the layer-normalized LSTM).
#[inline(always)]
pub fn output_backward(o: f32, tanh_c: f32, dh: f32) -> (f32, f32) {
    (dh * tanh_c * dsigmoid(o), dh * o * dtanh(tanh_c))
}

/// Backward of [`cell`], `c = f·c_prev + i·g`, from `dc` (every gradient
/// w.r.t. `c`): `[d a_i, d a_f, d a_g]` and the gradient w.r.t. `c_prev`.
#[inline(always)]
pub fn cell_backward(gates: Gates, c_prev: f32, dc: f32) -> ([f32; 3], f32) {
    let Gates { i, f, g, .. } = gates;
    let d_i = dc * g * dsigmoid(i);
    let d_f = dc * c_prev * dsigmoid(f);
    let d_g = dc * i * dtanh(g);
    ([d_i, d_f, d_g], dc * f)
}

multiversion! {
    /// One training step after the GEMMs, `b` rows of `h` units: `gates[B, 4H]`
    /// holds the pre-activations `i f g o` and is overwritten with their
    /// activations; writes `c`, `tanh(c)` and `h` (`[B, H]`, from `cp`).
    pub fn forward_rows(
        gates: &mut [f32],
        cp: &[f32],
        c: &mut [f32],
        tanh_c: &mut [f32],
        h_out: &mut [f32],
        b: usize,
        h: usize,
    ) => forward_rows_body
}

#[inline(always)]
fn forward_rows_body(
    gates: &mut [f32],
    cp: &[f32],
    c: &mut [f32],
    tanh_c: &mut [f32],
    h_out: &mut [f32],
    b: usize,
    h: usize,
) {
    for r in 0..b {
        let [gi, gf, gg, go] = blocks_mut::<4>(row_mut(gates, r, 4 * h), h);
        forward_row(
            gi,
            gf,
            gg,
            go,
            row(cp, r, h),
            row_mut(c, r, h),
            row_mut(tanh_c, r, h),
            row_mut(h_out, r, h),
        );
    }
}

/// One batch row of [`forward_rows`], all slices of length `H`. Separate
/// `&mut` arguments (not an array of them) tell LLVM the gate blocks do not
/// alias (kept when inlined), and the re-slicing to one length drops the
/// bounds checks, so it vectorizes without run-time overlap checks. (Hence
/// eight slice arguments: a struct of them would lose that.)
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn forward_row(
    gi: &mut [f32],
    gf: &mut [f32],
    gg: &mut [f32],
    go: &mut [f32],
    cp: &[f32],
    cn: &mut [f32],
    tn: &mut [f32],
    hn: &mut [f32],
) {
    let h = gi.len();
    let (gf, gg, go, cp, cn, tn, hn) = (
        &mut gf[..h],
        &mut gg[..h],
        &mut go[..h],
        &cp[..h],
        &mut cn[..h],
        &mut tn[..h],
        &mut hn[..h],
    );
    for j in 0..h {
        let u = forward(gi[j], gf[j], gg[j], go[j], cp[j]);
        (gi[j], gf[j], gg[j], go[j]) = (u.gates.i, u.gates.f, u.gates.g, u.gates.o);
        (cn[j], tn[j], hn[j]) = (u.c, u.tanh_c, u.h);
    }
}

multiversion! {
    /// Backward of [`forward_rows`]: from `dh` (w.r.t. `h_t`) and `dc` (w.r.t.
    /// `c_t` from later steps) writes the pre-activation gradients `dg[B, 4H]`
    /// and leaves in `dc` the gradient w.r.t. `c_{t-1}`. `gates` holds the
    /// activations; `tanh_c`, `cp`, `dh`, `dc` are `[B, H]` (`B` is
    /// `dh.len() / h`).
    pub fn backward_rows(
        gates: &[f32],
        tanh_c: &[f32],
        cp: &[f32],
        dh: &[f32],
        dc: &mut [f32],
        dg: &mut [f32],
        h: usize,
    ) => backward_rows_body
}

#[inline(always)]
fn backward_rows_body(
    gates: &[f32],
    tanh_c: &[f32],
    cp: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    dg: &mut [f32],
    h: usize,
) {
    let b = dh.len() / h.max(1);
    for r in 0..b {
        let [gi, gf, gg, go] = blocks::<4>(row(gates, r, 4 * h), h);
        let [di, df, dgg, dgo] = blocks_mut::<4>(row_mut(dg, r, 4 * h), h);
        let (tanh_c, cp, dh) = (row(tanh_c, r, h), row(cp, r, h), row(dh, r, h));
        let dc = row_mut(dc, r, h);
        for j in 0..h {
            let g = Gates {
                i: gi[j],
                f: gf[j],
                g: gg[j],
                o: go[j],
            };
            let (d, dcp) = backward(g, tanh_c[j], cp[j], dh[j], dc[j]);
            (di[j], df[j], dgg[j], dgo[j]) = (d[0], d[1], d[2], d[3]);
            dc[j] = dcp;
        }
    }
}

multiversion! {
    /// The inference step's update of some units: from the pre-activations
    /// `[i, f, g, o]` (each as long as `c`), `c` in place and `h` written;
    /// nothing kept for a backward pass.
    pub fn forward_in_place(gates: [&[f32]; 4], c: &mut [f32], h: &mut [f32]) => forward_in_place_body
}

#[inline(always)]
fn forward_in_place_body([gi, gf, gg, go]: [&[f32]; 4], c: &mut [f32], h: &mut [f32]) {
    let n = c.len();
    let (gi, gf, gg, go, h) = (&gi[..n], &gf[..n], &gg[..n], &go[..n], &mut h[..n]);
    for j in 0..n {
        let u = forward(gi[j], gf[j], gg[j], go[j], c[j]);
        c[j] = u.c;
        h[j] = u.h;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backward_matches_finite_differences() {
        let (a, cp, dh, dc) = ([0.3, -0.7, 0.2, 1.1], 0.4f32, 0.9f32, -0.3f32);
        // loss = dh·h + dc·c
        let loss = |a: [f32; 4], cp: f32| {
            let u = forward(a[0], a[1], a[2], a[3], cp);
            (dh * u.h + dc * u.c) as f64
        };
        let u = forward(a[0], a[1], a[2], a[3], cp);
        let (da, dcp) = backward(u.gates, u.tanh_c, cp, dh, dc);
        let eps = 1e-3;
        for k in 0..4 {
            let (mut up, mut dn) = (a, a);
            up[k] += eps;
            dn[k] -= eps;
            let num = (loss(up, cp) - loss(dn, cp)) / (2.0 * eps as f64);
            assert!(
                (num - da[k] as f64).abs() < 1e-3,
                "gate {k}: {num} vs {}",
                da[k]
            );
        }
        let num = (loss(a, cp + eps) - loss(a, cp - eps)) / (2.0 * eps as f64);
        assert!((num - dcp as f64).abs() < 1e-3);
    }
}
