//! The decoder, one time step at a time, and the bridge from the encoder's
//! final states to the decoder's initial state.
//!
//! One step for `B` rows, from the state `(h_k, c_k)` of each layer `k` and the
//! previous attentional vector `feed` (zeros at the first step):
//! 1. `x_0 = [dropout(embed(y_{t-1})); feed]` (the feed part only with input feeding);
//! 2. `h_k = cell_k(x_k, h_k)`, `x_{k+1} = dropout(h_k)` up the stack;
//! 3. `ctx, w = attention(h_top, keys, mask)`;
//! 4. `h~ = tanh(W_c [ctx; h_top] + b_c)` (Luong's attentional vector);
//! 5. `out = dropout(h~)`, which the generator projects to logits and the next
//!    step reads as its `feed`.
//!
//! The recurrent layers run with `t = 1` and one `LayerCache` per layer and
//! step, so the backward pass walks the steps in reverse, handing each step's
//! `dh0` to the step before as its `dh_n`. Their weights are packed once per
//! batch ([`PackedLayer`]) rather than at every step, and their weight
//! gradients are formed after the reverse walk as one product over all steps
//! ([`DeferredGrads`]) rather than one small product per step.

use recurrent_kernels::activation::{dtanh, tanh};
use recurrent_kernels::profile::Phase;
use recurrent_kernels::{MatMut, MatRef, Rng};
use recurrent_nn::attention::{AttentionCache, AttentionDeltas, AttentionGrads, Memory};
use recurrent_nn::recurrent::{Block, Downstream, GateGrads, Upstream};
use recurrent_nn::{dropout, linear, LayerCache, PackedLayer, RecurrentLayer};

use super::config::{Bridge, Seq2SeqError};
use super::layout::{disjoint_mut, LinearSlots};
use super::model::{grow, EncoderOutput, Seq2Seq};

/// The decoder's state between steps, for `batch` rows (hypotheses).
///
/// Row `i` of every buffer belongs to hypothesis `i`: beam search reorders or
/// copies hypotheses with [`DecoderState::select`] (after expanding the
/// encoder output once with [`EncoderOutput::select`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecoderState {
    /// Rows (hypotheses) `B`.
    pub batch: usize,
    /// Decoder layers `L`.
    pub layers: usize,
    /// Hidden width `H`.
    pub hidden: usize,
    /// `[L, B, H]` hidden state of every decoder layer.
    pub h: Vec<f32>,
    /// `[L, B, H]` LSTM cell state; empty for other cells.
    pub c: Vec<f32>,
    /// `[B, H]` the previous step's attentional vector `h~` (zeros before the
    /// first step); empty without input feeding.
    pub feed: Vec<f32>,
}

impl DecoderState {
    /// A new state whose row `i` is row `rows[i]` of this one (rows may repeat
    /// or be dropped): how beam search keeps the survivors of a step.
    pub fn select(&self, rows: &[usize]) -> Result<DecoderState, Seq2SeqError> {
        check_rows(rows, self.batch, "decoder state")?;
        let (b, h) = (self.batch, self.hidden);
        Ok(DecoderState {
            batch: rows.len(),
            layers: self.layers,
            hidden: h,
            h: gather_rows(&self.h, b, h, rows),
            c: gather_rows(&self.c, b, h, rows),
            feed: gather_rows(&self.feed, b, h, rows),
        })
    }
}

/// An error unless every row is below `batch`.
pub(crate) fn check_rows(rows: &[usize], batch: usize, what: &str) -> Result<(), Seq2SeqError> {
    match rows.iter().find(|&&r| r >= batch) {
        Some(r) => Err(Seq2SeqError::Batch(format!(
            "row {r} selected from a {what} of {batch} rows"
        ))),
        None => Ok(()),
    }
}

