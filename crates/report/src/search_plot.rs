//! A hyper-parameter search as one SVG: parallel coordinates of every
//! trial's configuration and validation loss (as Optuna's
//! `plot_parallel_coordinate`), above the validation curves of all trials.
//! Both colour a trial by its loss: dark for the best, light for the worst;
//! trials stopped early are dashed.

use std::fmt::Write;

use crate::svg::{self, num, Anchor, Text, Ticks};

const WIDTH: f64 = 900.0;
const PANEL: f64 = 330.0;
const TOP: f64 = 56.0;
const GAP: f64 = 70.0;
const SIDE: f64 = 70.0;
const FONT: f64 = 12.0;

/// One axis of the parallel coordinates: a parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchAxis {
    /// The parameter's name.
    pub name: String,
    /// Drawn on a log scale.
    pub log: bool,
    /// Names of the values of a categorical parameter (a trial's value is
    /// then the index); empty for a numeric one.
    pub categories: Vec<String>,
}

/// One trial of a search.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchTrial {
    /// Its value on each axis, in order (NaN when it has none).
    pub values: Vec<f64>,
    /// Its validation loss, if it has one.
    pub loss: Option<f64>,
    /// Stopped early (drawn dashed).
    pub pruned: bool,
    /// Its validation curve: (tokens trained, loss) points.
    pub curve: Vec<(f64, f64)>,
}

/// The SVG of a search: parallel coordinates over `axes` and a last axis of
/// validation loss, then the trials' validation curves against `x_label`.
pub fn search_svg(
    axes: &[SearchAxis],
    trials: &[SearchTrial],
    title: &str,
    x_label: &str,
) -> String {
    let height = TOP + PANEL + GAP + PANEL + 50.0;
    let mut s = svg::open(WIDTH, height);
    Text {
        x: WIDTH / 2.0,
        y: 26.0,
        size: 16.0,
        anchor: Anchor::Middle,
        rotate: 0.0,
        extra: "font-weight=\"bold\"",
    }
    .write(&mut s, title);
    // Worst first, so the best lines are drawn on top.
    let mut order: Vec<usize> = (0..trials.len()).collect();
    let key = |i: &usize| {
        trials[*i]
            .loss
            .filter(|l| l.is_finite())
            .unwrap_or(f64::INFINITY)
    };
    order.sort_by(|a, b| key(b).total_cmp(&key(a)));
    let colours = colours(trials);
    parallel(&mut s, axes, trials, &order, &colours);
    curves(&mut s, trials, &order, &colours, x_label);
    svg::close(&mut s);
    s
}

/// Each trial's colour by its rank: dark blue best, light grey worst.
fn colours(trials: &[SearchTrial]) -> Vec<String> {
    let mut ranked: Vec<(usize, f64)> = trials
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.loss.filter(|l| l.is_finite()).map(|l| (i, l)))
        .collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut out = vec!["#bbbbbb".to_string(); trials.len()];
    let n = ranked.len().max(2) - 1;
    for (rank, (i, _)) in ranked.iter().enumerate() {
        let t = rank as f64 / n as f64;
        let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
        out[*i] = format!(
            "#{:02x}{:02x}{:02x}",
            lerp(8.0, 198.0),
            lerp(48.0, 219.0),
            lerp(107.0, 239.0)
        );
    }
    out
}

/// Where a value sits on an axis, from 0 (bottom) to 1 (top).
struct Scale {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Scale {
    fn fit(values: impl Iterator<Item = f64>, log: bool) -> Scale {
        let t = |v: f64| if log { v.log10() } else { v };
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
            lo = lo.min(t(v));
            hi = hi.max(t(v));
        }
        if lo > hi {
            (lo, hi) = (0.0, 1.0);
        }
        Scale { lo, hi, log }
    }

    fn at(&self, v: f64) -> Option<f64> {
        let v = if self.log { v.log10() } else { v };
        if !v.is_finite() {
            return None;
        }
        Some(if self.hi > self.lo {
            (v - self.lo) / (self.hi - self.lo)
        } else {
            0.5
        })
    }

