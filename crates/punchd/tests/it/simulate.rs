//! `punchd simulate` and `punchd pull` as a new user meets them (issue 6): a push simulator pointed at nothing,
//! flags that do not apply, the pull simulator's SN, the pyzk command it prints, `punchd pull | head`, and
//! the timeout message.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::harness::punchd_command;

/// A free loopback port (nothing listens on it once this returns).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `punchd simulate pull` on 127.0.0.1 port 0, killed when dropped.
struct PullSim {
    child: Child,
    addr: SocketAddr,
    stdout: Vec<String>,
}

impl PullSim {
    fn start(args: &[&str], envs: &[(&str, &str)]) -> PullSim {
        let mut command = punchd_command();
        command
            .args(["simulate", "pull", "--bind", "127.0.0.1", "--port", "0"])
            .args(["--users", "3", "--punches", "3000", "--templates", "1"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stdout = Vec::new();
        // Everything up to "Ctrl-C stops it." is printed at once after binding.
        for line in lines.by_ref() {
            let line = line.unwrap();
            let done = line.starts_with("Ctrl-C");
            stdout.push(line);
            if done {
                break;
            }
        }
        let first = stdout.first().cloned().unwrap_or_default();
        let addr = first
            .split(" on ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                let mut err = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                panic!("no address in {stdout:?}; stderr: {err}")
            });
        PullSim {
            child,
            addr,
            stdout,
        }
    }
}

impl Drop for PullSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pull_json(addr: SocketAddr) -> serde_json::Value {
    let out = punchd_command()
        .args(["pull", "127.0.0.1", "--port", &addr.port().to_string()])
        .args(["--format", "json", "--time-zone", "UTC"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn simulate_push_against_a_closed_port_fails_fast_and_says_why() {
    let port = closed_port();
    let started = Instant::now();
    let mut child = punchd_command()
        .args(["simulate", "push", "--server"])
        .arg(format!("http://127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It used to retry silently for ever.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("punchd simulate push against a closed port still runs after 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "exit status {status}: {stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot reach the server at 127.0.0.1:{port}: connection refused"
        )),
        "{stderr}"
    );
}

#[test]
fn simulate_rejects_global_flags_that_do_not_apply() {
    for args in [
        &["--listen", "127.0.0.1:9", "simulate", "pull"][..],
        &["simulate", "pull", "--listen", "127.0.0.1:9"][..],
        &["simulate", "pull", "--database", "x.db"][..],
        &[
            "simulate",
            "push",
            "--server",
            "http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:9",
        ][..],
    ] {
        let out = punchd_command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            stderr.contains("does not apply to `punchd simulate"),
            "{args:?}: {stderr}"
        );
    }
}

/// `--sn` sets the SN a client reads; a `PUNCHD_LISTEN` set for the server does not stop the simulator;
/// without `--sn` the SN is not the push simulator's first SN.
#[test]
fn simulate_pull_serves_the_sn_given_and_ignores_punchd_variables() {
    let sim = PullSim::start(
        &["--sn", "GATE000000042"],
        &[("PUNCHD_LISTEN", "127.0.0.1:1")],
    );
    assert!(sim.stdout[0].contains("GATE000000042"), "{:?}", sim.stdout);
    let read = pull_json(sim.addr);
    assert_eq!(read["device"]["serial_number"], "GATE000000042");
    assert_eq!(read["attendance"].as_array().unwrap().len(), 3000);

    let other = PullSim::start(&[], &[]);
    let read = pull_json(other.addr);
    let sn = read["device"]["serial_number"].as_str().unwrap().to_owned();
    assert!(sn.starts_with("SIMPULL") && sn.len() == 13, "{sn}");
    assert_ne!(sn, "SIM0000000001");
}

/// The pyzk line the simulator prints works on a machine without `ping` (pyzk pings first unless told not
/// to). Needs pyzk (SKIPPED without it, except in CI).
#[test]
fn the_printed_pyzk_command_works_without_ping() {
    let python = std::process::Command::new("python3")
        .args(["-c", "import zk, sys; print(sys.executable)"])
        .output();
    let python = match python {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "pyzk not importable in CI (pip install pyzk)"
            );
            println!("SKIPPED: pyzk not importable (pip install pyzk)");
            return;
        }
    };
    let sim = PullSim::start(&[], &[]);
    let line = sim
        .stdout
        .iter()
        .find(|l| l.trim_start().starts_with("python3 -c"))
        .unwrap_or_else(|| panic!("no pyzk line in {:?}", sim.stdout))
        .trim()
        .to_owned();
    // A PATH with python3 and nothing else: no ping.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&python, bin.path().join("python3")).unwrap();
    let out = std::process::Command::new("/bin/sh")
        .args(["-c", &line])
        .env("PATH", bin.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{line}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "3 3000");
}

/// `punchd pull … | head`: the reader leaves early; punchd stops quietly with success.
#[test]
fn punchd_pull_into_a_closed_pipe_exits_quietly() {
    let sim = PullSim::start(&[], &[]);
    let mut child = punchd_command()
        .args(["pull", "127.0.0.1", "--port", &sim.addr.port().to_string()])
        .args(["--format", "csv", "--time-zone", "UTC"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut header = String::new();
        stdout.read_line(&mut header).unwrap();
        assert!(header.starts_with("pin,"), "{header}");
        // Dropped here: like `head -1`, the rest (3000 rows, more than a pipe holds) has no reader.
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        !stderr.contains("Broken pipe") && !stderr.contains("punchd:"),
        "{stderr}"
    );
    assert!(status.success(), "{status}: {stderr}");
}

/// A terminal that never answers: the message gives the time the whole run waited and the attempts, not
/// only the per-request limit. Takes about 15 s (3 attempts of 5 s).
#[test]
fn punchd_pull_timeout_reports_the_real_wait() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = Instant::now();
    let out = punchd_command()
        .args(["pull", "127.0.0.1", "--udp", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let waited = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let reported: f64 = stderr
        .split("gave up after ")
        .nth(1)
        .and_then(|rest| rest.split(" s ").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no 'gave up after N s' in: {stderr}"));
    assert!(
        reported >= 14.0 && reported <= waited,
        "reported {reported} s, the run took {waited:.1} s: {stderr}"
    );
    assert!(
        stderr.contains("(3 attempts of 5 s per request)"),
        "{stderr}"
    );
    drop(silent);
}
