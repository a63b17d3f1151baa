//! Truncated back-propagation through time, char-rnn style: the token sequence
//! is cut into `B` contiguous streams, and block `k` takes the next `T` tokens of
//! every stream, so the hidden state left by block `k` is the right starting
//! state for block `k+1` of the same stream.

use thiserror::Error;

use crate::DataFingerprint;

/// Token ids borrowed in their stored width: a memory-mapped prepared file
/// keeps 2 bytes per token when the vocabulary allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenIds<'a> {
    /// Two bytes per token.
    U16(&'a [u16]),
    /// Four bytes per token.
    U32(&'a [u32]),
}

impl TokenIds<'_> {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        match self {
            TokenIds::U16(ids) => ids.len(),
            TokenIds::U32(ids) => ids.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Token ids the trainer borrows and does not own, such as a memory-mapped
/// token file: reading them costs no memory beyond the pages in use.
pub trait TokenView: Send + Sync {
    /// The ids.
    fn ids(&self) -> TokenIds<'_>;
    /// What a run saves to recognise the data on resume (a prepared file's
    /// token count and checksum, so resuming does not read the whole file).
    fn fingerprint(&self) -> DataFingerprint;
}

/// Where a trainer reads its token ids: owned in memory, or a borrowed view.
pub enum TokenSource {
    /// Ids in memory (text read and encoded by the caller).
    Owned(Vec<u32>),
    /// Ids in a view, such as a memory-mapped file.
    View(Box<dyn TokenView>),
}

impl TokenSource {
    /// The ids.
    pub fn ids(&self) -> TokenIds<'_> {
        match self {
            TokenSource::Owned(ids) => TokenIds::U32(ids),
            TokenSource::View(view) => view.ids(),
        }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fingerprint saved with a run: FNV-1a of owned ids (as runs have
    /// always saved), the view's own for a view.
    pub fn fingerprint(&self) -> DataFingerprint {
        match self {
            TokenSource::Owned(ids) => DataFingerprint::of(ids),
            TokenSource::View(view) => view.fingerprint(),
        }
    }
}

impl From<Vec<u32>> for TokenSource {
    fn from(ids: Vec<u32>) -> TokenSource {
        TokenSource::Owned(ids)
    }
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            TokenSource::Owned(_) => "Owned",
            TokenSource::View(_) => "View",
        };
        f.debug_struct("TokenSource")
            .field("kind", &kind)
            .field("tokens", &self.len())
            .finish()
    }
}

/// Why a token sequence cannot be batched.
///
/// Sizes are named by their fields in [`TrainConfig`](crate::trainer::TrainConfig)
/// (`batch`, `seq_len`); a front end renders them in its own words.
#[derive(Debug, Error, PartialEq)]
pub enum BatchError {
    /// A size that must be at least 1 is 0.
    #[error("{field} must be at least 1, got 0")]
    ZeroSize {
        /// The size's field: `batch` or `seq_len`.
        field: &'static str,
    },
    /// The text is shorter than one training block of every stream.
    #[error(
        "the {what} text has {tokens} tokens, too few for batch {batch} × seq_len {seq_len} \
         (it needs at least {needed}, batch × (seq_len + 1)); use a longer text or a smaller \
         batch or seq_len"
    )]
    TooShort {
        /// Which text ("training").
        what: &'static str,
        /// Tokens the text has.
        tokens: usize,
        /// Streams asked for.
        batch: usize,
        /// Time steps per block asked for.
        seq_len: usize,
        /// Tokens needed: `batch × (seq_len + 1)`.
        needed: usize,
    },
    /// The text has fewer than two tokens, so nothing can be predicted.
    #[error(
        "the {what} text has {tokens} token(s); it needs at least 2 (one to read, one to predict)"
    )]
    TooShortToEvaluate {
        /// Which text ("validation", "evaluation").
        what: &'static str,
        /// Tokens the text has.
        tokens: usize,
    },
}

