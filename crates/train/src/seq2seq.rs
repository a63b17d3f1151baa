//! Training a sequence-to-sequence model on sentence pairs: length-bucketed
//! padded batches, one optimizer step per batch, periodic validation, early
//! stopping, and a state that resumes bit for bit.
//!
//! Like the language-model [`Trainer`](crate::trainer::Trainer) it is run by
//! the [engine] and does no I/O.
//!
//! **Batches.** Each epoch shuffles the pairs with a generator seeded by the
//! run's seed and the epoch number, sorts pools of `32 × batch` pairs by
//! length, cuts them into batches and shuffles the batches: pairs of similar
//! length share a batch (little padding is computed, since the encoder packs
//! by length and the decoder stops each row at its end) while the order stays
//! random. The order is a function of `(seed, epoch)`, so a resumed run
//! recomputes it instead of storing it.

use recurrent_kernels::precision::usable;
use recurrent_kernels::{with_precision, Precision, Rng};
use recurrent_model::seq2seq::{
    Seq2Seq, Seq2SeqBatch, Seq2SeqStats, Seq2SeqWorkspace, TrainOptions,
};
use serde::{Deserialize, Serialize};

use crate::batch::BatchError;
use crate::collective::{share, Collective, SingleProcess};
use crate::data_parallel::check_agreement;
use crate::engine::{
    self, check_and_clip, DataFingerprint, EvalReport, Observer, Plan, RunProgress, StepReport,
    StopReason, Task,
};
use crate::error::{DataError, ResumeError, TrainError, TrainingData};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::schedule::{LrScheduler, Schedule};

/// Pairs per length-sorted pool, in batches.
const POOL_BATCHES: usize = 32;

/// One sentence pair as ids: `src` the source tokens, `tgt` the decoder's
/// row `BOS y_1 … y_n EOS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedPair {
    /// Source token ids, without BOS or EOS.
    pub src: Vec<u32>,
    /// Target token ids, `BOS y_1 … y_n EOS`.
    pub tgt: Vec<u32>,
}

/// How to train; saved with the run so a resumed run continues the same way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seq2SeqTrainConfig {
    /// Sentence pairs per batch.
    pub batch: usize,
    /// The optimizer and its hyperparameters.
    pub optimizer: OptimizerConfig,
    /// Base learning rate, which `schedule` scales.
    pub lr: f32,
    /// Global gradient-norm clip; 0 turns clipping off.
    pub clip: f32,
    /// How the learning rate changes over the run.
    pub schedule: Schedule,
    /// When to stop, validate and give up (saved flattened: `epochs`,
    /// `steps`, `time_secs`, `eval_every`, `patience`).
    #[serde(flatten)]
    pub plan: Plan,
    /// Seeds the batch order, dropout and teacher-forcing draws.
    pub seed: u64,
    /// Probability that a decoder step reads the gold previous token.
    pub teacher_forcing: f32,
    /// Label smoothing `ε` in `[0, 1)`: the target is `(1-ε)·onehot + ε/V`.
    pub label_smoothing: f32,
}

/// Everything besides parameters and optimizer buffers that a resume needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seq2SeqTrainerState {
    /// How to train.
    pub config: Seq2SeqTrainConfig,
    /// Counters, schedule, random state (dropout and teacher-forcing draws)
    /// and validation record.
    #[serde(flatten)]
    pub progress: RunProgress,
    /// Batches of the current epoch already trained on.
    pub batch_in_epoch: usize,
    /// The precision of the products asked for (see
    /// [`recurrent_kernels::precision`]); float32 in runs saved before it.
    #[serde(default)]
    pub precision: Precision,
}

/// A padded batch being assembled (buffers reused across steps).
#[derive(Default)]
struct PaddedBatch {
    src: Vec<u32>,
    src_lens: Vec<usize>,
    tgt: Vec<u32>,
    tgt_lens: Vec<usize>,
}

