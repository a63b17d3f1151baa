//! Incremental decoding, for printing generated text as it is sampled.
//!
//! In byte and BPE mode one character can span several tokens, so the decoder
//! holds back an incomplete UTF-8 sequence until it completes (or turns out
//! to be invalid) instead of printing half a character. In word mode it
//! remembers whether the line has a word yet, to put one space between words.

use crate::tokenizer::PieceRef;
use crate::{Tokenizer, TokenizerKind};

const REPLACEMENT: char = char::REPLACEMENT_CHARACTER;

/// Turns ids into text one at a time; `push` returns only finished characters.
#[derive(Clone, Debug)]
pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    /// Byte and BPE mode: the start of a UTF-8 sequence still waiting for its last bytes.
    pending: Vec<u8>,
    /// Word mode: a word was written since the last newline, so the next one
    /// needs a space before it.
    mid_line: bool,
}

impl<'a> StreamDecoder<'a> {
    /// A decoder with nothing pending.
    pub fn new(tok: &'a Tokenizer) -> StreamDecoder<'a> {
        StreamDecoder {
            tok,
            pending: Vec::with_capacity(4),
            mid_line: false,
        }
    }

    /// Feeds ids whose text is already shown, such as the prime of a
    /// generation, discarding their text: what follows then decodes as the
    /// continuation (in word mode, with a space before the next word).
    pub fn prime(&mut self, ids: &[u32]) {
        for &id in ids {
            self.push(id);
        }
    }

    /// Feeds one id and returns the text it completes (possibly empty).
    ///
    /// Invalid UTF-8 becomes U+FFFD exactly as `String::from_utf8_lossy`
    /// would replace it. A special token, or an id outside the vocabulary,
    /// first flushes any pending partial character as U+FFFD; the special
    /// token itself adds nothing, an unknown id adds U+FFFD (in word mode as
    /// a word of its own).
    pub fn push(&mut self, id: u32) -> String {
        let mut out = String::new();
        match self.tok.piece(id) {
            Some(PieceRef::Byte(b)) => self.push_byte(b, &mut out),
            Some(PieceRef::Bytes(bytes)) => {
                for &b in bytes {
                    self.push_byte(b, &mut out);
                }
            }
            Some(PieceRef::Char(c)) => {
                self.flush(&mut out);
                out.push(c);
            }
            Some(PieceRef::Word(w)) => self.push_word(w, &mut out),
            Some(PieceRef::Eos) => {
                self.flush(&mut out);
                out.push('\n');
                self.mid_line = false;
            }
            Some(PieceRef::Special) => self.flush(&mut out),
            None if self.tok.kind() == TokenizerKind::Word => {
                self.push_word(REPLACEMENT.encode_utf8(&mut [0; 4]), &mut out)
            }
            None => {
                self.flush(&mut out);
                out.push(REPLACEMENT);
            }
        }
        out
    }

    /// Ends the stream: returns U+FFFD if a partial character is pending, else "".
    /// The decoder is then empty and may be reused.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        self.flush(&mut out);
        self.mid_line = false;
        out
    }

    /// Whether bytes of an unfinished character are being held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn push_word(&mut self, word: &str, out: &mut String) {
        self.flush(out);
        if self.mid_line {
            out.push(' ');
        }
        out.push_str(word);
        self.mid_line = true;
    }

    fn push_byte(&mut self, b: u8, out: &mut String) {
        self.pending.push(b);
        // `pending` is at most 4 bytes, so re-validating it each time is cheap,
        // and leaning on std's validator gives exactly its replacement rules.
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // The bytes before `valid` are valid UTF-8 by definition.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // A valid start that needs more bytes: wait for them.
                        None => {
                            self.pending.drain(..valid);
                            return;
                        }
                        // A maximal invalid run: replace it and rescan what follows,
                        // since the byte that broke the sequence may start a new one.
                        Some(bad) => {
                            out.push(REPLACEMENT);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    fn flush(&mut self, out: &mut String) {
        if !self.pending.is_empty() {
            // Whatever is pending is an unfinished sequence: one replacement char.
            out.push_str(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
    }
}
