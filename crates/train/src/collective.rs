//! Data parallelism's collectives: what one process of a training job needs
//! to work with the others. Every rank trains the same model on its share of
//! the global batch; gradients and validation sums are added over the ranks
//! (all-reduce, as Horovod and PyTorch DDP do), so every rank takes the same
//! optimizer step and holds the same weights.
//!
//! [`SingleProcess`] is the job of one process (every collective is the
//! identity); `mpi::MpiWorld` (cargo feature `mpi`) is a job started by
//! `mpirun`/`mpiexec` or Slurm's `srun`, on one machine or many.

use std::ops::Range;

/// The processes of a data-parallel job, as one of them sees it.
///
/// Every method is collective: each rank calls it in the same order with
/// buffers of the same length, or the job deadlocks (MPI's rule). A rank
/// that dies ends the job (the launcher stops the others).
pub trait Collective {
    /// This process's rank, `0..ranks()`. Rank 0 writes checkpoints and logs.
    fn rank(&self) -> usize;

    /// Processes in the job.
    fn ranks(&self) -> usize;

    /// Replaces `values` by their sum over every rank. Every rank gets the
    /// same bits.
    fn sum_f32(&self, values: &mut [f32]);

    /// [`Collective::sum_f32`] in `f64` (loss and token counts of a validation).
    fn sum_f64(&self, values: &mut [f64]);

    /// Starts [`Collective::sum_f32`] of `values` and returns before it is
    /// done where the job can sum in the background (MPI), so that the
    /// backward pass goes on meanwhile; [`PendingSum::wait`] gives the sum.
    /// Ranks start the same sums in the same order. By default the sum is
    /// done before this returns.
    fn start_sum_f32(&self, mut values: Vec<f32>) -> PendingSum {
        self.sum_f32(&mut values);
        PendingSum::done(values)
    }

    /// Every rank's `values`, in rank order, on every rank. Each rank's
    /// `values` may differ in length.
    fn gather_f32(&self, values: &[f32]) -> Vec<f32>;

    /// Rank 0's `bytes` on every rank (their length included).
    fn broadcast(&self, bytes: &mut Vec<u8>);

    /// Whether this process writes files and prints (rank 0).
    fn is_leader(&self) -> bool {
        self.rank() == 0
    }
}

/// A sum over the ranks that [`Collective::start_sum_f32`] started.
#[must_use = "every rank must wait for the sums it started"]
pub struct PendingSum(Pending);

enum Pending {
    Done(Vec<f32>),
    Background(std::sync::mpsc::Receiver<Vec<f32>>),
}

impl PendingSum {
    /// A sum that is already done.
    pub fn done(values: Vec<f32>) -> PendingSum {
        PendingSum(Pending::Done(values))
    }

    /// A sum another thread delivers on `receiver`.
    pub fn background(receiver: std::sync::mpsc::Receiver<Vec<f32>>) -> PendingSum {
        PendingSum(Pending::Background(receiver))
    }

    /// The sum, once every rank has contributed.
    ///
    /// # Panics
    /// When the thread doing the sum stopped without delivering it (the
    /// MPI library failed; MPI's own default then ends the job first).
    pub fn wait(self) -> Vec<f32> {
        match self.0 {
            Pending::Done(values) => values,
            Pending::Background(receiver) => receiver
                .recv()
                .expect("the MPI thread stopped in the middle of a sum"),
        }
    }
}

/// A job of one process: every collective leaves its buffer as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn ranks(&self) -> usize {
        1
    }

    fn sum_f32(&self, _values: &mut [f32]) {}

    fn sum_f64(&self, _values: &mut [f64]) {}

    fn gather_f32(&self, values: &[f32]) -> Vec<f32> {
        values.to_vec()
    }

    fn broadcast(&self, _bytes: &mut Vec<u8>) {}
}

/// A job whose ranks are threads of one process: every collective meets at
/// a barrier. It runs the data-parallel code paths without MPI (tests, and
/// checking a setup before a cluster run); it is no faster than one rank
/// with as many kernel threads.
pub struct LocalGroup {
    rank: usize,
    shared: std::sync::Arc<LocalShared>,
}

