//! Several `punchd serve` on one PostgreSQL schema (issue 10, "Several instances" and "Testing"):
//! - the live page's event stream (`/ui/live/events`) of every instance shows a punch pushed to any of them,
//!   exactly once, also after the LISTEN connection was cut (`store/postgres/notify.rs`);
//! - the crash test: three instances behind a small TCP proxy (each terminal request to the next live one), a
//!   simulated push fleet, a pull terminal and a webhook sink leased among them, commands queued; the instance
//!   holding the leases is killed with SIGKILL mid-run and started again. Afterwards: every acknowledged punch is
//!   stored once, every command delivered once, both leases moved to a survivor, every outbox event reached the
//!   receiver (by idempotency key; a redelivery of the batch in flight at the kill is allowed and counted).
//!
//! Needs `PUNCHD_TEST_POSTGRES_URL`; skipped without it outside CI (see `postgres.rs`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{punchd_command, raw_request, Options, Server};
use crate::postgres::{isolated, test_url, with_client};

/// Wait (at most `secs`) until `f` answers `Some`.
fn wait_until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `punchd ui-users add NAME --role admin --password-stdin` on `db`.
fn add_account(db: &Path, name: &str, password: &str) {
    let mut child = punchd_command()
        .arg("--database")
        .arg(db)
        .args([
            "ui-users",
            "add",
            name,
            "--role",
            "admin",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ui-users add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sign in to `server`'s web UI; the session cookie (`pd_session=…`).
fn sign_in(server: &Server, name: &str, password: &str) -> String {
    let body = format!("name={name}&password={password}&next=%2Fui");
    let request = format!(
        "POST /ui/login HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.port,
        body.len()
    );
    let r = raw_request(server.port, request.as_bytes());
    assert_eq!(r.status, 303, "sign-in: {}", r.text());
    r.headers
        .iter()
        .filter(|(name, _)| name == "set-cookie")
        .find_map(|(_, v)| v.split(';').next().filter(|c| c.starts_with("pd_session=")))
        .expect("a session cookie")
        .to_owned()
}

/// The raw bytes of one instance's `/ui/live/events` stream, read by a thread.
struct LiveStream {
    text: Arc<Mutex<String>>,
    stream: TcpStream,
}

impl LiveStream {
    /// Open the stream and wait until its answer began (the subscription exists from then on).
    fn open(server: &Server, cookie: &str) -> LiveStream {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        write!(
            stream,
            "GET /ui/live/events HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n",
            server.port
        )
        .unwrap();
        let text = Arc::new(Mutex::new(String::new()));
        let mut reader = stream.try_clone().unwrap();
        let sink = text.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let live = LiveStream { text, stream };
        wait_until("the live stream's answer", 10, || {
            let t = live.text();
            t.contains("\r\n\r\n").then_some(())
        });
        assert!(live.text().starts_with("HTTP/1.1 200"), "{}", live.text());
        live
    }

    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// How often the punch of `pin` was shown.
    fn count(&self, pin: &str) -> usize {
        self.text().matches(&format!("\"pin\":\"{pin}\"")).count()
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

fn wait_for_log(server: &Server, needle: &str, secs: u64) {
    wait_until(&format!("{needle:?} in the log"), secs, || {
        server.log().contains(needle).then_some(())
    });
}

#[test]
fn a_punch_pushed_to_one_instance_is_live_once_on_every_instance_also_after_a_lost_listen() {
    let Some(base) = test_url() else { return };
    let (url, schema) = isolated(&base, "live");
    let options = Options {
        time_zone: Some("UTC".into()),
        db: Some(PathBuf::from(&url)),
        ..Options::default()
    };
    let a = Server::with(options.clone());
    let b = Server::with(options);
    for s in [&a, &b] {
        wait_for_log(s, "live events of other instances: listening", 20);
    }
    add_account(Path::new(&url), "watcher", "live-and-let-live");
    let live_a = LiveStream::open(&a, &sign_in(&a, "watcher", "live-and-let-live"));
    let live_b = LiveStream::open(&b, &sign_in(&b, "watcher", "live-and-let-live"));
    // Punches are relayed only while another instance's live page has viewers: each learns it within seconds.
    for s in [&a, &b] {
        wait_for_log(
            s,
            "live events: another instance shows the live page; relaying punches",
            20,
        );
    }

    let r = a.attlog("LIVEA00000001", "4711\t2026-01-05 08:00:00\t0\t1\n");
    assert_eq!((r.status, r.text()), (200, "OK:1".to_owned()));
    let r = b.attlog("LIVEB00000001", "4712\t2026-01-05 08:00:05\t1\t15\n");
    assert_eq!((r.status, r.text()), (200, "OK:1".to_owned()));
    // A re-send is a duplicate: stored once before, shown nowhere again.
    let r = a.attlog("LIVEA00000001", "4711\t2026-01-05 08:00:00\t0\t1\n");
    assert_eq!((r.status, r.text()), (200, "OK:1".to_owned()));
    for (live, pin) in [(&live_a, "4712"), (&live_b, "4711")] {
        wait_until(&format!("punch {pin} on the other instance"), 20, || {
            (live.count(pin) > 0).then_some(())
        });
    }
    // Long enough for any second copy: the page batches every 250 ms, the relay every 20 ms.
    std::thread::sleep(Duration::from_millis(1_000));
    for (name, live) in [("A", &live_a), ("B", &live_b)] {
        for pin in ["4711", "4712"] {
            assert_eq!(live.count(pin), 1, "{name}, PIN {pin}:\n{}", live.text());
        }
    }

    // B's LISTEN connection is cut: B says so, reconnects, and shows A's punches again.
    let cut: i64 = with_client(&base, async |c| {
        c.query_one(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&format!("punchd-live {} watching", b.pid())],
        )
        .await
        .unwrap()
        .get(0)
    });
    assert_eq!(
        cut, 1,
        "B has one LISTEN connection, named as watching (schema {schema})"
    );
    wait_for_log(&b, "live events of other instances: listening again", 20);
    assert!(
        b.log()
            .contains("the LISTEN connection to PostgreSQL is lost; reconnecting"),
        "{}",
        b.log()
    );
    // A learns within a second or two that B watches again (it may or may not have seen the gap): punches stored
    // before it does are shown on A only. Push new ones until B shows one.
    let mut pins = Vec::new();
    for minute in 1..=20 {
        let pin = format!("{}", 4800 + minute);
        let r = a.attlog(
            "LIVEA00000001",
            &format!("{pin}\t2026-01-05 08:{minute:02}:00\t0\t1\n"),
        );
        assert_eq!((r.status, r.text()), (200, "OK:1".to_owned()));
        pins.push(pin.clone());
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while live_b.count(&pin) == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if live_b.count(&pin) > 0 {
            break;
        }
    }
    let last = pins.last().unwrap().clone();
    assert_eq!(
        live_b.count(&last),
        1,
        "B shows A's punches again:\n{}",
        live_b.text()
    );
    std::thread::sleep(Duration::from_millis(600));
    for pin in &pins {
        assert!(live_b.count(pin) <= 1, "PIN {pin}:\n{}", live_b.text());
        assert_eq!(live_a.count(pin), 1, "PIN {pin}:\n{}", live_a.text());
    }
    assert_eq!(live_b.count(&last), 1, "{}", live_b.text());
}

/// A TCP proxy on 127.0.0.1: each connection goes to the next backend port that accepts one, so a fleet of
/// `Connection: close` terminals spreads its requests over every live instance.
struct Proxy {
    port: u16,
    backends: Arc<Mutex<Vec<u16>>>,
}

impl Proxy {
    fn start(backends: Vec<u16>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let backends = Arc::new(Mutex::new(backends));
        let shared = backends.clone();
        std::thread::spawn(move || {
            let mut next = 0usize;
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let ports = shared.lock().unwrap().clone();
                let mut upstream = None;
                for i in 0..ports.len() {
                    let port = ports[(next + i) % ports.len()];
                    if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                        upstream = Some(s);
                        next = next + i + 1;
                        break;
                    }
                }
                let Some(upstream) = upstream else { continue };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        Proxy { port, backends }
    }

    fn set(&self, ports: Vec<u16>) {
        *self.backends.lock().unwrap() = ports;
    }
}

/// A webhook receiver: answers 200 to every POST and counts the idempotency keys of the check-ins it got.
struct Hook {
    port: u16,
    keys: Arc<Mutex<HashMap<String, usize>>>,
}

impl Hook {
    fn start() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let keys: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let seen = keys.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut data = Vec::new();
                    let mut buf = [0u8; 16384];
                    loop {
                        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match stream.read(&mut buf) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => data.extend_from_slice(&buf[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        while data.len() < end + 4 + length {
                            match stream.read(&mut buf) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => data.extend_from_slice(&buf[..n]),
                            }
                        }
                        let body: serde_json::Value =
                            serde_json::from_slice(&data[end + 4..end + 4 + length])
                                .unwrap_or_default();
                        {
                            let mut seen = seen.lock().unwrap();
                            for c in body["checkins"].as_array().into_iter().flatten() {
                                if let Some(key) = c["idempotency_key"].as_str() {
                                    *seen.entry(key.to_owned()).or_default() += 1;
                                }
                            }
                        }
                        data.drain(..end + 4 + length);
                        if stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Hook { port, keys }
    }

    /// (distinct keys, deliveries of a key already received)
    fn counts(&self) -> (usize, usize) {
        let keys = self.keys.lock().unwrap();
        (keys.len(), keys.values().map(|n| n - 1).sum())
    }
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The holder of lease `name`, when held and not expired.
fn lease_holder(url: &str, name: &str) -> Option<String> {
    with_client(url, async |c| {
        c.query_opt(
            "SELECT holder FROM leases WHERE name = $1 AND expires_at > now()",
            &[&name],
        )
        .await
        .unwrap()
        .map(|r| r.get::<_, String>(0))
    })
}

/// Whether a lease holder name (`host:pid:random`) is the process `pid`.
fn held_by(holder: &str, pid: u32) -> bool {
    holder.split(':').nth(1) == Some(pid.to_string().as_str())
}

const PULL_SN: &str = "CRASHPULL0001";
const PULL_PUNCHES: i64 = 300;

#[test]
fn three_instances_one_killed_mid_run_lose_and_duplicate_nothing() {
    let Some(base) = test_url() else { return };
    let (url, _schema) = isolated(&base, "crash");
    let hook = Hook::start();
    let pull_port = free_port();
    let _pull_terminal = Killed(
        punchd_command()
            .args(["simulate", "pull", "--bind", "127.0.0.1", "--port"])
            .arg(pull_port.to_string())
            .args(["--users", "20", "--templates", "0", "--live-every-ms", "0"])
            .args(["--punches", &PULL_PUNCHES.to_string(), "--sn", PULL_SN])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the pull terminal", 20, || {
        TcpStream::connect(("127.0.0.1", pull_port)).ok()
    });
    let options = Options {
        time_zone: Some("UTC".into()),
        db: Some(PathBuf::from(&url)),
        config: Some(format!(
            "lease_secs = 5\ncommand_timeout_secs = 10\n\
             [[devices]]\nsn = \"{PULL_SN}\"\naddress = \"127.0.0.1:{pull_port}\"\ninterval_secs = 2\n\
             [[sinks]]\nname = \"hook\"\nkind = \"webhook\"\nsince = \"2000-01-01T00:00:00Z\"\n\
             settings = {{ url = \"http://127.0.0.1:{}/\", secret = \"s\", batch_size = 50 }}\n\
             delivery = {{ concurrency = 1, backoff_ms = 50 }}\n",
            hook.port
        )),
        ..Options::default()
    };

    // A starts first and takes both leases; B and C join.
    let mut a = Server::with(options.clone());
    for name in [format!("pull:{PULL_SN}"), "sink:hook".to_owned()] {
        wait_until(&format!("A holds {name}"), 20, || {
            lease_holder(&url, &name).filter(|h| held_by(h, a.pid()))
        });
    }
    let b = Server::with(options.clone());
    let c = Server::with(options.clone());
    let proxy = Proxy::start(vec![a.port, b.port, c.port]);

    // Six push terminals, registered through the proxy, two commands each queued before they upload.
    let fleet_args = |batches: &str| {
        let mut cmd = punchd_command();
        cmd.args(["simulate", "push", "--server"])
            .arg(format!("http://127.0.0.1:{}", proxy.port))
            .args([
                "--devices",
                "6",
                "--sn-prefix",
                "CRASH",
                "--operlog-users",
                "0",
            ])
            .args(["--punches-per-batch", "10", "--batches", batches])
            .args([
                "--batch-interval-ms",
                "250",
                "--poll-interval-ms",
                "300",
                "--json",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    };
    let greet = fleet_args("0").output().unwrap();
    assert!(
        greet.status.success(),
        "{}",
        String::from_utf8_lossy(&greet.stderr)
    );
    let sns: Vec<String> = (1..=6).map(|i| format!("CRASH{i:08}")).collect();
    // One API token (it lives in the database), used on every instance.
    let token = b.token();
    let enqueue = |port: u16, sn: &str, kind: serde_json::Value| {
        let body = kind.to_string();
        let request = format!(
            "POST /api/v1/devices/{sn}/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let r = raw_request(port, request.as_bytes());
        assert_eq!(r.status, 201, "{}", r.text());
    };
    let mut queued = 0;
    for (i, sn) in sns.iter().enumerate() {
        let port = [a.port, b.port, c.port][i % 3];
        enqueue(port, sn.as_str(), serde_json::json!({"type": "fetch_info"}));
        enqueue(
            port,
            sn.as_str(),
            serde_json::json!({"type": "delete_user", "pin": "77"}),
        );
        queued += 2;
    }

    // The fleet uploads 6 × 80 batches of 10 over ~20 s; A dies with SIGKILL a second into it.
    let fleet = fleet_args("80").spawn().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let dead_pid = a.pid();
    a.kill();
    proxy.set(vec![b.port, c.port]);
    let killed_at = Instant::now();
    let mut new_holders = Vec::new();
    for name in [format!("pull:{PULL_SN}"), "sink:hook".to_owned()] {
        let holder = wait_until(&format!("{name} taken over"), 20, || {
            lease_holder(&url, &name).filter(|h| !held_by(h, dead_pid))
        });
        assert!(
            held_by(&holder, b.pid()) || held_by(&holder, c.pid()),
            "{name} is held by {holder}, a survivor should hold it"
        );
        new_holders.push(holder);
    }
    let takeover = killed_at.elapsed();
    // A comes back (on a new port) and takes requests again; commands queued now reach the terminals too.
    let a2 = Server::with(options.clone());
    proxy.set(vec![a2.port, b.port, c.port]);
    for sn in &sns {
        enqueue(
            a2.port,
            sn.as_str(),
            serde_json::json!({"type": "fetch_info"}),
        );
        queued += 1;
    }
    let out = fleet.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["punches_acked"], 6 * 80 * 10, "{summary}");

    // The last commands were queued mid-run, while the terminals still polled.
    let commands = |url: &str| {
        with_client(url, async |c| {
            c.query(
                "SELECT status, attempts, COUNT(*) FROM commands GROUP BY status, attempts ORDER BY 1, 2",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1), r.get::<_, i64>(2)))
            .collect::<Vec<_>>()
        })
    };
    let received = summary["commands_received"].as_i64().unwrap();
    assert_eq!(
        received, queued,
        "every command reached its terminal once: {summary}"
    );
    // Every command answered. A poll that A was answering when it died took its commands as delivered, and the
    // terminal never got that answer: those are delivered again after the timeout (attempt 2), which the
    // terminal's count above shows as once. Nothing may need a third attempt.
    let rows = commands(&url);
    assert!(
        rows.iter()
            .all(|(status, attempts, _)| status == "succeeded" && (1..=2).contains(attempts)),
        "every command delivered once and answered: {rows:?}"
    );
    assert_eq!(
        rows.iter().map(|(_, _, n)| n).sum::<i64>(),
        queued,
        "{rows:?}"
    );

    // Every acknowledged punch stored once; the pull terminal's log too.
    let (push, push_distinct, pulled, pulled_distinct, total) = with_client(&url, async |c| {
        let one = async |sql: &str| -> i64 { c.query_one(sql, &[]).await.unwrap().get(0) };
        (
            one("SELECT COUNT(*) FROM punches WHERE device_sn LIKE 'CRASH0%'").await,
            one("SELECT COUNT(*) FROM (SELECT DISTINCT device_sn, pin, punched_at, punch_state FROM punches \
                 WHERE device_sn LIKE 'CRASH0%') d")
            .await,
            one(&format!("SELECT COUNT(*) FROM punches WHERE device_sn = '{PULL_SN}'")).await,
            one(&format!(
                "SELECT COUNT(*) FROM (SELECT DISTINCT pin, punched_at, punch_state FROM punches \
                 WHERE device_sn = '{PULL_SN}') d"
            ))
            .await,
            one("SELECT COUNT(*) FROM punches").await,
        )
    });
    assert_eq!((push, push_distinct), (6 * 80 * 10, 6 * 80 * 10));
    assert_eq!((pulled, pulled_distinct), (PULL_PUNCHES, PULL_PUNCHES));
    assert_eq!(total, push + pulled);

    // Every outbox event reached the receiver; the batch in flight when A died may come twice, no more.
    let (distinct, again) = wait_until("every punch at the webhook", 40, || {
        let (distinct, again) = hook.counts();
        (distinct as i64 >= total).then_some((distinct, again))
    });
    assert_eq!(distinct as i64, total, "no key the store does not hold");
    assert!(
        again <= 50,
        "{again} deliveries repeated: more than the one batch in flight at the kill"
    );
    // The dead instance holds nothing (a survivor may in turn have handed a lease on; that is not checked).
    for name in [format!("pull:{PULL_SN}"), "sink:hook".to_owned()] {
        let now = lease_holder(&url, &name).expect("held");
        assert!(!held_by(&now, dead_pid), "{name}: {now}");
    }
    println!(
        "leases taken over by {new_holders:?} {:.1} s after the kill; {again} webhook deliveries repeated; \
         {queued} commands",
        takeover.as_secs_f64(),
    );
    drop((b, c, a2));
}
