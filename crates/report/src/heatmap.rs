//! Attention heatmaps: how much each target token looked at each source token.

use std::fmt::Write;

use crate::svg::{self, escape, num, text_width, Anchor, Text, Ticks};
use crate::ReportError;

/// ColorBrewer's 9-class "Blues", light to dark: near-zero weights, which
/// are most of an attention map, stay close to the white background.
const BLUES: [[u8; 3]; 9] = [
    [0xf7, 0xfb, 0xff],
    [0xde, 0xeb, 0xf7],
    [0xc6, 0xdb, 0xef],
    [0x9e, 0xca, 0xe1],
    [0x6b, 0xae, 0xd6],
    [0x42, 0x92, 0xc6],
    [0x21, 0x71, 0xb5],
    [0x08, 0x51, 0x9c],
    [0x08, 0x30, 0x6b],
];
/// Cells whose weight is NaN or infinite.
const NO_VALUE: &str = "#d9d9d9";
/// Labels longer than this many characters are cut, with an ellipsis.
const MAX_LABEL_CHARS: usize = 24;
const CAPTION_FONT: f64 = 12.0;
const BAR_WIDTH: f64 = 14.0;
const GAP: f64 = 6.0;
const SOURCE_CAPTION: &str = "source →";
const TARGET_CAPTION: &str = "target ↓";

/// An SVG heatmap of attention `weights`: one column per source token (left
/// to right, labelled along the top), one row per target token (top to
/// bottom, labelled on the left), and a colour scale on the right.
///
/// `weights` is row-major `[tgt_tokens.len(), src_tokens.len()]`: row `t`
/// holds the weights target token `t` gave each source token. The scale runs
/// from 0 to 1 when all weights lie there (as softmax outputs do) and from
/// the smallest to the largest weight otherwise. Source labels are turned
/// 45 or 90 degrees when they do not fit across their column; blank tokens
/// are shown as `␣`, `↵` or `∅`, and each cell has a tooltip with its
/// tokens and weight. NaN or infinite weights are drawn grey.
pub fn attention_heatmap_svg(
    src_tokens: &[String],
    tgt_tokens: &[String],
    weights: &[f32],
) -> Result<String, ReportError> {
    let (cols, rows) = (src_tokens.len(), tgt_tokens.len());
    if cols.checked_mul(rows) != Some(weights.len()) {
        return Err(ReportError::WeightsShape {
            src: cols,
            tgt: rows,
            got: weights.len(),
        });
    }
    let src: Vec<String> = src_tokens.iter().map(|t| display_token(t)).collect();
    let tgt: Vec<String> = tgt_tokens.iter().map(|t| display_token(t)).collect();
    let layout = Layout::new(&src, &tgt);
    let scale = Scale::new(weights);

    let mut out = svg::open(layout.width, layout.height);
    write_captions(&mut out, &layout);
    write_labels(&mut out, &layout, &src, &tgt);
    if cols == 0 || rows == 0 {
        let note = Text {
            x: layout.left + 4.0,
            y: layout.top + CAPTION_FONT,
            size: CAPTION_FONT,
            anchor: Anchor::Start,
            rotate: 0.0,
            extra: "fill=\"#888\"",
        };
        note.write(&mut out, "no attention weights");
    }
    write_cells(&mut out, &layout, src_tokens, tgt_tokens, weights, &scale);
    write_color_bar(&mut out, &layout, &scale);
    svg::close(&mut out);
    Ok(out)
}

/// Makes tokens that would be invisible visible, and cuts long ones.
fn display_token(token: &str) -> String {
    if token.is_empty() {
        return "∅".to_string();
    }
    let shown: String = if token.chars().all(char::is_whitespace) {
        token
            .chars()
            .map(|c| match c {
                ' ' => '␣',
                '\n' => '↵',
                '\t' => '⇥',
                _ => '·',
            })
            .collect()
    } else {
        token.to_string()
    };
    if shown.chars().count() > MAX_LABEL_CHARS {
        let cut: String = shown.chars().take(MAX_LABEL_CHARS - 1).collect();
        cut + "…"
    } else {
        shown
    }
}

/// How the source labels are turned.
#[derive(Clone, Copy, PartialEq)]
enum Orientation {
    Across,
    Slanted,
    Upright,
}

impl Orientation {
    fn degrees(self) -> f64 {
        match self {
            Orientation::Across => 0.0,
            Orientation::Slanted => -45.0,
            Orientation::Upright => -90.0,
        }
    }
}

/// Sizes and positions in pixels.
struct Layout {
    cell: f64,
    font: f64,
    orientation: Orientation,
    /// Left and top edges of the grid of cells.
    left: f64,
    top: f64,
    cols: usize,
    rows: usize,
    width: f64,
    height: f64,
}

