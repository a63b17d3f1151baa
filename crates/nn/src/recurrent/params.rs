//! A layer's parameters and gradient accumulators, PyTorch shapes.

/// One layer's parameters, PyTorch shapes: `w_ih [G*H, I]`, `w_hh [G*H, H]`, biases `[G*H]`.
#[derive(Clone, Copy)]
pub struct LayerParams<'a> {
    /// Input weights `[G*H, I]`.
    pub w_ih: &'a [f32],
    /// Hidden weights `[G*H, H]`.
    pub w_hh: &'a [f32],
    /// Input bias `[G*H]`.
    pub b_ih: &'a [f32],
    /// Hidden bias `[G*H]`.
    pub b_hh: &'a [f32],
}

/// Gradient accumulators with the shapes of [`LayerParams`]; backward adds into them.
pub struct LayerGrads<'a> {
    /// Gradient of `w_ih`.
    pub w_ih: &'a mut [f32],
    /// Gradient of `w_hh`.
    pub w_hh: &'a mut [f32],
    /// Gradient of `b_ih`.
    pub b_ih: &'a mut [f32],
    /// Gradient of `b_hh`.
    pub b_hh: &'a mut [f32],
}
