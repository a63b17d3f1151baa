//! The inspect view: one self-contained HTML page (its CSS and JavaScript
//! embedded, no network) that draws a language model's inspection of a text.
//!
//! Data and drawing are apart: the page embeds the data as JSON in a
//! `<script type="application/json" id="inspect-data">` element, and
//! `inspect.js` defines `RecurrentInspect.render(element, data)`, which draws
//! any such data into any element (a server page can fetch the JSON and call
//! it the same way).
//!
//! The JSON (produced by the `recurrent` facade's `Inspection::to_json`;
//! `T` tokens; activations rounded to 3 decimals):
//!
//! ```text
//! {
//!   "model": { "cell": "lstm", "tokenizer": "char", "vocab_size": 65,
//!              "bits_per_token": 2.1 | null },
//!   "tokens": [                         // T entries, in text order
//!     { "text": "a",                    // what the token adds to the text
//!       "id": 12,
//!       "surprisal": 3.2 | null,        // bits; null for the first token
//!       "next": [ { "text": "b", "id": 13, "p": 0.61 }, ... ] }   // most likely first
//!   ],
//!   "layers": [                         // bottom layer first
//!     { "hidden": H,
//!       "h": [T*H numbers],             // unit j after token t at t*H + j
//!       "c": [T*H numbers] | null,      // LSTM cell states, same layout
//!       "gates": [                      // sigmoid gates (none for a plain RNN)
//!         { "name": "forget",
//!           "left":  [H fractions],     // of tokens with the gate < 0.1
//!           "right": [H fractions] } ]  // of tokens with the gate > 0.9
//!     }
//!   ],
//!   "properties": [
//!     { "name": "bracket_depth", "description": "...",
//!       "values": [T numbers],
//!       "units": [ { "layer": 0, "unit": 17, "state": "h" | "c",
//!                    "correlation": -0.93 }, ... ] }   // best |correlation| first
//!   ]
//! }
//! ```

/// The page's style sheet.
pub const INSPECT_CSS: &str = include_str!("inspect.css");
/// The page's script: `RecurrentInspect.render(element, data)`.
pub const INSPECT_JS: &str = include_str!("inspect.js");

/// One self-contained HTML page drawing the inspection `data_json` (the
/// JSON shape in this module's documentation), titled `title`.
///
/// ```
/// let page = recurrent_report::inspect_view_html("a view", r#"{"tokens":[],"layers":[],"properties":[]}"#);
/// assert!(page.contains(r#"id="inspect-data""#));
/// assert!(page.contains("RecurrentInspect"));
/// ```
pub fn inspect_view_html(title: &str, data_json: &str) -> String {
    // In valid JSON `<` appears only inside strings, where `\u003c` means the
    // same: the data then cannot close its script element.
    let data = data_json.replace('<', "\\u003c");
    let title = escape_html(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>\n{INSPECT_CSS}</style>\n</head>\n<body>\n\
         <h1>{title}</h1>\n<div id=\"app\"></div>\n\
         <script type=\"application/json\" id=\"inspect-data\">{data}</script>\n\
         <script>\n{INSPECT_JS}</script>\n<script>\n\
         RecurrentInspect.render(document.getElementById(\"app\"),\n\
         \x20 JSON.parse(document.getElementById(\"inspect-data\").textContent));\n\
         </script>\n</body>\n</html>\n"
    )
}

/// `text` safe inside HTML elements and attribute values (the SVG escaping
/// serves: HTML5 reads the same entities).
fn escape_html(text: &str) -> String {
    crate::svg::escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_close_its_script_element() {
        let page = inspect_view_html("x", r#"{"text":"</script><!--"}"#);
        assert!(!page.contains("</script><!--"));
        assert!(page.contains(r#"{"text":"\u003c/script>\u003c!--"}"#));
    }

    #[test]
    fn title_is_escaped() {
        let page = inspect_view_html("<b>&", "{}");
        assert!(page.contains("<title>&lt;b&gt;&amp;</title>"));
    }
}
