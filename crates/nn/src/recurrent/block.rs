//! The small structs a layer's forward and backward take instead of long
//! positional lists: the block's shape and start, what its backward receives
//! from above, and where it writes the gradients of its inputs.

/// A block of `steps` (`T`) time steps of `batch` (`B`) streams, and the
/// state it starts from.
#[derive(Clone, Copy, Debug)]
pub struct Block<'a> {
    /// Time steps, `T`.
    pub steps: usize,
    /// Streams, `B`.
    pub batch: usize,
    /// Initial hidden state, `[B, H]`.
    pub h0: &'a [f32],
    /// Initial cell state, `[B, H]` (read by LSTM only).
    pub c0: &'a [f32],
    /// `[T*B]`, 0 where a stream starts a new document at that step: its
    /// state is reset to zero before the step (and its gradient cut there).
    pub keep: Option<&'a [f32]>,
}

impl<'a> Block<'a> {
    /// `steps x batch` from `h0` (and `c0`), with no resets.
    pub fn new(steps: usize, batch: usize, h0: &'a [f32], c0: &'a [f32]) -> Block<'a> {
        Block {
            steps,
            batch,
            h0,
            c0,
            keep: None,
        }
    }

    /// The same block with the reset mask `keep`.
    pub fn with_keep(self, keep: Option<&'a [f32]>) -> Block<'a> {
        Block { keep, ..self }
    }
}

/// A block's input given as rows of a table picked by token: step input `r`
/// is `rows[tokens[r]]` (embeddings), `rows: [V, I]`.
#[derive(Clone, Copy, Debug)]
pub struct TableInput<'a> {
    /// The table, `[V, I]`.
    pub rows: &'a [f32],
    /// One row index per step input, `[T*B]`.
    pub tokens: &'a [u32],
}

/// What a block's backward receives from above: the loss gradients w.r.t.
/// the outputs and the final state, and the forward's reset mask.
#[derive(Clone, Copy, Debug, Default)]
pub struct Upstream<'a> {
    /// W.r.t. the outputs, `[T*B, H]`.
    pub dy: &'a [f32],
    /// W.r.t. the final hidden state, `[B, H]` (none: zero).
    pub dh_n: Option<&'a [f32]>,
    /// W.r.t. the final cell state, `[B, H]` (LSTM; none: zero).
    pub dc_n: Option<&'a [f32]>,
    /// The forward's `keep` ([`Block::keep`]).
    pub keep: Option<&'a [f32]>,
}

impl<'a> Upstream<'a> {
    /// Only output gradients: none for the final state, no resets.
    pub fn outputs(dy: &'a [f32]) -> Upstream<'a> {
        Upstream {
            dy,
            ..Upstream::default()
        }
    }
}

/// Where a block's backward writes the gradients of its inputs (none: not
/// wanted); it overwrites them.
#[derive(Debug, Default)]
pub struct Downstream<'a> {
    /// W.r.t. the inputs, `[T*B, I]` (the table rows `[V, I]` for
    /// [`crate::recurrent::RecurrentLayer::backward_table`], added into).
    pub dx: Option<&'a mut [f32]>,
    /// W.r.t. the initial hidden state, `[B, H]`.
    pub dh0: Option<&'a mut [f32]>,
    /// W.r.t. the initial cell state, `[B, H]`.
    pub dc0: Option<&'a mut [f32]>,
}

/// What the weight gradients of a backward are made of (see
/// [`crate::recurrent::LayerCache::backward_parts`]).
#[derive(Clone, Copy, Debug)]
pub struct GateGrads<'a> {
    /// The state each step started from, `[T*B, H]`.
    pub hprev: &'a [f32],
    /// Hidden-side pre-activation gradients, `[T*B, G*H]`.
    pub dg_hh: &'a [f32],
    /// Input-side ones, `[T*B, G*H]` (`dg_hh` for every cell but GRU).
    pub dg_ih: &'a [f32],
}
