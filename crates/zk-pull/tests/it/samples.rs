//! Every frame in shared/samples/pull decoded, re-encoded, and checked against known values.

use bytes::BytesMut;
use chrono::{NaiveDate, NaiveDateTime};
use zk_pull::codec::{self, cmd, decode_checked, decode_tcp_frame, Packet, TCP_MAGIC};
use zk_pull::records::{self, AttendanceLayout, FreeSizes, RecordError};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/samples/pull/");

/// One line of a `.hex` file: direction token, bytes, and the comment after `;`.
pub struct Line {
    pub dir: String,
    pub bytes: Vec<u8>,
    pub note: String,
}

pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub fn read_lines(rel: &str) -> Vec<Line> {
    let text = std::fs::read_to_string(format!("{SAMPLES}{rel}")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (data, note) = l.split_once(';').unwrap_or((l, ""));
            let mut tokens = data.split_whitespace();
            let dir = tokens.next().unwrap().to_owned();
            let bytes = tokens.next().map(hex).unwrap_or_default();
            Line {
                dir,
                bytes,
                note: note.trim().to_owned(),
            }
        })
        .collect()
}

fn sample_files() -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["real", "synthetic"] {
        for entry in std::fs::read_dir(format!("{SAMPLES}{dir}")).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".hex") {
                out.push(format!("{dir}/{name}"));
            }
        }
    }
    out.sort();
    out
}

fn dt(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_opt(h, mi, s)
        .unwrap()
}

/// The payload of the first complete or partial TCP frame line matching `prefix`.
fn frame_payload(rel: &str, prefix: &str) -> Vec<u8> {
    let line = read_lines(rel)
        .into_iter()
        .find(|l| l.bytes.starts_with(&hex(prefix)))
        .unwrap();
    line.bytes[16..].to_vec()
}

#[test]
fn every_frame_decodes_and_reencodes() {
    let files = sample_files();
    assert!(files.len() >= 20, "{files:?}");
    let (mut complete, mut partial, mut truncated) = (0, 0, 0);
    for file in &files {
        for line in read_lines(file) {
            let context = format!("{file}: {} {}", line.dir, line.note);
            match line.dir.as_str() {
                "C>D" | "D>C" => {}
                "D>C*" | "D>C+*" => {
                    // Truncated captures: decoding must not panic and must not invent a frame.
                    let mut buf = BytesMut::from(&line.bytes[..]);
                    if line.bytes.starts_with(&TCP_MAGIC) {
                        assert_eq!(decode_tcp_frame(&mut buf), Ok(None), "{context}");
                    } else {
                        let _ = decode_checked(&line.bytes);
                    }
                    truncated += 1;
                    continue;
                }
                _ => continue,
            }
            let bad_checksum_noted = line.note.contains("(BAD)");
            if line.bytes.starts_with(&TCP_MAGIC) {
                let declared = u32::from_le_bytes(line.bytes[4..8].try_into().unwrap()) as usize;
                let mut buf = BytesMut::from(&line.bytes[..]);
                let result = decode_tcp_frame(&mut buf).unwrap();
                if line.bytes.len() < 8 + declared {
                    assert_eq!(result, None, "{context}");
                    partial += 1;
                    continue;
                }
                let packet = result.unwrap();
                let frame = &line.bytes[..8 + declared];
                let (_, checksum_ok) = decode_checked(&frame[8..]).unwrap();
                if line.note.contains("n/a") {
                    // Hand-edited frames glued from pieces; only the decode matters.
                    partial += 1;
                    continue;
                }
                assert_eq!(checksum_ok, !bad_checksum_noted, "{context}");
                assert_eq!(packet.encode_tcp(), frame, "{context}");
                assert!(
                    line.note.contains(&format!("({})", packet.command))
                        || line.note.starts_with(&format!("{}(", packet.command)),
                    "{context}: command {}",
                    packet.command
                );
                complete += 1;
            } else {
                let (packet, checksum_ok) = decode_checked(&line.bytes).unwrap();
                assert_eq!(checksum_ok, !bad_checksum_noted, "{context}");
                assert_eq!(packet.encode(), line.bytes, "{context}");
                complete += 1;
            }
        }
    }
    // Counted from the files as they are (455 / 6 / 17); fewer means a sample was skipped.
    assert!(complete >= 455, "complete frames: {complete}");
    assert!(partial >= 6, "partial frames: {partial}");
    assert!(truncated >= 17, "truncated frames: {truncated}");
}

