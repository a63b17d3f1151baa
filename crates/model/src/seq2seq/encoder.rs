//! The encoder: source embedding → stacked (optionally bidirectional)
//! recurrent layers over variable-length sequences, and its backward pass.
//!
//! Variable lengths are handled by packing, as PyTorch's `PackedSequence`: the
//! batch is sorted by length (longest first), and step `t` holds only the
//! sequences longer than `t`, which are a prefix of that order. Runs of steps
//! with the same number of live sequences ("chunks") go to the recurrent layer
//! in one call each, chained through their states. So padding is never
//! computed: a sequence's outputs and final state are exactly those of the
//! sequence run alone, and its final state is the one after its own last token.
//!
//! The reverse direction runs over every sequence reversed *within its own
//! length*. Reversed sequences have the same lengths, hence the same packing;
//! [`Packing::rev`] maps a packed row to the row of the same token in it.

use recurrent_kernels::profile::Phase;
use recurrent_kernels::Rng;
use recurrent_nn::recurrent::{Block, Downstream, LayerParams, Upstream};
use recurrent_nn::{dropout, embedding, LayerCache, RecurrentLayer};

use super::layout::{disjoint_mut, RnnSlots};
use super::model::{grow, EncoderOutput, Seq2Seq};

/// A run of steps during which the same `rows` sequences are live. Its packed
/// rows are contiguous and time-major: `[steps * rows, ·]` from `offset`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Chunk {
    pub steps: usize,
    pub rows: usize,
    pub offset: usize,
}

/// The packed layout of a batch of lengths.
#[derive(Clone, Debug, Default)]
pub(crate) struct Packing {
    /// `order[rank]`: the batch row of the `rank`-th longest sequence (stable).
    pub order: Vec<usize>,
    /// Lengths by rank, non-increasing.
    pub lens: Vec<usize>,
    /// `offsets[t]`: the packed row of step `t`'s first sequence; `[S + 1]`.
    pub offsets: Vec<usize>,
    pub chunks: Vec<Chunk>,
    /// `rev[p]`: for packed row `p` (step `t` of rank `r`), the row of step
    /// `len_r - 1 - t` of rank `r` — the same token in the reversed sequence.
    pub rev: Vec<usize>,
}

impl Packing {
    /// Packs sequences of `lens` (each at least 1).
    pub fn new(lens: &[usize]) -> Packing {
        let mut order: Vec<usize> = (0..lens.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
        let sorted: Vec<usize> = order.iter().map(|&i| lens[i]).collect();
        let s = sorted.first().copied().unwrap_or(0);
        let mut offsets = vec![0];
        let mut chunks: Vec<Chunk> = Vec::new();
        for t in 0..s {
            let live = sorted.iter().take_while(|&&l| l > t).count();
            let at = offsets[t];
            offsets.push(at + live);
            match chunks.last_mut() {
                Some(c) if c.rows == live => c.steps += 1,
                _ => chunks.push(Chunk {
                    steps: 1,
                    rows: live,
                    offset: at,
                }),
            }
        }
        let mut rev = vec![0; offsets[s]];
        for (r, &len) in sorted.iter().enumerate() {
            for t in 0..len {
                rev[offsets[t] + r] = offsets[len - 1 - t] + r;
            }
        }
        Packing {
            order,
            lens: sorted,
            offsets,
            chunks,
            rev,
        }
    }

    /// Packed rows.
    pub fn total(&self) -> usize {
        self.rev.len()
    }

    /// The packed row of step `t` of rank `r`.
    pub fn row(&self, t: usize, r: usize) -> usize {
        self.offsets[t] + r
    }

    /// `dst[p] = src[rev[p]]` row by row (width `w`): into the other direction's packing
    /// (an involution, so the same call maps back).
    pub fn reverse(&self, src: &[f32], dst: &mut [f32], w: usize) {
        for (p, &q) in self.rev.iter().enumerate() {
            dst[p * w..(p + 1) * w].copy_from_slice(&src[q * w..(q + 1) * w]);
        }
    }
}

/// What the encoder keeps between its forward and backward passes, and the
/// backward's scratch; reused across batches.
#[derive(Default)]
pub(crate) struct EncoderCache {
    pub packing: Packing,
    /// Packed source tokens `[N]`.
    tokens: Vec<u32>,
    /// `inputs[k]`: input of layer `k` in the forward packing `[N, I_k]` (after dropout).
    inputs: Vec<Vec<f32>>,
    /// `inputs[k]` in the reversed packing (bidirectional only).
    rev_inputs: Vec<Vec<f32>>,
    /// `masks[k]`: the dropout mask applied to `inputs[k]`, when `dropped`.
    masks: Vec<Vec<f32>>,
    dropped: bool,
    /// `outs[k][d]`: direction `d`'s output in its own packing `[N, Hd]`.
    outs: Vec<[Vec<f32>; 2]>,
    /// `caches[k][d][chunk]`
    caches: Vec<[Vec<LayerCache>; 2]>,
    /// Final states by rank `[B, Hd]`, per layer and direction.
    fin_h: Vec<[Vec<f32>; 2]>,
    fin_c: Vec<[Vec<f32>; 2]>,
    zeros: Vec<f32>,
    // Backward scratch.
    d_comb: Vec<f32>,
    d_out: [Vec<f32>; 2],
    dx: [Vec<f32>; 2],
    dfin_h: Vec<f32>,
    dfin_c: Vec<f32>,
    carry_h: Vec<f32>,
    carry_c: Vec<f32>,
    dh_n: Vec<f32>,
    dc_n: Vec<f32>,
}

/// A batch of source sequences: `tokens: [B, width]` batch-major,
/// right-padded, with lengths `lens` (each in `1..=width`).
#[derive(Clone, Copy)]
pub(crate) struct Sources<'a> {
    pub tokens: &'a [u32],
    pub width: usize,
    pub lens: &'a [usize],
}

