//! Completions and chat completions: their settings, checked; one engine
//! stream per prompt and choice; the answers gathered and rendered.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use recurrent::generate::SamplingConfig;
use recurrent::kernels::Rng;
use recurrent::{FinishReason, StreamEvent, StreamRequest, TokenLogprob, Tokenizer};
use serde_json::Value;

use crate::api::*;
use crate::error::ApiError;
use crate::routes::{find, language, parse, Body, Shared};
use crate::session::Running;
use crate::sse::{stream, Head, StreamPlan};
use crate::{unix_secs, App, LanguageModel};

/// Most stop strings per request, as OpenAI allows.
const MAX_STOPS: usize = 4;
/// Most alternatives per token.
const MAX_TOP_LOGPROBS: usize = 20;
/// Completions' default length, as OpenAI's.
const COMPLETION_DEFAULT_TOKENS: usize = 16;
/// Chat's default length (OpenAI's is the context's rest; a char model has none).
const CHAT_DEFAULT_TOKENS: usize = 256;

/// The checked settings shared by completions and chat.
pub(crate) struct Settings {
    max_tokens: usize,
    sampling: SamplingConfig,
    n: usize,
    stops: Vec<String>,
    seed: u64,
    stream: bool,
    include_usage: bool,
}

pub(crate) fn settings(
    app: &App,
    s: &Sampling,
    default_tokens: usize,
) -> Result<Settings, ApiError> {
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
pub(crate) fn encode(
    tokenizer: &Tokenizer,
    text: &str,
    param: &'static str,
) -> Result<Vec<u32>, ApiError> {
    tokenizer.encode(text).map_err(|e| {
        ApiError::invalid(
            param,
            format!("{param} cannot be encoded with the model's vocabulary: {e}"),
        )
    })
}

/// `top` alternatives (0 to 20), named `param`.
pub(crate) fn top_count(param: &'static str, v: i64) -> Result<usize, ApiError> {
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
pub(crate) fn stream_requests(
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
pub(crate) async fn start(
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
pub(crate) struct Choice {
    pub text: String,
    pub prompt: Vec<TokenLogprob>,
    pub tokens: Vec<TokenLogprob>,
    pub finish: Option<FinishReason>,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// Every event of every choice.
pub(crate) async fn gather(
    app: &App,
    mut running: Running,
    count: usize,
) -> Result<Vec<Choice>, ApiError> {
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

pub(crate) fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length | FinishReason::Cancelled => "length",
    }
}

/// Token counts; a prompt counts once however many choices it has.
pub(crate) fn usage(choices: &[Choice], n: usize) -> Usage {
    let prompt_tokens = choices.iter().step_by(n).map(|c| c.prompt_tokens).sum();
    let completion_tokens = choices.iter().map(|c| c.completion_tokens).sum();
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
    }
}

/// A token's text, as the logprobs objects show it.
pub(crate) fn token_text(tokenizer: &Tokenizer, id: u32) -> String {
    tokenizer.decode(&[id])
}

/// The alternatives as completions' `{token: logprob}` map.
pub(crate) fn top_map(tokenizer: &Tokenizer, lp: &TokenLogprob) -> BTreeMap<String, f64> {
    lp.top
        .iter()
        .map(|&(id, v)| (token_text(tokenizer, id), v))
        .collect()
}

/// Completions' logprobs: the prompt's first (with `echo`), then the rest.
pub(crate) fn completion_logprobs(
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
pub(crate) fn chat_logprob(tokenizer: &Tokenizer, lp: &TokenLogprob) -> ChatTokenLogprob {
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

pub(crate) async fn completions(State(app): Shared, body: Body) -> Response {
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
        .map(|t| encode(lm.tokenizer(), t, "prompt"))
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
                    completion_logprobs(lm.tokenizer(), req.echo.then_some(prompt.as_slice()), c)
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
pub(crate) fn chat_prompt(messages: &[ChatMessage]) -> Result<String, ApiError> {
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

pub(crate) async fn chat(State(app): Shared, body: Body) -> Response {
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
    let prompt = encode(lm.tokenizer(), &prompt, "messages").map_err(fail)?;
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
                    .map(|lp| chat_logprob(lm.tokenizer(), lp))
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
