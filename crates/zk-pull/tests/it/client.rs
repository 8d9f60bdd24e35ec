//! The client over real loopback sockets against tiny in-test fake devices that answer with captured replies.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use chrono::{NaiveDate, NaiveDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use zk_pull::codec::{cmd, decode_tcp_frame, Packet};
use zk_pull::records::{self, AttendanceLayout, User};
use zk_pull::{Client, ClientError, ClientOptions, Transport};

use crate::samples::{hex, read_lines};

const SESSION: u16 = 0x5a01;

fn dt(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_opt(h, mi, s)
        .unwrap()
}

/// Replies captured in a session file, keyed by the request's (command, payload); the first answer wins.
struct Script {
    exact: HashMap<(u16, Vec<u8>), Vec<Packet>>,
    by_command: HashMap<u16, Vec<Packet>>,
}

impl Script {
    fn load(rel: &str) -> Script {
        let mut exact: HashMap<(u16, Vec<u8>), Vec<Packet>> = HashMap::new();
        let mut by_command: HashMap<u16, Vec<Packet>> = HashMap::new();
        let mut current: Option<(u16, Vec<u8>)> = None;
        let mut first_time = false;
        let strip = |bytes: &[u8]| {
            if bytes.starts_with(&[0x50, 0x50, 0x82, 0x7d]) {
                bytes[8..].to_vec()
            } else {
                bytes.to_vec()
            }
        };
        for line in read_lines(rel) {
            match line.dir.as_str() {
                "C>D" => {
                    let p = Packet::decode(&strip(&line.bytes)).unwrap();
                    let key = (p.command, p.payload);
                    first_time = !exact.contains_key(&key);
                    if first_time {
                        exact.insert(key.clone(), Vec::new());
                    }
                    current = Some(key);
                }
                "D>C" => {
                    let Some(key) = &current else { continue };
                    if first_time {
                        let p = Packet::decode(&strip(&line.bytes)).unwrap();
                        exact.get_mut(key).unwrap().push(p.clone());
                        by_command.entry(key.0).or_default().push(p);
                    }
                }
                _ => current = None,
            }
        }
        Script { exact, by_command }
    }

    fn answer(&self, request: &Packet) -> Vec<Packet> {
        let replies = self
            .exact
            .get(&(request.command, request.payload.clone()))
            .or_else(|| self.by_command.get(&request.command))
            .cloned()
            .unwrap_or_else(|| {
                let code = if request.command == cmd::EXIT {
                    cmd::ACK_OK
                } else {
                    cmd::ACK_UNKNOWN
                };
                vec![Packet::new(code, SESSION, 0, vec![])]
            });
        // Captured replies carry pyzk's reply ids; re-stamp them with ours.
        replies
            .into_iter()
            .map(|mut p| {
                p.reply_id = request.reply_id;
                p
            })
            .collect()
    }
}

type Log = Arc<Mutex<Vec<Packet>>>;

/// A fake TCP device: `handler` turns each request into raw byte writes (so tests can split and coalesce).
async fn spawn_tcp<F>(mut handler: F) -> (SocketAddr, Log)
where
    F: FnMut(&Packet) -> Vec<Vec<u8>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let log2 = log.clone();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        loop {
            while let Some(request) = decode_tcp_frame(&mut buf).unwrap() {
                log2.lock().unwrap().push(request.clone());
                for write in handler(&request) {
                    if stream.write_all(&write).await.is_err() {
                        return;
                    }
                    stream.flush().await.unwrap();
                }
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    (addr, log)
}

/// A fake UDP device: `handler` turns each request datagram into reply datagrams.
async fn spawn_udp<F>(handler: F) -> (SocketAddr, Log)
where
    F: FnMut(&Packet) -> Vec<Vec<u8>> + Send + 'static,
{
    spawn_udp_at("127.0.0.1:0".parse().unwrap(), handler).await
}

async fn spawn_udp_at<F>(bind: SocketAddr, mut handler: F) -> (SocketAddr, Log)
where
    F: FnMut(&Packet) -> Vec<Vec<u8>> + Send + 'static,
{
    let socket = UdpSocket::bind(bind).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let log: Log = Arc::default();
    let log2 = log.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let request = Packet::decode(&buf[..n]).unwrap();
            log2.lock().unwrap().push(request.clone());
            for datagram in handler(&request) {
                socket.send_to(&datagram, peer).await.unwrap();
            }
        }
    });
    (addr, log)
}

