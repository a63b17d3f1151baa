//! TensorBoard event files: what `SummaryWriter` writes, so `tensorboard
//! --logdir DIR` shows a run's curves and samples.
//!
//! The file is a sequence of TFRecords (`u64` length, masked CRC-32C of the
//! length, the bytes, masked CRC-32C of the bytes), each an `Event` message
//! (tensorflow/core/util/event.proto): first one carrying the file version,
//! then one per scalar or text. Scalars are `Summary.Value.simple_value`;
//! texts are string tensors for TensorBoard's text plugin.
//!
//! Hyper-parameters go to the hparams plugin (its HPARAMS tab) as
//! `tensorboard/plugins/hparams/plugin_data.proto` lays them out: an
//! `HParamsPluginData` message as the plugin content of a summary's
//! metadata, the experiment (every hyper-parameter and metric) in the log
//! directory's root run, and a session's start (its values) and end (its
//! status) in the session's run.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use recurrent_protobuf::Message;

/// Writes one event file in a log directory.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
    clock: fn() -> f64,
}

impl EventWriter {
    /// Creates `dir` if needed and a new event file in it, named as
    /// TensorFlow names them (`events.out.tfevents.<seconds>.<host>`, here
    /// with `.recurrent.<pid>` so two writers never share a file).
    pub fn create(dir: &Path) -> std::io::Result<EventWriter> {
        EventWriter::with_clock(dir, wall_time)
    }

    /// As [`EventWriter::create`], with `clock` giving each event's wall
    /// time in seconds (tests fix it).
    pub fn with_clock(dir: &Path, clock: fn() -> f64) -> std::io::Result<EventWriter> {
        std::fs::create_dir_all(dir)?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let name = format!(
            "events.out.tfevents.{}.{host}.recurrent.{}",
            clock() as u64,
            std::process::id()
        );
        // A second writer in the same second (a resumed trial's next rung)
        // gets a numbered name rather than someone else's file.
        let mut path = dir.join(&name);
        let mut n = 0;
        let file = loop {
            match File::options().write(true).create_new(true).open(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => {
                    n += 1;
                    path = dir.join(format!("{name}.{n}"));
                }
                opened => break opened?,
            }
        };
        let mut writer = EventWriter {
            path,
            out: BufWriter::new(file),
            clock,
        };
        let mut event = writer.event(0);
        event.string(3, "brain.Event:2");
        writer.record(&event)?;
        writer.flush()?;
        Ok(writer)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A scalar `value` of series `tag` at `step`.
    pub fn scalar(&mut self, tag: &str, step: u64, value: f64) -> std::io::Result<()> {
        let mut v = Message::new();
        v.string(1, tag).float(2, value as f32);
        self.summary(step, &v)
    }

    /// A text (Markdown, as TensorBoard's text plugin shows it) under `tag` at `step`.
    pub fn text(&mut self, tag: &str, step: u64, text: &str) -> std::io::Result<()> {
        let mut plugin = Message::new();
        plugin.string(1, "text");
        let mut metadata = Message::new();
        metadata.message(1, &plugin);
        // A scalar DT_STRING tensor (dtype 7, shape of no dimensions).
        let mut tensor = Message::new();
        tensor
            .int(1, 7)
            .message(2, &Message::new())
            .bytes(8, text.as_bytes());
        let mut v = Message::new();
        v.string(1, tag).message(9, &metadata).message(8, &tensor);
        self.summary(step, &v)
    }

    /// The hparams experiment: the hyper-parameters and the metrics (scalar
    /// tags) the HPARAMS tab shows. Written once, in the root run.
    pub fn hparams_experiment(
        &mut self,
        hparams: &[HParamInfo],
        metric_tags: &[&str],
    ) -> std::io::Result<()> {
        let mut experiment = Message::new();
        experiment.double(3, (self.clock)());
        for h in hparams {
            let mut info = Message::new();
            info.string(1, &h.name).int(4, h.kind.data_type());
            match &h.domain {
                HParamDomain::Any => {}
                HParamDomain::Discrete(values) => {
                    let mut list = Message::new();
                    for v in values {
                        list.message(1, &v.to_proto());
                    }
                    info.message(5, &list);
                }
                HParamDomain::Interval { min, max } => {
                    let mut interval = Message::new();
                    interval.double(1, *min).double(2, *max);
                    info.message(6, &interval);
                }
            }
            experiment.message(4, &info);
        }
        for tag in metric_tags {
            let mut name = Message::new();
            name.string(2, tag);
            let mut metric = Message::new();
            // DATASET_VALIDATION.
            metric.message(1, &name).int(5, 2);
            experiment.message(5, &metric);
        }
        let mut data = Message::new();
        data.int(1, 0).message(2, &experiment);
        self.hparams_summary("_hparams_/experiment", &data)
    }

    /// A session's start: its hyper-parameters' values, by name.
    pub fn hparams_session_start(
        &mut self,
        values: &[(String, HParamValue)],
    ) -> std::io::Result<()> {
        let mut start = Message::new();
        for (name, value) in values {
            // A map entry: key 1, value 2.
            let mut entry = Message::new();
            entry.string(1, name).message(2, &value.to_proto());
            start.message(1, &entry);
        }
        start.double(5, (self.clock)());
        let mut data = Message::new();
        data.int(1, 0).message(3, &start);
        self.hparams_summary("_hparams_/session_start_info", &data)
    }

    /// A session's end and its status.
    pub fn hparams_session_end(&mut self, status: SessionStatus) -> std::io::Result<()> {
        let mut end = Message::new();
        end.int(1, status as i64).double(2, (self.clock)());
        let mut data = Message::new();
        data.int(1, 0).message(4, &end);
        self.hparams_summary("_hparams_/session_end_info", &data)
    }

    fn hparams_summary(&mut self, tag: &str, data: &Message) -> std::io::Result<()> {
        let mut plugin = Message::new();
        plugin
            .string(1, "hparams")
            .bytes(2, &data.clone().into_bytes());
        let mut metadata = Message::new();
        metadata.message(1, &plugin);
        // A float scalar 0 (DT_FLOAT, no dimensions, float_val packed), as
        // TensorBoard's own hparams summaries carry.
        let mut tensor = Message::new();
        tensor
            .int(1, 1)
            .message(2, &Message::new())
            .bytes(5, &0f32.to_le_bytes());
        let mut v = Message::new();
        v.string(1, tag).message(9, &metadata).message(8, &tensor);
        self.summary(0, &v)
    }

    /// Writes buffered events to the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn event(&self, step: u64) -> Message {
        let mut event = Message::new();
        event.double(1, (self.clock)()).int(2, step as i64);
        event
    }

