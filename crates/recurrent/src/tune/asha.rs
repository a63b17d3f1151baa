//! Asynchronous successive halving (ASHA, Li et al. 2018), the scheduler of
//! Ray Tune's `ASHAScheduler` and the rule of Optuna's successive-halving
//! pruner.
//!
//! Every trial first trains for the smallest budget (rung 0). A trial at rung
//! `k` is promoted to rung `k + 1`, whose budget is `reduction` times larger,
//! once it is among the best `1 / reduction` of the trials that finished rung
//! `k` so far. Nothing waits for a rung to fill: a free worker promotes a
//! trial when one qualifies (the highest rung first) and starts a new trial
//! otherwise. A trial never promoted was pruned at its last rung.

use serde::{Deserialize, Serialize};

/// The budgets of the rungs, smallest first; the last is the full budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rungs {
    /// Cumulative budget (tokens or seconds) a trial has trained at each rung.
    pub budgets: Vec<f64>,
}

impl Rungs {
    /// One rung: every trial trains for the full budget `max`.
    pub fn single(max: f64) -> Rungs {
        Rungs { budgets: vec![max] }
    }

    /// `min`, `min * reduction`, `min * reduction²`, ... below `max`, then `max`.
    pub fn geometric(min: f64, max: f64, reduction: usize) -> Rungs {
        let mut budgets = Vec::new();
        let mut b = min;
        while b < max * (1.0 - 1e-9) && reduction >= 2 {
            budgets.push(b);
            b *= reduction as f64;
        }
        budgets.push(max);
        Rungs { budgets }
    }

    /// The number of rungs.
    pub fn len(&self) -> usize {
        self.budgets.len()
    }

    /// Whether there is no rung (never: the full budget is one).
    pub fn is_empty(&self) -> bool {
        self.budgets.is_empty()
    }

    /// The index of the top rung.
    pub fn top(&self) -> usize {
        self.budgets.len() - 1
    }
}

/// Work for a free worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    /// The trial.
    pub trial: usize,
    /// The rung to train it to.
    pub rung: usize,
}

/// The promotion bookkeeping of ASHA.
#[derive(Clone, Debug)]
pub struct Asha {
    rungs: Rungs,
    reduction: usize,
    /// Per rung: the trials that finished it, with their scores, in order.
    finished: Vec<Vec<(usize, f64)>>,
    /// Per rung: the trials promoted out of it.
    promoted: Vec<Vec<usize>>,
}

impl Asha {
    /// Bookkeeping over `rungs` promoting the best `1 / reduction` (at least 2).
    pub fn new(rungs: Rungs, reduction: usize) -> Asha {
        let n = rungs.len();
        Asha {
            rungs,
            reduction: reduction.max(2),
            finished: vec![Vec::new(); n],
            promoted: vec![Vec::new(); n],
        }
    }

    /// The rungs.
    pub fn rungs(&self) -> &Rungs {
        &self.rungs
    }

    /// Records that `trial` finished `rung` with `score` (lower is better).
    pub fn record(&mut self, trial: usize, rung: usize, score: f64) {
        self.finished[rung].push((trial, score));
    }

    /// Marks `trial` as promoted out of `rung` (replaying a log).
    pub fn mark_promoted(&mut self, trial: usize, rung: usize) {
        if !self.promoted[rung].contains(&trial) {
            self.promoted[rung].push(trial);
        }
    }

    /// The next promotion, highest rung first, marked as taken: the best
    /// trial of a rung among its top `1 / reduction` that is not promoted yet.
    pub fn promote(&mut self) -> Option<Job> {
        for rung in (0..self.rungs.top()).rev() {
            if let Some(trial) = self.candidate(rung) {
                self.promoted[rung].push(trial);
                return Some(Job {
                    trial,
                    rung: rung + 1,
                });
            }
        }
        None
    }

    /// The trials of `rung` that qualify for promotion now, best first.
    pub fn top_of(&self, rung: usize) -> Vec<usize> {
        let mut ranked = self.finished[rung].clone();
        // Ties keep the order trials finished in, so replays agree.
        ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
        let k = ranked.len() / self.reduction;
        ranked.into_iter().take(k).map(|(t, _)| t).collect()
    }

    fn candidate(&self, rung: usize) -> Option<usize> {
        self.top_of(rung)
            .into_iter()
            .find(|t| !self.promoted[rung].contains(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_grow_by_the_reduction_factor_up_to_the_budget() {
        assert_eq!(
            Rungs::geometric(1.0, 27.0, 3).budgets,
            [1.0, 3.0, 9.0, 27.0]
        );
        assert_eq!(
            Rungs::geometric(1.0, 20.0, 3).budgets,
            [1.0, 3.0, 9.0, 20.0]
        );
        assert_eq!(Rungs::geometric(5.0, 5.0, 3).budgets, [5.0]);
        assert_eq!(Rungs::single(7.0).budgets, [7.0]);
    }
}