/// One direction of one encoder layer: its shape, parameters and gradient
/// slots, over the packed chunks of a batch.
struct Direction<'a> {
    layer: &'a RecurrentLayer,
    p: LayerParams<'a>,
    slots: &'a RnnSlots,
    pk: &'a Packing,
}

/// Runs one direction of one layer over packed `x: [N, I]` chunk by chunk from a
/// zero state: outputs into `out: [N, H]`, final states by rank into `fin_h`/`fin_c`.
fn run_forward(
    dir: &Direction<'_>,
    x: &[f32],
    caches: &mut Vec<LayerCache>,
    out: &mut [f32],
    [fin_h, fin_c]: [&mut [f32]; 2],
    zeros: &[f32],
    for_backward: bool,
) {
    let Direction { layer, p, pk, .. } = *dir;
    let (i, h) = (layer.input_size, layer.hidden_size);
    let lstm = layer.cell.has_cell_state();
    caches.resize_with(pk.chunks.len(), LayerCache::default);
    for (ci, ch) in pk.chunks.iter().enumerate() {
        let (done, rest) = caches.split_at_mut(ci);
        let n = ch.rows * h;
        // A chunk continues the previous one's first `rows` sequences.
        let (h0, c0) = match done.last() {
            None => (&zeros[..n], if lstm { &zeros[..n] } else { &[][..] }),
            Some(prev) => (
                &prev.last_h(h)[..n],
                if lstm { &prev.last_c(h)[..n] } else { &[][..] },
            ),
        };
        let rows = ch.offset..ch.offset + ch.steps * ch.rows;
        let cache = &mut rest[0];
        layer.forward(
            p,
            &x[rows.start * i..rows.end * i],
            Block::new(ch.steps, ch.rows, h0, c0),
            cache,
            for_backward,
        );
        out[rows.start * h..rows.end * h].copy_from_slice(cache.output(h));
        // Ranks `next..rows` end with this chunk: their final state is here.
        let next = pk.chunks.get(ci + 1).map_or(0, |c| c.rows);
        fin_h[next * h..n].copy_from_slice(&cache.last_h(h)[next * h..n]);
        if lstm {
            fin_c[next * h..n].copy_from_slice(&cache.last_c(h)[next * h..n]);
        }
    }
}