    fn summary(&mut self, step: u64, value: &Message) -> std::io::Result<()> {
        let mut summary = Message::new();
        summary.message(1, value);
        let mut event = self.event(step);
        event.message(5, &summary);
        self.record(&event)
    }

    fn record(&mut self, event: &Message) -> std::io::Result<()> {
        let data = event.clone().into_bytes();
        let len = (data.len() as u64).to_le_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&masked_crc(&len).to_le_bytes())?;
        self.out.write_all(&data)?;
        self.out.write_all(&masked_crc(&data).to_le_bytes())
    }
}

/// A hyper-parameter's value in the hparams plugin.
#[derive(Clone, Debug, PartialEq)]
pub enum HParamValue {
    /// A number (`google.protobuf.Value.number_value`).
    Number(f64),
    /// A string.
    Text(String),
    /// A switch.
    Bool(bool),
}

impl HParamValue {
    /// The `google.protobuf.Value` message.
    fn to_proto(&self) -> Message {
        let mut m = Message::new();
        match self {
            HParamValue::Number(x) => m.double(2, *x),
            HParamValue::Text(s) => m.string(3, s),
            HParamValue::Bool(b) => m.int(4, i64::from(*b)),
        };
        m
    }
}

/// The type of a hyper-parameter's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HParamKind {
    /// Numbers (`DATA_TYPE_FLOAT64`).
    Number,
    /// Strings (`DATA_TYPE_STRING`).
    Text,
    /// Switches (`DATA_TYPE_BOOL`).
    Bool,
}

impl HParamKind {
    fn data_type(self) -> i64 {
        match self {
            HParamKind::Text => 1,
            HParamKind::Bool => 2,
            HParamKind::Number => 3,
        }
    }
}

/// The values a hyper-parameter may take, for the HPARAMS tab's filters.
#[derive(Clone, Debug, PartialEq)]
pub enum HParamDomain {
    /// Not said.
    Any,
    /// One of these.
    Discrete(Vec<HParamValue>),
    /// A number in `[min, max]`.
    Interval {
        /// Smallest value.
        min: f64,
        /// Largest value.
        max: f64,
    },
}

