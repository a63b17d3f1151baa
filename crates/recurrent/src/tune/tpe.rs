//! The tree-structured Parzen estimator (Bergstra et al. 2011), univariate,
//! as Optuna's default `TPESampler`.
//!
//! The observations are split at the `gamma` quantile of their scores into a
//! good group and the rest. For each parameter on its own, a Parzen density
//! (a mixture of truncated Gaussians, one per observation plus a broad prior)
//! is fitted to each group: `l(x)` to the good, `g(x)` to the rest. Candidates
//! are drawn from `l` and the one with the largest `l(x) / g(x)` is chosen,
//! which is the one with the largest expected improvement.

use recurrent_kernels::Rng;

use super::sampler::Observation;
use super::space::{Domain, Params, Space, Value};

/// Candidates drawn from `l(x)` per parameter (Optuna's `n_ei_candidates`).
const CANDIDATES: usize = 24;

/// How many observations form the good group: 10% of them, at most 25, at
/// least 1 (Optuna's default `gamma`).
pub fn good_count(n: usize) -> usize {
    n.div_ceil(10).clamp(1, 25)
}

/// The next configuration, given the observations (at least one).
pub fn suggest(space: &Space, history: &[Observation], rng: &mut Rng) -> Params {
    let mut sorted: Vec<&Observation> = history.iter().collect();
    sorted.sort_by(|a, b| a.score.total_cmp(&b.score));
    let split = good_count(sorted.len()).min(sorted.len());
    let (good, rest) = sorted.split_at(split);
    space
        .params
        .iter()
        .map(|p| {
            let pick = |group: &[&Observation]| -> Vec<Value> {
                group
                    .iter()
                    .filter_map(|o| o.params.get(&p.name).cloned())
                    .collect()
            };
            let value = suggest_one(&p.domain, &pick(good), &pick(rest), rng);
            (p.name.clone(), value)
        })
        .collect()
}

fn suggest_one(domain: &Domain, good: &[Value], rest: &[Value], rng: &mut Rng) -> Value {
    match domain {
        Domain::Choice { values } => {
            let index = |v: &Value| values.iter().position(|c| c == v);
            let good: Vec<usize> = good.iter().filter_map(index).collect();
            let rest: Vec<usize> = rest.iter().filter_map(index).collect();
            values[categorical(values.len(), &good, &rest, rng)].clone()
        }
        Domain::Int {
            low,
            high,
            log,
            step,
        } => {
            let scale = Scale::int(*low, *high, *log);
            let t = numeric(&scale, good, rest, rng);
            let x = scale.back(t).round() as i64;
            let x = low + ((x - low) as f64 / *step as f64).round() as i64 * step;
            Value::Int(x.clamp(*low, *high))
        }
        Domain::Float { low, high, log } => {
            let scale = Scale::float(*low, *high, *log);
            let x = super::sampler::round_sig(scale.back(numeric(&scale, good, rest, rng)));
            Value::Float(x.clamp(*low, *high))
        }
    }
}

/// Where a numeric parameter is modelled: its bounds after an optional log.
struct Scale {
    a: f64,
    b: f64,
    log: bool,
}

impl Scale {
    fn int(low: i64, high: i64, log: bool) -> Scale {
        // Half a unit either side, so the end values get their share.
        let (lo, hi) = (low as f64 - 0.5, high as f64 + 0.5);
        if log {
            Scale {
                a: lo.max(0.5).ln(),
                b: hi.ln(),
                log,
            }
        } else {
            Scale { a: lo, b: hi, log }
        }
    }

    fn float(low: f64, high: f64, log: bool) -> Scale {
        if log {
            Scale {
                a: low.ln(),
                b: high.ln(),
                log,
            }
        } else {
            Scale {
                a: low,
                b: high,
                log,
            }
        }
    }

    fn to(&self, x: f64) -> f64 {
        if self.log {
            x.max(f64::MIN_POSITIVE).ln()
        } else {
            x
        }
    }

    fn back(&self, t: f64) -> f64 {
        if self.log {
            t.exp()
        } else {
            t
        }
    }
}

/// The chosen point (on the model's scale) for a numeric parameter.
fn numeric(scale: &Scale, good: &[Value], rest: &[Value], rng: &mut Rng) -> f64 {
    let points = |vs: &[Value]| -> Vec<f64> {
        vs.iter()
            .filter_map(Value::as_f64)
            .map(|x| scale.to(x))
            .collect()
    };
    let (a, b) = (scale.a, scale.b);
    if b <= a {
        return a;
    }
    let l = Parzen::fit(&points(good), a, b);
    let g = Parzen::fit(&points(rest), a, b);
    best_candidate(|r| l.sample(r), |x| l.log_pdf(x) - g.log_pdf(x), rng)
}