/// Backward of [`run_forward`]: from `dy: [N, H]` and the final-state gradients by
/// rank (`[dy, dfin_h, dfin_c]`), adds the parameter gradients into `g` and
/// writes `dx: [N, I]`. `carry_*`, `dh_n`, `dc_n` are scratch of at least `[B, H]`.
fn run_backward(
    dir: &Direction<'_>,
    g: &mut [f32],
    x: &[f32],
    caches: &mut [LayerCache],
    [dy, dfin_h, dfin_c]: [&[f32]; 3],
    dx: &mut [f32],
    [carry_h, carry_c, dh_n, dc_n]: [&mut [f32]; 4],
) {
    let Direction {
        layer,
        p,
        slots,
        pk,
    } = *dir;
    let (i, h) = (layer.input_size, layer.hidden_size);
    let lstm = layer.cell.has_cell_state();
    for ci in (0..pk.chunks.len()).rev() {
        let ch = pk.chunks[ci];
        let (n, next) = (ch.rows * h, pk.chunks.get(ci + 1).map_or(0, |c| c.rows) * h);
        // The state leaving this chunk: live rows continue into the next chunk
        // (whose dh0 is in `carry`), the others ended here (their final state).
        dh_n[..next].copy_from_slice(&carry_h[..next]);
        dh_n[next..n].copy_from_slice(&dfin_h[next..n]);
        if lstm {
            dc_n[..next].copy_from_slice(&carry_c[..next]);
            dc_n[next..n].copy_from_slice(&dfin_c[next..n]);
        }
        let rows = ch.offset..ch.offset + ch.steps * ch.rows;
        layer.backward(
            p,
            slots.grads(g),
            &x[rows.start * i..rows.end * i],
            Upstream {
                dy: &dy[rows.start * h..rows.end * h],
                dh_n: Some(&dh_n[..n]),
                dc_n: lstm.then_some(&dc_n[..n]),
                keep: None,
            },
            &mut caches[ci],
            Downstream {
                dx: Some(&mut dx[rows.start * i..rows.end * i]),
                dh0: Some(&mut carry_h[..n]),
                dc0: lstm.then_some(&mut carry_c[..n]),
            },
        );
    }
}

impl Seq2Seq {
    fn enc_layer(&self, k: usize) -> RecurrentLayer {
        RecurrentLayer {
            cell: self.config.cell,
            input_size: self.config.enc_input(k),
            hidden_size: self.config.enc_hidden(),
        }
    }

