//! Writing a prepared data folder: the tokenizer learned in one streaming
//! pass, the tokens encoded in parallel in a second, then split and checksummed.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use xxhash_rust::xxh3::Xxh3Default;

use crate::bpe::Bpe;
use crate::corpus::list_documents;
use crate::vocab::byte_token;
use crate::word;
use crate::{TextError, Tokenizer, TokenizerKind, TokenizerOptions, Vocab, DOC_BOUNDARY};

use super::manifest::{
    hex, FileRecord, Manifest, SplitRecord, TokenWidth, TokenizerRecord, FORMAT_NAME,
    FORMAT_VERSION, MANIFEST_FILE, TOKENIZER_FILE, TRAIN_FILE, VAL_FILE, VOCAB_FILE,
};
use super::PreparedError;

/// The piece size when none is given: large enough that per-piece overhead
/// vanishes, small enough that a batch of pieces per thread stays a few MB.
pub const DEFAULT_BLOCK_BYTES: usize = 1 << 20;

/// How to prepare a corpus.
#[derive(Clone, Debug, PartialEq)]
pub struct PrepareOptions {
    /// The tokenizer to learn and encode with.
    pub kind: TokenizerKind,
    /// Vocabulary size, minimum count and word segmentation (word and BPE).
    pub tokenizer_options: TokenizerOptions,
    /// Fraction of the tokens held out for validation, taken from the end
    /// (as training on the text directly does); in `[0, 1)`.
    pub val_fraction: f64,
    /// Threads for tokenizing (default: all cores).
    pub threads: Option<usize>,
    /// Bytes read per piece (default [`DEFAULT_BLOCK_BYTES`]); the result
    /// does not depend on it.
    pub block_bytes: usize,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        PrepareOptions {
            kind: TokenizerKind::Char,
            tokenizer_options: TokenizerOptions::default(),
            val_fraction: 0.1,
            threads: None,
            block_bytes: DEFAULT_BLOCK_BYTES,
        }
    }
}

/// Which pass a [`Progress`] report is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Learning the vocabulary (or BPE merges): the first read of the corpus.
    Vocabulary,
    /// Encoding and writing the tokens: the second read.
    Tokens,
}

/// How far preparing has come, reported after each batch of pieces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The pass.
    pub phase: Phase,
    /// Bytes of text done in this pass.
    pub bytes_done: u64,
    /// Bytes of text in the corpus.
    pub bytes_total: u64,
}

/// Tokenizes the file or folder `input` into the prepared data folder `out`
/// (created if needed; files of an earlier preparation are replaced), and
/// returns its manifest. `progress` is called from any thread.
///
/// The tokenizer is the one [`Tokenizer::build_with`] builds from the same
/// text, and the tokens are those of [`Tokenizer::encode_corpus`] (a
/// boundary token between documents), split as a training run splits text
/// it reads itself, so training on the folder gives the same numbers as
/// training on the text. Memory stays flat: pieces of `block_bytes` are
/// read, counted or encoded in parallel, and written in order.
///
/// Every file is written under a temporary name and renamed into place;
/// `manifest.json` comes last, and is removed first, so a folder whose
/// preparation failed half-way has none and is not mistaken for a good one.
pub fn prepare(
    input: &Path,
    out: &Path,
    options: &PrepareOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Manifest, TextError> {
    check_options(options)?;
    options.tokenizer_options.check_applies_to(options.kind)?;
    let docs = list_documents(input)?;
    let mut input_bytes = 0u64;
    for doc in &docs {
        let meta = fs::metadata(doc).map_err(|e| crate::corpus::io_error(doc, e))?;
        input_bytes += meta.len();
    }
    let threads = options.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| PreparedError::InvalidSetting {
            field: "threads",
            value: format!("{threads} ({e})"),
            expected: "a thread count the system can start",
        })?;
    pool.install(|| {
        let job = Job {
            docs: &docs,
            options,
            input_bytes,
            threads,
            progress,
        };
        // The folder is touched only once the text has been read through:
        // bad input leaves nothing behind.
        let tokenizer = job.learn_tokenizer()?;
        fs::create_dir_all(out).map_err(|source| write_error(out, source))?;
        remove_if_present(&out.join(MANIFEST_FILE))?;
        let tokenizer_record = write_tokenizer(out, &tokenizer, &options.tokenizer_options)?;
        let (train, val) = job.write_tokens(out, &tokenizer, input)?;
        let manifest = Manifest {
            format: FORMAT_NAME.to_string(),
            version: FORMAT_VERSION,
            tokenizer: tokenizer_record,
            token_width: TokenWidth::for_vocab(tokenizer.vocab().len()),
            documents: docs.len(),
            input_bytes,
            source: input.display().to_string(),
            val_fraction: options.val_fraction,
            train,
            val,
        };
        let json = serde_json::to_string_pretty(&manifest)
            .map_err(|e| write_error(&out.join(MANIFEST_FILE), std::io::Error::other(e)))?;
        write_atomic(&out.join(MANIFEST_FILE), json.as_bytes())?;
        Ok(manifest)
    })
}

