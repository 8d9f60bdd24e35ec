//! Helpers shared by the in-process tests that run sink workers on a store: a webhook receiver, a punch writer,
//! and a wait for a condition. Compiled for tests only.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveDateTime, Utc};

use crate::domain::{DeviceSn, NewPunch, Pin, PunchState, Source};
use crate::store::{Batch, RawEntry, Store};

/// A webhook receiver that records every idempotency key it is sent.
pub(crate) struct Receiver {
    /// Where to point a webhook sink.
    pub(crate) url: String,
    keys: Arc<Mutex<Vec<String>>>,
}

/// Start one on 127.0.0.1 (an ephemeral port), served by a task of the calling runtime.
pub(crate) async fn receiver() -> Receiver {
    let keys: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = keys.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let batch: crate::sinks::CheckInBatch =
                    serde_json::from_slice(&body).expect("a check-in batch");
                seen.lock()
                    .expect("keys")
                    .extend(batch.checkins.into_iter().map(|c| c.idempotency_key));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, keys }
}

impl Receiver {
    /// The idempotency keys received so far, in arrival order.
    pub(crate) fn keys(&self) -> Vec<String> {
        self.keys.lock().expect("keys").clone()
    }
}

/// 2026-05-04 08:00 plus `minute` minutes, terminal local time.
pub(crate) fn local(minute: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 5, 4)
        .and_then(|d| d.and_hms_opt(8 + minute / 60, minute % 60, 0))
        .expect("test time")
}

/// Store punches `from..to` of device `dev` (one PIN each), ten per batch.
pub(crate) async fn punch(store: &dyn Store, dev: &DeviceSn, from: u32, to: u32) {
    let punches: Vec<NewPunch> = (from..to)
        .map(|i| NewPunch {
            device_sn: dev.clone(),
            pin: Pin(format!("{}", 100 + i)),
            punched_at: local(i),
            time_zone: "UTC".into(),
            punched_at_utc: local(i).and_utc(),
            punch_state: Some(PunchState::from_code(0)),
            verify_mode: None,
            work_code: None,
            extra: Vec::new(),
            source: Source::Push,
        })
        .collect();
    for chunk in punches.chunks(10) {
        let mut batch = Batch::new(RawEntry {
            received_at: Utc::now(),
            device_sn: Some(dev.clone()),
            source: Source::Push,
            kind: "ATTLOG".into(),
            request: "POST /iclock/cdata".into(),
            remote_addr: None,
            body: b"test".to_vec(),
            errors: Vec::new(),
        });
        batch.punches = chunk.to_vec();
        let outcome = store.write_batch(batch).await.expect("batch");
        assert_eq!(outcome.n_stored, chunk.len());
    }
}

/// Wait (up to 60 s) until `f` answers `Some`.
pub(crate) async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: not within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
