//! The web UI in a real browser (issue 11): `punchd serve` on a temp SQLite file under manual approval, a
//! simulated push fleet, accounts made with `punchd ui-users add`, then `node tests/browser/run.mjs` drives
//! Debian's Chromium through every scenario in `tests/browser/scenarios/` (axe-core on every page). Afterwards
//! the stored data is checked: the approved terminal is approved and its punches are stored, the viewer's
//! forged command was not queued, the admin's was; the command queued for the pending terminal was cancelled
//! by the admin; the account the admin added is stored, and account changes are in the audit log.
//!
//! Needs `node`, `/usr/bin/chromium` and `npm ci --prefix tests/browser` (`.ci/run` sees to all three); a
//! missing one fails the test with what to install. Screenshots go to `$PUNCHD_UI_SCREENSHOTS` when set (the
//! README's come from `PUNCHD_UI_SCREENSHOTS=docs/screenshots`), else to a temp dir.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{cli, cli_json, punchd_command, Options, Server};

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `punchd ui-users add NAME --role ROLE --password-stdin`, the password on stdin.
fn add_account(db: &Path, name: &str, role: &str, password: &str) {
    let mut child = punchd_command()
        .arg("--database")
        .arg(db)
        .args(["ui-users", "add", name, "--role", role, "--password-stdin"])
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
        "ui-users add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_web_ui_works_in_chromium_with_axe_on_every_page() {
    let browser_dir = repo().join("tests/browser");
    assert!(
        Path::new("/usr/bin/chromium").exists() || std::env::var_os("CHROMIUM").is_some(),
        "Chromium is missing: apt-get install -y chromium chromium-driver (.ci/run does)"
    );
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "the browser test's packages are missing: npm ci --prefix tests/browser (.ci/run does)"
    );

    let server = Server::with(Options {
        time_zone: Some("UTC".into()),
        approval: Some("manual".into()),
        ..Options::default()
    });
    let base = format!("http://127.0.0.1:{}", server.port);

    // Accounts, made as an operator would. A short password is refused before anything is stored.
    let short = punchd_command()
        .arg("--database")
        .arg(&server.db)
        .args([
            "ui-users",
            "add",
            "shorty",
            "--role",
            "viewer",
            "--password-stdin",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!short.status.success());
    let accounts = [
        ("ana", "admin", "ana-admin-password"),
        ("hilde", "hr", "hilde-hr-password"),
        ("vik", "viewer", "vik-viewer-password"),
    ];
    for (name, role, password) in accounts {
        add_account(&server.db, name, role, password);
    }
    let listed = cli_json(&server.db, &["ui-users", "list", "--format", "json"]);
    let roles: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("ana".to_owned(), "admin".to_owned()),
            ("hilde".to_owned(), "hr".to_owned()),
            ("vik".to_owned(), "viewer".to_owned())
        ]
    );

    // Two simulated push terminals; under manual approval they wait in `pending`.
    let first_punch = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    let _fleet = Killed(
        punchd_command()
            .args(["simulate", "push", "--server", &base])
            .args(["--devices", "2", "--sn-prefix", "UIB", "--users", "20"])
            .args(["--punches-per-batch", "2", "--batches", "100000"])
            .args(["--batch-interval-ms", "1000", "--poll-interval-ms", "1000"])
            .args(["--duration-secs", "600", "--first-punch-at", &first_punch])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let (pending_sn, other_sn) = loop {
        let devices = cli_json(&server.db, &["devices", "--format", "json"]);
        let mut pending: Vec<String> = devices
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["approval"] == "pending")
            .map(|d| d["sn"].as_str().unwrap().to_owned())
            .collect();
        pending.sort();
        if pending.len() == 2 {
            break (pending[0].clone(), pending[1].clone());
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the simulated terminals did not register: {devices}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    // A webhook sink for the delivery scenario, pointed at a receiver the scenario runs on a free port.
    let hook_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let hook_url = format!("http://127.0.0.1:{hook_port}/hook");
    let sink = cli(
        &server.db,
        &[
            "sinks",
            "add",
            "webhook",
            "--url",
            &hook_url,
            "--secret",
            "ui-secret",
            "--name",
            "ui-hook",
            "--backoff-ms",
            "200",
            "--backoff-max-secs",
            "1",
        ],
    );
    assert!(sink.ok, "sinks add: {}", sink.stderr);

    let shots = match std::env::var_os("PUNCHD_UI_SCREENSHOTS") {
        Some(dir) => repo().join(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots"),
    };
    let accounts_env = accounts
        .iter()
        .map(|(name, role, password)| format!("{name}:{password}:{role}"))
        .collect::<Vec<_>>()
        .join(",");
    let out = Command::new("node")
        .arg(browser_dir.join("run.mjs"))
        .arg(&base)
        .arg(&shots)
        .env("PUNCHD_UI_ACCOUNTS", accounts_env)
        .env("PUNCHD_UI_PENDING_SN", &pending_sn)
        .env("PUNCHD_UI_OTHER_SN", &other_sn)
        .env("PUNCHD_UI_HOOK_PORT", hook_port.to_string())
        .env("PUNCHD_UI_SINK", "ui-hook")
        .stdin(Stdio::null())
        .output()
        .expect("node runs (install nodejs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains(" passed, 0 failed"),
        "browser scenarios failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        server.log()
    );

    // What the browser did is in the store.
    let device = cli_json(
        &server.db,
        &["devices", "show", &pending_sn, "--format", "json"],
    );
    assert_eq!(device["approval"], "approved", "{device}");
    let others = cli_json(&server.db, &["devices", "--format", "json"]);
    let still_pending = others
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["approval"] == "pending")
        .count();
    assert_eq!(
        still_pending, 1,
        "only the approved terminal changed: {others}"
    );
    let punches = cli(
        &server.db,
        &["punches", "--device", &pending_sn, "--format", "json"],
    );
    assert!(punches.ok, "{}", punches.stderr);
    let punches: serde_json::Value = serde_json::from_str(&punches.stdout).unwrap();
    assert!(
        !punches.as_array().unwrap().is_empty(),
        "the approved terminal's punches are stored"
    );
    let commands = cli_json(
        &server.db,
        &["commands", "--device", &pending_sn, "--format", "json"],
    );
    let kinds: Vec<(String, String)> = commands
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"]["type"].as_str().unwrap_or("").to_owned(),
                c["requested_by"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    // The viewer's forged reboot and the admin's token-less one were refused; the admin's fetch_info was queued
    // in the admin's name.
    assert_eq!(
        kinds,
        [("fetch_info".to_owned(), "ui:ana".to_owned())],
        "{commands}"
    );

    // The restart queued for the pending terminal was cancelled by the admin, not by the viewer's forged POST.
    let commands = cli_json(
        &server.db,
        &["commands", "--device", &other_sn, "--format", "json"],
    );
    let states: Vec<(String, String)> = commands
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"]["type"].as_str().unwrap_or("").to_owned(),
                c["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("reboot".to_owned(), "cancelled".to_owned())],
        "{commands}"
    );
    assert!(
        commands[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("ui:ana"),
        "{commands}"
    );

    // The admin added hanna (hr) in the UI; the viewer's forged admin account was not made. Both the CLI's and
    // the UI's account changes are in the audit log.
    let listed = cli_json(&server.db, &["ui-users", "list", "--format", "json"]);
    let roles: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("ana".to_owned(), "admin".to_owned()),
            ("hanna".to_owned(), "hr".to_owned()),
            ("hilde".to_owned(), "hr".to_owned()),
            ("vik".to_owned(), "viewer".to_owned())
        ]
    );
    let audit = cli_json(&server.db, &["attendance", "audit", "--limit", "0"]);
    let accounts_audit: Vec<(String, String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"]
                .as_str()
                .unwrap_or("")
                .starts_with("ui_account.")
        })
        .map(|e| {
            (
                e["author"].as_str().unwrap_or("").to_owned(),
                e["action"].as_str().unwrap_or("").to_owned(),
                e["subject"].as_str().unwrap_or("").to_owned(),
            )
        })
        .rev()
        .collect();
    let entry = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        accounts_audit,
        [
            entry("cli", "ui_account.add", "ana"),
            entry("cli", "ui_account.add", "hilde"),
            entry("cli", "ui_account.add", "vik"),
            entry("ui:ana", "ui_account.add", "hanna"),
        ],
        "{audit}"
    );
}
