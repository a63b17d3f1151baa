//! The requests and responses of the OpenAI-compatible API, as serde types.
//! Only the fields this server reads or writes; unknown request fields are
//! ignored, as OpenAI-compatible servers commonly do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One string or a list of them (`prompt`, `stop`).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single string.
    One(String),
    /// A list of strings.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings, in order.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `stream_options`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the token counts.
    #[serde(default)]
    pub include_usage: bool,
}

/// Settings shared by completions and chat completions.
#[derive(Clone, Debug, Deserialize)]
pub struct Sampling {
    /// The model's name.
    pub model: String,
    /// Tokens to generate at most (signed so a negative value is reported, not a parse error).
    pub max_tokens: Option<i64>,
    /// Chat's newer name for `max_tokens`.
    pub max_completion_tokens: Option<i64>,
    /// Sampling temperature, 0 to 2.
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    pub top_p: Option<f32>,
    /// Keep only the k most likely tokens.
    pub top_k: Option<i64>,
    /// Completions per prompt.
    pub n: Option<i64>,
    /// Stop strings.
    pub stop: Option<OneOrMany>,
    /// Seed of the random draws.
    pub seed: Option<u64>,
    /// Stream Server-Sent Events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
}

/// `POST /v1/completions`.
#[derive(Clone, Debug, Deserialize)]
pub struct CompletionRequest {
    /// The prompt (or prompts).
    pub prompt: Option<OneOrMany>,
    /// Shared settings.
    #[serde(flatten)]
    pub sampling: Sampling,
    /// Log-probabilities of each token with this many alternatives.
    pub logprobs: Option<i64>,
    /// Return the prompt too, with its log-probabilities.
    #[serde(default)]
    pub echo: bool,
}

/// A chat message; `content` is a string or a list of text parts.
#[derive(Clone, Debug, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, ...
    #[serde(default)]
    pub role: String,
    /// The text.
    #[serde(default)]
    pub content: Value,
}

/// `POST /v1/chat/completions`.
#[derive(Clone, Debug, Deserialize)]
pub struct ChatRequest {
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Shared settings.
    #[serde(flatten)]
    pub sampling: Sampling,
    /// Return log-probabilities.
    #[serde(default)]
    pub logprobs: bool,
    /// Alternatives per token with `logprobs`.
    pub top_logprobs: Option<i64>,
}

/// `POST /v1/score`.
#[derive(Clone, Debug, Deserialize)]
pub struct ScoreRequest {
    /// The model's name.
    pub model: String,
    /// The text to score.
    pub text: String,
}

/// `POST /v1/translate`.
#[derive(Clone, Debug, Deserialize)]
pub struct TranslateRequest {
    /// The model's name.
    pub model: String,
    /// Sentences to translate.
    pub input: OneOrMany,
    /// Beam width (1: greedy).
    pub beam: Option<i64>,
}

/// Token counts.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Their sum.
    pub total_tokens: usize,
}

/// Completions' `logprobs` object (the legacy format).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct CompletionLogprobs {
    /// Each token's text.
    pub tokens: Vec<String>,
    /// Each token's log-probability (`null` for the prompt's first).
    pub token_logprobs: Vec<Option<f64>>,
    /// The most likely alternatives at each position.
    pub top_logprobs: Vec<Option<BTreeMap<String, f64>>>,
    /// Where each token starts in the choice's text, in bytes.
    pub text_offset: Vec<usize>,
}

/// One completion choice (or a streamed piece of one).
#[derive(Clone, Debug, Serialize)]
pub struct CompletionChoice {
    /// The text.
    pub text: String,
    /// Which choice.
    pub index: usize,
    /// Log-probabilities, when asked for.
    pub logprobs: Option<CompletionLogprobs>,
    /// `stop` or `length`; `null` while streaming.
    pub finish_reason: Option<&'static str>,
}

/// A completions response or stream chunk.
#[derive(Clone, Debug, Serialize)]
pub struct Completion {
    /// `cmpl-...`.
    pub id: String,
    /// `text_completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model's name.
    pub model: String,
    /// The choices.
    pub choices: Vec<CompletionChoice>,
    /// Token counts (streams: only in the usage chunk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// Chat's per-token log-probability.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ChatTokenLogprob {
    /// The token's text.
    pub token: String,
    /// Its log-probability.
    pub logprob: f64,
    /// Its UTF-8 bytes.
    pub bytes: Vec<u8>,
    /// The most likely alternatives (without their own alternatives).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<Vec<ChatTokenLogprob>>,
}

/// Chat's `logprobs` object.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ChatLogprobs {
    /// One entry per generated token.
    pub content: Vec<ChatTokenLogprob>,
}

/// A message (`message` in a response, `delta` in a stream chunk).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChatDelta {
    /// `assistant`, in the message and the first delta.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// The text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// One chat choice (or a streamed piece of one).
#[derive(Clone, Debug, Serialize)]
pub struct ChatChoice {
    /// Which choice.
    pub index: usize,
    /// The whole message (responses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<ChatDelta>,
    /// A piece of the message (stream chunks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<ChatDelta>,
    /// Log-probabilities, when asked for.
    pub logprobs: Option<ChatLogprobs>,
    /// `stop` or `length`; `null` while streaming.
    pub finish_reason: Option<&'static str>,
}

/// A chat response or stream chunk.
#[derive(Clone, Debug, Serialize)]
pub struct ChatCompletion {
    /// `chatcmpl-...`.
    pub id: String,
    /// `chat.completion` or `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model's name.
    pub model: String,
    /// The choices.
    pub choices: Vec<ChatChoice>,
    /// Token counts (streams: only in the usage chunk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// `GET /v1/models` entries.
#[derive(Clone, Debug, Serialize)]
pub struct ModelCard {
    /// The name requests use.
    pub id: String,
    /// `model`.
    pub object: &'static str,
    /// Unix seconds when it was loaded.
    pub created: u64,
    /// `recurrent`.
    pub owned_by: &'static str,
    /// `language` or `seq2seq`.
    pub kind: &'static str,
}

/// `GET /v1/models`.
#[derive(Clone, Debug, Serialize)]
pub struct ModelList {
    /// `list`.
    pub object: &'static str,
    /// The models.
    pub data: Vec<ModelCard>,
}

/// `POST /v1/score` response.
#[derive(Clone, Debug, Serialize)]
pub struct Score {
    /// `score`.
    pub object: &'static str,
    /// The model's name.
    pub model: String,
    /// Tokens scored.
    pub tokens: usize,
    /// Total log-probability of the text (natural log).
    pub logprob: f64,
    /// `exp(-logprob / tokens)`.
    pub perplexity: f64,
    /// Bits per token.
    pub bits_per_token: f64,
}

/// `POST /v1/translate` response.
#[derive(Clone, Debug, Serialize)]
pub struct Translations {
    /// `translation`.
    pub object: &'static str,
    /// The model's name.
    pub model: String,
    /// One per input sentence, in order.
    pub translations: Vec<String>,
}
