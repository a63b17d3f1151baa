//! Defaults that fit the corpus: the model's width, depth and embedding, the
//! batch and the learning rate chosen from the training text's size and
//! vocabulary, the threads and the time budget, for the options a user left
//! unset.
//!
//! The rule is a scaling law fitted to measurements (docs/DEFAULTS.md,
//! `scripts/defaults_grid.sh` and `scripts/fit_defaults.py`):
//!
//! ```text
//! loss(N, D) = E + S (A / N^alpha + 1 / D^beta)
//! ```
//!
//! with N the recurrent parameters and D the training tokens (Chinchilla's
//! form). The exponents and the balance A are shared by the corpora measured;
//! a corpus's entropy floor E and scale S (Chinese spans more nats than
//! English) do not move the best size, so a new corpus needs neither. A bigger model learns more per token but sees fewer tokens in
//! the budget: a token costs time in proportion to its floating-point work,
//! `6 (N + H V)` with the softmax `H V` priced in (what makes a 9,000-character
//! vocabulary so dear), and passes over the text past the first are worth
//! less (Muennighoff et al. 2023). The size with the lowest predicted loss
//! wins; it is never given more recurrent parameters than the text has tokens.
//!
//! The prediction is deterministic: throughput comes from the work per token
//! and a fitted rate, not from timing anything at start-up, so the same text
//! and budget always give the same model.

use recurrent_model::ModelConfig;
use recurrent_nn::CellKind;

/// Exponent of the parameters in the law.
const ALPHA: f64 = 0.157;
/// Exponent of the tokens in the law.
const BETA: f64 = 0.422;
/// Weight of the parameter term against the token term (N and D in
/// millions; each corpus's own scale multiplies both, so only the balance
/// moves the best size).
const A_COEF: f64 = 0.615;
/// Seconds a token costs on one thread apart from its arithmetic (the
/// per-step work that does not grow with the model).
const SECS_PER_TOKEN: f64 = 1.84e-6;
/// Floating-point operations per second one thread sustains in training.
const FLOPS_PER_THREAD: f64 = 6.89e10;
/// How throughput grows with threads: `threads^THREAD_SCALING` (two threads
/// trained 1.33x and 1.6x as fast as one on the two corpora measured).
const THREAD_SCALING: f64 = 0.55;
/// Passes over the same text past which another pass is worth little
/// (Muennighoff et al.'s R*_D, about 15).
const REPEAT_HORIZON: f64 = 15.0;
/// The budget the sizes are chosen for when no time limit is given.
pub const DEFAULT_BUDGET_SECS: f64 = 30.0 * 60.0;
/// Widths the rule chooses among.
const WIDTHS: [usize; 12] = [32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536];
/// Depths the rule chooses among: one. At the budgets measured a second
/// layer learned more slowly per token than its parameters say (2x128 behind
/// 1x128 on both corpora, docs/DEFAULTS.md); deeper models are for runs of
/// hours, with `--layers`.
const DEPTHS: [usize; 1] = [1];
/// Streams per batch (the tune studies' winners had 26 and 45).
const BATCH: usize = 32;
/// Adam's learning rate: the one every width of the measurements trained
/// with (the tune studies' winners had 3.5e-3 and 3.8e-3).
const LR: f32 = 3e-3;

/// Which options the rule chooses: the ones the user left unset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FitToCorpus {
    /// Stacked recurrent layers.
    pub layers: bool,
    /// Hidden units per layer.
    pub hidden: bool,
    /// Embedding width.
    pub embed: bool,
    /// Streams per batch.
    pub batch: bool,
    /// Learning rate (Adam and AdamW only).
    pub lr: bool,
}

impl FitToCorpus {
    /// Choose nothing: train the options as given.
    pub const NONE: FitToCorpus = FitToCorpus {
        layers: false,
        hidden: false,
        embed: false,
        batch: false,
        lr: false,
    };

    /// Choose every option the rule knows.
    pub const ALL: FitToCorpus = FitToCorpus {
        layers: true,
        hidden: true,
        embed: true,
        batch: true,
        lr: true,
    };

    /// What `recurrent train` and the Python package fit: the sizes a user
    /// left unset (`None`); the batch and learning rate only with fitted
    /// widths, since they were measured with them (a width of the user's own
    /// keeps the fixed ones). `hidden` is the width given, a tied embedding's
    /// width counting as one.
    pub fn unset(
        layers: Option<usize>,
        hidden: Option<usize>,
        embed: Option<usize>,
        batch: Option<usize>,
        lr: Option<f32>,
    ) -> FitToCorpus {
        FitToCorpus {
            layers: layers.is_none(),
            hidden: hidden.is_none(),
            embed: embed.is_none(),
            batch: batch.is_none() && hidden.is_none(),
            lr: lr.is_none() && hidden.is_none(),
        }
    }

