//! The web UI at `/ui`: server-rendered HTML pages (maud) for HR and IT, served by the same binary, with
//! embedded assets (no CDN, no inline scripts).
//!
//! How a page is built (what the page modules share):
//! - Every route except sign-in and `/ui/assets/*` sits behind [`session::require_session`], which finds the
//!   signed-in [`UiUser`] (cookie → server-side session in the store, idle expiry) and, on every request that is
//!   not `GET`/`HEAD`, checks the session's CSRF token ([`session::CSRF_FIELD`] in the form body, or the
//!   `X-CSRF-Token` header, or `?_csrf=` for multipart forms) and that the `Origin` is this server.
//! - A handler takes [`UiUser`] and [`UiCtx`] as extractors, checks the scope its JSON twin needs with
//!   [`require`] (the same [`Scope`] model as API tokens: viewer = `read`, hr = `hr`, admin = `admin`), calls the
//!   same domain functions as the JSON API, and renders with [`layout::page`].
//! - A form that fails validation is rendered again with the message beside the field ([`layout::field`]); a
//!   form that succeeds answers `303 See Other` with a flash message ([`layout::redirect_with_flash`]).
//! - Errors are [`UiError`]: an HTML page with the reason (403 names the scope needed).
//!
//! Adding a page module (`web/ui/<page>.rs`): write `pub fn routes() -> Router<App>` and add one `.merge(…)`
//! line in [`routes`]; its link is already in the navigation ([`layout::Nav`]).
//!
//! This module depends on `web::auth` only for [`Scope`]; it must not be used by the JSON API.

pub mod accounts;
pub mod dashboard;
pub mod delivery;
pub mod layout;
pub mod live;
#[cfg(test)]
mod pages_tests;
pub mod paging;
pub mod people;
pub mod review;
pub mod session;
pub mod shifts;
pub mod terminals;
#[cfg(test)]
mod tests;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::app::App;
use crate::domain::{Role, Scope};
use crate::store::StoreError;

pub use layout::{Flash, FlashKind, Nav};
pub use session::UiUser;

/// Web UI settings (`[ui]` in the settings file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// Give the session cookie the `Secure` attribute (set it when punchd is reached over https, directly or
    /// through a reverse proxy). Default false: a plain-http LAN install must still be able to sign in.
    pub secure_cookies: bool,
    /// Minutes a session may stay unused before it is over (sign in again). Default 60.
    pub session_idle_mins: u32,
    /// Failed sign-ins allowed per address and account name within [`UiConfig::login_window_mins`] before
    /// further attempts are refused (429). Default 5.
    pub login_attempts: u32,
    /// The window of [`UiConfig::login_attempts`], minutes. Default 15.
    pub login_window_mins: u32,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            secure_cookies: false,
            session_idle_mins: 60,
            login_attempts: 5,
            login_window_mins: 15,
        }
    }
}

/// The UI routes, mounted at `/ui` by [`crate::web::router`].
pub fn routes(app: App) -> Router<App> {
    let signed_in = Router::new()
        .route("/", get(dashboard::page))
        .merge(dashboard::routes())
        .merge(live::routes())
        .merge(terminals::routes())
        // Pages: `.merge(<page>::routes())` here (behind the session check and CSRF).
        .merge(people::routes())
        .merge(shifts::routes())
        .merge(review::routes(app.month_cache.clone()))
        .merge(delivery::routes())
        .merge(accounts::routes())
        .route("/logout", axum::routing::post(session::logout))
        .fallback(not_found)
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            session::require_session,
        ));
    Router::new()
        .merge(signed_in)
        .route("/login", get(session::login_form).post(session::login))
        .route("/assets/{name}", get(asset))
        .layer(axum::extract::Extension(std::sync::Arc::new(
            session::LoginLimiter::new(&app.config.ui),
        )))
        .layer(axum::middleware::from_fn(layout::security_headers))
}

