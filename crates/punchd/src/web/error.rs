//! The API's one error type: a 4xx carries a safe message; a 5xx is logged once and answered generically.

use axum::http::StatusCode;
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
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 500/503: logged, not shown.
    #[error("internal error")]
    Internal(String),
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
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "API request failed");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}
