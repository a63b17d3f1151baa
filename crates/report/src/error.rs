//! The one error type of this crate.

/// Inputs that cannot be measured or drawn.
///
/// Each message is a single line meant to be shown to users as `error: {msg}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// A corpus metric was given different numbers of hypotheses and references.
    #[error("{hypotheses} hypotheses but {references} references: each hypothesis needs exactly one reference")]
    LengthMismatch {
        /// How many hypotheses there were.
        hypotheses: usize,
        /// How many references there were.
        references: usize,
    },

    /// Attention weights whose count is not target tokens times source tokens.
    #[error(
        "attention weights have {got} values but {tgt} target x {src} source tokens need {}",
        tgt.saturating_mul(*src)
    )]
    WeightsShape {
        /// Number of source tokens (columns).
        src: usize,
        /// Number of target tokens (rows).
        tgt: usize,
        /// Number of weights given.
        got: usize,
    },
}
