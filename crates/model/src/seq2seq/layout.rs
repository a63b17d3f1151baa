//! The flat parameter layout of a seq2seq model: every tensor's PyTorch-style
//! name, shape and offset in one buffer, and the resolved ranges the passes use.
//!
//! Order and names (`{k}` a layer, `H` hidden, `Hd` the hidden width of one
//! encoder direction, `G` the cell's gate count, `A = H`):
//!
//! | name | shape | when |
//! | --- | --- | --- |
//! | `encoder.embedding.weight` | `[V_src, E]` | always (also the decoder's when shared) |
//! | `encoder.rnn.{weight_ih,weight_hh,bias_ih,bias_hh}_l{k}` | `[G*Hd, I_k]`, `[G*Hd, Hd]`, `[G*Hd]` ×2 | per layer |
//! | the same with suffix `_reverse` | as above | bidirectional, after each layer's forward direction |
//! | `bridge.h.{k}.weight`, `bridge.h.{k}.bias` | `[H, H]`, `[H]` | linear bridge |
//! | `bridge.c.{k}.weight`, `bridge.c.{k}.bias` | `[H, H]`, `[H]` | linear bridge, LSTM |
//! | `decoder.embedding.weight` | `[V_tgt, E]` | unless shared |
//! | `decoder.rnn.{weight_ih,weight_hh,bias_ih,bias_hh}_l{k}` | `[G*H, I_k]`, … | per layer; `I_0 = E (+ H with input feeding)` |
//! | `decoder.attention.linear_in.weight` | `[H, H]` | general |
//! | `decoder.attention.{query,key}.weight`, `key.bias`, `v.weight` | `[A, H]` ×2, `[A]`, `[1, A]` | additive |
//! | `decoder.attention.linear_out.weight`, `.bias` | `[H, 2H]`, `[H]` | always: `h~ = tanh(W [ctx; h] + b)` |
//! | `generator.weight` | `[V_tgt, H]` | unless tied (then it reads the decoder embedding) |
//! | `generator.bias` | `[V_tgt]` | always |
//!
//! The encoder's recurrent tensors are exactly those of a PyTorch `nn.LSTM` /
//! `nn.GRU` with `hidden_size = Hd`, `num_layers = layers`,
//! `bidirectional = …`, so they load into one by name.

use std::ops::Range;

use recurrent_nn::recurrent::{LayerGrads, LayerParams};

use super::config::{Bridge, Seq2SeqConfig};
use crate::params::{ParamEntry, ParamLayout};

/// The layout for a validated `config`.
pub fn layout(config: &Seq2SeqConfig) -> ParamLayout {
    let mut l = ParamLayout {
        entries: Vec::new(),
        total: 0,
    };
    let mut push = |name: String, shape: Vec<usize>| {
        let entry = ParamEntry {
            name,
            shape,
            offset: l.total,
        };
        l.total += entry.len();
        l.entries.push(entry);
    };
    let (e, h, g) = (config.embed, config.hidden, config.cell.gates());
    push("encoder.embedding.weight".into(), vec![config.src_vocab, e]);
    let hd = config.enc_hidden();
    for k in 0..config.layers {
        for sfx in ["", "_reverse"].iter().take(config.directions()) {
            let i = config.enc_input(k);
            push(format!("encoder.rnn.weight_ih_l{k}{sfx}"), vec![g * hd, i]);
            push(format!("encoder.rnn.weight_hh_l{k}{sfx}"), vec![g * hd, hd]);
            push(format!("encoder.rnn.bias_ih_l{k}{sfx}"), vec![g * hd]);
            push(format!("encoder.rnn.bias_hh_l{k}{sfx}"), vec![g * hd]);
        }
    }
    if config.bridge == Bridge::Linear {
        let parts: &[&str] = if config.cell.has_cell_state() {
            &["h", "c"]
        } else {
            &["h"]
        };
        for part in parts {
            for k in 0..config.layers {
                push(format!("bridge.{part}.{k}.weight"), vec![h, h]);
                push(format!("bridge.{part}.{k}.bias"), vec![h]);
            }
        }
    }
    if !config.share_embeddings {
        push("decoder.embedding.weight".into(), vec![config.tgt_vocab, e]);
    }
    for k in 0..config.layers {
        let i = config.dec_input(k);
        push(format!("decoder.rnn.weight_ih_l{k}"), vec![g * h, i]);
        push(format!("decoder.rnn.weight_hh_l{k}"), vec![g * h, h]);
        push(format!("decoder.rnn.bias_ih_l{k}"), vec![g * h]);
        push(format!("decoder.rnn.bias_hh_l{k}"), vec![g * h]);
    }
    for (name, shape) in config.attention_layer().param_shapes() {
        push(format!("decoder.attention.{name}"), shape);
    }
    push("decoder.attention.linear_out.weight".into(), vec![h, 2 * h]);
    push("decoder.attention.linear_out.bias".into(), vec![h]);
    if !config.tie {
        push("generator.weight".into(), vec![config.tgt_vocab, h]);
    }
    push("generator.bias".into(), vec![config.tgt_vocab]);
    l
}

