//! The language model's state across ranks: each rank carries the hidden
//! state of its own streams (a contiguous share of the global batch), and a
//! checkpoint holds every stream's, in the global order, so that a run saved
//! by N ranks resumes with any number of them. And the gradient's buckets:
//! each is summed over the ranks as soon as the backward pass has finished
//! it.

use std::ops::Range;

use recurrent_model::{GradientSink, ModelConfig, State};

use crate::collective::{Collective, PendingSum};
use crate::engine::RunProgress;
use crate::error::ParallelError;

/// Checks that this rank was set up as rank 0 was: the same training data,
/// step and weights (a hash of their bits). Every rank must call it.
pub fn check_agreement(
    collective: &dyn Collective,
    progress: &RunProgress,
    params: &[f32],
) -> Result<(), ParallelError> {
    let weights = params.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        (h ^ u64::from(x.to_bits())).wrapping_mul(0x100_0000_01b3)
    });
    let mine = format!(
        "data {:?}, step {}, weights {weights:016x}",
        progress.train_data, progress.step
    );
    let mut leaders = mine.clone().into_bytes();
    collective.broadcast(&mut leaders);
    if leaders == mine.as_bytes() {
        return Ok(());
    }
    Err(ParallelError::Disagree {
        rank: collective.rank(),
        leader: String::from_utf8_lossy(&leaders).into_owned(),
        mine,
    })
}

/// The streams `range` of a global `[L, B, H_l]` state (`h` or `c`).
pub fn select_streams(
    config: &ModelConfig,
    global: &[f32],
    batch: usize,
    range: &Range<usize>,
) -> Vec<f32> {
    if global.is_empty() {
        return Vec::new(); // no cell state (GRU, RNN)
    }
    let mut out = Vec::with_capacity(range.len() * layer_widths(config).sum::<usize>());
    let mut at = 0;
    for h in layer_widths(config) {
        out.extend_from_slice(&global[at + range.start * h..at + range.end * h]);
        at += batch * h;
    }
    out
}

/// The local state of `range` of a global state's `h` and `c`.
pub fn local_state(
    config: &ModelConfig,
    global_h: &[f32],
    global_c: &[f32],
    batch: usize,
    range: &Range<usize>,
) -> State {
    State {
        batch: range.len(),
        h: select_streams(config, global_h, batch, range),
        c: select_streams(config, global_c, batch, range),
    }
}

/// Every rank's local `[L, b_r, H_l]` part of `h` or `c`, put together in
/// the global `[L, B, H_l]` order; the ranks' shares are `share(batch, r, ranks)`.
pub fn gather_streams(
    config: &ModelConfig,
    local: &[f32],
    batch: usize,
    collective: &dyn Collective,
) -> Vec<f32> {
    let parts = collective.gather_f32(local);
    if parts.is_empty() {
        return parts;
    }
    let ranks = collective.ranks();
    let width: usize = layer_widths(config).sum();
    let mut global = vec![0.0; batch * width];
    let mut part_at = 0;
    for r in 0..ranks {
        let range = crate::collective::share(batch, r, ranks);
        let mut layer_at = 0;
        for h in layer_widths(config) {
            let n = range.len() * h;
            global[layer_at + range.start * h..layer_at + range.end * h]
                .copy_from_slice(&parts[part_at..part_at + n]);
            part_at += n;
            layer_at += batch * h;
        }
    }
    global
}

/// The default bucket: 4 MB of gradient. PyTorch DDP's is 25 MB for models
/// a hundred times larger; a bucket should be a fraction of the gradient so
/// that the first sums start while most of the backward pass is still to do.
pub const DEFAULT_BUCKET_FLOATS: usize = 1 << 20;

