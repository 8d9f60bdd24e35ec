//! HTTP: the router (terminal routes + JSON API + web UI + health + metrics) and the server loop.
//!
//! `web` only translates HTTP to `ingest`/`devices`/`store` calls. The server takes its listener and a shutdown
//! future ([`serve`]); the binary passes real ones, tests pass a listener on port 0.

pub mod agent_api;
pub mod api;
pub mod attendance;
pub mod auth;
pub mod biotime_api;
pub mod error;
pub mod push_api;
pub mod request_line;
pub mod seed;
pub mod sinks;
pub mod sources;
pub mod ui;

use std::future::Future;
use std::time::Duration;

use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::Service;

use crate::app::App;
use crate::devices::health;
use crate::sources::push::{self, RemoteAddr};

/// Longest time a connection admitted on a reserved slot may take to send its request line
/// (`limits.reserved_connections`): terminals send it at once.
const RESERVED_LINE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one request may take, body included (`limits.request_timeout_secs`, at least a second).
fn request_timeout(app: &App) -> Duration {
    Duration::from_secs(app.config.limits.request_timeout_secs.max(1))
}

/// The whole HTTP surface.
pub fn router(app: App) -> Router {
    let max_body = app.config.max_body_bytes;
    let request_timeout = request_timeout(&app);
    Router::new()
        .merge(push::routes())
        .nest("/api/v1", api::routes(app.clone()))
        .nest("/api/push", seed::routes(app.clone()))
        .merge(sources::routes(app.clone()))
        .merge(agent_api::routes(app.clone()))
        .merge(biotime_api::routes(app.clone()))
        .nest("/ui", ui::routes(app.clone()))
        .route("/", get(ui::to_ui))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            refuse_oversized,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        // Outermost: every /api/ error, wherever it came from, is `{"error": …}`.
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(app)
}

/// Refuse a request whose declared `Content-Length` is over the limit at once, before its body is read (a
/// terminal must not wait for the request timeout to learn it); bodies without a length are cut off at the limit
/// by [`DefaultBodyLimit`] while they are read.
async fn refuse_oversized(State(app): State<App>, request: Request, next: Next) -> Response {
    match oversized(&app, &request) {
        Some(refused) => refused,
        None => next.run(request).await,
    }
}

/// The `413` answer for a request whose declared `Content-Length` is over `max_body_bytes`, `None` for any other
/// request (no length, or within the limit).
fn oversized<B>(app: &App, request: &axum::http::Request<B>) -> Option<Response> {
    let len = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())?;
    let limit = app.config.max_body_bytes as u64;
    if len <= limit {
        return None;
    }
    tracing::warn!(
        target_uri = %request.uri(),
        declared = len,
        limit,
        "request body refused: over max_body_bytes"
    );
    app.metrics.request("oversized", 413);
    Some(
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("request body of {len} bytes is over the limit of {limit} bytes\n"),
        )
            .into_response(),
    )
}

/// A terminal's request (`/iclock` paths, [`push::is_iclock_path`]) straight to the push handler, without the
/// router: the same answer as through [`router`] (whose other layers do nothing for these paths: JSON errors are
/// for `/api/`, the push handler reads its body under its own limit), for about a tenth less CPU per request —
/// the router's per-route layers box a future and clone a service each (BENCHMARKS.md, issue 6).
async fn push_request(
    app: App,
    peer: std::net::SocketAddr,
    request: hyper::Request<hyper::body::Incoming>,
    timeout: Duration,
) -> Response {
    if let Some(refused) = oversized(&app, &request) {
        return refused;
    }
    let (parts, body) = request.into_parts();
    let handled = push::handle(
        app,
        Some(peer),
        parts.method,
        parts.uri,
        parts.headers,
        axum::body::Body::new(body),
    );
    // As the router's `TimeoutLayer`: the whole request, body included, or `408` with no body.
    match tokio::time::timeout(timeout, handled).await {
        Ok(response) => response,
        Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
    }
}

