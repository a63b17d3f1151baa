//! Stop sequences over streamed text.
//!
//! Generated text arrives a token at a time, and a stop string may span many
//! tokens. A [`StopMatcher`] therefore holds back any tail of the text that
//! could still grow into a stop string, so the user never sees part of one:
//! if the tail turns out not to be a stop, it is released with the next chunk
//! (or by [`StopMatcher::finish`]).
//!
//! The result does not depend on how the text was split into chunks: the
//! stop that *completes* first wins (and, of stops completing at the same
//! place, the longest), exactly as if the text had been fed one char at a time.
//! All slicing is on char boundaries, so multi-byte stops such as `"。"` or
//! `"👋"` work like any other.

use crate::sampler::SampleError;

/// Detects stop sequences in streamed text, holding back text that could be
/// the start of a stop sequence so the user never sees part of a stop string.
#[derive(Clone, Debug)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text received but not yet emitted: always a (possibly empty) proper
    /// prefix of some stop, never a whole one.
    held: String,
    stopped: bool,
}

impl StopMatcher {
    /// A matcher for `stops`. An empty list gives a matcher that never stops
    /// and never holds anything back; an empty stop string is an error (it
    /// would match before any text).
    pub fn new(stops: Vec<String>) -> Result<StopMatcher, SampleError> {
        if let Some(index) = stops.iter().position(String::is_empty) {
            return Err(SampleError::EmptyStop { index });
        }
        Ok(StopMatcher {
            stops,
            held: String::new(),
            stopped: false,
        })
    }

    /// Whether a stop sequence has been seen.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Feed newly decoded text; returns the text that is safe to emit now and
    /// whether generation should stop. When a stop sequence completes, the
    /// returned text is everything before it (the stop string itself is never
    /// emitted) and the flag is true. Once stopped, further input is ignored.
    pub fn push(&mut self, text: &str) -> (String, bool) {
        if self.stopped {
            return (String::new(), true);
        }
        self.held.push_str(text);
        if let Some(start) = self.first_match() {
            self.held.truncate(start);
            self.stopped = true;
            return (std::mem::take(&mut self.held), true);
        }
        let keep = self.partial_suffix_len();
        let emit: String = self.held.drain(..self.held.len() - keep).collect();
        (emit, false)
    }

    /// At the end of generation, the held-back text (which turned out not to
    /// be a stop). Empty if generation ended on a stop sequence.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Byte offset in `held` of the stop that completes first (longest on a
    /// tie), if any.
    fn first_match(&self) -> Option<usize> {
        self.stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()).map(|at| (at + s.len(), at)))
            .min()
            .map(|(_end, start)| start)
    }

    /// Length in bytes of the longest suffix of `held` that is a proper,
    /// non-empty prefix of some stop. Such a suffix starts on a char boundary
    /// because it is itself valid UTF-8 (which never starts mid-char).
    fn partial_suffix_len(&self) -> usize {
        self.stops
            .iter()
            .map(|s| longest_prefix_suffix(&self.held, s))
            .max()
            .unwrap_or(0)
    }
}

