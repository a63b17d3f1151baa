//! A traced forward: the model's own forward pass over one stream of tokens,
//! block by block, showing each block's logits and every layer's outputs,
//! cell states and activated gates (for views of what hidden units do).

use super::{LanguageModel, Regularization, State, TokenBlock, Workspace};

/// What one layer computed over a traced block of `T` steps.
#[derive(Clone, Copy, Debug)]
pub struct LayerTrace<'a> {
    /// Units `H` of the layer.
    pub hidden: usize,
    /// `[T, H]` outputs `h_t`.
    pub h: &'a [f32],
    /// `[T, H]` LSTM cell states `c_t` (empty for other cells).
    pub c: &'a [f32],
    /// `[T, G*H]` activated gates (LSTM `i f g o`, GRU `r z n`; empty for a
    /// plain RNN, whose only activation is `h`).
    pub gates: &'a [f32],
}

/// One traced block: steps `start..start + steps` of the stream.
#[derive(Clone, Debug)]
pub struct TraceBlock<'a> {
    /// The stream position of the block's first step.
    pub start: usize,
    /// Steps `T` in the block.
    pub steps: usize,
    /// `[T, V]` next-token logits after each step.
    pub logits: &'a [f32],
    /// Each layer's trace, bottom first.
    pub layers: Vec<LayerTrace<'a>>,
}

impl LanguageModel {
    /// Runs the forward (no dropout) over one stream of `tokens` from `state`
    /// (batch 1) in blocks of at most `block` steps, calling `visit` with each
    /// block's trace; `state` ends after the last token. The logits and
    /// outputs are exactly what evaluation computes for the same blocks.
    pub fn trace(
        &self,
        ws: &mut Workspace,
        tokens: &[u32],
        state: &mut State,
        block: usize,
        mut visit: impl FnMut(&TraceBlock<'_>),
    ) {
        assert_eq!(state.batch, 1, "a trace follows one stream");
        let off = Regularization::default();
        let cfg = &self.config;
        let v = cfg.vocab_size;
        let has_gates = cfg.cell.gates() > 1;
        let mut start = 0;
        while start < tokens.len() {
            let t = block.max(1).min(tokens.len() - start);
            let data = TokenBlock::new(&tokens[start..start + t], &[], t, 1);
            self.forward(ws, &data, state, None, &off, false);
            let layers = (0..cfg.layers)
                .map(|k| {
                    let h = cfg.layer_hidden(k);
                    let gh = cfg.cell.gates() * h;
                    let (out, c, gates) = if cfg.layer_norm {
                        let cache = &ws.ln_caches[k];
                        (cache.output(h), cache.cell_states(h), cache.gates(gh))
                    } else {
                        let cache = &ws.caches[k];
                        (cache.output(h), cache.cell_states(h), cache.gates(gh))
                    };
                    LayerTrace {
                        hidden: h,
                        h: out,
                        c: if cfg.cell.has_cell_state() { c } else { &[] },
                        gates: if has_gates { gates } else { &[] },
                    }
                })
                .collect();
            visit(&TraceBlock {
                start,
                steps: t,
                logits: &ws.logits[..t * v],
                layers,
            });
            start += t;
        }
    }
}