struct LocalShared {
    ranks: usize,
    barrier: std::sync::Barrier,
    slots: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl LocalGroup {
    /// The `ranks` members of a new group, rank 0 first; give each to its own thread.
    pub fn new(ranks: usize) -> Vec<LocalGroup> {
        assert!(ranks > 0, "a group has at least one rank");
        let shared = std::sync::Arc::new(LocalShared {
            ranks,
            barrier: std::sync::Barrier::new(ranks),
            slots: std::sync::Mutex::new(vec![Vec::new(); ranks]),
        });
        (0..ranks)
            .map(|rank| LocalGroup {
                rank,
                shared: shared.clone(),
            })
            .collect()
    }

    /// Every rank's `bytes`, in rank order: each deposits, all wait, each reads.
    fn exchange(&self, bytes: Vec<u8>) -> Vec<Vec<u8>> {
        let s = &self.shared;
        s.slots.lock().unwrap_or_else(|e| e.into_inner())[self.rank] = bytes;
        s.barrier.wait();
        let all = s.slots.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // Nobody deposits the next exchange before everyone has read this one.
        s.barrier.wait();
        all
    }
}

impl Collective for LocalGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn ranks(&self) -> usize {
        self.shared.ranks
    }

    fn sum_f32(&self, values: &mut [f32]) {
        let all = self.exchange(values.iter().flat_map(|x| x.to_le_bytes()).collect());
        // Added in rank order on every rank: the same bits everywhere.
        values.fill(0.0);
        for part in &all {
            for (v, b) in values.iter_mut().zip(part.chunks_exact(4)) {
                *v += f32::from_le_bytes(b.try_into().expect("4 bytes"));
            }
        }
    }

    fn sum_f64(&self, values: &mut [f64]) {
        let all = self.exchange(values.iter().flat_map(|x| x.to_le_bytes()).collect());
        values.fill(0.0);
        for part in &all {
            for (v, b) in values.iter_mut().zip(part.chunks_exact(8)) {
                *v += f64::from_le_bytes(b.try_into().expect("8 bytes"));
            }
        }
    }

    fn gather_f32(&self, values: &[f32]) -> Vec<f32> {
        let all = self.exchange(values.iter().flat_map(|x| x.to_le_bytes()).collect());
        all.iter()
            .flat_map(|part| part.chunks_exact(4))
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect()
    }

    fn broadcast(&self, bytes: &mut Vec<u8>) {
        let all = self.exchange(if self.rank == 0 {
            bytes.clone()
        } else {
            Vec::new()
        });
        bytes.clone_from(&all[0]);
    }
}

