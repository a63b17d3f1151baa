//! Sentence pairs for sequence-to-sequence training: reading them from a
//! tab-separated file, and splitting them into training, validation and test
//! sets that a seed fixes.
//!
//! ```
//! use recurrent_text::{parse_pairs, split_pairs, PairColumns, SplitFractions};
//!
//! let tsv = "Go.\tVa !\nHi.\tSalut !\n\nRun!\tCours !\n";
//! let pairs = parse_pairs("eng-fra.txt", tsv.as_bytes(), &PairColumns::default())?;
//! assert_eq!(pairs[1], ("Hi.".to_string(), "Salut !".to_string()));
//!
//! let fractions = SplitFractions { valid: 0.0, test: 1.0 / 3.0 };
//! let split = split_pairs(pairs, fractions, 42)?;
//! assert_eq!((split.train.len(), split.valid.len(), split.test.len()), (2, 0, 1));
//! # Ok::<(), recurrent_text::PairsError>(())
//! ```

use std::io;
use std::path::{Path, PathBuf};

use recurrent_kernels::Rng;

/// A source sentence and its target sentence.
pub type Pair = (String, String);

/// Which tab-separated columns hold the source and the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairColumns {
    /// Column of the source sentence, counting from 0.
    pub src: usize,
    /// Column of the target sentence, counting from 0.
    pub tgt: usize,
    /// Swap source and target after reading, e.g. to
    /// translate French to English from `eng-fra.txt`.
    pub reverse: bool,
}

impl Default for PairColumns {
    /// Source in column 0, target in column 1, as in `eng-fra.txt`.
    fn default() -> Self {
        PairColumns {
            src: 0,
            tgt: 1,
            reverse: false,
        }
    }
}

/// Everything that can go wrong reading or splitting sentence pairs.
///
/// Each message is a single line meant to be shown to users as
/// `error: {msg}`; problems in a file name it and the line (counting from 1).
#[derive(Debug, thiserror::Error)]
pub enum PairsError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        err: io::Error,
    },

    /// A line is not valid UTF-8.
    #[error("{name}:{line}: not valid UTF-8 (first invalid byte at column {column})")]
    InvalidUtf8 {
        /// The file.
        name: String,
        /// The line, counting from 1.
        line: usize,
        /// Byte offset of the first invalid byte within the line, counting from 1.
        column: usize,
    },

    /// A line has fewer tab-separated columns than the one asked for.
    #[error(
        "{name}:{line}: no column {column} (the line has {} separated by tabs; columns count from 0)",
        count_columns(*found)
    )]
    MissingColumn {
        /// The file.
        name: String,
        /// The line, counting from 1.
        line: usize,
        /// The column asked for.
        column: usize,
        /// How many columns the line has.
        found: usize,
    },

    /// A source or target sentence is empty or only whitespace.
    #[error("{name}:{line}: column {column} is empty")]
    EmptyColumn {
        /// The file.
        name: String,
        /// The line, counting from 1.
        line: usize,
        /// The empty column.
        column: usize,
    },

    /// The file has no pairs at all (it is empty or only blank lines).
    #[error("{name} contains no sentence pairs")]
    NoPairs {
        /// The file.
        name: String,
    },

    /// Split fractions that are not in `[0, 1]` or that add up to more than 1.
    #[error(
        "invalid split: validation {valid} and test {test} must each be between 0 and 1 \
         and add up to at most 1"
    )]
    BadFractions {
        /// The validation fraction given.
        valid: f64,
        /// The test fraction given.
        test: f64,
    },
}

fn count_columns(n: usize) -> String {
    if n == 1 {
        "1 column".to_string()
    } else {
        format!("{n} columns")
    }
}

/// Reads sentence pairs from a tab-separated file, one pair a line.
///
/// Lines that are empty or only whitespace are skipped; a line ending in
/// `\r\n` and a leading byte-order mark are accepted. Columns other than the
/// two chosen are ignored (Tatoeba exports carry attribution there), and the
/// sentences are kept exactly as written. A line without the chosen columns,
/// with an empty sentence, or that is not UTF-8, is an error naming the file
/// and line: silently dropping it would shift what a model learns.
pub fn read_pairs(path: &Path, columns: &PairColumns) -> Result<Vec<Pair>, PairsError> {
    let bytes = std::fs::read(path).map_err(|err| PairsError::Read {
        path: path.to_path_buf(),
        err,
    })?;
    parse_pairs(&path.display().to_string(), &bytes, columns)
}

