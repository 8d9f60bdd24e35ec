//! Our own client (`zk_pull::client`) against the simulator: the pyzk matrix again, plus the profiles pyzk
//! cannot read and the faults a real network produces. Every value is compared with the simulator's model.

use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use zk_pull::client::{Client, ClientError, ClientOptions, Transport};
use zk_pull::codec::cmd;
use zk_pull::records::{
    encode_attendance_dataset, AttendanceEvent, AttendanceLayout, User, PRIVILEGE_DISABLED,
};
use zk_sim::pull::{Direction, Faults, Profile, PullSimConfig};

use crate::support::{start, until, Running};

const TIMEOUT: Duration = Duration::from_secs(5);

fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d)
        .and_then(|date| date.and_hms_opt(h, mi, s))
        .unwrap()
}

async fn connect(sim: &Running, transport: Transport, comm_key: u32) -> Client {
    Client::connect(sim.addr(), transport, comm_key, TIMEOUT)
        .await
        .unwrap()
}

/// The whole matrix through our client; `layout` is the attendance layout the profile must be detected as.
async fn matrix(config: PullSimConfig, transport: Transport, layout: AttendanceLayout) {
    let comm_key = config.comm_key;
    let sim = start(config).await;
    let handle = &sim.handle;
    let mut client = connect(&sim, transport, comm_key).await;

    let info = client.device_info().await.unwrap();
    let config = handle.config();
    assert_eq!(
        info.serial_number.as_deref(),
        Some(config.serial_number.as_str())
    );
    assert_eq!(info.platform.as_deref(), Some(config.platform.as_str()));
    assert_eq!(
        info.firmware_version.as_deref(),
        Some(config.firmware.as_str())
    );
    assert_eq!(
        info.device_name.as_deref(),
        Some(config.device_name.as_str())
    );
    assert_eq!(info.mac.as_deref(), Some(config.mac.as_str()));
    assert_eq!(info.fingerprint_version.as_deref(), Some("10"));
    assert_eq!(info.sizes, handle.free_sizes());

    assert_eq!(client.users().await.unwrap(), handle.users());
    let download = client.attendance().await.unwrap();
    assert_eq!(download.layout, Some(layout));
    assert!(
        download.errors.is_empty(),
        "{:?}",
        &download.errors[..3.min(download.errors.len())]
    );
    let mut expected = handle.attendance();
    if layout == AttendanceLayout::Size16 {
        // The 16-byte layout carries the PIN only.
        expected.iter_mut().for_each(|a| a.uid = 0);
    }
    assert_eq!(download.records.len(), expected.len());
    assert_eq!(download.records, expected);
    assert_eq!(
        download.raw,
        encode_attendance_dataset(&handle.attendance(), layout)
    );
    assert_eq!(client.templates().await.unwrap(), handle.templates());

    client.set_time(t(2025, 1, 2, 3, 4, 5)).await.unwrap();
    let read_back = client.get_time().await.unwrap();
    assert!(read_back >= t(2025, 1, 2, 3, 4, 5) && read_back <= t(2025, 1, 2, 3, 4, 7));

    let user = User {
        uid: 4_000,
        user_id: "4000".into(),
        name: "Rust".into(),
        privilege: 0,
        password: String::new(),
        group_id: if handle.config().profile == Profile::Zk8 {
            String::new()
        } else {
            "0".into()
        },
        card: 77,
    };
    client.set_user(&user).await.unwrap();
    assert_eq!(handle.users().last(), Some(&user));
    client.set_user_enabled(4_000, false).await.unwrap();
    assert_eq!(
        handle.users().last().map(|u| u.privilege),
        Some(PRIVILEGE_DISABLED)
    );
    client.delete_user(4_000).await.unwrap();
    assert!(matches!(
        client.delete_user(4_000).await,
        Err(ClientError::Refused {
            command: cmd::DELETE_USER,
            code: cmd::ACK_ERROR
        })
    ));

    {
        let mut live = client.live_events().await.unwrap();
        handle.wait_for_live_subscribers(1).await;
        let punch = handle.punch("2", 1, 15);
        let event = tokio::time::timeout(TIMEOUT, live.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            event,
            AttendanceEvent {
                user_id: "2".into(),
                time: punch.time,
                status: 15,
                punch: 1
            }
        );
        live.stop().await.unwrap();
    }
    assert_eq!(handle.live_subscribers(), 0);

    client.unlock(3).await.unwrap();
    client.clear_attendance().await.unwrap();
    assert_eq!(handle.attendance_count(), 0);
    assert_eq!(client.attendance().await.unwrap().records, vec![]);
    assert!(handle.is_enabled());
    client.restart().await.unwrap();
    let counters = handle.counters();
    assert_eq!(
        (counters.restarts, counters.unlocks, counters.bad_checksums),
        (1, 1, 0)
    );
    // The device answers again after the restart.
    let client = connect(&sim, transport, comm_key).await;
    client.disconnect().await.unwrap();
    sim.stop().await;
}

