//! Every error the API answers with: a stable `error` code, a human message, and for
//! invalid fields the field's name. Internal details never reach the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hotlead_app::ports::with_causes;
use hotlead_app::review::ReviewError;
use hotlead_app::{IngestError, StoreError};
use serde_json::json;

#[derive(Debug)]
pub enum ApiError {
    /// 400: the body is not what the content type says.
    Malformed(String),
    /// 401: credentials are needed and none were given.
    Unauthorized(&'static str),
    /// 403: the credentials given are wrong.
    Forbidden(&'static str),
    /// 404
    NotFound(String),
    /// 405: the route takes other methods (its `Allow` header says which).
    MethodNotAllowed,
    /// 413
    TooLarge(String),
    /// 415
    UnsupportedMediaType(String),
    /// 409: the resource is not in a state that allows this (a suggestion decided already).
    Conflict(String),
    /// 422: a field is invalid.
    Invalid { field: String, message: String },
    /// 429: the client's requests this minute passed its limit; it may retry after
    /// `retry_after` seconds (the `Retry-After` header).
    TooManyRequests { retry_after: u64 },
    /// 503: the store is unavailable or busy; nothing was stored; the client may retry.
    Unavailable,
    /// 503: a batch stopped part way; `results` are the calls stored (in order); a retry
    /// of the whole batch stores the rest.
    BatchInterrupted { results: Vec<serde_json::Value> },
    /// 500: a fault of ours; logged, not explained.
    Internal,
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Seconds a client is asked to wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: u32 = 5;

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            // Names what the client asked for, and no more.
            StoreError::NotFound { .. } => ApiError::NotFound(error.to_string()),
            StoreError::Conflict { .. } | StoreError::Unavailable { .. } => {
                tracing::warn!(error = %with_causes(&error), "store unavailable");
                ApiError::Unavailable
            }
            StoreError::Rejected { .. } => {
                tracing::warn!(error = %with_causes(&error), "the store refused a request");
                ApiError::invalid(
                    "(body)",
                    "this call cannot be stored as it is (an id or a value too long, or the lead too large)",
                )
            }
            other => {
                tracing::error!(error = %with_causes(&other), "store failure");
                ApiError::Internal
            }
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::Invalid { field, message } => ApiError::Invalid { field, message },
            IngestError::TooMany { .. } => ApiError::TooLarge(error.to_string()),
            IngestError::Reused { .. } => ApiError::Conflict(error.to_string()),
            IngestError::Throttled { retry_after } => ApiError::TooManyRequests { retry_after },
            IngestError::Interrupted { stored, source } => {
                tracing::warn!(stored = stored.len(), error = %with_causes(&source), "a batch stopped part way");
                ApiError::BatchInterrupted {
                    results: stored.iter().map(crate::recorded_json).collect(),
                }
            }
            IngestError::Store(e) => e.into(),
        }
    }
}

impl From<ReviewError> for ApiError {
    fn from(error: ReviewError) -> Self {
        match error {
            ReviewError::Invalid { field, message } => ApiError::Invalid { field, message },
            ReviewError::NotFound(m) => ApiError::NotFound(m),
            ReviewError::Conflict(m) => ApiError::Conflict(m),
            ReviewError::Learn(m) => {
                tracing::error!(error = %m, "learning failed");
                ApiError::Internal
            }
            ReviewError::Unavailable(m) => {
                tracing::warn!(error = %m, "unavailable");
                ApiError::Unavailable
            }
            ReviewError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::BatchInterrupted { results } = self {
            let message = format!(
                "the service is busy: the first {} calls of the batch were stored, the others were not; \
                 retry the whole batch (stored calls are not stored twice)",
                results.len()
            );
            let body = json!({"error": "unavailable", "message": message, "stored": results.len(), "results": results});
            return with_retry_after((StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response());
        }
        let retry_after = match self {
            ApiError::Unavailable => Some(u64::from(RETRY_AFTER_SECONDS)),
            ApiError::TooManyRequests { retry_after } => Some(retry_after),
            _ => None,
        };
        let (status, code, message, field) = match self {
            ApiError::Malformed(m) => (StatusCode::BAD_REQUEST, "malformed", m, None),
            ApiError::Unauthorized(m) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                m.to_string(),
                None,
            ),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.to_string(), None),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m, None),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method (see the Allow header)".to_string(),
                None,
            ),
            ApiError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", m, None),
            ApiError::UnsupportedMediaType(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                m,
                None,
            ),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m, None),
            ApiError::Invalid { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("field `{field}`: {message}"),
                Some(field),
            ),
            ApiError::TooManyRequests { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!(
                    "too many requests from this address; nothing was stored, try again in {retry_after} s"
                ),
                None,
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the service is busy; nothing was stored, please retry".to_string(),
                None,
            ),
            // (A batch interrupted is answered above.)
            ApiError::Internal | ApiError::BatchInterrupted { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "an internal error occurred".to_string(),
                None,
            ),
        };
        let mut body = json!({"error": code, "message": message});
        if let Some(field) = field {
            body["field"] = json!(field);
        }
        let response = (status, Json(body)).into_response();
        match retry_after {
            Some(seconds) => with_retry_after_seconds(response, seconds),
            None => response,
        }
    }
}

/// A 503 tells the client when to try again.
fn with_retry_after(response: Response) -> Response {
    with_retry_after_seconds(response, u64::from(RETRY_AFTER_SECONDS))
}

fn with_retry_after_seconds(mut response: Response, seconds: u64) -> Response {
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(seconds),
    );
    response
}
