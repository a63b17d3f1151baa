//! Corpus BLEU as sacreBLEU computes it by default.

use std::collections::HashMap;
use std::fmt;

use crate::tokenize::{py_rstrip, py_split, tokenize_13a};
use crate::ReportError;

/// The longest n-grams BLEU counts.
pub const MAX_NGRAM_ORDER: usize = 4;

/// What sacreBLEU takes as the log of a zero precision: a huge negative
/// number rather than minus infinity, so the score comes out as exactly 0.
const LOG_ZERO: f64 = -9_999_999_999.0;

/// A corpus BLEU score with the statistics it was computed from, as in
/// sacreBLEU's `BLEUScore`.
///
/// Its [`Display`](fmt::Display) form is sacreBLEU's:
/// `BLEU = 36.56 68.8/46.7/35.7/23.1 (BP = 0.939 ratio = 0.941 hyp_len = 16 ref_len = 17)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bleu {
    /// The score, from 0 to 100. Like sacreBLEU's it comes from
    /// `exp(mean(ln p))`, so a perfect match is 100.00000000000004.
    pub score: f64,
    /// Matched n-grams of each order (clipped by the reference counts), summed over the corpus.
    pub counts: [u64; MAX_NGRAM_ORDER],
    /// Hypothesis n-grams of each order, summed over the corpus.
    pub totals: [u64; MAX_NGRAM_ORDER],
    /// The smoothed precision of each order, in percent.
    pub precisions: [f64; MAX_NGRAM_ORDER],
    /// The brevity penalty, in `[0, 1]`.
    pub bp: f64,
    /// Tokens in all hypotheses.
    pub sys_len: u64,
    /// Tokens in all references.
    pub ref_len: u64,
}

impl Bleu {
    /// Hypothesis length over reference length (0 when there are no reference tokens).
    pub fn ratio(&self) -> f64 {
        if self.ref_len == 0 {
            0.0
        } else {
            self.sys_len as f64 / self.ref_len as f64
        }
    }
}

impl fmt::Display for Bleu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let precisions: Vec<String> = self.precisions.iter().map(|p| format!("{p:.1}")).collect();
        write!(
            f,
            "BLEU = {:.2} {} (BP = {:.3} ratio = {:.3} hyp_len = {} ref_len = {})",
            self.score,
            precisions.join("/"),
            self.bp,
            self.ratio(),
            self.sys_len,
            self.ref_len
        )
    }
}

/// BLEU's sufficient statistics, accumulated one sentence pair at a time.
///
/// ```
/// use recurrent_report::BleuStats;
///
/// let mut stats = BleuStats::new();
/// stats.add("the cat is on the mat", "the cat is on the mat");
/// stats.add("hello there", "general kenobi");
/// println!("{}", stats.score());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BleuStats {
    counts: [u64; MAX_NGRAM_ORDER],
    totals: [u64; MAX_NGRAM_ORDER],
    sys_len: u64,
    ref_len: u64,
}

impl BleuStats {
    /// No sentences yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one hypothesis and its reference, both untokenized text.
    ///
    /// Each has trailing whitespace stripped and is tokenized with
    /// [`tokenize_13a`]; case is kept.
    pub fn add(&mut self, hypothesis: &str, reference: &str) {
        let hyp = tokenize_13a(py_rstrip(hypothesis));
        let reference = tokenize_13a(py_rstrip(reference));
        let hyp: Vec<&str> = py_split(&hyp).collect();
        let reference: Vec<&str> = py_split(&reference).collect();

        let ref_ngrams = count_ngrams(&reference);
        for (ngram, count) in count_ngrams(&hyp) {
            let order = ngram.len() - 1;
            self.totals[order] += count;
            // Clipping: an n-gram is matched at most as often as the reference has it.
            let in_ref = ref_ngrams.get(ngram).copied().unwrap_or(0);
            self.counts[order] += count.min(in_ref);
        }
        self.sys_len += hyp.len() as u64;
        self.ref_len += reference.len() as u64;
    }

    /// The BLEU score of the sentences added so far (0 when there are none).
    pub fn score(&self) -> Bleu {
        let bp = brevity_penalty(self.sys_len, self.ref_len);
        let mut bleu = Bleu {
            score: 0.0,
            counts: self.counts,
            totals: self.totals,
            precisions: [0.0; MAX_NGRAM_ORDER],
            bp,
            sys_len: self.sys_len,
            ref_len: self.ref_len,
        };
        // sacreBLEU stops here when nothing matched, leaving every precision at 0.
        if self.counts.iter().all(|&c| c == 0) {
            return bleu;
        }
        bleu.precisions = exp_smoothed_precisions(&self.counts, &self.totals);
        // Summed in order and divided afterwards, as sacreBLEU does, so that
        // the result is the same float and not merely close to it.
        let log_sum: f64 = bleu.precisions.iter().map(|&p| log_or_floor(p)).sum();
        bleu.score = bp * (log_sum / MAX_NGRAM_ORDER as f64).exp();
        bleu
    }
}

