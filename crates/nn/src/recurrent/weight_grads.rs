//! Weight and bias gradients from a block's gate gradients: large products
//! over all `T*B` rows, and column sums for the biases.

use recurrent_kernels::multiversion;
use recurrent_kernels::profile::Phase;
use recurrent_kernels::threads::{parallel_for, threads};
use recurrent_kernels::{sgemm, sgemm_shared_a, MatMut, MatRef, Product, SharedMut};

use super::{CellKind, GateGrads, LayerGrads, RecurrentLayer};

impl RecurrentLayer {
    /// Adds the weight and bias gradients of `n` rows into `g`:
    /// `dW_hh += dG_hhᵀ · h_prev`, `dW_ih += dG_ihᵀ · x`, the biases the
    /// column sums. `parts.dg_ih` is `parts.dg_hh` for every cell but GRU (and
    /// read only for GRU): the other cells pack `dG` once for both products.
    /// `scratch` is any buffer (for the column sums).
    pub fn weight_grads(
        &self,
        g: LayerGrads<'_>,
        x: &[f32],
        parts: GateGrads<'_>,
        n: usize,
        scratch: &mut Vec<f32>,
    ) {
        let GateGrads {
            hprev,
            dg_hh,
            dg_ih,
        } = parts;
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
            b: MatRef::new(hprev, n, h),
            c: MatMut::new(g.w_hh, gh, h),
        };
        let dw_ih = Product {
            b: MatRef::new(x, n, i),
            c: MatMut::new(g.w_ih, gh, i),
        };
        let dg = MatRef::new(dg_hh, n, gh).t();
        sgemm_shared_a(dg, [dw_hh, dw_ih], Some(scratch));
        add_into(g.b_hh, scratch);
        add_into(g.b_ih, scratch);
    }
}

/// `out[j] = Σ_rows m[row, j]` for `m: [rows, cols]`, the columns split among
/// the kernels' threads (each sums its columns in row order, so the result
/// does not depend on the split).
pub(super) fn column_sums(m: &[f32], cols: usize, out: &mut [f32]) {
    let t = threads().min(cols / 64).max(1);
    let shared = SharedMut::new(&mut out[..cols]);
    parallel_for(t, &|i| {
        let (lo, hi) = (cols * i / t, cols * (i + 1) / t);
        // SAFETY: the column ranges of the parts are disjoint.
        let out = unsafe { shared.rows(lo, hi - lo, 1) };
        column_sums_range(m, cols, lo, out);
    });
}

multiversion! {
    /// `out[j] = Σ_rows m[row, lo + j]`.
    pub(super) fn column_sums_range(m: &[f32], cols: usize, lo: usize, out: &mut [f32]) => column_sums_range_body
}

#[inline(always)]
pub(super) fn column_sums_range_body(m: &[f32], cols: usize, lo: usize, out: &mut [f32]) {
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
pub(super) fn add_weight_grad(dw: &mut [f32], dg: &[f32], x: &[f32], width: usize, rows: usize) {
    let gh = dw.len() / width.max(1);
    sgemm(
        1.0,
        MatRef::new(dg, rows, gh).t(),
        MatRef::new(x, rows, width),
        1.0,
        MatMut::new(dw, gh, width),
    );
}

/// `dst += src`, equal lengths.
pub(super) fn add_into(dst: &mut [f32], src: &[f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}