/// For `v: [G, B, w]` (empty stays empty), the buffer `[G, rows.len(), w]`
/// whose row `i` of each group is row `rows[i]` of that group.
pub(crate) fn gather_rows(v: &[f32], batch: usize, w: usize, rows: &[usize]) -> Vec<f32> {
    if v.is_empty() || batch * w == 0 {
        return Vec::new();
    }
    let groups = v.len() / (batch * w);
    let mut out = Vec::with_capacity(groups * rows.len() * w);
    for g in 0..groups {
        for &r in rows {
            let at = (g * batch + r) * w;
            out.extend_from_slice(&v[at..at + w]);
        }
    }
    out
}

/// One decoder layer's inputs, starting states and gate gradients of every
/// step of a batch, gathered in step order during the backward walk so that
/// its weight gradients are one product over `T*B` rows.
#[derive(Default)]
pub(crate) struct DeferredGrads {
    /// `[T*B, I]` the layer's inputs.
    x: Vec<f32>,
    /// `[T*B, H]` the state each step started from.
    hprev: Vec<f32>,
    /// `[T*B, G*H]` gate pre-activation gradients (hidden and input side).
    dg_hh: Vec<f32>,
    dg_ih: Vec<f32>,
}

/// Everything one decoder step keeps for its backward pass.
#[derive(Default)]
pub(crate) struct StepCache {
    /// `[B]` the tokens the step read (`y_{t-1}`).
    pub tokens: Vec<u32>,
    /// `x[k]`: input of layer `k`, `[B, I_k]`, after dropout.
    x: Vec<Vec<f32>>,
    /// `masks[0]`: dropout on the embedding part of `x[0]` `[B, E]`; `masks[k]`
    /// on `x[k]`; `masks[L]` on `h~`.
    masks: Vec<Vec<f32>>,
    dropped: bool,
    pub layers: Vec<LayerCache>,
    pub attn: AttentionCache,
    ctx: Vec<f32>,
    /// `[B, 2H]`: `[ctx; h_top]`, the input of `linear_out`.
    cat: Vec<f32>,
    /// `[B, H]`: `h~` before dropout.
    htilde: Vec<f32>,
    /// `[B, H]`: `dropout(h~)`.
    pub out: Vec<f32>,
}

/// What a step starts from: each layer's `h` (and `c`), the feed, and the
/// step's input tokens `[B]` (empty until the caller sets them).
pub(crate) struct StepInput<'a> {
    pub h: Vec<&'a [f32]>,
    pub c: Vec<&'a [f32]>,
    pub feed: &'a [f32],
    pub tokens: &'a [u32],
}

/// The buffers of one decoder step's backward (see [`Seq2Seq::step_backward`]).
pub(crate) struct StepGrads<'a> {
    /// `[B, H]`: w.r.t. the step's `out`.
    pub d_out: &'a mut [f32],
    /// `[L, B, H]`: w.r.t. the states the step left, then those it started from.
    pub dh: &'a mut [f32],
    /// `[L, B, H]`: as `dh`, for the cell states.
    pub dc: &'a mut [f32],
    /// `[B, H]`: w.r.t. the step's feed input.
    pub d_feed: &'a mut [f32],
    /// `[B, S, H]`: w.r.t. the keys, added into.
    pub dkeys: &'a mut [f32],
    /// `[B, S, A]`: w.r.t. the projected keys, added into.
    pub dproj: &'a mut [f32],
    /// Scratch shared by the steps.
    pub scratch: &'a mut StepScratch,
}

/// Backward scratch shared by the steps.
#[derive(Default)]
pub(crate) struct StepScratch {
    dpre: Vec<f32>,
    dcat: Vec<f32>,
    dq: Vec<f32>,
    dy: Vec<f32>,
    dx: Vec<f32>,
    dh_n: Vec<f32>,
    dc_n: Vec<f32>,
}

impl Seq2Seq {
    pub(crate) fn dec_layer(&self, k: usize) -> RecurrentLayer {
        RecurrentLayer {
            cell: self.config.cell,
            input_size: self.config.dec_input(k),
            hidden_size: self.config.hidden,
        }
    }

