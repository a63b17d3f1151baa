//! The backward pass over a block.

use recurrent_kernels::profile::Phase;
use recurrent_kernels::MatRef;
use recurrent_nn::ln_recurrent::LnGrads;
use recurrent_nn::recurrent::{Downstream, LayerGrads, TableInput, Upstream};
use recurrent_nn::{activation_reg, dropout, embedding, linear, loss, CellKind};

use super::{
    grow, layer_output, BlockStats, GradientSink, LanguageModel, State, TokenBlock, Workspace,
};

impl LanguageModel {
    /// Backward from the logits in `ws` (left by `forward` with `for_backward`).
    /// When `dstate0` is given it receives the gradient w.r.t. the state the
    /// block started from (for tests). `sink`, when given, gets each tensor's
    /// gradient as soon as it is final.
    pub(super) fn backward(
        &self,
        ws: &mut Workspace,
        data: &TokenBlock<'_>,
        grads: &mut [f32],
        mut dstate0: Option<&mut State>,
        mut sink: Option<&mut dyn GradientSink>,
    ) -> BlockStats {
        let TokenBlock {
            tokens,
            targets,
            steps: t,
            batch: b,
            keep,
        } = *data;
        let cfg = &self.config;
        let (n, v, layers) = (t * b, cfg.vocab_size, cfg.layers);
        // The top layer's width; each layer's own below.
        let h = cfg.top_hidden();
        let p = cfg.dropout > 0.0;
        let reg = ws.reg;
        let weight_drop = reg.weight_drop > 0.0;
        let ph = Phase::new("loss");
        grow(&mut ws.dlogits, n * v);
        let (loss, correct) = loss::softmax_cross_entropy(
            &ws.logits[..n * v],
            targets,
            v,
            Some(&mut ws.dlogits[..n * v]),
            1.0 / n as f32,
        );

        let mut g = self.layout.split_mut(grads);
        let idx = |name: &str| self.layout.index(name);
        // Hands the finished tensors `tensors` (layout indices) to the sink.
        let mut finished = |g: &[&mut [f32]], tensors: std::ops::Range<usize>| {
            if let Some(sink) = sink.as_deref_mut() {
                for i in tensors {
                    sink.ready(self.layout.entries[i].offset, g[i]);
                }
            }
        };

        drop(ph);
        let ph = Phase::new("head.bwd");
        // Head: output projection (and dense layer) back to the top layer's output.
        let hin = cfg.head_input();
        let head_x: &[f32] = if cfg.dense > 0 {
            &ws.dense_out[..n * hin]
        } else {
            &ws.inputs[layers][..n * h]
        };
        grow(&mut ws.dhead, n * hin);
        let dec_w = if cfg.tie {
            idx("encoder.weight")
        } else {
            idx("decoder.weight")
        };
        let dec_b = idx("decoder.bias");
        {
            let (lo, hi) = if dec_w < dec_b {
                g.split_at_mut(dec_b)
            } else {
                unreachable!()
            };
            linear::backward(
                MatRef::new(head_x, n, hin),
                MatRef::new(self.decoder_weight(), v, hin),
                MatRef::new(&ws.dlogits[..n * v], n, v),
                lo[dec_w],
                hi[0],
                Some(&mut ws.dhead[..n * hin]),
            );
        }
        // A tied output projection is the embedding, finished last.
        if !cfg.tie {
            finished(&g, dec_w..dec_w + 1);
        }
        finished(&g, dec_b..dec_b + 1);
        grow(&mut ws.dy, n * h);
        if cfg.dense > 0 {
            linear::relu_backward(&ws.dense_out[..n * hin], &mut ws.dhead[..n * hin]);
            let (dw, db) = (idx("dense.weight"), idx("dense.bias"));
            let (lo, hi) = g.split_at_mut(db);
            linear::backward(
                MatRef::new(&ws.inputs[layers][..n * h], n, h),
                MatRef::new(self.param("dense.weight"), hin, h),
                MatRef::new(&ws.dhead[..n * hin], n, hin),
                lo[dw],
                hi[0],
                Some(&mut ws.dy[..n * h]),
            );
            finished(&g, dw..db + 1);
        } else {
            ws.dy[..n * h].copy_from_slice(&ws.dhead[..n * h]);
        }

        drop(ph);
        let (ar, tar) = self.penalties(ws, t, b);
        if reg.alpha > 0.0 {
            // AR reads the dropped-out output, whose gradient ws.dy holds now.
            activation_reg::ar_backward(
                &ws.inputs[layers][..n * h],
                reg.alpha,
                &mut ws.dy[..n * h],
            );
        }
        for k in (0..layers).rev() {
            let (h, rows) = (cfg.layer_hidden(k), cfg.state_range(k, b));
            let bh = b * h;
            grow(&mut ws.dh0, bh);
            grow(&mut ws.dc0, bh);
            if reg.locked_after(k, layers) > 0.0 {
                dropout::locked_backward(&mut ws.dy[..n * h], &ws.locked[k + 1][..bh]);
            }
            if p {
                let _ph = Phase::new("lm.drop_bwd");
                dropout::backward(&mut ws.dy[..n * h], &ws.masks[k + 1]);
            }
            if k + 1 == layers && reg.beta > 0.0 {
                // TAR reads the raw output: ws.dy is its gradient from here on.
                let y = layer_output(&ws.caches, &ws.ln_caches, cfg.layer_norm, k, h);
                activation_reg::tar_backward(y, t, bh, reg.beta, &mut ws.dy[..n * h]);
            }
            let layer = self.layer(k);
            let i = layer.input_size;
            let want_dx = k > 0 || (cfg.embed > 0 && !ws.table_input);
            grow(&mut ws.dx, n * i);
            let base = idx(&format!("rnn.weight_ih_l{k}"));
            let (head, rest) = g.split_at_mut(base);
            let [w_ih, w_hh, b_ih, b_hh, ln @ ..] = rest else {
                unreachable!()
            };
            let len = w_hh.len();
            if weight_drop {
                // The layer's gradient is w.r.t. the dropped W_hh; it reaches
                // the raw W_hh through the mask below.
                grow(&mut ws.dw_hh_dropped, len);
                ws.dw_hh_dropped[..len].fill(0.0);
            }
            let lg = LayerGrads {
                w_ih,
                w_hh: if weight_drop {
                    &mut ws.dw_hh_dropped[..len]
                } else {
                    w_hh
                },
                b_ih,
                b_hh,
            };
            let dx = want_dx.then_some(&mut ws.dx[..n * i]);
            let (dh0, dc0) = if dstate0.is_some() {
                (
                    Some(&mut ws.dh0[..bh]),
                    cfg.cell.has_cell_state().then_some(&mut ws.dc0[..bh]),
                )
            } else {
                (None, None)
            };
            let params = self.block_layer_params(&ws.w_hh_dropped, weight_drop, k);
            if cfg.layer_norm {
                // The layout puts the LayerNorm tensors right after the layer's.
                let lstm = cfg.cell == CellKind::Lstm;
                let [ih_gain, ih_bias, hh_gain, hh_bias, cell @ ..] = ln else {
                    unreachable!()
                };
                let (c_gain, c_bias): (&mut [f32], &mut [f32]) = match cell {
                    [c_gain, c_bias, ..] if lstm => (c_gain, c_bias),
                    _ => (&mut [], &mut []),
                };
                let grads = LnGrads {
                    base: lg,
                    ih_gain,
                    ih_bias,
                    hh_gain,
                    hh_bias,
                    c_gain,
                    c_bias,
                };
                self.ln_layer(k).backward(
                    self.ln_params(params, k),
                    grads,
                    &ws.inputs[k][..n * i],
                    Upstream {
                        dy: &ws.dy[..n * h],
                        dh_n: None,
                        dc_n: None,
                        keep,
                    },
                    &mut ws.ln_caches[k],
                    Downstream { dx, dh0, dc0 },
                );
            } else if k == 0 && ws.table_input {
                // The embedding gradient comes straight from the per-row sums.
                let enc = &mut *head[idx("encoder.weight")];
                let rows = self.param("encoder.weight");
                let cache = &mut ws.caches[k];
                let dy = &ws.dy[..n * h];
                layer.backward_table(
                    params,
                    lg,
                    TableInput { rows, tokens },
                    Upstream {
                        dy,
                        keep,
                        ..Default::default()
                    },
                    cache,
                    Downstream {
                        dx: Some(enc),
                        dh0,
                        dc0,
                    },
                );
            } else {
                layer.backward(
                    params,
                    lg,
                    &ws.inputs[k][..n * i],
                    Upstream {
                        dy: &ws.dy[..n * h],
                        dh_n: None,
                        dc_n: None,
                        keep,
                    },
                    &mut ws.caches[k],
                    Downstream { dx, dh0, dc0 },
                );
            }
            if weight_drop {
                dropout::backward_add(w_hh, &ws.dw_hh_dropped[..len], &ws.w_hh_mask[k][..len]);
            }
            // The layer's tensors (and its LayerNorm's, right after them) are final.
            let suffix = format!("_l{k}");
            let own = self.layout.entries[base..]
                .iter()
                .take_while(|e| e.name.ends_with(&suffix))
                .count();
            finished(&g, base..base + own);
            if let Some(ds) = dstate0.as_deref_mut() {
                ds.h[rows.clone()].copy_from_slice(&ws.dh0[..bh]);
                if cfg.cell.has_cell_state() {
                    ds.c[rows].copy_from_slice(&ws.dc0[..bh]);
                }
            }
            if k > 0 {
                std::mem::swap(&mut ws.dy, &mut ws.dx);
            }
        }
        if cfg.embed > 0 && !ws.table_input {
            let _ph = Phase::new("lm.embed_bwd");
            let e = cfg.embed;
            if reg.dropout_input > 0.0 {
                dropout::locked_backward(&mut ws.dx[..n * e], &ws.locked[0][..b * e]);
            }
            if reg.dropout_embed > 0.0 {
                embedding::drop_words_backward(&mut ws.dx[..n * e], tokens, &ws.word_mask, e);
            }
            if p {
                dropout::backward(&mut ws.dx[..n * e], &ws.masks[0]);
            }
            embedding::backward(tokens, &ws.dx[..n * e], g[idx("encoder.weight")], e);
        }
        if cfg.embed > 0 {
            let enc = idx("encoder.weight");
            finished(&g, enc..enc + 1);
        }
        BlockStats {
            loss,
            correct,
            tokens: n,
            ar,
            tar,
        }
    }
}