fn check_options(options: &PrepareOptions) -> Result<(), PreparedError> {
    let invalid = |field, value: String, expected| PreparedError::InvalidSetting {
        field,
        value,
        expected,
    };
    if !(0.0..1.0).contains(&options.val_fraction) {
        return Err(invalid(
            "val_fraction",
            options.val_fraction.to_string(),
            "in [0, 1)",
        ));
    }
    if options.threads == Some(0) {
        return Err(invalid("threads", "0".into(), "at least 1"));
    }
    if options.block_bytes == 0 {
        return Err(invalid("block_bytes", "0".into(), "at least 1"));
    }
    Ok(())
}

/// One preparation's inputs, shared by its passes.
struct Job<'a> {
    docs: &'a [PathBuf],
    options: &'a PrepareOptions,
    input_bytes: u64,
    threads: usize,
    progress: &'a (dyn Fn(Progress) + Sync),
}

impl Job<'_> {
    fn reader(&self) -> super::pieces::PieceReader {
        super::pieces::PieceReader::new(
            self.docs.to_vec(),
            self.options.block_bytes,
            self.options.kind.needs_utf8(),
        )
    }

    /// Pieces are handled this many at a time: enough for every thread.
    fn batch_len(&self) -> usize {
        self.threads * 4
    }

    /// Calls `f` with successive batches of pieces, reporting progress.
    fn for_each_batch(
        &self,
        phase: Phase,
        mut f: impl FnMut(Vec<super::pieces::Piece>) -> Result<(), TextError>,
    ) -> Result<(), TextError> {
        let mut reader = self.reader();
        let mut done = 0u64;
        loop {
            let batch: Vec<_> = reader
                .by_ref()
                .take(self.batch_len())
                .collect::<Result<_, _>>()?;
            if batch.is_empty() {
                return Ok(());
            }
            done += batch.iter().map(|p| p.bytes.len() as u64).sum::<u64>();
            f(batch)?;
            (self.progress)(Progress {
                phase,
                bytes_done: done,
                bytes_total: self.input_bytes,
            });
        }
    }

    /// The tokenizer [`Tokenizer::build_with`] would build from the whole
    /// corpus, learned from its pieces.
    fn learn_tokenizer(&self) -> Result<Tokenizer, TextError> {
        let several = self.docs.len() > 1;
        let boundary = || several.then(|| DOC_BOUNDARY.to_string());
        let options = &self.options.tokenizer_options;
        match self.options.kind {
            TokenizerKind::Byte => {
                let tokens = (0..=255u8).map(byte_token).chain(boundary()).collect();
                Tokenizer::from_vocab(TokenizerKind::Byte, Vocab::from_tokens(tokens)?)
            }
            TokenizerKind::Char => {
                let mut chars = BTreeSet::new();
                self.for_each_batch(Phase::Vocabulary, |batch| {
                    let sets = batch
                        .par_iter()
                        .map(|p| Ok(p.text()?.chars().collect::<BTreeSet<char>>()))
                        .collect::<Result<Vec<_>, TextError>>()?;
                    sets.into_iter().for_each(|mut s| chars.append(&mut s));
                    Ok(())
                })?;
                let tokens = chars.into_iter().map(String::from).chain(boundary());
                Tokenizer::from_vocab(TokenizerKind::Char, Vocab::from_tokens(tokens.collect())?)
            }
            TokenizerKind::Word => {
                let seg = options.word_segmentation;
                let mut counts: HashMap<String, u64> = HashMap::new();
                self.for_each_batch(Phase::Vocabulary, |batch| {
                    let maps = batch
                        .par_iter()
                        .map(|p| {
                            let mut m = HashMap::new();
                            word::count_words(p.text()?, seg, &mut m);
                            Ok(m.into_iter()
                                .map(|(w, n)| (w.to_string(), n))
                                .collect::<Vec<_>>())
                        })
                        .collect::<Result<Vec<_>, TextError>>()?;
                    for (w, n) in maps.into_iter().flatten() {
                        *counts.entry(w).or_default() += n;
                    }
                    Ok(())
                })?;
                let tokens = word::vocab_from_counts(counts, several, options)?;
                Tokenizer::from_word_vocab(Vocab::from_tokens(tokens)?, seg)
            }
            TokenizerKind::Bpe => {
                let mut failure = None;
                let done = std::sync::atomic::AtomicU64::new(0);
                let pieces = self.reader().map_while(|p| match p {
                    Ok(p) => {
                        let n = p.bytes.len() as u64;
                        let total = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
                        (self.progress)(Progress {
                            phase: Phase::Vocabulary,
                            bytes_done: total,
                            bytes_total: self.input_bytes,
                        });
                        // The reader checked UTF-8.
                        String::from_utf8(p.bytes).ok()
                    }
                    Err(e) => {
                        failure = Some(e);
                        None
                    }
                });
                let bytes = usize::try_from(self.input_bytes).unwrap_or(usize::MAX);
                let bpe = Bpe::train_on_pieces(pieces, several, bytes, options);
                if let Some(e) = failure {
                    return Err(e);
                }
                Tokenizer::from_bpe(bpe?)
            }
        }
    }

    /// Encodes the corpus into `train.bin` and `val.bin` in `out`.
    fn write_tokens(
        &self,
        out: &Path,
        tokenizer: &Tokenizer,
        input: &Path,
    ) -> Result<(SplitRecord, Option<SplitRecord>), TextError> {
        let width = TokenWidth::for_vocab(tokenizer.vocab().len());
        let w = width.bytes() as u64;
        let all_path = temp_path(&out.join(TRAIN_FILE));
        let file = File::create(&all_path).map_err(|source| write_error(&all_path, source))?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        let mut hasher = Xxh3Default::new();
        // The hash state after every batch: the training file's hash is
        // finished from the last one before the split, without rereading it all.
        let mut snapshots: Vec<(u64, Xxh3Default)> = vec![(0, hasher.clone())];
        let (mut written, mut last_doc) = (0u64, None);
        let boundary = tokenizer.boundary();
        let mut bytes = Vec::new();
        self.for_each_batch(Phase::Tokens, |batch| {
            let encoded = batch
                .par_iter()
                .map(|p| match tokenizer.kind() {
                    TokenizerKind::Byte => Ok(p.bytes.iter().map(|&b| u32::from(b)).collect()),
                    _ => tokenizer.encode(p.text()?),
                })
                .collect::<Result<Vec<Vec<u32>>, TextError>>()?;
            bytes.clear();
            for (piece, ids) in batch.iter().zip(&encoded) {
                if last_doc.is_some_and(|d| d != piece.doc) {
                    if let Some(b) = boundary {
                        push_ids(&mut bytes, &[b], width);
                    }
                }
                last_doc = Some(piece.doc);
                push_ids(&mut bytes, ids, width);
            }
            hasher.update(&bytes);
            writer
                .write_all(&bytes)
                .map_err(|source| write_error(&all_path, source))?;
            written += bytes.len() as u64;
            snapshots.push((written, hasher.clone()));
            Ok(())
        })?;
        let file = writer
            .into_inner()
            .map_err(|e| write_error(&all_path, e.into_error()))?;
        let tokens = written / w;
        if tokens < 2 {
            let _ = fs::remove_file(&all_path);
            return Err(PreparedError::TooFewTokens {
                path: input.to_path_buf(),
                tokens,
            }
            .into());
        }
        // The split of a run that reads the text itself (`lm::split`).
        let mut val_tokens = (tokens as f64 * self.options.val_fraction) as u64;
        if val_tokens < 2 {
            val_tokens = 0;
        }
        let split = (tokens - val_tokens) * w;
        let val = if val_tokens > 0 {
            let path = out.join(VAL_FILE);
            let xxh3 = copy_tail(&all_path, split, &path)?;
            Some(SplitRecord {
                file: FileRecord {
                    file: VAL_FILE.to_string(),
                    bytes: val_tokens * w,
                    xxh3: hex(xxh3),
                },
                tokens: val_tokens,
            })
        } else {
            remove_if_present(&out.join(VAL_FILE))?;
            None
        };
        let train_hash = finish_hash(&all_path, &snapshots, split)?;
        file.set_len(split)
            .and_then(|()| file.sync_all())
            .map_err(|source| write_error(&all_path, source))?;
        drop(file);
        let train_path = out.join(TRAIN_FILE);
        fs::rename(&all_path, &train_path).map_err(|source| write_error(&train_path, source))?;
        let train = SplitRecord {
            file: FileRecord {
                file: TRAIN_FILE.to_string(),
                bytes: split,
                xxh3: hex(train_hash),
            },
            tokens: tokens - val_tokens,
        };
        Ok((train, val))
    }
}

