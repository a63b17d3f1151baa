//! How many threads the kernels use, and the helper threads that run the
//! parallel parts of a call.
//!
//! The count belongs to the calling thread, not to the process: a library user
//! runs one model on 4 threads and another on 1 with [`with_threads`], and tests
//! pass their count explicitly instead of racing on a global. Tasks that
//! [`parallel_for`] hands to helpers see their caller's settings (thread count,
//! instruction set, GEMM backend), so where a task runs never changes a result.

use std::cell::Cell;

thread_local! {
    static THREADS: Cell<usize> = const { Cell::new(1) };
}

/// How many threads kernels called from this thread may use (1 unless set).
pub fn threads() -> usize {
    THREADS.with(Cell::get)
}

/// Sets how many threads kernels called from this thread may use, until it is
/// set again (for a program's main thread; elsewhere prefer [`with_threads`]).
/// Results are bit-for-bit reproducible for a given count.
pub fn set_this_thread(n: usize) {
    THREADS.with(|t| t.set(n.max(1)));
}

/// Runs `f` with kernels called from this thread using `n` threads, then
/// restores the previous count (also when `f` panics).
///
/// ```
/// use recurrent_kernels::threads::{threads, with_threads};
///
/// assert_eq!(threads(), 1);
/// let inside = with_threads(2, threads);
/// assert_eq!((inside, threads()), (2, 1));
/// ```
pub fn with_threads<R>(n: usize, f: impl FnOnce() -> R) -> R {
    with_setting(threads(), n, set_this_thread, f)
}

/// Runs `f` after `set(value)`, then puts `old` back with `set` (also when
/// `f` panics): the shape of every per-thread setting's `with_` function.
pub(crate) fn with_setting<T: Copy, R>(old: T, value: T, set: fn(T), f: impl FnOnce() -> R) -> R {
    /// Puts the old value back when dropped, unwinding or not.
    struct Restore<T: Copy>(T, fn(T));
    impl<T: Copy> Drop for Restore<T> {
        fn drop(&mut self) {
            (self.1)(self.0);
        }
    }
    let _restore = Restore(old, set);
    set(value);
    f()
}

/// The number of cores this machine offers, for a default thread count.
pub fn available() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `f(0)`, …, `f(n - 1)` at once: task 0 on the caller, the others on
/// helper threads that spin briefly between calls, then park.
///
/// For the per-time-step products, which last tens of microseconds to a
/// millisecond and come back to back: waking a sleeping rayon worker for each
/// of them costs more than the product itself. Tasks must write disjoint
/// outputs; which task runs where never changes a result. The helpers are
/// started on first use, as many as the largest `n - 1` asked so far. A call
/// made while another is running (from a task, or from another thread) runs
/// its tasks on the caller.
///
/// Once done with its own task, the caller runs any task whose helper has not
/// started it yet, instead of waiting: on a machine shared with other work a
/// helper may not get a core for milliseconds, and a caller waiting for it
/// would stall for as long (a 100 µs generation step taking several ms).
///
/// If a task panics, the call panics too, but only once no task is running
/// any more (the tasks may write what the caller's unwind frees), with the
/// caller's own panic or else the first a helper caught; the helpers carry on
/// serving later calls.
///
/// ```
/// use recurrent_kernels::threads::parallel_for;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// let sum = AtomicUsize::new(0);
/// parallel_for(4, &|i| {
///     sum.fetch_add(i, Ordering::Relaxed);
/// });
/// assert_eq!(sum.into_inner(), 0 + 1 + 2 + 3);
/// ```
pub fn parallel_for(n: usize, f: &(dyn Fn(usize) + Sync)) {
    if n <= 1 {
        (0..n).for_each(f);
        return;
    }
    let Some(pool) = helpers::acquire(n - 1) else {
        (0..n).for_each(f);
        return;
    };
    let used = (n - 1).min(pool.len());
    let call = helpers::Call::new(f);
    let mut posted = helpers::Posted::new(&call, &pool[..used]);
    f(0);
    for i in used + 1..n {
        f(i);
    }
    // Runs or waits for the helpers' tasks; if anything above panicked,
    // dropping `posted` during the unwind waits for them instead.
    posted.finish();
    drop(posted);
    drop(pool);
    if let Some(payload) = call.take_panic() {
        std::panic::resume_unwind(payload);
    }
}

