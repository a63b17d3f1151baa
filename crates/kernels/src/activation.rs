//! Scalar activation functions shared by the layers. They are written so the
//! compiler can vectorize loops over them; each backward form takes the
//! forward *output*, which is what the layers keep.

/// Logistic sigmoid `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Hyperbolic tangent.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    x.tanh()
}

/// Derivative of sigmoid at the point whose output is `y`.
#[inline(always)]
pub fn dsigmoid(y: f32) -> f32 {
    y * (1.0 - y)
}

/// Derivative of tanh at the point whose output is `y`.
#[inline(always)]
pub fn dtanh(y: f32) -> f32 {
    1.0 - y * y
}

/// Rectified linear unit.
#[inline(always)]
pub fn relu(x: f32) -> f32 {
    x.max(0.0)
}

/// Derivative of ReLU at the point whose output is `y` (0 at the kink, as PyTorch).
#[inline(always)]
pub fn drelu(y: f32) -> f32 {
    if y > 0.0 {
        1.0
    } else {
        0.0
    }
}
