//! From reply packets to bytes on the wire, with the configured faults applied (slow replies, frame gaps,
//! dropped, truncated and corrupted replies, a disconnect in the middle of a transfer), and the TCP frame cutter
//! for requests that also reports whether the checksum verified.
//!
//! Pure: returns a plan ([`Wire`] steps) that the transports carry out. Must not depend on `tcp`, `udp` or
//! tokio.

use std::time::Duration;

use bytes::BytesMut;
use zk_pull::codec::{self, DecodeError, Packet, TCP_HEADER_LEN};

use super::responder::{Reply, Transport};
use super::{Faults, Pacing};

/// One step of writing a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wire {
    /// TCP: one `write_all`. UDP: one datagram.
    Bytes(Vec<u8>),
    /// Wait before the next step.
    Pause(Duration),
    /// Wait until the client has read everything sent so far (a client on this machine: see `drain`);
    /// when that cannot be observed, pause this long.
    Drain(Duration),
    /// Close the TCP connection now (UDP: stop sending the rest of this reply).
    Close,
}

/// Which one-shot faults have fired (each hits the first matching reply only, so a client that retries or
/// reconnects then succeeds).
#[derive(Debug, Clone, Default)]
pub(crate) struct FaultState {
    dropped: bool,
    truncated: bool,
    corrupted: bool,
    disconnected: bool,
}

/// Counts of what [`render`] did, for the simulator's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Rendered {
    pub(crate) dropped: bool,
    pub(crate) truncated: bool,
    pub(crate) corrupted: bool,
    pub(crate) disconnected: bool,
}

fn encode(packet: &Packet, transport: Transport) -> Vec<u8> {
    match transport {
        Transport::Tcp => packet.encode_tcp(),
        Transport::Udp => packet.encode(),
    }
}

/// Plan how `reply` (the answer to a request with command `request_command`) goes on the wire.
///
/// Faults, in this order, each at most once per `state`:
/// - `drop_reply_to`: nothing is sent.
/// - `corrupt_checksum_of_reply_to`: the first packet's checksum is complemented.
/// - `disconnect_mid_transfer` (bulk transfers only): `PREPARE_DATA` and the first half of the first data
///   packet's bytes, then [`Wire::Close`] (UDP: `PREPARE_DATA` and the first data datagram, then nothing).
/// - `truncate_reply_to`: only the first `n` bytes of the reply are sent (UDP: datagrams up to `n` bytes in
///   all, the one crossing the limit cut short).
///
/// Timing: `reply_delay` before the first byte; on bulk transfers `frame_gap` between packets. Without a
/// `frame_gap`, a TCP bulk transfer with a non-zero `pacing.tcp_gap` is paced as the Node clients need
/// (pull-simulator.md §4): `PREPARE_DATA` in one write, a wait until the client has read it, the data frames
/// and the closing `ACK_OK` in one write (so the ACK reaches the client with the end of the data and is never
/// read as the reply to the next request), and a wait again before whatever comes next (their collectors take one frame per socket read
/// and drop what else that read held). Other TCP replies, and every reply when `tcp_gap` is zero, are
/// one write. UDP is always one datagram per packet; a bulk transfer waits for the client to read after
/// every `udp_burst` datagrams.
pub(crate) fn render(
    reply: &Reply,
    request_command: u16,
    transport: Transport,
    faults: &Faults,
    pacing: &Pacing,
    state: &mut FaultState,
) -> (Vec<Wire>, Rendered) {
    let mut rendered = Rendered::default();
    if reply.packets.is_empty() {
        return (Vec::new(), rendered);
    }
    if faults.drop_reply_to == Some(request_command) && !state.dropped {
        state.dropped = true;
        rendered.dropped = true;
        return (Vec::new(), rendered);
    }
    let mut frames: Vec<Vec<u8>> = reply.packets.iter().map(|p| encode(p, transport)).collect();
    if faults.corrupt_checksum_of_reply_to == Some(request_command) && !state.corrupted {
        state.corrupted = true;
        rendered.corrupted = true;
        let at = match transport {
            Transport::Tcp => TCP_HEADER_LEN + 2,
            Transport::Udp => 2,
        };
        if let Some(first) = frames.first_mut() {
            if let Some(field) = first.get_mut(at..at + 2) {
                field[0] = !field[0];
                field[1] = !field[1];
            }
        }
    }
    let mut close = false;
    if faults.disconnect_mid_transfer && reply.bulk && !state.disconnected && frames.len() > 2 {
        state.disconnected = true;
        rendered.disconnected = true;
        frames.truncate(2);
        if transport == Transport::Tcp {
            if let Some(data) = frames.get_mut(1) {
                data.truncate(data.len() / 2);
            }
            close = true;
        }
    }
    if let Some((command, limit)) = faults.truncate_reply_to {
        if command == request_command && !state.truncated {
            state.truncated = true;
            rendered.truncated = true;
            let mut left = limit;
            frames.retain_mut(|frame| {
                if left == 0 {
                    return false;
                }
                frame.truncate(left);
                left -= frame.len();
                true
            });
        }
    }
    let mut plan = Vec::new();
    if !faults.reply_delay.is_zero() {
        plan.push(Wire::Pause(faults.reply_delay));
    }
    let gap = if reply.bulk {
        faults.frame_gap
    } else {
        Duration::ZERO
    };
    match transport {
        Transport::Tcp if gap.is_zero() && reply.bulk && !pacing.tcp_gap.is_zero() => {
            let mut frames = frames.into_iter();
            if let Some(prepare) = frames.next() {
                plan.push(Wire::Bytes(prepare));
            }
            let rest: Vec<u8> = frames.collect::<Vec<_>>().concat();
            if !rest.is_empty() {
                plan.push(Wire::Drain(pacing.tcp_gap));
                plan.push(Wire::Bytes(rest));
            }
            if !close {
                plan.push(Wire::Drain(pacing.tcp_gap));
            }
        }
        Transport::Tcp if gap.is_zero() => {
            let bytes: Vec<u8> = frames.concat();
            if !bytes.is_empty() {
                plan.push(Wire::Bytes(bytes));
            }
        }
        _ => {
            let burst = if reply.bulk && gap.is_zero() && !pacing.udp_burst_gap.is_zero() {
                pacing.udp_burst
            } else {
                0
            };
            for (index, frame) in frames.into_iter().enumerate() {
                if index > 0 && !gap.is_zero() {
                    plan.push(Wire::Pause(gap));
                }
                if index > 0 && burst > 0 && index % burst == 0 {
                    plan.push(Wire::Drain(pacing.udp_burst_gap));
                }
                plan.push(Wire::Bytes(frame));
            }
        }
    }
    if close {
        plan.push(Wire::Close);
    }
    (plan, rendered)
}

