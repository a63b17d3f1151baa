//! One training block: forward, loss, backward.

use recurrent_kernels::Rng;

use crate::check;
use crate::config::ModelError;

use super::{
    BlockStats, GradientSink, LanguageModel, Regularization, State, TokenBlock, Workspace,
};

impl LanguageModel {
    /// One training block: forward from `state`, loss against the block's
    /// targets, backward. Adds the gradient of the mean loss into `grads`
    /// (same layout as `params`).
    ///
    /// # Errors
    /// [`ModelError`] when the block does not fit the model or `state` (see
    /// [`LanguageModel::evaluate_block`]) or `grads` is not `params`' length.
    pub fn train_block(
        &self,
        ws: &mut Workspace,
        data: TokenBlock<'_>,
        state: &mut State,
        dropout_rng: &mut Rng,
        grads: &mut [f32],
    ) -> Result<BlockStats, ModelError> {
        let off = Regularization::default();
        self.train_block_regularized(ws, data, state, &off, dropout_rng, grads)
    }

    /// [`LanguageModel::train_block`] with AWD-LSTM's regularizers `reg`: masks
    /// are drawn from `dropout_rng` for this block, and the gradient of
    /// cross-entropy + AR + TAR is added into `grads`. The returned `loss` is
    /// the cross-entropy alone; `ar` and `tar` report the penalties.
    ///
    /// # Errors
    /// As [`LanguageModel::train_block`], and when `reg` is out of range.
    pub fn train_block_regularized(
        &self,
        ws: &mut Workspace,
        data: TokenBlock<'_>,
        state: &mut State,
        reg: &Regularization,
        dropout_rng: &mut Rng,
        grads: &mut [f32],
    ) -> Result<BlockStats, ModelError> {
        self.train_block_with_sink(ws, data, state, reg, dropout_rng, grads, None)
    }

    /// [`LanguageModel::train_block_regularized`] that hands each tensor's
    /// gradient to `sink`, when given, as soon as the backward pass has
    /// finished it (see [`GradientSink`]); `grads` ends the same either way.
    ///
    /// # Errors
    /// As [`LanguageModel::train_block_regularized`].
    #[allow(clippy::too_many_arguments)] // the regularized block's, and the sink
    pub fn train_block_with_sink(
        &self,
        ws: &mut Workspace,
        data: TokenBlock<'_>,
        state: &mut State,
        reg: &Regularization,
        dropout_rng: &mut Rng,
        grads: &mut [f32],
        sink: Option<&mut dyn GradientSink>,
    ) -> Result<BlockStats, ModelError> {
        data.check(&self.config, state, true)?;
        check::len("grads", self.params.len(), grads.len())?;
        reg.validate()?;
        self.forward(ws, &data, state, Some(dropout_rng), reg, true);
        Ok(self.backward(ws, &data, grads, None, sink))
    }

    /// Forward and backward without dropout, returning the loss, the logits and
    /// the gradient w.r.t. the initial state; for conformance tests.
    ///
    /// # Errors
    /// As [`LanguageModel::train_block`].
    pub fn loss_and_gradients(
        &self,
        tokens: &[u32],
        targets: &[u32],
        t: usize,
        b: usize,
        state: &mut State,
        grads: &mut [f32],
    ) -> Result<(BlockStats, Vec<f32>, State), ModelError> {
        TokenBlock::new(tokens, targets, t, b).check(&self.config, state, true)?;
        check::len("grads", self.params.len(), grads.len())?;
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
            None,
        );
        Ok((stats, logits, dstate))
    }
}
