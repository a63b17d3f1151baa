//! Inverted dropout (PyTorch `nn.Dropout`): during training each element is
//! zeroed with probability `p` and survivors are scaled by `1/(1-p)`, so nothing
//! changes at evaluation time. The mask is kept for the backward pass.
//!
//! Also the masks AWD-LSTM (Merity et al. 2017) uses: locked (variational)
//! dropout, one mask per stream shared by every time step, and DropConnect on a
//! weight matrix ([`sample_apply`] on the weights, [`backward_add`] for their gradient).

use recurrent_kernels::threads::{parallel_for, threads};
use recurrent_kernels::{Rng, SharedMut};

/// Draws a fresh mask (`0` or `1/(1-p)` per element) into `mask`.
///
/// Each 64-bit draw decides two elements by two disjoint 24-bit fields
/// (an element is dropped when its field, as a fraction of `2^24`, is below
/// `p`): generating the numbers was most of the cost of dropout.
pub fn sample_mask(mask: &mut [f32], p: f32, rng: &mut Rng) {
    let scale = 1.0 / (1.0 - p);
    // `u * 2^-24 < p` exactly when `u < ceil(p * 2^24)` (the scaling is exact).
    let threshold = (p * (1u32 << 24) as f32).ceil() as u64;
    let pick = |u: u64| if u < threshold { 0.0 } else { scale };
    let mut pairs = mask.chunks_exact_mut(2);
    for pair in &mut pairs {
        let x = rng.next_u64();
        pair[0] = pick(x >> 40);
        pair[1] = pick((x >> 16) & 0xFF_FFFF);
    }
    if let [last] = pairs.into_remainder() {
        *last = pick(rng.next_u64() >> 40);
    }
}

/// Elements per independently seeded piece of [`sample_apply`].
const CHUNK: usize = 1 << 16;

/// Samples a mask as [`sample_mask`] and writes `dst = src * mask` in the
/// same pass (a layer's output copied, dropped out, into the next input).
///
/// The work is cut into fixed pieces of `CHUNK` (65536) elements, each drawn from
/// its own generator seeded by `rng`, and the kernels' threads share the
/// pieces: the masks depend on neither the thread count nor scheduling.
///
/// # Panics
/// If `src` or `mask` is not as long as `dst`.
pub fn sample_apply(dst: &mut [f32], src: &[f32], mask: &mut [f32], p: f32, rng: &mut Rng) {
    let n = dst.len();
    assert!(src.len() == n && mask.len() == n, "dropout: lengths differ");
    let pieces = n.div_ceil(CHUNK);
    let seeds: Vec<u64> = (0..pieces).map(|_| rng.next_u64()).collect();
    let t = threads().clamp(1, pieces.max(1));
    let (dst, mask) = (SharedMut::new(dst), SharedMut::new(mask));
    parallel_for(t, &|i| {
        for (c, &seed) in seeds.iter().enumerate().skip(i).step_by(t) {
            let r = c * CHUNK..n.min((c + 1) * CHUNK);
            // SAFETY: pieces are disjoint and each is handled by one task.
            let (d, m) = unsafe { (dst.slice(r.clone()), mask.slice(r.clone())) };
            sample_mask(m, p, &mut Rng::new(seed));
            for ((d, &s), &m) in d.iter_mut().zip(&src[r]).zip(m.iter()) {
                *d = s * m;
            }
        }
    });
}

/// Forward in place: `x *= mask`.
pub fn forward(x: &mut [f32], mask: &[f32]) {
    for (v, &m) in x.iter_mut().zip(mask) {
        *v *= m;
    }
}

/// Backward in place: `dx = dy * mask` (the same product as the forward).
pub fn backward(dy: &mut [f32], mask: &[f32]) {
    forward(dy, mask);
}

/// Backward of `w_dropped = w * mask` (DropConnect) into the raw weights'
/// gradient, which accumulates: `dw += dw_dropped * mask`.
///
/// # Panics
/// If the three lengths differ.
pub fn backward_add(dw: &mut [f32], dw_dropped: &[f32], mask: &[f32]) {
    assert!(
        dw.len() == mask.len() && dw_dropped.len() == mask.len(),
        "dropout: lengths differ"
    );
    for ((g, &d), &m) in dw.iter_mut().zip(dw_dropped).zip(mask) {
        *g += d * m;
    }
}

/// Locked dropout forward in place: `x[t, b, :] *= mask[b, :]` for `x: [T*B, W]`
/// and `mask: [B, W]` (from [`sample_mask`]): each stream keeps the same units
/// at every step of the block, so the dropout cannot average out over time.
pub fn locked_forward(x: &mut [f32], mask: &[f32]) {
    if mask.is_empty() {
        return;
    }
    for step in x.chunks_exact_mut(mask.len()) {
        forward(step, mask);
    }
}

