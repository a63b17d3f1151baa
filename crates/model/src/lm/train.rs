//! One training block: forward, loss, backward.

use recurrent_kernels::Rng;

use super::{BlockStats, LanguageModel, Regularization, State, TokenBlock, Workspace};

impl LanguageModel {
    /// One training block: forward from `state`, loss against the block's
    /// targets, backward. Adds the gradient of the mean loss into `grads`
    /// (same layout as `params`).
    pub fn train_block(
        &self,
        ws: &mut Workspace,
        data: TokenBlock<'_>,
        state: &mut State,
        dropout_rng: &mut Rng,
        grads: &mut [f32],
    ) -> BlockStats {
        let off = Regularization::default();
        self.train_block_regularized(ws, data, state, &off, dropout_rng, grads)
    }

    /// [`LanguageModel::train_block`] with AWD-LSTM's regularizers `reg`: masks
    /// are drawn from `dropout_rng` for this block, and the gradient of
    /// cross-entropy + AR + TAR is added into `grads`. The returned `loss` is
    /// the cross-entropy alone; `ar` and `tar` report the penalties.
    pub fn train_block_regularized(
        &self,
        ws: &mut Workspace,
        data: TokenBlock<'_>,
        state: &mut State,
        reg: &Regularization,
        dropout_rng: &mut Rng,
        grads: &mut [f32],
    ) -> BlockStats {
        self.forward(ws, &data, state, Some(dropout_rng), reg, true);
        self.backward(ws, &data, grads, None)
    }

    /// Forward and backward without dropout, returning the loss, the logits and
    /// the gradient w.r.t. the initial state; for conformance tests.
    pub fn loss_and_gradients(
        &self,
        tokens: &[u32],
        targets: &[u32],
        t: usize,
        b: usize,
        state: &mut State,
        grads: &mut [f32],
    ) -> (BlockStats, Vec<f32>, State) {
        let mut ws = Workspace::default();
        let off = Regularization::default();
        self.forward(
            &mut ws,
            &TokenBlock::new(tokens, &[], t, b),
            state,
            None,
            &off,
            true,
        );
        let logits = ws.logits[..t * b * self.config.vocab_size].to_vec();
        let mut dstate = State::zeros(&self.config, b);
        let stats = self.backward(
            &mut ws,
            &TokenBlock::new(tokens, targets, t, b),
            grads,
            Some(&mut dstate),
        );
        (stats, logits, dstate)
    }
}
