//! Reading a corpus piece by piece, so no document is ever held whole.
//!
//! A piece ends just before whitespace that follows a non-whitespace
//! character: every tokenizer gives the same ids for the pieces one after
//! another as for the whole text there (char and byte trivially; word
//! segmentation splits at such whitespace; the BPE pre-tokenizer starts a new
//! pre-token there, which is where [`crate::bpe`] cuts its own chunks).

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use crate::corpus::io_error;
use crate::TextError;

/// One piece of one document.
#[derive(Debug)]
pub(crate) struct Piece {
    /// Index of the document in the reader's list.
    pub doc: usize,
    /// The bytes; valid UTF-8 when the reader checks it.
    pub bytes: Vec<u8>,
}

impl Piece {
    /// The piece as text; the reader has checked it in UTF-8 mode, so this
    /// only fails for a reader in byte mode.
    pub fn text(&self) -> Result<&str, TextError> {
        std::str::from_utf8(&self.bytes).map_err(|e| TextError::InvalidUtf8 {
            name: format!("document {}", self.doc),
            offset: e.valid_up_to(),
        })
    }
}

/// Yields the pieces of a list of documents in order, about `block` bytes each.
pub(crate) struct PieceReader {
    docs: Vec<PathBuf>,
    /// The document being read and its open file.
    doc: usize,
    file: Option<File>,
    /// Bytes read from the file and not yet handed out.
    carry: Vec<u8>,
    /// Offset in the document of `carry[0]`, for error messages.
    offset: usize,
    at_eof: bool,
    block: usize,
    utf8: bool,
    /// Set after an error: the reader yields nothing more.
    failed: bool,
}

impl PieceReader {
    /// A reader of `docs` in pieces of about `block` bytes; with `utf8`, a
    /// document that is not UTF-8 is an error naming it and the offset.
    pub fn new(docs: Vec<PathBuf>, block: usize, utf8: bool) -> PieceReader {
        PieceReader {
            docs,
            doc: 0,
            file: None,
            carry: Vec::new(),
            offset: 0,
            at_eof: false,
            block: block.max(1),
            utf8,
            failed: false,
        }
    }

    /// Reads until `carry` holds `want` bytes or the file ends.
    fn fill(&mut self, want: usize) -> Result<(), TextError> {
        let path = &self.docs[self.doc];
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        while self.carry.len() < want && !self.at_eof {
            let need = (want - self.carry.len()) as u64;
            let got = file
                .by_ref()
                .take(need)
                .read_to_end(&mut self.carry)
                .map_err(|e| io_error(path, e))?;
            if got == 0 {
                self.at_eof = true;
            }
        }
        Ok(())
    }

    /// Where the next piece of `carry` ends, or `None` when no safe cut is
    /// in it yet (read more).
    fn cut(&self) -> Result<Option<usize>, TextError> {
        if !self.utf8 {
            return Ok(Some(self.carry.len()));
        }
        let valid = match std::str::from_utf8(&self.carry) {
            Ok(s) => s,
            // A character split by the end of the read is completed by the next read.
            Err(e) if e.error_len().is_none() && !self.at_eof => {
                std::str::from_utf8(&self.carry[..e.valid_up_to()]).unwrap_or_default()
            }
            Err(e) => {
                return Err(TextError::InvalidUtf8 {
                    name: self.docs[self.doc].display().to_string(),
                    offset: self.offset + e.valid_up_to(),
                })
            }
        };
        if self.at_eof {
            return Ok(Some(self.carry.len()));
        }
        Ok(last_cut(valid))
    }

    fn next_piece(&mut self) -> Result<Option<Piece>, TextError> {
        loop {
            if self.file.is_none() {
                let Some(path) = self.docs.get(self.doc) else {
                    return Ok(None);
                };
                self.file = Some(File::open(path).map_err(|e| io_error(path, e))?);
                self.carry.clear();
                self.offset = 0;
                self.at_eof = false;
            }
            let mut want = self.block;
            let cut = loop {
                self.fill(want)?;
                if let Some(cut) = self.cut()? {
                    break cut;
                }
                // No whitespace after a word in the whole block: read another.
                want = self.carry.len() + self.block;
            };
            if cut == 0 {
                // The document is done.
                self.file = None;
                self.doc += 1;
                continue;
            }
            let rest = self.carry.split_off(cut);
            let bytes = std::mem::replace(&mut self.carry, rest);
            self.offset += bytes.len();
            return Ok(Some(Piece {
                doc: self.doc,
                bytes,
            }));
        }
    }
}

impl Iterator for PieceReader {
    type Item = Result<Piece, TextError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.next_piece();
        self.failed = next.is_err();
        next.transpose()
    }
}

/// The last position in `text` of whitespace that follows a non-whitespace
/// character, if any.
fn last_cut(text: &str) -> Option<usize> {
    let mut chars = text.char_indices().rev().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() && chars.peek().is_some_and(|&(_, p)| !p.is_whitespace()) {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_before_whitespace_after_a_word() {
        assert_eq!(last_cut("ab cd  ef"), Some(5));
        assert_eq!(last_cut("ab\n\n"), Some(2));
        assert_eq!(last_cut("  abc"), None);
        assert_eq!(last_cut("中文\u{3000}字"), Some(6));
    }

    #[test]
    fn pieces_put_together_are_the_documents() {
        let dir = tempfile::tempdir().unwrap();
        let text = "ab  cd\nef\n\n gh 中文 字 x\u{3000}y ".repeat(7);
        let a = dir.path().join("a.txt");
        let b = dir.path().join("b.txt");
        std::fs::write(&a, &text).unwrap();
        std::fs::write(&b, "nospaceatall").unwrap();
        for block in [1, 2, 3, 5, 8, 100, 10_000] {
            let pieces: Vec<Piece> = PieceReader::new(vec![a.clone(), b.clone()], block, true)
                .collect::<Result<_, _>>()
                .unwrap();
            let doc = |d| {
                let bytes: Vec<u8> = pieces
                    .iter()
                    .filter(|p| p.doc == d)
                    .flat_map(|p| p.bytes.clone())
                    .collect();
                String::from_utf8(bytes).unwrap()
            };
            assert_eq!(doc(0), text, "block {block}");
            assert_eq!(doc(1), "nospaceatall");
            for p in &pieces {
                assert!(p.text().is_ok());
            }
        }
    }

    #[test]
    fn invalid_utf8_names_the_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        std::fs::write(&a, b"hello world \xff more").unwrap();
        let err = PieceReader::new(vec![a], 4, true)
            .find_map(Result::err)
            .unwrap();
        assert!(
            matches!(&err, TextError::InvalidUtf8 { offset: 12, name } if name.ends_with("a.txt")),
            "{err:?}"
        );
    }
}
