//! Crash test: terminals post while the server is killed with SIGKILL. Every batch that was answered `OK:<n>`
//! must be in the database exactly once after a restart; batches without an answer may or may not be there.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::{sqlite, Options, Server};

const CLIENTS: usize = 4;
const BATCH: usize = 20;

/// One punch identity: (SN, local time text, PIN, punch state).
type Identity = (String, String, String, i64);

/// Post ATTLOG batches until `stop`; returns the punches of every batch answered `OK:<BATCH>`.
fn terminal(port: u16, client: usize, stop: Arc<AtomicBool>) -> Vec<Identity> {
    let sn = format!("CRASH{client:04}");
    let mut acknowledged = Vec::new();
    let mut seq = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let batch: Vec<Identity> = (0..BATCH)
            .map(|_| {
                seq += 1;
                let t = chrono::NaiveDate::from_ymd_opt(2024, 1, 1)
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap()
                    + chrono::Duration::seconds(seq as i64);
                (
                    sn.clone(),
                    t.format("%Y-%m-%d %H:%M:%S").to_string(),
                    format!("{}", seq % 7),
                    (seq % 2) as i64,
                )
            })
            .collect();
        let body: String = batch
            .iter()
            .map(|(_, t, pin, state)| format!("{pin}\t{t}\t{state}\t1\t0\t0\t0\n"))
            .collect();
        let request = format!(
            "POST /iclock/cdata?SN={sn}&table=ATTLOG&Stamp={seq} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        match try_request(port, request.as_bytes()) {
            Some(answer) if answer == format!("OK:{BATCH}") => acknowledged.extend(batch),
            Some(answer) => panic!("unexpected answer {answer:?}"),
            // Killed meanwhile: the batch may or may not be stored.
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    acknowledged
}

/// The body of a 200 answer, or `None` when the connection failed or the answer was not a whole 200.
fn try_request(port: u16, request: &[u8]) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(request).ok()?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).ok()?;
    let response = crate::harness::parse_response(&bytes)?;
    (response.status == 200).then(|| response.text())
}

#[test]
fn every_acknowledged_punch_survives_sigkill_exactly_once() {
    crash_and_check(None);
}

/// `synchronous=NORMAL` in WAL mode may lose the last commits on power loss, never on a process crash.
#[test]
fn every_acknowledged_punch_survives_sigkill_with_crash_safe_durability() {
    crash_and_check(Some("durability = \"crash-safe\"\n".into()));
}

fn crash_and_check(config: Option<String>) {
    let mut server = Server::with(Options {
        time_zone: Some("Asia/Shanghai".into()),
        config: config.clone(),
        ..Options::default()
    });
    let db = server.db.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let port = server.port;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let stop = stop.clone();
            std::thread::spawn(move || terminal(port, client, stop))
        })
        .collect();
    // Let the load run, then pull the plug while it is still going. The terminals stop right after: a port
    // freed by the kill may be handed to another test's server, which must not receive these punches.
    std::thread::sleep(Duration::from_millis(1200));
    server.kill();
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged: Vec<Identity> = Vec::new();
    for c in clients {
        acknowledged.extend(c.join().unwrap());
    }
    assert!(
        acknowledged.len() >= BATCH * CLIENTS,
        "too little load before the kill: {}",
        acknowledged.len()
    );

    // Restart on the same database.
    let restarted = Server::with(Options {
        time_zone: Some("Asia/Shanghai".into()),
        db: Some(db.clone()),
        config,
        ..Options::default()
    });
    let conn = sqlite(&db);
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let stored: Vec<Identity> = conn
        .prepare("SELECT device_sn, punched_at, pin, punch_state FROM punches")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let unique: HashSet<&Identity> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "a punch is stored twice");
    let missing: Vec<&Identity> = acknowledged
        .iter()
        .filter(|p| !unique.contains(p))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged punches lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    assert!(stored.len() >= acknowledged.len());
    // The API of the restarted server agrees.
    let via_api: usize = (0..CLIENTS)
        .map(|c| restarted.punches(&format!("CRASH{c:04}")).len())
        .sum();
    assert_eq!(via_api, stored.len());
    // Re-sending an acknowledged batch after the restart is a no-op.
    let (sn, t, pin, state) = &acknowledged[0];
    let r = restarted.attlog(sn, &format!("{pin}\t{t}\t{state}\t1\t0\t0\t0\n"));
    assert_eq!(r.text(), "OK:1");
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM punches", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n as usize, stored.len());
}
