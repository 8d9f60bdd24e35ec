//! A storage failure is never acknowledged: the terminal gets 503, keeps its data and retries; once the store
//! works again the same request is stored exactly once.

use crate::harness::{sqlite, Server};

const SN: &str = "FAIL0000001";
const BODY: &str =
    "1\t2024-06-01 08:00:00\t0\t1\n2\t2024-06-01 08:01:00\t0\t1\n3\t2024-06-01 08:02:00\t0\t1\n";

#[test]
fn a_failing_insert_gets_503_and_nothing_then_ok_once_it_works_again() {
    let server = Server::start();
    // The device is known, and its first batch is stored.
    assert_eq!(
        server.attlog(SN, "9\t2024-06-01 07:00:00\t0\t1\n").text(),
        "OK:1"
    );
    let conn = sqlite(&server.db);
    let journal_before: i64 = conn
        .query_row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))
        .unwrap();

    conn.execute_batch(
        "CREATE TRIGGER fail BEFORE INSERT ON punches BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
    )
    .unwrap();
    for _ in 0..2 {
        let r = server.attlog(SN, BODY);
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.text(), "storage unavailable, retry later");
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert!(!r.text().starts_with("OK"));
    }
    // Nothing of the failed requests was kept: no punch, no journal entry, no stamp change.
    assert_eq!(server.punches(SN).len(), 1);
    let journal_during: i64 = conn
        .query_row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal_during, journal_before);
    // Other writes still work meanwhile (the failure is the batch's alone).
    let other = server.iclock(
        "POST",
        &format!("/iclock/cdata?SN={SN}&table=options"),
        b"FaceFunOn=1",
    );
    assert_eq!(other.text(), "OK");
    let health = server.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!((health.status, health.text()), (200, "ok\n".to_owned()));

    conn.execute_batch("DROP TRIGGER fail;").unwrap();
    let r = server.attlog(SN, BODY);
    assert_eq!((r.status, r.text()), (200, "OK:3".to_owned()));
    assert_eq!(server.attlog(SN, BODY).text(), "OK:3");
    let pins: Vec<String> = server
        .punches(SN)
        .iter()
        .map(|p| p["pin"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pins, ["9", "1", "2", "3"]);
    let metrics = server
        .raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("punchd_storage_errors") && !l.ends_with(" 0")),
        "{metrics}"
    );
}