/// Cuts `n` tokens into `batch` streams of `stream_len` tokens (the remainder is dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Streams {
    /// Number of streams `B`.
    pub batch: usize,
    /// Tokens in each stream.
    pub stream_len: usize,
}

impl Streams {
    /// Streams for training: every stream must hold at least one full block of
    /// `seq_len` inputs plus the target after it.
    pub fn for_training(n: usize, batch: usize, seq_len: usize) -> Result<Streams, BatchError> {
        let streams = Streams {
            batch,
            stream_len: n / batch.max(1),
        };
        for (field, size) in [("batch", batch), ("seq_len", seq_len)] {
            if size == 0 {
                return Err(BatchError::ZeroSize { field });
            }
        }
        if streams.stream_len <= seq_len {
            // Saturating: absurd sizes must give this error, not overflow.
            let needed = batch.saturating_mul(seq_len.saturating_add(1));
            return Err(BatchError::TooShort {
                what: "training",
                tokens: n,
                batch,
                seq_len,
                needed,
            });
        }
        Ok(streams)
    }

    /// Streams for evaluation: as many as `batch` allows while each stream has
    /// at least two tokens (one prediction); blocks may be shorter than `seq_len`.
    pub fn for_evaluation(
        n: usize,
        batch: usize,
        what: &'static str,
    ) -> Result<Streams, BatchError> {
        let batch = batch.min(n / 2).max(1);
        let streams = Streams {
            batch,
            stream_len: n / batch,
        };
        if streams.stream_len < 2 {
            return Err(BatchError::TooShortToEvaluate { what, tokens: n });
        }
        Ok(streams)
    }

    /// Full training blocks of `seq_len` steps in one pass over the streams.
    pub fn blocks_per_epoch(&self, seq_len: usize) -> usize {
        (self.stream_len - 1) / seq_len
    }

    /// Predictions one pass over the streams makes (every stream token but the first).
    pub fn predictions(&self) -> usize {
        self.batch * (self.stream_len - 1)
    }

    /// Fills the time-major block starting at stream offset `start`, `t_len` steps:
    /// `x[t*B + b] = stream_b[start + t]`, `y[t*B + b] = stream_b[start + t + 1]`.
    pub fn fill<T: Copy + Into<u32>>(
        &self,
        tokens: &[T],
        start: usize,
        t_len: usize,
        x: &mut [u32],
        y: &mut [u32],
    ) {
        debug_assert!(start + t_len < self.stream_len);
        let b = self.batch;
        for t in 0..t_len {
            for s in 0..b {
                let at = s * self.stream_len + start + t;
                x[t * b + s] = tokens[at].into();
                y[t * b + s] = tokens[at + 1].into();
            }
        }
    }

    /// [`Streams::fill`] of the streams `range` only (one rank's share):
    /// `x[t*b + i] = stream_{range.start + i}[start + t]` with `b = range.len()`.
    pub fn fill_range<T: Copy + Into<u32>>(
        &self,
        tokens: &[T],
        range: &std::ops::Range<usize>,
        start: usize,
        t_len: usize,
        x: &mut [u32],
        y: &mut [u32],
    ) {
        debug_assert!(start + t_len < self.stream_len && range.end <= self.batch);
        let b = range.len();
        for t in 0..t_len {
            for (i, s) in range.clone().enumerate() {
                let at = s * self.stream_len + start + t;
                x[t * b + i] = tokens[at].into();
                y[t * b + i] = tokens[at + 1].into();
            }
        }
    }

    /// [`Streams::fill_range`] from ids of either width.
    pub fn fill_range_ids(
        &self,
        tokens: TokenIds<'_>,
        range: &std::ops::Range<usize>,
        start: usize,
        t_len: usize,
        x: &mut [u32],
        y: &mut [u32],
    ) {
        match tokens {
            TokenIds::U16(ids) => self.fill_range(ids, range, start, t_len, x, y),
            TokenIds::U32(ids) => self.fill_range(ids, range, start, t_len, x, y),
        }
    }

