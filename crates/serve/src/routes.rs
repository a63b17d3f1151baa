//! The endpoints: each parses and checks its request, runs it on a model's
//! engine (or a blocking thread for translation), and renders the result.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use recurrent::generate::SamplingConfig;
use recurrent::kernels::Rng;
use recurrent::{FinishReason, StreamEvent, StreamRequest, TokenLogprob, Tokenizer};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::timeout_at;

use crate::api::*;
use crate::error::ApiError;
use crate::session::Running;
use crate::{unix_secs, App, Kind, LanguageModel, Served};

type Shared = State<Arc<App>>;
type Body = Result<Bytes, BytesRejection>;

/// Most stop strings per request, as OpenAI allows.
const MAX_STOPS: usize = 4;
/// Most alternatives per token.
const MAX_TOP_LOGPROBS: usize = 20;
/// Completions' default length, as OpenAI's.
const COMPLETION_DEFAULT_TOKENS: usize = 16;
/// Chat's default length (OpenAI's is the context's rest; a char model has none).
const CHAT_DEFAULT_TOKENS: usize = 256;

/// All routes, behind the API key check and the request counter.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/v1/score", post(score))
        .route("/v1/translate", post(translate))
        .route("/health", get(health))
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
            path == "/health"
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
fn parse<T: DeserializeOwned>(app: &App, body: Body) -> Result<T, ApiError> {
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
fn find(app: &App, name: &str) -> Result<Arc<Served>, ApiError> {
    ready(app)?
        .iter()
        .find(|m| m.name == name)
        .cloned()
        .ok_or_else(|| ApiError::UnknownModel { name: name.into() })
}

/// The language model of `served`, or an error naming what it is.
fn language(served: &Served) -> Result<&LanguageModel, ApiError> {
    match &served.kind {
        Kind::Language(lm) => Ok(lm),
        Kind::Seq2Seq(_) => Err(ApiError::WrongKind {
            name: served.name.clone(),
            kind: served.kind_name(),
        }),
    }
}

/// The checked settings shared by completions and chat.
struct Settings {
    max_tokens: usize,
    sampling: SamplingConfig,
    n: usize,
    stops: Vec<String>,
    seed: u64,
    stream: bool,
    include_usage: bool,
}

fn settings(app: &App, s: &Sampling, default_tokens: usize) -> Result<Settings, ApiError> {
    let limit = app.options.max_tokens;
    let max_tokens = match s.max_tokens.or(s.max_completion_tokens) {
        None => default_tokens.min(limit),
        Some(v) if v < 0 => {
            return Err(ApiError::invalid(
                "max_tokens",
                format!("max_tokens must be at least 0, got {v}"),
            ))
        }
        Some(v) if v as u64 > limit as u64 => {
            return Err(ApiError::invalid(
                "max_tokens",
                format!("max_tokens must be at most {limit}, got {v}"),
            ))
        }
        Some(v) => v as usize,
    };
    let temperature = s.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid(
            "temperature",
            format!("temperature must be between 0 and 2, got {temperature}"),
        ));
    }
    let top_p = match s.top_p {
        Some(p) if !(p > 0.0 && p <= 1.0) => {
            return Err(ApiError::invalid(
                "top_p",
                format!("top_p must be greater than 0 and at most 1, got {p}"),
            ))
        }
        // 1 keeps every token: plain sampling, as `generate` does it.
        Some(p) if p < 1.0 => Some(p),
        _ => None,
    };
    // 0 and -1 mean no limit (llama.cpp and vLLM's conventions).
    let top_k = match s.top_k {
        Some(k) if k < -1 => {
            return Err(ApiError::invalid(
                "top_k",
                format!("top_k must be at least 1 (or 0 or -1 for no limit), got {k}"),
            ))
        }
        Some(k) if k > 0 => Some(k as usize),
        _ => None,
    };
    let n = s.n.unwrap_or(1);
    if n < 1 || n as u64 > app.options.max_choices as u64 {
        return Err(ApiError::invalid(
            "n",
            format!(
                "n must be between 1 and {}, got {n}",
                app.options.max_choices
            ),
        ));
    }
    let stops = s.stop.clone().map(OneOrMany::into_vec).unwrap_or_default();
    if stops.len() > MAX_STOPS {
        return Err(ApiError::invalid(
            "stop",
            format!("at most {MAX_STOPS} stop strings, got {}", stops.len()),
        ));
    }
    if stops.iter().any(String::is_empty) {
        return Err(ApiError::invalid("stop", "stop strings must not be empty"));
    }
    let seed = s.seed.unwrap_or_else(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        nanos as u64 ^ app.next_seed()
    });
    Ok(Settings {
        max_tokens,
        sampling: SamplingConfig {
            temperature,
            top_k,
            top_p,
        },
        n: n as usize,
        stops,
        seed,
        stream: s.stream,
        include_usage: s.stream_options.as_ref().is_some_and(|o| o.include_usage),
    })
}

