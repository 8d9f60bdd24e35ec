//! The API's one error type and its one JSON shape, `{"error": "<what went wrong>"}`: a 4xx carries a safe
//! message; a 5xx is logged once and answered generically.
//!
//! Errors that do not come from a handler (axum's 404 and 405 fallbacks, body-limit 413, extractor rejections,
//! the request timeout) are rewritten into the same shape by [`json_errors`], so an API client never has to
//! parse plain text.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::devices::commands::EnqueueError;
use crate::store::StoreError;

/// An API error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: the request is wrong; the message says how.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no or unknown token.
    #[error("missing or invalid API token (send `Authorization: Bearer <token>`; create one with `punchd token create`)")]
    Unauthorized,
    /// 403: the token's scope is too low for the route; the message names the scope needed.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 502: a system punchd talks to on the caller's behalf (Frappe) failed; the message says how.
    #[error("{0}")]
    BadGateway(String),
    /// 500/503: logged, not shown.
    #[error("internal error")]
    Internal(String),
}

/// The body of every API error response.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ApiError {
    /// What went wrong, for a person.
    pub error: String,
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        match e {
            StoreError::NotFound(what) => Error::NotFound(format!("{what} not found")),
            StoreError::Conflict(what) => Error::Conflict(what),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<EnqueueError> for Error {
    fn from(e: EnqueueError) -> Error {
        match e {
            EnqueueError::UnknownDevice(sn) => Error::NotFound(format!("device {sn} not found")),
            EnqueueError::Invalid(msg) => Error::BadRequest(msg),
            EnqueueError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "API request failed");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        let mut response = (
            status,
            Json(ApiError {
                error: self.to_string(),
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"punchd\""),
            );
        }
        response
    }
}

/// Longest plain-text error body carried over into the JSON message (bytes).
const MAX_CARRIED: usize = 1024;

/// Middleware for `/api/…`: an error response (4xx/5xx) that is not JSON becomes `{"error": "…"}` with the same
/// status and headers (422, a JSON body of the wrong shape, becomes 400); its text (or the status's reason when
/// empty) is the message.
pub async fn json_errors(request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // A JSON body of the wrong shape is a bad request like any other (axum says 422); one answer for all.
    if parts.status == StatusCode::UNPROCESSABLE_ENTITY {
        parts.status = StatusCode::BAD_REQUEST;
    }
    let bytes = axum::body::to_bytes(body, MAX_CARRIED * 4)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_CARRIED)])
        .trim()
        .to_owned();
    let message = if text.is_empty() {
        match status {
            StatusCode::NOT_FOUND => "no such API route (see /api/v1/openapi.json)".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED => {
                "method not allowed on this route (see /api/v1/openapi.json)".to_owned()
            }
            other => other
                .canonical_reason()
                .unwrap_or("request failed")
                .to_lowercase(),
        }
    } else {
        text
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&ApiError { error: message }).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}
