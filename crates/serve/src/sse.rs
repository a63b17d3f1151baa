//! Server-Sent Events: a request's streams relayed to the client as
//! OpenAI's chunks.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use recurrent::{FinishReason, StreamEvent, TokenLogprob, Tokenizer};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::timeout_at;

use crate::api::*;
use crate::error::ApiError;
use crate::generation::{chat_logprob, finish_reason, token_text, top_map, usage, Choice};
use crate::session::Running;
use crate::{App, Kind, Served};

/// What every chunk of a stream repeats.
pub(crate) struct Head {
    /// The response id.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The model's name.
    pub model: String,
    /// Chat chunks (else completions chunks).
    pub chat: bool,
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
pub(crate) struct StreamPlan {
    /// Send the usage chunk.
    pub include_usage: bool,
    /// Completions with `echo`: each choice's prompt, sent first.
    pub echoes: Option<Vec<String>>,
    /// Choices.
    pub count: usize,
    /// Choices per prompt.
    pub per_prompt: usize,
}

/// Streams the choices as Server-Sent Events, exactly as OpenAI does: a
/// chunk per piece, a chunk with each choice's finish reason, the usage
/// chunk when asked for, then `[DONE]`. A task relays the engine's events;
/// when the client goes away the relay ends and drops `running`, which
/// cancels the streams.
pub(crate) fn stream(
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
        let tok = lm.tokenizer();
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
