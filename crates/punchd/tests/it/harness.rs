//! The server process, a raw HTTP client and the CLI, for the end-to-end tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const PUNCHD: &str = env!("CARGO_BIN_EXE_punchd");

/// The shared push samples.
pub const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/samples/push");

/// A `punchd` command with a clean environment (no `PUNCHD_*`, no `RUST_LOG`, no colours).
pub fn punchd_command() -> Command {
    let mut cmd = Command::new(PUNCHD);
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("PUNCHD_") || key_text == "RUST_LOG" {
            cmd.env_remove(&key);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// What a CLI run printed.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit success.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Run `punchd --database <db> <args>` to completion.
pub fn cli(db: &Path, args: &[&str]) -> CliOutput {
    let out = punchd_command()
        .arg("--database")
        .arg(db)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    CliOutput {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run the CLI and parse its stdout as JSON; panics with stderr when it failed.
pub fn cli_json(db: &Path, args: &[&str]) -> serde_json::Value {
    let out = cli(db, args);
    assert!(out.ok, "punchd {args:?} failed: {}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// Remove ANSI colour sequences (in case a tracing build ignores `NO_COLOR`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A running `punchd serve` in its own temp dir, killed (SIGKILL) on drop. Drop fails the test when the server
/// logged a panic.
pub struct Server {
    child: Option<Child>,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// The SQLite file.
    pub db: PathBuf,
    /// Everything it wrote to stderr so far.
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    token: Mutex<Option<String>>,
    _dir: Option<tempfile::TempDir>,
}

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--time-zone`.
    pub time_zone: Option<String>,
    /// `--approval`.
    pub approval: Option<String>,
    /// A TOML settings file's content (written next to the database and passed as `--config`).
    pub config: Option<String>,
    /// The database to use (default: a new one in a new temp dir).
    pub db: Option<PathBuf>,
}

impl Server {
    /// Start a server with the default settings, zone Asia/Shanghai.
    pub fn start() -> Server {
        Server::with(Options {
            time_zone: Some("Asia/Shanghai".into()),
            ..Options::default()
        })
    }

    /// Start a server and wait (at most 20 s) until it logs that it is running.
    pub fn with(options: Options) -> Server {
        let (dir, db) = match &options.db {
            // A PostgreSQL URL with a settings file: the file goes to a temp dir of its own.
            Some(db)
                if options.config.is_some() && db.to_string_lossy().starts_with("postgres") =>
            {
                (Some(tempfile::tempdir().unwrap()), db.clone())
            }
            Some(db) => (None, db.clone()),
            None => {
                let dir = tempfile::tempdir().unwrap();
                let db = dir.path().join("punchd.db");
                (Some(dir), db)
            }
        };
        let mut cmd = punchd_command();
        cmd.arg("--database")
            .arg(&db)
            .args(["--listen", "127.0.0.1:0"]);
        if let Some(config) = &options.config {
            let path = match &dir {
                Some(dir) => dir.path().join("punchd.toml"),
                None => db.with_extension("toml"),
            };
            std::fs::write(&path, config).unwrap();
            cmd.arg("--config").arg(path);
        }
        cmd.arg("serve");
        if let Some(zone) = &options.time_zone {
            cmd.args(["--time-zone", zone]);
        }
        if let Some(approval) = &options.approval {
            cmd.args(["--approval", approval]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel::<u16>();
        let reader = {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stderr);
                let mut line = Vec::new();
                let mut port_tx = Some(port_tx);
                loop {
                    line.clear();
                    match lines.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let text = strip_ansi(&String::from_utf8_lossy(&line));
                    // Kept before the port is announced, so the start line is in the log when `with` returns.
                    log.lock().unwrap().push_str(&text);
                    if text.contains("punchd is running") {
                        if let Some(port) = listen_port(&text) {
                            if let Some(tx) = port_tx.take() {
                                let _ = tx.send(port);
                            }
                        }
                    }
                }
            })
        };
        let port = match port_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "punchd did not start; stderr:\n{}",
                    log.lock().unwrap().as_str()
                );
            }
        };
        Server {
            child: Some(child),
            port,
            db,
            log,
            reader: Some(reader),
            token: Mutex::new(None),
            _dir: dir,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Kill the process at once (SIGKILL) and wait for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }

    /// Ask the server to stop (SIGTERM) and wait at most `deadline` for it to exit; returns whether it exited
    /// successfully. Panics when it is still running after the deadline.
    pub fn terminate(&mut self, deadline: Duration) -> bool {
        let mut child = self.child.take().expect("server already stopped");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        let start = Instant::now();
        let exit = loop {
            if let Some(exit) = child.try_wait().unwrap() {
                break exit;
            }
            if start.elapsed() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "punchd still running {deadline:?} after SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        exit.success()
    }

    /// An admin API token (created once with `punchd token create --scope admin`).
    pub fn token(&self) -> String {
        let mut token = self.token.lock().unwrap();
        if let Some(t) = token.as_ref() {
            return t.clone();
        }
        let out = cli(
            &self.db,
            &["token", "create", "hubtest", "--scope", "admin"],
        );
        assert!(out.ok, "token create failed: {}", out.stderr);
        let t = out.stdout.trim().to_owned();
        assert!(!t.is_empty() && !t.contains(char::is_whitespace), "{t:?}");
        *token = Some(t.clone());
        t
    }

    /// Send raw bytes, read the answer until the server closes.
    pub fn raw(&self, request: &[u8]) -> Response {
        raw_request(self.port, request)
    }

    /// A terminal request: `METHOD target HTTP/1.1`, Host, User-Agent, Content-Length, `Connection: close`.
    /// The target goes on the wire byte for byte (raw spaces included).
    pub fn iclock(&self, method: &str, target: &str, body: &[u8]) -> Response {
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: iClock Proxy/1.09\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        self.raw(&request)
    }

    /// `POST /iclock/cdata?SN=<sn>&table=ATTLOG&Stamp=<stamp>` with `body`.
    pub fn attlog(&self, sn: &str, body: &str) -> Response {
        self.iclock(
            "POST",
            &format!("/iclock/cdata?SN={sn}&table=ATTLOG&Stamp=9999"),
            body.as_bytes(),
        )
    }

    /// An API call with the token; `body` is JSON when given.
    pub fn api(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> Response {
        let token = self.token();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} /api/v1{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        self.raw(request.as_bytes())
    }

    /// `GET /api/v1<path>` answered 200, as JSON.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.api("GET", path, None);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    /// Every punch of a device through the API (pages of 1000), by id.
    pub fn punches(&self, sn: &str) -> Vec<serde_json::Value> {
        let mut all = Vec::new();
        let mut after = 0i64;
        loop {
            let page = self.get_json(&format!("/punches?device={sn}&after={after}&limit=1000"));
            let punches = page["punches"].as_array().unwrap().clone();
            all.extend(punches);
            match page["next_after"].as_i64() {
                Some(next) => after = next,
                None => return all,
            }
        }
    }

    /// Poll `f` every 100 ms until it returns `Some`, for at most `deadline`; panics after.
    pub fn wait_for<T>(
        &self,
        what: &str,
        deadline: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                start.elapsed() < deadline,
                "{what}: not within {deadline:?}; server log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let log = self.log();
        if !std::thread::panicking() {
            assert!(!log.contains("panicked"), "the server panicked:\n{log}");
        }
    }
}

fn listen_port(line: &str) -> Option<u16> {
    let at = line.find("listen=")? + "listen=".len();
    let addr: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    addr.rsplit(':').next()?.parse().ok()
}

/// A raw HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header lines, names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Connect to 127.0.0.1:`port`, write `request`, read until EOF (at most 20 s), parse.
pub fn raw_request(port: u16, request: &[u8]) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    parse_response(&bytes).unwrap_or_else(|| {
        panic!(
            "no HTTP response to {:?}: {:?}",
            String::from_utf8_lossy(&request[..request.len().min(200)]),
            String::from_utf8_lossy(&bytes)
        )
    })
}

/// Parse one HTTP/1.1 response (Content-Length, chunked, or until EOF), after any interim 1xx answers.
pub fn parse_response(bytes: &[u8]) -> Option<Response> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    if (100..200).contains(&status) {
        // An interim answer (100 Continue): the real one follows.
        return parse_response(&bytes[head_end + 4..]);
    }
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &bytes[head_end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        let mut body = Vec::new();
        let mut at = 0;
        loop {
            let line_end = at + rest[at..].windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[at..line_end]).ok()?.trim(), 16)
                    .ok()?;
            at = line_end + 2;
            if size == 0 {
                break;
            }
            body.extend_from_slice(rest.get(at..at + size)?);
            at += size + 2;
        }
        body
    } else if let Some(len) = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        rest.get(..len)?.to_vec()
    } else {
        rest.to_vec()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

/// Every sample file (not INDEX.md), sorted by name.
pub fn sample_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(SAMPLES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "samples missing in {SAMPLES}");
    files
}

/// A sample as a terminal would send it (see `CapturedRequest::to_terminal_bytes`), addressed to our server.
pub fn terminal_bytes(captured: &zk_push::sample::CapturedRequest, port: u16) -> Vec<u8> {
    captured.to_terminal_bytes(&format!("127.0.0.1:{port}"))
}

/// Read and parse a sample by file name.
pub fn sample(name: &str) -> zk_push::sample::CapturedRequest {
    let bytes = std::fs::read(Path::new(SAMPLES).join(name)).unwrap();
    zk_push::sample::parse_captured_request(&bytes).unwrap()
}

/// Open the server's database directly.
pub fn sqlite(db: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}
