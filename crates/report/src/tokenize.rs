//! sacreBLEU's `13a` tokenizer (the one of WMT's `mteval-v13a.pl`) and the
//! bits of Python string handling that BLEU and chrF depend on.

/// Whether Python's `str.split()` and `str.strip()` treat `c` as whitespace.
///
/// That is Unicode White_Space plus the four ASCII separators U+001C..U+001F,
/// which Python counts and Rust's [`char::is_whitespace`] does not. French
/// text needs the difference the other way round to be right: its narrow
/// no-break space (U+202F) before `!` and `?` separates words in both.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The words of `s` as Python's `s.split()` gives them.
pub(crate) fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|w| !w.is_empty())
}

/// `s` without trailing whitespace, as Python's `s.rstrip()`.
pub(crate) fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_py_space)
}

/// Tokenizes one line the way sacreBLEU's default `13a` tokenizer does,
/// returning the tokens joined by single spaces.
///
/// It drops `<skipped>` and hyphenated line breaks, turns newlines into
/// spaces, unescapes `&quot;`, `&amp;`, `&lt;` and `&gt;`, splits off ASCII
/// punctuation except `'` and `-` (so `don't` stays one token), splits off
/// `.` and `,` unless they sit between digits (so `3.14` and `1,000` stay
/// whole), and splits `-` off a preceding digit. Non-ASCII punctuation such
/// as `«` or `…` is left attached.
///
/// BLEU also strips trailing whitespace from each sentence before this (see
/// [`crate::corpus_bleu`]); this function alone is the tokenizer.
pub fn tokenize_13a(line: &str) -> String {
    let line = unescape(line);
    let mut chars: Vec<char> = Vec::with_capacity(line.len() + 2);
    chars.push(' ');
    chars.extend(line.chars());
    chars.push(' ');

    let chars = split_punctuation(&chars);
    // Python's re.sub applies each of these in turn, every one to the output
    // of the one before, so the order matters.
    let chars = rewrite_pairs(
        &chars,
        |a, b| !is_digit(a) && is_period_comma(b),
        |a, b| [a, ' ', b, ' '],
    );
    let chars = rewrite_pairs(
        &chars,
        |a, b| is_period_comma(a) && !is_digit(b),
        |a, b| [' ', a, ' ', b],
    );
    let chars = rewrite_pairs(
        &chars,
        |a, b| is_digit(a) && b == '-',
        |a, b| [a, ' ', b, ' '],
    );

    let spaced: String = chars.into_iter().collect();
    py_split(&spaced).collect::<Vec<_>>().join(" ")
}

/// The language-independent first step of `13a`, in its order: later
/// replacements see the output of earlier ones, so `&amp;lt;` becomes `<`.
fn unescape(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    line
}

/// Surrounds with spaces every character of the class
/// `[{-~[-` -&(-+:-@/]`: all ASCII punctuation but `'`, `,`, `-` and `.`
/// (and the space itself, which changes nothing once words are re-split).
fn split_punctuation(chars: &[char]) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len() * 2);
    for &c in chars {
        if is_13a_punct(c) {
            out.extend([' ', c, ' ']);
        } else {
            out.push(c);
        }
    }
    out
}

fn is_13a_punct(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

fn is_period_comma(c: char) -> bool {
    c == '.' || c == ','
}

/// Replaces non-overlapping two-character matches scanning left to right,
/// exactly as Python's `re.sub` does with a two-character pattern: after a
/// match the scan resumes behind it, so in `a..` only the first `.` is split
/// off by the period rule (the second one is caught by the next rule).
fn rewrite_pairs(
    chars: &[char],
    matches: impl Fn(char, char) -> bool,
    replace: impl Fn(char, char) -> [char; 4],
) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len() + chars.len() / 2);
    let mut i = 0;
    while i < chars.len() {
        match chars.get(i + 1) {
            Some(&next) if matches(chars[i], next) => {
                out.extend(replace(chars[i], next));
                i += 2;
            }
            _ => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_whitespace_is_exactly_pythons() {
        // Printed by: [hex(c) for c in range(0x110000) if chr(c).isspace()]
        let python: Vec<u32> = vec![
            0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000,
            0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028,
            0x2029, 0x202f, 0x205f, 0x3000,
        ];
        let ours: Vec<u32> = (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|&c| is_py_space(c))
            .map(u32::from)
            .collect();
        assert_eq!(ours, python);
    }

    #[test]
    fn punctuation_is_split_except_apostrophes_and_inner_dashes() {
        assert_eq!(
            tokenize_13a("Hello, world! Don't (re-)start \"now\"."),
            "Hello , world ! Don't ( re- ) start \" now \" ."
        );
    }

    #[test]
    fn numbers_keep_their_inner_periods_and_commas() {
        assert_eq!(
            tokenize_13a("It costs 1,000.50 dollars."),
            "It costs 1,000.50 dollars ."
        );
        assert_eq!(
            tokenize_13a("pi is 3.14, e is 2.72"),
            "pi is 3.14 , e is 2.72"
        );
        assert_eq!(tokenize_13a("pages 10-20"), "pages 10 - 20");
        assert_eq!(tokenize_13a("v.2"), "v . 2");
    }

    #[test]
    fn runs_of_periods_follow_python_non_overlapping_matches() {
        assert_eq!(tokenize_13a("Wait..."), "Wait . . .");
        assert_eq!(tokenize_13a("1..2"), "1 . . 2");
    }

    #[test]
    fn entities_are_unescaped_in_order_and_skips_removed() {
        assert_eq!(tokenize_13a("a &amp;lt; b"), "a < b");
        assert_eq!(tokenize_13a("&quot;x&quot; <skipped>y"), "\" x \" y");
        assert_eq!(tokenize_13a("multi-\nline\ntext"), "multiline text");
    }

    #[test]
    fn non_ascii_punctuation_stays_attached() {
        assert_eq!(tokenize_13a("«Ça va ?» dit-il…"), "«Ça va ? » dit-il…");
        assert_eq!(tokenize_13a("Cours\u{202f}!"), "Cours !");
    }

    #[test]
    fn empty_and_blank_lines_have_no_tokens() {
        assert_eq!(tokenize_13a(""), "");
        assert_eq!(tokenize_13a(" \t "), "");
    }
}