/// Encodes `text`, a 400 naming `param` if it has characters the model lacks.
fn encode(tokenizer: &Tokenizer, text: &str, param: &'static str) -> Result<Vec<u32>, ApiError> {
    tokenizer.encode(text).map_err(|e| {
        ApiError::invalid(
            param,
            format!("{param} cannot be encoded with the model's vocabulary: {e}"),
        )
    })
}

/// `top` alternatives (0 to 20), named `param`.
fn top_count(param: &'static str, v: i64) -> Result<usize, ApiError> {
    if !(0..=MAX_TOP_LOGPROBS as i64).contains(&v) {
        return Err(ApiError::invalid(
            param,
            format!("{param} must be between 0 and {MAX_TOP_LOGPROBS}, got {v}"),
        ));
    }
    Ok(v as usize)
}

/// One request per prompt and choice: choice `j` of a prompt draws from the
/// `j`-th fork of the seed, as sample `j` of `Generator::generate` does.
fn stream_requests(
    prompts: &[Vec<u32>],
    s: &Settings,
    logprobs: Option<usize>,
    echo: bool,
) -> Vec<StreamRequest> {
    let mut out = Vec::new();
    for prompt in prompts {
        let mut root = Rng::new(s.seed);
        for _ in 0..s.n {
            out.push(StreamRequest {
                prompt: prompt.clone(),
                max_tokens: s.max_tokens,
                sampling: s.sampling.clone(),
                stops: s.stops.clone(),
                rng: root.fork(),
                logprobs,
                echo,
            });
        }
    }
    out
}

/// Waits for a slot and starts the streams.
async fn start(
    app: &App,
    model: &LanguageModel,
    requests: Vec<StreamRequest>,
    arrived: Instant,
) -> Result<Running, ApiError> {
    let deadline = arrived + app.options.request_timeout;
    let slot = app.limiter.acquire(deadline, app).await?;
    Running::start(model, requests, slot, arrived, deadline)
}

/// One choice, gathered.
#[derive(Default)]
struct Choice {
    text: String,
    prompt: Vec<TokenLogprob>,
    tokens: Vec<TokenLogprob>,
    finish: Option<FinishReason>,
    prompt_tokens: usize,
    completion_tokens: usize,
}

/// Every event of every choice.
async fn gather(app: &App, mut running: Running, count: usize) -> Result<Vec<Choice>, ApiError> {
    let mut choices: Vec<Choice> = (0..count).map(|_| Choice::default()).collect();
    while let Some((i, event)) = running.next(app).await? {
        let c = &mut choices[i];
        match event {
            StreamEvent::Prompt(lp) => c.prompt.push(lp),
            StreamEvent::Token { text, logprob } => {
                c.text.push_str(&text);
                c.tokens.extend(logprob);
            }
            StreamEvent::Finished {
                tail,
                reason,
                prompt_tokens,
                completion_tokens,
            } => {
                c.text.push_str(&tail);
                c.finish = Some(reason);
                c.prompt_tokens = prompt_tokens;
                c.completion_tokens = completion_tokens;
            }
        }
    }
    // With the client still here, only a shutdown cancels its streams.
    if choices
        .iter()
        .any(|c| c.finish != Some(FinishReason::Length) && c.finish != Some(FinishReason::Stop))
    {
        return Err(ApiError::ShuttingDown);
    }
    Ok(choices)
}

fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length | FinishReason::Cancelled => "length",
    }
}

/// Token counts; a prompt counts once however many choices it has.
fn usage(choices: &[Choice], n: usize) -> Usage {
    let prompt_tokens = choices.iter().step_by(n).map(|c| c.prompt_tokens).sum();
    let completion_tokens = choices.iter().map(|c| c.completion_tokens).sum();
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
    }
}

/// A token's text, as the logprobs objects show it.
fn token_text(tokenizer: &Tokenizer, id: u32) -> String {
    tokenizer.decode(&[id])
}

/// The alternatives as completions' `{token: logprob}` map.
fn top_map(tokenizer: &Tokenizer, lp: &TokenLogprob) -> BTreeMap<String, f64> {
    lp.top
        .iter()
        .map(|&(id, v)| (token_text(tokenizer, id), v))
        .collect()
}

/// Completions' logprobs: the prompt's first (with `echo`), then the rest.
fn completion_logprobs(
    tokenizer: &Tokenizer,
    prompt: Option<&[u32]>,
    c: &Choice,
) -> CompletionLogprobs {
    let mut out = CompletionLogprobs::default();
    let mut offset = 0;
    let mut push = |out: &mut CompletionLogprobs, text: String, lp: Option<f64>, top| {
        out.text_offset.push(offset);
        offset += text.len();
        out.tokens.push(text);
        out.token_logprobs.push(lp);
        out.top_logprobs.push(top);
    };
    if let Some(&first) = prompt.and_then(|p| p.first()) {
        push(&mut out, token_text(tokenizer, first), None, None);
        for lp in &c.prompt {
            push(
                &mut out,
                token_text(tokenizer, lp.id),
                Some(lp.logprob),
                Some(top_map(tokenizer, lp)),
            );
        }
    }
    for lp in &c.tokens {
        push(
            &mut out,
            token_text(tokenizer, lp.id),
            Some(lp.logprob),
            Some(top_map(tokenizer, lp)),
        );
    }
    out
}

/// Chat's logprobs entry for one token.
fn chat_logprob(tokenizer: &Tokenizer, lp: &TokenLogprob) -> ChatTokenLogprob {
    let entry = |id: u32, logprob: f64| {
        let token = token_text(tokenizer, id);
        ChatTokenLogprob {
            bytes: token.clone().into_bytes(),
            token,
            logprob,
            top_logprobs: None,
        }
    };
    ChatTokenLogprob {
        top_logprobs: Some(lp.top.iter().map(|&(id, v)| entry(id, v)).collect()),
        ..entry(lp.id, lp.logprob)
    }
}

async fn completions(State(app): Shared, body: Body) -> Response {
    let arrived = Instant::now();
    match completions_inner(app, body, arrived).await {
        Ok(r) | Err(r) => r,
    }
}