    /// Encoder forward over the sources `src`, into `out` (keys, key
    /// projection, mask, final states). With `drop`, dropout is applied and
    /// its masks kept.
    pub(crate) fn encode_forward(
        &self,
        ec: &mut EncoderCache,
        out: &mut EncoderOutput,
        src: Sources<'_>,
        mut drop: Option<&mut Rng>,
        for_backward: bool,
    ) {
        let Sources {
            tokens: src,
            width,
            lens,
        } = src;
        let _ph = Phase::new("s2s.enc_fwd");
        let cfg = &self.config;
        let (e, h, hd, layers) = (cfg.embed, cfg.hidden, cfg.enc_hidden(), cfg.layers);
        let dirs = cfg.directions();
        let b = lens.len();
        ec.packing = Packing::new(lens);
        ec.dropped = drop.is_some();
        let pk = &ec.packing;
        let n = pk.total();
        let s = pk.lens[0];

        // Packed tokens and their embeddings (layer 0's input).
        ec.tokens.clear();
        for t in 0..s {
            for r in 0..pk.offsets[t + 1] - pk.offsets[t] {
                ec.tokens.push(src[pk.order[r] * width + t]);
            }
        }
        ec.inputs.resize_with(layers, Vec::new);
        ec.rev_inputs.resize_with(layers, Vec::new);
        ec.masks.resize_with(layers, Vec::new);
        ec.outs.resize_with(layers, Default::default);
        ec.caches.resize_with(layers, Default::default);
        ec.fin_h.resize_with(layers, Default::default);
        ec.fin_c.resize_with(layers, Default::default);
        grow(&mut ec.zeros, b * hd);
        ec.zeros.fill(0.0);
        grow(&mut ec.inputs[0], n * e);
        embedding::forward(
            &self.params[self.slots.src_emb.clone()],
            &ec.tokens,
            &mut ec.inputs[0][..n * e],
            e,
        );

        for k in 0..layers {
            let i = cfg.enc_input(k);
            // Dropout on this layer's input: the embedding, or the layer below.
            if let Some(rng) = drop.as_deref_mut() {
                grow(&mut ec.masks[k], n * i);
                dropout::sample_mask(&mut ec.masks[k][..n * i], cfg.dropout, rng);
                dropout::forward(&mut ec.inputs[k][..n * i], &ec.masks[k][..n * i]);
            }
            if dirs == 2 {
                grow(&mut ec.rev_inputs[k], n * i);
                pk.reverse(&ec.inputs[k][..n * i], &mut ec.rev_inputs[k][..n * i], i);
            }
            let layer = self.enc_layer(k);
            for d in 0..dirs {
                let x = if d == 0 {
                    &ec.inputs[k]
                } else {
                    &ec.rev_inputs[k]
                };
                let o = &mut ec.outs[k][d];
                grow(o, n * hd);
                grow(&mut ec.fin_h[k][d], b * hd);
                grow(&mut ec.fin_c[k][d], b * hd);
                let dir = Direction {
                    layer: &layer,
                    p: self.slots.enc[k][d].params(&self.params),
                    slots: &self.slots.enc[k][d],
                    pk,
                };
                let fin = [&mut ec.fin_h[k][d][..], &mut ec.fin_c[k][d][..]];
                let caches = &mut ec.caches[k][d];
                run_forward(&dir, x, caches, o, fin, &ec.zeros, for_backward);
            }
            // comb[p] = [fwd[p]; bwd[rev[p]]]: the next layer's input, or the keys.
            let comb = |p: usize, dst: &mut [f32]| {
                dst[..hd].copy_from_slice(&ec.outs[k][0][p * hd..(p + 1) * hd]);
                if dirs == 2 {
                    let q = pk.rev[p];
                    dst[hd..].copy_from_slice(&ec.outs[k][1][q * hd..(q + 1) * hd]);
                }
            };
            if k + 1 < layers {
                let next = &mut ec.inputs[k + 1];
                grow(next, n * h);
                for p in 0..n {
                    comb(p, &mut next[p * h..(p + 1) * h]);
                }
            } else {
                out.keys.clear();
                out.keys.resize(b * s * h, 0.0);
                for t in 0..s {
                    for r in 0..pk.offsets[t + 1] - pk.offsets[t] {
                        let at = (pk.order[r] * s + t) * h;
                        comb(pk.row(t, r), &mut out.keys[at..at + h]);
                    }
                }
            }
        }

        // Each layer's final state in batch order, directions concatenated.
        let lstm = cfg.cell.has_cell_state();
        out.final_h.resize(layers * b * h, 0.0);
        out.final_c
            .resize(if lstm { layers * b * h } else { 0 }, 0.0);
        for k in 0..layers {
            for (r, &row) in pk.order.iter().enumerate() {
                let at = (k * b + row) * h;
                for d in 0..dirs {
                    let src = r * hd..(r + 1) * hd;
                    let dst = at + d * hd..at + (d + 1) * hd;
                    out.final_h[dst.clone()].copy_from_slice(&ec.fin_h[k][d][src.clone()]);
                    if lstm {
                        out.final_c[dst].copy_from_slice(&ec.fin_c[k][d][src]);
                    }
                }
            }
        }
        out.batch = b;
        out.src_len = s;
        out.lens.clear();
        out.lens.extend_from_slice(lens);
        out.mask.clear();
        out.mask
            .extend((0..b * s).map(|i| f32::from(u8::from(i % s < lens[i / s]))));
        let att = cfg.attention_layer();
        out.proj.clear();
        out.proj.resize(b * s * att.proj_size(), 0.0);
        att.project_keys(self.attn_params(), &out.keys, b * s, &mut out.proj);
    }

