//! How a configuration is validated: on held-out text, or by K-fold
//! cross-validation over contiguous blocks of the text.
//!
//! Folds are never shuffled: neighbouring characters share context, so a
//! shuffled split would let the validation text leak into training. Fold `k`
//! validates on block `k` and trains on the other blocks joined in order.

use std::ops::Range;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How trials are validated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    /// The last `fraction` of the input (as `recurrent train` holds it out).
    HeldOut {
        /// Fraction of the input, taken from the end.
        fraction: f64,
    },
    /// A separate validation text.
    File {
        /// The validation text.
        path: PathBuf,
    },
    /// K-fold cross-validation over contiguous blocks.
    Folds {
        /// The number of folds, at least 2.
        k: usize,
    },
}

impl Validation {
    /// How many runs one configuration trains.
    pub fn runs(&self) -> usize {
        match self {
            Validation::Folds { k } => *k,
            _ => 1,
        }
    }
}

/// `k` contiguous byte ranges covering `text` once, in order, of nearly
/// equal length. A cut moves forward to the next line break when one is
/// near (within a tenth of a block), else to the next character boundary.
pub fn fold_ranges(text: &str, k: usize) -> Vec<Range<usize>> {
    let n = text.len();
    let k = k.max(1);
    let block = n / k;
    let mut cuts = vec![0];
    for i in 1..k {
        let ideal = (i * n / k).max(*cuts.last().expect("a cut"));
        let near = ideal + block / 10;
        let cut = text.as_bytes()[ideal..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|j| ideal + j + 1)
            .filter(|&c| c <= near && c < n)
            .unwrap_or_else(|| (ideal..=n).find(|&c| text.is_char_boundary(c)).unwrap_or(n));
        cuts.push(cut);
    }
    cuts.push(n);
    cuts.windows(2).map(|w| w[0]..w[1]).collect()
}

/// Mean and (population) standard deviation, as scikit-learn's `cv_results_`.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}