impl Layout {
    fn new(src: &[String], tgt: &[String]) -> Layout {
        let (cols, rows) = (src.len(), tgt.len());
        // Cells shrink as sentences grow so the picture stays about 500 px,
        // but not below what a label needs to stay legible.
        let cell = (520.0 / cols.max(rows).max(1) as f64).clamp(14.0, 40.0);
        let font = (cell * 0.55).clamp(9.0, 13.0);
        let widest = |labels: &[String]| {
            labels
                .iter()
                .map(|l| text_width(l, font))
                .fold(0.0, f64::max)
        };
        let (src_w, tgt_w) = (widest(src), widest(tgt));

        let orientation = if src_w <= cell - 2.0 {
            Orientation::Across
        } else if cell * std::f64::consts::FRAC_1_SQRT_2 >= font * 1.2 {
            Orientation::Slanted
        } else {
            Orientation::Upright
        };
        let label_height = match orientation {
            Orientation::Across => font,
            Orientation::Slanted => src_w * std::f64::consts::FRAC_1_SQRT_2 + font,
            Orientation::Upright => src_w,
        };
        let left = tgt_w.max(text_width(TARGET_CAPTION, CAPTION_FONT)) + 8.0 + GAP;
        let top = CAPTION_FONT * 2.0 + label_height + GAP;
        let grid_right = left + cols as f64 * cell;
        let grid_bottom = top + rows as f64 * cell;

        // Slanted labels of the last columns reach out past the grid.
        let slant_reach = if orientation == Orientation::Slanted {
            (0..cols)
                .map(|i| {
                    let center = left + (i as f64 + 0.5) * cell;
                    center + text_width(&src[i], font) * std::f64::consts::FRAC_1_SQRT_2
                })
                .fold(0.0, f64::max)
        } else {
            0.0
        };
        let bar_right = grid_right + 3.0 * GAP + BAR_WIDTH + GAP + text_width("0.00", 11.0);
        let bar_bottom = top + bar_height(rows, cell);
        Layout {
            cell,
            font,
            orientation,
            left,
            top,
            cols,
            rows,
            width: bar_right.max(slant_reach).max(left + 160.0) + 2.0 * GAP,
            height: grid_bottom.max(bar_bottom).max(top + 2.0 * CAPTION_FONT) + 2.0 * GAP,
        }
    }

    fn grid_width(&self) -> f64 {
        self.cols as f64 * self.cell
    }

    fn grid_height(&self) -> f64 {
        self.rows as f64 * self.cell
    }
}

/// The colour bar is as tall as the grid, within limits that keep its
/// labels apart and the picture compact.
fn bar_height(rows: usize, cell: f64) -> f64 {
    (rows as f64 * cell).clamp(100.0, 320.0)
}

/// Maps weights to colours.
struct Scale {
    lo: f64,
    hi: f64,
}

impl Scale {
    fn new(weights: &[f32]) -> Scale {
        let finite = weights.iter().filter(|w| w.is_finite()).map(|&w| w as f64);
        let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), w| {
            (lo.min(w), hi.max(w))
        });
        if lo > hi || (lo >= 0.0 && hi <= 1.0) {
            Scale { lo: 0.0, hi: 1.0 }
        } else if lo == hi {
            Scale { lo, hi: lo + 1.0 }
        } else {
            Scale { lo, hi }
        }
    }

    fn color(&self, w: f32) -> String {
        if !w.is_finite() {
            return NO_VALUE.to_string();
        }
        let t = ((w as f64 - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0);
        let pos = t * (BLUES.len() - 1) as f64;
        let i = (pos.floor() as usize).min(BLUES.len() - 2);
        let frac = pos - i as f64;
        let (a, b) = (BLUES[i], BLUES[i + 1]);
        let mix = |k: usize| (a[k] as f64 + (b[k] as f64 - a[k] as f64) * frac).round() as u8;
        format!("#{:02x}{:02x}{:02x}", mix(0), mix(1), mix(2))
    }
}

fn write_captions(out: &mut String, layout: &Layout) {
    let source = Text {
        x: layout.left,
        y: CAPTION_FONT * 1.3,
        size: CAPTION_FONT,
        anchor: Anchor::Start,
        rotate: 0.0,
        extra: "fill=\"#666\"",
    };
    source.write(out, SOURCE_CAPTION);
    // Above the target labels, in the corner the source labels leave free.
    let target = Text {
        x: layout.left - GAP,
        y: layout.top - GAP,
        size: CAPTION_FONT,
        anchor: Anchor::End,
        rotate: 0.0,
        extra: "fill=\"#666\"",
    };
    target.write(out, TARGET_CAPTION);
}

