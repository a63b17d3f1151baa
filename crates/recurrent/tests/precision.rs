//! bf16 training through the facade: on the emulated kernel (any CPU) a run
//! is reproducible bit for bit, resumes exactly and keeps its precision in
//! the checkpoint; where no bf16 kernel runs, it trains in float32 and says so.

use std::path::Path;

use recurrent::kernels::precision::{force_bf16_kernel, native_bf16_kernel, Bf16Kernel};
use recurrent::lm::{ResumeOptions, TextSource, TrainOptions, Training};
use recurrent::model::ModelConfig;
use recurrent::{Precision, Quiet, RunFolder, StopRule};

fn options(steps: u64, precision: Precision) -> TrainOptions {
    TrainOptions {
        input: TextSource::text("abc", "the cat sat on the mat; a dog ran by. ".repeat(80)),
        init: recurrent::lm::Init::Fresh {
            config: ModelConfig {
                hidden: 48,
                embed: 16,
                ..TrainOptions::fixed_model()
            },
            forget_bias: None,
        },
        stop: StopRule {
            steps: Some(steps),
            ..StopRule::default()
        },
        seq_len: 20,
        batch: 8,
        lr: 1e-2,
        eval_every: Some(5),
        // Two threads: helper threads must follow the caller's precision.
        threads: Some(2),
        precision,
        ..TrainOptions::default()
    }
}

fn train(dir: &Path, steps: u64, precision: Precision) -> Training {
    let mut t =
        Training::start(&options(steps, precision), RunFolder::create(dir).unwrap()).unwrap();
    t.run(&mut Quiet).unwrap();
    t
}

