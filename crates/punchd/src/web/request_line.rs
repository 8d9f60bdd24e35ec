//! Repair of request lines that real terminals send but HTTP parsers refuse.
//!
//! Firmware builds the `getrequest` URL by pasting the status text in as is, e.g.
//! `GET /iclock/getrequest?SN=X&INFO=Ver 6.8.0(build640),2,0,0,192.168.1.201 HTTP/1.1` (push.md §6: "values may
//! be URL-encoded or contain raw spaces"), and Chinese-language firmware may put GBK bytes in query values. hyper
//! rejects such lines with a 400, so the terminal would never be heard. Before hyper sees a connection, the first
//! request line is read and every byte a URI may not hold (space, control, non-ASCII, `"<>\^`{|}`) between the
//! method and the final ` HTTP/1.x` is percent-encoded. Everything else passes through untouched. Only the first
//! request of a connection is repaired: terminals send `Connection: close`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Longest request line looked at; longer ones pass through for hyper to refuse.
const MAX_LINE: usize = 16 * 1024;

/// Whether a URI may not hold byte `b` as it is: space, controls, non-ASCII, and `"` `<` `>` `\` `^` `` ` ``
/// `{` `|` `}` (RFC 3986 §2 leaves them out).
fn needs_encoding(b: u8) -> bool {
    b <= b' '
        || b >= 0x7f
        || matches!(
            b,
            b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
        )
}

/// Percent-encode the bytes of a request target that a URI may not contain.
pub fn repair_target(target: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(target.len() + 16);
    for &b in target {
        if needs_encoding(b) {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        } else {
            out.push(b);
        }
    }
    out
}

/// Repair one request line (without its line ending). Returns `None` when it is fine as it is or is not a
/// request line we understand.
pub fn repair_line(line: &[u8]) -> Option<Vec<u8>> {
    let method_end = line.iter().position(|&b| b == b' ')?;
    let version_start = line.windows(6).rposition(|w| w == b" HTTP/")?;
    if version_start <= method_end {
        return None;
    }
    let target = &line[method_end + 1..version_start];
    // Nearly every request line is fine: say so without building a copy.
    if !target.iter().any(|&b| needs_encoding(b)) {
        return None;
    }
    let repaired = repair_target(target);
    let mut out = Vec::with_capacity(line.len() + repaired.len());
    out.extend_from_slice(&line[..=method_end]);
    out.extend_from_slice(&repaired);
    out.extend_from_slice(&line[version_start..]);
    Some(out)
}

/// A stream that first yields bytes already read (with the request line repaired), then the rest of the socket.
pub struct Rewound<S> {
    prefix: Vec<u8>,
    offset: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> Rewound<S> {
    /// Read the first request line of `inner` (waiting at most `timeout`) and repair it.
    pub async fn new(mut inner: S, timeout: Duration) -> io::Result<Rewound<S>> {
        let mut buf = Vec::with_capacity(4096);
        let read = tokio::time::timeout(timeout, async {
            loop {
                // Straight into `buf`'s spare room (it grows when full), not through a zeroed chunk and a copy.
                let n = inner.read_buf(&mut buf).await?;
                if n == 0 {
                    break;
                }
                if buf.contains(&b'\n') || buf.len() >= MAX_LINE {
                    break;
                }
            }
            Ok::<(), io::Error>(())
        })
        .await;
        match read {
            Ok(result) => result?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no request line in time",
                ))
            }
        }
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line_end = if end > 0 && buf[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            if let Some(fixed) = repair_line(&buf[..line_end]) {
                let mut repaired = fixed;
                repaired.extend_from_slice(&buf[line_end..]);
                buf = repaired;
            }
        }
        Ok(Rewound {
            prefix: buf,
            offset: 0,
            inner,
        })
    }
}

impl<S> Rewound<S> {
    /// The first request line as read (repaired, without its line ending), before any of it was passed on;
    /// `None` once reading started or when no whole line came.
    pub fn request_line(&self) -> Option<&[u8]> {
        if self.offset > 0 {
            return None;
        }
        let end = self.prefix.iter().position(|&b| b == b'\n')?;
        let line = &self.prefix[..end];
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.offset < self.prefix.len() {
            let n = out.remaining().min(self.prefix.len() - self.offset);
            let start = self.offset;
            out.put_slice(&self.prefix[start..start + n]);
            self.offset += n;
            if self.offset == self.prefix.len() {
                self.prefix = Vec::new();
                self.offset = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, out)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_spaces_in_info_are_encoded() {
        let line =
            b"GET /iclock/getrequest?SN=X1&INFO=Ver 6.8.0(build640),2,0,0,192.168.1.201 HTTP/1.1";
        assert_eq!(
            repair_line(line).unwrap(),
            b"GET /iclock/getrequest?SN=X1&INFO=Ver%206.8.0(build640),2,0,0,192.168.1.201 HTTP/1.1"
                .to_vec()
        );
    }

    #[test]
    fn valid_lines_are_left_alone() {
        assert_eq!(
            repair_line(b"GET /iclock/cdata?SN=X1&options=all HTTP/1.1"),
            None
        );
        assert_eq!(repair_line(b"garbage"), None);
        assert_eq!(repair_line(b"GET  HTTP/1.1"), None);
    }

    #[test]
    fn non_ascii_and_placeholders_are_encoded() {
        assert_eq!(
            repair_line(b"POST /iclock/cdata?SN=<SN>&x=\xd5\xc5 HTTP/1.1").unwrap(),
            b"POST /iclock/cdata?SN=%3CSN%3E&x=%D5%C5 HTTP/1.1".to_vec()
        );
    }

    #[tokio::test]
    async fn rewound_stream_yields_the_repaired_request_then_the_rest() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        use tokio::io::AsyncWriteExt;
        client
            .write_all(b"GET /a?INFO=Ver 1 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        drop(client);
        let mut rewound = Rewound::new(server, Duration::from_secs(1)).await.unwrap();
        let mut all = Vec::new();
        rewound.read_to_end(&mut all).await.unwrap();
        assert_eq!(
            all,
            b"GET /a?INFO=Ver%201 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()
        );
    }
}