/// Where one recurrent layer's four tensors live.
#[derive(Clone, Debug)]
pub(crate) struct RnnSlots {
    pub w_ih: Range<usize>,
    pub w_hh: Range<usize>,
    pub b_ih: Range<usize>,
    pub b_hh: Range<usize>,
}

impl RnnSlots {
    pub fn params<'a>(&self, p: &'a [f32]) -> LayerParams<'a> {
        LayerParams {
            w_ih: &p[self.w_ih.clone()],
            w_hh: &p[self.w_hh.clone()],
            b_ih: &p[self.b_ih.clone()],
            b_hh: &p[self.b_hh.clone()],
        }
    }

    pub fn grads<'a>(&self, g: &'a mut [f32]) -> LayerGrads<'a> {
        let [w_ih, w_hh, b_ih, b_hh] = disjoint_mut(
            g,
            [
                self.w_ih.clone(),
                self.w_hh.clone(),
                self.b_ih.clone(),
                self.b_hh.clone(),
            ],
        );
        LayerGrads {
            w_ih,
            w_hh,
            b_ih,
            b_hh,
        }
    }
}

/// A linear map's weight and bias.
#[derive(Clone, Debug)]
pub(crate) struct LinearSlots {
    pub w: Range<usize>,
    pub b: Range<usize>,
}

/// Every tensor's range, resolved once from the layout (names are looked up
/// only here). Unused tensors are empty ranges; tied or shared tensors are
/// the same range twice.
#[derive(Clone, Debug)]
pub(crate) struct Slots {
    pub src_emb: Range<usize>,
    pub tgt_emb: Range<usize>,
    /// `[layer][direction]`
    pub enc: Vec<Vec<RnnSlots>>,
    /// Linear bridge per layer, for `h` and (LSTM) `c`.
    pub bridge_h: Vec<LinearSlots>,
    pub bridge_c: Vec<LinearSlots>,
    pub dec: Vec<RnnSlots>,
    /// `linear_in`, `query`, `key`, `key_bias`, `v` (empty when unused).
    pub attn: [Range<usize>; 5],
    pub combine: LinearSlots,
    pub generator: LinearSlots,
}

impl Slots {
    pub fn new(config: &Seq2SeqConfig, layout: &ParamLayout) -> Slots {
        let r = |name: &str| layout.get(name).map_or(0..0, ParamEntry::range);
        let rnn = |prefix: &str, k: usize, sfx: &str| RnnSlots {
            w_ih: r(&format!("{prefix}.weight_ih_l{k}{sfx}")),
            w_hh: r(&format!("{prefix}.weight_hh_l{k}{sfx}")),
            b_ih: r(&format!("{prefix}.bias_ih_l{k}{sfx}")),
            b_hh: r(&format!("{prefix}.bias_hh_l{k}{sfx}")),
        };
        let src_emb = r("encoder.embedding.weight");
        let tgt_emb = if config.share_embeddings {
            src_emb.clone()
        } else {
            r("decoder.embedding.weight")
        };
        let bridge = |part: &str| -> Vec<LinearSlots> {
            (0..config.layers)
                .map(|k| LinearSlots {
                    w: r(&format!("bridge.{part}.{k}.weight")),
                    b: r(&format!("bridge.{part}.{k}.bias")),
                })
                .collect()
        };
        let a = |n: &str| r(&format!("decoder.attention.{n}"));
        Slots {
            enc: (0..config.layers)
                .map(|k| {
                    ["", "_reverse"][..config.directions()]
                        .iter()
                        .map(|sfx| rnn("encoder.rnn", k, sfx))
                        .collect()
                })
                .collect(),
            bridge_h: bridge("h"),
            bridge_c: bridge("c"),
            dec: (0..config.layers)
                .map(|k| rnn("decoder.rnn", k, ""))
                .collect(),
            attn: [
                a("linear_in.weight"),
                a("query.weight"),
                a("key.weight"),
                a("key.bias"),
                a("v.weight"),
            ],
            combine: LinearSlots {
                w: a("linear_out.weight"),
                b: a("linear_out.bias"),
            },
            generator: LinearSlots {
                w: if config.tie {
                    tgt_emb.clone()
                } else {
                    r("generator.weight")
                },
                b: r("generator.bias"),
            },
            src_emb,
            tgt_emb,
        }
    }
}

/// Disjoint mutable views of `buf` at `ranges`, in the order given. Empty
/// ranges give empty slices; the others must not overlap (internal layout
/// ranges, so an overlap is a bug and panics).
pub(crate) fn disjoint_mut<const N: usize>(
    buf: &mut [f32],
    ranges: [Range<usize>; N],
) -> [&mut [f32]; N] {
    let mut order: Vec<usize> = (0..N).filter(|&i| !ranges[i].is_empty()).collect();
    order.sort_by_key(|&i| ranges[i].start);
    let mut out: [Option<&mut [f32]>; N] = std::array::from_fn(|_| None);
    let (mut rest, mut at) = (buf, 0);
    for i in order {
        let r = &ranges[i];
        assert!(r.start >= at, "overlapping parameter ranges");
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(r.start - at);
        let (mine, tail) = tail.split_at_mut(r.len());
        out[i] = Some(mine);
        rest = tail;
        at = r.end;
    }
    out.map(|s| s.unwrap_or(&mut []))
}
