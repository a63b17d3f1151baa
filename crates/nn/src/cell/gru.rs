//! The GRU cell (PyTorch `nn.GRU`), one unit at a time: forward and backward
//! side by side.
//!
//! Per unit `j` of `H`, from the input-side sums `x = W_ih x_t + b_ih` and the
//! hidden-side sums `s = W_hh h_{t-1} + b_hh` (rows `[3H]`, blocks `r z n`,
//! each `[H]`) and the previous output `h_prev`:
//!
//! ```text
//! r = σ(x_r + s_r)   z = σ(x_z + s_z)
//! n = tanh(x_n + r·s_n)
//! h = (1 - z)·n + z·h_prev
//! ```
//!
//! The hidden-side `n` sum stays apart because `r` multiplies it. [`forward`]
//! takes the `r` and `z` pre-activations already summed, so that the
//! layer-normalized GRU (which sums four terms there) runs the same cell.

use recurrent_kernels::activation::{dsigmoid, dtanh, sigmoid, tanh};
use recurrent_kernels::multiversion;

use super::{blocks, blocks_mut, row, row_mut};

/// One unit's forward: everything the backward needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Unit {
    /// Reset gate `σ(a_r)`.
    pub r: f32,
    /// Update gate `σ(a_z)`.
    pub z: f32,
    /// Candidate `tanh(x_n + r·s_n)`.
    pub n: f32,
    /// The output `h`.
    pub h: f32,
}

/// One unit's forward from the pre-activations `a_r = x_r + s_r`,
/// `a_z = x_z + s_z`, the candidate's two sums `x_n`, `s_n`, and `h_prev`.
#[inline(always)]
pub fn forward(a_r: f32, a_z: f32, x_n: f32, s_n: f32, h_prev: f32) -> Unit {
    let r = sigmoid(a_r);
    let z = sigmoid(a_z);
    let n = tanh(x_n + r * s_n);
    let h = (1.0 - z) * n + z * h_prev;
    Unit { r, z, n, h }
}

/// One unit's backward, `dh` w.r.t. `h`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnitGrad {
    /// Input-side pre-activation gradients `[d x_r, d x_z, d x_n]`.
    pub d_x: [f32; 3],
    /// Hidden-side ones `[d s_r, d s_z, d s_n]` (`d s_n = r · d x_n`).
    pub d_s: [f32; 3],
    /// The direct path into `h_prev`, `z·dh` (the rest goes through `W_hh`).
    pub d_h_prev: f32,
}

/// Backward of [`forward`] from its output `u`, `h_prev`, `s_n` and `dh`.
#[inline(always)]
pub fn backward(u: Unit, h_prev: f32, s_n: f32, dh: f32) -> UnitGrad {
    let Unit { r, z, n, .. } = u;
    // h = (1 - z)·n + z·h_prev, n = tanh(x_n + r·s_n)
    let dn = dh * (1.0 - z) * dtanh(n);
    let dz = dh * (h_prev - n) * dsigmoid(z);
    // r = σ(a_r), reached through r·s_n
    let dr = dn * s_n * dsigmoid(r);
    UnitGrad {
        d_x: [dr, dz, dn],
        d_s: [dr, dz, dn * r],
        d_h_prev: dh * z,
    }
}

multiversion! {
    /// One training step after the GEMMs, `b` rows of `h` units. `gates[B, 3H]`
    /// holds the input-side sums `r z n` and `hh[B, 3H]` the hidden-side ones;
    /// keeps the activated `r z n` in `gates` and `s_n` in `hh_n` (`[B, H]`),
    /// and writes `h_out` from `hp` (`[B, H]`).
    pub fn forward_rows(
        gates: &mut [f32],
        hh: &[f32],
        hp: &[f32],
        hh_n: &mut [f32],
        h_out: &mut [f32],
        b: usize,
        h: usize,
    ) => forward_rows_body
}

#[inline(always)]
fn forward_rows_body(
    gates: &mut [f32],
    hh: &[f32],
    hp: &[f32],
    hh_n: &mut [f32],
    h_out: &mut [f32],
    b: usize,
    h: usize,
) {
    for r in 0..b {
        let [gr, gz, gn] = blocks_mut::<3>(row_mut(gates, r, 3 * h), h);
        let hh = blocks::<3>(row(hh, r, 3 * h), h);
        let out = (row_mut(hh_n, r, h), row_mut(h_out, r, h));
        forward_row(gr, gz, gn, hh, row(hp, r, h), out.0, out.1);
    }
}