/// Longest proper prefix of `stop`, cut on a char boundary, that `text` ends
/// with (0 if none).
fn longest_prefix_suffix(text: &str, stop: &str) -> usize {
    // Each char's start offset (except the first's) is the byte length of a
    // proper prefix; walk them from the longest down.
    stop.char_indices()
        .rev()
        .map(|(at, _)| at)
        .filter(|&len| len > 0)
        .find(|&len| text.ends_with(&stop[..len]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(stops: &[&str]) -> StopMatcher {
        StopMatcher::new(stops.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    /// Feeds `chunks` until a stop (then `finish`es if none); returns
    /// (all emitted text, stopped).
    fn run(m: &mut StopMatcher, chunks: &[&str]) -> (String, bool) {
        let mut out = String::new();
        for c in chunks {
            let (emit, stopped) = m.push(c);
            out.push_str(&emit);
            if stopped {
                return (out, true);
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    fn chars(text: &str) -> Vec<String> {
        text.chars().map(String::from).collect()
    }

    #[test]
    fn stop_in_the_middle_of_one_chunk() {
        let mut m = matcher(&["END"]);
        assert_eq!(m.push("hello END world"), ("hello ".to_string(), true));
        assert!(m.is_stopped());
        assert_eq!(m.push("more"), (String::new(), true));
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn stop_split_across_one_char_chunks_is_never_emitted() {
        let mut m = matcher(&["\n\nUser:"]);
        let text = "Hi there.\n\nUser: ignored";
        let mut emitted = String::new();
        for c in chars(text) {
            let (emit, stopped) = m.push(&c);
            emitted.push_str(&emit);
            assert!(
                !emitted.contains('\n'),
                "emitted part of the stop: {emitted:?}"
            );
            if stopped {
                break;
            }
        }
        assert!(m.is_stopped());
        assert_eq!(emitted, "Hi there.");
    }

    #[test]
    fn holds_back_a_possible_prefix_and_releases_it_when_the_match_fails() {
        let mut m = matcher(&["STOP"]);
        assert_eq!(m.push("a ST"), ("a ".to_string(), false));
        assert_eq!(m.push("O"), (String::new(), false));
        // "STOx" can no longer become "STOP": all of it is released.
        assert_eq!(m.push("x"), ("STOx".to_string(), false));
        assert_eq!(m.push("STOP!"), (String::new(), true));
    }

    #[test]
    fn failed_partial_match_that_restarts_a_match() {
        // "aab": the first "a" is released only once "aa" cannot be a prefix.
        let mut m = matcher(&["ab"]);
        assert_eq!(m.push("a"), (String::new(), false));
        assert_eq!(m.push("a"), ("a".to_string(), false));
        assert_eq!(m.push("b"), (String::new(), true));
    }

    #[test]
    fn finish_returns_held_text() {
        let mut m = matcher(&["<end>"]);
        assert_eq!(m.push("text <en"), ("text ".to_string(), false));
        assert_eq!(m.finish(), "<en");
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn multiple_stops_first_completed_wins() {
        let mut m = matcher(&["\n\n", "THE END"]);
        assert_eq!(
            run(&mut m, &["once upon", " a time.", " THE", " END", "\n\n"]),
            ("once upon a time. ".to_string(), true)
        );
        let mut m = matcher(&["\n\n", "THE END"]);
        assert_eq!(
            run(&mut m, &["line\n", "\nTHE END"]),
            ("line".to_string(), true)
        );
        // Holding back covers the longest possible prefix of any stop.
        let mut m = matcher(&["abc", "bcd"]);
        assert_eq!(m.push("xab"), ("x".to_string(), false));
        assert_eq!(m.push("cd"), (String::new(), true));
    }

    #[test]
    fn result_does_not_depend_on_chunking() {
        let stops = ["abcd", "bc", "。", "zz"];
        let text = "xyz abcd bc";
        let whole = run(&mut matcher(&stops), &[text]);
        let split: Vec<String> = chars(text);
        let split: Vec<&str> = split.iter().map(String::as_str).collect();
        assert_eq!(run(&mut matcher(&stops), &split), whole);
        // "bc" completes (at byte 7) before "abcd" would (at byte 9).
        assert_eq!(whole, ("xyz a".to_string(), true));
    }

    #[test]
    fn multi_byte_stops() {
        let mut m = matcher(&["。", "👋👋"]);
        assert_eq!(
            m.push("こんにちは。さようなら"),
            ("こんにちは".to_string(), true)
        );

        let mut m = matcher(&["👋👋"]);
        assert_eq!(m.push("hi 👋"), ("hi ".to_string(), false));
        assert_eq!(m.push("x"), ("👋x".to_string(), false));
        assert_eq!(m.push("é👋"), ("é".to_string(), false));
        assert_eq!(m.push("👋 bye"), (String::new(), true));

        // Char-by-char over a mixed-width stop.
        let mut m = matcher(&["é。👋"]);
        let pieces = chars("café。👋!");
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        assert_eq!(run(&mut m, &pieces), ("caf".to_string(), true));
    }

    #[test]
    fn a_stop_sharing_bytes_but_not_chars_does_not_match() {
        // "é" is C3 A9; "é" never ends with the first byte of "ë" (C3 AB), and
        // holding back works on whole chars only.
        let mut m = matcher(&["ë!"]);
        assert_eq!(run(&mut m, &["é", "!"]), ("é!".to_string(), false));
    }

    #[test]
    fn no_stops_passes_everything_through() {
        let mut m = matcher(&[]);
        assert_eq!(m.push("anything"), ("anything".to_string(), false));
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn empty_stop_string_is_rejected_naming_its_position() {
        let err = StopMatcher::new(vec!["ok".into(), String::new()]).unwrap_err();
        assert_eq!(err, SampleError::EmptyStop { index: 1 });
        assert_eq!(
            err.to_string(),
            "stop string 1 is empty (stop strings must not be empty)"
        );
    }
}