/// Cut one request frame out of a TCP stream buffer: `Ok(None)` = need more bytes, otherwise the packet and
/// whether its checksum verified. Framing and its errors are `zk_pull::codec::decode_tcp_frame`'s (bad magic,
/// a length under 8 or over the codec's limit: the stream cannot be resynchronised and must be closed).
pub(crate) fn cut_tcp_frame(buf: &mut BytesMut) -> Result<Option<(Packet, bool)>, DecodeError> {
    // Keep a copy of the complete frame's packet bytes (requests are small) to verify the checksum, which the
    // codec's frame decoder does not report.
    let declared = buf
        .get(4..8)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .and_then(|n| usize::try_from(n).ok());
    let packet_bytes = declared
        .filter(|&len| len <= codec::MAX_PACKET_LEN)
        .and_then(|len| buf.get(TCP_HEADER_LEN..TCP_HEADER_LEN + len))
        .map(<[u8]>::to_vec);
    let Some(packet) = codec::decode_tcp_frame(buf)? else {
        return Ok(None);
    };
    let checksum_ok = match packet_bytes {
        Some(bytes) => codec::decode_checked(&bytes).map(|(_, ok)| ok)?,
        None => true,
    };
    Ok(Some((packet, checksum_ok)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pull::responder::After;
    use zk_pull::codec::cmd;

    fn transfer_reply() -> Reply {
        Reply {
            packets: vec![
                Packet::new(cmd::PREPARE_DATA, 7, 3, vec![8, 0, 0, 0, 0, 0, 1, 0]),
                Packet::new(cmd::DATA, 7, 3, vec![1, 2, 3, 4, 5, 6, 7, 8]),
                Packet::new(cmd::ACK_OK, 7, 3, vec![]),
            ],
            bulk: true,
            after: After::Continue,
            event_ack: false,
        }
    }

    fn simple_reply() -> Reply {
        Reply {
            packets: vec![Packet::new(cmd::ACK_OK, 7, 3, vec![])],
            bulk: false,
            after: After::Continue,
            event_ack: false,
        }
    }

    #[test]
    fn no_faults_tcp_is_one_write() {
        let reply = transfer_reply();
        let (plan, rendered) = render(
            &reply,
            cmd::DATA_RDY,
            Transport::Tcp,
            &Faults::default(),
            &Pacing::none(),
            &mut FaultState::default(),
        );
        let expected: Vec<u8> = reply.packets.iter().flat_map(Packet::encode_tcp).collect();
        assert_eq!(plan, vec![Wire::Bytes(expected)]);
        assert_eq!(rendered, Rendered::default());
    }

    /// pull-simulator.md §4: node-zklib and zkteco-js read one frame per socket read, so `PREPARE_DATA` goes
    /// alone, the data and its `ACK_OK` together, each followed by a pause.
    #[test]
    fn default_pacing_splits_a_tcp_transfer_for_the_node_clients() {
        let reply = transfer_reply();
        let pacing = Pacing::default();
        let (plan, _) = render(
            &reply,
            cmd::DATA_RDY,
            Transport::Tcp,
            &Faults::default(),
            &pacing,
            &mut FaultState::default(),
        );
        let frames: Vec<Vec<u8>> = reply.packets.iter().map(Packet::encode_tcp).collect();
        assert_eq!(
            plan,
            vec![
                Wire::Bytes(frames[0].clone()),
                Wire::Drain(pacing.tcp_gap),
                Wire::Bytes([frames[1].clone(), frames[2].clone()].concat()),
                Wire::Drain(pacing.tcp_gap),
            ]
        );
        // Replies that are not transfers stay one write, without pauses.
        let (plan, _) = render(
            &simple_reply(),
            cmd::GET_TIME,
            Transport::Tcp,
            &Faults::default(),
            &pacing,
            &mut FaultState::default(),
        );
        assert_eq!(plan.len(), 1);
    }

    #[test]
    fn default_pacing_pauses_udp_transfers_every_burst() {
        let mut reply = transfer_reply();
        let data = reply.packets[1].clone();
        reply.packets.splice(1..2, std::iter::repeat_n(data, 40));
        let pacing = Pacing::default();
        let (plan, _) = render(
            &reply,
            cmd::DATA_RDY,
            Transport::Udp,
            &Faults::default(),
            &pacing,
            &mut FaultState::default(),
        );
        let pauses: Vec<usize> = plan
            .iter()
            .enumerate()
            .filter(|(_, step)| **step == Wire::Drain(pacing.udp_burst_gap))
            .map(|(at, _)| at)
            .collect();
        // 42 datagrams: waits after every 8th.
        assert_eq!(pauses, vec![8, 17, 26, 35, 44]);
        assert_eq!(plan.len(), 47);
    }

    #[test]
    fn udp_is_one_datagram_per_packet_with_gaps() {
        let reply = transfer_reply();
        let faults = Faults {
            frame_gap: Duration::from_millis(5),
            reply_delay: Duration::from_millis(1),
            ..Faults::default()
        };
        let (plan, _) = render(
            &reply,
            cmd::DATA_RDY,
            Transport::Udp,
            &faults,
            &Pacing::none(),
            &mut FaultState::default(),
        );
        let frames: Vec<Vec<u8>> = reply.packets.iter().map(Packet::encode).collect();
        assert_eq!(
            plan,
            vec![
                Wire::Pause(Duration::from_millis(1)),
                Wire::Bytes(frames[0].clone()),
                Wire::Pause(Duration::from_millis(5)),
                Wire::Bytes(frames[1].clone()),
                Wire::Pause(Duration::from_millis(5)),
                Wire::Bytes(frames[2].clone()),
            ]
        );
    }

    #[test]
    fn drop_fires_once_for_the_named_command() {
        let faults = Faults {
            drop_reply_to: Some(cmd::GET_TIME),
            ..Faults::default()
        };
        let mut state = FaultState::default();
        let reply = simple_reply();
        let (plan, _) = render(
            &reply,
            cmd::GET_VERSION,
            Transport::Tcp,
            &faults,
            &Pacing::none(),
            &mut state,
        );
        assert_eq!(plan.len(), 1);
        let (plan, rendered) = render(
            &reply,
            cmd::GET_TIME,
            Transport::Tcp,
            &faults,
            &Pacing::none(),
            &mut state,
        );
        assert!(plan.is_empty() && rendered.dropped);
        let (plan, _) = render(
            &reply,
            cmd::GET_TIME,
            Transport::Tcp,
            &faults,
            &Pacing::none(),
            &mut state,
        );
        assert_eq!(plan, vec![Wire::Bytes(reply.packets[0].encode_tcp())]);
    }

    #[test]
    fn corrupt_checksum_complements_the_field() {
        let faults = Faults {
            corrupt_checksum_of_reply_to: Some(cmd::GET_TIME),
            ..Faults::default()
        };
        let reply = simple_reply();
        let (plan, _) = render(
            &reply,
            cmd::GET_TIME,
            Transport::Tcp,
            &faults,
            &Pacing::none(),
            &mut FaultState::default(),
        );
        let mut expected = reply.packets[0].encode_tcp();
        expected[10] ^= 0xFF;
        expected[11] ^= 0xFF;
        assert_eq!(plan, vec![Wire::Bytes(expected.clone())]);
        let (_, ok) = codec::decode_checked(&expected[8..]).unwrap();
        assert!(!ok);
    }

    #[test]
    fn disconnect_mid_transfer_sends_half_the_data_then_closes() {
        let faults = Faults {
            disconnect_mid_transfer: true,
            ..Faults::default()
        };
        let reply = transfer_reply();
        let (plan, _) = render(
            &reply,
            cmd::DATA_RDY,
            Transport::Tcp,
            &faults,
            &Pacing::none(),
            &mut FaultState::default(),
        );
        let mut expected = reply.packets[0].encode_tcp();
        let data = reply.packets[1].encode_tcp();
        expected.extend_from_slice(&data[..data.len() / 2]);
        assert_eq!(plan, vec![Wire::Bytes(expected), Wire::Close]);
        let (plan, _) = render(
            &reply,
            cmd::DATA_RDY,
            Transport::Udp,
            &faults,
            &Pacing::none(),
            &mut FaultState::default(),
        );
        assert_eq!(
            plan,
            vec![
                Wire::Bytes(reply.packets[0].encode()),
                Wire::Bytes(reply.packets[1].encode())
            ]
        );
    }

    #[test]
    fn truncate_cuts_the_reply_to_n_bytes() {
        let faults = Faults {
            truncate_reply_to: Some((cmd::DATA_RDY, 30)),
            ..Faults::default()
        };
        let reply = transfer_reply();
        let (plan, _) = render(
            &reply,
            cmd::DATA_RDY,
            Transport::Udp,
            &faults,
            &Pacing::none(),
            &mut FaultState::default(),
        );
        let first = reply.packets[0].encode();
        let second = reply.packets[1].encode();
        assert_eq!(
            plan,
            vec![
                Wire::Bytes(first.clone()),
                Wire::Bytes(second[..30 - first.len()].to_vec())
            ]
        );
        let (plan, _) = render(
            &reply,
            cmd::DATA_RDY,
            Transport::Tcp,
            &faults,
            &Pacing::none(),
            &mut FaultState::default(),
        );
        let all: Vec<u8> = reply.packets.iter().flat_map(Packet::encode_tcp).collect();
        assert_eq!(plan, vec![Wire::Bytes(all[..30].to_vec())]);
    }

    #[test]
    fn cut_tcp_frame_handles_partial_pipelined_and_bad_checksums() {
        let a = Packet::new(cmd::CONNECT, 0, 0, vec![]).encode_tcp();
        let b = Packet::new(cmd::OPTIONS_RRQ, 9, 1, b"MAC\0".to_vec()).encode_tcp();
        let mut corrupted = b.clone();
        corrupted[10] ^= 1;
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&a[..5]);
        assert_eq!(cut_tcp_frame(&mut buf).unwrap(), None);
        buf.extend_from_slice(&a[5..]);
        buf.extend_from_slice(&b);
        buf.extend_from_slice(&corrupted);
        let first = cut_tcp_frame(&mut buf).unwrap().unwrap();
        assert_eq!(first, (Packet::new(cmd::CONNECT, 0, 0, vec![]), true));
        let second = cut_tcp_frame(&mut buf).unwrap().unwrap();
        assert_eq!(
            second,
            (Packet::new(cmd::OPTIONS_RRQ, 9, 1, b"MAC\0".to_vec()), true)
        );
        let third = cut_tcp_frame(&mut buf).unwrap().unwrap();
        assert_eq!(third.0.payload, b"MAC\0");
        assert!(!third.1);
        assert!(buf.is_empty());
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert!(matches!(
            cut_tcp_frame(&mut buf),
            Err(DecodeError::BadMagic { .. })
        ));
    }
}
