//! The thread count the kernels use, set once at start-up.

use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Sets how many threads the kernels may use and builds the global rayon pool
/// with that many workers. Results are bit-for-bit reproducible for a given count.
pub fn set_threads(n: usize) {
    let n = n.max(1);
    THREADS.store(n, Ordering::Relaxed);
    // The global pool can be built only once; a second call keeps the first pool,
    // which is fine because GEMM asks for at most `n` of its workers.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}

/// The thread count set by [`set_threads`] (1 until it is called).
pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// The number of cores this machine offers, for a default `--threads`.
pub fn available() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `f(0)`, …, `f(n - 1)` at once: task 0 on the caller, the others on
/// helper threads that spin briefly between calls, then park.
///
/// For the per-time-step products, which last tens of microseconds to a
/// millisecond and come back to back: waking a sleeping rayon worker for each
/// of them costs more than the product itself. Tasks must write disjoint
/// outputs; which task runs where never changes a result. A call made while
/// another is running (or with more tasks than helpers) runs the extra tasks
/// on the caller.
///
/// Once done with its own task, the caller runs any task whose helper has not
/// started it yet, instead of waiting: on a machine shared with other work a
/// helper may not get a core for milliseconds, and a caller waiting for it
/// would stall for as long (a 100 µs generation step taking several ms).
pub fn parallel_for(n: usize, f: &(dyn Fn(usize) + Sync)) {
    if n <= 1 {
        (0..n).for_each(f);
        return;
    }
    let pool = helpers::pool(n - 1);
    let guard = pool.busy.try_lock().ok();
    let Some(_guard) = guard else {
        (0..n).for_each(f);
        return;
    };
    let used = (n - 1).min(pool.helpers.len());
    // SAFETY: the job is read by helpers only between `post` and `wait`,
    // and we wait for all of them below, while `f` is still borrowed.
    let job: helpers::Job = unsafe { std::mem::transmute(f) };
    for (i, h) in pool.helpers[..used].iter().enumerate() {
        h.post(job, i + 1);
    }
    f(0);
    for i in used + 1..n {
        f(i);
    }
    for h in &pool.helpers[..used] {
        h.wait();
    }
}

mod helpers {
    use std::cell::UnsafeCell;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
    use std::sync::{Mutex, OnceLock};
    use std::thread::Thread;
    use std::time::{Duration, Instant};

    /// The job as helpers see it: its borrow is erased (see `parallel_for`).
    pub type Job = &'static (dyn Fn(usize) + Sync);

    /// How long an idle helper spins before parking: longer than the gap
    /// between two time steps' products, short enough not to steal a core
    /// from other work for long.
    const SPIN: Duration = Duration::from_micros(300);

    pub struct Pool {
        pub helpers: Vec<&'static Helper>,
        /// Held by the caller whose job the helpers are running.
        pub busy: Mutex<()>,
    }

    pub struct Helper {
        /// Jobs posted so far; the helper runs one whenever this moves.
        posted: AtomicUsize,
        /// The last job taken to run, by the helper or (see `wait`) the poster:
        /// whoever moves it from `s - 1` to `s` runs job `s`.
        claimed: AtomicUsize,
        finished: AtomicUsize,
        sleeping: AtomicBool,
        slot: UnsafeCell<Option<(Job, usize)>>,
        thread: OnceLock<Thread>,
    }

    // SAFETY: `slot` is written by the poster before `posted` is bumped
    // (release) and read by the helper only after it sees the bump (acquire)
    // and claims the job; the poster runs the job itself or waits for
    // `finished` before writing it again.
    unsafe impl Sync for Helper {}

    impl Helper {
        pub fn post(&self, job: Job, task: usize) {
            // SAFETY: see the `Sync` impl: the helper is idle now.
            unsafe { *self.slot.get() = Some((job, task)) };
            self.posted.fetch_add(1, SeqCst);
            if self.sleeping.load(SeqCst) {
                self.thread.get().unwrap().unpark();
            }
        }

        /// Returns once the last posted job has run: here, if the helper has
        /// not claimed it yet, else on the helper.
        pub fn wait(&self) {
            let target = self.posted.load(Relaxed);
            if self
                .claimed
                .compare_exchange(target - 1, target, AcqRel, Relaxed)
                .is_ok()
            {
                // SAFETY: see the `Sync` impl; the helper will not read the
                // slot for this job, having lost the claim.
                let (job, task) = unsafe { (*self.slot.get()).unwrap() };
                job(task);
                return;
            }
            while self.finished.load(Acquire) != target {
                std::hint::spin_loop();
            }
        }

        fn run(&'static self) {
            let mut seen = 0;
            loop {
                let mut idle_since = Instant::now();
                let mut spins = 0u32;
                loop {
                    let p = self.posted.load(Acquire);
                    if p != seen {
                        seen = p;
                        break;
                    }
                    spins = spins.wrapping_add(1);
                    if !spins.is_multiple_of(256) || idle_since.elapsed() < SPIN {
                        std::hint::spin_loop();
                        continue;
                    }
                    // Announce the nap, then re-check: a poster that bumped
                    // `posted` before seeing `sleeping` is seen here (SeqCst).
                    self.sleeping.store(true, SeqCst);
                    if self.posted.load(SeqCst) == seen {
                        std::thread::park();
                    }
                    self.sleeping.store(false, SeqCst);
                    idle_since = Instant::now();
                }
                if self
                    .claimed
                    .compare_exchange(seen - 1, seen, AcqRel, Relaxed)
                    .is_err()
                {
                    continue; // the poster ran it
                }
                // SAFETY: see the `Sync` impl.
                let (job, task) = unsafe { (*self.slot.get()).unwrap() };
                // A panicking task would leave its caller waiting forever.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(task))).is_err() {
                    std::process::abort();
                }
                self.finished.store(seen, Release);
            }
        }
    }

    /// The helpers, started on first use: `threads() - 1` of them, or `want` if
    /// more (tests ask for threaded runs without calling `set_threads`).
    pub fn pool(want: usize) -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| {
            let count = want.max(super::threads() - 1);
            let helpers = (1..=count)
                .map(|i| {
                    let h: &'static Helper = Box::leak(Box::new(Helper {
                        posted: AtomicUsize::new(0),
                        claimed: AtomicUsize::new(0),
                        finished: AtomicUsize::new(0),
                        sleeping: AtomicBool::new(false),
                        slot: UnsafeCell::new(None),
                        thread: OnceLock::new(),
                    }));
                    let t = std::thread::Builder::new()
                        .name(format!("recurrent-helper-{i}"))
                        .spawn(move || h.run())
                        .expect("spawning a kernel helper thread");
                    h.thread.set(t.thread().clone()).unwrap();
                    h
                })
                .collect();
            Pool {
                helpers,
                busy: Mutex::new(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_task_runs_exactly_once_whoever_runs_it() {
        // Task 0 (the caller's) is empty, so the caller is usually done first
        // and often runs the helpers' tasks itself; sometimes a helper is.
        let counts: Vec<AtomicU64> = (0..4).map(|_| AtomicU64::new(0)).collect();
        let rounds = 20_000;
        for round in 0..rounds {
            let n = 2 + round % 3;
            parallel_for(n, &|i| {
                if i > 0 {
                    counts[i].fetch_add(1, Ordering::Relaxed);
                }
            });
            // Between calls, sometimes long enough for the helpers to park.
            if round % 5000 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        let want = |n: usize| (0..rounds).filter(|r| 2 + r % 3 > n).count() as u64;
        for (i, c) in counts.iter().enumerate().skip(1) {
            assert_eq!(c.load(Ordering::Relaxed), want(i), "task {i}");
        }
    }
}