#[tokio::test]
async fn client_tcp_zk8_comm_key_100k_punches() {
    matrix(
        PullSimConfig {
            users: 500,
            punches: 100_000,
            templates: 40,
            comm_key: 123_456,
            punches_until: Some(until()),
            seed: 21,
            ..PullSimConfig::new(Profile::Zk8)
        },
        Transport::Tcp,
        AttendanceLayout::Size40,
    )
    .await;
}

#[tokio::test]
async fn client_udp_zk6_100k_punches() {
    matrix(
        PullSimConfig {
            users: 300,
            punches: 100_000,
            templates: 20,
            punches_until: Some(until()),
            seed: 22,
            ..PullSimConfig::new(Profile::Zk6)
        },
        Transport::Udp,
        AttendanceLayout::Size16,
    )
    .await;
}

#[tokio::test]
async fn client_udp_zk8_comm_key() {
    matrix(
        PullSimConfig {
            users: 50,
            punches: 3_000,
            comm_key: 999,
            punches_until: Some(until()),
            seed: 23,
            ..PullSimConfig::new(Profile::Zk8)
        },
        Transport::Udp,
        AttendanceLayout::Size40,
    )
    .await;
}

#[tokio::test]
async fn client_tcp_zem500_eight_byte_records() {
    matrix(
        PullSimConfig {
            users: 30,
            punches: 2_000,
            punches_until: Some(until()),
            seed: 24,
            ..PullSimConfig::new(Profile::Zem500)
        },
        Transport::Tcp,
        AttendanceLayout::Size8,
    )
    .await;
}

#[tokio::test]
async fn client_wrong_comm_key_is_refused() {
    let sim = start(PullSimConfig {
        comm_key: 45,
        ..PullSimConfig::default()
    })
    .await;
    for transport in [Transport::Tcp, Transport::Udp] {
        for key in [0, 12] {
            let result = Client::connect(sim.addr(), transport, key, TIMEOUT).await;
            assert!(
                matches!(result, Err(ClientError::WrongCommKey)),
                "{transport:?} key {key}: {result:?}"
            );
        }
    }
    assert_eq!(sim.handle.counters().auth_failures, 4);
}

fn big_log(faults: Faults) -> PullSimConfig {
    PullSimConfig {
        users: 50,
        punches: 5_000,
        punches_until: Some(until()),
        faults,
        ..PullSimConfig::new(Profile::Zk8)
    }
}

#[tokio::test]
async fn client_retries_a_dropped_chunk() {
    let sim = start(big_log(Faults {
        drop_reply_to: Some(cmd::DATA_RDY),
        ..Faults::default()
    }))
    .await;
    let mut options = ClientOptions::new(Transport::Tcp);
    options.timeout = Duration::from_millis(300);
    let mut client = Client::connect_with(sim.addr(), options).await.unwrap();
    let download = client.attendance().await.unwrap();
    assert_eq!(download.records, sim.handle.attendance());
    assert_eq!(sim.handle.counters().faults_fired, 1);
}