async fn completions_inner(
    app: Arc<App>,
    body: Body,
    arrived: Instant,
) -> Result<Response, Response> {
    let fail = |e: ApiError| e.into_response();
    let req: CompletionRequest = parse(&app, body).map_err(fail)?;
    let served = find(&app, &req.sampling.model).map_err(fail)?;
    let lm = language(&served).map_err(fail)?;
    let s = settings(&app, &req.sampling, COMPLETION_DEFAULT_TOKENS).map_err(fail)?;
    let logprobs = req
        .logprobs
        .map(|v| top_count("logprobs", v))
        .transpose()
        .map_err(fail)?;
    let texts = req
        .prompt
        .clone()
        .map_or_else(|| vec![String::new()], OneOrMany::into_vec);
    if texts.is_empty() || texts.len() * s.n > app.options.max_choices {
        let message = format!(
            "prompts times n must be between 1 and {}, got {}",
            app.options.max_choices,
            texts.len() * s.n
        );
        return Err(fail(ApiError::invalid("prompt", message)));
    }
    let prompts: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| encode(&lm.tokenizer, t, "prompt"))
        .collect::<Result<_, _>>()
        .map_err(fail)?;
    let requests = stream_requests(&prompts, &s, logprobs, req.echo);
    let count = requests.len();
    let running = start(&app, lm, requests, arrived).await.map_err(fail)?;
    let head = Head {
        id: app.id("cmpl"),
        created: unix_secs(),
        model: served.name.clone(),
        chat: false,
    };
    if s.stream {
        let echoes = req.echo.then(|| {
            texts
                .iter()
                .flat_map(|t| std::iter::repeat_n(t.clone(), s.n))
                .collect()
        });
        return Ok(stream(
            app,
            served.clone(),
            running,
            head,
            StreamPlan {
                include_usage: s.include_usage,
                echoes,
                count,
                per_prompt: s.n,
            },
        ));
    }
    let choices = gather(&app, running, count).await.map_err(fail)?;
    let usage = usage(&choices, s.n);
    let choices = choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let prompt = &prompts[i / s.n];
            let text = if req.echo {
                texts[i / s.n].clone() + &c.text
            } else {
                c.text.clone()
            };
            CompletionChoice {
                text,
                index: i,
                logprobs: logprobs.map(|_| {
                    completion_logprobs(&lm.tokenizer, req.echo.then_some(prompt.as_slice()), c)
                }),
                finish_reason: c.finish.map(finish_reason),
            }
        })
        .collect();
    let body = Completion {
        id: head.id,
        object: "text_completion",
        created: head.created,
        model: head.model,
        choices,
        usage: Some(usage),
    };
    Ok(Json(body).into_response())
}

/// A chat's messages as one prompt: their texts, one per line.
fn chat_prompt(messages: &[ChatMessage]) -> Result<String, ApiError> {
    let mut parts = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let text = match &m.content {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            Value::Array(items) => items
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .concat(),
            other => {
                return Err(ApiError::invalid(
                    "messages",
                    format!(
                        "message {i} ({}) has content that is not text: {other}",
                        m.role
                    ),
                ))
            }
        };
        parts.push(text);
    }
    Ok(parts.join("\n"))
}

async fn chat(State(app): Shared, body: Body) -> Response {
    let arrived = Instant::now();
    match chat_inner(app, body, arrived).await {
        Ok(r) | Err(r) => r,
    }
}

async fn chat_inner(app: Arc<App>, body: Body, arrived: Instant) -> Result<Response, Response> {
    let fail = |e: ApiError| e.into_response();
    let req: ChatRequest = parse(&app, body).map_err(fail)?;
    let served = find(&app, &req.sampling.model).map_err(fail)?;
    let lm = language(&served).map_err(fail)?;
    let s = settings(&app, &req.sampling, CHAT_DEFAULT_TOKENS).map_err(fail)?;
    let top = req
        .top_logprobs
        .map(|v| top_count("top_logprobs", v))
        .transpose()
        .map_err(fail)?;
    let logprobs = req.logprobs.then(|| top.unwrap_or(0));
    let prompt = chat_prompt(&req.messages).map_err(fail)?;
    let prompt = encode(&lm.tokenizer, &prompt, "messages").map_err(fail)?;
    let requests = stream_requests(&[prompt], &s, logprobs, false);
    let count = requests.len();
    let running = start(&app, lm, requests, arrived).await.map_err(fail)?;
    let head = Head {
        id: app.id("chatcmpl"),
        created: unix_secs(),
        model: served.name.clone(),
        chat: true,
    };
    if s.stream {
        return Ok(stream(
            app,
            served.clone(),
            running,
            head,
            StreamPlan {
                include_usage: s.include_usage,
                echoes: None,
                count,
                per_prompt: s.n,
            },
        ));
    }
    let choices = gather(&app, running, count).await.map_err(fail)?;
    let usage = usage(&choices, s.n);
    let choices = choices
        .iter()
        .enumerate()
        .map(|(i, c)| ChatChoice {
            index: i,
            message: Some(ChatDelta {
                role: Some("assistant"),
                content: Some(c.text.clone()),
            }),
            delta: None,
            logprobs: logprobs.map(|_| ChatLogprobs {
                content: c
                    .tokens
                    .iter()
                    .map(|lp| chat_logprob(&lm.tokenizer, lp))
                    .collect(),
            }),
            finish_reason: c.finish.map(finish_reason),
        })
        .collect();
    let body = ChatCompletion {
        id: head.id,
        object: "chat.completion",
        created: head.created,
        model: head.model,
        choices,
        usage: Some(usage),
    };
    Ok(Json(body).into_response())
}

