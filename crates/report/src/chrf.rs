//! chrF as sacreBLEU computes it by default.

use std::collections::HashMap;

use crate::bleu::check_lengths;
use crate::tokenize::py_split;
use crate::ReportError;

/// The longest character n-grams chrF counts.
pub const CHRF_CHAR_ORDER: usize = 6;

/// chrF's beta: recall weighs this many times as much as precision.
pub const CHRF_BETA: f64 = 2.0;

/// For one n-gram order: hypothesis n-grams, reference n-grams, matches.
type OrderStats = [u64; 3];

/// chrF's statistics, accumulated one sentence pair at a time.
///
/// ```
/// use recurrent_report::ChrfStats;
///
/// let mut stats = ChrfStats::new();
/// stats.add("Il fait beau.", "Il fait très beau.");
/// // sacreBLEU: CHRF().corpus_score(["Il fait beau."], [["Il fait très beau."]])
/// assert_eq!(format!("{:.2}", stats.score()), "48.01");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChrfStats {
    orders: [OrderStats; CHRF_CHAR_ORDER],
}

impl ChrfStats {
    /// No sentences yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one hypothesis and its reference. Whitespace is removed and the
    /// remaining characters (Unicode scalar values, case kept) are counted.
    pub fn add(&mut self, hypothesis: &str, reference: &str) {
        let hyp: Vec<char> = py_split(hypothesis).flat_map(str::chars).collect();
        let reference: Vec<char> = py_split(reference).flat_map(str::chars).collect();
        for (n, stats) in (1..=CHRF_CHAR_ORDER).zip(&mut self.orders) {
            let sentence = order_stats(&hyp, &reference, n);
            for (total, add) in stats.iter_mut().zip(sentence) {
                *total += add;
            }
        }
    }

    /// The chrF score of the sentences added so far, from 0 to 100.
    ///
    /// Precision and recall are averaged over the orders that have both
    /// hypothesis and reference n-grams, then combined into one F-beta
    /// score (not an average of per-order F-scores).
    pub fn score(&self) -> f64 {
        let mut avg_prec = 0.0;
        let mut avg_rec = 0.0;
        let mut effective_order = 0;
        for &[hyp, reference, matched] in &self.orders {
            if hyp > 0 && reference > 0 {
                avg_prec += matched as f64 / hyp as f64;
                avg_rec += matched as f64 / reference as f64;
                effective_order += 1;
            }
        }
        if effective_order == 0 {
            return 0.0;
        }
        avg_prec /= effective_order as f64;
        avg_rec /= effective_order as f64;
        if avg_prec + avg_rec == 0.0 {
            return 0.0;
        }
        // Same operations in the same order as sacreBLEU, for the same float.
        let factor = CHRF_BETA * CHRF_BETA;
        let score = (1.0 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec);
        100.0 * score
    }
}

/// Corpus chrF of `hypotheses` against one reference each, as sacreBLEU's
/// `corpus_chrf(hypotheses, [references])` with default settings: character
/// n-grams of order 1 to 6, beta 2, whitespace removed, case kept.
///
/// An empty corpus scores 0.
pub fn corpus_chrf<H: AsRef<str>, R: AsRef<str>>(
    hypotheses: &[H],
    references: &[R],
) -> Result<f64, ReportError> {
    check_lengths(hypotheses.len(), references.len())?;
    let mut stats = ChrfStats::new();
    for (hyp, reference) in hypotheses.iter().zip(references) {
        stats.add(hyp.as_ref(), reference.as_ref());
    }
    Ok(stats.score())
}

/// One sentence's statistics for n-grams of order `n`.
fn order_stats(hyp: &[char], reference: &[char], n: usize) -> OrderStats {
    let ref_ngrams = count(reference, n);
    let mut hyp_count = 0;
    let mut matched = 0;
    for (ngram, count) in count(hyp, n) {
        hyp_count += count;
        matched += count.min(ref_ngrams.get(ngram).copied().unwrap_or(0));
    }
    // sacreBLEU counts no hypothesis n-grams of an order the reference is
    // too short to have, so a short reference does not cost precision.
    if ref_ngrams.is_empty() {
        hyp_count = 0;
    }
    let ref_count = ref_ngrams.values().sum();
    [hyp_count, ref_count, matched]
}

fn count(chars: &[char], n: usize) -> HashMap<&[char], u64> {
    let mut counts = HashMap::new();
    for ngram in chars.windows(n) {
        *counts.entry(ngram).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_text_scores_100_whatever_the_spacing() {
        assert_eq!(corpus_chrf(&["a b\tc"], &["abc"]).unwrap(), 100.0);
    }

    #[test]
    fn nothing_in_common_or_nothing_at_all_scores_0() {
        assert_eq!(corpus_chrf(&["xyz"], &["abc"]).unwrap(), 0.0);
        assert_eq!(corpus_chrf(&[""], &["abc"]).unwrap(), 0.0);
        let empty: [&str; 0] = [];
        assert_eq!(corpus_chrf(&empty, &empty).unwrap(), 0.0);
    }

    #[test]
    fn orders_longer_than_the_reference_count_no_hypothesis_ngrams() {
        assert_eq!(order_stats(&['a', 'b', 'c'], &['a', 'b'], 3), [0, 0, 0]);
        assert_eq!(order_stats(&['a', 'b', 'c'], &['a', 'b'], 2), [2, 1, 1]);
    }

    #[test]
    fn recall_weighs_more_than_precision() {
        let short = corpus_chrf(&["abcd"], &["abcdefgh"]).unwrap();
        let long = corpus_chrf(&["abcdefghijklmnop"], &["abcdefgh"]).unwrap();
        assert!(long > short, "{long} vs {short}");
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        assert!(corpus_chrf(&["a"], &["a", "b"]).is_err());
    }
}