fn commands(log: &Log) -> Vec<u16> {
    log.lock().unwrap().iter().map(|p| p.command).collect()
}

#[tokio::test]
async fn tcp_session_against_captured_pyzk_replies() {
    let script = Script::load("synthetic/pyzk-0.9_tcp_full-session.hex");
    let (addr, log) =
        spawn_tcp(move |req| script.answer(req).iter().map(Packet::encode_tcp).collect()).await;
    let mut client = Client::connect(addr, Transport::Tcp, 0, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(client.session_id(), SESSION);
    // The CONNECT we sent is byte-identical to pyzk's.
    assert_eq!(
        log.lock().unwrap()[0].encode_tcp(),
        hex("5050827d08000000e80317fc00000000")
    );

    let info = client.device_info().await.unwrap();
    assert_eq!(info.serial_number.as_deref(), Some("EMU0000000001"));
    assert_eq!(info.platform.as_deref(), Some("ZEM560_TFT"));
    assert_eq!(
        info.firmware_version.as_deref(),
        Some("Ver 6.60 Apr 28 2015")
    );
    assert_eq!(info.device_name.as_deref(), Some("K40-EMU"));
    assert_eq!(info.mac.as_deref(), Some("00:17:61:00:00:01"));
    assert_eq!(info.fingerprint_version.as_deref(), Some("10"));
    assert_eq!(info.face_version.as_deref(), Some("0"));
    assert_eq!(
        (
            info.sizes.users,
            info.sizes.records,
            info.sizes.record_capacity
        ),
        (3, 5, 100_000)
    );

    let users = client.users().await.unwrap();
    assert_eq!(users.len(), 3);
    assert_eq!(
        users[0],
        User {
            uid: 1,
            user_id: "101".into(),
            name: "User 1".into(),
            privilege: 14,
            password: "123".into(),
            group_id: "1".into(),
            card: 1001
        }
    );

    let download = client.attendance().await.unwrap();
    assert_eq!(download.layout, Some(AttendanceLayout::Size40));
    assert_eq!(download.records.len(), 5);
    assert!(download.errors.is_empty());
    assert_eq!(download.raw.len(), 4 + 5 * 40);
    assert_eq!(&download.raw[..4], &200u32.to_le_bytes());
    assert_eq!(download.records[0].user_id, "101");
    assert_eq!(download.records[0].time, dt(2024, 3, 1, 8, 0, 0));

    assert_eq!(client.get_time().await.unwrap(), dt(2026, 11, 21, 9, 32, 3));
    client.set_time(dt(2025, 1, 2, 3, 4, 5)).await.unwrap();
    let zoe = User {
        uid: 50,
        user_id: "5050".into(),
        name: "Zoë Test".into(),
        privilege: 0,
        password: "1234".into(),
        group_id: String::new(),
        card: 777,
    };
    client.set_user(&zoe).await.unwrap();
    client.delete_user(50).await.unwrap();
    client.unlock(3).await.unwrap();
    client.clear_attendance().await.unwrap();
    client.disconnect().await.unwrap();

    let sent = log.lock().unwrap().clone();
    // The user record we wrote is exactly pyzk's.
    let user_wrq = sent.iter().find(|p| p.command == cmd::USER_WRQ).unwrap();
    assert_eq!(
        user_wrq.payload,
        hex("32000031323334000000005a6fc3ab205465737400000000000000000000000000000009030000000000000000000000353035300000000000000000000000000000000000000000")
    );
    let set_time = sent.iter().find(|p| p.command == cmd::SET_TIME).unwrap();
    assert_eq!(set_time.payload, hex("a53ae62f"));
    let unlock = sent.iter().find(|p| p.command == cmd::UNLOCK).unwrap();
    assert_eq!(unlock.payload, hex("1e000000"));
    // Reads are bracketed by disable/enable; reply ids count up from 0.
    let ids: Vec<u16> = sent.iter().map(|p| p.reply_id).collect();
    assert_eq!(
        ids,
        (0..u16::try_from(sent.len()).unwrap()).collect::<Vec<_>>()
    );
    let cmds = commands(&log);
    let users_read = cmds.iter().position(|&c| c == cmd::DATA_WRRQ).unwrap();
    assert_eq!(
        &cmds[users_read - 2..users_read + 2],
        &[
            cmd::DISABLEDEVICE,
            cmd::GET_FREE_SIZES,
            cmd::DATA_WRRQ,
            cmd::ENABLEDEVICE
        ]
    );
    assert_eq!(*cmds.last().unwrap(), cmd::EXIT);
}

#[tokio::test]
async fn udp_session_against_captured_pyzk_replies() {
    let script = Script::load("synthetic/pyzk-0.9_udp_full-session.hex");
    let (addr, log) =
        spawn_udp(move |req| script.answer(req).iter().map(Packet::encode).collect()).await;
    let mut client = Client::connect(addr, Transport::Udp, 0, Duration::from_secs(2))
        .await
        .unwrap();
    let users = client.users().await.unwrap();
    assert_eq!(
        users
            .iter()
            .map(|u| (u.uid, u.user_id.as_str(), u.name.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (1, "101", "User 1"),
            (2, "102", "User 2"),
            (3, "103", "User 3")
        ]
    );
    let download = client.attendance().await.unwrap();
    assert_eq!(download.layout, Some(AttendanceLayout::Size16));
    assert_eq!(
        download
            .records
            .iter()
            .map(|r| (r.user_id.as_str(), r.punch))
            .collect::<Vec<_>>(),
        vec![("101", 0), ("102", 1), ("103", 0), ("101", 1), ("102", 0)]
    );
    // UDP devices get the 28-byte user record.
    client.set_user(&users[1]).await.unwrap();
    let sent = log.lock().unwrap().clone();
    let user_wrq = sent.iter().find(|p| p.command == cmd::USER_WRQ).unwrap();
    assert_eq!(
        user_wrq.payload,
        records::encode_user_28(&users[1]).to_vec()
    );
    client.disconnect().await.unwrap();
}

/// A device holding `dataset` (with its size prefix) that serves it through 1503/1504 like the 1008-byte-frame
/// terminal of the pyzk fixtures, splitting frames across writes, with an event and stale ACKs mixed in.
fn buffered_device(
    dataset: Vec<u8>,
    user_count: u32,
    record_count: u32,
) -> impl FnMut(&Packet) -> Vec<Vec<u8>> + Send {
    let mut sizes = records::FreeSizes {
        users: user_count,
        records: record_count,
        ..Default::default()
    };
    sizes.record_capacity = 100_000;
    let mut sent_event = false;
    move |req| {
        let ack = |payload: Vec<u8>| Packet::new(cmd::ACK_OK, SESSION, req.reply_id, payload);
        match req.command {
            cmd::GET_FREE_SIZES => vec![ack(sizes.encode(true)).encode_tcp()],
            cmd::DATA_WRRQ => {
                let mut stat = vec![0u8];
                stat.extend(u32::try_from(dataset.len()).unwrap().to_le_bytes());
                stat.extend(u32::try_from(dataset.len()).unwrap().to_le_bytes());
                stat.extend([0xcd, 0xef, 0x23, 0x00]);
                vec![ack(stat).encode_tcp()]
            }
            cmd::DATA_RDY => {
                let offset = u32::from_le_bytes(req.payload[0..4].try_into().unwrap()) as usize;
                let size = u32::from_le_bytes(req.payload[4..8].try_into().unwrap()) as usize;
                let chunk = &dataset[offset..offset + size];
                let mut prepare = u32::try_from(size).unwrap().to_le_bytes().to_vec();
                prepare.extend(1008u32.to_le_bytes());
                let mut stream =
                    Packet::new(cmd::PREPARE_DATA, SESSION, req.reply_id, prepare).encode_tcp();
                for (i, piece) in chunk.chunks(1008).enumerate() {
                    stream.extend(
                        Packet::new(
                            cmd::DATA,
                            u16::try_from(i).unwrap(),
                            req.reply_id,
                            piece.to_vec(),
                        )
                        .encode_tcp(),
                    );
                    if i == 3 && !sent_event {
                        sent_event = true;
                        let event = records::encode_attendance_event(
                            &records::AttendanceEvent {
                                user_id: "77".into(),
                                time: dt(2024, 5, 6, 7, 8, 9),
                                status: 15,
                                punch: 1,
                            },
                            32,
                        );
                        stream.extend(Packet::new(cmd::REG_EVENT, 1, 0, event).encode_tcp());
                    }
                }
                stream.extend(ack(vec![]).encode_tcp());
                // TCP segmentation: cut the byte stream at odd places.
                stream.chunks(777).map(<[u8]>::to_vec).collect()
            }
            // Devices do not answer the client's event acknowledgements.
            cmd::ACK_OK => vec![],
            _ => vec![ack(vec![]).encode_tcp()],
        }
    }
}

#[tokio::test]
async fn buffered_attendance_read_of_2000_records() {
    let punches: Vec<records::Attendance> = (0..2000u32)
        .map(|i| records::Attendance {
            uid: u16::try_from(i % 100 + 1).unwrap(),
            user_id: format!("{:04}", i % 100 + 1),
            time: dt(2024, 1, 1, 0, 0, 0) + chrono::Duration::minutes(i64::from(i) * 17),
            status: 1,
            punch: u8::try_from(i % 2).unwrap(),
        })
        .collect();
    let dataset = records::encode_attendance_dataset(&punches, AttendanceLayout::Size40);
    assert_eq!(dataset.len(), 80_004);
    let (addr, log) = spawn_tcp(buffered_device(dataset.clone(), 100, 2000)).await;
    let mut client = Client::connect(addr, Transport::Tcp, 0, Duration::from_secs(2))
        .await
        .unwrap();
    let download = client.attendance().await.unwrap();
    assert_eq!(download.raw, dataset);
    assert_eq!(download.records, punches);
    assert_eq!(download.records[0].user_id, "0001");
    let chunks: Vec<Vec<u8>> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.command == cmd::DATA_RDY)
        .map(|p| p.payload.clone())
        .collect();
    // pyzk's chunking: 65472 + 14532 bytes.
    assert_eq!(
        chunks,
        vec![hex("00000000c0ff0000"), hex("c0ff0000c4380000")]
    );
    assert_eq!(
        commands(&log),
        vec![
            cmd::CONNECT,
            cmd::DISABLEDEVICE,
            cmd::GET_FREE_SIZES,
            cmd::DATA_WRRQ,
            cmd::DATA_RDY,
            cmd::ACK_OK, // the event mid-transfer, acknowledged
            cmd::DATA_RDY,
            cmd::FREE_DATA,
            cmd::ENABLEDEVICE
        ]
    );
    // The trailing ACK_OK of each chunk arrived after we moved on and was dropped by reply id.
    assert_eq!(client.stats().stale_replies, 2);
    // The event is not lost: it waits for the live-events reader.
    let mut live = client.live_events().await.unwrap();
    let event = live.next().await.unwrap();
    assert_eq!(
        event,
        records::AttendanceEvent {
            user_id: "77".into(),
            time: dt(2024, 5, 6, 7, 8, 9),
            status: 15,
            punch: 1
        }
    );
}

#[tokio::test]
async fn live_events_from_captured_frames() {
    let f19 = read_lines("real/zk-protocol-F19_examples.hex")
        .into_iter()
        .find(|l| l.note.starts_with("CMD_REG_EVENT") && l.note.contains("len=32"))
        .unwrap()
        .bytes;
    let pyzk12 = read_lines("real/pyzk-testpy_tcp_live-event-12B.hex")
        .into_iter()
        .find(|l| l.note.starts_with("CMD_REG_EVENT"))
        .unwrap()
        .bytes;
    // The 12-byte capture has a hand-edited frame header; frame the packet properly.
    let pyzk12 = Packet::decode(&pyzk12[8..]).unwrap().encode_tcp();
    let (addr, log) = spawn_tcp(move |req| {
        let ack = Packet::new(cmd::ACK_OK, SESSION, req.reply_id, vec![]).encode_tcp();
        if req.command == cmd::REG_EVENT && req.payload == [1, 0, 0, 0] {
            let mut both = f19.clone();
            both.extend(&pyzk12);
            vec![ack, both]
        } else if req.command == cmd::ACK_OK {
            vec![]
        } else {
            vec![ack]
        }
    })
    .await;
    let mut client = Client::connect(addr, Transport::Tcp, 0, Duration::from_secs(2))
        .await
        .unwrap();
    let mut live = client.live_events().await.unwrap();
    let first = live.next().await.unwrap();
    assert_eq!(
        (first.user_id.as_str(), first.time, first.status),
        ("999111333", dt(2018, 6, 25, 17, 41, 5), 1)
    );
    let second = live.next().await.unwrap();
    assert_eq!(
        (second.user_id.as_str(), second.time),
        ("4822257", dt(2018, 12, 7, 19, 9, 6))
    );
    live.stop().await.unwrap();
    client.disconnect().await.unwrap();
    let sent = log.lock().unwrap().clone();
    let acks: Vec<&Packet> = sent.iter().filter(|p| p.command == cmd::ACK_OK).collect();
    assert_eq!(acks.len(), 2);
    assert!(acks
        .iter()
        .all(|p| p.session_id == SESSION && p.reply_id == 0 && p.payload.is_empty()));
    let unregister = sent
        .iter()
        .rev()
        .find(|p| p.command == cmd::REG_EVENT)
        .unwrap();
    assert_eq!(unregister.payload, vec![0, 0, 0, 0]);
}

fn comm_key_device(key: u32) -> impl FnMut(&Packet) -> Vec<Vec<u8>> + Send {
    move |req| {
        let reply = match req.command {
            cmd::CONNECT => cmd::ACK_UNAUTH,
            cmd::AUTH if records::check_comm_key(&req.payload, key, 0x45cf) => cmd::ACK_OK,
            cmd::AUTH => cmd::ACK_UNAUTH,
            _ => cmd::ACK_OK,
        };
        vec![Packet::new(reply, 0x45cf, req.reply_id, vec![]).encode_tcp()]
    }
}

#[tokio::test]
async fn comm_key_right_and_wrong() {
    let (addr, log) = spawn_tcp(comm_key_device(45)).await;
    let client = Client::connect(addr, Transport::Tcp, 45, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(client.session_id(), 0x45cf);
    let auth = log.lock().unwrap()[1].clone();
    assert_eq!(
        (auth.command, auth.session_id, auth.reply_id),
        (cmd::AUTH, 0x45cf, 1)
    );
    assert_eq!(auth.payload, hex("61c9323c"));

    let (addr, _) = spawn_tcp(comm_key_device(45)).await;
    let error = Client::connect(addr, Transport::Tcp, 12, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::WrongCommKey));
    assert_eq!(error.to_string(), "wrong comm key");
}

#[tokio::test]
async fn connection_refused_and_timeouts_read_well() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let error = Client::connect(addr, Transport::Tcp, 0, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), format!("connection refused by {addr}"));

    // A device that accepts but never answers.
    let (addr, log) = spawn_tcp(|_| vec![]).await;
    let mut options = ClientOptions::new(Transport::Tcp);
    options.timeout = Duration::from_millis(200);
    options.retries = 1;
    let error = Client::connect_with(addr, options).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "timeout after 200 ms waiting for the reply to CMD_CONNECT"
    );
    // One retry, with a fresh reply id.
    let ids: Vec<u16> = log.lock().unwrap().iter().map(|p| p.reply_id).collect();
    assert_eq!(ids, vec![0, 1]);

    // A device that sends garbage instead of a frame.
    let (addr, _) = spawn_tcp(|_| vec![b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()]).await;
    let error = Client::connect(addr, Transport::Tcp, 0, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "malformed reply: bad tcp frame magic [48, 54, 54, 50], expected 50 50 82 7d"
    );
}

