//! Bad input from terminals and strangers: malformed query strings, missing SN, unknown tables, broken lines,
//! foreign encodings, absurd dates, oversized bodies, slow clients, garbage bytes. The server answers what it
//! can, keeps the raw bytes, stores the good records, and never panics (the harness checks its log on drop).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{sqlite, Options, Server};

const SN: &str = "BADIN000001";

/// The latest journal entry of a kind, through the API.
fn last_journal(server: &Server, kind: &str) -> Value {
    let id: i64 = sqlite(&server.db)
        .query_row("SELECT MAX(id) FROM journal WHERE kind = ?1", [kind], |r| {
            r.get(0)
        })
        .unwrap();
    server.get_json(&format!("/journal/{id}"))
}

fn issues(journal: &Value) -> Vec<(i64, String, String)> {
    journal["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line_no"].as_i64().unwrap(),
                e["line"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn malformed_query_strings_still_find_sn_and_table() {
    let server = Server::start();
    let r = server.iclock(
        "POST",
        &format!("/iclock/cdata?SN={SN}&&table=ATTLOG&=x&%zz=1&Stamp"),
        b"1\t2024-01-01 08:00:00\t0\n",
    );
    assert_eq!((r.status, r.text()), (200, "OK:1".to_owned()));
    let r = server.iclock(
        "POST",
        &format!("/iclock/cdata?SN={SN}&table=ATTLOG&Stamp=%ZZ%%%00"),
        b"",
    );
    assert_eq!((r.status, r.text()), (200, "OK:0".to_owned()));
    // An INFO with raw spaces in the URL, as att firmware sends it.
    let r = server.iclock(
        "GET",
        &format!(
            "/iclock/getrequest?SN={SN}&INFO=Ver 2.0.12-20150625,0,0,0,192.168.16.27,10,7,15,0,111"
        ),
        b"",
    );
    assert_eq!((r.status, r.text()), (200, "OK".to_owned()));
    assert_eq!(
        server.get_json(&format!("/devices/{SN}"))["firmware"],
        "Ver 2.0.12-20150625"
    );
    // Invalid serial numbers are refused, not registered.
    let r = server.iclock(
        "POST",
        "/iclock/cdata?SN=&table=ATTLOG",
        b"1\t2024-01-01 08:00:00\n",
    );
    assert_eq!((r.status, r.text()), (400, "invalid SN \"\"".to_owned()));
    let r = server.iclock("POST", "/iclock/cdata?SN=A%20B&table=ATTLOG", b"");
    assert_eq!(r.status, 400);
    let r = server.raw(b"GET /iclock/cdata?SN=BAD\xff\xfe&options=all HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 400);
    let sns: Vec<String> = server
        .get_json("/devices")
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["sn"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sns, [SN]);
}

#[test]
fn missing_sn_is_400_on_known_endpoints_and_ok_elsewhere() {
    let server = Server::start();
    for target in [
        "/iclock/cdata?table=ATTLOG",
        "/iclock/getrequest",
        "/iclock/devicecmd",
    ] {
        let r = server.iclock("POST", target, b"1\t2024-01-01 08:00:00\n");
        assert_eq!(
            (r.status, r.text()),
            (400, "request has no SN".to_owned()),
            "{target}"
        );
        assert_eq!(r.header("content-type"), Some("text/plain"));
    }
    // Firmware fetches files relative to its root URL without an SN: answered OK, but with no SN of an approved
    // device nothing of it is kept (issue 6; tests/it/limits.rs has the 16 MB case).
    let r = server.iclock("GET", "/iclock/fw/update.bin?x=1", b"");
    assert_eq!((r.status, r.text()), (200, "OK".to_owned()));
    let n_journal: i64 = sqlite(&server.db)
        .query_row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n_journal, 0);
    // Outside /iclock: plain 404.
    let r = server.raw(b"GET /nothing-here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 404);
    assert_eq!(server.get_json("/punches")["punches"], json!([]));
}

#[test]
fn unknown_tables_and_paths_are_acknowledged_and_kept_raw() {
    let server = Server::start();
    let body = b"SOMETHING new=1\tother=\xff\n";
    let r = server.iclock(
        "POST",
        &format!("/iclock/cdata?SN={SN}&table=FUTURETABLE&Stamp=5"),
        body,
    );
    assert_eq!((r.status, r.text()), (200, "OK:0".to_owned()));
    let journal = last_journal(&server, "table:FUTURETABLE");
    use base64::Engine;
    let kept = base64::engine::general_purpose::STANDARD
        .decode(journal["body_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(kept, body);
    assert_eq!(journal["device_sn"], SN);
    let r = server.iclock("POST", &format!("/iclock/newendpoint?SN={SN}"), b"payload");
    assert_eq!((r.status, r.text()), (200, "OK".to_owned()));
    assert_eq!(
        last_journal(&server, "other")["request"],
        format!("POST /iclock/newendpoint?SN={SN}")
    );
}

#[test]
fn broken_attlog_lines_are_journaled_and_the_good_ones_stored() {
    let server = Server::with(Options {
        time_zone: Some("Europe/Berlin".into()),
        ..Options::default()
    });
    let body = "101\t2024-01-15 08:00:00\t0\t1\t0\t0\t0\n\
                102\t2024-01-1\n\
                \n\
                103\n\
                104\t2024-01-15 09:00:00\tX\t1\n\
                \t2024-01-15 09:30:00\t0\t1\n\
                105\t1999-12-31 23:59:59\t0\t1\n\
                106\t2024-02-30 08:00:00\t0\t1\n\
                107\t2024-13-01 08:00:00\t0\t1\n\
                108\t9999-01-01 08:00:00\t0\t1\n\
                109\t2024-01-15 25:00:00\t0\t1\n\
                110\t2024-03-31 02:30:00\t0\t1\n\
                111\t2024-01-15 10:00:00\t1\t1\t0\t0\t0\r\n";
    let r = server.attlog(SN, body);
    assert_eq!((r.status, r.text()), (200, "OK:3".to_owned()));
    let stored: Vec<(String, String, String)> = server
        .punches(SN)
        .iter()
        .map(|p| {
            (
                p["pin"].as_str().unwrap().to_owned(),
                p["punched_at"].as_str().unwrap().to_owned(),
                p["punched_at_utc"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let s = |v: &str| v.to_owned();
    assert_eq!(
        stored,
        [
            (
                s("101"),
                s("2024-01-15T08:00:00"),
                s("2024-01-15T07:00:00Z")
            ),
            // In the spring-forward gap: the local time as sent, the instant just after the gap.
            (
                s("110"),
                s("2024-03-31T02:30:00"),
                s("2024-03-31T01:30:00Z")
            ),
            (
                s("111"),
                s("2024-01-15T10:00:00"),
                s("2024-01-15T09:00:00Z")
            ),
        ]
    );
    let journal = last_journal(&server, "ATTLOG");
    assert_eq!(
        (journal["n_records"].as_i64(), journal["n_stored"].as_i64()),
        (Some(3), Some(3))
    );
    let errors = issues(&journal);
    let lines: Vec<i64> = errors.iter().map(|e| e.0).collect();
    assert_eq!(lines, [2, 4, 5, 6, 7, 8, 9, 10, 11], "{errors:#?}");
    assert_eq!(errors[0].1, "102\t2024-01-1");
    assert_eq!(errors[0].2, "unparseable time \"2024-01-1\"");
    assert_eq!(
        errors[1].2,
        "expected at least 2 tab-separated fields (PIN, time), got 1"
    );
    assert_eq!(errors[2].2, "non-numeric status \"X\"");
    assert_eq!(errors[3].2, "empty PIN");
    assert_eq!(
        errors[4].2,
        "time \"1999-12-31 23:59:59\" outside years 2000..=2099"
    );
    assert_eq!(
        errors[7].2,
        "time \"9999-01-01 08:00:00\" outside years 2000..=2099"
    );
}

#[test]
fn gbk_names_are_decoded_and_invalid_utf8_never_breaks_a_body() {
    let server = Server::start();
    // 张三 in GBK is D5 C5 C8 FD; the second user's name is not valid in any multi-byte encoding (Latin-1).
    let mut body = b"USER PIN=501\tName=".to_vec();
    body.extend_from_slice(&[0xD5, 0xC5, 0xC8, 0xFD]);
    body.extend_from_slice(
        b"\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000000000000\nUSER PIN=502\tName=Jos",
    );
    body.extend_from_slice(&[0xE9, 0xFF]);
    body.extend_from_slice(b"\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000000000000\n");
    let r = server.iclock(
        "POST",
        &format!("/iclock/cdata?SN={SN}&table=OPERLOG&Stamp=1"),
        &body,
    );
    assert_eq!((r.status, r.text()), (200, "OK:2".to_owned()));
    let users = server.get_json(&format!("/devices/{SN}/users"));
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["张三", "Jos\u{e9}\u{ff}"]);
    // UTF-8 names arrive as they are.
    let r = server.iclock(
        "POST",
        &format!("/iclock/cdata?SN={SN}&table=OPERLOG&Stamp=2"),
        "USER PIN=503\tName=Zoë Ødegård\tPri=0\n".as_bytes(),
    );
    assert_eq!(r.text(), "OK:1");
    let users = server.get_json(&format!("/devices/{SN}/users"));
    assert_eq!(users[2]["name"], "Zoë Ødegård");
    // Invalid UTF-8 inside an ATTLOG body: the line is read (Latin-1), nothing is lost, nothing panics.
    let r = server.iclock(
        "POST",
        &format!("/iclock/cdata?SN={SN}&table=ATTLOG&Stamp=3"),
        b"7\t2024-01-15 08:00:00\t0\t1\t\xff\xfe\n8\t2024-01-15 08:01:00\t0\t1\n",
    );
    assert_eq!((r.status, r.text()), (200, "OK:2".to_owned()));
    let punches = server.punches(SN);
    assert_eq!(punches[0]["work_code"], "\u{ff}\u{fe}");
    assert_eq!(punches[1]["pin"], "8");
}

#[test]
fn a_body_over_the_limit_gets_413_and_the_server_carries_on() {
    let server = Server::with(Options {
        time_zone: Some("UTC".into()),
        config: Some("max_body_bytes = 1024\n".into()),
        ..Options::default()
    });
    let line = "1\t2024-01-15 08:00:00\t0\t1\t0\t0\t0\n";
    let big: String = (0..100)
        .map(|i| line.replacen("1", &format!("{i}"), 1))
        .collect();
    assert!(big.len() > 1024);
    let r = server.attlog(SN, &big);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(server.punches(SN).len(), 0);
    // Just under the limit is fine, and the server is still well.
    let small: String = big[..big.len().min(1000)]
        .rsplit_once('\n')
        .unwrap()
        .0
        .to_owned()
        + "\n";
    let n = small.lines().count();
    assert_eq!(server.attlog(SN, &small).text(), format!("OK:{n}"));
    assert_eq!(server.punches(SN).len(), n);
}

#[test]
fn a_declared_length_over_the_limit_is_refused_before_the_body_is_sent() {
    let server = Server::with(Options {
        time_zone: Some("UTC".into()),
        config: Some("max_body_bytes = 1024\n".into()),
        ..Options::default()
    });
    // Headers only: the body never comes. The answer must not wait for it (the read times out after 20 s, the
    // server's own request timeout is 120 s).
    let request = format!(
        "POST /iclock/cdata?SN={SN}&table=ATTLOG&Stamp=9999 HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n"
    );
    let r = crate::harness::raw_request(server.port, request.as_bytes());
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(
        r.text(),
        "request body of 5000000 bytes is over the limit of 1024 bytes\n"
    );
    assert_eq!(server.punches(SN).len(), 0);
}

#[test]
fn a_terminal_body_slower_than_the_request_timeout_gets_408_and_nothing_is_kept() {
    // Terminal requests skip the router's layers (web::serve calls the push handler directly): the request
    // timeout must hold for them as for every other route.
    let server = Server::with(Options {
        time_zone: Some("UTC".into()),
        config: Some("[limits]\nrequest_timeout_secs = 1\n".into()),
        ..Options::default()
    });
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    slow.write_all(
        format!("POST /iclock/cdata?SN={SN}&table=ATTLOG&Stamp=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n1\t2024-01-15 08:00:00")
            .as_bytes(),
    )
    .unwrap();
    let start = Instant::now();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let r = loop {
        if let Some(r) = crate::harness::parse_response(&bytes) {
            break r;
        }
        let n = slow.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&bytes));
        bytes.extend_from_slice(&buf[..n]);
    };
    assert_eq!((r.status, r.text()), (408, String::new()));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(server.punches(SN).len(), 0);
    // The same route still answers a whole request.
    assert_eq!(
        server.attlog(SN, "1\t2024-01-15 08:00:00\t0\t1\n").text(),
        "OK:1"
    );
}

#[test]
fn a_slow_client_does_not_hold_up_other_terminals() {
    let server = Server::start();
    // Half the headers, then silence.
    let mut slow_headers = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow_headers
        .write_all(
            format!("POST /iclock/cdata?SN={SN}&table=ATTLOG HTTP/1.1\r\nHost: x\r\nUser-Ag")
                .as_bytes(),
        )
        .unwrap();
    // All headers, half the body, then silence.
    let mut slow_body = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow_body
        .write_all(
            format!("POST /iclock/cdata?SN={SN}&table=ATTLOG HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n1\t2024")
                .as_bytes(),
        )
        .unwrap();
    // Only a few bytes of a request line.
    let mut slow_line = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow_line.write_all(b"GE").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    for i in 0..10 {
        let r = server.attlog("OTHER00001", &format!("{i}\t2024-01-15 08:00:00\t0\t1\n"));
        assert_eq!(r.text(), "OK:1");
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(server.punches("OTHER00001").len(), 10);
    // The stalled ones got nothing yet; once the body completes, it is served.
    slow_body.write_all(&[b'x'; 94]).unwrap();
    slow_body
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The connection stays open (keep-alive): read until one whole response is there.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let response = loop {
        if let Some(r) = crate::harness::parse_response(&answer).filter(|r| !r.body.is_empty()) {
            break r;
        }
        let n = slow_body.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    };
    // Half a line of the body became a journal error; the line is counted in the answer only if it parsed.
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "OK:0");
    drop(slow_headers);
    drop(slow_line);
}

/// A small deterministic generator for garbage (xorshift).
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn garbage_on_the_socket_is_refused_and_the_server_keeps_serving() {
    let server = Server::start();
    let mut payloads: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02GARBAGE\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"POST /iclock/cdata?SN=X&table=ATTLOG HTTP/1.1\r\nContent-Length: -5\r\n\r\n".to_vec(),
        b"POST /iclock/cdata?SN=X&table=ATTLOG HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n".to_vec(),
        b"GET /iclock/cdata?SN=X&options=all HTTP/9.9\r\n\r\n".to_vec(),
        [b"GET /".as_slice(), &[b'a'; 70_000], b" HTTP/1.1\r\n\r\n"].concat(),
        // `/` now leads to the web UI (a 303), so the long header goes to a path nothing serves.
        [b"GET /nothing-here HTTP/1.1\r\nX: ".as_slice(), &[b'b'; 70_000], b"\r\n\r\n"].concat(),
    ];
    payloads.extend((1..=20).map(|seed| garbage(seed, 64 + 97 * seed as usize)));
    for (idx, payload) in payloads.iter().enumerate() {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(35)))
            .unwrap();
        let _ = stream.write_all(payload);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        if !answer.is_empty() {
            let text = String::from_utf8_lossy(&answer);
            assert!(
                text.starts_with("HTTP/1.1 4") || text.starts_with("HTTP/1.0 4"),
                "payload {idx}: {text}"
            );
        }
        // Still serving after every one.
        let r = server.attlog(
            "GOOD000001",
            &format!("1\t2024-01-15 08:00:{:02}\t0\t1\n", idx % 60),
        );
        assert_eq!(r.text(), "OK:1", "after payload {idx}");
    }
    assert_eq!(server.punches("GOOD000001").len(), payloads.len());
    assert_eq!(
        server
            .get_json("/devices")
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["sn"].clone())
            .collect::<Vec<_>>(),
        [json!("GOOD000001")]
    );
}

#[test]
fn unusual_but_legal_http_from_terminals_is_served() {
    let server = Server::start();
    // Two requests pipelined on one keep-alive connection.
    let body = "1\t2024-01-01 08:00:00\t0\t1\n";
    let request = format!(
        "POST /iclock/cdata?SN={SN}&table=ATTLOG&Stamp=1 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}\
         GET /iclock/getrequest?SN={SN} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let split = answer.windows(4).position(|w| w == b"OK:1").unwrap() + 4;
    let first = crate::harness::parse_response(&answer[..split]).unwrap();
    let second = crate::harness::parse_response(&answer[split..]).unwrap();
    assert_eq!((first.status, first.text()), (200, "OK:1".to_owned()));
    assert_eq!((second.status, second.text()), (200, "OK".to_owned()));
    // A chunked body.
    let r = server.raw(
        format!(
            "POST /iclock/cdata?SN={SN}&table=ATTLOG&Stamp=2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
             Connection: close\r\n\r\n1a\r\n2\t2024-01-01 08:00:00\t0\t1\n\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!((r.status, r.text()), (200, "OK:1".to_owned()));
    // Expect: 100-continue.
    let r = server.raw(
        format!(
            "POST /iclock/cdata?SN={SN}&table=ATTLOG&Stamp=3 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\
             Content-Length: 26\r\nConnection: close\r\n\r\n3\t2024-01-01 08:00:00\t0\t1\n"
        )
        .as_bytes(),
    );
    assert_eq!((r.status, r.text()), (200, "OK:1".to_owned()));
    // HTTP/1.0 without Host; a lower-case `sn=`.
    let r = server.raw(format!("GET /iclock/getrequest?SN={SN} HTTP/1.0\r\n\r\n").as_bytes());
    assert_eq!((r.status, r.text()), (200, "OK".to_owned()));
    let r = server.iclock("GET", "/iclock/cdata?sn=lower0001&options=all", b"");
    assert!(
        r.text().starts_with("GET OPTION FROM: lower0001\n"),
        "{}",
        r.text()
    );
    let pins: Vec<String> = server
        .punches(SN)
        .iter()
        .map(|p| p["pin"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pins, ["1", "2", "3"]);
}

#[test]
fn pins_refused_by_ingest_are_journaled() {
    let server = Server::start();
    let long_pin = "9".repeat(65);
    let body = format!(
        "101\t2024-01-15 08:00:00\t0\t1\n\
         bad-time\t2024-01-1\n\
         \u{1}7\t2024-01-15 08:01:00\t0\t1\n\
         {long_pin}\t2024-01-15 08:02:00\t0\t1\n\
         102\t2024-01-15 08:03:00\t0\t1\n"
    );
    let r = server.attlog(SN, &body);
    assert_eq!((r.status, r.text()), (200, "OK:2".to_owned()));
    let errors = issues(&last_journal(&server, "ATTLOG"));
    let found: Vec<(i64, String)> = errors.iter().map(|e| (e.0, e.1.clone())).collect();
    // Lines refused by ingest (not by the parser) are reported by their line in the body too.
    assert_eq!(
        found,
        [
            (2, "bad-time\t2024-01-1".to_owned()),
            (3, "\u{1}7\t2024-01-15 08:01:00".to_owned()),
            (4, format!("{long_pin}\t2024-01-15 08:02:00")),
        ]
    );
    assert!(
        errors[1].2.contains("control characters"),
        "{}",
        errors[1].2
    );
    let pins: Vec<String> = server
        .punches(SN)
        .iter()
        .map(|p| p["pin"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pins, ["101", "102"]);
}
