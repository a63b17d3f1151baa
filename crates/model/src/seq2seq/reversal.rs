//! Digit-string reversal: the synthetic task the seq2seq tests learn in a
//! second or two, and a quick check that a build can learn at all. Sources
//! are 3 to 6 random digits (tokens `0..=9`); a target is the same digits
//! reversed, between [`BOS`] and [`EOS`].

use recurrent_kernels::Rng;
use recurrent_nn::attention::AttentionKind;
use recurrent_nn::CellKind;

use super::{
    Bridge, Seq2Seq, Seq2SeqBatch, Seq2SeqConfig, Seq2SeqStats, Seq2SeqWorkspace, TrainOptions,
};

/// The target side's begin token, just past the ten digits.
pub const BOS: u32 = 10;
/// The target side's end token.
pub const EOS: u32 = 11;

/// The longest source; target rows are two tokens wider.
const MAX_DIGITS: usize = 6;

/// A small model for the task: 16-wide embeddings, one 32-unit layer, input
/// feeding, the encoder's final state copied into the decoder.
pub fn config(cell: CellKind, bidirectional: bool, attention: AttentionKind) -> Seq2SeqConfig {
    Seq2SeqConfig {
        cell,
        src_vocab: 10,
        tgt_vocab: 12,
        embed: 16,
        hidden: 32,
        layers: 1,
        bidirectional,
        attention,
        input_feeding: true,
        bridge: Bridge::Copy,
        dropout: 0.0,
        tie: false,
        share_embeddings: false,
    }
}

/// `n` random digit strings of length `lo..=hi`, padded batch-major with 0s
/// to width `hi`, and their lengths.
pub fn sources(rng: &mut Rng, n: usize, lo: usize, hi: usize) -> (Vec<u32>, Vec<usize>) {
    let lens: Vec<usize> = (0..n)
        .map(|_| lo + rng.below((hi - lo + 1) as u64) as usize)
        .collect();
    let mut src = vec![0; n * hi];
    for (b, &len) in lens.iter().enumerate() {
        for s in 0..len {
            src[b * hi + s] = rng.below(10) as u32;
        }
    }
    (src, lens)
}

/// A padded batch of pairs that owns its buffers ([`ReversalBatch::view`]
/// lends it to the model).
pub struct ReversalBatch {
    /// `[B, S_w]` source digits.
    pub src: Vec<u32>,
    /// `[B]` source lengths.
    pub src_lens: Vec<usize>,
    /// `[B, T_w]` targets `BOS reversed-digits EOS`.
    pub tgt: Vec<u32>,
    /// `[B]` target lengths.
    pub tgt_lens: Vec<usize>,
}

impl ReversalBatch {
    /// The batch as the model reads it.
    pub fn view(&self) -> Seq2SeqBatch<'_> {
        Seq2SeqBatch {
            src: &self.src,
            src_lens: &self.src_lens,
            tgt: &self.tgt,
            tgt_lens: &self.tgt_lens,
        }
    }
}

/// `n` random training pairs.
pub fn batch(rng: &mut Rng, n: usize) -> ReversalBatch {
    let (src, src_lens) = sources(rng, n, 3, MAX_DIGITS);
    let width = MAX_DIGITS + 2;
    let mut tgt = vec![0; n * width];
    let mut tgt_lens = Vec::with_capacity(n);
    for (b, &len) in src_lens.iter().enumerate() {
        let row = &mut tgt[b * width..(b + 1) * width];
        row[0] = BOS;
        for i in 0..len {
            row[1 + i] = src[b * MAX_DIGITS + len - 1 - i];
        }
        row[len + 1] = EOS;
        tgt_lens.push(len + 2);
    }
    ReversalBatch {
        src,
        src_lens,
        tgt,
        tgt_lens,
    }
}

/// Trains `model` on batches of 32 fresh pairs with Adam at `lr` (PyTorch's
/// update, no weight decay), the global gradient norm clipped at `clip` when
/// given. Every `every` steps `done(model, step, stats)` decides whether to
/// stop; training stops at `max_steps` anyway. Returns the steps taken.
pub fn train(
    model: &mut Seq2Seq,
    rng: &mut Rng,
    lr: f32,
    clip: Option<f32>,
    max_steps: usize,
    every: usize,
    mut done: impl FnMut(&Seq2Seq, usize, &Seq2SeqStats) -> bool,
) -> usize {
    let n = model.num_params();
    let (mut m, mut v, mut g) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut ws = Seq2SeqWorkspace::default();
    for step in 1..=max_steps {
        let pairs = batch(rng, 32);
        g.fill(0.0);
        let stats = model
            .train_batch(
                &mut ws,
                &pairs.view(),
                &TrainOptions::default(),
                rng,
                &mut g,
            )
            .expect("reversal batches fit the model");
        if let Some(clip) = clip {
            let norm = g.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > clip {
                g.iter_mut().for_each(|x| *x *= clip / norm);
            }
        }
        let (c1, c2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
        for i in 0..n {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            model.params[i] -= lr * (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
        }
        if step % every == 0 && done(model, step, &stats) {
            return step;
        }
    }
    max_steps
}
