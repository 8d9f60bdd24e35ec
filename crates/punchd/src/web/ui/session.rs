//! Signing in and out of the web UI: argon2 password hashes, server-side sessions, the session cookie, the
//! CSRF check, and the sign-in rate limit.
//!
//! The cookie (`pd_session`, `HttpOnly; SameSite=Lax; Path=/ui`, plus `Secure` with `[ui] secure_cookies`)
//! holds 32 random bytes in hex; the store keeps only their SHA-256, with a per-session CSRF token and the time
//! of last use (a session idle longer than `[ui] session_idle_mins` is over). Failed sign-ins are counted per
//! address and account name in memory ([`LoginLimiter`]); past `[ui] login_attempts` within
//! `[ui] login_window_mins`, sign-in answers 429 without checking the password.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chrono::Utc;
use maud::html;
use rand::RngCore;
use serde::Deserialize;

use super::layout::{self, cookie, field, html, Flash, FormErrors};
use super::{UiConfig, UiCtx};
use crate::app::App;
use crate::domain::{Role, Scope};
use crate::store::ui_accounts::NewUiSession;
use crate::web::auth::hash_token;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "pd_session";
/// The form field that carries the CSRF token in every `POST` form.
pub const CSRF_FIELD: &str = "_csrf";
/// The header that may carry the CSRF token instead (scripts).
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Shortest password accepted for a UI account.
pub const MIN_PASSWORD_LEN: usize = 10;
/// A session's last use is written at most this often (each request would otherwise be a write).
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// The signed-in user of a UI request (put in the request's extensions by [`require_session`]; also an
/// extractor, which redirects to the sign-in page when there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiUser {
    /// The account's name.
    pub name: String,
    /// The account's role.
    pub role: Role,
    /// The session's CSRF token (forms carry it in [`CSRF_FIELD`]).
    pub csrf: String,
}

impl UiUser {
    /// The API token scope with the same rights.
    pub fn scope(&self) -> Scope {
        self.role.scope()
    }

    /// Whether this user may do what needs `needed`.
    pub fn may(&self, needed: Scope) -> bool {
        self.role.allows(needed)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for UiUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<UiUser>()
            .cloned()
            .ok_or_else(|| to_login(&super::full_path(&parts.uri)).into_response())
    }
}

/// To the sign-in page, coming back to `path` (a full `/ui…` path with its query) afterwards.
fn to_login(path: &str) -> Redirect {
    if path.is_empty() || path == "/ui" || path == "/ui/" {
        Redirect::to("/ui/login")
    } else {
        Redirect::to(&format!("/ui/login?next={}", layout::enc(path)))
    }
}

/// Hash a password for storage (argon2id, a random 16-byte salt; a PHC string).
///
/// Errors: argon2 refused the input (a password longer than argon2 accepts).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

/// Whether `password` matches a stored PHC hash (false for an unreadable hash).
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// A hash to check against when the account does not exist, so the answer takes as long either way.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default())
}

/// Check a new password: at least [`MIN_PASSWORD_LEN`] characters, not only spaces.
///
/// Errors: the reason, for the person choosing it.
pub fn check_new_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LEN || password.trim().is_empty() {
        return Err(format!(
            "a password needs at least {MIN_PASSWORD_LEN} characters"
        ));
    }
    Ok(())
}

/// Check a new account name: 1–64 letters, digits, `.`, `_`, `-` or `@`.
///
/// Errors: the reason, for the person choosing it.
pub fn check_account_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "account name {name:?} must be 1–64 letters, digits, '.', '_', '-' or '@'"
        ))
    }
}

