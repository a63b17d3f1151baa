//! The web playground: one page at `/` (its script and style embedded, no
//! network beyond this server) and `POST /v1/inspect`, which it calls to
//! look inside a model on a text. The page generates through
//! `/v1/completions` like any client, and draws inspections with the same
//! script as `recurrent inspect`'s HTML (`RecurrentInspect.render`).

use std::sync::LazyLock;
use std::time::Instant;

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use recurrent::report::{INSPECT_CSS, INSPECT_JS};
use recurrent::InspectOptions;
use serde::Deserialize;

use crate::error::ApiError;
use crate::generation::encode;
use crate::routes::{find, language, parse, Body, Shared};
use crate::session::run_blocking;
use crate::Kind;

/// The page, assembled once: the template with the styles and scripts in place.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    include_str!("playground/index.html")
        .replace("/*INSPECT_CSS*/", INSPECT_CSS)
        .replace(
            "/*PLAYGROUND_CSS*/",
            include_str!("playground/playground.css"),
        )
        .replace("/*INSPECT_JS*/", INSPECT_JS)
        .replace(
            "/*PLAYGROUND_JS*/",
            include_str!("playground/playground.js"),
        )
});

/// `GET /`: the playground page (served without the API key: it holds no
/// data, and asks for the key when the API answers 401).
pub(crate) async fn page() -> Html<&'static str> {
    Html(PAGE.as_str())
}

/// `POST /v1/inspect`.
#[derive(Debug, Deserialize)]
pub(crate) struct InspectRequest {
    /// The model's name.
    model: String,
    /// The text to look at.
    text: String,
    /// Most likely next tokens listed after each token (default 5).
    top_next: Option<i64>,
    /// Units listed per property (default 10).
    top_units: Option<i64>,
}

/// `POST /v1/inspect`: surprisal and top next tokens per token, hidden and
/// cell states, gate saturation and the units ranked per text property, as
/// the JSON documented in `recurrent::report::html`.
pub(crate) async fn inspect(axum::extract::State(app): Shared, body: Body) -> Response {
    match inspect_inner(&app, body).await {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn inspect_inner(app: &crate::App, body: Body) -> Result<String, ApiError> {
    let arrived = Instant::now();
    let req: InspectRequest = parse(app, body)?;
    let served = find(app, &req.model)?;
    let lm = language(&served)?;
    let defaults = InspectOptions::default();
    let options = InspectOptions {
        top_next: bounded("top_next", req.top_next, defaults.top_next, 20)?,
        top_units: bounded("top_units", req.top_units, defaults.top_units, 100)?,
        threads: app.options.threads,
        ..defaults
    };
    let chars = req.text.chars().count();
    if chars == 0 || chars > options.max_chars {
        return Err(ApiError::invalid(
            "text",
            format!(
                "text must have 1 to {} characters, got {chars}",
                options.max_chars
            ),
        ));
    }
    // A 400 naming the characters the model lacks, before any compute.
    encode(lm.tokenizer(), &req.text, "text")?;
    let model = served.clone();
    let view = run_blocking(app, arrived, move || {
        let Kind::Language(lm) = &model.kind else {
            unreachable!("checked above")
        };
        recurrent::inspect(&lm.checkpoint, &req.text, &options)
    })
    .await?
    .map_err(|e| match e {
        recurrent::Error::InvalidOption { .. } | recurrent::Error::UnknownChars { .. } => {
            ApiError::invalid("text", e.to_string())
        }
        e => ApiError::Internal(e.to_string()),
    })?;
    Ok(view.to_json())
}

/// `value` (or `default`), checked to lie in 1..=`max`.
fn bounded(
    param: &'static str,
    value: Option<i64>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match value {
        None => Ok(default),
        Some(v) if (1..=max as i64).contains(&v) => Ok(v as usize),
        Some(v) => Err(ApiError::invalid(
            param,
            format!("{param} must be between 1 and {max}, got {v}"),
        )),
    }
}