/// Appends `ids` as little-endian integers of `width`.
fn push_ids(out: &mut Vec<u8>, ids: &[u32], width: TokenWidth) {
    match width {
        // Every id fits: the width was chosen from the vocabulary size.
        TokenWidth::U16 => out.extend(ids.iter().flat_map(|&id| (id as u16).to_le_bytes())),
        TokenWidth::U32 => out.extend(ids.iter().flat_map(|&id| id.to_le_bytes())),
    }
}

/// The hash of the first `len` bytes of `path`, from the last snapshot at or before `len`.
fn finish_hash(path: &Path, snapshots: &[(u64, Xxh3Default)], len: u64) -> Result<u64, TextError> {
    let (from, mut hasher) = snapshots
        .iter()
        .rev()
        .find(|(at, _)| *at <= len)
        .cloned()
        .unwrap_or((0, Xxh3Default::new()));
    let mut file = File::open(path).map_err(|source| read_error(path, source))?;
    file.seek(SeekFrom::Start(from))
        .map_err(|source| read_error(path, source))?;
    hash_stream(path, file.take(len - from), &mut hasher)?;
    Ok(hasher.digest())
}

/// Copies `from`'s bytes after `offset` into `to` (atomically) and returns their hash.
fn copy_tail(from: &Path, offset: u64, to: &Path) -> Result<u64, TextError> {
    let mut src = File::open(from).map_err(|source| read_error(from, source))?;
    src.seek(SeekFrom::Start(offset))
        .map_err(|source| read_error(from, source))?;
    let tmp = temp_path(to);
    let mut dst = File::create(&tmp).map_err(|source| write_error(&tmp, source))?;
    let mut hasher = Xxh3Default::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src
            .read(&mut buf)
            .map_err(|source| read_error(from, source))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n])
            .map_err(|source| write_error(&tmp, source))?;
    }
    dst.sync_all().map_err(|source| write_error(&tmp, source))?;
    fs::rename(&tmp, to).map_err(|source| write_error(to, source))?;
    Ok(hasher.digest())
}

