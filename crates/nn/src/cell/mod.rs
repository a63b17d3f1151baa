//! The recurrent cells, each cell's equations once: what one step does to one
//! hidden unit, forward and backward side by side (llm.c style), plus the
//! row loops the layers and the packed inference step run them in.
//!
//! * [`lstm`]: long short-term memory, gate blocks `i f g o`;
//! * [`gru`]: gated recurrent unit, gate blocks `r z n`;
//! * [`rnn`]: the Elman RNN with a tanh or ReLU nonlinearity.
//!
//! The training layer ([`crate::recurrent`]), the layer-normalized layer
//! ([`crate::ln_recurrent`], forward) and the inference step
//! (`recurrent_model::infer`) all compute a unit through these functions:
//! the same operations in the same order with the same
//! [`recurrent_kernels::activation`] functions, with FMA contraction off, so
//! every path and every instruction set gives the same bits for the same
//! sums. The row loops dispatch to AVX-512 or AVX2 builds of themselves at
//! run time ([`recurrent_kernels::multiversion`]); the unit functions are
//! `#[inline(always)]` so they vectorize inside them.

pub mod gru;
mod kind;
pub mod lstm;
pub mod rnn;

pub use kind::CellKind;

/// Splits one row of `G` gate blocks (`[G*H]`) into its `G` blocks of `h`.
/// Each block comes back with length exactly `h`, which lets LLVM drop the
/// bounds checks in the loops over them and vectorize them.
#[inline(always)]
fn blocks_mut<const G: usize>(row: &mut [f32], h: usize) -> [&mut [f32]; G] {
    let mut rest = &mut row[..G * h];
    std::array::from_fn(|_| {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(h);
        rest = tail;
        head
    })
}

/// Shared-reference version of [`blocks_mut`].
#[inline(always)]
fn blocks<const G: usize>(row: &[f32], h: usize) -> [&[f32]; G] {
    std::array::from_fn(|g| &row[g * h..(g + 1) * h])
}

/// Row `r` of a `[B, h]` buffer, length exactly `h`.
#[inline(always)]
fn row(v: &[f32], r: usize, h: usize) -> &[f32] {
    &v[r * h..(r + 1) * h]
}

/// Mutable version of [`row`].
#[inline(always)]
fn row_mut(v: &mut [f32], r: usize, h: usize) -> &mut [f32] {
    &mut v[r * h..(r + 1) * h]
}