/// What every chunk of a stream repeats.
struct Head {
    id: String,
    created: u64,
    model: String,
    chat: bool,
}

impl Head {
    /// A chunk of one choice: a piece of text, its logprobs, or the end.
    fn chunk(
        &self,
        tokenizer: &Tokenizer,
        index: usize,
        text: Option<String>,
        lp: Option<&TokenLogprob>,
        finish: Option<&'static str>,
    ) -> Value {
        if self.chat {
            let choice = ChatChoice {
                index,
                message: None,
                delta: Some(ChatDelta {
                    role: None,
                    content: text,
                }),
                logprobs: lp.map(|lp| ChatLogprobs {
                    content: vec![chat_logprob(tokenizer, lp)],
                }),
                finish_reason: finish,
            };
            self.wrap(json!([choice]), None)
        } else {
            let logprobs = lp.map(|lp| CompletionLogprobs {
                tokens: vec![token_text(tokenizer, lp.id)],
                token_logprobs: vec![Some(lp.logprob)],
                top_logprobs: vec![Some(top_map(tokenizer, lp))],
                text_offset: vec![0],
            });
            let choice = CompletionChoice {
                text: text.unwrap_or_default(),
                index,
                logprobs,
                finish_reason: finish,
            };
            self.wrap(json!([choice]), None)
        }
    }

    /// The first chunk of a chat choice: the assistant's role.
    fn role(&self, index: usize) -> Value {
        let choice = ChatChoice {
            index,
            message: None,
            delta: Some(ChatDelta {
                role: Some("assistant"),
                content: Some(String::new()),
            }),
            logprobs: None,
            finish_reason: None,
        };
        self.wrap(json!([choice]), None)
    }

    fn wrap(&self, choices: Value, usage: Option<Usage>) -> Value {
        let object = if self.chat {
            "chat.completion.chunk"
        } else {
            "text_completion"
        };
        let mut v = json!({
            "id": self.id, "object": object, "created": self.created, "model": self.model,
            "choices": choices,
        });
        if let Some(u) = usage {
            v["usage"] = json!(u);
        }
        v
    }
}

/// How a stream of `count` choices (`per_prompt` per prompt) is sent.
struct StreamPlan {
    /// Send the usage chunk.
    include_usage: bool,
    /// Completions with `echo`: each choice's prompt, sent first.
    echoes: Option<Vec<String>>,
    count: usize,
    per_prompt: usize,
}