/// A hyper-parameter of an experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct HParamInfo {
    /// Its name.
    pub name: String,
    /// Its type.
    pub kind: HParamKind,
    /// Its values.
    pub domain: HParamDomain,
}

/// How a session ended (the hparams plugin's `Status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStatus {
    /// Not known.
    Unknown = 0,
    /// It finished.
    Success = 1,
    /// It failed.
    Failure = 2,
    /// It is still running.
    Running = 3,
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// TFRecord's checksum: CRC-32C, rotated right by 15 bits plus a constant.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), bit by bit: event
/// files are small and written a few times a second at most.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC catalogue's check value for "123456789".
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    fn fixed_clock() -> f64 {
        1_700_000_000.5
    }

    #[test]
    fn an_event_file_matches_its_golden_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::with_clock(dir.path(), fixed_clock).unwrap();
        w.scalar("train/loss", 3, 2.5).unwrap();
        w.text("sample", 3, "hi").unwrap();
        w.flush().unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        let golden_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/events.golden");
        if std::env::var_os("RECURRENT_BLESS").is_some() {
            std::fs::write(golden_path, &bytes).unwrap();
        }
        // Checked once with TensorBoard's own reader (tests/python/test_tensorboard.py
        // reads a fresh run's files the same way).
        let golden = std::fs::read(golden_path).unwrap();
        assert_eq!(bytes, golden);
        assert!(w
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("events.out.tfevents.1700000000."));
    }

    #[test]
    fn hparams_summaries_match_their_golden_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::with_clock(dir.path(), fixed_clock).unwrap();
        w.hparams_experiment(
            &[
                HParamInfo {
                    name: "lr".into(),
                    kind: HParamKind::Number,
                    domain: HParamDomain::Interval {
                        min: 1e-4,
                        max: 1e-2,
                    },
                },
                HParamInfo {
                    name: "cell".into(),
                    kind: HParamKind::Text,
                    domain: HParamDomain::Discrete(vec![
                        HParamValue::Text("lstm".into()),
                        HParamValue::Text("gru".into()),
                    ]),
                },
                HParamInfo {
                    name: "tie".into(),
                    kind: HParamKind::Bool,
                    domain: HParamDomain::Any,
                },
            ],
            &["hparams/val_loss"],
        )
        .unwrap();
        w.hparams_session_start(&[
            ("cell".into(), HParamValue::Text("gru".into())),
            ("lr".into(), HParamValue::Number(0.003)),
            ("tie".into(), HParamValue::Bool(true)),
        ])
        .unwrap();
        w.scalar("hparams/val_loss", 7, 1.5).unwrap();
        w.hparams_session_end(SessionStatus::Success).unwrap();
        w.flush().unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        let golden_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hparams.golden");
        if std::env::var_os("RECURRENT_BLESS").is_some() {
            std::fs::write(golden_path, &bytes).unwrap();
        }
        // Checked with TensorBoard's own reader (tests/python/test_tune.py
        // reads a study's files the same way).
        let golden = std::fs::read(golden_path).unwrap();
        assert_eq!(bytes, golden);
        // The plugin content of the session start, field by field:
        // HParamsPluginData { version: 0, session_start_info (3) { hparams (1):
        // entry { key "cell", value { string_value (3): "gru" } } ... } }.
        let entry = [&[0x0a, 4][..], b"cell", &[0x12, 5, 0x1a, 3], b"gru"].concat();
        assert!(bytes.windows(entry.len()).any(|w| w == entry));
    }

    #[test]
    fn two_writers_in_one_second_get_two_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = EventWriter::with_clock(dir.path(), fixed_clock).unwrap();
        let b = EventWriter::with_clock(dir.path(), fixed_clock).unwrap();
        assert_ne!(a.path(), b.path());
        assert!(b.path().to_str().unwrap().ends_with(".1"));
    }

    #[test]
    fn records_carry_their_length_and_checksums() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::with_clock(dir.path(), fixed_clock).unwrap();
        w.scalar("a", 1, 1.0).unwrap();
        w.flush().unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        let mut at = 0;
        let mut records = 0;
        while at < bytes.len() {
            let len_bytes = &bytes[at..at + 8];
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            assert_eq!(crc, masked_crc(len_bytes));
            let data = &bytes[at + 12..at + 12 + len];
            let crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
            assert_eq!(crc, masked_crc(data));
            at += 16 + len;
            records += 1;
        }
        assert_eq!(records, 2, "the file version, then the scalar");
    }
}
