//! The simulator's exact behaviour on the wire: framing (pipelined and split requests, garbage), bad
//! checksums, sessions, injected faults, live events and restarts, checked with a raw-socket client.

use std::time::Duration;

use zk_pull::codec::{cmd, Packet};
use zk_pull::records::{
    decode_attendance_event, encode_attendance_dataset, encode_time, AttendanceEvent,
    AttendanceLayout,
};
use zk_sim::pull::{Direction, Faults, Profile, PullSimConfig, Transport};

use crate::raw::{RawTcp, RawUdp, Read, ARRIVES, SILENCE};
use crate::support::{start, until};

fn small() -> PullSimConfig {
    PullSimConfig {
        users: 3,
        punches: 5,
        templates: 1,
        punches_until: Some(until()),
        ..PullSimConfig::new(Profile::Zk8)
    }
}

fn with_faults(faults: Faults) -> PullSimConfig {
    PullSimConfig { faults, ..small() }
}

/// 1503 for attendance, then the 1504 request for the whole buffer.
const ATTENDANCE_1503: [u8; 11] = [1, 13, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn chunk_request(start: i32, size: i32) -> Vec<u8> {
    let mut payload = start.to_le_bytes().to_vec();
    payload.extend_from_slice(&size.to_le_bytes());
    payload
}

#[tokio::test]
async fn pyzk_probe_connection_without_data_is_harmless() {
    let sim = start(small()).await;
    drop(RawTcp::open(sim.addr()).await);
    let mut client = RawTcp::connect(sim.addr()).await;
    let reply = client.request(cmd::GET_VERSION, &[]).await;
    assert_eq!(reply.payload, b"Ver 6.60 Apr 28 2015\0");
    assert_eq!(sim.handle.counters().tcp_connections, 2);
}

#[tokio::test]
async fn pipelined_requests_in_one_write_are_answered_in_order() {
    let sim = start(small()).await;
    let mut client = RawTcp::connect(sim.addr()).await;
    let a = client.packet(cmd::GET_VERSION, &[]);
    let b = client.packet(cmd::OPTIONS_RRQ, b"~SerialNumber\0");
    let c = client.packet(cmd::GET_PINWIDTH, b" P");
    let mut bytes = a.encode_tcp();
    bytes.extend_from_slice(&b.encode_tcp());
    bytes.extend_from_slice(&c.encode_tcp());
    client.send_bytes(&bytes).await;
    let session = client.session;
    assert_eq!(
        client.read().await,
        Packet::new(
            cmd::ACK_OK,
            session,
            a.reply_id,
            b"Ver 6.60 Apr 28 2015\0".to_vec()
        )
    );
    assert_eq!(
        client.read().await,
        Packet::new(
            cmd::ACK_OK,
            session,
            b.reply_id,
            b"~SerialNumber=SIM0000000001\0".to_vec()
        )
    );
    assert_eq!(
        client.read().await,
        Packet::new(cmd::ACK_OK, session, c.reply_id, vec![9])
    );
}

#[tokio::test]
async fn a_request_split_over_several_writes_is_answered_once_complete() {
    let sim = start(small()).await;
    let mut client = RawTcp::connect(sim.addr()).await;
    let request = client.packet(cmd::OPTIONS_RRQ, b"MAC\0").encode_tcp();
    client.send_bytes(&request[..3]).await;
    assert_eq!(client.read_within(SILENCE).await, Read::Nothing);
    client.send_bytes(&request[3..13]).await;
    assert_eq!(client.read_within(SILENCE).await, Read::Nothing);
    client.send_bytes(&request[13..]).await;
    assert_eq!(client.read().await.payload, b"MAC=00:17:61:00:00:01\0");
}

#[tokio::test]
async fn truncated_frame_then_close_changes_nothing() {
    let sim = start(small()).await;
    let mut client = RawTcp::connect(sim.addr()).await;
    let request = client.packet(cmd::CLEAR_ATTLOG, &[]).encode_tcp();
    client.send_bytes(&request[..12]).await;
    drop(client);
    // The next client sees the log untouched.
    let mut next = RawTcp::connect(sim.addr()).await;
    let sizes = next.request(cmd::GET_FREE_SIZES, &[]).await;
    assert_eq!(sizes.payload[32..36], 5u32.to_le_bytes());
    assert_eq!(sim.handle.attendance_count(), 5);
}

#[tokio::test]
async fn garbage_instead_of_a_frame_closes_the_connection() {
    let sim = start(small()).await;
    let mut client = RawTcp::open(sim.addr()).await;
    client.send_bytes(b"GET / HTTP/1.1\r\n\r\n").await;
    assert_eq!(client.read_to_close().await, Vec::<u8>::new());
    assert_eq!(sim.handle.counters().malformed_frames, 1);
}

#[tokio::test]
async fn bad_checksum_requests_are_answered_and_counted_by_default() {
    let sim = start(small()).await;
    let mut client = RawTcp::connect(sim.addr()).await;
    let mut request = client.packet(cmd::GET_VERSION, &[]).encode_tcp();
    request[10] ^= 0x55;
    client.send_bytes(&request).await;
    assert_eq!(client.read().await.payload, b"Ver 6.60 Apr 28 2015\0");
    assert_eq!(sim.handle.counters().bad_checksums, 1);
}

#[tokio::test]
async fn bad_checksum_requests_are_dropped_when_configured() {
    let sim = start(with_faults(Faults {
        drop_bad_checksum_requests: true,
        ..Faults::default()
    }))
    .await;
    let mut client = RawTcp::connect(sim.addr()).await;
    let mut request = client.packet(cmd::GET_VERSION, &[]).encode_tcp();
    request[10] ^= 0x55;
    client.send_bytes(&request).await;
    assert_eq!(client.read_within(SILENCE).await, Read::Nothing);
    // The connection stays usable.
    let reply = client.request(cmd::GET_PINWIDTH, b" P").await;
    assert_eq!(reply.payload, vec![9]);
    assert_eq!(sim.handle.counters().bad_checksums, 1);
}

#[tokio::test]
async fn client_disconnecting_mid_transfer_leaves_the_device_usable() {
    let sim = start(PullSimConfig {
        users: 10,
        punches: 2_000,
        ..small()
    })
    .await;
    let mut client = RawTcp::connect(sim.addr()).await;
    let stat = client.request(cmd::DATA_WRRQ, &ATTENDANCE_1503).await;
    assert_eq!(stat.payload[1..5], 80_004u32.to_le_bytes());
    client.send(cmd::DATA_RDY, &chunk_request(0, 65_472)).await;
    assert_eq!(client.read().await.command, cmd::PREPARE_DATA);
    drop(client);
    let mut next = RawTcp::connect(sim.addr()).await;
    next.request(cmd::DATA_WRRQ, &ATTENDANCE_1503).await;
    next.send(cmd::DATA_RDY, &chunk_request(65_472, 14_532))
        .await;
    let prepare = next.read().await;
    assert_eq!(prepare.payload[..4], 14_532u32.to_le_bytes());
    assert_eq!(next.read().await.payload.len(), 14_532);
    assert_eq!(next.read().await.command, cmd::ACK_OK);
}

#[tokio::test]
async fn fault_disconnect_mid_transfer_sends_half_a_data_frame_then_closes() {
    let sim = start(PullSimConfig {
        users: 10,
        punches: 2_000,
        faults: Faults {
            disconnect_mid_transfer: true,
            ..Faults::default()
        },
        ..small()
    })
    .await;
    let mut client = RawTcp::connect(sim.addr()).await;
    client.request(cmd::DATA_WRRQ, &ATTENDANCE_1503).await;
    client.send(cmd::DATA_RDY, &chunk_request(0, 1_000)).await;
    let session = client.session;
    let prepare = client.read().await;
    assert_eq!(
        prepare,
        Packet::new(
            cmd::PREPARE_DATA,
            session,
            2,
            [1_000u32.to_le_bytes(), 0x1_0000u32.to_le_bytes()].concat()
        )
    );
    // Half of the 1 016-byte data frame (8 + 8 + 1 000 bytes), then the close.
    let rest = client.read_to_close().await;
    assert_eq!(rest.len(), 508);
    let dataset = encode_attendance_dataset(&sim.handle.attendance(), AttendanceLayout::Size40);
    let expected = Packet::new(cmd::DATA, session, 2, dataset[..1_000].to_vec()).encode_tcp();
    assert_eq!(rest[..], expected[..508]);
    assert_eq!(sim.handle.counters().faults_fired, 1);
}

#[tokio::test]
async fn fault_drop_reply_fires_once_then_the_retry_is_answered() {
    let sim = start(with_faults(Faults {
        drop_reply_to: Some(cmd::GET_TIME),
        ..Faults::default()
    }))
    .await;
    let mut client = RawTcp::connect(sim.addr()).await;
    client.send(cmd::GET_TIME, &[]).await;
    assert_eq!(client.read_within(SILENCE).await, Read::Nothing);
    let retry = client.send(cmd::GET_TIME, &[]).await;
    let reply = client.read().await;
    assert_eq!(
        (reply.command, reply.reply_id, reply.payload.len()),
        (cmd::ACK_OK, retry.reply_id, 4)
    );
}

#[tokio::test]
async fn fault_truncated_reply_sends_exactly_n_bytes() {
    let sim = start(with_faults(Faults {
        truncate_reply_to: Some((cmd::GET_VERSION, 12)),
        ..Faults::default()
    }))
    .await;
    let mut client = RawTcp::connect(sim.addr()).await;
    let sent = client.send(cmd::GET_VERSION, &[]).await;
    let mut got = [0u8; 12];
    tokio::time::timeout(
        ARRIVES,
        tokio::io::AsyncReadExt::read_exact(&mut client.stream, &mut got),
    )
    .await
    .unwrap()
    .unwrap();
    let full = Packet::new(
        cmd::ACK_OK,
        client.session,
        sent.reply_id,
        b"Ver 6.60 Apr 28 2015\0".to_vec(),
    )
    .encode_tcp();
    assert_eq!(got[..], full[..12]);
    let mut more = [0u8; 1];
    let extra = tokio::time::timeout(
        SILENCE,
        tokio::io::AsyncReadExt::read(&mut client.stream, &mut more),
    )
    .await;
    assert!(extra.is_err(), "nothing after the 12 bytes");
}

#[tokio::test]
async fn fault_corrupt_checksum_keeps_the_payload() {
    let sim = start(with_faults(Faults {
        corrupt_checksum_of_reply_to: Some(cmd::GET_FREE_SIZES),
        ..Faults::default()
    }))
    .await;
    let mut client = RawTcp::connect(sim.addr()).await;
    client.send(cmd::GET_FREE_SIZES, &[]).await;
    match client.read_within(ARRIVES).await {
        Read::Frame(packet, checksum_ok) => {
            assert!(!checksum_ok);
            assert_eq!(packet.payload, sim.handle.free_sizes().encode(true));
        }
        other => panic!("expected a frame, got {other:?}"),
    }
    // Only once.
    let reply = client.request(cmd::GET_FREE_SIZES, &[]).await;
    assert_eq!(reply.payload.len(), 92);
}

#[tokio::test]
async fn slow_replies_and_split_frames_with_gaps() {
    let sim = start(PullSimConfig {
        users: 40,
        faults: Faults {
            reply_delay: Duration::from_millis(150),
            frame_gap: Duration::from_millis(20),
            data_frame_size: Some(1_008),
            ..Faults::default()
        },
        ..small()
    })
    .await;
    let mut client = RawTcp::connect(sim.addr()).await;
    let started = std::time::Instant::now();
    let stat = client
        .request(cmd::DATA_WRRQ, &[1, 9, 0, 5, 0, 0, 0, 0, 0, 0, 0])
        .await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(stat.payload[1..5], 2_884u32.to_le_bytes());
    client.send(cmd::DATA_RDY, &chunk_request(0, 2_884)).await;
    let prepare = client.read().await;
    assert_eq!(
        prepare.payload,
        [2_884u32.to_le_bytes(), 1_008u32.to_le_bytes()].concat()
    );
    let mut sizes = Vec::new();
    let mut counters = Vec::new();
    loop {
        let packet = client.read().await;
        if packet.command == cmd::ACK_OK {
            break;
        }
        sizes.push(packet.payload.len());
        counters.push(packet.session_id);
    }
    assert_eq!(sizes, vec![1_008, 1_008, 868]);
    assert_eq!(counters, vec![0, 1, 2]);
}

#[tokio::test]
async fn comm_key_required_before_anything_else() {
    let sim = start(PullSimConfig {
        comm_key: 45,
        ..small()
    })
    .await;
    let mut client = RawTcp::open(sim.addr()).await;
    let reply = client.request(cmd::CONNECT, &[]).await;
    assert_eq!(reply.command, cmd::ACK_UNAUTH);
    client.session = reply.session_id;
    assert_eq!(
        client.request(cmd::GET_VERSION, &[]).await.command,
        cmd::ACK_UNAUTH
    );
    let key = zk_pull::records::make_comm_key(45, client.session, 50);
    assert_eq!(client.request(cmd::AUTH, &key).await.command, cmd::ACK_OK);
    assert_eq!(
        client.request(cmd::GET_VERSION, &[]).await.command,
        cmd::ACK_OK
    );
}

#[tokio::test]
async fn udp_sessions_garbage_and_unknown_sessions() {
    let sim = start(small()).await;
    let mut stranger = RawUdp::open(sim.addr()).await;
    stranger.socket.send(&[1, 2, 3]).await.unwrap();
    assert!(stranger.read_within(SILENCE).await.is_none());
    stranger.session = 0x1234;
    let reply = stranger.request(cmd::GET_VERSION, &[]).await;
    assert_eq!(reply, Packet::new(cmd::ACK_UNAUTH, 0x1234, 0, vec![]));

    let mut client = RawUdp::connect(sim.addr()).await;
    assert_ne!(client.session, 0);
    let reply = client.request(cmd::GET_TIME, &[]).await;
    let now = encode_time(sim.handle.device_time());
    let got = u32::from_le_bytes(reply.payload[..4].try_into().unwrap());
    assert!(now - got <= 1);
    assert_eq!(client.request(cmd::EXIT, &[]).await.command, cmd::ACK_OK);
    // The session is gone after EXIT.
    assert_eq!(
        client.request(cmd::GET_TIME, &[]).await.command,
        cmd::ACK_UNAUTH
    );
    let counters = sim.handle.counters();
    assert_eq!((counters.malformed_frames, counters.udp_sessions), (1, 1));
}

#[tokio::test]
async fn live_events_wait_for_the_ack_of_the_previous_one() {
    let sim = start(PullSimConfig {
        event_ack_timeout: Duration::from_secs(5),
        ..small()
    })
    .await;
    let mut client = RawTcp::connect(sim.addr()).await;
    client.request(cmd::REG_EVENT, &1u32.to_le_bytes()).await;
    sim.handle.wait_for_live_subscribers(1).await;
    let first = sim.handle.punch("2", 0, 1);
    let second = sim.handle.punch("3", 1, 15);
    let event = client.read().await;
    assert_eq!(
        (event.command, event.session_id, event.reply_id),
        (cmd::REG_EVENT, 1, 0)
    );
    assert_eq!(event.payload.len(), 32);
    let expected = AttendanceEvent {
        user_id: "2".into(),
        time: first.time,
        status: 1,
        punch: 0,
    };
    assert_eq!(decode_attendance_event(&event.payload).unwrap(), expected);
    // The second event waits for our ACK (session S, reply id 0, as pyzk sends it).
    assert_eq!(client.read_within(SILENCE).await, Read::Nothing);
    let ack = Packet::new(cmd::ACK_OK, client.session, 0, vec![]);
    client.send_bytes(&ack.encode_tcp()).await;
    let event = client.read().await;
    assert_eq!(
        decode_attendance_event(&event.payload).unwrap().user_id,
        "3"
    );
    assert_eq!(second.uid, 3);
    // Both punches are in the log.
    assert_eq!(sim.handle.attendance_count(), 7);
    let counters = sim.handle.counters();
    assert_eq!((counters.events_sent, counters.events_acked), (2, 1));
    // Unregistering stops events.
    client.request(cmd::REG_EVENT, &0u32.to_le_bytes()).await;
    assert_eq!(sim.handle.live_subscribers(), 0);
}

#[tokio::test]
async fn live_events_without_acks_still_flow_after_the_timeout() {
    let sim = start(PullSimConfig {
        event_ack_timeout: Duration::from_millis(100),
        ..small()
    })
    .await;
    let mut client = RawTcp::connect(sim.addr()).await;
    client.request(cmd::REG_EVENT, &1u32.to_le_bytes()).await;
    sim.handle.wait_for_live_subscribers(1).await;
    sim.handle.punch("1", 0, 1);
    sim.handle.punch("2", 0, 1);
    assert_eq!(client.read().await.command, cmd::REG_EVENT);
    assert_eq!(client.read().await.command, cmd::REG_EVENT);
}

#[tokio::test]
async fn udp_live_events_are_12_byte_datagrams() {
    let sim = start(small()).await;
    let mut client = RawUdp::connect(sim.addr()).await;
    client.request(cmd::REG_EVENT, &1u32.to_le_bytes()).await;
    sim.handle.wait_for_live_subscribers(1).await;
    let punch = sim.handle.punch("3", 4, 2);
    let event = client.read().await;
    assert_eq!(
        (event.command, event.session_id, event.reply_id),
        (cmd::REG_EVENT, 1, 0)
    );
    let mut expected = 3u32.to_le_bytes().to_vec();
    expected.extend_from_slice(&[2, 4]);
    expected.extend_from_slice(&zk_pull::records::encode_event_time(punch.time));
    assert_eq!(event.payload, expected);
}

#[tokio::test]
async fn restart_closes_every_connection_and_ends_subscriptions() {
    let sim = start(small()).await;
    let mut listener = RawTcp::connect(sim.addr()).await;
    listener.request(cmd::REG_EVENT, &1u32.to_le_bytes()).await;
    let mut udp_listener = RawUdp::connect(sim.addr()).await;
    udp_listener
        .request(cmd::REG_EVENT, &1u32.to_le_bytes())
        .await;
    sim.handle.wait_for_live_subscribers(2).await;
    let mut admin = RawTcp::connect(sim.addr()).await;
    assert_eq!(admin.request(cmd::RESTART, &[]).await.command, cmd::ACK_OK);
    assert_eq!(admin.read_to_close().await, Vec::<u8>::new());
    assert_eq!(listener.read_to_close().await, Vec::<u8>::new());
    tokio::time::timeout(ARRIVES, async {
        while sim.handle.live_subscribers() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    // The UDP session is gone too.
    assert_eq!(
        udp_listener.request(cmd::GET_TIME, &[]).await.command,
        cmd::ACK_UNAUTH
    );
    assert_eq!(sim.handle.counters().restarts, 1);
}

#[tokio::test]
async fn demo_mode_punches_while_someone_listens() {
    let sim = start(PullSimConfig {
        live_punch_every: Some(Duration::from_millis(50)),
        event_ack_timeout: Duration::from_millis(10),
        ..small()
    })
    .await;
    // Nobody listens yet: no punches.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sim.handle.attendance_count(), 5);
    let mut client = RawTcp::connect(sim.addr()).await;
    client.request(cmd::REG_EVENT, &1u32.to_le_bytes()).await;
    let event = client.read().await;
    assert_eq!(event.command, cmd::REG_EVENT);
    let punch = decode_attendance_event(&event.payload).unwrap();
    let users: Vec<String> = sim.handle.users().into_iter().map(|u| u.user_id).collect();
    assert!(users.contains(&punch.user_id));
    assert_eq!(
        sim.handle.attendance().last().map(|a| a.time),
        Some(punch.time)
    );
}

#[tokio::test]
async fn serve_returns_when_shutdown_resolves() {
    let config = small();
    zk_sim::pull::serve("127.0.0.1:0".parse().unwrap(), config, async {})
        .await
        .unwrap();
}

#[tokio::test]
async fn frame_log_records_requests_replies_and_events() {
    let sim = start(PullSimConfig {
        record_frames: true,
        ..small()
    })
    .await;
    let mut client = RawUdp::connect(sim.addr()).await;
    client.request(cmd::REG_EVENT, &1u32.to_le_bytes()).await;
    sim.handle.wait_for_live_subscribers(1).await;
    sim.handle.punch("1", 0, 1);
    let event = client.read().await;
    let me = client.socket.local_addr().unwrap();
    let session = client.session;
    let log: Vec<(Direction, u16, u16, u16)> = sim
        .handle
        .frame_log()
        .into_iter()
        .inspect(|logged| {
            assert_eq!(
                (logged.transport, logged.peer, logged.checksum_ok),
                (Transport::Udp, me, true)
            )
        })
        .map(|l| {
            (
                l.direction,
                l.packet.command,
                l.packet.session_id,
                l.packet.reply_id,
            )
        })
        .collect();
    assert_eq!(
        log,
        vec![
            (Direction::Request, cmd::CONNECT, 0, 0),
            (Direction::Reply, cmd::ACK_OK, session, 0),
            (Direction::Request, cmd::REG_EVENT, session, 1),
            (Direction::Reply, cmd::ACK_OK, session, 1),
            (Direction::Event, cmd::REG_EVENT, 1, 0),
        ]
    );
    assert_eq!(sim.handle.frame_log()[4].packet, event);
    sim.handle.clear_frame_log();
    assert!(sim.handle.frame_log().is_empty());
}
