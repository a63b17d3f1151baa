//! Gradients handed out as the backward pass finishes them.

/// Receives each parameter tensor's gradient as soon as the backward pass has
/// finished it, so that data-parallel training can sum the finished ones over
/// its ranks while the layers below are still being differentiated (PyTorch
/// DDP's gradient buckets). Tensors come roughly in reverse layout order: the
/// head first, then the layers from the top, the embedding last.
pub trait GradientSink {
    /// The gradient of the tensor at `offset` in the flat layout is final for
    /// this block. Every tensor is handed over exactly once per block.
    fn ready(&mut self, offset: usize, grad: &[f32]);
}
