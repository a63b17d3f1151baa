//! Attention of a decoder query over encoder states (Luong dot and general,
//! Bahdanau additive), batched, with a source mask, as a forward/backward pair.
//!
//! Shapes and layouts (all row-major, `f32`):
//! - query `q: [B, Hq]`, one decoder state per sequence;
//! - keys `K: [B, S, Hk]`, **batch-major**: the `S` encoder states of one sequence
//!   are contiguous, so each sequence's scores and context are one small
//!   matrix-vector product over its own rows;
//! - mask `[B, S]`: `1` where position `s` of sequence `b` is a real token, `0` where
//!   it is padding. Padded positions are skipped, not multiplied by zero: they get
//!   exactly zero weight and exactly zero gradient, and their key values are never
//!   read (so they may hold anything finite);
//! - weights `[B, S]` (the masked softmax of the scores), context `[B, Hk]`.
//!
//! Scores for a valid position `s`:
//! - [`AttentionKind::Dot`]: `q · k_s` (needs `Hq == Hk`);
//! - [`AttentionKind::General`]: `q · (W_a k_s)` with `W_a: [Hq, Hk]`
//!   (`linear_in`), computed as `(q W_a) · k_s` so each step transforms one query
//!   rather than `S` keys;
//! - [`AttentionKind::Additive`]: `v · tanh(W_q q + W_k k_s + b_k)` with
//!   `W_q: [A, Hq]` (`query`), `W_k: [A, Hk]` (`key`), `b_k: [A]` (`key_bias`),
//!   `v: [1, A]`. `W_k k_s + b_k` does not depend on the query: it is computed
//!   once per source batch by [`Attention::project_keys`] (`proj: [B, S, A]`)
//!   and read by every decoder step.
//!
//! Like the other layers, every backward *adds* into its parameter gradients; it
//! also adds into `dkeys` (and `dproj`), because a decoder attends to the same
//! keys at every step.

use std::fmt;
use std::str::FromStr;

use recurrent_kernels::activation::{dtanh, tanh};
use recurrent_kernels::{sgemm, sgemm_bias, MatMut, MatRef};
use serde::{Deserialize, Serialize};

/// How a query is scored against a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttentionKind {
    /// Luong dot: `q · k`.
    #[serde(rename = "dot")]
    Dot,
    /// Luong general (multiplicative): `q · W_a k`.
    #[serde(rename = "general")]
    General,
    /// Bahdanau additive (concat / MLP): `v · tanh(W_q q + W_k k + b_k)`.
    #[serde(rename = "additive")]
    Additive,
}

impl AttentionKind {
    /// Every kind.
    pub const ALL: [AttentionKind; 3] = [Self::Dot, Self::General, Self::Additive];

    /// The name used on the command line and in config.json.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dot => "dot",
            Self::General => "general",
            Self::Additive => "additive",
        }
    }
}

impl fmt::Display for AttentionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AttentionKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "dot" | "luong-dot" => Ok(Self::Dot),
            "general" | "luong" | "luong-general" | "multiplicative" => Ok(Self::General),
            "additive" | "bahdanau" | "mlp" | "concat" => Ok(Self::Additive),
            _ => Err(format!(
                "unknown attention '{s}' (expected dot, general or additive)"
            )),
        }
    }
}

/// The shape of an attention layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attention {
    /// How scores are computed.
    pub kind: AttentionKind,
    /// `Hq`, the width of the decoder query.
    pub query_size: usize,
    /// `Hk`, the width of an encoder state.
    pub key_size: usize,
    /// `A`, the width of the additive scorer's hidden layer (unused otherwise).
    pub attn_size: usize,
}

/// Parameters; the ones a kind does not use are empty slices.
/// General: `linear_in [Hq, Hk]`. Additive: `query [A, Hq]`, `key [A, Hk]`,
/// `key_bias [A]`, `v [A]` (PyTorch stores it as `[1, A]`). Dot: none.
#[derive(Clone, Copy, Default)]
pub struct AttentionParams<'a> {
    /// General: `[Hq, Hk]`.
    pub linear_in: &'a [f32],
    /// Additive: the query projection `[A, Hq]`.
    pub query: &'a [f32],
    /// Additive: the key projection `[A, Hk]`.
    pub key: &'a [f32],
    /// Additive: the key projection's bias `[A]`.
    pub key_bias: &'a [f32],
    /// Additive: the scoring vector `[A]`.
    pub v: &'a [f32],
}