#[tokio::test]
async fn client_reads_1008_byte_frames_with_gaps_and_slow_replies() {
    let sim = start(big_log(Faults {
        data_frame_size: Some(1_008),
        frame_gap: Duration::from_millis(1),
        reply_delay: Duration::from_millis(5),
        ..Faults::default()
    }))
    .await;
    let mut client = connect(&sim, Transport::Tcp, 0).await;
    assert_eq!(
        client.attendance().await.unwrap().records,
        sim.handle.attendance()
    );
}

#[tokio::test]
async fn client_ignores_a_corrupted_reply_checksum() {
    // No real client validates reply checksums (pull.md §2); ours neither.
    let sim = start(big_log(Faults {
        corrupt_checksum_of_reply_to: Some(cmd::GET_TIME),
        ..Faults::default()
    }))
    .await;
    let mut client = connect(&sim, Transport::Tcp, 0).await;
    let time = client.get_time().await.unwrap();
    assert!((sim.handle.device_time() - time).num_seconds().abs() <= 1);
    assert_eq!(sim.handle.counters().faults_fired, 1);
}

#[tokio::test]
async fn client_reports_a_disconnect_mid_transfer() {
    let sim = start(big_log(Faults {
        disconnect_mid_transfer: true,
        ..Faults::default()
    }))
    .await;
    let mut client = connect(&sim, Transport::Tcp, 0).await;
    let result = client.attendance().await;
    assert!(matches!(result, Err(ClientError::Closed)), "{result:?}");
    // A new connection reads the whole log.
    let mut client = connect(&sim, Transport::Tcp, 0).await;
    assert_eq!(client.attendance().await.unwrap().records.len(), 5_000);
}

#[tokio::test]
async fn client_times_out_on_a_device_slower_than_its_timeout() {
    let sim = start(big_log(Faults {
        reply_delay: Duration::from_millis(400),
        ..Faults::default()
    }))
    .await;
    let mut options = ClientOptions::new(Transport::Udp);
    options.timeout = Duration::from_millis(100);
    options.retries = 0;
    let result = Client::connect_with(sim.addr(), options).await;
    assert!(
        matches!(
            result,
            Err(ClientError::Timeout {
                command: cmd::CONNECT,
                ..
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn client_bulk_read_follows_the_protocol_order() {
    let sim = start(PullSimConfig {
        record_frames: true,
        ..big_log(Faults::default())
    })
    .await;
    let mut client = connect(&sim, Transport::Tcp, 0).await;
    sim.handle.clear_frame_log();
    client.attendance().await.unwrap();
    let requests: Vec<(u16, Vec<u8>)> = sim
        .handle
        .frame_log()
        .into_iter()
        .filter(|logged| logged.direction == Direction::Request)
        .map(|logged| (logged.packet.command, logged.packet.payload))
        .collect();
    let chunk = |start: i32, size: i32| [start.to_le_bytes(), size.to_le_bytes()].concat();
    // pull.md §7 and §11: disabled during the read, 1503 with pyzk's exact bytes, sequential 1504 chunks covering the 200 004-byte
    // dataset, FREE_DATA, enabled again.
    assert_eq!(
        requests,
        vec![
            (cmd::DISABLEDEVICE, vec![]),
            (cmd::GET_FREE_SIZES, vec![]),
            (cmd::DATA_WRRQ, vec![1, 13, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            (cmd::DATA_RDY, chunk(0, 65_472)),
            (cmd::DATA_RDY, chunk(65_472, 65_472)),
            (cmd::DATA_RDY, chunk(130_944, 65_472)),
            (cmd::DATA_RDY, chunk(196_416, 3_588)),
            (cmd::FREE_DATA, vec![]),
            (cmd::ENABLEDEVICE, vec![]),
        ]
    );
}