fn random_hex(n_bytes: usize) -> String {
    let mut bytes = vec![0u8; n_bytes];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Compare two secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The client's address: the socket peer, or, behind a trusted proxy (`[push] trusted_proxies`), the last
/// address of `X-Forwarded-For` (the proxy's own addition) or `X-Real-IP`.
fn client_ip(
    app: &App,
    parts_extensions: &axum::http::Extensions,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    let peer = parts_extensions
        .get::<crate::sources::push::RemoteAddr>()
        .map(|a| a.0.ip())?;
    let trusted = app
        .config
        .push
        .trusted_proxies
        .iter()
        .any(|p| p.trim().parse::<IpAddr>().is_ok_and(|p| p == peer));
    if !trusted {
        return Some(peer);
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    };
    Some(
        header("x-forwarded-for")
            .or_else(|| header("x-real-ip"))
            .unwrap_or(peer),
    )
}

/// Whether a state-changing request comes from a page of this server: its `Origin` (or, without one, its
/// `Referer`) names the same host as `Host`. A request with neither passes (old clients; the CSRF token still
/// guards it).
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    match (origin, host) {
        (None, _) => true,
        (Some("null"), _) => false,
        (Some(origin), Some(host)) => {
            let rest = origin.split_once("://").map_or(origin, |(_, r)| r);
            rest.split('/').next() == Some(host)
        }
        (Some(_), None) => false,
    }
}

/// The `_csrf` value of an `application/x-www-form-urlencoded` body.
fn csrf_in_form(body: &[u8]) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == CSRF_FIELD).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// The `_csrf` value of a query string.
fn csrf_in_query(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == CSRF_FIELD).then(|| v.to_owned())
    })
}

/// Middleware of every signed-in UI route: find the session (else redirect to sign-in, or 401 for a script),
/// put the [`UiUser`] in the request, mark the session used, and check the CSRF token and origin of every
/// request that is not `GET` or `HEAD` (403 otherwise).
pub async fn require_session(State(app): State<App>, request: Request, next: Next) -> Response {
    let now = Utc::now();
    let idle = chrono::Duration::minutes(i64::from(app.config.ui.session_idle_mins.max(1)));
    let token = cookie(request.headers(), SESSION_COOKIE).map(str::to_owned);
    let session = match token {
        Some(token) => match app
            .store
            .find_ui_session(&hash_token(&token), now - idle)
            .await
        {
            Ok(found) => found,
            Err(e) => return super::UiError::from(e).into_response(),
        },
        None => None,
    };
    let Some(session) = session else {
        let safe = matches!(*request.method(), Method::GET | Method::HEAD);
        let wants_html = request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.contains("text/html") || v.contains("*/*"));
        if safe && wants_html {
            return to_login(&super::full_path(request.uri())).into_response();
        }
        return (
            StatusCode::UNAUTHORIZED,
            html(layout::bare_page(
                "Signed out",
                "your session is over; sign in again",
            )),
        )
            .into_response();
    };
    if now - session.last_seen_at > TOUCH_EVERY {
        if let Err(e) = app.store.touch_ui_session(&session.token_hash, now).await {
            tracing::warn!(error = %e, "could not record the use of a UI session");
        }
    }
    let user = UiUser {
        name: session.account.name.clone(),
        role: session.account.role,
        csrf: session.csrf_token.clone(),
    };
    let (parts, body) = request.into_parts();
    let request = if matches!(parts.method, Method::GET | Method::HEAD) {
        Request::from_parts(parts, body)
    } else {
        if !same_origin(&parts.headers) {
            return super::UiError::Forbidden(
                "this form was sent from another site; reload the page and try again".into(),
            )
            .into_response();
        }
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let mut presented = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| csrf_in_query(parts.uri.query()));
        let body = if is_form && presented.is_none() {
            let bytes = match axum::body::to_bytes(body, app.config.max_body_bytes).await {
                Ok(bytes) => bytes,
                Err(_) => {
                    return super::UiError::BadRequest("the form could not be read".into())
                        .into_response()
                }
            };
            presented = csrf_in_form(&bytes);
            axum::body::Body::from(bytes)
        } else {
            body
        };
        if !presented.is_some_and(|p| same_secret(&p, &user.csrf)) {
            return super::UiError::Forbidden(
                "the form's security token is missing or stale; reload the page and try again"
                    .into(),
            )
            .into_response();
        }
        Request::from_parts(parts, body)
    };
    let mut request = request;
    request.extensions_mut().insert(user);
    next.run(request).await
}

/// Failed sign-ins of one (address, account name): how many, since when.
type Failures = HashMap<(Option<IpAddr>, String), (u32, Instant)>;

/// Failed sign-ins per (address, account name), in memory.
#[derive(Debug)]
pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    failures: Mutex<Failures>,
}

