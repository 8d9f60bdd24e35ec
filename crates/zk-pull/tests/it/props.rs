//! Property tests: encode -> decode round trips, and decoders never panic on arbitrary bytes.

use bytes::BytesMut;
use chrono::{NaiveDate, NaiveDateTime};
use proptest::prelude::*;
use zk_pull::codec::{decode_checked, decode_tcp_frame, Packet};
use zk_pull::records::{self, Attendance, AttendanceLayout, User};

fn any_time() -> impl Strategy<Value = NaiveDateTime> {
    (
        2000i32..2100,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
    )
        .prop_map(|(y, mo, d, h, mi, s)| {
            NaiveDate::from_ymd_opt(y, mo, d)
                .unwrap()
                .and_hms_opt(h, mi, s)
                .unwrap()
        })
}

fn pin() -> impl Strategy<Value = String> {
    "[0-9A-Za-z]{1,23}"
}

proptest! {
    #[test]
    fn packet_round_trip(command: u16, session: u16, reply: u16, payload in proptest::collection::vec(any::<u8>(), 0..300)) {
        let packet = Packet::new(command, session, reply, payload);
        let (decoded, ok) = decode_checked(&packet.encode()).unwrap();
        prop_assert!(ok);
        prop_assert_eq!(&decoded, &packet);
        let mut buf = BytesMut::from(&packet.encode_tcp()[..]);
        prop_assert_eq!(decode_tcp_frame(&mut buf).unwrap(), Some(packet));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn time_round_trip(t in any_time()) {
        prop_assert_eq!(records::decode_time(records::encode_time(t)), Some(t));
        prop_assert_eq!(records::decode_event_time(&records::encode_event_time(t)), Some(t));
    }

    #[test]
    fn user_72_round_trip(uid: u16, pin in pin(), name in "[ -~]{0,23}", privilege: u8,
                          password in "[0-9]{0,8}", group in 0u8..=255, card: u32) {
        let user = User { uid, user_id: pin, name: name.trim_end_matches('\0').to_owned(), privilege,
            password, group_id: if group == 0 { String::new() } else { group.to_string() }, card };
        prop_assert_eq!(records::decode_user_72(&records::encode_user_72(&user)).unwrap(), user);
    }

    #[test]
    fn user_28_round_trip(uid: u16, pin: u32, name in "[!-~]{0,8}", privilege: u8,
                          password in "[0-9]{0,5}", group: u8, card: u32) {
        let user = User { uid, user_id: pin.to_string(), name, privilege, password,
            group_id: group.to_string(), card };
        prop_assert_eq!(records::decode_user_28(&records::encode_user_28(&user)).unwrap(), user);
    }

    #[test]
    fn attendance_round_trip(uid in 1u16.., pin in pin(), numeric_pin: u32, t in any_time(),
                             status: u8, punch: u8, layout_idx in 0usize..5, n in 1usize..20) {
        let layout = [AttendanceLayout::Size8, AttendanceLayout::Size16, AttendanceLayout::Size40,
            AttendanceLayout::Size49, AttendanceLayout::Extended(64)][layout_idx];
        let record = match layout {
            AttendanceLayout::Size8 => Attendance { uid, user_id: uid.to_string(), time: t, status, punch },
            AttendanceLayout::Size16 => Attendance { uid: 0, user_id: numeric_pin.to_string(), time: t, status, punch },
            _ => Attendance { uid, user_id: pin, time: t, status, punch },
        };
        let bytes = records::encode_attendance(&record, layout);
        prop_assert_eq!(bytes.len(), layout.record_len());
        prop_assert_eq!(records::decode_attendance(&bytes, layout).unwrap(), record.clone());
        let records = vec![record; n];
        let dataset = records::encode_attendance_dataset(&records, layout);
        let decoded: Vec<_> = records::decode_attendance_dataset(&dataset, Some(n))
            .into_iter().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(decoded, records);
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), hint in proptest::option::of(0usize..50)) {
        let _ = Packet::decode(&bytes);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = decode_tcp_frame(&mut buf) {}
        let _ = records::decode_attendance_dataset(&bytes, hint);
        let _ = records::decode_users_dataset(&bytes, hint);
        let _ = records::decode_templates_dataset(&bytes);
        let _ = records::decode_attendance_event(&bytes);
        let _ = records::FreeSizes::decode(&bytes);
        let _ = records::decode_user_28(&bytes);
        let _ = records::decode_user_72(&bytes);
    }

    #[test]
    fn framed_stream_survives_any_split(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 1..5),
                                        cut in 1usize..50) {
        let packets: Vec<Packet> = payloads.into_iter().enumerate()
            .map(|(i, p)| Packet::new(2000, 7, i as u16, p)).collect();
        let stream: Vec<u8> = packets.iter().flat_map(Packet::encode_tcp).collect();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in stream.chunks(cut) {
            buf.extend_from_slice(piece);
            while let Some(p) = decode_tcp_frame(&mut buf).unwrap() { out.push(p); }
        }
        prop_assert_eq!(out, packets);
    }
}

proptest! {
    /// Whatever a device sends during a buffered read, the session neither panics nor asks for more than the
    /// announced dataset.
    #[test]
    fn session_survives_arbitrary_replies(
        replies in proptest::collection::vec(
            (prop_oneof![Just(2000u16), Just(2001), Just(1500), Just(1501), Just(500), any::<u16>()],
             0u16..8, proptest::collection::vec(any::<u8>(), 0..64)),
            0..40)
    ) {
        use std::time::{Duration, Instant};
        use zk_pull::session::{Request, Session, SessionConfig};
        let now = Instant::now();
        let mut session = Session::new(SessionConfig { max_chunk: 16, ..SessionConfig::default() });
        session.start(Request::Connect, now).unwrap();
        session.handle_packet(Packet::new(2000, 9, 0, vec![]), now);
        prop_assert!(session.poll_outcome().unwrap().is_ok());
        session.start(Request::ReadDataset { command: 13, fct: 0 }, now).unwrap();
        for (i, (command, reply_id, payload)) in replies.into_iter().enumerate() {
            session.handle_packet(Packet::new(command, 9, reply_id, payload), now);
            if i % 7 == 0 {
                session.handle_timeout(now + Duration::from_secs(60));
            }
            while let Some(p) = session.poll_transmit() {
                if p.command == 1504 {
                    let size = u32::from_le_bytes(p.payload[4..8].try_into().unwrap());
                    prop_assert!(size <= 16);
                }
            }
            if session.poll_outcome().is_some() {
                break;
            }
        }
    }
}
