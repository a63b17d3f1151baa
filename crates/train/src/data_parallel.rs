//! The language model's state across ranks: each rank carries the hidden
//! state of its own streams (a contiguous share of the global batch), and a
//! checkpoint holds every stream's, in the global order, so that a run saved
//! by N ranks resumes with any number of them.

use std::ops::Range;

use recurrent_model::{ModelConfig, State};

use crate::collective::Collective;
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
