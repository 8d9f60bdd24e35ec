//! Property tests: parsers never panic on arbitrary bytes; ATTLOG lines round-trip.

use chrono::{NaiveDate, NaiveDateTime};
use proptest::prelude::*;
use zk_push::attlog::{parse_attlog, AttlogRecord};
use zk_push::devicecmd::parse_command_results;
use zk_push::operlog::parse_operlog;
use zk_push::options::parse_options;
use zk_push::photo::parse_attphoto;
use zk_push::query::Query;
use zk_push::request::parse_request;
use zk_push::sample::parse_captured_request;

/// Bytes biased towards the protocol's separators so the parsers' branches are reached: about a third of the
/// bytes are TAB, LF, CR, `=`, `&`, `,`, NUL, space, digits, `-` or `:`; the rest are arbitrary.
fn device_bytes() -> impl Strategy<Value = Vec<u8>> {
    const SEPARATORS: &[u8] = b"\t\t\n\n\r=&,\0 0123456789-:";
    prop::collection::vec(any::<u16>(), 0..400).prop_map(|draws| {
        draws
            .into_iter()
            .map(|draw| {
                let [pick, byte] = draw.to_le_bytes();
                if pick % 3 == 0 {
                    SEPARATORS[usize::from(byte) % SEPARATORS.len()]
                } else {
                    byte
                }
            })
            .collect()
    })
}

fn device_time() -> impl Strategy<Value = NaiveDateTime> {
    (
        2000i32..=2099,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
    )
        .prop_map(|(y, mo, d, h, mi, s)| {
            NaiveDate::from_ymd_opt(y, mo, d)
                .and_then(|date| date.and_hms_opt(h, mi, s))
                .unwrap()
        })
}

fn record() -> impl Strategy<Value = AttlogRecord> {
    (
        "[0-9A-Za-z]{1,9}",
        device_time(),
        prop::option::of(any::<u16>()),
        prop::option::of(any::<u16>()),
        prop::option::of("[0-9A-Za-z]{1,6}"),
        prop::collection::vec("[0-9A-Za-z.+-]{0,5}", 0..12),
    )
        .prop_map(|(pin, time, status, verify, work_code, extra)| {
            let mut record = AttlogRecord {
                pin,
                time,
                status,
                verify,
                work_code,
                extra,
                line: String::new(),
            };
            record.line = record.encode_line();
            record
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parsers_never_panic(bytes in device_bytes()) {
        for (line_no, result) in parse_attlog(&bytes).iter().enumerate() {
            if let Err(e) = result {
                prop_assert!(e.line_no > line_no);
            }
        }
        let _ = parse_operlog(&bytes);
        let _ = parse_command_results(&bytes);
        let _ = parse_captured_request(&bytes);
        let _ = parse_options(&bytes);
        let _ = parse_attphoto(&bytes, Some("x.jpg"));
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_request("GET", &text, &Query::parse(&text));
    }

    #[test]
    fn attlog_line_round_trips(record in record()) {
        let line = record.encode_line();
        let parsed = parse_attlog(format!("{line}\n").as_bytes());
        prop_assert_eq!(parsed, vec![Ok(record)]);
    }

    #[test]
    fn attlog_batch_keeps_every_line(records in prop::collection::vec(record(), 1..20)) {
        let body: String = records.iter().map(|r| format!("{}\r\n", r.encode_line())).collect();
        let parsed: Vec<AttlogRecord> = parse_attlog(body.as_bytes()).into_iter().map(Result::unwrap).collect();
        prop_assert_eq!(parsed, records);
    }
}