/// Rank `rank`'s contiguous share of `total` items split over `ranks`:
/// the first `total % ranks` ranks take one more.
///
/// ```
/// use recurrent_train::collective::share;
/// // 10 streams over 3 ranks: 4, 3, 3.
/// assert_eq!(share(10, 0, 3), 0..4);
/// assert_eq!(share(10, 1, 3), 4..7);
/// assert_eq!(share(10, 2, 3), 7..10);
/// ```
pub fn share(total: usize, rank: usize, ranks: usize) -> Range<usize> {
    assert!(ranks > 0 && rank < ranks, "rank {rank} of {ranks}");
    let (base, extra) = (total / ranks, total % ranks);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// MPI through the `mpi` crate (rsmpi): the job `mpirun -n N` started.
#[cfg(feature = "mpi")]
pub mod mpi {
    use std::sync::mpsc::{channel, Receiver, Sender};
    use std::thread::JoinHandle;

    use mpi::collective::SystemOperation;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::{Communicator, CommunicatorCollectives, Root};

    use super::{Collective, PendingSum};

    /// Elements per message of a sum: bounds the copies a sum makes.
    const CHUNK: usize = 1 << 20;

    /// The world communicator of an MPI job, driven by one thread of its own
    /// (Horovod's design): every collective is a job for that thread, so a
    /// sum started by [`Collective::start_sum_f32`] goes on while the
    /// trainer computes. MPI is finalized when this is dropped, and cannot
    /// be started again in the same process.
    pub struct MpiWorld {
        jobs: Option<Sender<Job>>,
        thread: Option<JoinHandle<()>>,
        rank: usize,
        ranks: usize,
    }

    /// What the MPI thread does for the others, and where it sends the result.
    enum Job {
        SumF32(Vec<f32>, Sender<Vec<f32>>),
        SumF64(Vec<f64>, Sender<Vec<f64>>),
        GatherF32(Vec<f32>, Sender<Vec<f32>>),
        Broadcast(Vec<u8>, Sender<Vec<u8>>),
    }

    impl MpiWorld {
        /// Starts MPI on a thread of its own; `None` when MPI was started
        /// before in this process. Only that thread makes MPI calls (MPI's
        /// "funneled" level): kernel threads never talk to other ranks.
        pub fn init() -> Option<MpiWorld> {
            let (jobs, queue) = channel::<Job>();
            let (started, world) = channel::<Option<(usize, usize)>>();
            let thread = std::thread::Builder::new()
                .name("mpi".into())
                .spawn(move || {
                    let Some((universe, _)) =
                        mpi::initialize_with_threading(mpi::Threading::Funneled)
                    else {
                        let _ = started.send(None);
                        return;
                    };
                    let comm = universe.world();
                    let _ = started.send(Some((comm.rank() as usize, comm.size() as usize)));
                    serve(&comm, queue);
                    // `universe` drops here, on the thread that started MPI: finalized.
                })
                .ok()?;
            match world.recv() {
                Ok(Some((rank, ranks))) => Some(MpiWorld {
                    jobs: Some(jobs),
                    thread: Some(thread),
                    rank,
                    ranks,
                }),
                _ => {
                    let _ = thread.join();
                    None
                }
            }
        }

        /// Hands `job` to the MPI thread.
        fn submit(&self, job: Job) {
            self.jobs
                .as_ref()
                .and_then(|jobs| jobs.send(job).ok())
                .expect("the MPI thread is running");
        }

        /// Runs a job and waits for its result.
        fn call<T>(&self, job: impl FnOnce(Sender<T>) -> Job) -> T {
            let (reply, result) = channel();
            self.submit(job(reply));
            result
                .recv()
                .expect("the MPI thread stopped in the middle of a collective")
        }
    }

    /// The MPI thread's loop: one job at a time, in the order submitted
    /// (every rank submits the same jobs in the same order), until the
    /// [`MpiWorld`] is dropped.
    fn serve(world: &SimpleCommunicator, queue: Receiver<Job>) {
        let sum = SystemOperation::sum();
        for job in queue {
            // A receiver that went away (a panicking trainer) is no reason
            // to stop: the other ranks still expect this rank's part.
            match job {
                Job::SumF32(values, reply) => {
                    let mut total = vec![0f32; values.len()];
                    world.all_reduce_into(&values[..], &mut total[..], sum);
                    let _ = reply.send(total);
                }
                Job::SumF64(values, reply) => {
                    let mut total = vec![0f64; values.len()];
                    world.all_reduce_into(&values[..], &mut total[..], sum);
                    let _ = reply.send(total);
                }
                Job::GatherF32(values, reply) => {
                    let _ = reply.send(gather(world, &values));
                }
                Job::Broadcast(mut bytes, reply) => {
                    let root = world.process_at_rank(0);
                    let mut len = bytes.len() as u64;
                    root.broadcast_into(&mut len);
                    bytes.resize(len as usize, 0);
                    root.broadcast_into(&mut bytes[..]);
                    let _ = reply.send(bytes);
                }
            }
        }
    }

    /// Every rank's `values` in rank order (lengths may differ).
    fn gather(world: &SimpleCommunicator, values: &[f32]) -> Vec<f32> {
        let mut lengths = vec![0u64; world.size() as usize];
        world.all_gather_into(&(values.len() as u64), &mut lengths[..]);
        let counts: Vec<i32> = lengths.iter().map(|&n| n as i32).collect();
        let displs: Vec<i32> = counts
            .iter()
            .scan(0, |at, &n| {
                let start = *at;
                *at += n;
                Some(start)
            })
            .collect();
        let mut all = vec![0f32; counts.iter().map(|&n| n as usize).sum()];
        let mut partition =
            mpi::datatype::PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
        world.all_gather_varcount_into(values, &mut partition);
        all
    }

    impl Drop for MpiWorld {
        fn drop(&mut self) {
            // Closing the queue ends the MPI thread, which finalizes MPI.
            drop(self.jobs.take());
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    impl Collective for MpiWorld {
        fn rank(&self) -> usize {
            self.rank
        }

        fn ranks(&self) -> usize {
            self.ranks
        }

        fn sum_f32(&self, values: &mut [f32]) {
            if self.ranks > 1 {
                for chunk in values.chunks_mut(CHUNK) {
                    let total = self.call(|reply| Job::SumF32(chunk.to_vec(), reply));
                    chunk.copy_from_slice(&total);
                }
            }
        }

        fn sum_f64(&self, values: &mut [f64]) {
            if self.ranks > 1 {
                let total = self.call(|reply| Job::SumF64(values.to_vec(), reply));
                values.copy_from_slice(&total);
            }
        }

        fn start_sum_f32(&self, values: Vec<f32>) -> PendingSum {
            if self.ranks == 1 {
                return PendingSum::done(values);
            }
            let (reply, result) = channel();
            self.submit(Job::SumF32(values, reply));
            PendingSum::background(result)
        }

        fn gather_f32(&self, values: &[f32]) -> Vec<f32> {
            self.call(|reply| Job::GatherF32(values.to_vec(), reply))
        }

        fn broadcast(&self, bytes: &mut Vec<u8>) {
            let mine = std::mem::take(bytes);
            *bytes = self.call(|reply| Job::Broadcast(mine, reply));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_items_once_in_order_and_differ_by_at_most_one() {
        for total in 0..40 {
            for ranks in 1..9 {
                let shares: Vec<Range<usize>> =
                    (0..ranks).map(|r| share(total, r, ranks)).collect();
                assert_eq!(shares[0].start, 0);
                assert_eq!(shares[ranks - 1].end, total);
                for pair in shares.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                }
                let (min, max) = (
                    shares.iter().map(|s| s.len()).min().unwrap(),
                    shares.iter().map(|s| s.len()).max().unwrap(),
                );
                assert!(max - min <= 1, "{total} over {ranks}: {shares:?}");
            }
        }
    }

    #[test]
    fn a_single_process_keeps_its_buffers() {
        let one = SingleProcess;
        let mut v = vec![1.5f32, -2.0];
        one.sum_f32(&mut v);
        assert_eq!(v, [1.5, -2.0]);
        assert_eq!(one.gather_f32(&v), v);
        let mut bytes = b"abc".to_vec();
        one.broadcast(&mut bytes);
        assert_eq!(bytes, b"abc");
        assert!(one.is_leader());
        assert_eq!((one.rank(), one.ranks()), (0, 1));
    }

    #[test]
    fn a_local_group_sums_gathers_and_broadcasts_like_a_job() {
        /// What one rank got back: sum, sum in f64, gather, broadcast.
        type Got = (Vec<f32>, Vec<f64>, Vec<f32>, Vec<u8>);
        let results: Vec<Got> = std::thread::scope(|scope| {
            let handles: Vec<_> = LocalGroup::new(3)
                .into_iter()
                .map(|g| {
                    scope.spawn(move || {
                        let r = g.rank() as f32;
                        let mut v = vec![r, 1.0];
                        g.sum_f32(&mut v);
                        let mut d = vec![f64::from(r); 2];
                        g.sum_f64(&mut d);
                        let gathered = g.gather_f32(&vec![r; g.rank() + 1]);
                        let mut b = if g.rank() == 0 {
                            b"zero".to_vec()
                        } else {
                            vec![1]
                        };
                        g.broadcast(&mut b);
                        (v, d, gathered, b)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (v, d, gathered, b) in results {
            assert_eq!(v, [3.0, 3.0]);
            assert_eq!(d, [3.0, 3.0]);
            assert_eq!(gathered, [0.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
            assert_eq!(b, b"zero");
        }
    }
}