/// The candidate with the largest ratio among [`CANDIDATES`] draws.
fn best_candidate<T: Copy>(
    mut draw: impl FnMut(&mut Rng) -> T,
    ratio: impl Fn(T) -> f64,
    rng: &mut Rng,
) -> T {
    let mut best = draw(rng);
    let mut best_ratio = ratio(best);
    for _ in 1..CANDIDATES {
        let c = draw(rng);
        let r = ratio(c);
        if r > best_ratio {
            (best, best_ratio) = (c, r);
        }
    }
    best
}

/// A mixture of Gaussians truncated to `[a, b]`: one per point, and a prior
/// as wide as the range at its middle, all weighted equally.
struct Parzen {
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    /// Each component's mass inside `[a, b]`.
    mass: Vec<f64>,
    a: f64,
    b: f64,
}

impl Parzen {
    fn fit(points: &[f64], a: f64, b: f64) -> Parzen {
        let width = b - a;
        let mut mus: Vec<f64> = points.iter().map(|x| x.clamp(a, b)).collect();
        mus.push((a + b) / 2.0);
        let prior = mus.len() - 1;
        // Each point's bandwidth is the larger gap to its sorted neighbours
        // (the prior excluded), clipped as Optuna clips it.
        let mut order: Vec<usize> = (0..prior).collect();
        order.sort_by(|&i, &j| mus[i].total_cmp(&mus[j]));
        let min_sigma = width / (prior as f64 + 1.0).min(100.0);
        let mut sigmas = vec![width; mus.len()];
        for (k, &i) in order.iter().enumerate() {
            let left = if k == 0 { a } else { mus[order[k - 1]] };
            let right = if k + 1 == order.len() {
                b
            } else {
                mus[order[k + 1]]
            };
            sigmas[i] = (mus[i] - left).max(right - mus[i]).clamp(min_sigma, width);
        }
        let mass = mus
            .iter()
            .zip(&sigmas)
            .map(|(&m, &s)| (normal_cdf((b - m) / s) - normal_cdf((a - m) / s)).max(1e-12))
            .collect();
        Parzen {
            mus,
            sigmas,
            mass,
            a,
            b,
        }
    }

    fn sample(&self, rng: &mut Rng) -> f64 {
        let i = rng.below(self.mus.len() as u64) as usize;
        for _ in 0..100 {
            let x = self.mus[i] + self.sigmas[i] * standard_normal(rng);
            if (self.a..=self.b).contains(&x) {
                return x;
            }
        }
        self.mus[i]
    }

    fn log_pdf(&self, x: f64) -> f64 {
        let n = self.mus.len() as f64;
        let p: f64 = self
            .mus
            .iter()
            .zip(&self.sigmas)
            .zip(&self.mass)
            .map(|((&m, &s), &z)| {
                let u = (x - m) / s;
                (-0.5 * u * u).exp() / (s * (2.0 * std::f64::consts::PI).sqrt() * z)
            })
            .sum();
        (p / n).max(1e-300).ln()
    }
}

/// The chosen index among `k` choices, from the good and other groups' picks.
fn categorical(k: usize, good: &[usize], rest: &[usize], rng: &mut Rng) -> usize {
    // Counts plus a prior of total weight 1 spread evenly.
    let probs = |picks: &[usize]| -> Vec<f64> {
        let mut w = vec![1.0 / k as f64; k];
        for &i in picks {
            w[i] += 1.0;
        }
        let total: f64 = w.iter().sum();
        w.iter().map(|x| x / total).collect()
    };
    let (l, g) = (probs(good), probs(rest));
    let draw = |r: &mut Rng| {
        let mut u = r.next_f64();
        for (i, p) in l.iter().enumerate() {
            if u < *p {
                return i;
            }
            u -= p;
        }
        k - 1
    };
    best_candidate(draw, |i| l[i].ln() - g[i].ln(), rng)
}

/// A standard normal draw (Box-Muller).
fn standard_normal(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - rng.next_f64();
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The standard normal CDF, from `erf` (Abramowitz and Stegun 7.1.26, error
/// below 1.5e-7: plenty to rank candidates).
fn normal_cdf(x: f64) -> f64 {
    let z = x / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    0.5 * (1.0 + if z >= 0.0 { erf } else { -erf })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_matches_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.0) - 0.841_344_746).abs() < 1e-6);
        assert!((normal_cdf(-1.96) - 0.024_997_895).abs() < 1e-6);
    }

    #[test]
    fn good_group_is_a_tenth_capped() {
        assert_eq!(good_count(1), 1);
        assert_eq!(good_count(10), 1);
        assert_eq!(good_count(11), 2);
        assert_eq!(good_count(1000), 25);
    }
}