fn write_labels(out: &mut String, layout: &Layout, src: &[String], tgt: &[String]) {
    let font = layout.font;
    for (i, label) in src.iter().enumerate() {
        let center = layout.left + (i as f64 + 0.5) * layout.cell;
        let (x, anchor) = match layout.orientation {
            Orientation::Across => (center, Anchor::Middle),
            Orientation::Slanted => (center, Anchor::Start),
            // Glyphs sit above their baseline; moving the baseline right by a
            // third of the font centres the turned text on its column.
            Orientation::Upright => (center + font / 3.0, Anchor::Start),
        };
        let text = Text {
            x,
            y: layout.top - GAP,
            size: font,
            anchor,
            rotate: layout.orientation.degrees(),
            extra: "class=\"src-token\"",
        };
        text.write(out, label);
    }
    for (j, label) in tgt.iter().enumerate() {
        let text = Text {
            x: layout.left - GAP,
            y: layout.top + (j as f64 + 0.5) * layout.cell + font / 3.0,
            size: font,
            anchor: Anchor::End,
            rotate: 0.0,
            extra: "class=\"tgt-token\"",
        };
        text.write(out, label);
    }
}

fn write_cells(
    out: &mut String,
    layout: &Layout,
    src: &[String],
    tgt: &[String],
    weights: &[f32],
    scale: &Scale,
) {
    let cell = num(layout.cell);
    out.push_str("<g>\n");
    for (j, row) in weights.chunks(layout.cols.max(1)).enumerate() {
        for (i, &w) in row.iter().enumerate() {
            let x = layout.left + i as f64 * layout.cell;
            let y = layout.top + j as f64 * layout.cell;
            let _ = writeln!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{cell}\" height=\"{cell}\" fill=\"{}\">\
                 <title>{} → {}: {}</title></rect>",
                num(x),
                num(y),
                scale.color(w),
                escape(&src[i]),
                escape(&tgt[j]),
                format_weight(w)
            );
        }
    }
    out.push_str("</g>\n");
    if layout.cols > 0 && layout.rows > 0 {
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>",
            num(layout.left),
            num(layout.top),
            num(layout.grid_width()),
            num(layout.grid_height())
        );
    }
}

fn format_weight(w: f32) -> String {
    if w.is_finite() {
        format!("{w:.3}")
    } else {
        format!("{w}")
    }
}

fn write_color_bar(out: &mut String, layout: &Layout, scale: &Scale) {
    let x = layout.left + layout.grid_width() + 3.0 * GAP;
    let top = layout.top;
    let height = bar_height(layout.rows, layout.cell);
    // Bottom to top, light to dark, as the values grow.
    out.push_str(
        "<defs><linearGradient id=\"attention-scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\n",
    );
    for (k, [r, g, b]) in BLUES.iter().enumerate() {
        let offset = k as f64 / (BLUES.len() - 1) as f64;
        let _ = writeln!(
            out,
            "<stop offset=\"{}\" stop-color=\"#{r:02x}{g:02x}{b:02x}\"/>",
            num(offset)
        );
    }
    out.push_str("</linearGradient></defs>\n");
    let _ = writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"url(#attention-scale)\" stroke=\"#888\"/>",
        num(x),
        num(top),
        num(BAR_WIDTH),
        num(height)
    );

    let ticks = Ticks::new(scale.lo, scale.hi, 5);
    let span = scale.hi - scale.lo;
    for &v in &ticks.values {
        // Ticks may overshoot the scale to reach round numbers; keep those inside it.
        if v < scale.lo - span * 1e-9 || v > scale.hi + span * 1e-9 {
            continue;
        }
        let y = top + height - (v - scale.lo) / span * height;
        let _ = writeln!(
            out,
            "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#444\"/>",
            num(x + BAR_WIDTH),
            num(x + BAR_WIDTH + 4.0),
            y = num(y)
        );
        let label = Text {
            x: x + BAR_WIDTH + GAP + 1.0,
            y: y + 11.0 / 3.0,
            size: 11.0,
            anchor: Anchor::Start,
            rotate: 0.0,
            extra: "fill=\"#333\"",
        };
        label.write(out, &ticks.label(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_and_long_tokens_are_made_readable() {
        assert_eq!(display_token(""), "∅");
        assert_eq!(display_token(" "), "␣");
        assert_eq!(display_token("\n"), "↵");
        assert_eq!(display_token("chat"), "chat");
        let long = "a".repeat(40);
        let shown = display_token(&long);
        assert_eq!(shown.chars().count(), MAX_LABEL_CHARS);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn scale_is_unit_for_probabilities_and_spans_other_values() {
        let s = Scale::new(&[0.1, 0.9]);
        assert_eq!((s.lo, s.hi), (0.0, 1.0));
        assert_eq!(s.color(0.0), "#f7fbff");
        assert_eq!(s.color(1.0), "#08306b");
        assert_eq!(s.color(f32::NAN), NO_VALUE);
        let s = Scale::new(&[-2.0, 3.0, f32::INFINITY]);
        assert_eq!((s.lo, s.hi), (-2.0, 3.0));
        let s = Scale::new(&[5.0, 5.0]);
        assert!(s.hi > s.lo);
    }
}