    /// The layers' width a user gave: `hidden`, or else the width of a tied
    /// embedding that feeds the output layer directly (no `dense` layer, no
    /// narrower `last_hidden`), which fixes the layers' width too.
    pub fn given_width(
        hidden: Option<usize>,
        embed: Option<usize>,
        tie: bool,
        last_hidden: usize,
        dense: usize,
    ) -> Option<usize> {
        hidden.or(embed.filter(|_| tie && last_hidden == 0 && dense == 0))
    }

    /// Whether the rule chooses anything.
    pub fn any(&self) -> bool {
        self.layers || self.hidden || self.embed || self.batch || self.lr
    }
}

/// What the rule knows of a run before it chooses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Corpus {
    /// Training tokens (one pass).
    pub tokens: usize,
    /// Tokens in the vocabulary.
    pub vocab: usize,
    /// Threads the kernels use.
    pub threads: usize,
    /// Seconds of training to size the model for.
    pub budget_secs: f64,
    /// Steps of back-propagation through time per block (a batch's streams
    /// must each hold more than one block).
    pub seq_len: usize,
}

/// One candidate size and what the law predicts of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    /// Stacked layers.
    pub layers: usize,
    /// Hidden units per layer.
    pub hidden: usize,
    /// Embedding width.
    pub embed: usize,
    /// Recurrent parameters (N).
    pub params: usize,
    /// Training tokens per second the rule expects.
    pub tokens_per_sec: f64,
    /// Tokens trained in the budget (D).
    pub tokens: f64,
    /// The law's loss less the corpus's floor (lower is better).
    pub excess_loss: f64,
}

/// What the rule chose, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// The winning size.
    pub best: Prediction,
    /// Streams per batch.
    pub batch: usize,
    /// Learning rate (for Adam and AdamW).
    pub lr: f32,
    /// Candidates weighed.
    pub candidates: usize,
    /// A sentence on the choice, for the user.
    pub reason: String,
}

/// Recurrent parameters of a stack: weights and PyTorch's two bias vectors.
pub fn recurrent_params(cell: CellKind, layers: usize, hidden: usize, embed: usize) -> usize {
    let gates = match cell {
        CellKind::Lstm => 4,
        CellKind::Gru => 3,
        CellKind::RnnTanh | CellKind::RnnRelu => 1,
    };
    (0..layers)
        .map(|layer| {
            let input = if layer == 0 { embed } else { hidden };
            gates * hidden * (input + hidden + 2)
        })
        .sum()
}

/// The embedding for a vocabulary: about 1.6 V^0.56 (the rule of thumb
/// fitted to published models, docs/research/corpus-defaults.md), at least
/// 64 and never wider than the layers.
pub fn embed_width(vocab: usize, hidden: usize) -> usize {
    let wide = (1.6 * (vocab as f64).powf(0.56) / 8.0).round() as usize * 8;
    wide.max(64).min(hidden)
}

/// Tokens worth as much as `tokens` trained over a text of `unique` tokens:
/// the first pass counts in full, later ones less and less.
fn effective_tokens(tokens: f64, unique: f64) -> f64 {
    if tokens <= unique || unique <= 0.0 {
        return tokens;
    }
    let repeats = tokens / unique - 1.0;
    unique + unique * REPEAT_HORIZON * (1.0 - (-repeats / REPEAT_HORIZON).exp())
}

/// What the law predicts for one size.
pub fn predict(
    corpus: &Corpus,
    cell: CellKind,
    layers: usize,
    hidden: usize,
    embed: usize,
) -> Prediction {
    // `--embed 0` feeds one-hot vectors: the first layer reads V inputs.
    let input = if embed == 0 { corpus.vocab } else { embed };
    let params = recurrent_params(cell, layers, hidden, input);
    let flops = 6.0 * (params + hidden * corpus.vocab) as f64;
    let speedup = (corpus.threads.max(1) as f64).powf(THREAD_SCALING);
    let tokens_per_sec = speedup / (SECS_PER_TOKEN + flops / FLOPS_PER_THREAD);
    let tokens = tokens_per_sec * corpus.budget_secs;
    let n = params as f64 / 1e6;
    let d = effective_tokens(tokens, corpus.tokens as f64) / 1e6;
    Prediction {
        layers,
        hidden,
        embed,
        params,
        tokens_per_sec,
        tokens,
        excess_loss: A_COEF / n.powf(ALPHA) + 1.0 / d.powf(BETA),
    }
}