#[tokio::test]
async fn udp_drops_bad_datagrams_and_retries() {
    let mut seen_time = 0;
    let (addr, log) = spawn_udp(move |req| {
        let ack =
            |payload: Vec<u8>| Packet::new(cmd::ACK_OK, SESSION, req.reply_id, payload).encode();
        match req.command {
            cmd::GET_TIME => {
                seen_time += 1;
                if seen_time == 1 {
                    // Lost: no answer to the first try, only noise.
                    vec![b"\x01\x02".to_vec()]
                } else {
                    let mut corrupt = ack(vec![0; 4]);
                    corrupt.truncate(5);
                    vec![corrupt, ack(hex("a53ae62f"))]
                }
            }
            _ => vec![ack(vec![])],
        }
    })
    .await;
    let mut options = ClientOptions::new(Transport::Udp);
    options.timeout = Duration::from_millis(500);
    let mut client = Client::connect_with(addr, options).await.unwrap();
    assert_eq!(client.get_time().await.unwrap(), dt(2025, 1, 2, 3, 4, 5));
    assert_eq!(client.stats().retransmits, 1);
    let time_ids: Vec<u16> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.command == cmd::GET_TIME)
        .map(|p| p.reply_id)
        .collect();
    assert_eq!(time_ids, vec![1, 2]);
}

