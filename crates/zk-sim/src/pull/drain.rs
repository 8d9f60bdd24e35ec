//! Waiting until a client on this machine has read what the simulator sent, so the next frames of a bulk
//! transfer reach it in a later socket read (pull-simulator.md §4: node-zklib and zkteco-js take one frame
//! per read and lose the rest; node-zklib's UDP socket drops datagrams sent faster than it reads them).
//!
//! Between real devices and their clients the network does this spacing; on loopback the simulator must.
//! A fixed pause is not enough on a loaded machine (a client process descheduled for longer than the pause
//! reads two frames at once), so on Linux, for a client on 127.0.0.0/8, the simulator reads the kernel's
//! socket table (`/proc/net/tcp`, `/proc/net/udp`: the `tx_queue`/`rx_queue` columns) and waits until its own
//! socket has nothing unacknowledged and the client's socket has nothing unread. Elsewhere (another host,
//! IPv6, no `/proc`) the caller falls back to a fixed pause.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::time::Instant;

/// What a wait found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drained {
    /// The client has read everything.
    Read,
    /// The client did not read within the limit (stopped, or gone without closing).
    Stalled,
    /// Reading cannot be observed (not loopback, not Linux, IPv6, socket not in the table).
    Unobservable,
}

/// How often the socket table is read while waiting.
const POLL: Duration = Duration::from_millis(1);

/// `ADDR:PORT` as `/proc/net/{tcp,udp}` prints an IPv4 socket address (the address in host byte order of
/// the big-endian word, the port big-endian), or `None` for IPv6.
fn proc_addr(addr: SocketAddr) -> Option<String> {
    match addr.ip() {
        IpAddr::V4(ip) => Some(format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(ip.octets()),
            addr.port()
        )),
        IpAddr::V6(_) => None,
    }
}

/// `(tx_queue, rx_queue)` of the socket with this local (and, when given, remote) address in a
/// `/proc/net/{tcp,udp}` table. A local address of `0.0.0.0` with the same port also matches (an unconnected
/// UDP socket bound to any address).
fn queues(table: &str, local: &str, remote: Option<&str>) -> Option<(u64, u64)> {
    let any_local = local
        .split_once(':')
        .map(|(_, port)| format!("00000000:{port}"));
    table.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_slot, line_local, line_remote, _state, queues) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let local_matches = line_local == local || any_local.as_deref() == Some(line_local);
        if !local_matches || remote.is_some_and(|remote| remote != line_remote) {
            return None;
        }
        let (tx, rx) = queues.split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

fn observable(peer: SocketAddr) -> bool {
    cfg!(target_os = "linux") && matches!(peer.ip(), IpAddr::V4(ip) if ip.is_loopback())
}

/// Wait until the client's end of the TCP connection `ours` → `peer` has nothing unread (checked at once
/// when everything sent is acknowledged, otherwise after a poll interval), or `max` has passed. `false` when that cannot be observed (the caller then
/// pauses instead).
pub(crate) async fn tcp(ours: SocketAddr, peer: SocketAddr, max: Duration) -> Drained {
    let (Some(ours), Some(theirs)) = (proc_addr(ours), proc_addr(peer)) else {
        return Drained::Unobservable;
    };
    if !observable(peer) {
        return Drained::Unobservable;
    }
    let deadline = Instant::now() + max;
    let mut first = true;
    loop {
        let Ok(table) = tokio::fs::read_to_string("/proc/net/tcp").await else {
            return Drained::Unobservable;
        };
        let mine = queues(&table, &ours, Some(&theirs));
        let client = queues(&table, &theirs, Some(&ours));
        let (Some((unacked, _)), Some((_, unread))) = (mine, client) else {
            return Drained::Unobservable;
        };
        // Nothing unread and everything acknowledged: read. Nothing unread a poll later: read too (bytes
        // still on their way through loopback take microseconds, and the client's ACK may be delayed).
        if unread == 0 && (unacked == 0 || !first) {
            return Drained::Read;
        }
        if Instant::now() >= deadline {
            return Drained::Stalled;
        }
        first = false;
        tokio::time::sleep(POLL).await;
    }
}

/// Wait until the client's UDP socket at `peer` holds no unread datagram, or `max` has passed.
pub(crate) async fn udp(peer: SocketAddr, max: Duration) -> Drained {
    let Some(theirs) = proc_addr(peer) else {
        return Drained::Unobservable;
    };
    if !observable(peer) {
        return Drained::Unobservable;
    }
    let deadline = Instant::now() + max;
    loop {
        let Ok(table) = tokio::fs::read_to_string("/proc/net/udp").await else {
            return Drained::Unobservable;
        };
        match queues(&table, &theirs, None) {
            Some((_, 0)) => return Drained::Read,
            None => return Drained::Unobservable,
            _ if Instant::now() >= deadline => return Drained::Stalled,
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:10E2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0
   1: 0100007F:10E2 0100007F:9C40 01 00000018:00000000 00:00000000 00000000     0        0 2 1 0
   2: 0100007F:9C40 0100007F:10E2 01 00000000:0000FFD0 00:00000000 00000000     0        0 3 1 0
   3: 00000000:A000 00000000:0000 07 00000000:00000400 00:00000000 00000000     0        0 4 1 0
";

    #[test]
    fn reads_the_queues_of_both_ends() {
        let server: SocketAddr = "127.0.0.1:4322".parse().unwrap();
        let client: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let (s, c) = (proc_addr(server).unwrap(), proc_addr(client).unwrap());
        assert_eq!(s, "0100007F:10E2");
        assert_eq!(queues(TABLE, &s, Some(&c)), Some((0x18, 0)));
        assert_eq!(queues(TABLE, &c, Some(&s)), Some((0, 0xFFD0)));
        // An unconnected UDP socket bound to 0.0.0.0 matches by port.
        let udp: SocketAddr = "127.0.0.1:40960".parse().unwrap();
        assert_eq!(
            queues(TABLE, &proc_addr(udp).unwrap(), None),
            Some((0, 0x400))
        );
        assert_eq!(queues(TABLE, "0100007F:0001", None), None);
    }
}