/// What the queries attend over: `len` (`S`) positions per query.
#[derive(Clone, Copy, Debug)]
pub struct Memory<'a> {
    /// The keys, `[B, S, Hk]`.
    pub keys: &'a [f32],
    /// [`Attention::project_keys`] of the keys, `[B, S, A]` (additive scoring;
    /// ignored otherwise).
    pub proj: &'a [f32],
    /// `[B, S]`, 0 at padded positions.
    pub mask: &'a [f32],
    /// Positions per query, `S`.
    pub len: usize,
}

/// The gradient arriving at an attention step's context, and where its
/// backward writes those of its inputs.
pub struct AttentionDeltas<'a> {
    /// W.r.t. the context, `[B, Hk]`.
    pub dctx: &'a [f32],
    /// W.r.t. the queries, `[B, Hq]` (written).
    pub dq: &'a mut [f32],
    /// W.r.t. the keys, `[B, S, Hk]` (added into).
    pub dkeys: &'a mut [f32],
    /// W.r.t. the projected keys, `[B, S, A]` (additive; added into).
    pub dproj: &'a mut [f32],
}

/// Gradient accumulators with the shapes of [`AttentionParams`]; backward adds into them.
#[derive(Default)]
pub struct AttentionGrads<'a> {
    /// Gradient of `linear_in`.
    pub linear_in: &'a mut [f32],
    /// Gradient of `query`.
    pub query: &'a mut [f32],
    /// Gradient of `key`.
    pub key: &'a mut [f32],
    /// Gradient of `key_bias`.
    pub key_bias: &'a mut [f32],
    /// Gradient of `v`.
    pub v: &'a mut [f32],
}

/// What one forward step keeps for its backward, and the backward's scratch.
#[derive(Clone, Debug, Default)]
pub struct AttentionCache {
    batch: usize,
    len: usize,
    /// `[B, S]` attention weights (0 at padded positions).
    weights: Vec<f32>,
    /// General: `q W_a: [B, Hk]`. Additive: `W_q q: [B, A]`.
    qt: Vec<f32>,
    /// Additive: `e = tanh(W_q q + W_k k + b_k): [B, S, A]` (valid positions only).
    e: Vec<f32>,
    /// Backward: `d scores: [B, S]` and the gradient w.r.t. `qt`.
    dscores: Vec<f32>,
    dqt: Vec<f32>,
}

impl AttentionCache {
    /// The attention weights of the last forward, `[B, S]`.
    pub fn weights(&self) -> &[f32] {
        &self.weights[..self.batch * self.len]
    }
}

fn fit(v: &mut Vec<f32>, n: usize) {
    v.clear();
    v.resize(n, 0.0);
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `y += alpha * x`.
fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// Masked softmax in place over one row of scores: positions with `mask == 0` get
/// weight exactly 0 and never enter the max or the sum. A row with no valid
/// position gets all-zero weights (an empty context) rather than NaN.
pub fn masked_softmax_forward(row: &mut [f32], mask: &[f32]) {
    let max = row
        .iter()
        .zip(mask)
        .filter(|(_, &m)| m != 0.0)
        .map(|(&z, _)| z)
        .fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for (z, &m) in row.iter_mut().zip(mask) {
        *z = if m != 0.0 { (*z - max).exp() } else { 0.0 };
        sum += *z;
    }
    if sum > 0.0 {
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|z| *z *= inv);
    }
}

/// Backward of [`masked_softmax_forward`] given its output `w`, in place: `d`
/// holds `dw` and receives `dz_j = w_j (dw_j - Σ_i w_i dw_i)` for valid `j` and
/// exactly 0 for padded `j` (whose `dw` is not even read).
pub fn masked_softmax_backward(w: &[f32], d: &mut [f32], mask: &[f32]) {
    let inner: f32 = w
        .iter()
        .zip(d.iter())
        .zip(mask)
        .filter(|(_, &m)| m != 0.0)
        .map(|((&w, &d), _)| w * d)
        .sum();
    for ((d, &w), &m) in d.iter_mut().zip(w).zip(mask) {
        *d = if m != 0.0 { w * (*d - inner) } else { 0.0 };
    }
}