#[tokio::test]
async fn set_user_enabled_rewrites_the_privilege_bit() {
    let users = vec![
        User {
            uid: 1,
            user_id: "0042".into(),
            name: "Ana".into(),
            privilege: 14,
            password: String::new(),
            group_id: "1".into(),
            card: 0,
        },
        User {
            uid: 2,
            user_id: "0043".into(),
            name: "Bo".into(),
            privilege: 0,
            password: "9".into(),
            group_id: "1".into(),
            card: 5,
        },
    ];
    let dataset = records::encode_users_dataset(&users, records::UserLayout::Size72);
    let (addr, log) = spawn_tcp(buffered_device(dataset, 2, 0)).await;
    let mut client = Client::connect(addr, Transport::Tcp, 0, Duration::from_secs(2))
        .await
        .unwrap();
    client.set_user_enabled(2, false).await.unwrap();
    let written = log
        .lock()
        .unwrap()
        .iter()
        .find(|p| p.command == cmd::USER_WRQ)
        .unwrap()
        .clone();
    let user = records::decode_user_72(&written.payload).unwrap();
    assert_eq!(
        user,
        User {
            privilege: 1,
            ..users[1].clone()
        }
    );
    assert!(!user.is_enabled());
    let error = client.set_user_enabled(9, true).await.unwrap_err();
    assert_eq!(error.to_string(), "no user with uid 9 on the device");
}

