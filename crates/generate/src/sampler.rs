//! Picking the next token from a model's logits.
//!
//! A [`Sampler`] turns one vector of unnormalized logits into one token id:
//! greedy (temperature 0), or softmax at a temperature, optionally restricted
//! to the `k` most likely tokens (top-k) and then to the smallest set of most
//! likely tokens holding a fraction `p` of the probability (top-p, "nucleus").
//!
//! Two properties matter more than the rest:
//!
//! * **Reproducibility.** Every non-greedy call draws exactly one uniform
//!   number from the caller's [`Rng`], and greedy calls draw none, so a seed
//!   fixes the whole generated text. The mapping from that number to a token is
//!   a pure function of the logits (it does not depend on the iteration order
//!   of `std`'s unstable selection algorithms).
//! * **Speed.** Sampling runs once per generated token over the whole
//!   vocabulary, so the sampler keeps its scratch buffers between calls and
//!   allocates nothing once they have grown to the vocabulary size. Plain
//!   temperature sampling makes three linear passes and never sorts.

use recurrent_kernels::Rng;
use serde::{Deserialize, Serialize};

/// An invalid generation setting or input. Each message names the field of
/// [`SamplingConfig`] (or the input) and the offending value; a front end
/// matches on the variant to name the setting in its own words.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SampleError {
    /// The temperature was negative, infinite or NaN.
    #[error("temperature must be a finite number >= 0 (0 means greedy), got {value}")]
    Temperature {
        /// The temperature given.
        value: f32,
    },
    /// `top_k` was 0, which would leave no token to pick.
    #[error("top_k must be at least 1, got {value}")]
    TopK {
        /// The `top_k` given.
        value: usize,
    },
    /// `top_p` was outside `(0, 1]` (or NaN).
    #[error("top_p must be greater than 0 and at most 1, got {value}")]
    TopP {
        /// The `top_p` given.
        value: f32,
    },
    /// A stop string was empty; it would match before any text at all.
    #[error("stop string {index} is empty (stop strings must not be empty)")]
    EmptyStop {
        /// Its position in the list of stop strings, counting from 0.
        index: usize,
    },
    /// There were no logits to sample from (a vocabulary of size 0).
    #[error("logits are empty: there is no token to pick")]
    EmptyLogits,
    /// More logits than a `u32` token id can index.
    #[error("{len} logits is more than u32 token ids can index")]
    TooManyLogits {
        /// How many logits were given.
        len: usize,
    },
}

/// How to turn logits into a token. Check with [`SamplingConfig::validate`]
/// (or let [`Sampler::new`] do it) before use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplingConfig {
    /// Divides the logits before the softmax: below 1 sharpens the
    /// distribution, above 1 flattens it, and 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (`None`: keep all).
    pub top_k: Option<usize>,
    /// Keep only the smallest set of most likely tokens whose probability
    /// adds up to at least `p` (`None`: keep all).
    pub top_p: Option<f32>,
}

impl Default for SamplingConfig {
    /// Plain sampling from the model's distribution: temperature 1, no filters.
    fn default() -> Self {
        SamplingConfig {
            temperature: 1.0,
            top_k: None,
            top_p: None,
        }
    }
}

impl SamplingConfig {
    /// Validate user settings: temperature finite and >= 0 (0 means greedy),
    /// `top_k >= 1`, `0 < top_p <= 1`. Errors name the field and the
    /// offending value.
    pub fn validate(&self) -> Result<(), SampleError> {
        // Written so that NaN fails every check.
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(SampleError::Temperature {
                value: self.temperature,
            });
        }
        if let Some(k) = self.top_k {
            if k == 0 {
                return Err(SampleError::TopK { value: k });
            }
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(SampleError::TopP { value: p });
            }
        }
        Ok(())
    }

    /// True when sampling reduces to taking the argmax.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }
}

