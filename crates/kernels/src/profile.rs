//! Opt-in wall-clock totals per named phase of a training step, for finding
//! where time goes (the `speed` example prints them). Off by default: a
//! disabled [`Phase`] costs one relaxed atomic load and no clock read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);
static TOTALS: Mutex<Vec<(&'static str, f64, u64)>> = Mutex::new(Vec::new());

/// Turns collection on or off (and clears the totals).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
    // A panic while the totals were locked leaves them usable: they are counts.
    TOTALS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
}

/// `(phase, seconds, calls)` collected so far, in first-seen order.
pub fn totals() -> Vec<(&'static str, f64, u64)> {
    TOTALS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Times the scope it lives in under `name` (when profiling is on).
pub struct Phase {
    name: &'static str,
    start: Option<Instant>,
}

impl Phase {
    /// Starts timing phase `name` (if profiling is on) until dropped.
    pub fn new(name: &'static str) -> Phase {
        let start = ENABLED.load(Ordering::Relaxed).then(Instant::now);
        Phase { name, start }
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        let Some(start) = self.start else { return };
        let dt = start.elapsed().as_secs_f64();
        let mut t = TOTALS.lock().unwrap_or_else(PoisonError::into_inner);
        match t.iter_mut().find(|e| e.0 == self.name) {
            Some(e) => {
                e.1 += dt;
                e.2 += 1;
            }
            None => t.push((self.name, dt, 1)),
        }
    }
}
