//! The push path of an ATTLOG upload, from the body's bytes to the bound SQLite row (issue 6): a realistic
//! 100-line body (the three line shapes of `../shared/samples/push/`: 7 columns as in `att03`, 7 columns with an
//! empty work code and a trailing TAB as in `fld02`, 10 columns with a trailing TAB as in `fld09`), one terminal
//! in `Europe/Berlin`, parsed the way `sources/push.rs` parses it ([`punchd::limits::parse_attlog_in_runs`]),
//! ingested ([`punchd::ingest::Ingest::ingest`]) and written to a fresh SQLite store through its public API.
//! Every round shifts the body by a day, so every punch is new to the store.
//!
//! Made for callgrind's instruction counts, which do not depend on the machine's load: the stages are separate
//! functions (`parse_body`; `Ingest::ingest`, whose async body is inlined into the `block_on` that polls it, so
//! it is read as the lines of `ingest.rs` there; and on the store's writer thread `write_batch_on`, into which
//! the punch statements and their binding are inlined), read with `callgrind_annotate --inclusive=yes`. The
//! server's allocator (jemalloc) is used, as in the binary. Run (BENCHMARKS.md, "ATTLOG path: instructions per line"):
//!
//! ```sh
//! cargo bench -p punchd --bench attlog_path --no-run
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/attlog.cg target/release/deps/attlog_path-<hash> 200
//! callgrind_annotate --inclusive=yes /tmp/attlog.cg | grep -E 'parse_body \[|write_batch_on \[|ingest.rs:tokio'
//! ```
//!
//! The argument is the number of rounds (default 200); `--bench` (what `cargo bench` passes) is ignored.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime, TimeDelta, Utc};
use punchd::domain::{DeviceSn, Source};
use punchd::ingest::{Delivery, Ingest, PunchRecord};
use punchd::limits::LimitsConfig;
use punchd::metrics::Metrics;
use punchd::store::sqlite::{Durability, SqliteStore};
use punchd::store::{Batch, LineIssue, RawEntry};

#[cfg(target_os = "linux")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Lines per body: the "100 per POST" of the profile.
const LINES: usize = 100;

/// The body of round `round`: [`LINES`] punches of 20 employees, 37 s apart, on day `round` after 2026-01-05.
fn body(round: usize) -> Vec<u8> {
    let start = NaiveDate::from_ymd_opt(2026, 1, 5)
        .and_then(|d| d.and_hms_opt(7, 0, 0))
        .expect("valid start")
        + TimeDelta::days(round as i64);
    let mut out = String::new();
    for i in 0..LINES {
        let pin = 1001 + i % 20;
        let time = (start + TimeDelta::seconds(37 * i as i64)).format("%Y-%m-%d %H:%M:%S");
        let line = match i % 3 {
            0 => format!("{pin}\t{time}\t0\t1\t0\t0\t0\n"),
            1 => format!("{pin}\t{time}\t1\t1\t\t0\t0\t\n"),
            _ => format!("{pin}\t{time}\t255\t15\t0\t0\t0\t255\t0\t0\t\n"),
        };
        out.push_str(&line);
    }
    out.into_bytes()
}

/// What `sources/push.rs` does with an ATTLOG body before ingest.
#[inline(never)]
fn parse_body(body: &[u8], limits: &LimitsConfig) -> (Vec<PunchRecord>, Vec<LineIssue>) {
    punchd::limits::parse_attlog_in_runs(body, limits).expect("within the limits")
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or(200, |a| a.parse().expect("rounds: a number"));
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        SqliteStore::open(&dir.path().join("attlog.db"), Durability::CrashSafe).expect("open");
    let ingest = Ingest::new(Arc::new(store), Arc::new(Metrics::new()));
    let sn = DeviceSn::parse("BENCHATT0001").expect("sn");
    let time_zone: chrono_tz::Tz = "Europe/Berlin".parse().expect("zone");
    let limits = LimitsConfig::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bodies: Vec<Vec<u8>> = (0..rounds).map(body).collect();
    let mut n_stored = 0usize;
    for body in bodies {
        let (punches, errors) = parse_body(black_box(&body), &limits);
        assert_eq!((punches.len(), errors.len()), (LINES, 0));
        let received_at: chrono::DateTime<Utc> = NaiveDateTime::default().and_utc();
        let batch = Batch::new(RawEntry {
            received_at,
            device_sn: Some(sn.clone()),
            source: Source::Push,
            kind: "ATTLOG".to_owned(),
            request: "POST /iclock/cdata?SN=BENCHATT0001&table=ATTLOG&Stamp=9999 HTTP/1.1"
                .to_owned(),
            remote_addr: None,
            body,
            errors,
        });
        let delivery = Delivery {
            device_sn: sn.clone(),
            time_zone,
            source: Source::Push,
            punches,
            batch,
        };
        let outcome = runtime.block_on(ingest.ingest(delivery)).expect("stored");
        n_stored += outcome.n_stored;
    }
    assert_eq!(n_stored, rounds * LINES);
    println!("{rounds} rounds of {LINES} lines stored");
}
