//! The endpoints: each parses and checks its request, runs it on a model's
//! engine (or a blocking thread for translation), and renders the result.
//! Completions and chat live in `generation`, their streams in `sse`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use recurrent::StreamRequest;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::api::*;
use crate::error::ApiError;
use crate::generation::{self, encode, gather, start};
use crate::playground;
use crate::session::run_blocking;
use crate::{App, Kind, LanguageModel, Served};

/// The state every handler reads.
pub(crate) type Shared = State<Arc<App>>;
/// A request body, or why it could not be read.
pub(crate) type Body = Result<Bytes, BytesRejection>;
/// All routes, behind the API key check and the request counter.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/completions", post(generation::completions))
        .route("/v1/chat/completions", post(generation::chat))
        .route("/v1/models", get(models))
        .route("/v1/score", post(score))
        .route("/v1/translate", post(translate))
        .route("/v1/inspect", post(playground::inspect))
        .route("/health", get(health))
        .route("/", get(playground::page))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .layer(DefaultBodyLimit::max(app.options.max_body_bytes))
        .with_state(app)
}

/// Checks the API key (all but `/health`) and counts the answer.
async fn guard(State(app): Shared, req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |p| p.as_str())
        .to_owned();
    let authorized = match &app.options.api_key {
        None => true,
        Some(key) => {
            // The page holds no data; it asks for the key when the API answers 401.
            matches!(path.as_str(), "/health" | "/")
                || req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .is_some_and(|k| k.trim() == key)
        }
    };
    let response = if authorized {
        next.run(req).await
    } else {
        ApiError::Unauthorized.into_response()
    };
    app.metrics.request(&path, response.status().as_u16());
    response
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound {
        path: req.uri().path().into(),
    }
}

async fn health(State(app): Shared) -> Response {
    let (status, state) = if app.shutting_down.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting_down")
    } else if app.models.get().is_none() {
        (StatusCode::SERVICE_UNAVAILABLE, "loading")
    } else {
        (StatusCode::OK, "ok")
    };
    (status, Json(json!({ "status": state }))).into_response()
}

async fn metrics(State(app): Shared) -> Response {
    let text = app.metrics.render(app.gauges());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn models(State(app): Shared) -> Result<Json<ModelList>, ApiError> {
    let data = ready(&app)?
        .iter()
        .map(|m| ModelCard {
            id: m.name.clone(),
            object: "model",
            created: m.created,
            owned_by: "recurrent",
            kind: m.kind_name(),
        })
        .collect();
    Ok(Json(ModelList {
        object: "list",
        data,
    }))
}

/// The JSON body as `T`.
pub(crate) fn parse<T: DeserializeOwned>(app: &App, body: Body) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge {
                limit: app.options.max_body_bytes,
            }
        } else {
            ApiError::Invalid {
                param: None,
                message: r.body_text(),
            }
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::Invalid {
        param: None,
        message: format!("the body is not the JSON this endpoint expects: {e}"),
    })
}

/// The models, once loaded and while not shutting down.
fn ready(app: &App) -> Result<&[Arc<Served>], ApiError> {
    if app.shutting_down.load(Ordering::Relaxed) {
        return Err(ApiError::ShuttingDown);
    }
    app.models.get().map(Vec::as_slice).ok_or(ApiError::Loading)
}

/// The model named `name`.
pub(crate) fn find(app: &App, name: &str) -> Result<Arc<Served>, ApiError> {
    ready(app)?
        .iter()
        .find(|m| m.name == name)
        .cloned()
        .ok_or_else(|| ApiError::UnknownModel { name: name.into() })
}

/// The language model of `served`, or an error naming what it is.
pub(crate) fn language(served: &Served) -> Result<&LanguageModel, ApiError> {
    match &served.kind {
        Kind::Language(lm) => Ok(lm),
        Kind::Seq2Seq(_) => Err(ApiError::WrongKind {
            name: served.name.clone(),
            kind: served.kind_name(),
        }),
    }
}

async fn score(State(app): Shared, body: Body) -> Result<Json<Score>, ApiError> {
    let arrived = Instant::now();
    let req: ScoreRequest = parse(&app, body)?;
    let served = find(&app, &req.model)?;
    let lm = language(&served)?;
    // After a document boundary every token of the text has a prediction.
    let mut prompt: Vec<u32> = lm.tokenizer().boundary().into_iter().collect();
    prompt.extend(encode(lm.tokenizer(), &req.text, "text")?);
    if prompt.len() < 2 {
        return Err(ApiError::invalid(
            "text",
            "text must have a token to score (after its first)",
        ));
    }
    let request = StreamRequest {
        prompt,
        max_tokens: 0,
        logprobs: Some(0),
        echo: true,
        ..StreamRequest::default()
    };
    let running = start(&app, lm, vec![request], arrived).await?;
    let choices = gather(&app, running, 1).await?;
    let tokens = choices[0].prompt.len();
    let logprob: f64 = choices[0].prompt.iter().map(|lp| lp.logprob).sum();
    let mean = -logprob / tokens as f64;
    Ok(Json(Score {
        object: "score",
        model: served.name.clone(),
        tokens,
        logprob,
        perplexity: mean.exp(),
        bits_per_token: mean / std::f64::consts::LN_2,
    }))
}

async fn translate(State(app): Shared, body: Body) -> Result<Json<Translations>, ApiError> {
    let arrived = Instant::now();
    let req: TranslateRequest = parse(&app, body)?;
    let served = find(&app, &req.model)?;
    if !matches!(served.kind, Kind::Seq2Seq(_)) {
        return Err(ApiError::WrongKind {
            name: served.name.clone(),
            kind: served.kind_name(),
        });
    }
    let beam = req.beam.unwrap_or(4);
    if !(1..=16).contains(&beam) {
        return Err(ApiError::invalid(
            "beam",
            format!("beam must be between 1 and 16, got {beam}"),
        ));
    }
    let sources = req.input.into_vec();
    if sources.len() > app.options.max_choices {
        return Err(ApiError::invalid(
            "input",
            format!(
                "at most {} sentences per request, got {}",
                app.options.max_choices,
                sources.len()
            ),
        ));
    }
    let options = recurrent::DecodeOptions {
        beam: beam as usize,
        threads: app.options.threads,
        ..recurrent::DecodeOptions::default()
    };
    let model = served.clone();
    let out = run_blocking(&app, arrived, move || {
        let Kind::Seq2Seq(checkpoint) = &model.kind else {
            unreachable!("checked above")
        };
        recurrent::translate(checkpoint, &sources, &options)
    })
    .await?
    .map_err(|e| match e {
        recurrent::Error::Line { .. }
        | recurrent::Error::InvalidOption { .. }
        | recurrent::Error::SourceTooLong { .. } => ApiError::invalid("input", e.to_string()),
        e => ApiError::Internal(e.to_string()),
    })?;
    Ok(Json(Translations {
        object: "translation",
        model: served.name.clone(),
        translations: out.into_iter().map(|t| t.text).collect(),
    }))
}