    fn label(&self, at_top: bool) -> String {
        let v = if at_top { self.hi } else { self.lo };
        let v = if self.log { 10f64.powf(v) } else { v };
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

fn parallel(
    s: &mut String,
    axes: &[SearchAxis],
    trials: &[SearchTrial],
    order: &[usize],
    colours: &[String],
) {
    let n = axes.len() + 1;
    let x = |i: usize| SIDE + (WIDTH - 2.0 * SIDE) * i as f64 / (n.max(2) - 1) as f64;
    let (top, bottom) = (TOP + 30.0, TOP + PANEL);
    let y = |f: f64| bottom - (bottom - top) * f;
    let mut scales: Vec<Scale> = axes
        .iter()
        .enumerate()
        .map(|(a, axis)| {
            if axis.categories.is_empty() {
                Scale::fit(
                    trials
                        .iter()
                        .map(|t| t.values.get(a).copied().unwrap_or(f64::NAN)),
                    axis.log,
                )
            } else {
                Scale {
                    lo: 0.0,
                    hi: (axis.categories.len().max(2) - 1) as f64,
                    log: false,
                }
            }
        })
        .collect();
    scales.push(Scale::fit(trials.iter().filter_map(|t| t.loss), false));
    for &i in order {
        let t = &trials[i];
        let mut points = Vec::new();
        for (a, scale) in scales.iter().enumerate() {
            let v = if a < axes.len() {
                t.values.get(a).copied().unwrap_or(f64::NAN)
            } else {
                t.loss.unwrap_or(f64::NAN)
            };
            if let Some(f) = scale.at(v) {
                points.push(format!("{},{}", num(x(a)), num(y(f))));
            }
        }
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"{}/>",
            points.join(" "),
            colours[i],
            if t.pruned {
                " stroke-dasharray=\"4 3\""
            } else {
                ""
            }
        );
    }
    for (a, scale) in scales.iter().enumerate() {
        let _ = writeln!(
            s,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#333\"/>",
            num(top),
            num(bottom),
            x = num(x(a))
        );
        let name = axes.get(a).map_or("val loss", |ax| ax.name.as_str());
        let text = |y: f64, size: f64| Text {
            x: x(a),
            y,
            size,
            anchor: Anchor::Middle,
            rotate: 0.0,
            extra: "",
        };
        text(top - 14.0, FONT + 1.0).write(s, name);
        match axes.get(a).filter(|ax| !ax.categories.is_empty()) {
            Some(axis) => {
                for (k, c) in axis.categories.iter().enumerate() {
                    if let Some(f) = scale.at(k as f64) {
                        let mut t = text(y(f) + 4.0, FONT - 1.0);
                        t.anchor = Anchor::Start;
                        t.x += 4.0;
                        t.write(s, c);
                    }
                }
            }
            None => {
                text(top - 2.0, FONT - 1.0).write(s, &scale.label(true));
                text(bottom + 14.0, FONT - 1.0).write(s, &scale.label(false));
            }
        }
    }
}

fn curves(
    s: &mut String,
    trials: &[SearchTrial],
    order: &[usize],
    colours: &[String],
    x_label: &str,
) {
    let (left, right) = (SIDE, WIDTH - SIDE / 2.0);
    let (top, bottom) = (TOP + PANEL + GAP, TOP + PANEL + GAP + PANEL - 30.0);
    let points = || {
        trials
            .iter()
            .flat_map(|t| t.curve.iter().copied())
            .filter(|(a, b)| a.is_finite() && b.is_finite())
    };
    let (mut x0, mut x1, mut y0, mut y1) = (0.0f64, 1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for (a, b) in points() {
        x0 = x0.min(a);
        x1 = x1.max(a);
        y0 = y0.min(b);
        y1 = y1.max(b);
    }
    if y0 > y1 {
        (y0, y1) = (0.0, 1.0);
    }
    let xt = Ticks::new(x0, x1, 8);
    let yt = Ticks::new(y0, y1, 6);
    let px = |v: f64| left + (right - left) * (v - xt.lo) / (xt.hi - xt.lo);
    let py = |v: f64| bottom - (bottom - top) * (v - yt.lo) / (yt.hi - yt.lo);
    let _ = writeln!(
        s,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>",
        num(left),
        num(top),
        num(right - left),
        num(bottom - top)
    );
    let tick = |s: &mut String, x: f64, y: f64, anchor, label: &str| {
        Text {
            x,
            y,
            size: FONT - 1.0,
            anchor,
            rotate: 0.0,
            extra: "",
        }
        .write(s, label)
    };
    for &v in &xt.values {
        tick(s, px(v), bottom + 15.0, Anchor::Middle, &xt.label(v));
    }
    for &v in &yt.values {
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#eee\"/>",
            num(left),
            num(right),
            y = num(py(v))
        );
        tick(s, left - 6.0, py(v) + 4.0, Anchor::End, &yt.label(v));
    }
    tick(
        s,
        (left + right) / 2.0,
        bottom + 34.0,
        Anchor::Middle,
        x_label,
    );
    Text {
        x: 18.0,
        y: (top + bottom) / 2.0,
        size: FONT,
        anchor: Anchor::Middle,
        rotate: -90.0,
        extra: "",
    }
    .write(s, "validation loss");
    for &i in order {
        let t = &trials[i];
        let pts: Vec<String> = t
            .curve
            .iter()
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .map(|&(a, b)| format!("{},{}", num(px(a)), num(py(b))))
            .collect();
        if pts.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"{}/>",
            pts.join(" "),
            colours[i],
            if t.pruned {
                " stroke-dasharray=\"4 3\""
            } else {
                ""
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_trial_twice_and_names_every_axis() {
        let axes = [
            SearchAxis {
                name: "lr".into(),
                log: true,
                categories: vec![],
            },
            SearchAxis {
                name: "cell".into(),
                log: false,
                categories: vec!["lstm".into(), "gru".into()],
            },
        ];
        let trial = |lr: f64, cell: f64, loss: f64, pruned| SearchTrial {
            values: vec![lr, cell],
            loss: Some(loss),
            pruned,
            curve: vec![(0.0, 4.0), (1000.0, loss)],
        };
        let svg = search_svg(
            &axes,
            &[trial(1e-3, 0.0, 1.5, false), trial(1e-2, 1.0, 2.5, true)],
            "search",
            "tokens",
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert_eq!(svg.matches("stroke-dasharray").count(), 2);
        for label in [
            ">lr<",
            ">cell<",
            ">lstm<",
            ">gru<",
            ">val loss<",
            ">tokens<",
        ] {
            assert!(svg.contains(label), "{label}");
        }
        // The best trial is drawn last (on top), in the darkest colour.
        let last = svg.rfind("<polyline").unwrap();
        assert!(svg[last..].contains("#08306b"));
        // Nothing to draw still gives a picture.
        assert!(search_svg(&[], &[], "empty", "tokens").starts_with("<svg"));
    }
}
