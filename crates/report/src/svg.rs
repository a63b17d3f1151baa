//! Small helpers shared by the SVG writers: escaping, number formatting and
//! axis ticks.

use std::fmt::Write;

/// The font every picture uses; generic so that any SVG viewer has one.
pub(crate) const FONT: &str = "sans-serif";

/// Text made safe for XML content and for double- or single-quoted
/// attribute values.
///
/// Characters XML 1.0 forbids even when escaped (most ASCII control
/// characters, U+FFFE, U+FFFF) become U+FFFD, so a byte-level token such as
/// `\u{1}` still gives a well-formed file.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// XML 1.0's `Char` production.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Opens an SVG document of the given size with a white background.
pub(crate) fn open(width: f64, height: f64) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"{FONT}\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n",
        w = num(width),
        h = num(height),
    );
    svg
}

/// Closes what [`open`] opened.
pub(crate) fn close(svg: &mut String) {
    svg.push_str("</svg>\n");
}

/// How text is anchored at its x coordinate.
#[derive(Clone, Copy)]
pub(crate) enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn as_str(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// One line of text. `extra` holds further attributes (already escaped), or is empty.
pub(crate) struct Text<'a> {
    pub x: f64,
    pub y: f64,
    pub size: f64,
    pub anchor: Anchor,
    /// Degrees, counter-clockwise when negative, around (x, y).
    pub rotate: f64,
    pub extra: &'a str,
}

impl Text<'_> {
    /// Appends the `<text>` element for `content` (unescaped).
    pub(crate) fn write(&self, svg: &mut String, content: &str) {
        let _ = write!(
            svg,
            "<text x=\"{x}\" y=\"{y}\" font-size=\"{s}\" text-anchor=\"{a}\"",
            x = num(self.x),
            y = num(self.y),
            s = num(self.size),
            a = self.anchor.as_str(),
        );
        if self.rotate != 0.0 {
            let _ = write!(
                svg,
                " transform=\"rotate({} {} {})\"",
                num(self.rotate),
                num(self.x),
                num(self.y)
            );
        }
        if !self.extra.is_empty() {
            svg.push(' ');
            svg.push_str(self.extra);
        }
        let _ = writeln!(svg, ">{}</text>", escape(content));
    }
}

/// A coordinate or size with at most two decimals and no trailing zeros,
/// to keep files small and diffs readable.
pub(crate) fn num(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Roughly how wide `text` is at `size` px in a sans-serif font; SVG has no
/// text measurement, and overestimating a little only costs margin.
pub(crate) fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.6
}

/// Evenly spaced round tick values covering `[lo, hi]`: the step is 1, 2 or
/// 5 times a power of ten, chosen so there are at most about `target` ticks.
/// The returned range is widened outwards to whole steps.
pub(crate) struct Ticks {
    pub lo: f64,
    pub hi: f64,
    pub step: f64,
    pub values: Vec<f64>,
}

impl Ticks {
    pub(crate) fn new(lo: f64, hi: f64, target: usize) -> Ticks {
        let (lo, hi) = widen_if_flat(lo, hi);
        let target = target.max(1) as f64;
        // Divided before subtracting so that huge ranges do not overflow.
        let step = nice_step(hi / target - lo / target);
        // The slack keeps float error (7 * 0.2 = 1.4000000000000001) from
        // adding a whole extra step at either end.
        let first = (lo / step + 1e-9).floor();
        let last = (hi / step - 1e-9).ceil();
        // By the choice of `step` there are at most about 2 * target of them;
        // the cap only guards against ranges near the limits of f64.
        let count = ((last - first) as usize).min(MAX_TICKS);
        let values: Vec<f64> = (0..=count).map(|i| (first + i as f64) * step).collect();
        Ticks {
            lo: first * step,
            hi: last * step,
            step,
            values,
        }
    }

    /// `v` as a tick label: as many decimals as the step needs, and `k`/`M`
    /// suffixes for large round values such as step counts.
    pub(crate) fn label(&self, v: f64) -> String {
        // One unit for the whole axis, so that 500 and 1000 are not "500" and "1.0k".
        let largest = self.lo.abs().max(self.hi.abs());
        let (scaled, step, suffix) = if largest >= 1e7 && self.step >= 1e5 {
            (v / 1e6, self.step / 1e6, "M")
        } else if largest >= 1e4 && self.step >= 1e2 {
            (v / 1e3, self.step / 1e3, "k")
        } else {
            (v, self.step, "")
        };
        // Zero needs no unit: "0", not "0k" or "0.0".
        if scaled.abs() < step * 1e-9 {
            return "0".to_string();
        }
        let decimals = (-step.log10().floor()).clamp(0.0, 10.0) as usize;
        let text = format!("{scaled:.decimals$}{suffix}");
        // Rounding can leave "-0" for values that are zero up to float error.
        match text.strip_prefix('-') {
            Some(rest) if rest.chars().all(|c| matches!(c, '0' | '.')) => rest.to_string(),
            _ => text,
        }
    }
}

const MAX_TICKS: usize = 100;

/// A range with room in it: a single value gets a unit of space around it.
fn widen_if_flat(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        (lo, hi)
    } else {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - pad, hi + pad)
    }
}

fn nice_step(raw: f64) -> f64 {
    let raw = if raw.is_finite() && raw > 0.0 {
        raw
    } else {
        1.0
    };
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_replaces_forbidden_characters() {
        assert_eq!(
            escape("<a & 'b' \"c\">"),
            "&lt;a &amp; &apos;b&apos; &quot;c&quot;&gt;"
        );
        assert_eq!(escape("x\u{1}y\u{FFFF}é"), "x\u{FFFD}y\u{FFFD}é");
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(12.0), "12");
        assert_eq!(num(12.345), "12.35");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(f64::NAN), "0");
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let t = Ticks::new(0.0, 1234.0, 5);
        assert_eq!(t.step, 500.0);
        assert_eq!(t.values, vec![0.0, 500.0, 1000.0, 1500.0]);
        assert_eq!(t.label(1500.0), "1500");
        let t = Ticks::new(0.0, 30_000.0, 6);
        assert_eq!(t.label(5000.0), "5k");
        assert_eq!(t.label(0.0), "0");
        let t = Ticks::new(0.0, 10_000.0, 20);
        assert_eq!(t.label(2500.0), "2.5k");
        let t = Ticks::new(1.23, 1.87, 6);
        assert_eq!(t.step, 0.2);
        assert_eq!(t.label(t.values[0]), "1.2");
        assert!(t.lo <= 1.23 && t.hi >= 1.87);
        let t = Ticks::new(-0.3, 0.3, 6);
        assert!(t.values.iter().all(|v| t.label(*v) != "-0.0"));
    }

    #[test]
    fn flat_or_degenerate_ranges_still_get_ticks() {
        let t = Ticks::new(2.0, 2.0, 5);
        assert!(t.lo < 2.0 && t.hi > 2.0 && t.values.len() >= 2);
        let t = Ticks::new(0.0, 0.0, 5);
        assert!(t.lo < 0.0 && t.hi > 0.0);
    }
}