/// Corpus BLEU of `hypotheses` against one reference each, as sacreBLEU's
/// `corpus_bleu(hypotheses, [references])` with default settings: `13a`
/// tokenization, mixed case, 4-grams, `exp` smoothing.
///
/// An empty corpus scores 0.
///
/// ```
/// use recurrent_report::{corpus_bleu, ReportError};
///
/// let hyps = ["the cat sat on a mat", "hello there"];
/// let refs = ["the cat sat on the mat", "hello there"];
/// let bleu = corpus_bleu(&hyps, &refs)?;
/// assert!(bleu.score > 0.0 && bleu.score < 100.0);
/// assert_eq!((bleu.sys_len, bleu.ref_len), (8, 8));
///
/// // Each hypothesis needs exactly one reference.
/// assert_eq!(
///     corpus_bleu(&hyps, &refs[..1]),
///     Err(ReportError::LengthMismatch { hypotheses: 2, references: 1 })
/// );
/// # Ok::<(), ReportError>(())
/// ```
pub fn corpus_bleu<H: AsRef<str>, R: AsRef<str>>(
    hypotheses: &[H],
    references: &[R],
) -> Result<Bleu, ReportError> {
    check_lengths(hypotheses.len(), references.len())?;
    let mut stats = BleuStats::new();
    for (hyp, reference) in hypotheses.iter().zip(references) {
        stats.add(hyp.as_ref(), reference.as_ref());
    }
    Ok(stats.score())
}

/// sacreBLEU silently scores the shorter of the two lists; a mismatch is
/// almost always a bug (a dropped or doubled line), so we refuse it.
pub(crate) fn check_lengths(hypotheses: usize, references: usize) -> Result<(), ReportError> {
    if hypotheses == references {
        Ok(())
    } else {
        Err(ReportError::LengthMismatch {
            hypotheses,
            references,
        })
    }
}

/// Counts every n-gram of order 1 to [`MAX_NGRAM_ORDER`]; slices of
/// different lengths are different keys, so one map holds all orders.
fn count_ngrams<'a>(tokens: &'a [&'a str]) -> HashMap<&'a [&'a str], u64> {
    let mut counts = HashMap::new();
    for n in 1..=MAX_NGRAM_ORDER {
        for ngram in tokens.windows(n) {
            *counts.entry(ngram).or_insert(0) += 1;
        }
    }
    counts
}

fn brevity_penalty(sys_len: u64, ref_len: u64) -> f64 {
    if sys_len >= ref_len {
        1.0
    } else if sys_len == 0 {
        0.0
    } else {
        (1.0 - ref_len as f64 / sys_len as f64).exp()
    }
}

/// Precisions in percent with mteval's smoothing: the k-th order that has
/// n-grams but no match gets `100 / (2^k * total)`. Orders after the first
/// with no hypothesis n-grams at all stay 0, which makes the score 0.
fn exp_smoothed_precisions(
    counts: &[u64; MAX_NGRAM_ORDER],
    totals: &[u64; MAX_NGRAM_ORDER],
) -> [f64; MAX_NGRAM_ORDER] {
    let mut precisions = [0.0; MAX_NGRAM_ORDER];
    let mut smooth = 1.0;
    for n in 0..MAX_NGRAM_ORDER {
        if totals[n] == 0 {
            break;
        }
        precisions[n] = if counts[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * totals[n] as f64)
        } else {
            100.0 * counts[n] as f64 / totals[n] as f64
        };
    }
    precisions
}

fn log_or_floor(p: f64) -> f64 {
    if p == 0.0 {
        LOG_ZERO
    } else {
        p.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_match_scores_100() {
        let bleu = corpus_bleu(&["A cat, a hat."], &["A cat, a hat."]).unwrap();
        // exp(ln 100) is one ulp above 100, in sacreBLEU too.
        assert_eq!(bleu.score, 100.00000000000004);
        assert_eq!(bleu.precisions, [100.0; 4]);
        assert_eq!(bleu.bp, 1.0);
        assert_eq!((bleu.sys_len, bleu.ref_len), (6, 6));
    }

    #[test]
    fn counts_are_clipped_by_the_reference() {
        let bleu = corpus_bleu(&["the the the the"], &["the cat"]).unwrap();
        assert_eq!(bleu.counts[0], 1);
        assert_eq!(bleu.totals, [4, 3, 2, 1]);
    }

    #[test]
    fn short_hypotheses_pay_the_brevity_penalty() {
        assert_eq!(brevity_penalty(5, 10), (1.0f64 - 2.0).exp());
        assert_eq!(brevity_penalty(0, 10), 0.0);
        assert_eq!(brevity_penalty(12, 10), 1.0);
    }

    #[test]
    fn no_match_or_empty_corpus_scores_0() {
        let empty: [&str; 0] = [];
        let bleu = corpus_bleu(&empty, &empty).unwrap();
        assert_eq!((bleu.score, bleu.bp, bleu.ratio()), (0.0, 1.0, 0.0));
        let bleu = corpus_bleu(&["x y"], &["a b"]).unwrap();
        assert_eq!(bleu.score, 0.0);
        assert_eq!(bleu.precisions, [0.0; 4]);
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        let err = corpus_bleu(&["a", "b"], &["a"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "2 hypotheses but 1 references: each hypothesis needs exactly one reference"
        );
    }

    #[test]
    fn display_matches_sacrebleu_format() {
        let bleu = corpus_bleu(&["the cat sat"], &["the cat sat down"]).unwrap();
        let text = bleu.to_string();
        assert!(
            text.starts_with("BLEU = 0.00 100.0/100.0/100.0/0.0 (BP = 0.717"),
            "{text}"
        );
        assert!(
            text.ends_with("ratio = 0.750 hyp_len = 3 ref_len = 4)"),
            "{text}"
        );
    }
}