/// Chooses what `fit` allows of `config`, `batch` and `lr` for the corpus;
/// what it does not allow stays as given.
pub fn choose(
    corpus: &Corpus,
    fit: FitToCorpus,
    config: &ModelConfig,
    batch: usize,
    lr: f32,
) -> Choice {
    let depths: Vec<usize> = if fit.layers {
        DEPTHS.to_vec()
    } else {
        vec![config.layers]
    };
    let widths: Vec<usize> = if fit.hidden {
        WIDTHS.to_vec()
    } else {
        vec![config.hidden]
    };
    let embed_for = |hidden: usize| {
        if !fit.embed {
            config.embed
        } else if config.tie {
            hidden
        } else {
            embed_width(corpus.vocab, hidden)
        }
    };
    let mut all = Vec::new();
    for &layers in &depths {
        for &hidden in &widths {
            all.push(predict(
                corpus,
                config.cell,
                layers,
                hidden,
                embed_for(hidden),
            ));
        }
    }
    // No more recurrent parameters than the text has tokens (char-rnn's
    // advice): past that a model memorizes. The smallest size when even it
    // is too big.
    let within: Vec<&Prediction> = all.iter().filter(|p| p.params <= corpus.tokens).collect();
    let pool = if within.is_empty() {
        vec![all.iter().min_by_key(|p| p.params).expect("a candidate")]
    } else {
        within
    };
    let best = **pool
        .iter()
        .min_by(|a, b| a.excess_loss.total_cmp(&b.excess_loss))
        .expect("a candidate");
    let batch = if fit.batch {
        // Every stream must hold more than one block.
        let most = corpus.tokens.saturating_sub(1) / (corpus.seq_len + 1);
        BATCH.min(most).max(1)
    } else {
        batch
    };
    let lr = if fit.lr { LR } else { lr };
    let capped = within_cap_note(&all, &best, corpus.tokens);
    let reason = format!(
        "{} tokens, vocabulary {}, {} thread{}, {}: {} x {} (embed {}, {} recurrent parameters) \
         should train on ~{} tokens/s, {} tokens ({:.1} passes over the text), the lowest \
         predicted loss of {} sizes{capped}",
        group(corpus.tokens),
        group(corpus.vocab),
        corpus.threads,
        if corpus.threads == 1 { "" } else { "s" },
        budget_words(corpus.budget_secs),
        best.layers,
        best.hidden,
        best.embed,
        group(best.params),
        group(best.tokens_per_sec as usize),
        group(best.tokens as usize),
        best.tokens / corpus.tokens.max(1) as f64,
        all.len(),
    );
    Choice {
        best,
        batch,
        lr,
        candidates: all.len(),
        reason,
    }
}

/// A note when the text's size, not the budget, limited the model.
fn within_cap_note(all: &[Prediction], best: &Prediction, tokens: usize) -> String {
    let unconstrained = all
        .iter()
        .min_by(|a, b| a.excess_loss.total_cmp(&b.excess_loss))
        .expect("a candidate");
    if unconstrained.params > best.params && unconstrained.params > tokens {
        format!(
            ", capped by the text ({} x {} would have more recurrent parameters than the \
             text has tokens)",
            unconstrained.layers, unconstrained.hidden
        )
    } else {
        String::new()
    }
}

fn budget_words(secs: f64) -> String {
    if secs >= 90.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{secs:.0} s")
    }
}