/// [`read_pairs`] on text already in memory; `name` is what error messages
/// call it.
pub fn parse_pairs(
    name: &str,
    bytes: &[u8],
    columns: &PairColumns,
) -> Result<Vec<Pair>, PairsError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut pairs = Vec::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = std::str::from_utf8(raw).map_err(|e| PairsError::InvalidUtf8 {
            name: name.to_string(),
            line,
            column: e.valid_up_to() + 1,
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let at = Location { name, line };
        let (src, tgt) = (at.column(text, columns.src)?, at.column(text, columns.tgt)?);
        pairs.push(if columns.reverse {
            (tgt.to_string(), src.to_string())
        } else {
            (src.to_string(), tgt.to_string())
        });
    }
    if pairs.is_empty() {
        return Err(PairsError::NoPairs {
            name: name.to_string(),
        });
    }
    Ok(pairs)
}

/// Where a line is, for error messages.
struct Location<'a> {
    name: &'a str,
    line: usize,
}

impl Location<'_> {
    /// Column `column` of `text`, which must be there and not blank.
    fn column<'t>(&self, text: &'t str, column: usize) -> Result<&'t str, PairsError> {
        let Some(cell) = text.split('\t').nth(column) else {
            return Err(PairsError::MissingColumn {
                name: self.name.to_string(),
                line: self.line,
                column,
                found: text.split('\t').count(),
            });
        };
        if cell.trim().is_empty() {
            return Err(PairsError::EmptyColumn {
                name: self.name.to_string(),
                line: self.line,
                column,
            });
        }
        Ok(cell)
    }
}

/// What share of the pairs goes to validation and to test; training gets
/// the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitFractions {
    /// Share of pairs for validation, in `[0, 1]`.
    pub valid: f64,
    /// Share of pairs for testing, in `[0, 1]`.
    pub test: f64,
}

/// Pairs divided into three disjoint sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairSplit {
    /// Pairs to train on.
    pub train: Vec<Pair>,
    /// Pairs to validate on while training.
    pub valid: Vec<Pair>,
    /// Pairs held out for the final measurement.
    pub test: Vec<Pair>,
}

/// Splits `pairs` into training, validation and test sets, the same way
/// every time for the same pairs, fractions and `seed`.
///
/// The pairs are shuffled with a seeded Fisher-Yates shuffle; the test set
/// takes the first `round(n * test)` of them and validation the next
/// `round(n * valid)` (fewer if rounding would leave training a negative
/// share), so the test set does not change when only the validation
/// fraction does. Within each set, pairs keep their order in the file.
pub fn split_pairs(
    pairs: Vec<Pair>,
    fractions: SplitFractions,
    seed: u64,
) -> Result<PairSplit, PairsError> {
    let SplitFractions { valid, test } = fractions;
    let in_unit = |f: f64| (0.0..=1.0).contains(&f);
    // A tolerance, so that 0.9 + 0.1 is accepted whatever its rounding.
    if !in_unit(valid) || !in_unit(test) || valid + test > 1.0 + 1e-9 {
        return Err(PairsError::BadFractions { valid, test });
    }
    let n = pairs.len();
    let n_test = share(n, test);
    let n_valid = share(n, valid).min(n - n_test);

    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, seed);
    // Which set each pair goes to, by its index in the file.
    let mut set = vec![Set::Train; n];
    for &i in &order[..n_test] {
        set[i] = Set::Test;
    }
    for &i in &order[n_test..n_test + n_valid] {
        set[i] = Set::Valid;
    }

    let mut split = PairSplit {
        train: Vec::with_capacity(n - n_test - n_valid),
        valid: Vec::with_capacity(n_valid),
        test: Vec::with_capacity(n_test),
    };
    for (pair, set) in pairs.into_iter().zip(set) {
        match set {
            Set::Train => split.train.push(pair),
            Set::Valid => split.valid.push(pair),
            Set::Test => split.test.push(pair),
        }
    }
    Ok(split)
}

#[derive(Clone, Copy)]
enum Set {
    Train,
    Valid,
    Test,
}

/// `round(n * fraction)`, never more than `n`.
fn share(n: usize, fraction: f64) -> usize {
    ((n as f64 * fraction).round() as usize).min(n)
}

/// Fisher-Yates: every permutation equally likely, and the same one for the
/// same seed on every platform.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = Rng::new(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_permutation_fixed_by_the_seed() {
        let mut a: Vec<usize> = (0..100).collect();
        let mut b = a.clone();
        shuffle(&mut a, 7);
        shuffle(&mut b, 7);
        assert_eq!(a, b);
        assert_ne!(a, (0..100).collect::<Vec<_>>());
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        let mut c: Vec<usize> = (0..100).collect();
        shuffle(&mut c, 8);
        assert_ne!(a, c);
    }

    #[test]
    fn shares_round_and_stay_within_n() {
        assert_eq!(share(108_306, 0.05), 5415);
        assert_eq!(share(3, 0.5), 2);
        assert_eq!(share(0, 0.5), 0);
        assert_eq!(share(10, 1.0), 10);
    }
}
