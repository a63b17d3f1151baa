//! The SVG writers produce well-formed XML (checked with a real parser),
//! label what they should, escape user text, and survive bad values.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use recurrent_report::{attention_heatmap_svg, loss_curve_svg, ReportError, Series};

/// One element of a parsed document: its name, attributes (unescaped) and
/// the text directly inside it (entities resolved).
#[derive(Debug)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
}

impl Element {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `svg`, failing the test unless it is one well-formed XML element
/// (tags balanced, attributes quoted and unique, only XML's own entities).
fn parse(svg: &str) -> Vec<Element> {
    check_ampersands(svg);
    let mut reader = Reader::from_str(svg);
    let mut elements: Vec<Element> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut roots = 0;
    loop {
        let event = reader
            .read_event()
            .unwrap_or_else(|e| panic!("not XML: {e}\n{svg}"));
        match event {
            Event::Start(e) => {
                roots += usize::from(open.is_empty());
                elements.push(element(&e));
                open.push(elements.len() - 1);
            }
            Event::Empty(e) => {
                roots += usize::from(open.is_empty());
                elements.push(element(&e));
            }
            Event::End(_) => {
                open.pop().expect("an end tag closes an open element");
            }
            Event::Text(t) => {
                let text = t.decode().expect("UTF-8 text");
                match open.last() {
                    Some(&i) => elements[i].text.push_str(&text),
                    None => assert!(text.trim().is_empty(), "text outside the root: {text:?}"),
                }
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().expect("a valid character reference") {
                    Some(c) => c,
                    None => match &*r.decode().unwrap() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => panic!("entity &{other}; is not defined in XML"),
                    },
                };
                let i = *open.last().expect("references only inside elements");
                elements[i].text.push(c);
            }
            Event::CData(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::DocType(_) => panic!("no DOCTYPE expected"),
            Event::Eof => break,
        }
    }
    assert!(open.is_empty(), "unclosed elements at the end");
    assert_eq!(roots, 1, "exactly one root element");
    assert_eq!(elements[0].name, "svg");
    elements
}

fn element(start: &BytesStart) -> Element {
    let attrs = start
        .attributes()
        .map(|a| {
            let a = a.unwrap_or_else(|err| panic!("bad attribute: {err}"));
            let key = String::from_utf8(a.key.as_ref().to_vec()).unwrap();
            (
                key,
                a.unescape_value().expect("attribute value").into_owned(),
            )
        })
        .collect();
    Element {
        name: String::from_utf8(start.name().as_ref().to_vec()).unwrap(),
        attrs,
        text: String::new(),
    }
}

/// Every `&` must start one of XML's five entities or a character reference;
/// a parser may be lenient about a bare one, a browser is not.
fn check_ampersands(svg: &str) {
    for (i, _) in svg.match_indices('&') {
        let rest = &svg[i..];
        let ok = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"]
            .iter()
            .any(|e| rest.starts_with(e));
        assert!(ok, "bare & at {i}: {:?}", &rest[..rest.len().min(20)]);
    }
}

fn texts_with_class<'a>(elements: &'a [Element], class: &str) -> Vec<&'a str> {
    elements
        .iter()
        .filter(|e| e.name == "text" && e.attr("class") == Some(class))
        .map(|e| e.text.as_str())
        .collect()
}

