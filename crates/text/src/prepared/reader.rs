//! Opening a prepared data folder: the manifest, the tokenizer, and the token
//! files memory-mapped with a typed view.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use xxhash_rust::xxh3::Xxh3Default;

use crate::{TextError, Tokenizer, TokenizerKind, Vocab};

use super::manifest::{
    hex, FileRecord, Manifest, SplitRecord, TokenWidth, TOKENIZER_FILE, VOCAB_FILE,
};
use super::writer::{hash_stream, read_error};
use super::PreparedError;

/// How much of a token file to check when opening it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verify {
    /// Sizes against the manifest: instant, catches a truncated or swapped
    /// file. The default: a run starts at once whatever the corpus size.
    #[default]
    Size,
    /// Sizes, every byte's checksum and every id against the vocabulary,
    /// read through a small buffer (not the map, so memory stays flat):
    /// catches any corruption, at the cost of one read of the files.
    Full,
}

/// The ids of a token file, borrowed in their stored width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenIds<'a> {
    /// Two bytes per token.
    U16(&'a [u16]),
    /// Four bytes per token.
    U32(&'a [u32]),
}

impl TokenIds<'_> {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        match self {
            TokenIds::U16(ids) => ids.len(),
            TokenIds::U32(ids) => ids.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id at `index` (panics past the end, like slice indexing).
    pub fn get(&self, index: usize) -> u32 {
        match self {
            TokenIds::U16(ids) => u32::from(ids[index]),
            TokenIds::U32(ids) => ids[index],
        }
    }

    /// All ids widened to `u32` (for small files and tests).
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::U16(ids) => ids.iter().map(|&id| u32::from(id)).collect(),
            TokenIds::U32(ids) => ids.to_vec(),
        }
    }
}

/// One token file, memory-mapped read-only.
///
/// The map is `memmap2`'s (the crate ripgrep and most of the ecosystem use):
/// pages are read from the file on first touch and belong to the page cache,
/// so a corpus larger than memory trains with flat resident memory.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    /// `None` for an empty file, which cannot be mapped.
    map: Option<Mmap>,
    width: TokenWidth,
    record: SplitRecord,
}

impl TokenFile {
    /// The ids, in their stored width.
    pub fn ids(&self) -> TokenIds<'_> {
        let bytes: &[u8] = self.map.as_deref().unwrap_or(&[]);
        // A map starts on a page boundary and the size is a whole number of
        // tokens (checked at open), so the casts cannot fail; the fallbacks
        // keep this function free of panics.
        match self.width {
            TokenWidth::U16 => TokenIds::U16(bytemuck::try_cast_slice(bytes).unwrap_or(&[])),
            TokenWidth::U32 => TokenIds::U32(bytemuck::try_cast_slice(bytes).unwrap_or(&[])),
        }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.record.tokens as usize
    }

    /// Whether the file holds no tokens.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The manifest's record of it (name, size, checksum, tokens).
    pub fn record(&self) -> &SplitRecord {
        &self.record
    }

    /// The manifest's XXH3-64 of the file.
    pub fn checksum(&self) -> u64 {
        u64::from_str_radix(&self.record.file.xxh3, 16).unwrap_or(0)
    }

    fn open(
        dir: &Path,
        record: &SplitRecord,
        width: TokenWidth,
        vocab_size: usize,
        verify: Verify,
    ) -> Result<TokenFile, PreparedError> {
        let path = dir.join(&record.file.file);
        let manifest = dir.join(super::MANIFEST_FILE);
        if record.tokens.checked_mul(width.bytes() as u64) != Some(record.file.bytes) {
            return Err(PreparedError::Inconsistent {
                path: manifest,
                reason: format!(
                    "{} has {} tokens of {} bytes but {} bytes",
                    record.file.file,
                    record.tokens,
                    width.bytes(),
                    record.file.bytes
                ),
            });
        }
        let file = File::open(&path).map_err(|source| read_error(&path, source))?;
        check_size(&path, &file, &record.file)?;
        if verify == Verify::Full {
            check_contents(&path, &record.file, width, vocab_size)?;
        }
        let map = if record.file.bytes == 0 {
            None
        } else {
            // SAFETY: the map is read-only and private to this value. Like
            // every file map it assumes no one truncates or rewrites the file
            // while it is mapped; prepared folders are written once (new
            // files renamed into place, never rewritten in place), which is
            // the documented contract of the format.
            let map = unsafe { Mmap::map(&file) }.map_err(|source| read_error(&path, source))?;
            // Reading is in file order within each stream; the kernel's
            // default read-ahead already suits it, and the advice is a hint.
            let _ = map.advise(memmap2::Advice::Normal);
            Some(map)
        };
        Ok(TokenFile {
            path,
            map,
            width,
            record: record.clone(),
        })
    }
}