#[test]
fn checksum_vectors() {
    for line in read_lines("real/zk-protocol-F19_examples.hex") {
        if line.dir == "VEC" {
            let mut zeroed = line.bytes.clone();
            zeroed[2] = 0;
            zeroed[3] = 0;
            assert_eq!(
                codec::checksum(&zeroed),
                u16::from_le_bytes([line.bytes[2], line.bytes[3]])
            );
        }
    }
}

#[test]
fn users_7x72_direct() {
    let payload = frame_payload(
        "real/pyzk-testpy_tcp_users-direct-7x72.hex",
        "5050827d04020000dd05",
    );
    assert_eq!(payload.len(), 508);
    let users: Vec<_> = records::decode_users_dataset(&payload, Some(7))
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ids: Vec<(u16, &str, u8)> = users
        .iter()
        .map(|u| (u.uid, u.user_id.as_str(), u.privilege))
        .collect();
    assert_eq!(
        ids,
        vec![
            (1, "808", 14),
            (2, "821", 0),
            (3, "835", 0),
            (4, "831", 0),
            (5, "832", 0),
            (6, "86", 0),
            (12, "842", 0)
        ]
    );
    assert!(users.iter().all(|u| u.name.is_empty() && u.card == 0));
    // Re-encoding gives the captured bytes back.
    let encoded = records::encode_users_dataset(&users, records::UserLayout::Size72);
    assert_eq!(encoded, payload);
}

#[test]
fn free_sizes_real_92_and_80() {
    // The real 92-byte reply was captured 6 bytes short: the face block is missing, the counts are there.
    let payload = frame_payload(
        "real/pyzk-testpy_tcp_free-sizes.hex",
        "5050827d64000000d007a315",
    );
    assert_eq!(payload.len(), 86);
    let sizes = FreeSizes::decode(&payload).unwrap();
    assert_eq!(
        sizes,
        FreeSizes {
            users: 7,
            fingers: 6,
            records: 605,
            oplogs: 3087,
            admins: 1,
            passwords: 0,
            finger_capacity: 3000,
            user_capacity: 10000,
            record_capacity: 100_000,
            fingers_available: 2994,
            users_available: 9993,
            records_available: 99_395,
            faces: None,
            face_capacity: None,
        }
    );
    assert_eq!(sizes.encode(false), payload[..80].to_vec());

    let k20 = read_lines("real/pyzk-testpy_tcp_users-direct-K20.hex");
    let reply = k20
        .iter()
        .find(|l| l.note.contains("len=80"))
        .expect("K20 80-byte sizes reply");
    let sizes = FreeSizes::decode(&reply.bytes[16..]).unwrap();
    assert_eq!(sizes.faces, None);
    assert_eq!(sizes.encode(false), reply.bytes[16..].to_vec());

    let full = frame_payload(
        "synthetic/pyzk-0.9_tcp_full-session.hex",
        "5050827d64000000d007492b",
    );
    let sizes = FreeSizes::decode(&full).unwrap();
    assert_eq!((sizes.users, sizes.records), (3, 5));
    assert_eq!(sizes.faces, Some(0));
    assert_eq!(sizes.encode(true), full);
    assert_eq!(
        FreeSizes::decode(&full[..79]),
        Err(RecordError::Short {
            what: "free sizes",
            len: 79,
            need: 80
        })
    );
}

#[test]
fn live_event_12_bytes_real() {
    let lines = read_lines("real/pyzk-testpy_tcp_live-event-12B.hex");
    let line = lines
        .iter()
        .find(|l| l.note.starts_with("CMD_REG_EVENT"))
        .unwrap();
    // The frame header was hand-edited by the test author; the packet inside starts at byte 8.
    let packet = Packet::decode(&line.bytes[8..]).unwrap();
    assert_eq!(packet.command, cmd::REG_EVENT);
    assert_eq!(packet.session_id, 1); // EF_ATTLOG
    assert_eq!(packet.reply_id, 0);
    let event = records::decode_attendance_event(&packet.payload).unwrap();
    assert_eq!(
        event,
        records::AttendanceEvent {
            user_id: "4822257".into(),
            time: dt(2018, 12, 7, 19, 9, 6),
            status: 0,
            punch: 0
        }
    );
    assert_eq!(records::encode_attendance_event(&event, 12), packet.payload);
}

