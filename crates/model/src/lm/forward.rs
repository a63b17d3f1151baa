//! The forward pass over a block, evaluation and single reference steps.

use recurrent_kernels::profile::Phase;
use recurrent_kernels::{MatMut, MatRef, Rng};
use recurrent_nn::recurrent::{Block, TableInput};
use recurrent_nn::{dropout, embedding, linear, loss, LayerCache, LnCache};

use crate::config::ModelError;

use super::{grow, BlockStats, LanguageModel, Regularization, State, TokenBlock, Workspace};

impl LanguageModel {
    /// Whether layer 0 should take its input projection from a table of every
    /// embedding's projection (`[V, G*H]`, gathered per step) rather than one
    /// GEMM over the block's `n` embedding rows: when the vocabulary is
    /// smaller than the block (character models), and nothing changes the
    /// embedding rows on the way in (dropout on them, embedding or input
    /// dropout), which would make the inputs more than `V` distinct rows.
    pub(super) fn input_table_pays(&self, n: usize, dropout: bool, reg: &Regularization) -> bool {
        let cfg = &self.config;
        cfg.embed > 0
            && !cfg.layer_norm
            && cfg.vocab_size <= n
            && !dropout
            && reg.dropout_embed == 0.0
            && reg.dropout_input == 0.0
    }

    /// Runs the network over the block's tokens (its targets are not read)
    /// from `state`, leaving the logits `[T*B, V]` in the workspace and the
    /// final state in `state`.
    /// With `dropout_rng`, dropout and `reg` are applied (training) and masks are kept.
    pub(super) fn forward(
        &self,
        ws: &mut Workspace,
        data: &TokenBlock<'_>,
        state: &mut State,
        mut dropout_rng: Option<&mut Rng>,
        reg: &Regularization,
        for_backward: bool,
    ) {
        let (tokens, t, b, keep) = (data.tokens, data.steps, data.batch, data.keep);
        let cfg = &self.config;
        let (n, v, layers) = (t * b, cfg.vocab_size, cfg.layers);
        debug_assert_eq!(tokens.len(), n, "checked by the public entry points");
        debug_assert_eq!(state.batch, b, "checked by the public entry points");
        let p = if cfg.dropout > 0.0 {
            dropout_rng.is_some()
        } else {
            false
        };
        ws.inputs.resize_with(layers + 1, Vec::new);
        ws.masks.resize_with(layers + 1, Vec::new);
        if cfg.layer_norm {
            ws.ln_caches.resize_with(layers, LnCache::default);
        } else {
            ws.caches.resize_with(layers, LayerCache::default);
        }
        // Regularizers act in training only; the backward reads what was applied.
        ws.reg = if dropout_rng.is_some() {
            *reg
        } else {
            Regularization::default()
        };
        let reg = ws.reg;
        let weight_drop = reg.weight_drop > 0.0;
        if !reg.is_off() {
            ws.locked.resize_with(layers + 1, Vec::new);
            ws.w_hh_dropped.resize_with(layers, Vec::new);
            ws.w_hh_mask.resize_with(layers, Vec::new);
        }

        let ph = Phase::new("lm.embed");
        // Layer 0's input: embedding rows or one-hot vectors, or rows of a
        // table of every embedding's projection.
        let i0 = cfg.layer_input(0);
        grow(&mut ws.inputs[0], n * i0);
        ws.table_input = !ws.no_table && self.input_table_pays(n, p, &ws.reg);
        if ws.table_input {
            // Layer 0 gathers from its table (`forward_table`): no rows to build.
        } else if cfg.embed > 0 {
            embedding::forward(self.param("encoder.weight"), tokens, &mut ws.inputs[0], i0);
            if p {
                grow(&mut ws.masks[0], n * i0);
                dropout::sample_mask(
                    &mut ws.masks[0][..n * i0],
                    cfg.dropout,
                    dropout_rng.as_deref_mut().unwrap(),
                );
                dropout::forward(&mut ws.inputs[0][..n * i0], &ws.masks[0]);
            }
        } else {
            embedding::one_hot(tokens, &mut ws.inputs[0][..n * i0], v);
        }
        if let (true, Some(rng)) = (reg.dropout_embed > 0.0, dropout_rng.as_deref_mut()) {
            grow(&mut ws.word_mask, v);
            dropout::sample_mask(&mut ws.word_mask[..v], reg.dropout_embed, rng);
            embedding::drop_words(&mut ws.inputs[0][..n * i0], tokens, &ws.word_mask, i0);
        }
        if let (true, Some(rng)) = (reg.dropout_input > 0.0, dropout_rng.as_deref_mut()) {
            let mask = &mut ws.locked[0];
            grow(mask, b * i0);
            dropout::sample_mask(&mut mask[..b * i0], reg.dropout_input, rng);
            dropout::locked_forward(&mut ws.inputs[0][..n * i0], &mask[..b * i0]);
        }

        drop(ph);
        for k in 0..layers {
            let layer = self.layer(k);
            let (h, rows) = (cfg.layer_hidden(k), cfg.state_range(k, b));
            let bh = b * h;
            let (h0, c0) = (
                &state.h[rows.clone()],
                if state.c.is_empty() {
                    &[][..]
                } else {
                    &state.c[rows.clone()]
                },
            );
            if let (true, Some(rng)) = (weight_drop, dropout_rng.as_deref_mut()) {
                // DropConnect: a fresh mask on W_hh for this block, shared by its steps.
                let w_hh = self.layer_params(k).w_hh;
                let len = w_hh.len();
                let (dropped, mask) = (&mut ws.w_hh_dropped[k], &mut ws.w_hh_mask[k]);
                grow(dropped, len);
                grow(mask, len);
                dropout::sample_apply(
                    &mut dropped[..len],
                    w_hh,
                    &mut mask[..len],
                    reg.weight_drop,
                    rng,
                );
            }
            let (below, above) = ws.inputs.split_at_mut(k + 1);
            let params = self.block_layer_params(&ws.w_hh_dropped, weight_drop, k);
            let (output, last_h, last_c) = if cfg.layer_norm {
                let cache = &mut ws.ln_caches[k];
                self.ln_layer(k).forward(
                    self.ln_params(params, k),
                    &below[k],
                    Block::new(t, b, h0, c0).with_keep(keep),
                    cache,
                );
                let c = if state.c.is_empty() {
                    &[][..]
                } else {
                    cache.last_c(h)
                };
                (cache.output(h), cache.last_h(h), c)
            } else {
                let cache = &mut ws.caches[k];
                if k == 0 && ws.table_input {
                    let rows = self.param("encoder.weight");
                    layer.forward_table(
                        params,
                        TableInput { rows, tokens },
                        Block::new(t, b, h0, c0).with_keep(keep),
                        cache,
                        for_backward,
                    );
                } else {
                    layer.forward(
                        params,
                        &below[k],
                        Block::new(t, b, h0, c0).with_keep(keep),
                        cache,
                        for_backward,
                    );
                }
                let c = if state.c.is_empty() {
                    &[][..]
                } else {
                    cache.last_c(h)
                };
                (cache.output(h), cache.last_h(h), c)
            };
            state.h[rows.clone()].copy_from_slice(last_h);
            if !state.c.is_empty() {
                state.c[rows].copy_from_slice(last_c);
            }
            let _ph = Phase::new("lm.copy_drop");
            // The next layer (or the head) reads the dropped-out output.
            let next = &mut above[0];
            grow(next, n * h);
            if p {
                let mask = &mut ws.masks[k + 1];
                grow(mask, n * h);
                dropout::sample_apply(
                    &mut next[..n * h],
                    output,
                    &mut mask[..n * h],
                    cfg.dropout,
                    dropout_rng.as_deref_mut().unwrap(),
                );
            } else {
                next[..n * h].copy_from_slice(output);
            }
            let p_locked = reg.locked_after(k, layers);
            if let (true, Some(rng)) = (p_locked > 0.0, dropout_rng.as_deref_mut()) {
                let mask = &mut ws.locked[k + 1];
                grow(mask, bh);
                dropout::sample_mask(&mut mask[..bh], p_locked, rng);
                dropout::locked_forward(&mut next[..n * h], &mask[..bh]);
            }
        }

        let _ph = Phase::new("head.fwd");
        let h = cfg.top_hidden();
        let mut head_in: &[f32] = &ws.inputs[layers][..n * h];
        if cfg.dense > 0 {
            grow(&mut ws.dense_out, n * cfg.dense);
            linear::forward(
                MatRef::new(head_in, n, h),
                MatRef::new(self.param("dense.weight"), cfg.dense, h),
                self.param("dense.bias"),
                MatMut::new(&mut ws.dense_out, n, cfg.dense),
            );
            linear::relu_forward(&mut ws.dense_out[..n * cfg.dense]);
            head_in = &ws.dense_out[..n * cfg.dense];
        }
        grow(&mut ws.logits, n * v);
        linear::forward(
            MatRef::new(head_in, n, cfg.head_input()),
            MatRef::new(self.decoder_weight(), v, cfg.head_input()),
            self.param("decoder.bias"),
            MatMut::new(&mut ws.logits, n, v),
        );
    }