/// Slack when deciding whether the nucleus has reached `top_p`. The logits
/// are `f32`, so probabilities are only meaningful to about 1e-7; without
/// slack, `p = 0.8` over `[0.5, 0.3, ...]` could keep a third token because
/// `0.5 + 0.3` came out as `0.79999997`.
const TOP_P_SLACK: f64 = 1e-6;

/// Draws token ids from logits according to a [`SamplingConfig`], reusing
/// its buffers so sampling allocates nothing per token after the first call.
#[derive(Clone, Debug)]
pub struct Sampler {
    config: SamplingConfig,
    /// Unnormalized probabilities `exp((logit - max) / T)`, one per token.
    probs: Vec<f64>,
    /// Candidate token ids for top-k / top-p; only the first `n` are live.
    candidates: Vec<u32>,
}

impl Sampler {
    /// A sampler for `config`, which is validated first.
    pub fn new(config: SamplingConfig) -> Result<Sampler, SampleError> {
        config.validate()?;
        Ok(Sampler {
            config,
            probs: Vec::new(),
            candidates: Vec::new(),
        })
    }

    /// The settings this sampler was built with.
    pub fn config(&self) -> &SamplingConfig {
        &self.config
    }

    /// Pick the next token id from unnormalized `logits` (one per vocabulary
    /// entry) using `rng`.
    ///
    /// * Temperature 0: the argmax (lowest id on ties); draws nothing from `rng`.
    /// * Otherwise: softmax(logits / T), then top-k (ties broken by lower id),
    ///   then top-p (always keeping at least one token), renormalized; one
    ///   uniform draw from `rng` picks the token by inverse CDF.
    ///
    /// NaN logits are treated as `-inf` and never picked. If no logit is
    /// finite (all `-inf`/NaN, or some `+inf`) the argmax is returned, still
    /// after exactly one draw so the rest of the stream stays in step.
    ///
    /// `logits` must have between 1 and `u32::MAX` entries, else
    /// [`SampleError::EmptyLogits`] or [`SampleError::TooManyLogits`].
    ///
    /// ```
    /// use recurrent_generate::{Sampler, SamplingConfig};
    /// use recurrent_kernels::Rng;
    ///
    /// let logits = [0.1, 2.0, -1.0];
    /// let mut rng = Rng::new(42);
    /// let greedy = SamplingConfig { temperature: 0.0, ..SamplingConfig::default() };
    /// assert_eq!(Sampler::new(greedy)?.try_sample(&logits, &mut rng)?, 1);
    ///
    /// let top1 = SamplingConfig { top_k: Some(1), ..SamplingConfig::default() };
    /// let mut sampler = Sampler::new(top1)?;
    /// assert_eq!(sampler.try_sample(&logits, &mut rng)?, 1);
    /// assert!(sampler.try_sample(&[], &mut rng).is_err());
    /// # Ok::<(), recurrent_generate::SampleError>(())
    /// ```
    pub fn try_sample(&mut self, logits: &[f32], rng: &mut Rng) -> Result<u32, SampleError> {
        check_logits(logits)?;
        Ok(self.sample_checked(logits, rng))
    }

    /// [`Sampler::try_sample`] for logits known to be well formed, such as a
    /// model's output row: the generation loops call this once per token.
    ///
    /// # Panics
    ///
    /// If `logits` is empty or has more than `u32::MAX` entries (the errors
    /// of [`Sampler::try_sample`]).
    pub fn sample(&mut self, logits: &[f32], rng: &mut Rng) -> u32 {
        if let Err(e) = check_logits(logits) {
            panic!("Sampler::sample: {e}");
        }
        self.sample_checked(logits, rng)
    }