fn saved_precision(run: &Path) -> String {
    let state = std::fs::read_to_string(run.join("last/trainer_state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    state["trainer"]["precision"].as_str().unwrap().to_string()
}

/// Each bf16 kernel this CPU can run (the emulated reference, the portable
/// pair kernel, AVX512-BF16 where present) trains reproducibly, resumes
/// exactly and stays close to float32.
#[test]
fn every_bf16_kernel_is_reproducible_resumes_exactly_and_is_not_float32() {
    let dir = tempfile::tempdir().unwrap();
    let f32_run = train(&dir.path().join("f32"), 12, Precision::F32);
    assert_eq!(saved_precision(&dir.path().join("f32")), "f32");
    let mut emulated = None;
    for kernel in Bf16Kernel::ALL.into_iter().filter(|k| k.available()) {
        force_bf16_kernel(Some(kernel));
        let name = kernel.name();
        let a = train(&dir.path().join(name), 12, Precision::Bf16);
        assert!(a.notes().is_empty(), "{:?}", a.notes());
        assert!(
            a.describe().contains("bf16 operands") && a.describe().contains(name),
            "{}",
            a.describe()
        );
        let again = train(
            &dir.path().join(format!("{name}-again")),
            12,
            Precision::Bf16,
        );
        assert!(
            again.model().params == a.model().params,
            "{name}: bit for bit"
        );
        assert!(f32_run.model().params != a.model().params, "{name}");
        assert_eq!(saved_precision(&dir.path().join(name)), "bf16");
        // Close, though: bf16 keeps 8 bits of each operand, and every sum is float32.
        let (p, q) = (&a.model().params, &f32_run.model().params);
        let worst = p
            .iter()
            .zip(q)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(
            worst < 0.05,
            "{name}: drifted {worst} from float32 in 12 steps"
        );
        // The kernels differ only in the order of float32 sums.
        let reference: &Vec<f32> = emulated.get_or_insert_with(|| a.model().params.clone());
        let apart = p
            .iter()
            .zip(reference)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(
            apart < 0.02,
            "{name}: {apart} from the emulated kernel's weights"
        );

        // Stopped at 7 steps and resumed to 12: the straight run's weights.
        let b = dir.path().join(format!("{name}-resumed"));
        train(&b, 7, Precision::Bf16);
        let resume = ResumeOptions {
            stop: Some(StopRule {
                steps: Some(12),
                ..StopRule::default()
            }),
            threads: Some(2),
            ..ResumeOptions::default()
        };
        let mut resumed = Training::resume(RunFolder::open(&b).unwrap(), &resume).unwrap();
        resumed.run(&mut Quiet).unwrap();
        assert!(resumed.model().params == a.model().params, "{name}: resume");
        assert_eq!(saved_precision(&b), "bf16");
    }
    force_bf16_kernel(None);
}

#[test]
fn without_a_bf16_kernel_bf16_trains_in_float32_and_says_so() {
    if native_bf16_kernel().is_some() {
        eprintln!("skipped: this CPU has a bf16 kernel, so bf16 does not fall back");
        return;
    }
    force_bf16_kernel(None);
    let dir = tempfile::tempdir().unwrap();
    let asked = train(&dir.path().join("bf16"), 6, Precision::Bf16);
    let note = asked.notes().join("\n");
    assert!(
        note.contains("training in f32 instead of bf16") && note.contains("RECURRENT_BF16_KERNEL"),
        "{note}"
    );
    assert!(!asked.describe().contains("bf16 operands"));
    let f32_run = train(&dir.path().join("f32"), 6, Precision::F32);
    assert!(asked.model().params == f32_run.model().params);
    // What was asked for is kept, so the run trains in bf16 where it can.
    assert_eq!(saved_precision(&dir.path().join("bf16")), "bf16");
}

/// Seq2seq and series trainers take the option too: bf16 changes their
/// weights (the products' operands are rounded) and is saved with the run.
#[test]
fn seq2seq_and_series_train_in_bf16_too() {
    force_bf16_kernel(Some(Bf16Kernel::Emulated));
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.tsv");
    let mut tsv = String::new();
    for i in 0..120u32 {
        let word: String = (0..3 + i % 4)
            .map(|j| (b'a' + ((i * 7 + j) % 26) as u8) as char)
            .collect();
        tsv.push_str(&format!(
            "{word}\t{}\n",
            word.chars().rev().collect::<String>()
        ));
    }
    std::fs::write(&pairs, tsv).unwrap();
    let seq2seq = |name: &str, precision: Precision| {
        use recurrent::seq2seq::{TrainOptions, Training};
        let mut options = TrainOptions::new(&pairs);
        options.tokenizer = recurrent::TokenizerKind::Char;
        options.model = recurrent::Seq2SeqConfig::new(0, 0, 8, 16);
        options.batch = 8;
        options.stop.steps = Some(4);
        options.val_bleu = 0;
        options.threads = Some(2);
        options.precision = precision;
        let run = dir.path().join(name);
        let mut t = Training::start(&options, RunFolder::create(&run).unwrap()).unwrap();
        t.run(&mut Quiet).unwrap();
        (t.trainer().model.params.clone(), saved_precision(&run))
    };
    let (bf16, saved) = seq2seq("s-bf16", Precision::Bf16);
    assert_eq!(saved, "bf16");
    assert!(bf16 == seq2seq("s-bf16-again", Precision::Bf16).0);
    assert!(bf16 != seq2seq("s-f32", Precision::F32).0);

    let csv = dir.path().join("series.csv");
    let rows: String = (0..200)
        .map(|t| format!("{t},{}\n", 10.0 + (t as f32 * 0.5).sin() * 3.0))
        .collect();
    std::fs::write(&csv, format!("t,y\n{rows}")).unwrap();
    let series = |name: &str, precision: Precision| {
        use recurrent::series::{TrainOptions, Training};
        let options = TrainOptions {
            columns: vec!["y".into()],
            target: "y".into(),
            window: 16,
            horizon: 4,
            hidden: 16,
            batch: 8,
            stop: StopRule {
                steps: Some(5),
                ..StopRule::default()
            },
            threads: Some(2),
            precision,
            ..TrainOptions::new(&csv)
        };
        let run = dir.path().join(name);
        let mut t = Training::start(&options, RunFolder::create(&run).unwrap()).unwrap();
        t.run(&mut Quiet).unwrap();
        (t.trainer().model.params.clone(), saved_precision(&run))
    };
    let (bf16, saved) = series("t-bf16", Precision::Bf16);
    assert_eq!(saved, "bf16");
    assert!(bf16 != series("t-f32", Precision::F32).0);
    force_bf16_kernel(None);
}