impl PaddedBatch {
    /// Rows `rows` of `pairs`, batch-major and right-padded with 0.
    fn fill(&mut self, pairs: &[EncodedPair], rows: &[usize]) {
        let src_w = rows.iter().map(|&r| pairs[r].src.len()).max().unwrap_or(0);
        let tgt_w = rows.iter().map(|&r| pairs[r].tgt.len()).max().unwrap_or(0);
        self.src.clear();
        self.tgt.clear();
        self.src_lens.clear();
        self.tgt_lens.clear();
        for &r in rows {
            let p = &pairs[r];
            self.src.extend_from_slice(&p.src);
            self.src.resize(self.src.len() + src_w - p.src.len(), 0);
            self.tgt.extend_from_slice(&p.tgt);
            self.tgt.resize(self.tgt.len() + tgt_w - p.tgt.len(), 0);
            self.src_lens.push(p.src.len());
            self.tgt_lens.push(p.tgt.len());
        }
    }

    fn view(&self) -> Seq2SeqBatch<'_> {
        Seq2SeqBatch {
            src: &self.src,
            src_lens: &self.src_lens,
            tgt: &self.tgt,
            tgt_lens: &self.tgt_lens,
        }
    }
}

/// The batches of one epoch, as indices into `pairs` (see the module docs).
pub fn epoch_batches(
    pairs: &[EncodedPair],
    batch: usize,
    seed: u64,
    epoch: u64,
) -> Vec<Vec<usize>> {
    let batch = batch.max(1);
    let mut rng = Rng::new(seed ^ 0xba7c_4e55_u64 ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    shuffle(&mut order, &mut rng);
    let mut batches: Vec<Vec<usize>> = Vec::with_capacity(pairs.len().div_ceil(batch));
    for pool in order.chunks_mut(batch * POOL_BATCHES) {
        pool.sort_by_key(|&i| (pairs[i].src.len(), pairs[i].tgt.len()));
        batches.extend(pool.chunks(batch).map(<[usize]>::to_vec));
    }
    shuffle(&mut batches, &mut rng);
    batches
}

fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

/// The fingerprint of a set of pairs.
pub fn fingerprint(pairs: &[EncodedPair]) -> DataFingerprint {
    let flat: Vec<u32> = pairs
        .iter()
        .flat_map(|p| p.src.iter().chain(&p.tgt).copied())
        .collect();
    DataFingerprint::of(&flat)
}

/// Checks pairs can be batched: every source and target non-empty, every id
/// inside the model's vocabularies. `what` names the set in messages.
fn check_pairs(model: &Seq2Seq, pairs: &[EncodedPair], set: &'static str) -> Result<(), DataError> {
    let (vs, vt) = (model.config.src_vocab, model.config.tgt_vocab);
    for (i, p) in pairs.iter().enumerate() {
        let pair = i + 1;
        if p.src.is_empty() || p.tgt.len() < 2 {
            return Err(DataError::EmptyPair { set, pair });
        }
        for (side, ids, vocab) in [("source", &p.src, vs), ("target", &p.tgt, vt)] {
            if let Some(&id) = ids.iter().find(|&&t| t as usize >= vocab) {
                return Err(DataError::IdOutOfVocab {
                    set,
                    pair,
                    side,
                    id,
                    vocab,
                });
            }
        }
    }
    Ok(())
}

/// A seq2seq model being trained, with everything needed to continue.
pub struct Seq2SeqTrainer {
    /// The model, its parameters updated in place.
    pub model: Seq2Seq,
    /// The optimizer and its buffers.
    pub optimizer: Optimizer,
    /// The resumable state, saved as `trainer_state.json`.
    pub state: Seq2SeqTrainerState,
    train: Vec<EncodedPair>,
    val: Vec<EncodedPair>,
    /// This epoch's batches.
    batches: Vec<Vec<usize>>,
    padded: PaddedBatch,
    ws: Seq2SeqWorkspace,
    grads: Vec<f32>,
    /// The job this trainer is one rank of (a single process by default).
    collective: Box<dyn Collective + Send>,
}

impl Seq2SeqTrainer {
    /// A fresh run of `model` on `train` pairs, validating on `val` (may be empty).
    pub fn new(
        model: Seq2Seq,
        config: Seq2SeqTrainConfig,
        train: Vec<EncodedPair>,
        val: Vec<EncodedPair>,
    ) -> Result<Seq2SeqTrainer, TrainError> {
        config.optimizer.validate()?;
        let state = Seq2SeqTrainerState {
            progress: RunProgress::new(
                LrScheduler::new(config.schedule.clone(), config.lr),
                Rng::new(config.seed ^ 0x5e9_25e9_u64),
                fingerprint(&train),
            ),
            batch_in_epoch: 0,
            precision: Precision::F32,
            config,
        };
        let optimizer = Optimizer::new(state.config.optimizer.clone(), model.num_params());
        Self::assemble(model, optimizer, state, train, val)
    }

    /// Continues a saved run: the optimizer buffers and state as saved, on the
    /// same training pairs (checked by fingerprint).
    pub fn resume(
        model: Seq2Seq,
        optimizer_state: &[(String, Vec<f32>)],
        mut state: Seq2SeqTrainerState,
        train: Vec<EncodedPair>,
        val: Vec<EncodedPair>,
    ) -> Result<Seq2SeqTrainer, TrainError> {
        state.progress.upgrade();
        let found = fingerprint(&train);
        if found != state.progress.train_data {
            return Err(ResumeError::DataChanged {
                data: TrainingData::Pairs,
                saved: state.progress.train_data.clone(),
                found,
            }
            .into());
        }
        let mut optimizer = Optimizer::new(state.config.optimizer.clone(), model.num_params());
        optimizer.load_state(optimizer_state)?;
        Self::assemble(model, optimizer, state, train, val)
    }

    fn assemble(
        model: Seq2Seq,
        optimizer: Optimizer,
        state: Seq2SeqTrainerState,
        train: Vec<EncodedPair>,
        val: Vec<EncodedPair>,
    ) -> Result<Seq2SeqTrainer, TrainError> {
        if train.is_empty() {
            return Err(DataError::NoPairs.into());
        }
        if state.config.batch == 0 {
            return Err(BatchError::ZeroSize { field: "batch" }.into());
        }
        check_pairs(&model, &train, "training")?;
        check_pairs(&model, &val, "validation")?;
        let c = &state.config;
        let batches = epoch_batches(&train, c.batch, c.seed, state.progress.epoch);
        let grads = vec![0.0; model.num_params()];
        Ok(Seq2SeqTrainer {
            model,
            optimizer,
            state,
            train,
            val,
            batches,
            padded: PaddedBatch::default(),
            ws: Seq2SeqWorkspace::default(),
            grads,
            collective: Box::new(SingleProcess),
        })
    }

    /// Makes this trainer one rank of a data-parallel job: each batch's
    /// pairs are split over the ranks, and gradients and validation sums
    /// are added, so that every rank takes the same steps (see
    /// [`Trainer::distribute`](crate::trainer::Trainer::distribute)).
    pub fn distribute(&mut self, collective: Box<dyn Collective + Send>) -> Result<(), TrainError> {
        check_agreement(&*collective, &self.state.progress, &self.model.params)?;
        self.collective = collective;
        Ok(())
    }

    /// Batches in one pass over the training pairs.
    pub fn batches_per_epoch(&self) -> usize {
        self.batches.len()
    }

    /// Number of training pairs.
    pub fn train_pairs(&self) -> usize {
        self.train.len()
    }

    /// The validation pairs.
    pub fn val_pairs(&self) -> &[EncodedPair] {
        &self.val
    }

    /// The optimizer's buffers, to save for resuming.
    pub fn state_tensors(&self) -> Vec<(String, Vec<f32>)> {
        self.optimizer.state_tensors()
    }

    /// Trains the products in `precision` from the next step on, where this
    /// CPU has a bf16 kernel ([`recurrent_kernels::precision::usable`]); saved
    /// with the run, so a resume keeps it.
    pub fn set_precision(&mut self, precision: Precision) {
        self.state.precision = precision;
    }

    /// One optimizer step on the next batch.
    pub fn step(&mut self) -> Result<StepReport, TrainError> {
        let (rank, ranks) = (self.collective.rank(), self.collective.ranks());
        let rows = &self.batches[self.state.batch_in_epoch];
        let rows = &rows[share(rows.len(), rank, ranks)];
        let c = &self.state.config;
        let opts = TrainOptions {
            teacher_forcing: c.teacher_forcing,
            label_smoothing: c.label_smoothing,
            ..TrainOptions::default()
        };
        self.grads.fill(0.0);
        // Ranks draw dropout and teacher forcing from a seed they share, each its own stream.
        let mut rank_rng = (ranks > 1).then(|| {
            let seed = self.state.progress.rng.next_u64();
            Rng::new(seed ^ (rank as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        });
        let mut stats = if rows.is_empty() {
            // A batch smaller than the job: this rank adds nothing.
            Seq2SeqStats::default()
        } else {
            self.padded.fill(&self.train, rows);
            with_precision(usable(self.state.precision), || {
                self.model.train_batch(
                    &mut self.ws,
                    &self.padded.view(),
                    &opts,
                    rank_rng.as_mut().unwrap_or(&mut self.state.progress.rng),
                    &mut self.grads,
                )
            })?
        };
        if ranks > 1 {
            // Each rank's loss is a mean over its target tokens: weigh by them.
            let mine = stats.tokens as f32;
            self.grads.iter_mut().for_each(|g| *g *= mine);
            self.collective.sum_f32(&mut self.grads);
            let mut sums = [stats.loss * stats.tokens as f64, stats.tokens as f64];
            self.collective.sum_f64(&mut sums);
            let total = sums[1].max(1.0);
            self.grads.iter_mut().for_each(|g| *g /= total as f32);
            stats.loss = sums[0] / total;
            stats.tokens = sums[1] as usize;
        }
        let c = &self.state.config;
        let p = &mut self.state.progress;
        let norm = check_and_clip(&mut self.grads, stats.loss, c.clip, p.step + 1)?;
        let lr = p.lr();
        self.optimizer.step(&mut self.model.params, &self.grads, lr);
        p.step += 1;
        self.state.batch_in_epoch += 1;
        if self.state.batch_in_epoch == self.batches.len() {
            p.epoch += 1;
            self.state.batch_in_epoch = 0;
            self.batches = epoch_batches(&self.train, c.batch, c.seed, p.epoch);
        }
        Ok(StepReport {
            step: p.step,
            epoch: p.epoch,
            loss: stats.loss,
            grad_norm: norm,
            lr,
            tokens: stats.tokens,
            ar: 0.0,
            tar: 0.0,
            progress: None,
            elapsed_secs: p.elapsed_secs,
        })
    }

    /// Teacher-forced loss and accuracy over the validation pairs; `None`
    /// without any.
    pub fn validate(&mut self) -> Option<EvalReport> {
        if self.val.is_empty() {
            return None;
        }
        let c = &*self.collective;
        let sums = pair_sums(
            &self.model,
            &mut self.ws,
            &self.val,
            self.state.config.batch,
            (c.rank(), c.ranks()),
        );
        let mut all = [sums.nll, sums.tokens as f64, sums.correct as f64];
        c.sum_f64(&mut all);
        Some(
            PairSums {
                nll: all[0],
                tokens: all[1] as usize,
                correct: all[2] as usize,
            }
            .report(),
        )
    }

    /// Trains until the stop rule is met, validating and checkpointing on the
    /// way; `last/` is written at every validation and at the end.
    pub fn run(
        &mut self,
        observer: &mut dyn Observer<Seq2SeqTrainer>,
    ) -> Result<StopReason, TrainError> {
        engine::run(self, observer)
    }
}

/// What a rollback restores of a seq2seq run.
#[derive(Clone, Debug)]
pub struct Seq2SeqSnapshot {
    params: Vec<f32>,
    optimizer: Vec<(String, Vec<f32>)>,
    state: Seq2SeqTrainerState,
}

impl Task for Seq2SeqTrainer {
    type Snapshot = Seq2SeqSnapshot;

    fn progress(&self) -> &RunProgress {
        &self.state.progress
    }

    fn progress_mut(&mut self) -> &mut RunProgress {
        &mut self.state.progress
    }

    fn collective(&self) -> &dyn Collective {
        &*self.collective
    }

    fn plan(&self) -> Plan {
        self.state.config.plan
    }

    fn step(&mut self) -> Result<StepReport, TrainError> {
        Seq2SeqTrainer::step(self)
    }

    fn epoch_fraction(&self) -> f64 {
        self.state.batch_in_epoch as f64 / self.batches.len() as f64
    }

    fn validate(&mut self) -> Option<EvalReport> {
        Seq2SeqTrainer::validate(self)
    }

    fn uniform_loss(&self) -> f64 {
        (self.model.config.tgt_vocab as f64).ln()
    }

    fn snapshot(&mut self) -> Seq2SeqSnapshot {
        Seq2SeqSnapshot {
            params: self.model.params.clone(),
            optimizer: self.state_tensors(),
            state: self.state.clone(),
        }
    }

    fn restore(&mut self, snapshot: &Seq2SeqSnapshot) -> Result<(), TrainError> {
        self.optimizer.load_state(&snapshot.optimizer)?;
        self.model.params.clone_from(&snapshot.params);
        self.state.clone_from(&snapshot.state);
        let c = &self.state.config;
        self.batches = epoch_batches(&self.train, c.batch, c.seed, self.state.progress.epoch);
        Ok(())
    }
}

/// Teacher-forced mean loss and accuracy of `model` over `pairs`, in
/// batches of `batch` pairs of similar length.
pub fn evaluate_pairs(
    model: &Seq2Seq,
    ws: &mut Seq2SeqWorkspace,
    pairs: &[EncodedPair],
    batch: usize,
) -> EvalReport {
    pair_sums(model, ws, pairs, batch, (0, 1)).report()
}

/// What an evaluation adds up, over batches and over ranks.
struct PairSums {
    nll: f64,
    tokens: usize,
    correct: usize,
}

impl PairSums {
    fn report(&self) -> EvalReport {
        EvalReport {
            loss: self.nll / self.tokens.max(1) as f64,
            accuracy: self.correct as f64 / self.tokens.max(1) as f64,
            tokens: self.tokens,
            bleu: None,
        }
    }
}

/// The loss sums of the batches `rank` of `ranks` takes (every `ranks`-th,
/// from its own): batches of `batch` pairs of similar length.
fn pair_sums(
    model: &Seq2Seq,
    ws: &mut Seq2SeqWorkspace,
    pairs: &[EncodedPair],
    batch: usize,
    (rank, ranks): (usize, usize),
) -> PairSums {
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by_key(|&i| (pairs[i].src.len(), pairs[i].tgt.len()));
    let mut padded = PaddedBatch::default();
    let mut sums = PairSums {
        nll: 0.0,
        tokens: 0,
        correct: 0,
    };
    for rows in order.chunks(batch.max(1)).skip(rank).step_by(ranks) {
        padded.fill(pairs, rows);
        let Ok(Seq2SeqStats {
            nll,
            tokens,
            correct,
            ..
        }) = model.evaluate(ws, &padded.view(), 0.0)
        else {
            // The pairs were checked when the trainer was made.
            sums.nll = f64::NAN;
            return sums;
        };
        sums.nll += nll * tokens as f64;
        sums.tokens += tokens;
        sums.correct += correct;
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{SaveError, Slot, StopRule};
    use crate::optim::OptimizerKind;
    use recurrent_model::seq2seq::Seq2SeqConfig;

    /// Digit strings to reverse: tokens 0..10 are digits; BOS 10, EOS 11.
    fn reversal_pairs(n: usize, seed: u64) -> Vec<EncodedPair> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| {
                let len = 1 + rng.below(6) as usize;
                let src: Vec<u32> = (0..len).map(|_| rng.below(10) as u32).collect();
                let mut tgt = vec![10];
                tgt.extend(src.iter().rev());
                tgt.push(11);
                EncodedPair { src, tgt }
            })
            .collect()
    }

    fn config(steps: u64) -> Seq2SeqTrainConfig {
        Seq2SeqTrainConfig {
            batch: 8,
            optimizer: OptimizerConfig::new(OptimizerKind::Adam),
            lr: 0.01,
            clip: 1.0,
            schedule: Schedule::Constant,
            plan: Plan {
                stop: StopRule {
                    epochs: None,
                    steps: Some(steps),
                    time_secs: None,
                },
                eval_every: 5,
                patience: None,
            },
            seed: 7,
            teacher_forcing: 0.9,
            label_smoothing: 0.1,
        }
    }

    fn model() -> Seq2Seq {
        let mut c = Seq2SeqConfig::new(10, 12, 8, 16);
        c.dropout = 0.2;
        Seq2Seq::new(c, &mut Rng::new(3)).unwrap()
    }

    /// Parameters, optimizer buffers and trainer state of a checkpoint.
    type Saved = (Vec<f32>, Vec<(String, Vec<f32>)>, Seq2SeqTrainerState);

    /// Keeps the last checkpoint in memory.
    #[derive(Default)]
    struct Memory {
        last: Option<Saved>,
        evals: usize,
    }

    impl Observer<Seq2SeqTrainer> for Memory {
        fn on_eval(&mut self, _: &Seq2SeqTrainer, _: &EvalReport, _: bool) {
            self.evals += 1;
        }
        fn save(&mut self, t: &Seq2SeqTrainer, slot: Slot) -> Result<(), SaveError> {
            if slot == Slot::Last {
                self.last = Some((t.model.params.clone(), t.state_tensors(), t.state.clone()));
            }
            Ok(())
        }
    }

    #[test]
    fn batches_cover_every_pair_once_and_group_similar_lengths() {
        let pairs = reversal_pairs(500, 1);
        let batches = epoch_batches(&pairs, 8, 3, 0);
        let mut seen: Vec<usize> = batches.concat();
        seen.sort_unstable();
        assert_eq!(seen, (0..500).collect::<Vec<_>>());
        // Within a batch the source lengths span less than over the data.
        let spread: usize = batches
            .iter()
            .map(|b| {
                let lens: Vec<usize> = b.iter().map(|&i| pairs[i].src.len()).collect();
                lens.iter().max().unwrap() - lens.iter().min().unwrap()
            })
            .sum();
        assert!(
            spread < batches.len(),
            "mean spread {}",
            spread as f64 / batches.len() as f64
        );
        assert_eq!(epoch_batches(&pairs, 8, 3, 0), batches);
        assert_ne!(epoch_batches(&pairs, 8, 3, 1), batches);
    }

    #[test]
    fn resuming_gives_the_same_weights_bit_for_bit() {
        let (train, val) = (reversal_pairs(40, 2), reversal_pairs(10, 3));
        // 40 pairs in batches of 8: 5 batches an epoch, so 12 steps cross epochs.
        let mut whole =
            Seq2SeqTrainer::new(model(), config(12), train.clone(), val.clone()).unwrap();
        whole.run(&mut Memory::default()).unwrap();

        let mut first =
            Seq2SeqTrainer::new(model(), config(7), train.clone(), val.clone()).unwrap();
        let mut mem = Memory::default();
        first.run(&mut mem).unwrap();
        let (params, opt, mut state) = mem.last.unwrap();
        state.config.plan.stop.steps = Some(12);
        let mut m = model();
        m.params = params;
        let mut second = Seq2SeqTrainer::resume(m, &opt, state, train, val).unwrap();
        second.run(&mut Memory::default()).unwrap();
        assert_eq!(second.model.params, whole.model.params);
        assert_eq!(second.state.progress.epoch, 2);
    }

    /// Trains `steps` steps (stopping early with `patience`), or, with
    /// `stop_at`, first that many steps, then resumes from the saved `last/`.
    /// Returns the final parameters, the steps taken and why it stopped.
    fn patient_run(steps: u64, stop_at: Option<u64>) -> (Vec<f32>, u64, StopReason) {
        let (train, val) = (reversal_pairs(24, 6), reversal_pairs(12, 7));
        let config = |steps| {
            let mut c = Seq2SeqTrainConfig {
                lr: 0.05,
                ..config(steps)
            };
            (c.plan.eval_every, c.plan.patience) = (3, Some(2));
            c
        };
        let mut state = None;
        let mut params = model().params;
        let mut opt = Vec::new();
        if let Some(k) = stop_at {
            let mut t =
                Seq2SeqTrainer::new(model(), config(k), train.clone(), val.clone()).unwrap();
            let mut mem = Memory::default();
            if t.run(&mut mem).unwrap() == StopReason::EarlyStopping {
                return (
                    t.model.params,
                    t.state.progress.step,
                    StopReason::EarlyStopping,
                );
            }
            let (p, o, mut s) = mem.last.unwrap();
            s.config.plan.stop.steps = Some(steps);
            (params, opt, state) = (p, o, Some(s));
        }
        let mut m = model();
        m.params = params;
        let mut t = match state {
            Some(s) => Seq2SeqTrainer::resume(m, &opt, s, train, val).unwrap(),
            None => Seq2SeqTrainer::new(m, config(steps), train, val).unwrap(),
        };
        let reason = t.run(&mut Memory::default()).unwrap();
        (t.model.params, t.state.progress.step, reason)
    }

    #[test]
    fn a_run_stopped_and_resumed_early_stops_where_a_straight_run_does() {
        // The validation at a stop (step k, between scheduled validations)
        // may be a new best; early stopping must not count against it, or the
        // resumed run gives up at another step than the straight one.
        let straight = patient_run(60, None);
        assert_eq!(
            straight.2,
            StopReason::EarlyStopping,
            "the test needs early stopping"
        );
        for k in (1..straight.1).filter(|k| k % 3 != 0) {
            let resumed = patient_run(60, Some(k));
            assert_eq!(
                (resumed.1, resumed.2),
                (straight.1, straight.2),
                "stopped at step {k} and resumed"
            );
            assert!(
                resumed.0 == straight.0,
                "weights differ after stopping at {k}"
            );
        }
    }

    #[test]
    fn unusable_pairs_are_refused_naming_the_pair() {
        let train = reversal_pairs(8, 1);
        let new = |train: Vec<EncodedPair>, val: Vec<EncodedPair>, batch: usize| {
            let config = Seq2SeqTrainConfig { batch, ..config(1) };
            Seq2SeqTrainer::new(model(), config, train, val).err()
        };
        let mut bad = train.clone();
        bad[2].tgt[1] = 12;
        assert!(matches!(
            new(train.clone(), bad, 8),
            Some(TrainError::Data(DataError::IdOutOfVocab {
                set: "validation",
                pair: 3,
                side: "target",
                id: 12,
                vocab: 12
            }))
        ));
        let mut empty = train.clone();
        empty[0].src.clear();
        assert!(matches!(
            new(empty, Vec::new(), 8),
            Some(TrainError::Data(DataError::EmptyPair {
                set: "training",
                pair: 1
            }))
        ));
        assert!(matches!(
            new(Vec::new(), Vec::new(), 8),
            Some(TrainError::Data(DataError::NoPairs))
        ));
        assert!(matches!(
            new(train, Vec::new(), 0),
            Some(TrainError::Batch(BatchError::ZeroSize { field: "batch" }))
        ));
    }

    #[test]
    fn training_lowers_the_validation_loss_and_resume_checks_the_data() {
        let (train, val) = (reversal_pairs(200, 4), reversal_pairs(20, 5));
        let mut t = Seq2SeqTrainer::new(model(), config(60), train.clone(), val).unwrap();
        let before = t.validate().unwrap().loss;
        let mut mem = Memory::default();
        t.run(&mut mem).unwrap();
        let after = t.validate().unwrap().loss;
        assert!(after < before - 0.3, "{before} -> {after}");
        assert_eq!(mem.evals, 12);
        let (_, opt, state) = mem.last.unwrap();
        let other = reversal_pairs(200, 9);
        let err = Seq2SeqTrainer::resume(model(), &opt, state, other, Vec::new())
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                TrainError::Resume(ResumeError::DataChanged {
                    data: TrainingData::Pairs,
                    ..
                })
            ),
            "{err}"
        );
        assert!(err.to_string().contains("set of pairs differs"), "{err}");
    }
}