#[tokio::test]
async fn live_events_in_a_background_task_with_keep_alive() {
    let mut time_requests = 0;
    let (addr, log) = spawn_tcp(move |req| {
        let ack = |payload: Vec<u8>| {
            Packet::new(cmd::ACK_OK, SESSION, req.reply_id, payload).encode_tcp()
        };
        match req.command {
            cmd::ACK_OK => vec![],
            cmd::GET_TIME => {
                time_requests += 1;
                let mut out = vec![ack(hex("a53ae62f"))];
                if time_requests == 2 {
                    // A punch arrives right behind the second keep-alive answer.
                    let event = records::encode_attendance_event(
                        &records::AttendanceEvent {
                            user_id: "0815".into(),
                            time: dt(2025, 1, 2, 3, 4, 5),
                            status: 1,
                            punch: 0,
                        },
                        36,
                    );
                    out.push(Packet::new(cmd::REG_EVENT, 1, 0, event).encode_tcp());
                }
                out
            }
            _ => vec![ack(vec![])],
        }
    })
    .await;
    let client = Client::connect(addr, Transport::Tcp, 0, Duration::from_secs(2))
        .await
        .unwrap();
    let mut live = client
        .into_live_events(Duration::from_millis(30), 8)
        .await
        .unwrap();
    let event = live.recv().await.unwrap().unwrap();
    assert_eq!(
        event,
        records::AttendanceEvent {
            user_id: "0815".into(),
            time: dt(2025, 1, 2, 3, 4, 5),
            status: 1,
            punch: 0
        }
    );
    live.close().await;
    let cmds = commands(&log);
    assert_eq!(
        &cmds[..4],
        &[cmd::CONNECT, cmd::REG_EVENT, cmd::GET_TIME, cmd::GET_TIME]
    );
    // Closing unregisters (mask 0) and says goodbye.
    assert_eq!(&cmds[cmds.len() - 2..], &[cmd::REG_EVENT, cmd::EXIT]);
    assert!(cmds.contains(&cmd::ACK_OK));
}