impl Attention {
    /// Names (PyTorch-style suffixes) and shapes of this kind's parameters, in order.
    pub fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        let (hq, hk, a) = (self.query_size, self.key_size, self.attn_size);
        match self.kind {
            AttentionKind::Dot => vec![],
            AttentionKind::General => vec![("linear_in.weight", vec![hq, hk])],
            AttentionKind::Additive => vec![
                ("query.weight", vec![a, hq]),
                ("key.weight", vec![a, hk]),
                ("key.bias", vec![a]),
                ("v.weight", vec![1, a]),
            ],
        }
    }

    /// Width of the per-position key projection (`A` for additive, else 0).
    pub fn proj_size(&self) -> usize {
        match self.kind {
            AttentionKind::Additive => self.attn_size,
            _ => 0,
        }
    }

    /// The query-independent part of additive scoring for `n` key rows
    /// (`n = B*S`): `proj[n, A] = keys[n, Hk] · W_kᵀ + b_k`. Other kinds: nothing.
    pub fn project_keys(&self, p: AttentionParams<'_>, keys: &[f32], n: usize, proj: &mut [f32]) {
        if self.kind != AttentionKind::Additive {
            return;
        }
        let (hk, a) = (self.key_size, self.attn_size);
        sgemm_bias(
            MatRef::new(keys, n, hk),
            MatRef::new(p.key, a, hk).t(),
            p.key_bias,
            MatMut::new(proj, n, a),
        );
    }

    /// Backward of [`Attention::project_keys`]: `dW_k += dprojᵀ·keys`,
    /// `db_k += Σ_rows dproj`, `dkeys += dproj·W_k`. Padded rows carry a zero
    /// `dproj` (from [`Attention::backward`]), so they add nothing.
    pub fn project_keys_backward(
        &self,
        p: AttentionParams<'_>,
        g: &mut AttentionGrads<'_>,
        keys: &[f32],
        dproj: &[f32],
        n: usize,
        dkeys: &mut [f32],
    ) {
        if self.kind != AttentionKind::Additive {
            return;
        }
        let (hk, a) = (self.key_size, self.attn_size);
        sgemm(
            1.0,
            MatRef::new(dproj, n, a).t(),
            MatRef::new(keys, n, hk),
            1.0,
            MatMut::new(g.key, a, hk),
        );
        for row in dproj[..n * a].chunks_exact(a) {
            axpy(g.key_bias, 1.0, row);
        }
        sgemm(
            1.0,
            MatRef::new(dproj, n, a),
            MatRef::new(p.key, a, hk),
            1.0,
            MatMut::new(dkeys, n, hk),
        );
    }

    /// Forward for `b` queries `q: [B, Hq]` over the memory's `S` positions
    /// each: fills the weights in `cache` and writes `ctx: [B, Hk]`.
    ///
    /// # Panics
    /// If `q`, the memory's keys and mask, or `ctx` are shorter than the
    /// shapes above, or dot scoring has `Hq != Hk`.
    pub fn forward(
        &self,
        p: AttentionParams<'_>,
        q: &[f32],
        memory: Memory<'_>,
        b: usize,
        cache: &mut AttentionCache,
        ctx: &mut [f32],
    ) {
        let Memory {
            keys,
            proj,
            mask,
            len: s,
        } = memory;
        let (hq, hk, a) = (self.query_size, self.key_size, self.attn_size);
        assert!(q.len() >= b * hq && keys.len() >= b * s * hk && mask.len() >= b * s);
        assert!(ctx.len() >= b * hk, "attention: context too short");
        cache.batch = b;
        cache.len = s;
        fit(&mut cache.weights, b * s);
        // 1. The query transform shared by all positions of a sequence.
        match self.kind {
            AttentionKind::Dot => assert_eq!(hq, hk, "dot attention needs Hq == Hk"),
            AttentionKind::General => {
                // qt = q · W_a  ([B, Hq] · [Hq, Hk])
                fit(&mut cache.qt, b * hk);
                sgemm(
                    1.0,
                    MatRef::new(q, b, hq),
                    MatRef::new(p.linear_in, hq, hk),
                    0.0,
                    MatMut::new(&mut cache.qt, b, hk),
                );
            }
            AttentionKind::Additive => {
                // qt = q · W_qᵀ  ([B, Hq] · [Hq, A])
                fit(&mut cache.qt, b * a);
                sgemm(
                    1.0,
                    MatRef::new(q, b, hq),
                    MatRef::new(p.query, a, hq).t(),
                    0.0,
                    MatMut::new(&mut cache.qt, b, a),
                );
                fit(&mut cache.e, b * s * a);
            }
        }
        for r in 0..b {
            let m = &mask[r * s..(r + 1) * s];
            let scores = &mut cache.weights[r * s..(r + 1) * s];
            // 2. Scores of the valid positions (padded ones stay unread).
            for j in (0..s).filter(|&j| m[j] != 0.0) {
                let k = &keys[(r * s + j) * hk..(r * s + j + 1) * hk];
                scores[j] = match self.kind {
                    AttentionKind::Dot => dot(&q[r * hq..(r + 1) * hq], k),
                    AttentionKind::General => dot(&cache.qt[r * hk..(r + 1) * hk], k),
                    AttentionKind::Additive => {
                        let e = &mut cache.e[(r * s + j) * a..(r * s + j + 1) * a];
                        let kp = &proj[(r * s + j) * a..(r * s + j + 1) * a];
                        let qp = &cache.qt[r * a..(r + 1) * a];
                        for ((e, &x), &y) in e.iter_mut().zip(qp).zip(kp) {
                            *e = tanh(x + y);
                        }
                        dot(e, p.v)
                    }
                };
            }
            // 3. weights = masked softmax(scores)
            masked_softmax_forward(scores, m);
            // 4. ctx = Σ_valid w_j k_j
            let c = &mut ctx[r * hk..(r + 1) * hk];
            c.fill(0.0);
            for j in (0..s).filter(|&j| m[j] != 0.0) {
                axpy(c, scores[j], &keys[(r * s + j) * hk..(r * s + j + 1) * hk]);
            }
        }
    }

    /// Backward of [`Attention::forward`] (same `q`, `memory`, and the cache
    /// it filled) from `d.dctx: [B, Hk]`: writes `d.dq: [B, Hq]`, adds into
    /// `d.dkeys: [B, S, Hk]`, into `d.dproj: [B, S, A]` (additive; to be
    /// finished by [`Attention::project_keys_backward`]) and into the
    /// parameter gradients `g`.
    pub fn backward(
        &self,
        p: AttentionParams<'_>,
        g: &mut AttentionGrads<'_>,
        q: &[f32],
        memory: Memory<'_>,
        cache: &mut AttentionCache,
        d: AttentionDeltas<'_>,
    ) {
        let Memory { keys, mask, .. } = memory;
        let AttentionDeltas {
            dctx,
            dq,
            dkeys,
            dproj,
        } = d;
        let (hq, hk, a) = (self.query_size, self.key_size, self.attn_size);
        let (b, s) = (cache.batch, cache.len);
        let c = &mut *cache;
        fit(&mut c.dscores, b * s);
        let qt_width = match self.kind {
            AttentionKind::Dot => 0,
            AttentionKind::General => hk,
            AttentionKind::Additive => a,
        };
        fit(&mut c.dqt, b * qt_width);
        dq[..b * hq].fill(0.0);
        for r in 0..b {
            let m = &mask[r * s..(r + 1) * s];
            let w = &c.weights[r * s..(r + 1) * s];
            let dc = &dctx[r * hk..(r + 1) * hk];
            let key = |j: usize| (r * s + j) * hk..(r * s + j + 1) * hk;
            // ctx = Σ w_j k_j  →  dw_j = dctx · k_j,  dk_j += w_j dctx
            let ds = &mut c.dscores[r * s..(r + 1) * s];
            for j in (0..s).filter(|&j| m[j] != 0.0) {
                ds[j] = dot(dc, &keys[key(j)]);
                axpy(&mut dkeys[key(j)], w[j], dc);
            }
            // w = masked softmax(scores)  →  dscores (0 at padded positions)
            masked_softmax_backward(w, ds, m);
            let ds = &c.dscores[r * s..(r + 1) * s];
            for j in (0..s).filter(|&j| m[j] != 0.0) {
                let d = ds[j];
                match self.kind {
                    // score = q · k  →  dq += d k,  dk += d q
                    AttentionKind::Dot => {
                        axpy(&mut dq[r * hq..(r + 1) * hq], d, &keys[key(j)]);
                        axpy(&mut dkeys[key(j)], d, &q[r * hq..(r + 1) * hq]);
                    }
                    // score = qt · k  →  dqt += d k,  dk += d qt
                    AttentionKind::General => {
                        axpy(&mut c.dqt[r * hk..(r + 1) * hk], d, &keys[key(j)]);
                        axpy(&mut dkeys[key(j)], d, &c.qt[r * hk..(r + 1) * hk]);
                    }
                    // score = v · e, e = tanh(qt + proj)  →  dv += d e,
                    // dpre = d v (1 - e²) into both qt and proj
                    AttentionKind::Additive => {
                        let e = &c.e[(r * s + j) * a..(r * s + j + 1) * a];
                        axpy(g.v, d, e);
                        let dp = &mut dproj[(r * s + j) * a..(r * s + j + 1) * a];
                        let dqt = &mut c.dqt[r * a..(r + 1) * a];
                        for t in 0..a {
                            let pre = d * p.v[t] * dtanh(e[t]);
                            dp[t] += pre;
                            dqt[t] += pre;
                        }
                    }
                }
            }
        }
        match self.kind {
            AttentionKind::Dot => {}
            AttentionKind::General => {
                // qt = q · W_a  →  dW_a += qᵀ·dqt,  dq = dqt·W_aᵀ
                sgemm(
                    1.0,
                    MatRef::new(q, b, hq).t(),
                    MatRef::new(&c.dqt, b, hk),
                    1.0,
                    MatMut::new(g.linear_in, hq, hk),
                );
                sgemm(
                    1.0,
                    MatRef::new(&c.dqt, b, hk),
                    MatRef::new(p.linear_in, hq, hk).t(),
                    0.0,
                    MatMut::new(dq, b, hq),
                );
            }
            AttentionKind::Additive => {
                // qt = q · W_qᵀ  →  dW_q += dqtᵀ·q,  dq = dqt·W_q
                sgemm(
                    1.0,
                    MatRef::new(&c.dqt, b, a).t(),
                    MatRef::new(q, b, hq),
                    1.0,
                    MatMut::new(g.query, a, hq),
                );
                sgemm(
                    1.0,
                    MatRef::new(&c.dqt, b, a),
                    MatRef::new(p.query, a, hq),
                    0.0,
                    MatMut::new(dq, b, hq),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, random_vec};
    use recurrent_kernels::Rng;

    /// A batch of 3 sequences over `S = 4` positions; sequence 1 has 2 real
    /// positions and sequence 2 has 3, so two of three rows carry padding.
    struct Case {
        att: Attention,
        b: usize,
        s: usize,
        q: Vec<f32>,
        keys: Vec<f32>,
        mask: Vec<f32>,
        params: [Vec<f32>; 5],
        r: Vec<f32>,
    }

    impl Case {
        fn new(kind: AttentionKind, seed: u64) -> Case {
            let (b, s, hk, a) = (3, 4, 5, 3);
            let hq = if kind == AttentionKind::Dot { hk } else { 4 };
            let att = Attention {
                kind,
                query_size: hq,
                key_size: hk,
                attn_size: a,
            };
            let mut rng = Rng::new(seed);
            let mut v = |n| random_vec(&mut rng, n);
            let shapes = att.param_shapes();
            let len = |name: &str| {
                shapes
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(0, |(_, s)| s.iter().product())
            };
            let params = [
                v(len("linear_in.weight")),
                v(len("query.weight")),
                v(len("key.weight")),
                v(len("key.bias")),
                v(len("v.weight")),
            ];
            let lens = [4, 2, 3];
            let mask = (0..b * s)
                .map(|i| f32::from(u8::from(i % s < lens[i / s])))
                .collect();
            Case {
                att,
                b,
                s,
                q: v(b * hq),
                keys: v(b * s * hk),
                mask,
                params,
                r: v(b * hk),
            }
        }

        fn p<'a>(&self, params: &'a [Vec<f32>; 5]) -> AttentionParams<'a> {
            AttentionParams {
                linear_in: &params[0],
                query: &params[1],
                key: &params[2],
                key_bias: &params[3],
                v: &params[4],
            }
        }

        /// Context and weights for the given query, keys and parameters.
        fn run(&self, q: &[f32], keys: &[f32], params: &[Vec<f32>; 5]) -> (Vec<f32>, Vec<f32>) {
            let (b, s) = (self.b, self.s);
            let mut proj = vec![0.0; b * s * self.att.proj_size()];
            self.att
                .project_keys(self.p(params), keys, b * s, &mut proj);
            let mut cache = AttentionCache::default();
            let mut ctx = vec![0.0; b * self.att.key_size];
            let memory = Memory {
                keys,
                proj: &proj,
                mask: &self.mask,
                len: s,
            };
            self.att
                .forward(self.p(params), q, memory, b, &mut cache, &mut ctx);
            (ctx, cache.weights().to_vec())
        }

        /// loss = Σ ctx ⊙ r
        fn loss(&self, q: &[f32], keys: &[f32], params: &[Vec<f32>; 5]) -> f64 {
            let (ctx, _) = self.run(q, keys, params);
            ctx.iter().zip(&self.r).map(|(a, b)| (a * b) as f64).sum()
        }

        /// Analytic gradients: dq, dkeys and one per parameter.
        fn grads(&self) -> (Vec<f32>, Vec<f32>, [Vec<f32>; 5]) {
            let (b, s) = (self.b, self.s);
            let att = self.att;
            let p = self.p(&self.params);
            let mut proj = vec![0.0; b * s * att.proj_size()];
            att.project_keys(p, &self.keys, b * s, &mut proj);
            let mut cache = AttentionCache::default();
            let mut ctx = vec![0.0; b * att.key_size];
            let memory = Memory {
                keys: &self.keys,
                proj: &proj,
                mask: &self.mask,
                len: s,
            };
            att.forward(p, &self.q, memory, b, &mut cache, &mut ctx);
            let mut gp = self.params.clone().map(|v| vec![0.0; v.len()]);
            let [g0, g1, g2, g3, g4] = &mut gp;
            let mut g = AttentionGrads {
                linear_in: g0,
                query: g1,
                key: g2,
                key_bias: g3,
                v: g4,
            };
            let mut dq = vec![0.0; self.q.len()];
            let mut dkeys = vec![0.0; self.keys.len()];
            let mut dproj = vec![0.0; proj.len()];
            let d = AttentionDeltas {
                dctx: &self.r,
                dq: &mut dq,
                dkeys: &mut dkeys,
                dproj: &mut dproj,
            };
            att.backward(p, &mut g, &self.q, memory, &mut cache, d);
            att.project_keys_backward(p, &mut g, &self.keys, &dproj, b * s, &mut dkeys);
            (dq, dkeys, gp)
        }

        fn padded(&self, i: usize) -> bool {
            self.mask[i / self.att.key_size] == 0.0
        }
    }

    #[test]
    fn every_scoring_passes_the_gradient_check_with_padding() {
        for kind in AttentionKind::ALL {
            let k = Case::new(kind, 3 + kind as u64);
            let (dq, dkeys, gp) = k.grads();
            check(&format!("{kind} q"), &k.q, &dq, |v| {
                k.loss(v, &k.keys, &k.params)
            });
            check(&format!("{kind} keys"), &k.keys, &dkeys, |v| {
                k.loss(&k.q, v, &k.params)
            });
            for (i, g) in gp.iter().enumerate() {
                check(&format!("{kind} param {i}"), &k.params[i], g, |v| {
                    let mut ps = k.params.clone();
                    ps[i] = v.to_vec();
                    k.loss(&k.q, &k.keys, &ps)
                });
            }
            // Padded keys get exactly zero gradient.
            for (i, &g) in dkeys.iter().enumerate() {
                if k.padded(i) {
                    assert_eq!(g, 0.0, "{kind}: padded key element {i}");
                }
            }
            let used = gp.iter().filter(|g| !g.is_empty()).count();
            assert_eq!(used, k.att.param_shapes().len());
        }
    }

    #[test]
    fn padded_positions_change_neither_weights_nor_context() {
        for kind in AttentionKind::ALL {
            let k = Case::new(kind, 7);
            let (ctx, w) = k.run(&k.q, &k.keys, &k.params);
            for (i, &m) in k.mask.iter().enumerate() {
                if m == 0.0 {
                    assert_eq!(w[i], 0.0, "{kind}: padded weight {i}");
                }
            }
            for row in w.chunks_exact(k.s) {
                let sum: f32 = row.iter().sum();
                assert!((sum - 1.0).abs() < 1e-6, "{kind}: weights sum to {sum}");
            }
            let mut keys = k.keys.clone();
            for (i, x) in keys.iter_mut().enumerate() {
                if k.padded(i) {
                    *x = 1e6 * (i as f32 + 1.0);
                }
            }
            let (ctx2, w2) = k.run(&k.q, &keys, &k.params);
            assert_eq!(ctx, ctx2, "{kind}: context");
            assert_eq!(w, w2, "{kind}: weights");
        }
    }

    #[test]
    fn a_row_without_valid_positions_gets_zero_weights() {
        let mut row = [1.0, 2.0];
        masked_softmax_forward(&mut row, &[0.0, 0.0]);
        assert_eq!(row, [0.0, 0.0]);
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in AttentionKind::ALL {
            assert_eq!(kind.name().parse::<AttentionKind>().unwrap(), kind);
        }
        assert_eq!(
            "bahdanau".parse::<AttentionKind>().unwrap(),
            AttentionKind::Additive
        );
        assert!("cosine".parse::<AttentionKind>().is_err());
    }
}
