//! A layer's parameters and gradient accumulators, PyTorch shapes.

/// One layer's parameters, PyTorch shapes: `w_ih [G*H, I]`, `w_hh [G*H, H]`, biases `[G*H]`.
#[derive(Clone, Copy)]
pub struct LayerParams<'a> {
    pub w_ih: &'a [f32],
    pub w_hh: &'a [f32],
    pub b_ih: &'a [f32],
    pub b_hh: &'a [f32],
}

/// Gradient accumulators with the shapes of [`LayerParams`]; backward adds into them.
pub struct LayerGrads<'a> {
    pub w_ih: &'a mut [f32],
    pub w_hh: &'a mut [f32],
    pub b_ih: &'a mut [f32],
    pub b_hh: &'a mut [f32],
}
