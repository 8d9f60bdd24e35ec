//! Re-sent data is stored once and still acknowledged: terminals resend whenever an acknowledgement got lost.

use crate::harness::{sqlite, Server};

const SN: &str = "IDEM0000001";

/// `n` distinct punches, one per minute from 2024-05-01 07:00, PINs 1000..1009 round robin, alternating states.
fn history(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "{}\t2024-05-01 {:02}:{:02}:00\t{}\t1\t0\t0\t0",
                1000 + i % 10,
                7 + i / 60,
                i % 60,
                i % 2
            )
        })
        .collect()
}

fn body(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// How many stored rows share an identity with another (must be 0), and how many rows there are.
fn duplicates_and_total(server: &Server) -> (i64, i64) {
    let conn = sqlite(&server.db);
    let dup: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM (SELECT 1 FROM punches GROUP BY device_sn, punched_at, pin, punch_state \
             HAVING COUNT(*) > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let total: i64 = conn
        .query_row("SELECT COUNT(*) FROM punches", [], |r| r.get(0))
        .unwrap();
    (dup, total)
}

#[test]
fn a_resent_history_in_other_batch_sizes_is_stored_once_and_acknowledged_in_full() {
    let server = Server::start();
    let lines = history(90);
    let first = server.attlog(SN, &body(&lines));
    assert_eq!((first.status, first.text()), (200, "OK:90".to_owned()));
    let stored = server.punches(SN);
    assert_eq!(stored.len(), 90);

    // The same batch again: acknowledged in full, nothing new, the journal says why.
    assert_eq!(server.attlog(SN, &body(&lines)).text(), "OK:90");
    let journal_id: i64 = sqlite(&server.db)
        .query_row(
            "SELECT MAX(id) FROM journal WHERE kind = 'ATTLOG'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let journal = server.get_json(&format!("/journal/{journal_id}"));
    assert_eq!(
        (
            journal["n_records"].as_i64(),
            journal["n_stored"].as_i64(),
            journal["n_duplicate"].as_i64()
        ),
        (Some(90), Some(0), Some(90))
    );

    // The whole history again in batches of 7, then 25, then one by one for the tail, plus 5 new punches.
    let longer = history(95);
    for size in [7usize, 25] {
        for chunk in longer.chunks(size) {
            let r = server.attlog(SN, &body(chunk));
            assert_eq!(r.text(), format!("OK:{}", chunk.len()));
        }
    }
    for line in &longer[80..] {
        assert_eq!(server.attlog(SN, &format!("{line}\n")).text(), "OK:1");
    }
    let after = server.punches(SN);
    assert_eq!(after.len(), 95);
    // The first 90 are the very rows stored the first time (same ids, same journal entry).
    assert_eq!(after[..90], stored[..]);
    assert_eq!(duplicates_and_total(&server), (0, 95));
    let punched_at: Vec<&str> = after
        .iter()
        .map(|p| p["punched_at"].as_str().unwrap())
        .collect();
    assert_eq!(punched_at[0], "2024-05-01T07:00:00");
    assert_eq!(punched_at[94], "2024-05-01T08:34:00");
}

#[test]
fn same_pin_same_second_different_punch_state_are_two_punches() {
    let server = Server::start();
    let body = "0007\t2024-05-01 12:00:00\t2\t1\n0007\t2024-05-01 12:00:00\t3\t1\n";
    assert_eq!(server.attlog(SN, body).text(), "OK:2");
    assert_eq!(server.attlog(SN, body).text(), "OK:2");
    // No punch state at all is a third identity; sent again, still one.
    assert_eq!(
        server.attlog(SN, "0007\t2024-05-01 12:00:00\n").text(),
        "OK:1"
    );
    assert_eq!(
        server.attlog(SN, "0007\t2024-05-01 12:00:00\n").text(),
        "OK:1"
    );
    // A different PIN spelling (leading zero) is a different user.
    assert_eq!(
        server.attlog(SN, "7\t2024-05-01 12:00:00\t2\t1\n").text(),
        "OK:1"
    );
    let punches = server.punches(SN);
    let got: Vec<(String, Option<i64>)> = punches
        .iter()
        .map(|p| {
            (
                p["pin"].as_str().unwrap().to_owned(),
                p["punch_state"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("0007".to_owned(), Some(2)),
            ("0007".to_owned(), Some(3)),
            ("0007".to_owned(), None),
            ("7".to_owned(), Some(2))
        ]
    );
    assert_eq!(duplicates_and_total(&server), (0, 4));
}

#[test]
fn the_same_punch_from_two_devices_is_two_punches() {
    let server = Server::start();
    let line = "0007\t2024-05-01 12:00:00\t0\t1\n";
    assert_eq!(server.attlog("DEVA0001", line).text(), "OK:1");
    assert_eq!(server.attlog("DEVB0001", line).text(), "OK:1");
    assert_eq!(server.punches("DEVA0001").len(), 1);
    assert_eq!(server.punches("DEVB0001").len(), 1);
}

#[test]
fn a_line_repeated_within_one_batch_is_acknowledged_and_stored_once() {
    let server = Server::start();
    let line = "4711\t2024-06-03 07:59:12\t0\t15\t0\t0\t0\n";
    let r = server.attlog(SN, &format!("{line}{line}{line}"));
    // Every line is acknowledged (the terminal counts what it sent), one punch is held.
    assert_eq!((r.status, r.text()), (200, "OK:3".to_owned()));
    let punches = server.punches(SN);
    assert_eq!(punches.len(), 1);
    assert_eq!(punches[0]["pin"], "4711");
    assert_eq!(punches[0]["punched_at"], "2024-06-03T07:59:12");
}