/// At most this many (address, name) pairs are remembered; older ones are forgotten first.
const MAX_TRACKED: usize = 10_000;

impl LoginLimiter {
    /// A limiter with the settings' attempts and window.
    pub fn new(config: &UiConfig) -> LoginLimiter {
        LoginLimiter {
            max_failures: config.login_attempts.max(1),
            window: Duration::from_secs(u64::from(config.login_window_mins.max(1)) * 60),
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Failures> {
        match self.failures.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// How long until `key` may try again, when it is blocked now.
    pub fn blocked_for(&self, addr: Option<IpAddr>, name: &str, now: Instant) -> Option<Duration> {
        let map = self.lock();
        let (n, since) = map.get(&(addr, name.to_owned()))?;
        let elapsed = now.saturating_duration_since(*since);
        (*n >= self.max_failures && elapsed < self.window).then(|| self.window - elapsed)
    }

    /// Count a failed attempt.
    pub fn failed(&self, addr: Option<IpAddr>, name: &str, now: Instant) {
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED {
            let window = self.window;
            map.retain(|_, (_, since)| now.saturating_duration_since(*since) < window);
        }
        let entry = map.entry((addr, name.to_owned())).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= self.window {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    /// Forget the failures of `key` (after a successful sign-in).
    pub fn succeeded(&self, addr: Option<IpAddr>, name: &str) {
        self.lock().remove(&(addr, name.to_owned()));
    }
}

/// Query of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    /// Where to go after signing in (a `/ui` path only).
    next: Option<String>,
}

/// Only paths inside the UI are followed after sign-in (never another site: `//evil`, `/ui\\…`).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with("/ui")
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.starts_with("/ui/login") =>
        {
            n
        }
        _ => "/ui",
    }
}

fn login_page(name: &str, next: &str, errors: &FormErrors, flash: Option<Flash>) -> maud::Markup {
    layout::bare(
        "Sign in",
        html! {
            @if let Some(flash) = &flash { (layout::flash_box(flash)) }
            form.card method="post" action="/ui/login" {
                input type="hidden" name="next" value=(next);
                (field("Account name", "name", "text", name, errors.get("name"), None))
                (field("Password", "password", "password", "", errors.get("password"), None))
                button type="submit" { "Sign in" }
            }
            p.hint { "The first admin account is created on the server: "
                code { "punchd ui-users add NAME --role admin" } "." }
        },
    )
}

/// `GET /ui/login`: the sign-in form.
pub async fn login_form(ctx: UiCtx, Query(q): Query<LoginQuery>) -> Response {
    let next = safe_next(q.next.as_deref()).to_owned();
    html(login_page("", &next, &FormErrors::new(), ctx.flash)).into_response()
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /ui/login`: check the password, start a session, set the cookie, go to `next`.
pub async fn login(
    State(app): State<App>,
    Extension(limiter): Extension<Arc<LoginLimiter>>,
    parts: axum::http::request::Parts,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref()).to_owned();
    let name = form.name.trim().to_owned();
    if !same_origin(&parts.headers) {
        return super::UiError::Forbidden("sign-in from another site is refused".into())
            .into_response();
    }
    let addr = client_ip(&app, &parts.extensions, &parts.headers);
    let mut errors = FormErrors::new();
    if name.is_empty() {
        errors.add("name", "enter your account name");
    }
    if form.password.is_empty() {
        errors.add("password", "enter your password");
    }
    if !errors.is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            html(login_page(&name, &next, &errors, None)),
        )
            .into_response();
    }
    if let Some(wait) = limiter.blocked_for(addr, &name, Instant::now()) {
        tracing::warn!(account = %crate::logfmt::escape_field(&name, 64), address = ?addr, "UI sign-in refused: too many failures");
        errors.add(
            "password",
            format!(
                "too many failed attempts; try again in {} min",
                wait.as_secs().div_ceil(60)
            ),
        );
        return (
            StatusCode::TOO_MANY_REQUESTS,
            html(login_page(&name, &next, &errors, None)),
        )
            .into_response();
    }
    let found = match app.store.ui_password_hash(&name).await {
        Ok(found) => found,
        Err(e) => return super::UiError::from(e).into_response(),
    };
    let password = form.password;
    let (account, ok) = {
        let (account, stored) = match found {
            Some((account, stored)) => (Some(account), stored),
            None => (None, dummy_hash().to_owned()),
        };
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &stored))
            .await
            .unwrap_or(false);
        (account, ok)
    };
    let account = match account {
        Some(a) if ok && !a.disabled => a,
        _ => {
            limiter.failed(addr, &name, Instant::now());
            tracing::info!(account = %crate::logfmt::escape_field(&name, 64), address = ?addr, "UI sign-in failed");
            errors.add(
                "password",
                "the account name or password is wrong, or the account is disabled",
            );
            return (
                StatusCode::UNAUTHORIZED,
                html(login_page(&name, &next, &errors, None)),
            )
                .into_response();
        }
    };
    limiter.succeeded(addr, &name);
    let token = random_hex(32);
    let session = NewUiSession {
        token_hash: hash_token(&token),
        account_id: account.id,
        csrf_token: random_hex(32),
        remote_addr: addr.map(|a| a.to_string()),
        now: Utc::now(),
    };
    if let Err(e) = app.store.create_ui_session(session).await {
        return super::UiError::from(e).into_response();
    }
    tracing::info!(account = %crate::logfmt::escape_field(&name, 64), role = %account.role, "UI sign-in");
    let mut response =
        layout::redirect_with_flash(&next, Flash::ok(format!("Signed in as {name}.")));
    let cookie = session_cookie(&app.config.ui, &token, None);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// The `Set-Cookie` value of the session cookie; `max_age` 0 removes it.
fn session_cookie(config: &UiConfig, value: &str, max_age: Option<u64>) -> String {
    let mut cookie = format!("{SESSION_COOKIE}={value}; Path=/ui; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if config.secure_cookies {
        cookie.push_str("; Secure");
    }
    cookie
}

/// `POST /ui/logout`: end the session and remove the cookie.
pub async fn logout(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = app.store.delete_ui_session(&hash_token(token)).await {
            return super::UiError::from(e).into_response();
        }
    }
    let mut response = layout::redirect_with_flash("/ui/login", Flash::info("Signed out."));
    let cookie = session_cookie(&app.config.ui, "", Some(0));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn sign_in_failures_block_one_address_and_name_for_the_window() {
        let limiter = LoginLimiter::new(&UiConfig {
            login_attempts: 2,
            login_window_mins: 1,
            ..UiConfig::default()
        });
        let ip: Option<IpAddr> = "192.0.2.1".parse().ok();
        let t0 = Instant::now();
        limiter.failed(ip, "ana", t0);
        assert_eq!(limiter.blocked_for(ip, "ana", t0), None);
        limiter.failed(ip, "ana", t0);
        assert_eq!(
            limiter.blocked_for(ip, "ana", t0),
            Some(Duration::from_secs(60))
        );
        // Another name, or another address, is not blocked.
        assert_eq!(limiter.blocked_for(ip, "vic", t0), None);
        assert_eq!(limiter.blocked_for(None, "ana", t0), None);
        // After the window, or a success, it may try again.
        assert_eq!(
            limiter.blocked_for(ip, "ana", t0 + Duration::from_secs(60)),
            None
        );
        limiter.succeeded(ip, "ana");
        assert_eq!(limiter.blocked_for(ip, "ana", t0), None);
    }

    #[test]
    fn only_ui_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/ui/terminals?q=a")), "/ui/terminals?q=a");
        assert_eq!(safe_next(Some("//evil.example/ui")), "/ui");
        assert_eq!(safe_next(Some("https://evil.example/ui")), "/ui");
        assert_eq!(safe_next(Some("/ui\\evil")), "/ui");
        assert_eq!(safe_next(None), "/ui");
    }

    #[test]
    fn the_csrf_token_is_read_from_forms_and_queries() {
        assert_eq!(csrf_in_form(b"a=1&_csrf=ab12&b=2").as_deref(), Some("ab12"));
        assert_eq!(csrf_in_form(b"a=1"), None);
        assert_eq!(csrf_in_query(Some("x=1&_csrf=cd")).as_deref(), Some("cd"));
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }

    #[test]
    fn origins_must_name_this_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("hub:8080"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://hub:8080"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil:8080"));
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }
}
