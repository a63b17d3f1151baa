//! Loss curves: one or more series of (step, loss) points as an SVG line plot.

use std::fmt::Write;

use crate::svg::{self, num, text_width, Anchor, Text, Ticks};

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
const TOP: f64 = 44.0;
const RIGHT: f64 = 24.0;
const BOTTOM: f64 = 56.0;
const TICK_FONT: f64 = 11.0;
const LABEL_FONT: f64 = 13.0;
const TITLE_FONT: f64 = 16.0;
const LEGEND_FONT: f64 = 12.0;

/// Matplotlib's default colours ("tab10"): distinct, and familiar to readers.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// One named curve of a plot: (x, y) points, usually (step, loss), in the
/// order they are to be joined.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Shown in the legend.
    pub name: String,
    /// The points; those with a NaN or infinite coordinate are left out.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series called `name` through `points`.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
        }
    }
}

/// An SVG line plot of `series` with a title, labelled axes with round
/// ticks, grid lines and a legend (when there are series).
///
/// Points with a NaN or infinite coordinate are skipped and the line joins
/// the points around them; the legend says how many a series lost, so a
/// diverged run does not look like a healthy one. A plot with no finite
/// points at all still comes out, with empty axes and a note.
pub fn loss_curve_svg(series: &[Series], title: &str, x_label: &str, y_label: &str) -> String {
    let curves: Vec<Curve> = series.iter().map(Curve::new).collect();
    let (x_ticks, y_ticks) = axes_ticks(&curves);
    let widest_y = y_ticks
        .values
        .iter()
        .map(|&v| text_width(&y_ticks.label(v), TICK_FONT))
        .fold(0.0, f64::max);
    let left = 2.0 * LABEL_FONT + widest_y + 14.0;
    let frame = Frame {
        left,
        top: TOP,
        width: WIDTH - left - RIGHT,
        height: HEIGHT - TOP - BOTTOM,
        x: x_ticks,
        y: y_ticks,
    };

    let mut out = svg::open(WIDTH, HEIGHT);
    write_titles(&mut out, &frame, title, x_label, y_label);
    write_grid_and_ticks(&mut out, &frame);
    for (i, curve) in curves.iter().enumerate() {
        write_curve(&mut out, &frame, curve, PALETTE[i % PALETTE.len()]);
    }
    if curves.iter().all(|c| c.points.is_empty()) {
        let note = Text {
            x: frame.left + frame.width / 2.0,
            y: frame.top + frame.height / 2.0,
            size: LABEL_FONT,
            anchor: Anchor::Middle,
            rotate: 0.0,
            extra: "fill=\"#888\"",
        };
        note.write(&mut out, "no finite values to plot");
    }
    write_legend(&mut out, &frame, &curves);
    svg::close(&mut out);
    out
}

/// A series with its non-finite points taken out.
struct Curve<'a> {
    name: &'a str,
    points: Vec<(f64, f64)>,
    skipped: usize,
}

impl<'a> Curve<'a> {
    fn new(series: &'a Series) -> Self {
        let points: Vec<(f64, f64)> = series
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        Curve {
            name: &series.name,
            skipped: series.points.len() - points.len(),
            points,
        }
    }

    fn legend_label(&self) -> String {
        match self.skipped {
            0 => self.name.to_string(),
            1 => format!("{} (1 NaN/inf point skipped)", self.name),
            n => format!("{} ({n} NaN/inf points skipped)", self.name),
        }
    }
}

/// The plot area in pixels and the data range it shows.
struct Frame {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    x: Ticks,
    y: Ticks,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        self.left + (x - self.x.lo) / (self.x.hi - self.x.lo) * self.width
    }

    fn py(&self, y: f64) -> f64 {
        self.top + self.height - (y - self.y.lo) / (self.y.hi - self.y.lo) * self.height
    }

    fn bottom(&self) -> f64 {
        self.top + self.height
    }

    fn right(&self) -> f64 {
        self.left + self.width
    }
}