    /// Forward only, no dropout: the loss of the block's targets given its
    /// tokens, carrying `state`.
    ///
    /// # Errors
    /// [`ModelError`] when the block's tokens, targets or reset mask are not
    /// `T*B` long, an id is outside the vocabulary, or `state` is not `B`
    /// streams of this model.
    pub fn evaluate_block(
        &self,
        ws: &mut Workspace,
        data: TokenBlock<'_>,
        state: &mut State,
    ) -> Result<BlockStats, ModelError> {
        data.check(&self.config, state, true)?;
        let off = Regularization::default();
        self.forward(ws, &data, state, None, &off, false);
        let (n, targets) = (data.steps * data.batch, data.targets);
        let v = self.config.vocab_size;
        let (loss, correct) =
            loss::softmax_cross_entropy(&ws.logits[..n * v], targets, v, None, 1.0);
        Ok(BlockStats {
            loss,
            correct,
            tokens: n,
            ..BlockStats::default()
        })
    }

    /// One generation step for `B` streams: feeds `tokens: [B]`, advances `state`,
    /// and returns the next-token logits `[B, V]`.
    ///
    /// This runs the training forward with `T = 1` (packing weights and setting
    /// up GEMMs at every call): the reference for [`crate::infer::StepModel`],
    /// which prepares the weights once and is what generation uses.
    ///
    /// # Errors
    /// [`ModelError`] when `tokens` is empty or holds an id outside the
    /// vocabulary, or `state` is not `B` streams of this model.
    pub fn step<'w>(
        &self,
        ws: &'w mut Workspace,
        tokens: &[u32],
        state: &mut State,
    ) -> Result<&'w [f32], ModelError> {
        let b = tokens.len();
        let block = TokenBlock::new(tokens, &[], 1, b);
        block.check(&self.config, state, false)?;
        let off = Regularization::default();
        self.forward(ws, &block, state, None, &off, false);
        Ok(&ws.logits[..b * self.config.vocab_size])
    }
}