/// How often terminals' presence is checked for the live feed.
const PRESENCE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// How often idle sessions are removed from the store.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// How often the punches per PIN ([`AppState::seen`](crate::app::AppState::seen)) are saved to the store, when
/// they changed.
const SAVE_SEEN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The UI's background work until `shutdown` resolves: bring the punches per PIN
/// ([`AppState::seen`](crate::app::AppState::seen)) up at start (from the saved summary, or every punch the first
/// time) and save them at once, then every minute when they changed
/// ([`crate::attendance::seen_cache::SeenCache::save`]); publish terminals going online or offline on the live
/// feed ([`crate::live::LiveFeed::publish_presence`], checked every 5 s against [`crate::devices::health`]); and
/// remove sessions idle longer than `[ui] session_idle_mins` (every 10 min).
pub async fn run_background(app: App, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    // The punches per PIN are brought up now, rather than when the first visitor opens a page, and saved (the
    // next start then reads only the punches stored after them).
    let warm = app.clone();
    tokio::spawn(async move {
        if let Err(e) = warm.seen.get(&warm.store).await {
            tracing::warn!(error = %e, "reading the punches per PIN failed; the first page view tries again");
        } else if let Err(e) = warm.seen.save(warm.store.as_ref()).await {
            tracing::warn!(error = %e, "saving the punches per PIN failed; tried again in a minute");
        }
    });
    let mut last_seen_save = std::time::Instant::now();
    let mut tick = tokio::time::interval(PRESENCE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut online: std::collections::HashMap<crate::domain::DeviceSn, bool> =
        std::collections::HashMap::new();
    let mut last_prune: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        let now = chrono::Utc::now();
        // Only what presence needs is taken from each terminal: copying 10,000 devices every 5 s cost ≈ 5.6 MB
        // at each look (issue 6, fleet10k heap profile).
        let presence = app.registry.pick(|d| {
            (d.approval == crate::domain::Approval::Approved).then(|| {
                (
                    d.sn.clone(),
                    crate::devices::health::is_online(d, now),
                    d.last_seen,
                )
            })
        });
        for (sn, is_online, last_seen) in presence {
            // The first look only learns the state; changes after it are news.
            if online
                .insert(sn.clone(), is_online)
                .is_some_and(|was| was != is_online)
            {
                app.live.publish_presence(&sn, is_online, last_seen);
            }
        }
        if last_seen_save.elapsed() >= SAVE_SEEN_EVERY {
            last_seen_save = std::time::Instant::now();
            // Only what the pages brought in since the last save (nothing when nothing changed).
            if let Err(e) = app.seen.save(app.store.as_ref()).await {
                tracing::warn!(error = %e, "saving the punches per PIN failed; tried again in a minute");
            }
        }
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(std::time::Instant::now());
            let idle = chrono::Duration::minutes(i64::from(app.config.ui.session_idle_mins.max(1)));
            match app.store.prune_ui_sessions(now - idle).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(n, "idle UI sessions removed"),
                Err(e) => tracing::warn!(error = %e, "removing idle UI sessions failed"),
            }
        }
    }
}

/// Any other path under `/ui` (signed in): a 404 page.
async fn not_found() -> UiError {
    UiError::NotFound("there is no such page".into())
}

/// `GET /`: to the UI.
pub async fn to_ui() -> Redirect {
    Redirect::to("/ui")
}

/// What every page needs besides its data: who is signed in, and the flash message to show once.
#[derive(Debug, Clone, Default)]
pub struct UiCtx {
    /// The signed-in user (`None` on the sign-in page).
    pub user: Option<UiUser>,
    /// A message carried over a redirect (shown once).
    pub flash: Option<Flash>,
    /// The request's full path and query, `/ui/…` (for `next=` links).
    pub path: String,
}

impl UiCtx {
    /// The CSRF token forms of this page carry (empty without a session).
    pub fn csrf(&self) -> &str {
        self.user.as_ref().map_or("", |u| u.csrf.as_str())
    }

    /// Whether the signed-in user may do what needs `needed` (to show or hide a button; the handler checks
    /// again with [`require`]).
    pub fn may(&self, needed: Scope) -> bool {
        self.user.as_ref().is_some_and(|u| u.may(needed))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for UiCtx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(UiCtx {
            user: parts.extensions.get::<UiUser>().cloned(),
            flash: layout::read_flash(&parts.headers),
            path: full_path(&parts.uri),
        })
    }
}

