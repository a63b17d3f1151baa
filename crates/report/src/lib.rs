//! Measures and pictures of results for `recurrent`: how good a model's
//! output is, and what its training and its attention looked like.
//!
//! Measures, computed the way sacreBLEU computes them by default so that our
//! numbers can be compared with published ones:
//!
//! * [`corpus_bleu`]: corpus BLEU with the `13a` tokenizer
//!   ([`tokenize_13a`]), clipped 1- to 4-gram counts summed over the corpus,
//!   the brevity penalty and `exp` smoothing, one reference per sentence.
//! * [`corpus_chrf`]: chrF with character n-grams up to 6, beta 2 and
//!   whitespace removed, from corpus-level statistics.
//!
//! Both have an accumulator ([`BleuStats`], [`ChrfStats`]) for scoring
//! sentences as they are produced. `tests/sacrebleu.rs` checks every number
//! against the `sacrebleu` Python package on a committed fixture.
//!
//! Pictures, as standalone SVG text with no dependencies:
//!
//! * [`loss_curve_svg`]: one or more loss curves against training steps.
//! * [`attention_heatmap_svg`]: a decoder's attention weights, source tokens
//!   across, target tokens down.
//! * [`search_svg`]: a hyper-parameter search: parallel coordinates of the
//!   trials and their validation curves.
//!
//! Logs: [`EventWriter`] writes TensorBoard event files (scalars, texts, and
//! hyper-parameters for the hparams plugin).
//!
//! Views, as one self-contained HTML page (CSS and JavaScript embedded):
//!
//! * [`inspect_view_html`]: a language model's inspection of a text
//!   (surprisal, hidden units, gate saturation), drawn from JSON whose shape
//!   it documents.
//!
//! ```
//! use recurrent_report::{corpus_bleu, corpus_chrf, loss_curve_svg, Series};
//!
//! let hyps = ["the cat sat on the mat."];
//! let refs = ["the cat sat on the mat."];
//! let bleu = corpus_bleu(&hyps, &refs)?;
//! assert!((bleu.score - 100.0).abs() < 1e-9);
//! assert_eq!(bleu.to_string(), "BLEU = 100.00 100.0/100.0/100.0/100.0 \
//!     (BP = 1.000 ratio = 1.000 hyp_len = 7 ref_len = 7)");
//! assert_eq!(corpus_chrf(&hyps, &refs)?, 100.0);
//!
//! let train = Series::new("train", vec![(0.0, 4.2), (100.0, 2.1), (200.0, 1.7)]);
//! let svg = loss_curve_svg(&[train], "char LSTM", "step", "loss (nats)");
//! assert!(svg.starts_with("<svg"));
//! # Ok::<(), recurrent_report::ReportError>(())
//! ```
//!
//! This crate knows nothing of models, tokenizers or files: it takes strings
//! and numbers and returns scores and SVG text, for the caller to print or
//! write. Nothing here panics on bad input: mismatched inputs are a
//! [`ReportError`] naming the counts involved, and values a picture cannot
//! show (NaN, infinities) are left out of it.

#![deny(missing_docs)]

mod bleu;
mod chrf;
mod error;
mod heatmap;
mod html;
mod loss_curve;
mod search_plot;
mod svg;
mod tensorboard;
mod tokenize;

pub use bleu::{corpus_bleu, Bleu, BleuStats, MAX_NGRAM_ORDER};
pub use chrf::{corpus_chrf, ChrfStats, CHRF_BETA, CHRF_CHAR_ORDER};
pub use error::ReportError;
pub use heatmap::attention_heatmap_svg;
pub use html::{inspect_view_html, INSPECT_CSS, INSPECT_JS};
pub use loss_curve::{loss_curve_svg, Series};
pub use search_plot::{search_svg, SearchAxis, SearchTrial};
pub use tensorboard::{
    EventWriter, HParamDomain, HParamInfo, HParamKind, HParamValue, SessionStatus,
};
pub use tokenize::tokenize_13a;