#[test]
fn f19_records_and_frames() {
    let lines = read_lines("real/zk-protocol-F19_examples.hex");
    let recs: Vec<&Line> = lines.iter().filter(|l| l.dir == "REC").collect();

    let attendance = records::decode_attendance(&recs[0].bytes, AttendanceLayout::Size40).unwrap();
    assert_eq!(
        attendance,
        records::Attendance {
            uid: 13,
            user_id: "999111333".into(),
            time: dt(2018, 6, 25, 17, 50, 35),
            status: 1,
            punch: 0
        }
    );
    assert_eq!(
        records::encode_attendance(&attendance, AttendanceLayout::Size40),
        recs[0].bytes
    );
    let dataset = records::decode_attendance_dataset(&recs[0].bytes, None);
    assert_eq!(dataset, vec![Ok(attendance)]);

    let user = records::decode_user_72(&recs[2].bytes).unwrap();
    assert_eq!(
        (
            user.uid,
            user.user_id.as_str(),
            user.group_id.as_str(),
            user.card
        ),
        (13, "555", "2", 222)
    );

    // The 24-byte template record is only the start of a 0x4c4-byte entry.
    assert_eq!(
        records::decode_templates_dataset(&recs[3].bytes),
        vec![Err(RecordError::Record {
            index: 0,
            source: Box::new(RecordError::Short {
                what: "template entry",
                len: 24,
                need: 0x4c4
            })
        })]
    );

    let write = lines
        .iter()
        .find(|l| l.note.starts_with("CMD_USER_WRQ"))
        .unwrap();
    let packet = Packet::decode(&write.bytes[8..]).unwrap();
    let user = records::decode_user_72(&packet.payload).unwrap();
    assert_eq!(
        user,
        records::User {
            uid: 14,
            user_id: "11224488".into(),
            name: "Nuevo".into(),
            privilege: 6,
            password: "123456".into(),
            group_id: "1".into(),
            card: 6543
        }
    );
    let mut reencoded = records::encode_user_72(&user).to_vec();
    // The capture has a stray byte after the password's NUL; everything else matches.
    reencoded[10] = 0x7c;
    assert_eq!(reencoded, packet.payload);

    let event = lines
        .iter()
        .find(|l| l.note.starts_with("CMD_REG_EVENT") && l.note.contains("len=32"))
        .unwrap();
    let packet = Packet::decode(&event.bytes[8..]).unwrap();
    assert_eq!(
        records::decode_attendance_event(&packet.payload).unwrap(),
        records::AttendanceEvent {
            user_id: "999111333".into(),
            time: dt(2018, 6, 25, 17, 41, 5),
            status: 1,
            punch: 0
        }
    );

    let platform = lines
        .iter()
        .find(|l| l.note.contains("~Platform=ZEM760_TFT"))
        .unwrap();
    let packet = Packet::decode(&platform.bytes[8..]).unwrap();
    assert_eq!(
        records::parse_option_value(&packet.payload).as_deref(),
        Some("ZEM760_TFT")
    );
}

#[test]
fn synthetic_tcp_datasets() {
    let file = "synthetic/pyzk-0.9_tcp_full-session.hex";
    let attendance = frame_payload(file, "5050827dd4000000dd05df3e");
    let records: Vec<_> = records::decode_attendance_dataset(&attendance, Some(5))
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), 5);
    assert_eq!(
        records[0],
        records::Attendance {
            uid: 1,
            user_id: "101".into(),
            time: records::decode_time(0x2e4c_7d80).unwrap(),
            status: 1,
            punch: 0
        }
    );
    assert_eq!(records[0].time, dt(2024, 3, 1, 8, 0, 0));
    assert_eq!(
        records::encode_attendance_dataset(&records, AttendanceLayout::Size40),
        attendance
    );
    let users = frame_payload(file, "5050827de4000000dd057357");
    let users: Vec<_> = records::decode_users_dataset(&users, Some(3))
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        users[0],
        records::User {
            uid: 1,
            user_id: "101".into(),
            name: "User 1".into(),
            privilege: 14,
            password: "123".into(),
            group_id: "1".into(),
            card: 1001
        }
    );
    // pyzk's set_user: uid 50, name with a non-ASCII letter.
    let set_user = frame_payload(file, "5050827d500000000800f2bf");
    let user = records::decode_user_72(&set_user).unwrap();
    assert_eq!(
        (
            user.uid,
            user.name.as_str(),
            user.user_id.as_str(),
            user.card
        ),
        (50, "Zoë Test", "5050", 777)
    );
    assert_eq!(records::encode_user_72(&user).to_vec(), set_user);
    // set_time 2025-01-02 03:04:05.
    let set_time = frame_payload(file, "5050827d0c000000ca00903a");
    assert_eq!(
        records::encode_time(dt(2025, 1, 2, 3, 4, 5))
            .to_le_bytes()
            .to_vec(),
        set_time
    );
}

