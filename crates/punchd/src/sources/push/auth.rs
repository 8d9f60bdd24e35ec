//! The `/iclock` side of push terminal authentication (`devices::push_auth`): which address a request comes
//! from, and what the guard says about it.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use zk_push::query::Query;
use zk_push::request::Request;

use super::{ok, storage_failed};
use crate::app::App;
use crate::devices::push_auth::{Presented, Verdict};
use crate::domain::DeviceSn;

/// The terminal's address: the socket peer, or, when the peer is a trusted proxy (`[push] trusted_proxies`),
/// the last address of `X-Forwarded-For` (the one the proxy added) or `X-Real-IP`. A header that is not an IP
/// address is ignored.
pub(super) fn client_address(
    app: &App,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Option<String> {
    let peer = peer?.ip();
    let trusted = &app.config.push.trusted_proxies;
    if trusted.is_empty()
        || !trusted
            .iter()
            .any(|p| p.trim().parse::<IpAddr>().is_ok_and(|p| p == peer))
    {
        return Some(peer.to_string());
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
            .unwrap_or(peer)
            .to_string(),
    )
}

/// Ask the guard about a request of an approved terminal: `None` to serve it, else the answer to send
/// (`UNKNOWN DEVICE`, so the terminal keeps its data and retries; `503` when the store failed).
pub(super) async fn check(
    app: &App,
    sn: &DeviceSn,
    address: Option<&str>,
    query: &Query,
    request: &Request,
    now: DateTime<Utc>,
) -> Option<Response> {
    let presented = Presented {
        address,
        comm_key: query.get("ComKey"),
        handshake: matches!(request, Request::Handshake(_)),
        handshake_key: query.get("pushcommkey"),
    };
    match app.push_guard.check(sn, presented, now).await {
        Ok(Verdict::Accept) => None,
        Ok(Verdict::Refuse(_)) => Some(ok(zk_push::reply::UNKNOWN_DEVICE)),
        Err(e) => Some(storage_failed(app, sn, "terminal authentication", &e)),
    }
}
