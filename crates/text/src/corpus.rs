//! Reading the training text: one file, or every file under a folder.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::TextError;

/// One file of the corpus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// The file's path as read (used in error messages), or a label for in-memory text.
    pub name: String,
    /// The raw contents; char mode requires them to be UTF-8.
    pub bytes: Vec<u8>,
}

/// The documents to train on, in a reproducible order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Corpus {
    /// The documents, sorted by path when read from a folder.
    pub docs: Vec<Document>,
}

impl Corpus {
    /// Reads a file, or all files under a folder recursively.
    ///
    /// A folder's files are sorted by path so every run sees the same order;
    /// hidden files and folders (name starting with `.`) and empty files are
    /// skipped, as are symlinks to folders (they could loop). Errors name the
    /// path: not found, unreadable, an empty file given directly, or a folder
    /// with no non-empty files.
    pub fn read(path: &Path) -> Result<Corpus, TextError> {
        let meta = fs::metadata(path).map_err(|e| io_error(path, e))?;
        if !meta.is_dir() {
            // Anything else (a file, /dev/stdin, a named pipe) is read whole.
            let bytes = fs::read(path).map_err(|e| io_error(path, e))?;
            if bytes.is_empty() {
                return Err(TextError::EmptyFile {
                    path: path.to_path_buf(),
                });
            }
            return Ok(Corpus {
                docs: vec![Document {
                    name: path.display().to_string(),
                    bytes,
                }],
            });
        }

        let mut files = Vec::new();
        collect_files(path, &mut files)?;
        // Sort whole paths (component by component), not per-folder listings,
        // so the order does not depend on the file system.
        files.sort();
        let mut docs = Vec::with_capacity(files.len());
        for file in files {
            let bytes = fs::read(&file).map_err(|e| io_error(&file, e))?;
            if !bytes.is_empty() {
                docs.push(Document {
                    name: file.display().to_string(),
                    bytes,
                });
            }
        }
        if docs.is_empty() {
            return Err(TextError::EmptyFolder {
                path: path.to_path_buf(),
            });
        }
        Ok(Corpus { docs })
    }

    /// A one-document corpus from in-memory text.
    pub fn from_text(name: &str, text: &str) -> Corpus {
        Corpus {
            docs: vec![Document {
                name: name.to_string(),
                bytes: text.as_bytes().to_vec(),
            }],
        }
    }

    /// The size of all documents together, in bytes.
    pub fn total_bytes(&self) -> usize {
        self.docs.iter().map(|d| d.bytes.len()).sum()
    }

    /// Checks every document is UTF-8, as the char tokenizer needs; the error
    /// names the first bad file and the offset of its first invalid byte.
    pub fn check_utf8(&self) -> Result<(), TextError> {
        for doc in &self.docs {
            if let Err(e) = std::str::from_utf8(&doc.bytes) {
                return Err(TextError::InvalidUtf8 {
                    name: doc.name.clone(),
                    offset: e.valid_up_to(),
                });
            }
        }
        Ok(())
    }
}

/// Appends the regular files under `dir` (recursively, hidden entries skipped).
fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), TextError> {
    let entries = fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| io_error(&path, e))?;
        if kind.is_dir() {
            collect_files(&path, files)?;
        } else if kind.is_file() {
            files.push(path);
        } else if kind.is_symlink() {
            // Follow links to files; a dangling link is skipped like any non-file.
            if fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                files.push(path);
            }
        }
        // Sockets, pipes and devices inside a folder are not text: skip them.
    }
    Ok(())
}

/// The files [`Corpus::read`] would read from `path`, in its order, without
/// reading them: for a corpus streamed piece by piece. The same errors for a
/// missing path, an empty file given directly, or a folder with no text.
pub(crate) fn list_documents(path: &Path) -> Result<Vec<PathBuf>, TextError> {
    let meta = fs::metadata(path).map_err(|e| io_error(path, e))?;
    if !meta.is_dir() {
        if meta.len() == 0 {
            return Err(TextError::EmptyFile {
                path: path.to_path_buf(),
            });
        }
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    collect_files(path, &mut files)?;
    files.sort();
    let mut docs = Vec::with_capacity(files.len());
    for file in files {
        let meta = fs::metadata(&file).map_err(|e| io_error(&file, e))?;
        if meta.len() > 0 {
            docs.push(file);
        }
    }
    if docs.is_empty() {
        return Err(TextError::EmptyFolder {
            path: path.to_path_buf(),
        });
    }
    Ok(docs)
}

pub(crate) fn io_error(path: &Path, err: io::Error) -> TextError {
    if err.kind() == io::ErrorKind::NotFound {
        TextError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        TextError::Read {
            path: path.to_path_buf(),
            err,
        }
    }
}