#[tokio::test]
async fn live_receiver_reports_a_dead_device() {
    let (addr, _) = spawn_tcp(|req| match req.command {
        // The device goes silent after registration (it restarted).
        cmd::GET_TIME => vec![],
        _ => vec![Packet::new(cmd::ACK_OK, SESSION, req.reply_id, vec![]).encode_tcp()],
    })
    .await;
    let mut options = ClientOptions::new(Transport::Tcp);
    options.timeout = Duration::from_millis(100);
    options.retries = 0;
    let client = Client::connect_with(addr, options).await.unwrap();
    let mut live = client
        .into_live_events(Duration::from_millis(20), 8)
        .await
        .unwrap();
    let error = live.recv().await.unwrap().unwrap_err();
    assert_eq!(
        error.to_string(),
        "timeout after 100 ms waiting for the reply to CMD_GET_TIME"
    );
    assert!(live.recv().await.is_none());
}

#[tokio::test]
async fn templates_and_gbk_names() {
    let templates = vec![
        records::Template {
            uid: 1,
            finger: 0,
            flag: 1,
            data: b"\x00\x00SS21 first".to_vec(),
        },
        records::Template {
            uid: 1,
            finger: 6,
            flag: 3,
            data: b"\x00\x00SS21 second, longer".to_vec(),
        },
    ];
    let mut dataset: Vec<u8> = templates
        .iter()
        .flat_map(records::encode_template)
        .collect();
    let len = u32::try_from(dataset.len()).unwrap().to_le_bytes();
    dataset.splice(0..0, len);
    let (addr, log) = spawn_tcp(buffered_device(dataset, 0, 0)).await;
    let mut client = Client::connect(addr, Transport::Tcp, 0, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(client.templates().await.unwrap(), templates);
    let wrrq = log
        .lock()
        .unwrap()
        .iter()
        .find(|p| p.command == cmd::DATA_WRRQ)
        .unwrap()
        .clone();
    assert_eq!(wrrq.payload, hex("0107000200000000000000"));

    // A Chinese-market device storing names in GBK.
    let gbk_name = encoding_rs::GBK.encode("张伟").0.into_owned();
    let mut record = records::encode_user_72(&User {
        uid: 7,
        user_id: "7".into(),
        name: String::new(),
        privilege: 0,
        password: String::new(),
        group_id: String::new(),
        card: 0,
    });
    record[11..11 + gbk_name.len()].copy_from_slice(&gbk_name);
    let mut dataset = 72u32.to_le_bytes().to_vec();
    dataset.extend(record);
    let (addr, _) = spawn_tcp(buffered_device(dataset, 1, 0)).await;
    let mut options = ClientOptions::new(Transport::Tcp);
    options.encoding = Some(encoding_rs::GBK);
    let mut client = Client::connect_with(addr, options).await.unwrap();
    let users = client.users().await.unwrap();
    assert_eq!(users[0].name, "张伟");
}

#[tokio::test]
async fn a_cancelled_call_does_not_break_the_next_one() {
    let mut version_requests = 0;
    let (addr, _) = spawn_tcp(move |req| {
        let ack = |payload: Vec<u8>| {
            Packet::new(cmd::ACK_OK, SESSION, req.reply_id, payload).encode_tcp()
        };
        match req.command {
            cmd::GET_VERSION => {
                version_requests += 1;
                if version_requests == 1 {
                    vec![] // too slow: the caller gives up
                } else {
                    vec![ack(b"Ver 6.60 Apr 28 2015\0".to_vec())]
                }
            }
            _ => vec![ack(vec![])],
        }
    })
    .await;
    let mut client = Client::connect(addr, Transport::Tcp, 0, Duration::from_secs(2))
        .await
        .unwrap();
    let gave_up = tokio::time::timeout(Duration::from_millis(50), client.firmware_version()).await;
    assert!(gave_up.is_err());
    assert_eq!(
        client.firmware_version().await.unwrap(),
        "Ver 6.60 Apr 28 2015"
    );
}

#[tokio::test]
async fn restart_with_and_without_an_ack() {
    for device_acks in [true, false] {
        let (addr, log) = spawn_tcp(move |req| {
            if req.command == cmd::RESTART && !device_acks {
                return vec![]; // the F19 reboots without answering
            }
            vec![Packet::new(cmd::ACK_OK, SESSION, req.reply_id, vec![]).encode_tcp()]
        })
        .await;
        let mut options = ClientOptions::new(Transport::Tcp);
        options.timeout = Duration::from_millis(150);
        let client = Client::connect_with(addr, options).await.unwrap();
        client.restart().await.unwrap();
        // No retry: a second CMD_RESTART to a rebooting device helps nobody.
        assert_eq!(
            commands(&log),
            vec![cmd::CONNECT, cmd::RESTART],
            "acks: {device_acks}"
        );
    }
}

#[tokio::test]
async fn auto_falls_back_to_udp() {
    // Take a TCP port, put the UDP device on the same number, then free the TCP port: TCP is refused there.
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port_addr = tcp.local_addr().unwrap();
    let (addr, _) = spawn_udp_at(port_addr, |req| {
        vec![Packet::new(cmd::ACK_OK, SESSION, req.reply_id, vec![]).encode()]
    })
    .await;
    drop(tcp);
    let client = Client::connect_auto(addr, 0, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(client.transport(), Transport::Udp);
    assert_eq!(client.session_id(), SESSION);
}

#[tokio::test]
async fn reads_even_when_the_device_refuses_to_lock() {
    let users = vec![User {
        uid: 3,
        user_id: "300".into(),
        name: "Cy".into(),
        privilege: 0,
        password: String::new(),
        group_id: "1".into(),
        card: 0,
    }];
    let mut inner = buffered_device(
        records::encode_users_dataset(&users, records::UserLayout::Size72),
        1,
        0,
    );
    let (addr, log) = spawn_tcp(move |req| {
        if req.command == cmd::DISABLEDEVICE {
            vec![Packet::new(cmd::ACK_ERROR, SESSION, req.reply_id, vec![]).encode_tcp()]
        } else {
            inner(req)
        }
    })
    .await;
    let mut client = Client::connect(addr, Transport::Tcp, 0, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(client.users().await.unwrap(), users);
    // Not locked, so not unlocked either.
    assert!(!commands(&log).contains(&cmd::ENABLEDEVICE));
}
