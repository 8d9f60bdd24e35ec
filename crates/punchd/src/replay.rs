//! `punchd replay`: feed captured requests (the samples/push format, or a plain raw HTTP request) through a
//! running server over HTTP, or straight into the database through the same handlers, for support and debugging.
//! Prints one line per file: the file, the status and the reply body.

use std::path::PathBuf;

use anyhow::{bail, Context};
use axum::body::Body;
use http_body_util::BodyExt;
use tower::ServiceExt;
use zk_push::sample::CapturedRequest;

use crate::app::App;
use crate::config::Config;

fn build_request(
    captured: &CapturedRequest,
    host: &str,
) -> anyhow::Result<axum::http::Request<Body>> {
    // In process there is no socket to repair the line on, so repair the target here the same way.
    let target = crate::web::request_line::repair_target(captured.terminal_target().as_bytes());
    let mut builder = axum::http::Request::builder()
        .method(captured.method.as_str())
        .uri(target.as_slice());
    for (name, value) in &captured.headers {
        // Length and connection handling are the transport's business; the captured values may not match the
        // body as stored.
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("host")
        {
            continue;
        }
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder = builder
        .header("host", host)
        .header("content-length", captured.body.len().to_string());
    builder
        .body(Body::from(captured.body.clone()))
        .context("building the request")
}

/// Send one captured request to a running server at `base` (`http://host:port`), byte for byte as a terminal
/// would (raw spaces in the URL included), with `Connection: close`; returns the status and the body.
pub async fn send_to_server(
    base: &str,
    captured: &CapturedRequest,
) -> anyhow::Result<(u16, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = base
        .trim_end_matches('/')
        .strip_prefix("http://")
        .context("--server must be an http:// URL (terminals speak plain HTTP to punchd)")?;
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    let request = captured.to_terminal_bytes(authority);
    stream
        .write_all(&request)
        .await
        .context("sending the request")?;
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut response),
    )
    .await
    .context("no answer within 30 s")?
    .context("reading the answer")?;
    parse_response(&response)
}

/// Status and body of a raw HTTP/1.1 response with a Content-Length (what punchd sends).
fn parse_response(response: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the answer has no header end")?;
    let head = String::from_utf8_lossy(&response[..head_end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .context("the answer has no status code")?;
    Ok((status, response[head_end + 4..].to_vec()))
}

/// Replay files through a running server or into the configured database.
pub async fn run(
    config: Config,
    files: Vec<PathBuf>,
    server: Option<String>,
) -> anyhow::Result<()> {
    let router = match &server {
        Some(_) => None,
        None => Some(crate::web::router(App::open(config).await?)),
    };
    let mut failures = 0usize;
    for file in &files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let captured = match zk_push::sample::parse_captured_request(&bytes) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{}: not a captured request: {e}", file.display());
                failures += 1;
                continue;
            }
        };
        let (status, body) = match (&server, &router) {
            (Some(base), _) => send_to_server(base, &captured).await?,
            (None, Some(router)) => {
                let response = router
                    .clone()
                    .oneshot(build_request(&captured, "replay")?)
                    .await
                    .context("handling the request")?;
                let status = response.status().as_u16();
                (
                    status,
                    response.into_body().collect().await?.to_bytes().to_vec(),
                )
            }
            (None, None) => bail!("no server and no database"),
        };
        if status != 200 {
            failures += 1;
        }
        let body = String::from_utf8_lossy(&body);
        let first = body.lines().next().unwrap_or("");
        let more = body.lines().count().saturating_sub(1);
        if more > 0 {
            println!("{}\t{status}\t{first} (+{more} lines)", file.display());
        } else {
            println!("{}\t{status}\t{first}", file.display());
        }
    }
    if failures > 0 {
        bail!("{failures} of {} requests were not accepted", files.len());
    }
    Ok(())
}