/// 1234567 -> "1,234,567".
fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ModelConfig {
        crate::lm::TrainOptions::fixed_model()
    }

    fn corpus(tokens: usize, vocab: usize, budget_secs: f64) -> Corpus {
        Corpus {
            tokens,
            vocab,
            threads: 2,
            budget_secs,
            seq_len: 100,
        }
    }

    #[test]
    fn unset_sizes_are_fitted_and_a_given_width_keeps_batch_and_rate() {
        assert_eq!(
            FitToCorpus::unset(None, None, None, None, None),
            FitToCorpus::ALL
        );
        let wide = FitToCorpus::unset(None, Some(64), None, None, None);
        assert!(wide.layers && wide.embed && !wide.hidden && !wide.batch && !wide.lr);
        let given = FitToCorpus::unset(Some(2), Some(64), Some(16), Some(8), Some(1e-3));
        assert!(!given.any());
    }

    #[test]
    fn counts_parameters_as_pytorch() {
        // nn.LSTM(64, 128, 2): 4*128*(64+128+2) + 4*128*(128+128+2) = 231,424.
        assert_eq!(recurrent_params(CellKind::Lstm, 2, 128, 64), 231_424);
        // nn.GRU(10, 20): 3*20*(10+20+2) = 1,920.
        assert_eq!(recurrent_params(CellKind::Gru, 1, 20, 10), 1_920);
    }

    #[test]
    fn a_large_vocabulary_gets_a_wide_embedding() {
        assert_eq!(embed_width(65, 512), 64);
        let wide = embed_width(9_384, 512);
        assert!((256..=288).contains(&wide), "{wide}");
        assert_eq!(embed_width(9_384, 96), 96);
    }

    #[test]
    fn repeated_passes_are_worth_less() {
        assert_eq!(effective_tokens(5e5, 1e6), 5e5);
        let twice = effective_tokens(2e6, 1e6);
        assert!(twice < 2e6 && twice > 1.9e6, "{twice}");
        assert!(effective_tokens(1e9, 1e6) <= 1e6 * (1.0 + REPEAT_HORIZON));
    }

    #[test]
    fn more_time_buys_a_bigger_model() {
        let short = choose(
            &corpus(50_000_000, 65, 60.0),
            FitToCorpus::ALL,
            &config(),
            50,
            2e-3,
        );
        let long = choose(
            &corpus(50_000_000, 65, 36_000.0),
            FitToCorpus::ALL,
            &config(),
            50,
            2e-3,
        );
        assert!(long.best.params > short.best.params, "{short:?} {long:?}");
    }

    #[test]
    fn a_large_vocabulary_narrows_the_model_for_the_same_time() {
        let latin = choose(
            &corpus(3_000_000, 65, 600.0),
            FitToCorpus::ALL,
            &config(),
            50,
            2e-3,
        );
        let chinese = choose(
            &corpus(3_000_000, 9_384, 600.0),
            FitToCorpus::ALL,
            &config(),
            50,
            2e-3,
        );
        assert!(
            chinese.best.hidden < latin.best.hidden,
            "{latin:?} {chinese:?}"
        );
        assert!(chinese.best.embed > latin.best.embed);
    }

    #[test]
    fn one_hot_inputs_count_the_vocabulary() {
        let c = corpus(1_000_000, 100, 600.0);
        let one_hot = predict(&c, CellKind::Lstm, 1, 128, 0);
        assert_eq!(
            one_hot.params,
            recurrent_params(CellKind::Lstm, 1, 128, 100)
        );
    }

    #[test]
    fn a_small_text_caps_the_model() {
        let choice = choose(
            &corpus(20_000, 40, 3_600.0),
            FitToCorpus::ALL,
            &config(),
            50,
            2e-3,
        );
        assert!(choice.best.params <= 20_000, "{choice:?}");
        // Streams of more than one block each.
        assert!(choice.batch * 101 <= 20_000);
    }

    #[test]
    fn options_given_stay_as_given() {
        let fit = FitToCorpus {
            hidden: true,
            ..FitToCorpus::NONE
        };
        let choice = choose(&corpus(5_000_000, 65, 600.0), fit, &config(), 50, 2e-3);
        assert_eq!(choice.best.layers, 2);
        assert_eq!(choice.best.embed, 64);
        assert_eq!(choice.batch, 50);
        assert_eq!(choice.lr, 2e-3);
        let fixed = choose(
            &corpus(5_000_000, 65, 600.0),
            FitToCorpus::NONE,
            &config(),
            50,
            2e-3,
        );
        assert_eq!((fixed.best.layers, fixed.best.hidden), (2, 128));
        assert_eq!(fixed.candidates, 1);
    }

    #[test]
    fn the_choice_is_deterministic_and_explained() {
        let c = corpus(1_003_854, 65, DEFAULT_BUDGET_SECS);
        let a = choose(&c, FitToCorpus::ALL, &config(), 50, 2e-3);
        assert_eq!(a, choose(&c, FitToCorpus::ALL, &config(), 50, 2e-3));
        assert!(a.reason.contains("1,003,854 tokens"), "{}", a.reason);
        assert!(a.reason.contains("30 min"), "{}", a.reason);
    }
}