/// A prepared data folder, opened and checked: its manifest, tokenizer and
/// memory-mapped token files.
#[derive(Debug)]
pub struct PreparedData {
    dir: PathBuf,
    manifest: Manifest,
    tokenizer: Tokenizer,
    train: TokenFile,
    val: Option<TokenFile>,
}

impl PreparedData {
    /// Opens the folder `dir`: reads the manifest (a known format version),
    /// loads the tokenizer and checks its files' checksums and vocabulary
    /// size against the manifest, and maps the token files after checking
    /// them as `verify` says.
    pub fn open(dir: &Path, verify: Verify) -> Result<PreparedData, TextError> {
        if cfg!(target_endian = "big") {
            return Err(PreparedError::BigEndian.into());
        }
        let manifest = Manifest::read(dir)?;
        let tokenizer = load_tokenizer(dir, &manifest)?;
        let vocab = manifest.tokenizer.vocab_size;
        let width = manifest.token_width;
        if width != TokenWidth::for_vocab(vocab) && vocab <= 1 << 16 {
            // Not an error for reading, but never written: say so plainly.
            return Err(PreparedError::Inconsistent {
                path: dir.join(super::MANIFEST_FILE),
                reason: format!("token width {width:?} for a vocabulary of {vocab}"),
            }
            .into());
        }
        let train = TokenFile::open(dir, &manifest.train, width, vocab, verify)?;
        let val = match &manifest.val {
            Some(record) => Some(TokenFile::open(dir, record, width, vocab, verify)?),
            None => None,
        };
        Ok(PreparedData {
            dir: dir.to_path_buf(),
            manifest,
            tokenizer,
            train,
            val,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The tokenizer the tokens were made with.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The training tokens.
    pub fn train(&self) -> &TokenFile {
        &self.train
    }

    /// The validation tokens, if the folder has them.
    pub fn val(&self) -> Option<&TokenFile> {
        self.val.as_ref()
    }

    /// The tokenizer, training and validation files, to keep apart.
    pub fn into_parts(self) -> (Manifest, Tokenizer, TokenFile, Option<TokenFile>) {
        (self.manifest, self.tokenizer, self.train, self.val)
    }

    /// Checks `other` (a checkpoint's, say) is the tokenizer these tokens
    /// were made with: same kind, vocabulary and segmentation (and for BPE
    /// the same tokenizer.json), else [`PreparedError::TokenizerMismatch`].
    pub fn check_tokenizer(&self, other: &Tokenizer) -> Result<(), PreparedError> {
        let ours = &self.tokenizer;
        let reason = if ours.kind() != other.kind() {
            Some(format!("it is {}, not {}", ours.kind(), other.kind()))
        } else if ours.vocab() != other.vocab() {
            Some(format!(
                "its vocabulary of {} tokens differs from the other's {}",
                ours.vocab().len(),
                other.vocab().len()
            ))
        } else if ours.word_segmentation() != other.word_segmentation() {
            Some("its word segmentation differs".to_string())
        } else if ours.to_tokenizer_json() != other.to_tokenizer_json() {
            Some("its BPE merges differ".to_string())
        } else {
            None
        };
        match reason {
            Some(reason) => Err(PreparedError::TokenizerMismatch {
                path: self.dir.join(VOCAB_FILE),
                reason,
            }),
            None => Ok(()),
        }
    }
}

/// Rebuilds the tokenizer from its files after checking them against the manifest.
fn load_tokenizer(dir: &Path, manifest: &Manifest) -> Result<Tokenizer, TextError> {
    let record = &manifest.tokenizer;
    let read = |name: &str| -> Result<String, TextError> {
        let path = dir.join(name);
        let file = record
            .files
            .iter()
            .find(|f| f.file == name)
            .ok_or_else(|| PreparedError::TokenizerMismatch {
                path: dir.join(super::MANIFEST_FILE),
                reason: format!("the manifest records no {name}"),
            })?;
        let text = std::fs::read_to_string(&path).map_err(|source| read_error(&path, source))?;
        let found = hex(xxhash_rust::xxh3::xxh3_64(text.as_bytes()));
        if found != file.xxh3 {
            return Err(PreparedError::TokenizerMismatch {
                path,
                reason: format!(
                    "its XXH3 checksum is {found}, the manifest says {} (replaced or edited \
                     since the tokens were written)",
                    file.xxh3
                ),
            }
            .into());
        }
        Ok(text)
    };
    let vocab = Vocab::from_json(&read(VOCAB_FILE)?)?;
    let tokenizer = match record.kind {
        TokenizerKind::Bpe => {
            let t = Tokenizer::from_tokenizer_json(&read(TOKENIZER_FILE)?)?;
            if t.vocab() != &vocab {
                return Err(PreparedError::TokenizerMismatch {
                    path: dir.join(TOKENIZER_FILE),
                    reason: format!("it disagrees with {VOCAB_FILE}"),
                }
                .into());
            }
            t
        }
        TokenizerKind::Word => {
            Tokenizer::from_word_vocab(vocab, record.word_segmentation.unwrap_or_default())?
        }
        kind => Tokenizer::from_vocab(kind, vocab)?,
    };
    if tokenizer.vocab().len() != record.vocab_size {
        return Err(PreparedError::TokenizerMismatch {
            path: dir.join(VOCAB_FILE),
            reason: format!(
                "it has {} tokens, the manifest says {}",
                tokenizer.vocab().len(),
                record.vocab_size
            ),
        }
        .into());
    }
    Ok(tokenizer)
}

fn check_size(path: &Path, file: &File, record: &FileRecord) -> Result<(), PreparedError> {
    let found = file
        .metadata()
        .map_err(|source| read_error(path, source))?
        .len();
    let expected = record.bytes;
    let path = path.to_path_buf();
    match found.cmp(&expected) {
        std::cmp::Ordering::Less => Err(PreparedError::Truncated {
            path,
            expected,
            found,
        }),
        std::cmp::Ordering::Greater => Err(PreparedError::TooLong {
            path,
            expected,
            found,
        }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// Reads the whole file through a buffer: its checksum, and every id in range.
fn check_contents(
    path: &Path,
    record: &FileRecord,
    width: TokenWidth,
    vocab_size: usize,
) -> Result<(), PreparedError> {
    let file = File::open(path).map_err(|source| read_error(path, source))?;
    let mut hasher = Xxh3Default::new();
    let mut position = 0u64;
    let mut bad = None;
    let w = width.bytes();
    let counter = IdChecker {
        inner: file,
        width: w,
        vocab_size,
        position: &mut position,
        bad: &mut bad,
        carry: Vec::new(),
    };
    hash_stream(path, counter, &mut hasher).map_err(|e| match e {
        TextError::Prepared(p) => p,
        other => PreparedError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    })?;
    let found = hex(hasher.digest());
    if found != record.xxh3 {
        return Err(PreparedError::Checksum {
            path: path.to_path_buf(),
            expected: record.xxh3.clone(),
            found,
        });
    }
    if let Some((id, position)) = bad {
        return Err(PreparedError::TokenOutOfRange {
            path: path.to_path_buf(),
            id,
            position,
            vocab_size,
        });
    }
    Ok(())
}

/// A reader that notes the first id outside the vocabulary as bytes pass through.
struct IdChecker<'a, R> {
    inner: R,
    width: usize,
    vocab_size: usize,
    position: &'a mut u64,
    bad: &'a mut Option<(u32, u64)>,
    /// A token split across two reads.
    carry: Vec<u8>,
}

impl<R: std::io::Read> std::io::Read for IdChecker<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.carry.extend_from_slice(&buf[..n]);
        let whole = self.carry.len() / self.width * self.width;
        if self.bad.is_none() {
            for token in self.carry[..whole].chunks_exact(self.width) {
                let id = match *token {
                    [a, b] => u32::from(u16::from_le_bytes([a, b])),
                    [a, b, c, d] => u32::from_le_bytes([a, b, c, d]),
                    _ => 0,
                };
                if id as usize >= self.vocab_size {
                    *self.bad = Some((id, *self.position));
                    break;
                }
                *self.position += 1;
            }
        }
        self.carry.drain(..whole);
        Ok(n)
    }
}
