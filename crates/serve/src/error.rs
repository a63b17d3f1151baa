//! Every error a request can get, and its HTTP status, in one place:
//! rendered as OpenAI's `{"error": {"message", "type", "param", "code"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error answered to a client.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// A field has a bad value, or the body is not the JSON expected.
    #[error("{message}")]
    Invalid {
        /// The field, if one is at fault.
        param: Option<&'static str>,
        /// What is wrong, naming the value.
        message: String,
    },
    /// The body is larger than the server accepts.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No model of that name is served.
    #[error("the model '{name}' does not exist (see GET /v1/models)")]
    UnknownModel {
        /// The name asked for.
        name: String,
    },
    /// The model exists but cannot do this (translation from a language model, ...).
    #[error("the model '{name}' cannot do this: it is a {kind} model")]
    WrongKind {
        /// The name asked for.
        name: String,
        /// What it is.
        kind: &'static str,
    },
    /// The bearer token is missing or wrong.
    #[error("missing or incorrect API key (send Authorization: Bearer <key>)")]
    Unauthorized,
    /// No route for this path.
    #[error("no endpoint {path}")]
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// Too many requests running and waiting.
    #[error("too many concurrent requests ({limit} running, queue full); retry later")]
    Busy {
        /// Requests allowed to run at once.
        limit: usize,
    },
    /// The models are still loading.
    #[error("the server is loading its models; retry shortly")]
    Loading,
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The request took longer than the server allows.
    #[error("the request took longer than {seconds} s")]
    Timeout {
        /// The limit in seconds.
        seconds: f64,
    },
    /// A failure of the server itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A bad value of field `param`.
    pub fn invalid(param: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            param: Some(param),
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::WrongKind { .. } => StatusCode::BAD_REQUEST,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnknownModel { .. } | ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Loading | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's `type` and `code`.
    fn kind_and_code(&self) -> (&'static str, Option<&'static str>) {
        match self {
            ApiError::Invalid { .. } => ("invalid_request_error", None),
            ApiError::WrongKind { .. } => ("invalid_request_error", Some("model_not_supported")),
            ApiError::TooLarge { .. } => ("invalid_request_error", Some("body_too_large")),
            ApiError::UnknownModel { .. } => ("invalid_request_error", Some("model_not_found")),
            ApiError::NotFound { .. } => ("invalid_request_error", Some("unknown_url")),
            ApiError::Unauthorized => ("invalid_request_error", Some("invalid_api_key")),
            ApiError::Busy { .. } => ("rate_limit_error", Some("too_many_requests")),
            ApiError::Loading => ("server_error", Some("loading")),
            ApiError::ShuttingDown => ("server_error", Some("shutting_down")),
            ApiError::Timeout { .. } => ("server_error", Some("timeout")),
            ApiError::Internal(_) => ("server_error", None),
        }
    }

    /// The error object, as a JSON value (also sent inside streams).
    pub fn body(&self) -> serde_json::Value {
        let (kind, code) = self.kind_and_code();
        let param = match self {
            ApiError::Invalid { param, .. } => *param,
            ApiError::UnknownModel { .. } | ApiError::WrongKind { .. } => Some("model"),
            _ => None,
        };
        json!({"error": {"message": self.to_string(), "type": kind, "param": param, "code": code}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(self.body())).into_response()
    }
}
