//! The tokenizers of a sequence-to-sequence model: one per side (or one shared
//! by both), and the target side's two structural tokens.
//!
//! A target is fed to the decoder as `BOS y_1 … y_n EOS`. BOS and EOS are
//! not words of the text, so they are not in the tokenizer's vocabulary:
//! they take the two ids just past it, `BOS = V` and `EOS = V + 1` for a
//! target tokenizer of `V` tokens, and the model's target vocabulary is
//! `V + 2`. Sources need neither (the encoder reads the tokens alone), but a
//! shared vocabulary gives the encoder the same `V + 2` ids.

use crate::{Corpus, Pair, TextError, Tokenizer, TokenizerKind, TokenizerOptions};

/// How the display of a target id that is not text reads.
pub const BOS_TOKEN: &str = "<s>";
/// See [`BOS_TOKEN`].
pub const EOS_TOKEN: &str = "</s>";

/// Source and target tokenizers of a seq2seq model.
#[derive(Clone, Debug)]
pub struct PairTokenizers {
    /// Encodes the source side (the encoder's input).
    pub source: Tokenizer,
    /// Encodes and decodes the target side; BOS and EOS are its last two ids.
    pub target: Tokenizer,
    /// One tokenizer (and vocabulary) serves both sides.
    pub shared: bool,
}

impl PairTokenizers {
    /// Builds the tokenizers of `kind` from training pairs: separate source
    /// and target vocabularies, or one over both sides when `shared`.
    ///
    /// `extra` pairs (validation and test) only widen a char vocabulary, so
    /// held-out text never meets an unknown character; word and BPE
    /// vocabularies are learned from `train` alone.
    pub fn build(
        kind: TokenizerKind,
        options: &TokenizerOptions,
        train: &[Pair],
        extra: &[&[Pair]],
        shared: bool,
    ) -> Result<PairTokenizers, TextError> {
        let char_extra = |side: fn(&Pair) -> &str| -> Vec<&str> {
            if kind == TokenizerKind::Char {
                extra.iter().flat_map(|set| set.iter().map(side)).collect()
            } else {
                Vec::new()
            }
        };
        fn source_side(p: &Pair) -> &str {
            &p.0
        }
        fn target_side(p: &Pair) -> &str {
            &p.1
        }
        let build = |lines: Vec<&str>| {
            // One document: a second one would add a <doc> token no pair uses.
            let corpus = Corpus::from_text("pairs", &(lines.join("\n") + "\n"));
            Tokenizer::build_with(kind, &corpus, options)
        };
        let lines = |side: fn(&Pair) -> &str| -> Vec<&str> {
            let mut v: Vec<&str> = train.iter().map(side).collect();
            v.extend(char_extra(side));
            v
        };
        if shared {
            let mut both = lines(source_side);
            both.extend(lines(target_side));
            let tok = build(both)?;
            return Ok(PairTokenizers {
                source: tok.clone(),
                target: tok,
                shared: true,
            });
        }
        Ok(PairTokenizers {
            source: build(lines(source_side))?,
            target: build(lines(target_side))?,
            shared: false,
        })
    }

    /// The encoder's vocabulary size. With a shared vocabulary it counts
    /// BOS and EOS too (rows the encoder never reads), so that the encoder
    /// and decoder can share one embedding matrix.
    pub fn source_vocab_size(&self) -> usize {
        if self.shared {
            self.target_vocab_size()
        } else {
            self.source.vocab().len()
        }
    }

    /// The decoder's vocabulary size: the target tokenizer's plus BOS and EOS.
    pub fn target_vocab_size(&self) -> usize {
        self.target.vocab().len() + 2
    }

    /// The id the decoder reads first.
    pub fn bos(&self) -> u32 {
        self.target.vocab().len() as u32
    }

    /// The id that ends a target.
    pub fn eos(&self) -> u32 {
        self.bos() + 1
    }

    /// A source sentence's ids.
    pub fn encode_source(&self, text: &str) -> Result<Vec<u32>, TextError> {
        self.source.encode(text)
    }

