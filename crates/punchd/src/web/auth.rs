//! API tokens: random secrets shown once; only their SHA-256 is stored. `/iclock` stays open to terminals.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::error::Error;
use crate::app::App;

/// Prefix of every token, so a leaked one is recognisable in logs and secret scanners.
pub const TOKEN_PREFIX: &str = "pd_";

/// A new random token (`pd_` + 40 hex characters, 160 bits).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Name of the token that authorised a request (put in request extensions).
#[derive(Debug, Clone)]
pub struct TokenName(pub String);

/// Middleware: require `Authorization: Bearer <token>` naming a live token.
pub async fn require_token(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_owned);
    let Some(token) = token else {
        return Error::Unauthorized.into_response();
    };
    match app.store.find_token(&hash_token(&token)).await {
        Ok(Some(info)) => {
            request.extensions_mut().insert(TokenName(info.name));
            next.run(request).await
        }
        Ok(None) => Error::Unauthorized.into_response(),
        Err(e) => Error::from(e).into_response(),
    }
}