fn axes_ticks(curves: &[Curve]) -> (Ticks, Ticks) {
    let all = || curves.iter().flat_map(|c| c.points.iter().copied());
    let range = |values: &mut dyn Iterator<Item = f64>| {
        values.fold(None, |acc: Option<(f64, f64)>, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
    };
    let (x_lo, x_hi) = range(&mut all().map(|p| p.0)).unwrap_or((0.0, 1.0));
    let (y_lo, y_hi) = range(&mut all().map(|p| p.1)).unwrap_or((0.0, 1.0));
    (Ticks::new(x_lo, x_hi, 8), Ticks::new(y_lo, y_hi, 6))
}

fn write_titles(out: &mut String, frame: &Frame, title: &str, x_label: &str, y_label: &str) {
    let center_x = frame.left + frame.width / 2.0;
    let heading = Text {
        x: center_x,
        y: TOP / 2.0 + TITLE_FONT / 3.0,
        size: TITLE_FONT,
        anchor: Anchor::Middle,
        rotate: 0.0,
        extra: "font-weight=\"bold\"",
    };
    heading.write(out, title);
    let x_axis = Text {
        x: center_x,
        y: HEIGHT - LABEL_FONT,
        size: LABEL_FONT,
        anchor: Anchor::Middle,
        rotate: 0.0,
        extra: "",
    };
    x_axis.write(out, x_label);
    let y_axis = Text {
        x: LABEL_FONT * 1.3,
        y: frame.top + frame.height / 2.0,
        size: LABEL_FONT,
        anchor: Anchor::Middle,
        rotate: -90.0,
        extra: "",
    };
    y_axis.write(out, y_label);
}

fn write_grid_and_ticks(out: &mut String, frame: &Frame) {
    out.push_str("<g stroke=\"#e6e6e6\" stroke-width=\"1\">\n");
    for &v in &frame.x.values {
        let x = num(frame.px(v));
        let _ = writeln!(
            out,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/>",
            num(frame.top),
            num(frame.bottom())
        );
    }
    for &v in &frame.y.values {
        let y = num(frame.py(v));
        let _ = writeln!(
            out,
            "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/>",
            num(frame.left),
            num(frame.right())
        );
    }
    out.push_str("</g>\n");

    let _ = writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>",
        num(frame.left),
        num(frame.top),
        num(frame.width),
        num(frame.height)
    );
    out.push_str("<g stroke=\"#444\">\n");
    for &v in &frame.x.values {
        let x = num(frame.px(v));
        let (y1, y2) = (num(frame.bottom()), num(frame.bottom() + 5.0));
        let _ = writeln!(out, "<line x1=\"{x}\" y1=\"{y1}\" x2=\"{x}\" y2=\"{y2}\"/>");
    }
    for &v in &frame.y.values {
        let y = num(frame.py(v));
        let (x1, x2) = (num(frame.left - 5.0), num(frame.left));
        let _ = writeln!(out, "<line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\"/>");
    }
    out.push_str("</g>\n");

    for &v in &frame.x.values {
        let label = Text {
            x: frame.px(v),
            y: frame.bottom() + 8.0 + TICK_FONT,
            size: TICK_FONT,
            anchor: Anchor::Middle,
            rotate: 0.0,
            extra: "fill=\"#333\"",
        };
        label.write(out, &frame.x.label(v));
    }
    for &v in &frame.y.values {
        let label = Text {
            x: frame.left - 8.0,
            y: frame.py(v) + TICK_FONT / 3.0,
            size: TICK_FONT,
            anchor: Anchor::End,
            rotate: 0.0,
            extra: "fill=\"#333\"",
        };
        label.write(out, &frame.y.label(v));
    }
}

fn write_curve(out: &mut String, frame: &Frame, curve: &Curve, color: &str) {
    match curve.points.as_slice() {
        [] => {}
        // A polyline through one point draws nothing; show the point itself.
        [(x, y)] => {
            let _ = writeln!(
                out,
                "<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{color}\"/>",
                num(frame.px(*x)),
                num(frame.py(*y))
            );
        }
        points => {
            let mut coords = String::with_capacity(points.len() * 14);
            for &(x, y) in points {
                let _ = write!(coords, "{},{} ", num(frame.px(x)), num(frame.py(y)));
            }
            let _ = writeln!(
                out,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" \
                 stroke-width=\"1.5\" stroke-linejoin=\"round\"/>",
                coords.trim_end()
            );
        }
    }
}

/// The legend sits in the top-right corner of the plot, where falling loss
/// curves leave room, on a white box so grid lines do not run through it.
fn write_legend(out: &mut String, frame: &Frame, curves: &[Curve]) {
    if curves.is_empty() {
        return;
    }
    let labels: Vec<String> = curves.iter().map(Curve::legend_label).collect();
    let row = LEGEND_FONT + 6.0;
    let text_w = labels
        .iter()
        .map(|l| text_width(l, LEGEND_FONT))
        .fold(0.0, f64::max);
    let width = (text_w + 44.0).min(frame.width - 16.0);
    let height = row * labels.len() as f64 + 8.0;
    let x = frame.right() - width - 8.0;
    let y = frame.top + 8.0;
    let _ = writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"white\" \
         fill-opacity=\"0.9\" stroke=\"#bbb\"/>",
        num(x),
        num(y),
        num(width),
        num(height)
    );
    for (i, label) in labels.iter().enumerate() {
        let center = y + 4.0 + row * (i as f64 + 0.5);
        let color = PALETTE[i % PALETTE.len()];
        let _ = writeln!(
            out,
            "<line x1=\"{}\" y1=\"{c}\" x2=\"{}\" y2=\"{c}\" stroke=\"{color}\" stroke-width=\"2.5\"/>",
            num(x + 8.0),
            num(x + 30.0),
            c = num(center)
        );
        let text = Text {
            x: x + 36.0,
            y: center + LEGEND_FONT / 3.0,
            size: LEGEND_FONT,
            anchor: Anchor::Start,
            rotate: 0.0,
            extra: "class=\"legend\"",
        };
        text.write(out, label);
    }
}
