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
        return Some(address_text(peer));
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

/// An address as `Display` writes it; IPv4 (nearly every terminal) without the formatting machinery, which cost
/// 1,600 instructions a request (issue 6).
fn address_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
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

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::address_text;

    #[test]
    fn addresses_read_as_display_writes_them() {
        for octet in 0..=255u8 {
            for ip in [
                Ipv4Addr::new(octet, 0, 10, 255),
                Ipv4Addr::new(1, octet, 99, 100),
                Ipv4Addr::new(192, 168, octet, octet),
            ] {
                assert_eq!(address_text(IpAddr::V4(ip)), ip.to_string());
            }
        }
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        assert_eq!(address_text(v6), "2001:db8::1");
    }
}