/// Backward of [`locked_forward`]: `dx[t, b, :] = dy[t, b, :] * mask[b, :]`.
pub fn locked_backward(dy: &mut [f32], mask: &[f32]) {
    locked_forward(dy, mask);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_expected_fraction_and_mean() {
        let mut rng = Rng::new(5);
        let mut mask = vec![0.0; 100_000];
        sample_mask(&mut mask, 0.3, &mut rng);
        let zeros = mask.iter().filter(|&&m| m == 0.0).count() as f64 / mask.len() as f64;
        let mean = mask.iter().map(|&m| m as f64).sum::<f64>() / mask.len() as f64;
        assert!((zeros - 0.3).abs() < 0.01, "dropped fraction {zeros}");
        assert!((mean - 1.0).abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn sample_apply_is_the_same_on_any_thread_count() {
        let n = 3 * CHUNK + 17;
        let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let run = |threads: usize| {
            recurrent_kernels::threads::set_this_thread(threads);
            let (mut dst, mut mask) = (vec![0.0; n], vec![0.0; n]);
            sample_apply(&mut dst, &src, &mut mask, 0.25, &mut Rng::new(7));
            (dst, mask)
        };
        let (d1, m1) = run(1);
        let (d2, m2) = run(2);
        assert_eq!(m1, m2);
        assert_eq!(d1, d2);
        for i in 0..n {
            assert_eq!(d1[i], src[i] * m1[i]);
        }
        let dropped = m1.iter().filter(|&&m| m == 0.0).count() as f64 / n as f64;
        assert!((dropped - 0.25).abs() < 0.01, "{dropped}");
    }

    #[test]
    fn locked_mask_is_shared_by_every_step_and_passes_the_gradient_check() {
        use crate::gradcheck::{check, random_vec};
        let (t, b, w) = (3, 2, 5);
        let mut mask = vec![0.0; b * w];
        sample_mask(&mut mask, 0.4, &mut Rng::new(3));
        assert!(mask.contains(&0.0) && mask.iter().any(|&m| m > 1.0));
        let mut rng = Rng::new(4);
        let x = random_vec(&mut rng, t * b * w);
        let r = random_vec(&mut rng, t * b * w);
        let mut y = x.clone();
        locked_forward(&mut y, &mask);
        for s in 0..t {
            for j in 0..b * w {
                assert_eq!(y[s * b * w + j], x[s * b * w + j] * mask[j]);
            }
        }
        // loss = Σ r ⊙ locked(x): the gradient is r with the same mask.
        let loss = |x: &[f32]| {
            let mut y = x.to_vec();
            locked_forward(&mut y, &mask);
            y.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum::<f64>()
        };
        let mut dx = r.clone();
        locked_backward(&mut dx, &mask);
        check("locked dropout", &x, &dx, loss);
    }

    #[test]
    fn dropconnect_gradient_reaches_the_raw_weights_through_the_mask() {
        use crate::gradcheck::{check, random_vec};
        let n = 12;
        let mut rng = Rng::new(6);
        let w = random_vec(&mut rng, n);
        let r = random_vec(&mut rng, n);
        let (mut dropped, mut mask) = (vec![0.0; n], vec![0.0; n]);
        sample_apply(&mut dropped, &w, &mut mask, 0.5, &mut Rng::new(8));
        assert!(mask.contains(&0.0) && mask.contains(&2.0));
        // loss = Σ r ⊙ w_dropped², a nonlinear use of the dropped weights.
        let loss = |w: &[f32]| {
            let (mut d, mut m) = (vec![0.0; n], vec![0.0; n]);
            sample_apply(&mut d, w, &mut m, 0.5, &mut Rng::new(8));
            d.iter()
                .zip(&r)
                .map(|(a, b)| (a * a * b) as f64)
                .sum::<f64>()
        };
        let d_dropped: Vec<f32> = dropped.iter().zip(&r).map(|(a, b)| 2.0 * a * b).collect();
        let mut dw = vec![0.0; n];
        backward_add(&mut dw, &d_dropped, &mask);
        check("weight drop", &w, &dw, loss);
    }

    #[test]
    fn backward_is_the_masked_gradient() {
        let mask = [0.0, 2.0, 2.0];
        let mut x = [1.0, 2.0, 3.0];
        forward(&mut x, &mask);
        assert_eq!(x, [0.0, 4.0, 6.0]);
        let mut dy = [1.0, 1.0, 1.0];
        backward(&mut dy, &mask);
        assert_eq!(dy, [0.0, 2.0, 2.0]);
    }
}