/// Feeds everything `reader` gives to `hasher`.
pub(crate) fn hash_stream(
    path: &Path,
    mut reader: impl Read,
    hasher: &mut Xxh3Default,
) -> Result<(), TextError> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|source| read_error(path, source))?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

/// Writes the vocabulary (and tokenizer.json for BPE) and describes them.
fn write_tokenizer(
    out: &Path,
    tokenizer: &Tokenizer,
    options: &TokenizerOptions,
) -> Result<TokenizerRecord, TextError> {
    let mut files = vec![write_record(out, VOCAB_FILE, &tokenizer.vocab().to_json())?];
    match tokenizer.to_tokenizer_json() {
        Some(json) => files.push(write_record(out, TOKENIZER_FILE, &json)?),
        None => remove_if_present(&out.join(TOKENIZER_FILE))?,
    }
    let sized = matches!(tokenizer.kind(), TokenizerKind::Word | TokenizerKind::Bpe);
    Ok(TokenizerRecord {
        kind: tokenizer.kind(),
        vocab_size: tokenizer.vocab().len(),
        requested_vocab_size: options.vocab_size,
        min_count: if sized { options.min_count } else { 1 },
        word_segmentation: tokenizer.word_segmentation(),
        boundary: tokenizer.boundary(),
        files,
    })
}

fn write_record(out: &Path, name: &str, text: &str) -> Result<FileRecord, TextError> {
    write_atomic(&out.join(name), text.as_bytes())?;
    Ok(FileRecord {
        file: name.to_string(),
        bytes: text.len() as u64,
        xxh3: hex(xxhash_rust::xxh3::xxh3_64(text.as_bytes())),
    })
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PreparedError> {
    let tmp = temp_path(path);
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|source| write_error(path, source))
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn remove_if_present(path: &Path) -> Result<(), PreparedError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(write_error(path, e)),
        _ => Ok(()),
    }
}

fn write_error(path: &Path, source: std::io::Error) -> PreparedError {
    PreparedError::Write {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn read_error(path: &Path, source: std::io::Error) -> PreparedError {
    PreparedError::Read {
        path: path.to_path_buf(),
        source,
    }
}