/// `GET /healthz`: 200 `ok` when the store answers and its writes succeed, 503 with the reason otherwise.
async fn healthz(State(app): State<App>) -> impl IntoResponse {
    if let Some(reason) = app.store.storage_fault() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("storage failing: {reason}\n"),
        );
    }
    match app.store.ping().await {
        Ok(_) => (StatusCode::OK, "ok\n".to_owned()),
        Err(e) => {
            tracing::error!(error = %e, "health check: store unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("store unavailable: {e}\n"),
            )
        }
    }
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(app): State<App>) -> impl IntoResponse {
    let now = chrono::Utc::now();
    // Pending and blocked devices are not counted online: their data is not taken.
    let online = app.registry.count_where(|d| {
        d.approval == crate::domain::Approval::Approved && health::is_online(d, now)
    });
    let registered = app.registry.count_where(|_| true);
    app.metrics.devices_online.set(online as i64);
    app.metrics.devices_registered.set(registered as i64);
    app.metrics
        .connections_open
        .set(app.guards.connections.open() as i64);
    sources::set_source_metrics(&app).await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
}

/// Whether a request line names an established terminal: an approved device seen within the last hour. Only
/// such terminals get the connections kept in reserve (`limits.reserved_connections`).
fn established_terminal(app: &App, line: Option<&[u8]>) -> bool {
    let Some(line) = line.and_then(|l| std::str::from_utf8(l).ok()) else {
        return false;
    };
    let target = line.split(' ').nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let query = zk_push::query::Query::parse(query);
    let Some(sn) = query
        .get("SN")
        .and_then(|sn| crate::domain::DeviceSn::parse(sn).ok())
    else {
        return false;
    };
    let Some(entry) = app.registry.get(&sn) else {
        return false;
    };
    let device = entry.device();
    device.approval == crate::domain::Approval::Approved
        && device
            .last_seen
            .is_some_and(|at| chrono::Utc::now() - at < chrono::Duration::hours(1))
}

/// Serve HTTP on `listener` until `shutdown` resolves; then stop accepting, let requests in flight finish (up to
/// 10 s), and return.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = app.clone();
    let header_timeout = Duration::from_secs(app.config.limits.header_timeout_secs.max(1));
    let request_timeout = request_timeout(&app);
    let router = router(app);
    // hyper's HTTP/1 connection itself (punchd is built without HTTP/2): hyper-util's auto builder would sniff the
    // version first, handing hyper the first 24 bytes apart from the rest, so it grew its read buffer on every
    // connection (issue 6).
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // At most limits.max_connections at once, the last reserved_connections of them for established
        // terminals (crate::limits); beyond, the connection is closed at once and counted.
        let (admission, slot) = limits.guards.connections.admit();
        if slot.is_none() {
            limits.metrics.refuse("connection_limit");
            tracing::debug!(remote = %addr, "connection refused: max_connections reached");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let push_app = limits.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                let push = push::is_iclock_path(request.uri().path()).then(|| push_app.clone());
                let mut router = router.clone();
                async move {
                    match push {
                        Some(app) => Ok(push_request(app, addr, request, request_timeout).await),
                        None => {
                            request.extensions_mut().insert(RemoteAddr(addr));
                            router.call(request.map(axum::body::Body::new)).await
                        }
                    }
                }
            },
        );
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let reserved = admission == crate::limits::Admission::Reserved;
            let line_timeout = if reserved {
                RESERVED_LINE_TIMEOUT
            } else {
                header_timeout
            };
            let stream = match request_line::Rewound::new(stream, line_timeout).await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!(remote = %addr, "no request: {e}");
                    return;
                }
            };
            if reserved && !established_terminal(&limits, stream.request_line()) {
                limits.metrics.refuse("not_established");
                tracing::debug!(remote = %addr, "connection closed: only reserved slots left, and it is not an established terminal");
                return;
            }
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(remote = %addr, "connection ended with an error: {e}");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("requests still in flight after 10 s at shutdown; closing them");
        }
    }
    Ok(())
}