    /// Backward of [`Seq2Seq::encode_forward`] (run with `for_backward`): from the
    /// gradients w.r.t. the keys `[B, S, H]` and the final states `[L, B, H]`
    /// (batch order), adds every encoder gradient into `grads`.
    pub(crate) fn encode_backward(
        &self,
        ec: &mut EncoderCache,
        dkeys: &[f32],
        dfinal_h: &[f32],
        dfinal_c: &[f32],
        grads: &mut [f32],
    ) {
        let _ph = Phase::new("s2s.enc_bwd");
        let cfg = &self.config;
        let (e, h, hd, layers) = (cfg.embed, cfg.hidden, cfg.enc_hidden(), cfg.layers);
        let dirs = cfg.directions();
        let lstm = cfg.cell.has_cell_state();
        let ec = &mut *ec;
        let pk = &ec.packing;
        let (n, b) = (pk.total(), pk.lens.len());
        let s = pk.lens[0];
        let mx = e.max(h);
        // Scratch sizes.
        grow(&mut ec.d_comb, n * mx);
        for d in 0..2 {
            grow(&mut ec.d_out[d], n * hd);
            grow(&mut ec.dx[d], n * mx);
        }
        for v in [
            &mut ec.dfin_h,
            &mut ec.dfin_c,
            &mut ec.carry_h,
            &mut ec.carry_c,
            &mut ec.dh_n,
            &mut ec.dc_n,
        ] {
            grow(v, b * hd);
        }
        // The top layer's output gradient, packed: from the keys.
        for t in 0..s {
            for r in 0..pk.offsets[t + 1] - pk.offsets[t] {
                let p = pk.row(t, r);
                let at = (pk.order[r] * s + t) * h;
                ec.d_comb[p * h..(p + 1) * h].copy_from_slice(&dkeys[at..at + h]);
            }
        }
        for k in (0..layers).rev() {
            let i = cfg.enc_input(k);
            let layer = self.enc_layer(k);
            // comb[p] = [fwd[p]; bwd[rev[p]]]  →  split the gradient by direction.
            for p in 0..n {
                let src = &ec.d_comb[p * h..(p + 1) * h];
                ec.d_out[0][p * hd..(p + 1) * hd].copy_from_slice(&src[..hd]);
                if dirs == 2 {
                    let q = pk.rev[p];
                    ec.d_out[1][q * hd..(q + 1) * hd].copy_from_slice(&src[hd..]);
                }
            }
            for d in 0..dirs {
                // This direction's half of layer k's final state, by rank.
                for (r, &row) in pk.order.iter().enumerate() {
                    let at = (k * b + row) * h + d * hd;
                    let dst = r * hd..(r + 1) * hd;
                    ec.dfin_h[dst.clone()].copy_from_slice(&dfinal_h[at..at + hd]);
                    if lstm {
                        ec.dfin_c[dst].copy_from_slice(&dfinal_c[at..at + hd]);
                    }
                }
                let x = if d == 0 {
                    &ec.inputs[k]
                } else {
                    &ec.rev_inputs[k]
                };
                let dir = Direction {
                    layer: &layer,
                    p: self.slots.enc[k][d].params(&self.params),
                    slots: &self.slots.enc[k][d],
                    pk,
                };
                run_backward(
                    &dir,
                    grads,
                    x,
                    &mut ec.caches[k][d],
                    [&ec.d_out[d], &ec.dfin_h, &ec.dfin_c],
                    &mut ec.dx[d],
                    [&mut ec.carry_h, &mut ec.carry_c, &mut ec.dh_n, &mut ec.dc_n],
                );
            }
            // Both directions read the same input: d_in[p] = dx_fwd[p] + dx_bwd[rev[p]].
            let d_in = &mut ec.d_comb[..n * i];
            d_in.copy_from_slice(&ec.dx[0][..n * i]);
            if dirs == 2 {
                for p in 0..n {
                    let q = pk.rev[p];
                    for (a, &v) in d_in[p * i..(p + 1) * i]
                        .iter_mut()
                        .zip(&ec.dx[1][q * i..(q + 1) * i])
                    {
                        *a += v;
                    }
                }
            }
            if ec.dropped {
                dropout::backward(d_in, &ec.masks[k][..n * i]);
            }
        }
        let [demb] = disjoint_mut(grads, [self.slots.src_emb.clone()]);
        embedding::backward(&ec.tokens, &ec.d_comb[..n * e], demb, e);
    }
}