/// Streams the choices as Server-Sent Events, exactly as OpenAI does: a
/// chunk per piece, a chunk with each choice's finish reason, the usage
/// chunk when asked for, then `[DONE]`. A task relays the engine's events;
/// when the client goes away the relay ends and drops `running`, which
/// cancels the streams.
fn stream(
    app: Arc<App>,
    served: Arc<Served>,
    mut running: Running,
    head: Head,
    plan: StreamPlan,
) -> Response {
    let StreamPlan {
        include_usage,
        echoes,
        count,
        per_prompt,
    } = plan;
    let (tx, rx) = mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let Kind::Language(lm) = &served.kind else {
            return;
        };
        let tok = &lm.tokenizer;
        // A client that stops reading holds its slot only until the deadline.
        let deadline = running.deadline();
        let send = |v: Value| {
            let tx = tx.clone();
            let event = Event::default().data(v.to_string());
            async move {
                matches!(
                    timeout_at(deadline.into(), tx.send(event)).await,
                    Ok(Ok(()))
                )
            }
        };
        for i in 0..count {
            let first = match (&echoes, head.chat) {
                (_, true) => Some(head.role(i)),
                (Some(e), false) => Some(head.chunk(tok, i, Some(e[i].clone()), None, None)),
                _ => None,
            };
            if let Some(v) = first {
                if !send(v).await {
                    return;
                }
            }
        }
        let mut counts = vec![(0, 0); count];
        let mut held: Option<(usize, StreamEvent)> = None;
        loop {
            let next = match held.take() {
                Some(event) => Ok(Some(event)),
                None => running.next(&app).await,
            };
            let chunk = match next {
                Ok(None) => break,
                Err(e) => e.body(),
                Ok(Some((i, event))) => match event {
                    StreamEvent::Prompt(_) => continue,
                    StreamEvent::Token { mut text, logprob } => {
                        if logprob.is_none() {
                            // When the client falls behind, the pieces that
                            // are already here go out as one chunk.
                            while let Some(e) = running.try_next(&app) {
                                match e {
                                    (
                                        j,
                                        StreamEvent::Token {
                                            text: more,
                                            logprob: None,
                                        },
                                    ) if j == i => text.push_str(&more),
                                    e => {
                                        held = Some(e);
                                        break;
                                    }
                                }
                            }
                        }
                        if text.is_empty() && logprob.is_none() {
                            continue;
                        }
                        head.chunk(tok, i, Some(text), logprob.as_ref(), None)
                    }
                    StreamEvent::Finished {
                        tail,
                        reason,
                        prompt_tokens,
                        completion_tokens,
                    } => {
                        counts[i] = (prompt_tokens, completion_tokens);
                        if reason == FinishReason::Cancelled {
                            ApiError::ShuttingDown.body()
                        } else {
                            if !tail.is_empty()
                                && !send(head.chunk(tok, i, Some(tail), None, None)).await
                            {
                                return;
                            }
                            let text = (!head.chat).then(String::new);
                            head.chunk(tok, i, text, None, Some(finish_reason(reason)))
                        }
                    }
                },
            };
            if chunk.get("error").is_some() {
                // Free the slot and the rows before telling the client.
                drop(running);
                if send(chunk).await {
                    let _ = tx.send(Event::default().data("[DONE]")).await;
                }
                return;
            }
            if !send(chunk).await {
                return;
            }
        }
        if include_usage {
            let choices: Vec<Choice> = counts
                .iter()
                .map(|&(p, c)| Choice {
                    prompt_tokens: p,
                    completion_tokens: c,
                    ..Choice::default()
                })
                .collect();
            if !send(head.wrap(json!([]), Some(usage(&choices, per_prompt)))).await {
                return;
            }
        }
        let _ = tx.send(Event::default().data("[DONE]")).await;
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(events).into_response()
}

async fn score(State(app): Shared, body: Body) -> Result<Json<Score>, ApiError> {
    let arrived = Instant::now();
    let req: ScoreRequest = parse(&app, body)?;
    let served = find(&app, &req.model)?;
    let lm = language(&served)?;
    // After a document boundary every token of the text has a prediction.
    let mut prompt: Vec<u32> = lm.tokenizer.boundary().into_iter().collect();
    prompt.extend(encode(&lm.tokenizer, &req.text, "text")?);
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
    let deadline = arrived + app.options.request_timeout;
    let _slot = app.limiter.acquire(deadline, &app).await?;
    let options = recurrent::DecodeOptions {
        beam: beam as usize,
        threads: app.options.threads,
        ..recurrent::DecodeOptions::default()
    };
    let model = served.clone();
    let work = tokio::task::spawn_blocking(move || {
        let Kind::Seq2Seq(checkpoint) = &model.kind else {
            unreachable!("checked above")
        };
        recurrent::translate(checkpoint, &sources, &options)
    });
    let out = tokio::time::timeout_at(deadline.into(), work)
        .await
        .map_err(|_| crate::session::timeout(&app))?
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| match e {
            recurrent::Error::Line { .. } | recurrent::Error::InvalidOption { .. } => {
                ApiError::invalid("input", e.to_string())
            }
            e => ApiError::Internal(e.to_string()),
        })?;
    Ok(Json(Translations {
        object: "translation",
        model: served.name.clone(),
        translations: out.into_iter().map(|t| t.text).collect(),
    }))
}