mod helpers {
    use std::any::Any;
    use std::cell::UnsafeCell;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
    use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};
    use std::thread::Thread;
    use std::time::{Duration, Instant};

    /// How long an idle helper spins before parking: longer than the gap
    /// between two time steps' products, short enough not to steal a core
    /// from other work for long.
    const SPIN: Duration = Duration::from_micros(300);

    /// The helpers, held by the caller whose tasks they run.
    ///
    /// Holding the lock is what "busy" means. A caller's task that panics
    /// poisons it; the list itself is never left half-changed by a task, so
    /// the next caller takes it anyway (see [`acquire`]).
    static POOL: Mutex<Vec<&'static Helper>> = Mutex::new(Vec::new());

    /// The helpers for a call that wants `want` of them, at least that many
    /// if they can be started; `None` if another call holds them.
    pub fn acquire(want: usize) -> Option<MutexGuard<'static, Vec<&'static Helper>>> {
        let mut pool = match POOL.try_lock() {
            Ok(pool) => pool,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        while pool.len() < want {
            match Helper::start(pool.len() + 1) {
                Some(h) => pool.push(h),
                // Out of threads: the caller runs the extra tasks itself.
                None => break,
            }
        }
        Some(pool)
    }

    /// The caller's settings that its tasks run with, wherever they run.
    #[derive(Clone, Copy)]
    struct Settings {
        threads: usize,
        isa: crate::simd::Isa,
        gemm_crate: bool,
        precision: crate::Precision,
        bf16_kernel: Option<crate::precision::Bf16Kernel>,
    }

    impl Settings {
        fn of_this_thread() -> Settings {
            Settings {
                threads: super::threads(),
                isa: crate::simd::isa_limit(),
                gemm_crate: crate::gemm::gemm_crate_forced(),
                precision: crate::precision::precision(),
                bf16_kernel: crate::precision::forced_bf16_kernel(),
            }
        }

        fn apply(self) {
            super::set_this_thread(self.threads);
            crate::simd::limit_isa(self.isa);
            crate::gemm::force_gemm_crate(self.gemm_crate);
            crate::precision::set_precision(self.precision);
            crate::precision::force_bf16_kernel(self.bf16_kernel);
        }
    }

    /// One `parallel_for` call, as its helpers see it.
    pub struct Call<'f> {
        f: &'f (dyn Fn(usize) + Sync),
        settings: Settings,
        /// The first panic of a task, to be re-raised on the caller.
        panic: Mutex<Option<Box<dyn Any + Send>>>,
    }

    impl<'f> Call<'f> {
        pub fn new(f: &'f (dyn Fn(usize) + Sync)) -> Call<'f> {
            Call {
                f,
                settings: Settings::of_this_thread(),
                panic: Mutex::new(None),
            }
        }

        /// Runs task `i` on a helper, keeping a panic for the caller.
        fn run(&self, i: usize) {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| (self.f)(i))) {
                let mut first = self.panic.lock().unwrap_or_else(PoisonError::into_inner);
                first.get_or_insert(payload);
            }
        }

        /// The first panic a task raised, if any.
        pub fn take_panic(&self) -> Option<Box<dyn Any + Send>> {
            self.panic
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        }
    }

    /// A call's tasks posted to helpers: finished by [`Posted::finish`], or
    /// waited for when dropped unfinished (the caller's own task panicked),
    /// so that the caller cannot unwind and free what the tasks write while
    /// a helper is still running one.
    pub struct Posted<'c> {
        helpers: &'c [&'static Helper],
        /// The helpers `..done` are done with the call.
        done: usize,
    }

    impl<'c> Posted<'c> {
        /// Posts task `i + 1` to helper `i`.
        pub fn new(call: &'c Call<'_>, helpers: &'c [&'static Helper]) -> Posted<'c> {
            // The helpers see the call without its lifetime: they use it only
            // until they finish the task, and `Posted` makes the caller wait
            // for that before `call` can go away.
            let call: *const Call<'static> = (call as *const Call<'_>).cast();
            for (i, h) in helpers.iter().enumerate() {
                h.post(Job { call, task: i + 1 });
            }
            Posted { helpers, done: 0 }
        }

        /// Runs each task no helper has taken yet here, and waits for the rest.
        pub fn finish(&mut self) {
            while let Some(h) = self.helpers.get(self.done) {
                let stolen = h.steal();
                // Helper `done` has nothing left to run for us, whatever `job` does.
                self.done += 1;
                if let Some(job) = stolen {
                    // SAFETY: `job.call` is the call this `Posted` borrows, alive.
                    let call = unsafe { &*job.call };
                    (call.f)(job.task);
                } else {
                    h.wait_finished();
                }
            }
        }
    }

    impl Drop for Posted<'_> {
        fn drop(&mut self) {
            // Only reached with helpers left when unwinding: cancel the tasks
            // no helper has started (the call fails anyway) and wait for the others.
            for h in &self.helpers[self.done..] {
                if h.steal().is_none() {
                    h.wait_finished();
                }
            }
        }
    }

    /// Task `task` of a call.
    #[derive(Clone, Copy)]
    pub struct Job {
        call: *const Call<'static>,
        task: usize,
    }

    pub struct Helper {
        /// Jobs posted so far; the helper runs one whenever this moves.
        posted: AtomicUsize,
        /// The last job taken to run, by the helper or (see `steal`) the poster:
        /// whoever moves it from `s - 1` to `s` runs job `s`.
        claimed: AtomicUsize,
        finished: AtomicUsize,
        sleeping: AtomicBool,
        slot: UnsafeCell<Option<Job>>,
        thread: OnceLock<Thread>,
    }

    // SAFETY: `slot` is written by the poster before `posted` is bumped
    // (release) and read by the helper only after it sees the bump (acquire)
    // and claims the job; the poster runs the job itself or waits for
    // `finished` before writing it again. The `Call` a job points to is
    // `Sync` in all but its erased lifetime, which `Posted` upholds.
    unsafe impl Sync for Helper {}

    impl Helper {
        /// Starts helper number `i` (for its thread's name), or `None` if the
        /// system has no thread left for it.
        fn start(i: usize) -> Option<&'static Helper> {
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
                .ok()?;
            // Set before any post, which is the only reader.
            let _ = h.thread.set(t.thread().clone());
            Some(h)
        }

        fn post(&self, job: Job) {
            // SAFETY: see the `Sync` impl: the helper is idle now.
            unsafe { *self.slot.get() = Some(job) };
            self.posted.fetch_add(1, SeqCst);
            if self.sleeping.load(SeqCst) {
                if let Some(t) = self.thread.get() {
                    t.unpark();
                }
            }
        }

        /// The last posted job if the helper has not claimed it yet: the
        /// caller runs it (or drops it), and the helper will not.
        fn steal(&self) -> Option<Job> {
            let target = self.posted.load(Relaxed);
            self.claimed
                .compare_exchange(target - 1, target, AcqRel, Relaxed)
                .ok()?;
            // SAFETY: see the `Sync` impl; the helper will not read the slot
            // for this job, having lost the claim.
            unsafe { *self.slot.get() }
        }

        /// Returns once the helper has run the last posted job, which it claimed.
        fn wait_finished(&self) {
            let target = self.posted.load(Relaxed);
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
                    continue; // the poster took it
                }
                // SAFETY: see the `Sync` impl.
                if let Some(job) = unsafe { *self.slot.get() } {
                    // SAFETY: the poster waits for `finished` below before its
                    // call can end, so the call is alive until then.
                    let call = unsafe { &*job.call };
                    call.settings.apply();
                    // A panic is kept for the caller; the helper lives on.
                    call.run(job.task);
                }
                self.finished.store(seen, Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SharedMut;
    use std::collections::HashSet;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
    use std::sync::Mutex;
    use std::thread::ThreadId;
    use std::time::{Duration, Instant};

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
                    counts[i].fetch_add(1, Relaxed);
                }
            });
            // Between calls, sometimes long enough for the helpers to park.
            if round % 5000 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let want = |n: usize| (0..rounds).filter(|r| 2 + r % 3 > n).count() as u64;
        for (i, c) in counts.iter().enumerate().skip(1) {
            assert_eq!(c.load(Relaxed), want(i), "task {i}");
        }
    }

    /// Waits up to `limit` for `count` to reach `want`; whether it did.
    fn wait_for(count: &AtomicUsize, want: usize, limit: Duration) -> bool {
        let t0 = Instant::now();
        while count.load(Acquire) < want {
            if t0.elapsed() > limit {
                return false;
            }
            std::thread::yield_now();
        }
        true
    }

    /// Whether `attempt` succeeds within a few tries: a call finding the
    /// helpers busy with another test's call runs its tasks on the caller.
    fn eventually(attempt: impl FnMut() -> bool) -> bool {
        std::iter::repeat_with(attempt).take(50).any(|ok| ok)
    }

    /// The threads that ran the tasks of one call of `n` tasks, task 0 waiting
    /// (briefly) for the others to start so that it does not run them itself.
    fn task_threads(n: usize) -> Vec<ThreadId> {
        let ids: Vec<Mutex<Option<ThreadId>>> = (0..n).map(|_| Mutex::new(None)).collect();
        let started = AtomicUsize::new(0);
        parallel_for(n, &|i| {
            *ids[i].lock().unwrap() = Some(std::thread::current().id());
            started.fetch_add(1, Release);
            if i == 0 {
                wait_for(&started, n, Duration::from_millis(200));
            }
        });
        ids.into_iter()
            .map(|id| id.into_inner().unwrap().unwrap())
            .collect()
    }

    /// Whether a call of `n` tasks ran each of them on a thread of its own.
    fn runs_on_helpers(n: usize) -> bool {
        let ids: HashSet<ThreadId> = task_threads(n).into_iter().collect();
        ids.len() == n
    }

    #[test]
    fn helpers_serve_any_count_asked() {
        for n in [2, 5, 3] {
            assert!(eventually(|| runs_on_helpers(n)), "{n} tasks");
        }
    }

    #[test]
    fn a_panicking_caller_waits_for_the_helpers_before_unwinding() {
        // Task 1 writes a buffer that the caller's unwind frees, starting
        // once the unwind has begun; the caller must wait for it.
        let checked = eventually(|| {
            let (started, unwinding) = (AtomicUsize::new(0), AtomicUsize::new(0));
            let wrote = AtomicBool::new(false);
            let caught = catch_unwind(AssertUnwindSafe(|| {
                let mut buf = vec![0u64; 1 << 16];
                let shared = SharedMut::new(&mut buf);
                parallel_for(2, &|i| {
                    if i == 0 {
                        /// Tells task 1 when the unwind (past the panic hook) is under way.
                        struct Unwinding<'a>(&'a AtomicUsize);
                        impl Drop for Unwinding<'_> {
                            fn drop(&mut self) {
                                self.0.store(1, Release);
                            }
                        }
                        let _signal = Unwinding(&unwinding);
                        wait_for(&started, 1, Duration::from_millis(200));
                        panic!("task 0 failed");
                    }
                    started.store(1, Release);
                    wait_for(&unwinding, 1, Duration::from_secs(5));
                    std::thread::sleep(Duration::from_millis(20));
                    // SAFETY: the only slice taken.
                    unsafe { shared.slice(0..shared.len()) }.fill(7);
                    wrote.store(true, Release);
                });
            }));
            assert!(caught.is_err(), "the panic reaches the caller");
            // Only a call that ran task 1 on a helper tells.
            let ran = started.load(Acquire) == 1;
            assert!(
                !ran || wrote.load(Acquire),
                "unwound while task 1 was writing"
            );
            ran
        });
        assert!(checked, "task 1 never ran on a helper");
    }

    #[test]
    fn a_helper_panic_reaches_the_caller_after_every_task_and_helpers_live_on() {
        let checked = eventually(|| {
            let (started, running) = (AtomicUsize::new(0), AtomicUsize::new(0));
            let panicked_on = Mutex::new(None);
            let caught = catch_unwind(AssertUnwindSafe(|| {
                parallel_for(3, &|i| {
                    running.fetch_add(1, SeqCst);
                    started.fetch_add(1, Release);
                    if i == 0 {
                        // Leave tasks 1 and 2 to the helpers.
                        wait_for(&started, 3, Duration::from_millis(200));
                    }
                    if i == 1 {
                        *panicked_on.lock().unwrap() = Some(std::thread::current().id());
                        running.fetch_sub(1, SeqCst);
                        panic!("task 1 failed");
                    }
                    std::thread::sleep(Duration::from_millis(10 * i as u64));
                    running.fetch_sub(1, SeqCst);
                });
            }));
            let payload = caught.expect_err("the panic reaches the caller");
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"task 1 failed"));
            assert_eq!(running.load(SeqCst), 0, "a task was running still");
            panicked_on.into_inner().unwrap() != Some(std::thread::current().id())
        });
        assert!(checked, "task 1 never ran on a helper");
        assert!(eventually(|| runs_on_helpers(3)), "helpers did not survive");
    }

    #[test]
    fn a_panic_does_not_leave_later_calls_single_threaded() {
        for _ in 0..3 {
            let caught = catch_unwind(|| {
                parallel_for(2, &|i| {
                    if i == 0 {
                        panic!("task 0 failed");
                    }
                })
            });
            assert!(caught.is_err());
        }
        assert!(eventually(|| runs_on_helpers(2)));
    }

    #[test]
    fn the_count_belongs_to_the_thread_and_comes_back_after_a_panic() {
        assert_eq!(threads(), 1, "the default");
        with_threads(3, || {
            assert_eq!(threads(), 3);
            assert_eq!(std::thread::spawn(threads).join().unwrap(), 1);
            let caught = catch_unwind(|| with_threads(5, || panic!("inside")));
            assert!(caught.is_err());
            assert_eq!(threads(), 3, "restored after the panic");
        });
        assert_eq!(threads(), 1);
    }

    #[test]
    fn tasks_see_their_callers_settings_wherever_they_run() {
        use crate::precision::{with_precision, Precision};
        use crate::simd::{isa_limit, with_isa_limit, Isa};
        type Seen = (usize, Isa, bool, Precision);
        for isa in [Isa::Baseline, Isa::Avx2, Isa::Avx512] {
            for (gemm_crate, p) in [(true, Precision::F32), (false, Precision::Bf16)] {
                crate::gemm::force_gemm_crate(gemm_crate);
                let seen: Vec<Mutex<Option<Seen>>> = (0..4).map(|_| Mutex::new(None)).collect();
                with_threads(4, || {
                    with_isa_limit(isa, || {
                        with_precision(p, || {
                            parallel_for(4, &|i| {
                                let settings = (
                                    threads(),
                                    isa_limit(),
                                    crate::gemm::gemm_crate_forced(),
                                    crate::precision::precision(),
                                );
                                *seen[i].lock().unwrap() = Some(settings);
                            })
                        })
                    })
                });
                for s in seen {
                    assert_eq!(s.into_inner().unwrap(), Some((4, isa, gemm_crate, p)));
                }
            }
        }
    }
}
