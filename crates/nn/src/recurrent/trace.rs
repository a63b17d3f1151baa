//! Read access to what a forward pass kept, for tools that look inside the
//! network (gate activations, cell states) rather than train it.

use super::LayerCache;

impl LayerCache {
    /// The activated gates of the last forward, `[T*B, G*H]` (`gate_rows` =
    /// `G*H`): LSTM `σ(i) σ(f) tanh(g) σ(o)`, GRU `σ(r) σ(z) tanh(n)`. For a
    /// plain RNN these are the pre-activation sums (its output is `h`).
    pub fn gates(&self, gate_rows: usize) -> &[f32] {
        &self.gates[..self.steps * self.batch * gate_rows]
    }

    /// The LSTM cell states of the last forward, `[T*B, H]` (empty for other cells).
    pub fn cell_states(&self, hidden: usize) -> &[f32] {
        let n = self.steps * self.batch * hidden;
        if self.c.len() < n {
            &[]
        } else {
            &self.c[..n]
        }
    }
}
