//! The vocabulary: token strings in id order, and the reverse lookup.
//!
//! It is saved as `vocab.json`, a plain JSON array of strings, so that a
//! checkpoint's vocabulary can be read (and diffed) without this program.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::TextError;

/// Token strings in id order plus a reverse index from string to id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Vocab {
    tokens: Vec<String>,
    index: HashMap<String, u32>,
}

impl Vocab {
    /// A vocabulary whose token `i` has id `i`; errors on an empty list,
    /// an empty token string, or a token listed twice.
    pub fn from_tokens(tokens: Vec<String>) -> Result<Vocab, TextError> {
        if tokens.is_empty() {
            return Err(invalid("it has no tokens".to_string()));
        }
        // Ids are u32 everywhere downstream (checkpoints, sampling).
        if u32::try_from(tokens.len()).is_err() {
            return Err(invalid(format!("{} tokens is too many", tokens.len())));
        }
        let mut index = HashMap::with_capacity(tokens.len());
        for (id, token) in tokens.iter().enumerate() {
            if token.is_empty() {
                return Err(invalid(format!("token {id} is the empty string")));
            }
            if let Some(first) = index.insert(token.clone(), id as u32) {
                return Err(invalid(format!(
                    "token {:?} appears twice (ids {first} and {id})",
                    token
                )));
            }
        }
        Ok(Vocab { tokens, index })
    }

    /// The token strings in id order.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are no tokens (never true for a vocabulary built by this crate).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The id of a token string, if present.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.index.get(token).copied()
    }

    /// The token string of an id, if in range.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The vocabulary as `vocab.json`: a JSON array of token strings in id order.
    pub fn to_json(&self) -> String {
        // One token per line, so the file is readable and diffs well.
        serde_json::to_string_pretty(&self.tokens).expect("a list of strings always serializes")
    }

    /// Parses `vocab.json` text written by [`Vocab::to_json`].
    pub fn from_json(s: &str) -> Result<Vocab, TextError> {
        let tokens: Vec<String> =
            serde_json::from_str(s).map_err(|source| TextError::VocabJson { source })?;
        Vocab::from_tokens(tokens)
    }

    /// Appends a token the caller has checked is new, giving it the next id.
    pub(crate) fn push(&mut self, token: String) -> Result<u32, TextError> {
        let id = u32::try_from(self.tokens.len())
            .map_err(|_| invalid("too many tokens to add another".to_string()))?;
        self.index.insert(token.clone(), id);
        self.tokens.push(token);
        Ok(id)
    }
}

impl TryFrom<Vec<String>> for Vocab {
    type Error = TextError;

    fn try_from(tokens: Vec<String>) -> Result<Vocab, TextError> {
        Vocab::from_tokens(tokens)
    }
}

impl From<Vocab> for Vec<String> {
    fn from(vocab: Vocab) -> Vec<String> {
        vocab.tokens
    }
}

/// The vocabulary string of byte `b` in a byte vocabulary: printable ASCII is
/// itself, anything else is `<0xNN>` (uppercase hex), so vocab.json stays valid
/// JSON text and readable even for control bytes and non-UTF-8 bytes.
pub fn byte_token(b: u8) -> String {
    if (0x20..=0x7E).contains(&b) {
        (b as char).to_string()
    } else {
        format!("<0x{b:02X}>")
    }
}

fn invalid(reason: String) -> TextError {
    TextError::InvalidVocab { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &[&str]) -> Vec<String> {
        s.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn ids_follow_list_order() {
        let v = Vocab::from_tokens(toks(&["b", "a", "<doc>"])).unwrap();
        assert_eq!(v.len(), 3);
        assert!(!v.is_empty());
        assert_eq!(v.id("b"), Some(0));
        assert_eq!(v.id("<doc>"), Some(2));
        assert_eq!(v.id("c"), None);
        assert_eq!(v.token(1), Some("a"));
        assert_eq!(v.token(3), None);
    }

    #[test]
    fn rejects_empty_and_duplicates() {
        let e = Vocab::from_tokens(vec![]).unwrap_err();
        assert_eq!(e.to_string(), "invalid vocabulary: it has no tokens");
        let e = Vocab::from_tokens(toks(&["a", "b", "a"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid vocabulary: token \"a\" appears twice (ids 0 and 2)"
        );
        assert!(Vocab::from_tokens(toks(&["a", ""])).is_err());
    }

    #[test]
    fn json_round_trip_with_awkward_strings() {
        let v = Vocab::from_tokens(toks(&[
            "\n", "\"", "\\", "é", "中", "😀", "<0x00>", "<doc>",
        ]))
        .unwrap();
        let json = v.to_json();
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(parsed.is_array());
        assert_eq!(parsed[0], "\n");
        assert_eq!(Vocab::from_json(&json).unwrap(), v);
    }

    #[test]
    fn from_json_errors() {
        for bad in [
            r#"{"a": 0}"#,
            r#""a""#,
            "[1, 2]",
            "[\"a\", null]",
            "not json",
            "",
        ] {
            let e = Vocab::from_json(bad).unwrap_err();
            assert!(matches!(e, TextError::VocabJson { .. }), "{bad}: {e:?}");
            assert!(!e.to_string().contains('\n'));
        }
        let e = Vocab::from_json(r#"["a", "b", "a"]"#).unwrap_err();
        assert!(matches!(e, TextError::InvalidVocab { .. }), "{e:?}");
        assert!(Vocab::from_json("[]").is_err());
    }

    #[test]
    fn serde_goes_through_validation() {
        let v: Vocab = serde_json::from_str(r#"["x", "y"]"#).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"["x","y"]"#);
        assert!(serde_json::from_str::<Vocab>(r#"["x", "x"]"#).is_err());
    }

    #[test]
    fn byte_tokens() {
        assert_eq!(byte_token(b'a'), "a");
        assert_eq!(byte_token(b' '), " ");
        assert_eq!(byte_token(b'~'), "~");
        assert_eq!(byte_token(b'\n'), "<0x0A>");
        assert_eq!(byte_token(0x7F), "<0x7F>");
        assert_eq!(byte_token(0xE9), "<0xE9>");
        assert_eq!(byte_token(0), "<0x00>");
        let all: std::collections::HashSet<String> = (0..=255u8).map(byte_token).collect();
        assert_eq!(all.len(), 256);
    }
}