    /// The sampling itself, once `check_logits` has passed.
    fn sample_checked(&mut self, logits: &[f32], rng: &mut Rng) -> u32 {
        // Pass 1: the maximum, which is also the greedy answer.
        let best = argmax(logits);
        if self.config.is_greedy() {
            return best as u32;
        }
        let u = rng.next_f64();
        let max = logits[best];
        if !max.is_finite() {
            // All -inf/NaN (nothing has probability) or a +inf (it takes all).
            return best as u32;
        }

        // Pass 2: unnormalized probabilities; the normalizer is never needed
        // explicitly because the draw is scaled by the kept mass instead.
        let total = self.fill_probs(logits, max);

        let v = logits.len();
        let k = self.config.top_k.filter(|&k| k < v);
        let p = self.config.top_p.filter(|&p| p < 1.0);
        if k.is_none() && p.is_none() {
            // Pass 3: inverse CDF in id order; no sorting at all.
            return inverse_cdf(&self.probs, 0..v, u * total) as u32;
        }
        self.sample_filtered(k, p, u) as u32
    }

    /// Writes `exp((logit - max) / T)` into `self.probs` and returns the sum.
    fn fill_probs(&mut self, logits: &[f32], max: f32) -> f64 {
        // Divide rather than multiply by 1/T: for a tiny T, 1/T overflows to
        // inf and the top logit would give 0 * inf = NaN.
        let t = f64::from(self.config.temperature);
        let max = f64::from(max);
        self.probs.clear();
        let mut sum = 0.0f64;
        for &l in logits {
            // NaN > anything is false, so NaN logits fall to probability 0.
            let p = if l.is_nan() {
                0.0
            } else {
                ((f64::from(l) - max) / t).exp()
            };
            sum += p;
            self.probs.push(p);
        }
        sum
    }

    /// Top-k and/or top-p over `self.probs`, then the inverse-CDF draw with
    /// uniform `u` in `[0, 1)`.
    fn sample_filtered(&mut self, k: Option<usize>, p: Option<f32>, u: f64) -> usize {
        let probs = &self.probs;
        // Higher probability first; lower id first among equals. This is a
        // total order, so the kept set and its order are fully determined.
        let rank = |a: &u32, b: &u32| {
            probs[*b as usize]
                .total_cmp(&probs[*a as usize])
                .then(a.cmp(b))
        };

        let cands = &mut self.candidates;
        cands.clear();
        cands.extend(0..probs.len() as u32);
        let mut n = cands.len();
        if let Some(k) = k {
            // O(V) selection: the k best end up (unordered) in cands[..k].
            cands.select_nth_unstable_by(k - 1, rank);
            n = k;
        }
        // Sort the survivors so the draw maps to a token independently of how
        // select_nth_unstable happened to arrange them (and so top-p can walk
        // them in order). With top-k alone this is only O(k log k).
        cands[..n].sort_unstable_by(rank);

        if let Some(p) = p {
            n = nucleus_len(probs, &cands[..n], p);
        }
        let kept = &cands[..n];
        let mass: f64 = kept.iter().map(|&i| probs[i as usize]).sum();
        inverse_cdf(probs, kept.iter().map(|&i| i as usize), u * mass)
    }
}

/// Logits a token id can be drawn from: at least one, at most `u32::MAX`.
fn check_logits(logits: &[f32]) -> Result<(), SampleError> {
    if logits.is_empty() {
        return Err(SampleError::EmptyLogits);
    }
    if u32::try_from(logits.len()).is_err() {
        return Err(SampleError::TooManyLogits { len: logits.len() });
    }
    Ok(())
}

/// Index of the largest logit, lowest index on ties, skipping NaN (0 if all
/// are NaN).
fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    let mut best_val = f32::NEG_INFINITY;
    let mut found = false;
    for (i, &l) in logits.iter().enumerate() {
        // Strict `>` keeps the first of equal maxima; NaN never compares greater.
        if l > best_val || (!found && l == best_val) {
            best = i;
            best_val = l;
            found = true;
        }
    }
    best
}

/// How many of the rank-ordered `cands` make up the nucleus: the smallest
/// prefix whose probability reaches `p` of the candidates' total (so top-p
/// applies to the distribution renormalized after top-k). At least one.
fn nucleus_len(probs: &[f64], cands: &[u32], p: f32) -> usize {
    let total: f64 = cands.iter().map(|&i| probs[i as usize]).sum();
    let target = (f64::from(p) - TOP_P_SLACK) * total;
    let mut cum = 0.0;
    for (n, &i) in cands.iter().enumerate() {
        cum += probs[i as usize];
        if cum >= target {
            return n + 1;
        }
    }
    cands.len()
}