/// One batch row of [`forward_rows`], all slices of length `H` (separate
/// `&mut` arguments, not an array of them, and one length: LLVM then knows
/// they do not alias and vectorizes without run-time checks).
#[inline(always)]
fn forward_row(
    gr: &mut [f32],
    gz: &mut [f32],
    gn: &mut [f32],
    [hr, hz, hnb]: [&[f32]; 3],
    hp: &[f32],
    keep_n: &mut [f32],
    out: &mut [f32],
) {
    let h = gr.len();
    let (gz, gn, hr, hz, hnb) = (&mut gz[..h], &mut gn[..h], &hr[..h], &hz[..h], &hnb[..h]);
    let (hp, keep_n, out) = (&hp[..h], &mut keep_n[..h], &mut out[..h]);
    for j in 0..h {
        let u = forward(gr[j] + hr[j], gz[j] + hz[j], gn[j], hnb[j], hp[j]);
        (gr[j], gz[j], gn[j]) = (u.r, u.z, u.n);
        keep_n[j] = hnb[j];
        out[j] = u.h;
    }
}

multiversion! {
    // Separate slice arguments keep LLVM's no-alias facts in this hot loop
    // (see `lstm::forward_row`); a struct of them would lose them.
    #[allow(clippy::too_many_arguments)]
    /// Backward of [`forward_rows`]: the hidden-side pre-activation gradients
    /// `dg_hh` (whose `n` block is scaled by `r`), the input-side ones `dg_ih`
    /// (`[B, 3H]`), and the direct path `dh_direct = z ⊙ dh` into `h_{t-1}`.
    pub fn backward_rows(
        gates: &[f32],
        hp: &[f32],
        hh_n: &[f32],
        dh: &[f32],
        dg_hh: &mut [f32],
        dg_ih: &mut [f32],
        dh_direct: &mut [f32],
        b: usize,
        h: usize,
    ) => backward_rows_body
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_rows_body(
    gates: &[f32],
    hp: &[f32],
    hh_n: &[f32],
    dh: &[f32],
    dg_hh: &mut [f32],
    dg_ih: &mut [f32],
    dh_direct: &mut [f32],
    b: usize,
    h: usize,
) {
    for r in 0..b {
        let [gr, gz, gn] = blocks::<3>(row(gates, r, 3 * h), h);
        let [hdr, hdz, hdn] = blocks_mut::<3>(row_mut(dg_hh, r, 3 * h), h);
        let [idr, idz, idn] = blocks_mut::<3>(row_mut(dg_ih, r, 3 * h), h);
        let (hp, hh_n, dh) = (row(hp, r, h), row(hh_n, r, h), row(dh, r, h));
        let direct = row_mut(dh_direct, r, h);
        for j in 0..h {
            let u = Unit {
                r: gr[j],
                z: gz[j],
                n: gn[j],
                h: 0.0,
            };
            let d = backward(u, hp[j], hh_n[j], dh[j]);
            (idr[j], idz[j], idn[j]) = (d.d_x[0], d.d_x[1], d.d_x[2]);
            (hdr[j], hdz[j], hdn[j]) = (d.d_s[0], d.d_s[1], d.d_s[2]);
            direct[j] = d.d_h_prev;
        }
    }
}

multiversion! {
    /// The inference step's update of some units: from the input-side sums
    /// `x` and hidden-side sums `s` of the `r z n` gates (biases included,
    /// each as long as `h`), writes `h` from `h_prev`.
    pub fn forward_units(x: [&[f32]; 3], s: [&[f32]; 3], h_prev: &[f32], h: &mut [f32]) => forward_units_body
}

#[inline(always)]
fn forward_units_body(
    [xr, xz, xn]: [&[f32]; 3],
    [sr, sz, sn]: [&[f32]; 3],
    hp: &[f32],
    h: &mut [f32],
) {
    let n = h.len();
    let (xr, xz, xn, sr, sz, sn, hp) = (
        &xr[..n],
        &xz[..n],
        &xn[..n],
        &sr[..n],
        &sz[..n],
        &sn[..n],
        &hp[..n],
    );
    for j in 0..n {
        h[j] = forward(xr[j] + sr[j], xz[j] + sz[j], xn[j], sn[j], hp[j]).h;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backward_matches_finite_differences() {
        let (x, s, hp, dh) = ([0.3f32, -0.7, 0.2], [0.5f32, 0.1, -0.8], 0.4f32, 0.9f32);
        let loss = |x: [f32; 3], s: [f32; 3], hp: f32| {
            (dh * forward(x[0] + s[0], x[1] + s[1], x[2], s[2], hp).h) as f64
        };
        let u = forward(x[0] + s[0], x[1] + s[1], x[2], s[2], hp);
        let d = backward(u, hp, s[2], dh);
        let eps = 1e-3;
        let num = |f: &dyn Fn(f32) -> f64| (f(eps) - f(-eps)) / (2.0 * eps as f64);
        for k in 0..3 {
            let dx = num(&|e| {
                let mut v = x;
                v[k] += e;
                loss(v, s, hp)
            });
            let ds = num(&|e| {
                let mut v = s;
                v[k] += e;
                loss(x, v, hp)
            });
            assert!((dx - d.d_x[k] as f64).abs() < 1e-3, "x {k}");
            assert!((ds - d.d_s[k] as f64).abs() < 1e-3, "s {k}");
        }
        let dhp = num(&|e| loss(x, s, hp + e));
        assert!((dhp - d.d_h_prev as f64).abs() < 1e-3);
    }
}