    /// The input of the step after the one cached in `sc`.
    pub(crate) fn next_input<'a>(&self, sc: &'a StepCache, b: usize) -> StepInput<'a> {
        let h = self.config.hidden;
        let lstm = self.config.cell.has_cell_state();
        StepInput {
            h: sc.layers.iter().map(|l| l.last_h(h)).collect(),
            c: sc
                .layers
                .iter()
                .map(|l| if lstm { l.last_c(h) } else { &[][..] })
                .collect(),
            feed: if self.config.input_feeding {
                &sc.out[..b * h]
            } else {
                &[]
            },
            tokens: &[],
        }
    }

    /// The input of the first step, from a state.
    pub(crate) fn state_input<'a>(&self, s: &'a DecoderState) -> StepInput<'a> {
        let bh = s.batch * self.config.hidden;
        StepInput {
            h: s.h.chunks_exact(bh).collect(),
            c: if s.c.is_empty() {
                vec![&[][..]; self.config.layers]
            } else {
                s.c.chunks_exact(bh).collect()
            },
            feed: &s.feed,
            tokens: &[],
        }
    }

    /// The state after the step cached in `sc`.
    pub(crate) fn state_after(&self, sc: &StepCache, b: usize) -> DecoderState {
        let input = self.next_input(sc, b);
        DecoderState {
            batch: b,
            layers: self.config.layers,
            hidden: self.config.hidden,
            h: input.h.concat(),
            c: if self.config.cell.has_cell_state() {
                input.c.concat()
            } else {
                Vec::new()
            },
            feed: input.feed.to_vec(),
        }
    }

    /// One decoder step for `input.tokens: [B]` from `input` over `enc`: fills `sc`,
    /// whose `out: [B, H]` is the generator's input. With `drop`, dropout is
    /// applied and its masks kept.
    pub(crate) fn step_forward(
        &self,
        packed: &[PackedLayer],
        enc: &EncoderOutput,
        input: &StepInput<'_>,
        mut drop: Option<&mut Rng>,
        sc: &mut StepCache,
        for_backward: bool,
    ) {
        let _ph = Phase::new("s2s.dec_fwd");
        let tokens = input.tokens;
        let cfg = &self.config;
        let (e, h, layers) = (cfg.embed, cfg.hidden, cfg.layers);
        let b = tokens.len();
        let p = cfg.dropout;
        sc.tokens.clear();
        sc.tokens.extend_from_slice(tokens);
        sc.x.resize_with(layers, Vec::new);
        sc.masks.resize_with(layers + 1, Vec::new);
        sc.layers.resize_with(layers, LayerCache::default);
        sc.dropped = drop.is_some();

        // 1. x_0 = [dropout(embed(y)); feed]
        let i0 = cfg.dec_input(0);
        grow(&mut sc.x[0], b * i0);
        let table = &self.params[self.slots.tgt_emb.clone()];
        for (r, &tok) in tokens.iter().enumerate() {
            let row = &mut sc.x[0][r * i0..(r + 1) * i0];
            let t = tok as usize;
            row[..e].copy_from_slice(&table[t * e..(t + 1) * e]);
            if cfg.input_feeding {
                row[e..].copy_from_slice(&input.feed[r * h..(r + 1) * h]);
            }
        }
        if let Some(rng) = drop.as_deref_mut() {
            let m = &mut sc.masks[0];
            grow(m, b * e);
            dropout::sample_mask(&mut m[..b * e], p, rng);
            for (row, mr) in sc.x[0].chunks_exact_mut(i0).zip(m.chunks_exact(e)).take(b) {
                dropout::forward(&mut row[..e], mr);
            }
        }

        // 2. the stack, one step: h_k = cell(x_k, h_k); x_{k+1} = dropout(h_k)
        for k in 0..layers {
            let (below, above) = sc.x.split_at_mut(k + 1);
            self.dec_layer(k).forward_packed(
                self.slots.dec[k].params(&self.params),
                &packed[k],
                &below[k][..b * cfg.dec_input(k)],
                Block::new(1, b, input.h[k], input.c[k]),
                &mut sc.layers[k],
                for_backward,
            );
            if k + 1 < layers {
                let next = &mut above[0];
                grow(next, b * h);
                next[..b * h].copy_from_slice(sc.layers[k].output(h));
                if let Some(rng) = drop.as_deref_mut() {
                    let m = &mut sc.masks[k + 1];
                    grow(m, b * h);
                    dropout::sample_mask(&mut m[..b * h], p, rng);
                    dropout::forward(&mut next[..b * h], &m[..b * h]);
                }
            }
        }
        let top = sc.layers[layers - 1].output(h);

        // 3. ctx = attention(h_top, keys)
        grow(&mut sc.ctx, b * h);
        let memory = Memory {
            keys: &enc.keys,
            proj: &enc.proj,
            mask: &enc.mask,
            len: enc.src_len,
        };
        cfg.attention_layer().forward(
            self.attn_params(),
            top,
            memory,
            b,
            &mut sc.attn,
            &mut sc.ctx,
        );

        // 4. h~ = tanh(W_c [ctx; h_top] + b_c)
        grow(&mut sc.cat, b * 2 * h);
        for r in 0..b {
            let row = &mut sc.cat[r * 2 * h..(r + 1) * 2 * h];
            row[..h].copy_from_slice(&sc.ctx[r * h..(r + 1) * h]);
            row[h..].copy_from_slice(&top[r * h..(r + 1) * h]);
        }
        grow(&mut sc.htilde, b * h);
        let LinearSlots { w, b: bias } = &self.slots.combine;
        linear::forward(
            MatRef::new(&sc.cat[..b * 2 * h], b, 2 * h),
            MatRef::new(&self.params[w.clone()], h, 2 * h),
            &self.params[bias.clone()],
            MatMut::new(&mut sc.htilde, b, h),
        );
        sc.htilde[..b * h].iter_mut().for_each(|v| *v = tanh(*v));

        // 5. out = dropout(h~)
        grow(&mut sc.out, b * h);
        sc.out[..b * h].copy_from_slice(&sc.htilde[..b * h]);
        if let Some(rng) = drop {
            let m = &mut sc.masks[layers];
            grow(m, b * h);
            dropout::sample_mask(&mut m[..b * h], p, rng);
            dropout::forward(&mut sc.out[..b * h], &m[..b * h]);
        }
    }

    /// Backward of [`Seq2Seq::step_forward`] (run with `for_backward`).
    ///
    /// In: `d_out: [B, H]` the gradient w.r.t. the step's `out` (from the
    /// generator and from the next step's feed), `dh`/`dc: [L, B, H]` w.r.t. the
    /// states the step left. Out: `dh`/`dc` w.r.t. the states it started from,
    /// `d_feed: [B, H]` w.r.t. its feed input (with input feeding). Adds into
    /// `dkeys: [B, S, H]`, `dproj: [B, S, A]` and the parameter gradients,
    /// but for the recurrent layers' weights, whose parts it stores in rows
    /// `step*B..(step+1)*B` of `deferred` (see [`Seq2Seq::decoder_weight_grads`]).
    pub(crate) fn step_backward(
        &self,
        packed: &[PackedLayer],
        (deferred, step): (&mut [DeferredGrads], usize),
        enc: &EncoderOutput,
        sc: &mut StepCache,
        bufs: StepGrads<'_>,
        grads: &mut [f32],
    ) {
        let StepGrads {
            d_out,
            dh,
            dc,
            d_feed,
            dkeys,
            dproj,
            scratch: scr,
        } = bufs;
        let _ph = Phase::new("s2s.dec_bwd");
        let cfg = &self.config;
        let (e, h, layers) = (cfg.embed, cfg.hidden, cfg.layers);
        let b = sc.tokens.len();
        let bh = b * h;
        let lstm = cfg.cell.has_cell_state();
        let i_max = cfg.dec_input(0).max(h);
        for v in [
            &mut scr.dpre,
            &mut scr.dq,
            &mut scr.dy,
            &mut scr.dh_n,
            &mut scr.dc_n,
        ] {
            grow(v, bh);
        }
        grow(&mut scr.dcat, 2 * bh);
        grow(&mut scr.dx, b * i_max);

        // 5. out = dropout(h~)
        let d_out = &mut d_out[..bh];
        if sc.dropped {
            dropout::backward(d_out, &sc.masks[layers][..bh]);
        }
        // 4. h~ = tanh(pre)  →  dpre = d h~ ⊙ (1 - h~²);  pre = W_c [ctx; h_top] + b_c
        for ((d, &g), &y) in scr.dpre.iter_mut().zip(&*d_out).zip(&sc.htilde) {
            *d = g * dtanh(y);
        }
        {
            let LinearSlots { w, b: bias } = &self.slots.combine;
            let [gw, gb] = disjoint_mut(grads, [w.clone(), bias.clone()]);
            linear::backward(
                MatRef::new(&sc.cat[..2 * bh], b, 2 * h),
                MatRef::new(&self.params[w.clone()], h, 2 * h),
                MatRef::new(&scr.dpre[..bh], b, h),
                gw,
                gb,
                Some(&mut scr.dcat[..2 * bh]),
            );
        }
        // [ctx; h_top]  →  dctx, dtop (into dy)
        for r in 0..b {
            let row = &scr.dcat[r * 2 * h..(r + 1) * 2 * h];
            scr.dy[r * h..(r + 1) * h].copy_from_slice(&row[h..]);
            scr.dcat.copy_within(r * 2 * h..r * 2 * h + h, r * h);
        }
        // 3. ctx = attention(h_top)  →  dtop += dq
        {
            let [a0, a1, a2, a3, a4] = disjoint_mut(grads, self.slots.attn.clone());
            let mut ga = AttentionGrads {
                linear_in: a0,
                query: a1,
                key: a2,
                key_bias: a3,
                v: a4,
            };
            let memory = Memory {
                keys: &enc.keys,
                proj: &enc.proj,
                mask: &enc.mask,
                len: enc.src_len,
            };
            let d = AttentionDeltas {
                dctx: &scr.dcat[..bh],
                dq: &mut scr.dq[..bh],
                dkeys,
                dproj,
            };
            let top = sc.layers[layers - 1].output(h);
            cfg.attention_layer().backward(
                self.attn_params(),
                &mut ga,
                top,
                memory,
                &mut sc.attn,
                d,
            );
        }
        for (y, &q) in scr.dy[..bh].iter_mut().zip(&scr.dq) {
            *y += q;
        }
        // 2. the stack in reverse: each layer's dh_n is the gradient w.r.t. the state it left.
        for k in (0..layers).rev() {
            let i = cfg.dec_input(k);
            scr.dh_n[..bh].copy_from_slice(&dh[k * bh..(k + 1) * bh]);
            if lstm {
                scr.dc_n[..bh].copy_from_slice(&dc[k * bh..(k + 1) * bh]);
            }
            let layer = self.dec_layer(k);
            layer.backward_packed(
                &packed[k],
                Upstream {
                    dy: &scr.dy[..bh],
                    dh_n: Some(&scr.dh_n[..bh]),
                    dc_n: lstm.then_some(&scr.dc_n[..bh]),
                    keep: None,
                },
                &mut sc.layers[k],
                Downstream {
                    dx: Some(&mut scr.dx[..b * i]),
                    dh0: Some(&mut dh[k * bh..(k + 1) * bh]),
                    dc0: lstm.then_some(&mut dc[k * bh..(k + 1) * bh]),
                },
            );
            let GateGrads {
                hprev,
                dg_hh,
                dg_ih,
            } = sc.layers[k].backward_parts(&layer);
            let d = &mut deferred[k];
            let gh = layer.gate_rows();
            d.x[step * b * i..(step + 1) * b * i].copy_from_slice(&sc.x[k][..b * i]);
            d.hprev[step * bh..(step + 1) * bh].copy_from_slice(hprev);
            d.dg_hh[step * b * gh..(step + 1) * b * gh].copy_from_slice(dg_hh);
            if layer.cell == recurrent_nn::CellKind::Gru {
                d.dg_ih[step * b * gh..(step + 1) * b * gh].copy_from_slice(dg_ih);
            }
            if k > 0 {
                // x_k = dropout(h_{k-1})
                if sc.dropped {
                    dropout::backward(&mut scr.dx[..bh], &sc.masks[k][..bh]);
                }
                scr.dy[..bh].copy_from_slice(&scr.dx[..bh]);
            }
        }
        // 1. x_0 = [dropout(embed(y)); feed]
        let i0 = cfg.dec_input(0);
        let [demb] = disjoint_mut(grads, [self.slots.tgt_emb.clone()]);
        for (r, &tok) in sc.tokens.iter().enumerate() {
            let row = &mut scr.dx[r * i0..(r + 1) * i0];
            if cfg.input_feeding {
                d_feed[r * h..(r + 1) * h].copy_from_slice(&row[e..]);
            }
            let de = &mut row[..e];
            if sc.dropped {
                dropout::backward(de, &sc.masks[0][r * e..(r + 1) * e]);
            }
            let t = tok as usize;
            for (g, &d) in demb[t * e..(t + 1) * e].iter_mut().zip(&*de) {
                *g += d;
            }
        }
    }

    /// Packs every decoder layer's weights (`for_backward`: for the backward
    /// pass too), once for all the steps of a batch.
    pub(crate) fn pack_decoder_layers(&self, packed: &mut Vec<PackedLayer>, for_backward: bool) {
        packed.resize_with(self.config.layers, PackedLayer::default);
        for (k, p) in packed.iter_mut().enumerate() {
            let params = self.slots.dec[k].params(&self.params);
            p.pack(&self.dec_layer(k), params, for_backward);
        }
    }

    /// Sizes `deferred` for `n = T*B` rows, one entry per decoder layer.
    pub(crate) fn prepare_deferred(&self, deferred: &mut Vec<DeferredGrads>, n: usize) {
        deferred.resize_with(self.config.layers, DeferredGrads::default);
        for (k, d) in deferred.iter_mut().enumerate() {
            let layer = self.dec_layer(k);
            let gh = layer.gate_rows();
            grow(&mut d.x, n * layer.input_size);
            grow(&mut d.hprev, n * layer.hidden_size);
            grow(&mut d.dg_hh, n * gh);
            if layer.cell == recurrent_nn::CellKind::Gru {
                grow(&mut d.dg_ih, n * gh);
            }
        }
    }

    /// The decoder layers' weight gradients from the `n` rows every step of
    /// the backward walk left in `deferred`: one product per matrix.
    pub(crate) fn decoder_weight_grads(
        &self,
        deferred: &[DeferredGrads],
        n: usize,
        scratch: &mut Vec<f32>,
        grads: &mut [f32],
    ) {
        let _ph = Phase::new("s2s.dec_dw");
        for (k, d) in deferred.iter().enumerate() {
            let layer = self.dec_layer(k);
            let gh = layer.gate_rows();
            let dg_ih = if layer.cell == recurrent_nn::CellKind::Gru {
                &d.dg_ih[..n * gh]
            } else {
                &d.dg_hh[..n * gh]
            };
            layer.weight_grads(
                self.slots.dec[k].grads(grads),
                &d.x[..n * layer.input_size],
                GateGrads {
                    hprev: &d.hprev[..n * layer.hidden_size],
                    dg_hh: &d.dg_hh[..n * gh],
                    dg_ih,
                },
                n,
                scratch,
            );
        }
    }

    /// The decoder's initial state from the encoder's final states (see [`Bridge`]).
    pub(crate) fn bridge_forward(&self, enc: &EncoderOutput) -> DecoderState {
        let cfg = &self.config;
        let (b, h, layers) = (enc.batch, cfg.hidden, cfg.layers);
        let bh = b * h;
        let map = |fin: &[f32], slots: &[LinearSlots]| -> Vec<f32> {
            if fin.is_empty() {
                return Vec::new(); // no cell state
            }
            match cfg.bridge {
                Bridge::Copy => fin.to_vec(),
                Bridge::Zero => vec![0.0; fin.len()],
                Bridge::Linear => {
                    let mut out = vec![0.0; fin.len()];
                    for k in 0..layers {
                        let LinearSlots { w, b: bias } = &slots[k];
                        let o = &mut out[k * bh..(k + 1) * bh];
                        linear::forward(
                            MatRef::new(&fin[k * bh..(k + 1) * bh], b, h),
                            MatRef::new(&self.params[w.clone()], h, h),
                            &self.params[bias.clone()],
                            MatMut::new(o, b, h),
                        );
                        o.iter_mut().for_each(|v| *v = tanh(*v));
                    }
                    out
                }
            }
        };
        DecoderState {
            batch: b,
            layers,
            hidden: h,
            h: map(&enc.final_h, &self.slots.bridge_h),
            c: map(&enc.final_c, &self.slots.bridge_c),
            feed: if cfg.input_feeding {
                vec![0.0; bh]
            } else {
                Vec::new()
            },
        }
    }

    /// Backward of [`Seq2Seq::bridge_forward`] (whose output was `init`): from
    /// `dh`/`dc: [L, B, H]` w.r.t. the initial state, writes the gradients
    /// w.r.t. the encoder's final states into `dfin_h`/`dfin_c`.
    pub(crate) fn bridge_backward(
        &self,
        enc: &EncoderOutput,
        init: &DecoderState,
        dh: &mut [f32],
        dc: &mut [f32],
        [dfin_h, dfin_c]: [&mut [f32]; 2],
        grads: &mut [f32],
    ) {
        let cfg = &self.config;
        let (b, h) = (enc.batch, cfg.hidden);
        let bh = b * h;
        let parts = [
            (&enc.final_h, &init.h, dh, dfin_h, &self.slots.bridge_h),
            (&enc.final_c, &init.c, dc, dfin_c, &self.slots.bridge_c),
        ];
        for (fin, out, d, dfin, slots) in parts {
            let n = fin.len();
            match cfg.bridge {
                Bridge::Copy => dfin[..n].copy_from_slice(&d[..n]),
                Bridge::Zero => dfin[..n].fill(0.0),
                Bridge::Linear => {
                    // One map per layer (none for an empty cell state).
                    for (k, LinearSlots { w, b: bias }) in slots.iter().enumerate().take(n / bh) {
                        let r = k * bh..(k + 1) * bh;
                        // out = tanh(pre)  →  dpre = d ⊙ (1 - out²)
                        for (g, &y) in d[r.clone()].iter_mut().zip(&out[r.clone()]) {
                            *g *= dtanh(y);
                        }
                        let [gw, gb] = disjoint_mut(grads, [w.clone(), bias.clone()]);
                        linear::backward(
                            MatRef::new(&fin[r.clone()], b, h),
                            MatRef::new(&self.params[w.clone()], h, h),
                            MatRef::new(&d[r.clone()], b, h),
                            gw,
                            gb,
                            Some(&mut dfin[r]),
                        );
                    }
                }
            }
        }
    }
}