/// The full path and query of a UI request (inside the `/ui` router axum strips the `/ui` prefix).
pub fn full_path(uri: &axum::http::Uri) -> String {
    let path = uri.path();
    let path = if path.starts_with("/ui/") || path == "/ui" {
        path.to_owned()
    } else if path == "/" {
        "/ui".to_owned()
    } else {
        format!("/ui{path}")
    };
    match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

/// Refuse unless `user` may do what needs `needed` (the same rule as for an API token of the role's scope).
///
/// Errors: [`UiError::Forbidden`] naming the role and the scope needed.
pub fn require(user: &UiUser, needed: Scope) -> Result<(), UiError> {
    if user.may(needed) {
        Ok(())
    } else {
        Err(UiError::Forbidden(format!(
            "your role ({}) may not do this: it needs scope {needed} ({})",
            user.role,
            roles_with(needed)
        )))
    }
}

/// The roles that have `needed`, for messages ("roles hr, admin").
pub fn roles_with(needed: Scope) -> String {
    let names: Vec<&str> = Role::ALL
        .into_iter()
        .filter(|r| r.allows(needed))
        .map(Role::as_str)
        .collect();
    format!("role {}", names.join(" or "))
}

/// What went wrong in a UI request, answered as an HTML page.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The signed-in role may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The thing asked for does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be read (400); forms report field errors on the form instead.
    #[error("{0}")]
    BadRequest(String),
    /// A conflict with what is stored (409).
    #[error("{0}")]
    Conflict(String),
    /// Something failed inside (500); logged, the page says only that it failed.
    #[error("{0}")]
    Internal(String),
    /// What the page needs is still being prepared (503 with `Retry-After: 1`): the page says what and loads
    /// itself again every second.
    #[error("{0}")]
    Preparing(String),
}

/// How long a page waits for the per-PIN summary ([`crate::attendance::seen_cache::SeenCache`]) before it answers
/// [`UiError::Preparing`]: with a saved summary the first look after a start takes tens of ms; only the first
/// start on a database without one reads every punch (seconds with millions of punches).
pub const SEEN_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// The per-PIN summary for a page (dashboard, terminals, unmapped queue), or [`UiError::Preparing`] when it is not
/// there within [`SEEN_WAIT`] (the look goes on; the page loads itself again).
pub(crate) async fn pins_seen(
    app: &App,
) -> Result<std::sync::Arc<Vec<crate::store::attendance::PinSeen>>, UiError> {
    app.seen
        .get_within(&app.store, SEEN_WAIT)
        .await?
        .ok_or_else(|| {
            UiError::Preparing(
                "punchd is counting the punches of every terminal and PIN. This happens once, at the first start \
                 on this database: every stored punch is read (seconds with millions of punches). This page loads \
                 itself again until it is done."
                    .into(),
            )
        })
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => UiError::NotFound(format!("not found: {what}")),
            StoreError::Conflict(what) => UiError::Conflict(what),
            other => UiError::Internal(other.to_string()),
        }
    }
}

impl From<anyhow::Error> for UiError {
    fn from(e: anyhow::Error) -> Self {
        UiError::Internal(format!("{e:#}"))
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, title, text) = match self {
            UiError::Forbidden(t) => (StatusCode::FORBIDDEN, "Not allowed", t),
            UiError::NotFound(t) => (StatusCode::NOT_FOUND, "Not found", t),
            UiError::BadRequest(t) => (StatusCode::BAD_REQUEST, "Bad request", t),
            UiError::Conflict(t) => (StatusCode::CONFLICT, "Conflict", t),
            UiError::Preparing(t) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(axum::http::header::RETRY_AFTER, "1")],
                    layout::html(layout::bare_refreshing("Being prepared", &t, 1)),
                )
                    .into_response()
            }
            UiError::Internal(t) => {
                tracing::error!(error = %t, "web UI request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something failed",
                    "the server could not complete this; the log has the details".to_owned(),
                )
            }
        };
        (status, layout::html(layout::bare_page(title, &text))).into_response()
    }
}

/// An embedded asset: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "ui.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/ui.css"),
    ),
    (
        "pages.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/pages.css"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/ui.js"),
    ),
];

/// `GET /ui/assets/{name}`: the embedded CSS and JavaScript.
async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=300"),
                ),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}