/// Walks `ids` accumulating `probs` and returns the first id whose cumulative
/// probability exceeds `x` (`x` in `[0, mass of ids)`). Zero-probability ids
/// are never returned unless every id has probability zero.
fn inverse_cdf(probs: &[f64], ids: impl Iterator<Item = usize>, x: f64) -> usize {
    let mut cum = 0.0;
    let mut last_positive = None;
    let mut first = None;
    for i in ids {
        first.get_or_insert(i);
        let p = probs[i];
        if p > 0.0 {
            cum += p;
            if x < cum {
                return i;
            }
            last_positive = Some(i);
        }
    }
    // Only reached when rounding put x at (or past) the total: take the last
    // token that had any probability.
    last_positive.or(first).unwrap_or(0)
}

/// Log-probabilities of `logits` at temperature 1 (log-softmax), accumulated
/// in `f64`. For tests and evaluation; not on the sampling hot path.
pub fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, |m, l| m.max(f64::from(l)));
    let sum: f64 = logits.iter().map(|&l| (f64::from(l) - max).exp()).sum();
    let log_z = max + sum.ln();
    logits.iter().map(|&l| f64::from(l) - log_z).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(temperature: f32, top_k: Option<usize>, top_p: Option<f32>) -> Sampler {
        Sampler::new(SamplingConfig {
            temperature,
            top_k,
            top_p,
        })
        .unwrap()
    }

    /// Empirical frequency of each token over `n` draws.
    fn frequencies(s: &mut Sampler, logits: &[f32], n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let mut counts = vec![0usize; logits.len()];
        for _ in 0..n {
            counts[s.sample(logits, &mut rng) as usize] += 1;
        }
        counts.iter().map(|&c| c as f64 / n as f64).collect()
    }

    fn softmax(logits: &[f32], t: f32) -> Vec<f64> {
        let scaled: Vec<f32> = logits.iter().map(|&l| l / t).collect();
        log_softmax(&scaled).iter().map(|l| l.exp()).collect()
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol,
                "token {i}: got {g:.4}, want {w:.4} (got {got:?}, want {want:?})"
            );
        }
    }

    /// Logits whose softmax is exactly `probs` (up to f32 rounding).
    fn logits_for(probs: &[f64]) -> Vec<f32> {
        probs.iter().map(|p| p.ln() as f32).collect()
    }

    const N: usize = 200_000;
    const LOGITS: [f32; 5] = [1.0, 2.5, -0.5, 2.0, 0.3];

    #[test]
    fn greedy_picks_argmax_lowest_id_on_ties_and_draws_nothing() {
        let mut s = sampler(0.0, None, None);
        let mut rng = Rng::new(7);
        let before = rng.clone();
        assert_eq!(s.sample(&LOGITS, &mut rng), 1);
        assert_eq!(s.sample(&[0.0, 3.0, -1.0, 3.0, 3.0], &mut rng), 1);
        assert_eq!(s.sample(&[5.0, 5.0], &mut rng), 0);
        assert_eq!(s.sample(&[-2.0, f32::NAN, -1.0], &mut rng), 2);
        assert_eq!(rng, before, "greedy sampling must not advance the rng");
    }

    #[test]
    fn greedy_ignores_filters() {
        let mut s = sampler(0.0, Some(1), Some(0.1));
        assert_eq!(s.sample(&LOGITS, &mut Rng::new(1)), 1);
    }

    #[test]
    fn temperature_one_matches_softmax() {
        let mut s = sampler(1.0, None, None);
        let got = frequencies(&mut s, &LOGITS, N, 11);
        assert_close(&got, &softmax(&LOGITS, 1.0), 0.01);
    }

    #[test]
    fn low_temperature_sharpens_to_softmax_of_scaled_logits() {
        let mut s = sampler(0.5, None, None);
        let got = frequencies(&mut s, &LOGITS, N, 12);
        let want = softmax(&LOGITS, 0.5);
        assert_close(&got, &want, 0.01);
        // And it really is sharper than at T = 1.
        assert!(want[1] > softmax(&LOGITS, 1.0)[1] + 0.1);
        assert!(got[1] > 0.6, "top token only drawn {:.3}", got[1]);
    }

    #[test]
    fn high_temperature_flattens() {
        let mut s = sampler(3.0, None, None);
        let got = frequencies(&mut s, &LOGITS, N, 13);
        assert_close(&got, &softmax(&LOGITS, 3.0), 0.01);
    }

    #[test]
    fn tiny_temperature_behaves_like_greedy_without_nan() {
        let mut s = sampler(1e-30, None, None);
        let mut rng = Rng::new(3);
        for _ in 0..1000 {
            assert_eq!(s.sample(&LOGITS, &mut rng), 1);
        }
    }

    #[test]
    fn top_k_keeps_only_the_k_largest_in_softmax_ratio() {
        let mut s = sampler(1.0, Some(2), None);
        let got = frequencies(&mut s, &LOGITS, N, 21);
        // The two largest logits are 2.5 (id 1) and 2.0 (id 3).
        for (i, &f) in got.iter().enumerate() {
            if i != 1 && i != 3 {
                assert_eq!(f, 0.0, "token {i} is outside the top 2");
            }
        }
        let z = (2.5f64).exp() + (2.0f64).exp();
        let want = [0.0, 2.5f64.exp() / z, 0.0, 2.0f64.exp() / z, 0.0];
        assert_close(&got, &want, 0.01);
    }

    #[test]
    fn top_k_breaks_ties_by_lower_id() {
        let mut s = sampler(1.0, Some(2), None);
        let got = frequencies(&mut s, &[1.0, 2.0, 2.0, 2.0], 20_000, 22);
        assert_eq!(got[0], 0.0);
        assert_eq!(got[3], 0.0, "id 3 ties with 1 and 2 but has the highest id");
        assert_close(&got, &[0.0, 0.5, 0.5, 0.0], 0.02);
    }

    #[test]
    fn top_k_at_least_vocab_size_is_no_filter() {
        let mut plain = sampler(1.0, None, None);
        let mut big_k = sampler(1.0, Some(5), None);
        let mut huge_k = sampler(1.0, Some(usize::MAX), None);
        let (mut a, mut b, mut c) = (Rng::new(5), Rng::new(5), Rng::new(5));
        for _ in 0..1000 {
            let x = plain.sample(&LOGITS, &mut a);
            assert_eq!(big_k.sample(&LOGITS, &mut b), x);
            assert_eq!(huge_k.sample(&LOGITS, &mut c), x);
        }
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        let probs = [0.5, 0.3, 0.15, 0.05];
        let logits = logits_for(&probs);

        let mut s = sampler(1.0, None, Some(0.8));
        let got = frequencies(&mut s, &logits, N, 31);
        assert_close(&got, &[0.625, 0.375, 0.0, 0.0], 0.01);
        assert_eq!(got[2], 0.0);
        assert_eq!(got[3], 0.0);

        let mut s = sampler(1.0, None, Some(0.81));
        let got = frequencies(&mut s, &logits, N, 32);
        assert_eq!(got[3], 0.0);
        assert_close(&got, &[0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0], 0.01);
    }

    #[test]
    fn top_p_orders_by_probability_not_id() {
        // Same distribution as above, shuffled: ids 1 and 3 form the 0.8 nucleus.
        let logits = logits_for(&[0.15, 0.5, 0.05, 0.3]);
        let mut s = sampler(1.0, None, Some(0.8));
        let got = frequencies(&mut s, &logits, N, 33);
        assert_close(&got, &[0.0, 0.625, 0.0, 0.375], 0.01);
    }

    #[test]
    fn tiny_top_p_still_keeps_one_token() {
        let mut s = sampler(1.0, None, Some(1e-9));
        let mut rng = Rng::new(34);
        for _ in 0..1000 {
            assert_eq!(s.sample(&LOGITS, &mut rng), 1);
        }
    }

    #[test]
    fn top_p_one_equals_no_filter() {
        let mut plain = sampler(0.8, None, None);
        let mut p1 = sampler(0.8, None, Some(1.0));
        let (mut a, mut b) = (Rng::new(35), Rng::new(35));
        for _ in 0..2000 {
            assert_eq!(plain.sample(&LOGITS, &mut a), p1.sample(&LOGITS, &mut b));
        }
    }

    #[test]
    fn top_p_applies_to_the_distribution_after_top_k() {
        // After top-2, [0.5, 0.3] renormalizes to [0.625, 0.375], so p = 0.6
        // keeps only token 0 (on the original mass it would keep two).
        let logits = logits_for(&[0.5, 0.3, 0.15, 0.05]);
        let mut s = sampler(1.0, Some(2), Some(0.6));
        let got = frequencies(&mut s, &logits, 20_000, 36);
        assert_eq!(got, vec![1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn same_seed_same_picks_different_seed_different_picks() {
        let configs = [
            sampler(1.0, None, None),
            sampler(0.7, Some(3), None),
            sampler(1.2, None, Some(0.9)),
            sampler(1.0, Some(4), Some(0.95)),
        ];
        for cfg in configs {
            let run = |seed| {
                let mut s = cfg.clone();
                let mut rng = Rng::new(seed);
                let mut logits = LOGITS;
                (0..500)
                    .map(|step| {
                        logits.rotate_left(step % 3);
                        s.sample(&logits, &mut rng)
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(run(42), run(42), "{:?}", cfg.config());
            assert_ne!(run(42), run(43), "{:?}", cfg.config());
        }
    }

    #[test]
    fn each_non_greedy_call_draws_exactly_once() {
        for mut s in [
            sampler(1.0, None, None),
            sampler(1.0, Some(2), None),
            sampler(1.0, None, Some(0.5)),
            sampler(1.0, Some(3), Some(0.5)),
        ] {
            let mut rng = Rng::new(9);
            let mut reference = Rng::new(9);
            for _ in 0..10 {
                s.sample(&LOGITS, &mut rng);
                reference.next_f64();
                assert_eq!(rng, reference, "{:?}", s.config());
            }
            // Degenerate logits too.
            s.sample(&[f32::NEG_INFINITY; 3], &mut rng);
            reference.next_f64();
            assert_eq!(rng, reference);
        }
    }

    #[test]
    fn non_finite_logits_never_panic_and_nan_or_neg_inf_is_never_picked() {
        for mut s in [
            sampler(1.0, None, None),
            sampler(1.0, Some(2), None),
            sampler(1.0, None, Some(0.9)),
        ] {
            let mut rng = Rng::new(4);
            for _ in 0..1000 {
                let t = s.sample(&[f32::NAN, 0.0, f32::NEG_INFINITY, 0.0], &mut rng);
                assert!(t == 1 || t == 3, "picked {t}");
            }
            assert_eq!(s.sample(&[0.0, f32::INFINITY, 1.0], &mut rng), 1);
            assert_eq!(s.sample(&[f32::NEG_INFINITY; 3], &mut rng), 0);
            assert_eq!(s.sample(&[f32::NAN; 3], &mut rng), 0);
        }
    }

    #[test]
    fn buffers_are_reused_across_calls() {
        let mut s = sampler(1.0, Some(3), Some(0.9));
        let mut rng = Rng::new(8);
        let logits: Vec<f32> = (0..1000).map(|i| (i % 17) as f32 * 0.3).collect();
        s.sample(&logits, &mut rng);
        let (p, c) = (s.probs.as_ptr(), s.candidates.as_ptr());
        for _ in 0..100 {
            s.sample(&logits, &mut rng);
        }
        assert_eq!(s.probs.as_ptr(), p);
        assert_eq!(s.candidates.as_ptr(), c);
    }

    #[test]
    fn validate_accepts_good_settings() {
        for (t, k, p) in [
            (0.0, None, None),
            (1.0, Some(1), Some(1.0)),
            (0.01, Some(50), Some(0.9)),
            (10.0, None, Some(1e-6)),
        ] {
            let c = SamplingConfig {
                temperature: t,
                top_k: k,
                top_p: p,
            };
            assert_eq!(c.validate(), Ok(()), "{c:?}");
        }
        assert!(SamplingConfig::default().validate().is_ok());
    }

    #[test]
    fn validate_rejects_bad_settings_naming_the_field_and_value() {
        let bad = |temperature, top_k, top_p| {
            let c = SamplingConfig {
                temperature,
                top_k,
                top_p,
            };
            let err = Sampler::new(c.clone()).unwrap_err();
            // Compare messages: NaN payloads make the errors themselves unequal.
            assert_eq!(c.validate().unwrap_err().to_string(), err.to_string());
            err
        };
        let err = bad(-0.5, None, None);
        assert_eq!(err, SampleError::Temperature { value: -0.5 });
        assert_eq!(
            err.to_string(),
            "temperature must be a finite number >= 0 (0 means greedy), got -0.5"
        );
        let msg = bad(f32::NAN, None, None).to_string();
        assert!(
            msg.starts_with("temperature") && msg.contains("NaN"),
            "{msg}"
        );
        let msg = bad(f32::INFINITY, None, None).to_string();
        assert!(
            msg.starts_with("temperature") && msg.contains("inf"),
            "{msg}"
        );
        let err = bad(1.0, Some(0), None);
        assert_eq!(err, SampleError::TopK { value: 0 });
        assert_eq!(err.to_string(), "top_k must be at least 1, got 0");
        assert_eq!(bad(1.0, None, Some(0.0)), SampleError::TopP { value: 0.0 });
        let msg = bad(1.0, None, Some(1.5)).to_string();
        assert_eq!(msg, "top_p must be greater than 0 and at most 1, got 1.5");
        let msg = bad(1.0, None, Some(f32::NAN)).to_string();
        assert!(msg.starts_with("top_p") && msg.contains("NaN"), "{msg}");
        assert_eq!(
            bad(1.0, None, Some(-0.2)),
            SampleError::TopP { value: -0.2 }
        );
        for msg in [-0.5, f32::NAN].map(|t| bad(t, None, None).to_string()) {
            assert!(!msg.contains("--"), "{msg}");
        }
    }

    #[test]
    fn empty_logits_are_an_error_not_a_panic() {
        for config in [
            SamplingConfig::default(),
            SamplingConfig {
                temperature: 0.0,
                ..SamplingConfig::default()
            },
        ] {
            let mut s = Sampler::new(config).unwrap();
            let mut rng = Rng::new(1);
            let before = rng.clone();
            assert_eq!(s.try_sample(&[], &mut rng), Err(SampleError::EmptyLogits));
            assert_eq!(rng, before, "a rejected call draws nothing");
            assert_eq!(
                s.try_sample(&[0.0, 1.0], &mut Rng::new(1)).map(|t| t < 2),
                Ok(true)
            );
        }
    }

    #[test]
    #[should_panic(expected = "logits are empty")]
    fn sample_panics_on_empty_logits_with_the_error_message() {
        sampler(1.0, None, None).sample(&[], &mut Rng::new(1));
    }

    #[test]
    fn log_softmax_is_normalized_and_shift_invariant() {
        let a = log_softmax(&LOGITS);
        let total: f64 = a.iter().map(|l| l.exp()).sum();
        assert!((total - 1.0).abs() < 1e-12);
        let shifted: Vec<f32> = LOGITS.iter().map(|l| l + 100.0).collect();
        for (x, y) in a.iter().zip(log_softmax(&shifted)) {
            assert!((x - y).abs() < 1e-5);
        }
        // Large logits must not overflow.
        let big = log_softmax(&[1000.0, 1000.0]);
        assert!((big[0] - 0.5f64.ln()).abs() < 1e-12);
    }
}