    /// [`Streams::fill`] from ids of either width (one branch per block, not per token).
    pub fn fill_ids(
        &self,
        tokens: TokenIds<'_>,
        start: usize,
        t_len: usize,
        x: &mut [u32],
        y: &mut [u32],
    ) {
        match tokens {
            TokenIds::U16(ids) => self.fill(ids, start, t_len, x, y),
            TokenIds::U32(ids) => self.fill(ids, start, t_len, x, y),
        }
    }
}

/// Marks where a stream starts a new document: `keep[i] = 0` where the input
/// token is the document boundary, so the state is reset before that step.
pub fn fill_keep(x: &[u32], boundary: u32, keep: &mut [f32]) {
    for (k, &tok) in keep.iter_mut().zip(x) {
        *k = if tok == boundary { 0.0 } else { 1.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_blocks_continue_each_stream() {
        let tokens: Vec<u32> = (0..23).collect();
        let s = Streams::for_training(tokens.len(), 2, 3).unwrap();
        assert_eq!(s.stream_len, 11);
        assert_eq!(s.blocks_per_epoch(3), 3);
        let (mut x, mut y) = (vec![0; 6], vec![0; 6]);
        s.fill(&tokens, 0, 3, &mut x, &mut y);
        assert_eq!(x, [0, 11, 1, 12, 2, 13]);
        assert_eq!(y, [1, 12, 2, 13, 3, 14]);
        s.fill(&tokens, 3, 3, &mut x, &mut y);
        assert_eq!(x, [3, 14, 4, 15, 5, 16]);
    }

    #[test]
    fn too_short_text_is_an_error_naming_the_sizes() {
        let err = Streams::for_training(10, 4, 5).unwrap_err();
        assert_eq!(
            err,
            BatchError::TooShort {
                what: "training",
                tokens: 10,
                batch: 4,
                seq_len: 5,
                needed: 24
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("10 tokens") && text.contains("batch 4") && text.contains("at least 24"),
            "{text}"
        );
        assert!(
            !text.contains("--"),
            "a library error names no flags: {text}"
        );
        let huge = Streams::for_training(10, usize::MAX, usize::MAX).unwrap_err();
        assert!(matches!(
            huge,
            BatchError::TooShort {
                needed: usize::MAX,
                ..
            }
        ));
        assert_eq!(
            Streams::for_training(10, 0, 5),
            Err(BatchError::ZeroSize { field: "batch" })
        );
        assert_eq!(
            Streams::for_training(10, 2, 0),
            Err(BatchError::ZeroSize { field: "seq_len" })
        );
        assert!(Streams::for_evaluation(1, 8, "validation").is_err());
        let e = Streams::for_evaluation(5, 8, "validation").unwrap();
        assert_eq!((e.batch, e.stream_len, e.predictions()), (2, 2, 2));
    }

    #[test]
    fn narrow_ids_fill_the_same_blocks() {
        let wide: Vec<u32> = (0..23).collect();
        let narrow: Vec<u16> = (0..23).collect();
        let s = Streams::for_training(wide.len(), 2, 3).unwrap();
        let (mut x, mut y, mut x2, mut y2) = (vec![0; 6], vec![0; 6], vec![0; 6], vec![0; 6]);
        for start in [0, 3, 6] {
            s.fill_ids(TokenIds::U32(&wide), start, 3, &mut x, &mut y);
            s.fill_ids(TokenIds::U16(&narrow), start, 3, &mut x2, &mut y2);
            assert_eq!((&x, &y), (&x2, &y2));
        }
        let owned = TokenSource::from(wide.clone());
        assert_eq!(owned.len(), 23);
        assert_eq!(owned.fingerprint(), DataFingerprint::of(&wide));
    }

    #[test]
    fn keep_mask_zeroes_boundaries() {
        let mut keep = [9.0; 4];
        fill_keep(&[3, 0, 3, 1], 3, &mut keep);
        assert_eq!(keep, [0.0, 1.0, 0.0, 1.0]);
    }
}
