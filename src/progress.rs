//! Progress display for training: a bar with loss, tokens/s and ETA on a
//! terminal, plain periodic lines otherwise (logs, CI).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use recurrent::{EvalReport, Observer, StepReport};

/// Shows training progress.
pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
    tokens: usize,
    loss_avg: Option<f64>,
}

impl Progress {
    /// A bar on a terminal, periodic lines elsewhere.
    pub fn new() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(1000);
            bar.set_style(
                ProgressStyle::with_template("{bar:30.cyan/blue} {percent:>3}% {msg} ETA {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        Progress {
            bar,
            started: Instant::now(),
            last_line: Instant::now(),
            tokens: 0,
            loss_avg: None,
        }
    }

    /// Records one step and refreshes the display.
    pub fn step(&mut self, step: u64, epoch: u64, loss: f64, tokens: usize, progress: Option<f64>) {
        self.tokens += tokens;
        // An exponential average reads steadier than the noisy per-block loss.
        let avg = self.loss_avg.map_or(loss, |a| 0.95 * a + 0.05 * loss);
        self.loss_avg = Some(avg);
        let rate = self.tokens as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let msg = format!(
            "step {step} | epoch {epoch} | loss {avg:.4} | {} tok/s",
            human(rate)
        );
        match &self.bar {
            Some(bar) => {
                bar.set_message(msg);
                if let Some(p) = progress {
                    bar.set_position((p * 1000.0) as u64);
                }
            }
            None => {
                if self.last_line.elapsed() >= Duration::from_secs(10) {
                    self.last_line = Instant::now();
                    let pct = progress
                        .map(|p| format!("{:>3.0}% ", p * 100.0))
                        .unwrap_or_default();
                    eprintln!("{pct}{msg}");
                }
            }
        }
    }

    /// Prints a line without breaking the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `12.3k`-style numbers.
pub fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// How validation lines read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalStyle {
    /// Loss, bits per token, perplexity, accuracy.
    LanguageModel,
    /// Loss, perplexity, accuracy and greedy BLEU on this many pairs.
    Seq2Seq { bleu_pairs: usize },
}

/// The command line's observer of a training run: the progress display,
/// validation lines, warnings, and Ctrl-C.
pub struct ProgressObserver {
    progress: Progress,
    style: EvalStyle,
    stop: &'static AtomicBool,
    /// The step and epoch the run is at, for validation lines.
    at: (u64, u64),
}

impl ProgressObserver {
    /// Shows progress of a run now at `(step, epoch)`; the run stops cleanly
    /// once `stop` is set.
    pub fn new(style: EvalStyle, stop: &'static AtomicBool, at: (u64, u64)) -> ProgressObserver {
        ProgressObserver {
            progress: Progress::new(),
            style,
            stop,
            at,
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.progress.finish();
    }
}

impl<T: ?Sized> Observer<T> for ProgressObserver {
    fn on_step(&mut self, _: &T, r: &StepReport) {
        self.at = (r.step, r.epoch);
        self.progress
            .step(r.step, r.epoch, r.loss, r.tokens, r.progress);
    }

    fn on_eval(&mut self, _: &T, r: &EvalReport, improved: bool) {
        let best = if improved { " best" } else { "" };
        let line = match self.style {
            EvalStyle::LanguageModel => format!(
                "validation loss {:.4} ({:.4} bits/token, perplexity {:.2}, accuracy {:.1}%){best}",
                r.loss,
                r.bits_per_token(),
                r.perplexity(),
                100.0 * r.accuracy,
            ),
            EvalStyle::Seq2Seq { bleu_pairs } => format!(
                "validation loss {:.4} (perplexity {:.2}, accuracy {:.1}%){}{best}",
                r.loss,
                r.perplexity(),
                100.0 * r.accuracy,
                r.bleu.map_or(String::new(), |b| format!(
                    ", greedy BLEU {b:.2} on {bleu_pairs} pairs"
                )),
            ),
        };
        let (step, epoch) = self.at;
        self.progress
            .println(&format!("step {step} epoch {epoch}: {line}"));
    }

    fn on_warning(&mut self, message: &str) {
        self.progress.println(&format!("warning: {message}"));
    }

    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}