    /// A target sentence as the decoder reads it: `BOS ids… EOS`.
    pub fn encode_target(&self, text: &str) -> Result<Vec<u32>, TextError> {
        let mut ids = vec![self.bos()];
        ids.extend(self.target.encode(text)?);
        ids.push(self.eos());
        Ok(ids)
    }

    /// Generated target ids as text; BOS and EOS (which a model may emit in
    /// the middle of an output) are left out.
    pub fn decode_target(&self, ids: &[u32]) -> String {
        let text: Vec<u32> = ids.iter().copied().filter(|&i| i < self.bos()).collect();
        self.target.decode(&text)
    }

    /// Each source id's token string, for labels (attention maps).
    pub fn source_labels(&self, ids: &[u32]) -> Vec<String> {
        ids.iter().map(|&i| label(&self.source, i)).collect()
    }

    /// Each target id's token string, BOS and EOS included, for labels.
    pub fn target_labels(&self, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&i| match i {
                i if i == self.bos() => BOS_TOKEN.to_string(),
                i if i == self.eos() => EOS_TOKEN.to_string(),
                i => label(&self.target, i),
            })
            .collect()
    }
}

/// What one id stands for, as readable text (a BPE token's bytes decoded).
fn label(tok: &Tokenizer, id: u32) -> String {
    match tok.kind() {
        TokenizerKind::Bpe | TokenizerKind::Byte => tok.decode(&[id]),
        _ => tok.vocab().token(id).unwrap_or("?").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs() -> Vec<Pair> {
        [
            ("I see.", "Je comprends."),
            ("Go on.", "Continue."),
            ("Wait!", "Attendez !"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    #[test]
    fn targets_are_framed_by_ids_past_the_vocabulary() {
        for kind in [
            TokenizerKind::Char,
            TokenizerKind::Byte,
            TokenizerKind::Word,
            TokenizerKind::Bpe,
        ] {
            let options = TokenizerOptions {
                vocab_size: (kind == TokenizerKind::Bpe).then_some(270),
                ..TokenizerOptions::default()
            };
            let t = PairTokenizers::build(kind, &options, &pairs(), &[], false).unwrap();
            let ids = t.encode_target("Je comprends.").unwrap();
            assert_eq!(ids[0], t.bos(), "{kind:?}");
            assert_eq!(*ids.last().unwrap(), t.eos());
            assert_eq!(t.target_vocab_size(), t.target.vocab().len() + 2);
            assert!(ids[1..ids.len() - 1].iter().all(|&i| i < t.bos()));
            assert_eq!(t.decode_target(&ids), "Je comprends.", "{kind:?}");
            let labels = t.target_labels(&ids);
            assert_eq!(labels[0], BOS_TOKEN);
            assert_eq!(labels.last().unwrap(), EOS_TOKEN);
        }
    }

    #[test]
    fn separate_vocabularies_differ_and_shared_covers_both_sides() {
        let p = pairs();
        let sep = PairTokenizers::build(
            TokenizerKind::Word,
            &TokenizerOptions::default(),
            &p,
            &[],
            false,
        )
        .unwrap();
        assert!(sep.source.vocab().id("comprends.").is_none());
        assert!(sep.target.vocab().id("comprends.").is_some());
        let shared = PairTokenizers::build(
            TokenizerKind::Word,
            &TokenizerOptions::default(),
            &p,
            &[],
            true,
        )
        .unwrap();
        assert!(shared.shared);
        assert_eq!(shared.source.vocab(), shared.target.vocab());
        assert!(shared.source.vocab().id("comprends.").is_some());
        assert!(shared.source.vocab().id("see.").is_some());
    }

    #[test]
    fn held_out_pairs_widen_only_a_char_vocabulary() {
        let held = vec![("Où ?".to_string(), "Wo?".to_string())];
        let char = PairTokenizers::build(
            TokenizerKind::Char,
            &Default::default(),
            &pairs(),
            &[&held],
            false,
        )
        .unwrap();
        assert!(char.encode_source("Où ?").is_ok());
        let word = PairTokenizers::build(
            TokenizerKind::Word,
            &Default::default(),
            &pairs(),
            &[&held],
            false,
        )
        .unwrap();
        assert!(word.source.vocab().id("Où").is_none());
    }
}
