//! Issue 6, "Resources", command results: a `devicecmd` body of any shape (up to 16 MiB) costs a bounded amount of
//! memory and of stored text (results applied per request, fields kept per result, content kept in the result),
//! while the raw journal keeps the bytes whole. Asserted on what the server stored and on its peak memory.

use crate::harness::{sqlite, Server};

const MIB_16: usize = 16 * 1024 * 1024;

/// Peak resident memory of the server process so far (VmHWM), bytes.
fn peak_rss(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// (body length, errors JSON) of the newest devicecmd journal entry.
fn last_devicecmd(server: &Server) -> (usize, Vec<serde_json::Value>) {
    let (len, errors): (i64, Option<String>) = sqlite(&server.db)
        .query_row(
            "SELECT length(body), errors FROM journal WHERE kind = 'devicecmd' ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let errors = errors
        .map(|e| serde_json::from_str(&e).unwrap())
        .unwrap_or_default();
    (len as usize, errors)
}

#[test]
fn devicecmd_bodies_of_many_results_fields_or_16_mib_apply_a_bounded_number_of_results_fields_and_content(
) {
    let server = Server::start();
    assert_eq!(
        server
            .attlog("CMDMEM1", "1\t2024-06-01 08:00:00\t0\t1\n")
            .text(),
        "OK:1"
    );
    let before = peak_rss(&server);

    // 1. 4 MiB of one-line results (160,000): at most max_lines_per_request (10,000) are applied, the rest are
    //    line errors, of which 100 are recorded and the others counted. (4 MiB, not 16: a debug build reads
    //    16 MiB of results in more than the harness's 20 s read timeout on a loaded machine.)
    let mut body = String::with_capacity(MIB_16 / 4);
    let mut n = 0usize;
    loop {
        let line = format!("ID={}&Return=0&CMD=DATA\n", n + 1);
        if body.len() + line.len() > MIB_16 / 4 {
            break;
        }
        body.push_str(&line);
        n += 1;
    }
    let r = server.iclock("POST", "/iclock/devicecmd?SN=CMDMEM1", body.as_bytes());
    assert_eq!((r.status, r.text()), (200, "OK".to_owned()));
    let (len, errors) = last_devicecmd(&server);
    assert_eq!(len, body.len());
    assert_eq!(errors.len(), 101);
    assert_eq!(errors[0]["line"], "ID=10001&Return=0&CMD=DATA");
    assert_eq!(
        errors[0]["reason"],
        "more than 10000 command results in one request (max_lines_per_request); not applied"
    );
    assert_eq!(
        errors[100]["reason"],
        format!(
            "{} more line errors not recorded ({} in all; at most 100 are recorded per request)",
            n - 10_100,
            n - 10_000
        )
    );

    // 2. One INFO result with 1.6 M fields: 1,024 are kept (and merged into the device's info).
    let mut body = String::from("ID=1\nReturn=0\nCMD=INFO\n");
    let mut k = 0usize;
    while body.len() < MIB_16 - 32 {
        body.push_str(&format!("K{k}=v\n"));
        k += 1;
    }
    let r = server.iclock("POST", "/iclock/devicecmd?SN=CMDMEM1", body.as_bytes());
    assert_eq!((r.status, r.text()), (200, "OK".to_owned()));
    assert_eq!(last_devicecmd(&server).0, body.len());
    let info: serde_json::Value = serde_json::from_str(
        &sqlite(&server.db)
            .query_row("SELECT info FROM devices WHERE sn = 'CMDMEM1'", [], |r| {
                r.get::<_, String>(0)
            })
            .unwrap(),
    )
    .unwrap();
    assert_eq!(info["K1023"], "v");
    assert!(
        info.get("K1024").is_none(),
        "{}",
        info.as_object().unwrap().len()
    );

    // 3. A Shell result whose content is 16 MiB: the journal keeps it whole.
    let mut body = b"ID=1&Return=0&CMD=Shell&Content=".to_vec();
    body.resize(MIB_16 - 64, b'o');
    let r = server.iclock("POST", "/iclock/devicecmd?SN=CMDMEM1", &body);
    assert_eq!((r.status, r.text()), (200, "OK".to_owned()));
    assert_eq!(last_devicecmd(&server).0, body.len());

    // A terminal is served right after. Each request cost a small multiple of its size: the peak grew by less
    // than 4 × 16 MiB over the server's peak before them (the body, SQLite's copy of it, the page cache), and the
    // whole process (a debug build: ~33 MB of it are the binary's own pages) stayed under 128 MB.
    assert_eq!(
        server
            .attlog("CMDMEM1", "2\t2024-06-01 08:01:00\t0\t1\n")
            .text(),
        "OK:1"
    );
    let peak = peak_rss(&server);
    assert!(
        peak - before < 64 * 1024 * 1024,
        "peak RSS {peak} bytes, {before} before the requests"
    );
    assert!(peak < 128 * 1024 * 1024, "peak RSS {peak} bytes");
}