fn polyline_points(element: &Element) -> Vec<(f64, f64)> {
    element
        .attr("points")
        .expect("points")
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').expect("x,y");
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

/// No coordinate, size or colour came from a NaN or an infinity.
fn assert_no_bad_numbers(elements: &[Element]) {
    for e in elements {
        for (key, value) in &e.attrs {
            let lower = value.to_lowercase();
            assert!(
                !lower.contains("nan") && !lower.contains("inf"),
                "{key}={value:?}"
            );
        }
    }
}

fn strings(tokens: &[&str]) -> Vec<String> {
    tokens.iter().map(|s| s.to_string()).collect()
}

fn falling(name: &str, n: usize) -> Series {
    let points = (0..n)
        .map(|i| (i as f64 * 50.0, 4.0 / (1.0 + i as f64 * 0.3)))
        .collect();
    Series::new(name, points)
}

#[test]
fn loss_curve_has_title_axis_labels_ticks_and_legend() {
    let svg = loss_curve_svg(
        &[falling("train", 40), falling("valid", 8)],
        "char LSTM",
        "step",
        "loss",
    );
    let elements = parse(&svg);
    let texts: Vec<&str> = elements
        .iter()
        .filter(|e| e.name == "text")
        .map(|e| e.text.as_str())
        .collect();
    for wanted in ["char LSTM", "step", "loss", "0", "4"] {
        assert!(texts.contains(&wanted), "no {wanted:?} in {texts:?}");
    }
    assert_eq!(texts_with_class(&elements, "legend"), ["train", "valid"]);
    let lines: Vec<&Element> = elements.iter().filter(|e| e.name == "polyline").collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(polyline_points(lines[0]).len(), 40);
    assert_ne!(lines[0].attr("stroke"), lines[1].attr("stroke"));
}

#[test]
fn loss_curve_points_fall_inside_the_picture_and_keep_their_order() {
    let svg = loss_curve_svg(&[falling("train", 30)], "", "", "");
    let elements = parse(&svg);
    let width: f64 = elements[0].attr("width").unwrap().parse().unwrap();
    let height: f64 = elements[0].attr("height").unwrap().parse().unwrap();
    let line = elements.iter().find(|e| e.name == "polyline").unwrap();
    let points = polyline_points(line);
    for &(x, y) in &points {
        assert!(
            (0.0..=width).contains(&x) && (0.0..=height).contains(&y),
            "({x}, {y})"
        );
    }
    // Steps go right, and a falling loss goes down the picture (y grows).
    assert!(points
        .windows(2)
        .all(|w| w[1].0 > w[0].0 && w[1].1 >= w[0].1));
}

#[test]
fn loss_curve_escapes_text() {
    let title = "a <b> & \"c\" 'd'";
    let svg = loss_curve_svg(&[falling("x < y & z", 3)], title, "<step>", "l&ss");
    assert!(!svg.contains("<b>") && !svg.contains("x < y"));
    let elements = parse(&svg);
    let texts: Vec<&str> = elements.iter().map(|e| e.text.as_str()).collect();
    for wanted in [title, "<step>", "l&ss", "x < y & z"] {
        assert!(texts.contains(&wanted), "no {wanted:?} in {texts:?}");
    }
}

#[test]
fn loss_curve_skips_nan_and_infinite_points() {
    let points = vec![
        (f64::NAN, 1.0),
        (0.0, 3.0),
        (10.0, f64::INFINITY),
        (20.0, 2.0),
        (30.0, f64::NAN),
        (40.0, 1.5),
        (f64::NEG_INFINITY, 1.0),
        (50.0, f64::NEG_INFINITY),
    ];
    let svg = loss_curve_svg(&[Series::new("diverged", points)], "t", "step", "loss");
    let elements = parse(&svg);
    assert_no_bad_numbers(&elements);
    let line = elements.iter().find(|e| e.name == "polyline").unwrap();
    assert_eq!(polyline_points(line).len(), 3);
    assert_eq!(
        texts_with_class(&elements, "legend"),
        ["diverged (5 NaN/inf points skipped)"]
    );
    // The axes cover the finite values only: 1.5 to 3 on y, 0 to 40 on x.
    let texts: Vec<&str> = elements.iter().map(|e| e.text.as_str()).collect();
    assert!(texts.contains(&"40") && texts.contains(&"3.0"), "{texts:?}");
}

#[test]
fn loss_curve_without_finite_points_or_series_still_renders() {
    let all_bad = Series::new("nan", vec![(0.0, f64::NAN), (1.0, f64::INFINITY)]);
    for series in [vec![], vec![all_bad], vec![Series::new("empty", vec![])]] {
        let svg = loss_curve_svg(&series, "nothing", "step", "loss");
        let elements = parse(&svg);
        assert!(elements
            .iter()
            .any(|e| e.text == "no finite values to plot"));
        assert!(!elements.iter().any(|e| e.name == "polyline"));
    }
}

#[test]
fn loss_curve_single_point_and_flat_series_are_drawn() {
    let svg = loss_curve_svg(
        &[
            Series::new("one", vec![(5.0, 2.0)]),
            Series::new("flat", vec![(0.0, 2.0), (10.0, 2.0)]),
        ],
        "",
        "",
        "",
    );
    let elements = parse(&svg);
    assert_eq!(elements.iter().filter(|e| e.name == "circle").count(), 1);
    let line = elements.iter().find(|e| e.name == "polyline").unwrap();
    let points = polyline_points(line);
    assert_eq!(points[0].1, points[1].1);
}

#[test]
fn heatmap_has_one_label_per_token_and_one_cell_per_weight() {
    let src = strings(&["I", "don't", "know", "."]);
    let tgt = strings(&["Je", "ne", "sais", "pas", "."]);
    let weights: Vec<f32> = (0..20)
        .map(|k| if k % 5 == 0 { 0.9 } else { 0.025 })
        .collect();
    let svg = attention_heatmap_svg(&src, &tgt, &weights).unwrap();
    let elements = parse(&svg);
    assert_eq!(
        texts_with_class(&elements, "src-token"),
        ["I", "don't", "know", "."]
    );
    assert_eq!(
        texts_with_class(&elements, "tgt-token"),
        ["Je", "ne", "sais", "pas", "."]
    );
    let cells: Vec<&Element> = elements
        .iter()
        .filter(|e| e.name == "rect" && e.attr("fill").is_some_and(|f| f.starts_with('#')))
        .filter(|e| e.attr("width") == e.attr("height"))
        .collect();
    assert_eq!(cells.len(), 20);
    // Higher weights are darker: compare the sum of the RGB channels.
    let darkness = |e: &Element| {
        let hex = &e.attr("fill").unwrap()[1..];
        let channel = |i: usize| u32::from_str_radix(&hex[i..i + 2], 16).unwrap();
        765 - (channel(0) + channel(2) + channel(4))
    };
    assert!(darkness(cells[0]) > darkness(cells[1]));
    // Each cell says what it is when hovered.
    let tooltips: Vec<&str> = elements
        .iter()
        .filter(|e| e.name == "title")
        .map(|e| e.text.as_str())
        .collect();
    assert_eq!(tooltips[0], "I → Je: 0.900");
}

#[test]
fn heatmap_escapes_tokens() {
    let src = strings(&["<s>", "&", "\"q\"", "'a'"]);
    let tgt = strings(&["</s>", "a&b"]);
    let svg = attention_heatmap_svg(&src, &tgt, &[0.25; 8]).unwrap();
    assert!(!svg.contains("<s>") && !svg.contains("</s>") && !svg.contains("a&b"));
    let elements = parse(&svg);
    assert_eq!(
        texts_with_class(&elements, "src-token"),
        ["<s>", "&", "\"q\"", "'a'"]
    );
    assert_eq!(texts_with_class(&elements, "tgt-token"), ["</s>", "a&b"]);
}

#[test]
fn heatmap_survives_control_characters_blank_tokens_and_bad_weights() {
    let src = strings(&["\u{1}", " ", "", "\u{FFFF}"]);
    let tgt = strings(&["\n"]);
    let svg = attention_heatmap_svg(&src, &tgt, &[f32::NAN, f32::INFINITY, -1.0, 2.0]).unwrap();
    let elements = parse(&svg);
    assert_eq!(
        texts_with_class(&elements, "src-token"),
        ["\u{FFFD}", "␣", "∅", "\u{FFFD}"]
    );
    assert_eq!(texts_with_class(&elements, "tgt-token"), ["↵"]);
    assert_no_bad_numbers(&elements);
}

#[test]
fn heatmap_turns_long_source_labels_and_keeps_short_ones_level() {
    let rotated = |src: Vec<String>| {
        let weights = vec![0.5; src.len()];
        let svg = attention_heatmap_svg(&src, &strings(&["x"]), &weights).unwrap();
        let elements = parse(&svg);
        elements
            .iter()
            .filter(|e| e.attr("class") == Some("src-token"))
            .all(|e| {
                e.attr("transform")
                    .is_some_and(|t| t.starts_with("rotate(-"))
            })
    };
    assert!(!rotated(strings(&["a", "b", "c"])));
    assert!(rotated(strings(&["internationalization", "b"])));
    let many: Vec<String> = (0..60).map(|i| format!("token{i}")).collect();
    assert!(rotated(many));
}

#[test]
fn heatmap_with_no_tokens_renders_a_note() {
    let svg = attention_heatmap_svg(&[], &[], &[]).unwrap();
    let elements = parse(&svg);
    assert!(elements.iter().any(|e| e.text == "no attention weights"));
}

#[test]
fn heatmap_rejects_weights_of_the_wrong_shape() {
    let err = attention_heatmap_svg(&strings(&["a", "b"]), &strings(&["x"]), &[1.0]).unwrap_err();
    assert_eq!(
        err,
        ReportError::WeightsShape {
            src: 2,
            tgt: 1,
            got: 1
        }
    );
    assert_eq!(
        err.to_string(),
        "attention weights have 1 values but 1 target x 2 source tokens need 2"
    );
}

#[test]
fn the_xml_check_itself_rejects_malformed_documents() {
    let broken = [
        "<svg><text>a</svg>",
        "<svg><text>a</text>",
        "<svg a=\"1\" a=\"2\"/>",
        "<svg a=1/>",
        "<svg><text>a & b</text></svg>",
        "<svg><text>&nbsp;</text></svg>",
        "<svg/><svg/>",
    ];
    for doc in broken {
        let result = std::panic::catch_unwind(|| parse(doc));
        assert!(result.is_err(), "accepted {doc:?}");
    }
    assert_eq!(
        parse("<svg><text>a &amp; &#233;</text></svg>")[1].text,
        "a & é"
    );
}
