//! API tokens: random secrets shown once; only their SHA-256 is stored. `/iclock` stays open to terminals.
//!
//! Every token has a [`Scope`] (`read` < `operate` < `admin`). [`require_token`] authenticates a request
//! (`Authorization: Bearer <token>`, the scheme in any letter case, RFC 9110 §11.1) and puts the [`Caller`] in
//! the request's extensions; [`scoped`] wraps a group of routes so that only tokens of at least that scope reach
//! them (403 otherwise). A module adding routes writes `auth::scoped(Scope::Operate, Router::new().route(…))`
//! and documents the same scope in its utoipa path (`security(("bearer" = ["operate"]))`).

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::error::Error;
use crate::app::App;
use crate::domain::Scope;

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

/// Who made a request: the token's name and scope (put in request extensions by [`require_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
}

/// The token of an `Authorization` header value: `Bearer <token>`, the scheme compared without case.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(char::is_whitespace)?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Middleware: require `Authorization: Bearer <token>` naming a live token; 401 otherwise.
pub async fn require_token(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(str::to_owned);
    let Some(token) = token else {
        return Error::Unauthorized.into_response();
    };
    match app.store.find_token(&hash_token(&token)).await {
        Ok(Some(info)) => {
            request
                .extensions_mut()
                .insert(TokenName(info.name.clone()));
            request.extensions_mut().insert(Caller {
                name: info.name,
                scope: info.scope,
            });
            next.run(request).await
        }
        Ok(None) => Error::Unauthorized.into_response(),
        Err(e) => Error::from(e).into_response(),
    }
}

/// Only tokens of at least `needed` reach `routes` (403 with the scope needed otherwise). Must sit inside
/// [`require_token`] (the API router applies it to every route).
pub fn scoped(needed: Scope, routes: Router<App>) -> Router<App> {
    scoped_by_method(needed, needed, routes)
}

/// Like [`scoped`], with one scope for reading (`GET`, `HEAD`) and another for every other method: for areas
/// whose routes read and change the same resources (attendance).
pub fn scoped_by_method(reads: Scope, writes: Scope, routes: Router<App>) -> Router<App> {
    routes.route_layer(axum::middleware::from_fn(
        move |request: Request, next: Next| async move {
            let needed = if matches!(
                *request.method(),
                axum::http::Method::GET | axum::http::Method::HEAD
            ) {
                reads
            } else {
                writes
            };
            match request.extensions().get::<Caller>() {
                Some(caller) if caller.scope.allows(needed) => next.run(request).await,
                Some(caller) => Error::Forbidden(format!(
                    "token {:?} has scope {}; this needs {needed} (create one with `punchd token create NAME --scope {needed}`)",
                    caller.name, caller.scope
                ))
                .into_response(),
                None => Error::Unauthorized.into_response(),
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        assert_eq!(bearer_token("Bearer pd_1"), Some("pd_1"));
        assert_eq!(bearer_token("bearer pd_1"), Some("pd_1"));
        assert_eq!(bearer_token("BEARER   pd_1 "), Some("pd_1"));
        assert_eq!(bearer_token("Basic pd_1"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("pd_1"), None);
    }
}
