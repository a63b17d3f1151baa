//! The Elman RNN cells (PyTorch `nn.RNN`, `nonlinearity='tanh'` or
//! `'relu'`), one unit at a time: forward and backward side by side.
//!
//! Per unit, from the sum `a = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh` (row
//! `[H]`, one gate block):
//!
//! ```text
//! tanh:  h = tanh(a)
//! relu:  h = max(a, 0)
//! ```
//!
//! Each backward takes the forward's output `h`, which is what the layer keeps.

use recurrent_kernels::activation::{dtanh, tanh};
use recurrent_kernels::multiversion;

/// `h = tanh(a)`.
#[inline(always)]
pub fn tanh_forward(a: f32) -> f32 {
    tanh(a)
}

/// Backward of [`tanh_forward`] (`h = tanh(a)`): `da = dh·(1 - h²)`.
#[inline(always)]
pub fn tanh_backward(h: f32, dh: f32) -> f32 {
    dh * dtanh(h)
}

/// `h = max(a, 0)`.
#[inline(always)]
pub fn relu_forward(a: f32) -> f32 {
    a.max(0.0)
}

/// Backward of [`relu_forward`] (`h = max(a, 0)`): `dh` where `h > 0`, else 0
/// (0 at the kink, as PyTorch).
#[inline(always)]
pub fn relu_backward(h: f32, dh: f32) -> f32 {
    if h > 0.0 {
        dh
    } else {
        0.0
    }
}

multiversion! {
    /// The tanh cell over a row of units: `h = tanh(a)`, equal lengths.
    pub fn tanh_forward_units(a: &[f32], h: &mut [f32]) => tanh_forward_units_body
}

#[inline(always)]
fn tanh_forward_units_body(a: &[f32], h: &mut [f32]) {
    for (o, &a) in h.iter_mut().zip(a) {
        *o = tanh_forward(a);
    }
}

multiversion! {
    /// Backward of [`tanh_forward_units`]: `da = dh ⊙ (1 - h²)`, equal lengths.
    pub fn tanh_backward_units(da: &mut [f32], dh: &[f32], h: &[f32]) => tanh_backward_units_body
}

#[inline(always)]
fn tanh_backward_units_body(da: &mut [f32], dh: &[f32], h: &[f32]) {
    for ((d, &dh), &h) in da.iter_mut().zip(dh).zip(h) {
        *d = tanh_backward(h, dh);
    }
}

/// The ReLU cell over a row of units: `h = max(a, 0)`, equal lengths.
pub fn relu_forward_units(a: &[f32], h: &mut [f32]) {
    for (o, &a) in h.iter_mut().zip(a) {
        *o = relu_forward(a);
    }
}

/// The ReLU cell in place, `a` becoming `h`.
pub fn relu_in_place(v: &mut [f32]) {
    for x in v {
        *x = relu_forward(*x);
    }
}

/// Backward of [`relu_forward_units`]: `da = dh` where `h > 0`, else 0.
pub fn relu_backward_units(da: &mut [f32], dh: &[f32], h: &[f32]) {
    for ((d, &dh), &h) in da.iter_mut().zip(dh).zip(h) {
        *d = relu_backward(h, dh);
    }
}