#[test]
fn synthetic_udp_datasets() {
    let lines = read_lines("synthetic/pyzk-0.9_udp_full-session.hex");
    let data = |prefix: &str| {
        lines
            .iter()
            .find(|l| l.bytes.starts_with(&hex(prefix)))
            .unwrap()
            .bytes[8..]
            .to_vec()
    };
    let users: Vec<_> = records::decode_users_dataset(&data("dd05f2e3"), Some(3))
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        users[2],
        records::User {
            uid: 3,
            user_id: "103".into(),
            name: "User 3".into(),
            privilege: 0,
            password: String::new(),
            group_id: "1".into(),
            card: 1003
        }
    );
    let attendance = data("dd055130");
    let records: Vec<_> = records::decode_attendance_dataset(&attendance, Some(5))
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        records[1],
        records::Attendance {
            uid: 0,
            user_id: "102".into(),
            time: records::decode_time(0x2e4c_7f24).unwrap(),
            status: 1,
            punch: 1
        }
    );
    assert_eq!(
        records::encode_attendance_dataset(&records, AttendanceLayout::Size16),
        attendance
    );
    // Without the count hint the 80-byte set is still read as 16-byte records.
    assert_eq!(
        records::decode_attendance_dataset(&attendance, None).len(),
        5
    );
}

#[test]
fn request_vectors_from_clients() {
    // pyzk: 1503 users with session 0x45cf, reply id 20.
    let packet = Packet::new(
        cmd::DATA_WRRQ,
        0x45cf,
        20,
        cmd::data_wrrq_payload(cmd::USERTEMP_RRQ, cmd::FCT_USER),
    );
    assert_eq!(
        packet.encode_tcp(),
        hex("5050827d13000000df053ca6cf4514000109000500000000000000")
    );
    // node-zklib CONNECT with reply id 1.
    assert_eq!(
        Packet::new(cmd::CONNECT, 0, 1, vec![]).encode_tcp(),
        hex("5050827d08000000e80316fc00000100")
    );
    // pyzk CMD_AUTH for key 45 on session 0x45cf.
    let auth = read_lines("real/pyzk-testpy_tcp_auth-commkey45.hex")
        .into_iter()
        .find(|l| l.dir == "C>D" && l.note.contains("(1102)"))
        .unwrap();
    let expected = Packet::decode(&auth.bytes[8..]).unwrap();
    assert_eq!(
        expected.payload,
        records::make_comm_key(45, 0x45cf, 50).to_vec()
    );
    assert_eq!(
        Packet::new(
            cmd::AUTH,
            expected.session_id,
            expected.reply_id,
            expected.payload.clone()
        )
        .encode_tcp(),
        auth.bytes
    );
}

#[test]
fn k20_users_frame_split_over_two_reads() {
    let lines = read_lines("real/pyzk-testpy_tcp_users-direct-K20.hex");
    let cont = lines.iter().position(|l| l.dir == "D>C+").unwrap();
    let (first, second) = (&lines[cont - 1].bytes, &lines[cont].bytes);
    let mut buf = BytesMut::from(&first[..]);
    assert_eq!(decode_tcp_frame(&mut buf), Ok(None));
    buf.extend_from_slice(second);
    let packet = decode_tcp_frame(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty());
    let whole = [first.as_slice(), second.as_slice()].concat();
    assert!(decode_checked(&whole[8..]).unwrap().1);
    assert_eq!(packet.encode_tcp(), whole);
    assert_eq!(packet.command, cmd::DATA);
    let users: Vec<_> = records::decode_users_dataset(&packet.payload, Some(2))
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        users
            .iter()
            .map(|u| (u.uid, u.name.as_str(), u.user_id.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "cfulano", "100001lp"), (2, "rmengano", "222222cb")]
    );
}