/// Gathers the gradients the backward pass finishes into buckets of about
/// `cap` values and starts summing each over the ranks as soon as it is full
/// (PyTorch DDP's design); [`GradientBuckets::finish`] sums the rest and
/// writes every sum back. Each value is scaled by `weight` (this rank's share
/// of the block) first, as the single all-reduce after the backward pass
/// does, so the sums are the same.
pub struct GradientBuckets<'c> {
    collective: &'c dyn Collective,
    weight: f32,
    cap: usize,
    /// The bucket being filled, and its tensors: offset and length.
    values: Vec<f32>,
    tensors: Vec<(usize, usize)>,
    started: Vec<(PendingSum, Vec<(usize, usize)>)>,
}

impl<'c> GradientBuckets<'c> {
    /// Buckets of about `cap` values (at least one tensor each) summed over `collective`.
    pub fn new(collective: &'c dyn Collective, weight: f32, cap: usize) -> GradientBuckets<'c> {
        GradientBuckets {
            collective,
            weight,
            cap: cap.max(1),
            values: Vec::new(),
            tensors: Vec::new(),
            started: Vec::new(),
        }
    }

    /// Starts summing the bucket being filled.
    fn start(&mut self) {
        if self.tensors.is_empty() {
            return;
        }
        let values = std::mem::take(&mut self.values);
        let pending = self.collective.start_sum_f32(values);
        self.started
            .push((pending, std::mem::take(&mut self.tensors)));
    }

    /// Sums what is left, waits for every sum and writes them into `grads`
    /// (the flat gradient the tensors' offsets point into).
    pub fn finish(mut self, grads: &mut [f32]) {
        self.start();
        for (pending, tensors) in self.started {
            let sums = pending.wait();
            let mut at = 0;
            for (offset, len) in tensors {
                grads[offset..offset + len].copy_from_slice(&sums[at..at + len]);
                at += len;
            }
        }
    }
}

impl GradientSink for GradientBuckets<'_> {
    fn ready(&mut self, offset: usize, grad: &[f32]) {
        let weight = self.weight;
        self.values.extend(grad.iter().map(|g| g * weight));
        self.tensors.push((offset, grad.len()));
        if self.values.len() >= self.cap {
            self.start();
        }
    }
}

/// Each layer's width, bottom first.
fn layer_widths(config: &ModelConfig) -> impl Iterator<Item = usize> + '_ {
    (0..config.layers).map(|k| config.layer_hidden(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::{share, SingleProcess};
    use recurrent_model::CellKind;

    #[test]
    fn shares_of_a_state_put_together_give_it_back() {
        let config = ModelConfig {
            last_hidden: 3,
            ..ModelConfig::new(CellKind::Lstm, 5, 4, 6, 3)
        };
        let batch = 7;
        let global: Vec<f32> = (0..config.state_len(batch)).map(|i| i as f32).collect();
        for ranks in 1..=4 {
            let mut joined = Vec::new();
            let parts: Vec<Vec<f32>> = (0..ranks)
                .map(|r| select_streams(&config, &global, batch, &share(batch, r, ranks)))
                .collect();
            for p in &parts {
                joined.extend_from_slice(p);
            }
            assert_eq!(joined.len(), global.len());
            // What a gather over `ranks` ranks returns, reordered.
            struct Fake(Vec<f32>, usize);
            impl Collective for Fake {
                fn rank(&self) -> usize {
                    0
                }
                fn ranks(&self) -> usize {
                    self.1
                }
                fn sum_f32(&self, _: &mut [f32]) {}
                fn sum_f64(&self, _: &mut [f64]) {}
                fn gather_f32(&self, _: &[f32]) -> Vec<f32> {
                    self.0.clone()
                }
                fn broadcast(&self, _: &mut Vec<u8>) {}
            }
            let back = gather_streams(&config, &parts[0], batch, &Fake(joined, ranks));
            assert_eq!(back, global, "{ranks} ranks");
        }
        let whole = select_streams(&config, &global, batch, &(0..batch));
        assert_eq!(
            gather_streams(&config, &whole, batch, &SingleProcess),
            global
        );
        assert!(select_streams(&config, &[], batch, &(0..2)).is_empty());
    }
}
