//! HTTP: the router (terminal routes + JSON API + health + metrics) and the server loop.
//!
//! `web` only translates HTTP to `ingest`/`devices`/`store` calls. The server takes its listener and a shutdown
//! future ([`serve`]); the binary passes real ones, tests pass a listener on port 0.

pub mod api;
pub mod attendance;
pub mod auth;
pub mod error;
pub mod request_line;

use std::future::Future;
use std::time::Duration;

use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tower::Service;

use crate::app::App;
use crate::devices::health;
use crate::sources::push::{self, RemoteAddr};

/// Longest time a client may take to send its request headers (slow clients are cut off, not waited on).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest time one request may take, body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The whole HTTP surface.
pub fn router(app: App) -> Router {
    let max_body = app.config.max_body_bytes;
    Router::new()
        .merge(push::routes())
        .nest("/api/v1", api::routes(app.clone()))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            refuse_oversized,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(app)
}

/// Refuse a request whose declared `Content-Length` is over the limit at once, before its body is read (a
/// terminal must not wait for the request timeout to learn it); bodies without a length are cut off at the limit
/// by [`DefaultBodyLimit`] while they are read.
async fn refuse_oversized(State(app): State<App>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let limit = app.config.max_body_bytes as u64;
    match declared {
        Some(len) if len > limit => {
            tracing::warn!(
                target_uri = %request.uri(),
                declared = len,
                limit,
                "request body refused: over max_body_bytes"
            );
            app.metrics.request("oversized", 413);
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                [(header::CONTENT_TYPE, "text/plain")],
                format!("request body of {len} bytes is over the limit of {limit} bytes\n"),
            )
                .into_response()
        }
        _ => next.run(request).await,
    }
}

/// `GET /healthz`: 200 `ok` when the store answers, 503 otherwise.
async fn healthz(State(app): State<App>) -> impl IntoResponse {
    match app.store.ping().await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::error!(error = %e, "health check: store unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
        }
    }
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(app): State<App>) -> impl IntoResponse {
    let now = chrono::Utc::now();
    let online = app.registry.count_where(|d| health::is_online(d, now));
    let registered = app.registry.count_where(|_| true);
    app.metrics.devices_online.set(online as i64);
    app.metrics.devices_registered.set(registered as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
}

/// Serve HTTP on `listener` until `shutdown` resolves; then stop accepting, let requests in flight finish (up to
/// 10 s), and return.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let router = router(app);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
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
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(RemoteAddr(addr));
                let mut router = router.clone();
                async move { router.call(request.map(axum::body::Body::new)).await }
            },
        );
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match request_line::Rewound::new(stream, HEADER_READ_TIMEOUT).await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!(remote = %addr, "no request: {e}");
                    return;
                }
            };
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
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
