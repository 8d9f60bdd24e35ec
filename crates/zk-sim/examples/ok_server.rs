//! The cheapest possible push server, for calibrating the push benchmark (BENCHMARKS.md): it answers every request
//! with `200 OK` and body `OK`, then closes the connection, on one current-thread tokio runtime — no HTTP library,
//! no routing, no database. What `punchd simulate push` reaches against it is this machine's ceiling for
//! `Connection: close` requests; punchd's poll rate is reported as a share of it.
//!
//! ```text
//! cargo run --release -p zk-sim --example ok_server [-- 127.0.0.1:0]
//! ```
//!
//! Prints `listen=<address> (…)` on stderr once it accepts connections.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REPLY: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK";

/// Read one request (headers, then `Content-Length` bytes of body), answer, close.
async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let (head_end, body_len) = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..n]);
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..at]).to_ascii_lowercase();
            let body_len = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (at + 4, body_len);
        }
    };
    while request.len() < head_end + body_len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    stream.write_all(REPLY).await?;
    stream.shutdown().await
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(&addr).await?;
        eprintln!(
            "listen={} (answers OK to every request)",
            listener.local_addr()?
        );
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = answer(stream).await;
            });
        }
    })
}
