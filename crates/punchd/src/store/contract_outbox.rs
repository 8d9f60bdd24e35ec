//! The outbox contract ([`super::outbox::OutboxStore`]), written against `&dyn Store` so the PostgreSQL backend
//! runs the same checks: one event per newly stored punch (none for a re-sent one, none while no sink exists),
//! sinks take events in order past their cursor, outcomes move deliveries, parked events are retried and
//! replayed, and a sink created with a start date gets the older punches too, while one created without gets
//! none of them.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::outbox::{NewSink, Outcome, ParkKind, SinkKind};
use super::{Batch, RawEntry, Store, StoreError};
use crate::domain::{DeviceSn, NewPunch, Pin, PunchState, Source};

fn sn(s: &str) -> DeviceSn {
    DeviceSn::parse(s).expect("test SN")
}

fn local(day: u32, h: u32, m: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2025, 6, day)
        .and_then(|d| d.and_hms_opt(h, m, 0))
        .expect("test time")
}

fn instant(secs_after: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_750_000_000 + secs_after, 0)
        .single()
        .expect("test instant")
}

fn batch(device: &DeviceSn, punches: &[(&str, NaiveDateTime, u16)], at: DateTime<Utc>) -> Batch {
    let mut batch = Batch::new(RawEntry {
        received_at: at,
        device_sn: Some(device.clone()),
        source: Source::Push,
        kind: "ATTLOG".into(),
        request: "POST /iclock/cdata".into(),
        remote_addr: None,
        body: b"lines".to_vec(),
        errors: Vec::new(),
    });
    batch.punches = punches
        .iter()
        .map(|(pin, t, state)| NewPunch {
            device_sn: device.clone(),
            pin: Pin((*pin).to_owned()),
            punched_at: *t,
            time_zone: "UTC".into(),
            punched_at_utc: DateTime::from_naive_utc_and_offset(*t, Utc),
            punch_state: Some(PunchState::from_code(*state)),
            verify_mode: None,
            work_code: None,
            extra: Vec::new(),
            source: Source::Push,
        })
        .collect();
    batch
}

fn new_sink(name: &str, since: Option<DateTime<Utc>>) -> NewSink {
    NewSink {
        name: name.into(),
        kind: SinkKind::Webhook,
        config: serde_json::json!({"url": "http://127.0.0.1:9/"}),
        since,
    }
}

/// Take what sink `sink_id` has past its cursor (at `now`), then the PINs of its pending events, sorted: what it
/// owes, whichever side of the cursor a store wrote an event on.
pub(crate) async fn owed_pins(store: &dyn Store, sink_id: i64, now: DateTime<Utc>) -> Vec<String> {
    store.take_events(sink_id, 100, now).await.expect("take");
    let mut pins: Vec<String> = store
        .pending_events(sink_id, None, 100)
        .await
        .expect("pending")
        .into_iter()
        .map(|e| e.punch.pin.0)
        .collect();
    pins.sort();
    pins
}

/// Run every outbox check against `store` (a fresh store: the checks count events).
pub(crate) async fn run_all(store: &dyn Store) {
    let dev = sn("OUTBOX-1");
    // No sink: punches are stored, no events written.
    store
        .write_batch(batch(&dev, &[("1", local(1, 8, 0), 0)], instant(0)))
        .await
        .expect("batch");
    let a = store
        .create_sink(new_sink("a", None), instant(1))
        .await
        .expect("create a");
    assert_eq!(
        store
            .take_events(a.id, 100, instant(1))
            .await
            .expect("take"),
        0
    );
    assert!(matches!(
        store.create_sink(new_sink("a", None), instant(1)).await,
        Err(StoreError::Conflict(_))
    ));

    // With a sink: one event per NEW punch; the re-sent punch in the second batch gets none.
    store
        .write_batch(batch(
            &dev,
            &[("2", local(1, 9, 0), 0), ("3", local(1, 9, 1), 1)],
            instant(2),
        ))
        .await
        .expect("batch");
    let outcome = store
        .write_batch(batch(
            &dev,
            &[("2", local(1, 9, 0), 0), ("4", local(1, 9, 2), 0)],
            instant(3),
        ))
        .await
        .expect("batch");
    assert_eq!((outcome.n_stored, outcome.n_duplicate), (1, 1));
    let counts = store.sink_counts(a.id).await.expect("counts");
    assert_eq!(
        (counts.pending, counts.oldest_pending_at),
        (3, Some(instant(2)))
    );
    assert_eq!(
        store.take_events(a.id, 2, instant(4)).await.expect("take"),
        2
    );
    assert_eq!(
        store
            .take_events(a.id, 100, instant(4))
            .await
            .expect("take"),
        1
    );
    let events = store
        .pending_events(a.id, None, 100)
        .await
        .expect("pending");
    let pins: Vec<&str> = events.iter().map(|e| e.punch.pin.as_str()).collect();
    assert_eq!(pins, ["2", "3", "4"], "event order is store order");
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));

    // Outcomes: delivered with a reference, retried later, parked as unmapped.
    let later = instant(600);
    store
        .record_outcomes(
            a.id,
            vec![
                (
                    events[0].id,
                    Outcome::Delivered(Some("EMP-CKIN-06-2025-000001".into())),
                ),
                (
                    events[1].id,
                    Outcome::Retry {
                        at: later,
                        error: "HTTP 502".into(),
                    },
                ),
                (
                    events[2].id,
                    Outcome::Parked {
                        kind: ParkKind::Unmapped,
                        reason: "No Employee found".into(),
                    },
                ),
            ],
            instant(5),
        )
        .await
        .expect("record");
    let counts = store.sink_counts(a.id).await.expect("counts");
    assert_eq!(
        (
            counts.pending,
            counts.delivered,
            counts.failed,
            counts.parked
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(
        store
            .remote_ref(a.id, events[0].id)
            .await
            .expect("ref")
            .as_deref(),
        Some("EMP-CKIN-06-2025-000001")
    );
    let waiting = store
        .pending_events(a.id, None, 100)
        .await
        .expect("pending");
    assert_eq!(
        (
            waiting.len(),
            waiting[0].attempts,
            waiting[0].next_attempt_at
        ),
        (1, 1, later)
    );
    // Only the due ones when asked: the retry is due at `later`, not before.
    let before = later - chrono::Duration::milliseconds(1);
    assert_eq!(
        store
            .pending_events(a.id, Some(before), 100)
            .await
            .expect("due")
            .len(),
        0
    );
    let due = store
        .pending_events(a.id, Some(later), 100)
        .await
        .expect("due");
    assert_eq!(
        due.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![waiting[0].id]
    );
    let parked = store.parked_events(a.id, 10).await.expect("parked");
    assert_eq!(
        (parked[0].pin.as_str(), parked[0].kind),
        ("4", ParkKind::Unmapped)
    );

    // Retry only the unmapped: parked → pending with a fresh budget; nothing dropped.
    assert_eq!(
        store
            .retry_sink("a", Some(ParkKind::Unmapped), instant(6))
            .await
            .expect("retry"),
        1
    );
    let counts = store.sink_counts(a.id).await.expect("counts");
    assert_eq!((counts.pending, counts.parked), (2, 0));

    // Replay from a date: the punch stored before any sink existed gets its event, delivered ones go again.
    let n = store
        .replay_sink(
            "a",
            DateTime::from_naive_utc_and_offset(local(1, 0, 0), Utc),
            instant(7),
        )
        .await
        .expect("replay");
    assert_eq!(
        n, 4,
        "3 events up to the cursor set pending again, 1 written"
    );
    // Where the store wrote the new event past the cursor (PostgreSQL) the worker takes it; SQLite keeps an event
    // under its punch's id, below the cursor, and set it pending with the others.
    assert_eq!(
        owed_pins(store, a.id, instant(7)).await,
        ["1", "2", "3", "4"]
    );
    let counts = store.sink_counts(a.id).await.expect("counts");
    assert_eq!((counts.pending, counts.delivered), (4, 0));

    // A sink created with a start date: older punches from that date, not before.
    store
        .write_batch(batch(&dev, &[("5", local(20, 8, 0), 0)], instant(8)))
        .await
        .expect("batch");
    let b = store
        .create_sink(
            new_sink(
                "b",
                Some(DateTime::from_naive_utc_and_offset(local(1, 9, 0), Utc)),
            ),
            instant(9),
        )
        .await
        .expect("create b");
    assert_eq!(
        store
            .take_events(b.id, 100, instant(9))
            .await
            .expect("take"),
        4
    );
    let pins: Vec<String> = store
        .pending_events(b.id, None, 100)
        .await
        .expect("pending")
        .into_iter()
        .map(|e| e.punch.pin.0)
        .collect();
    assert_eq!(pins, ["2", "3", "4", "5"]);

    // Pause and delete.
    store
        .set_sink_paused("b", true, Some("HTTP 401".into()))
        .await
        .expect("pause");
    let b = store.get_sink("b").await.expect("get");
    assert!(b.paused && b.pause_reason.as_deref() == Some("HTTP 401"));
    store.delete_sink("b").await.expect("delete");
    assert!(matches!(
        store.get_sink("b").await,
        Err(StoreError::NotFound(_))
    ));
}

/// The fast path (`peek_events` / `record_peeked`), on a fresh store; a store without one (`peek_events` answers
/// `None`) must refuse `record_peeked`.
pub(crate) async fn run_fast_path(store: &dyn Store) {
    let dev = sn("OUTBOX-FAST");
    let a = store
        .create_sink(new_sink("fast-a", None), instant(0))
        .await
        .expect("create a");
    if store
        .peek_events(a.id, None, 10)
        .await
        .expect("peek")
        .is_none()
    {
        // No fast path: recording a peeked round is refused, and the cursor stays (the take path still works).
        assert!(store
            .record_peeked(a.id, 0, 5, Vec::new(), Vec::new(), instant(0))
            .await
            .is_err());
        assert_eq!(store.sink_counts(a.id).await.expect("counts").pending, 0);
        return;
    }
    let b = store
        .create_sink(
            new_sink(
                "fast-b",
                Some(DateTime::from_naive_utc_and_offset(local(1, 9, 0), Utc)),
            ),
            instant(0),
        )
        .await
        .expect("create b");
    store
        .write_batch(batch(
            &dev,
            &[
                ("1", local(1, 8, 0), 0),
                ("2", local(1, 9, 0), 0),
                ("3", local(1, 9, 1), 1),
                ("4", local(1, 9, 2), 0),
            ],
            instant(1),
        ))
        .await
        .expect("batch");

    // b starts at 9:00: the 8:00 punch is passed over, not returned; the cursor moves past it all the same.
    let peeked = store
        .peek_events(b.id, None, 2)
        .await
        .expect("peek")
        .expect("fast path");
    let pins: Vec<&str> = peeked.events.iter().map(|e| e.punch.pin.as_str()).collect();
    assert_eq!(pins, ["2"]);
    let e = &peeked.events[0];
    assert_eq!(
        (e.attempts, e.next_attempt_at, e.created_at),
        (0, instant(1), instant(1))
    );
    assert_eq!(peeked.through, e.id);
    // A read-ahead of the next round, while this one is still out: it starts where this one ends, and recording
    // it before this one is refused (the cursor is not there yet) and writes nothing.
    let ahead = store
        .peek_events(b.id, Some(peeked.through), 10)
        .await
        .expect("read-ahead")
        .expect("fast path");
    let ahead_pins: Vec<&str> = ahead.events.iter().map(|e| e.punch.pin.as_str()).collect();
    assert_eq!((ahead.from, ahead_pins), (peeked.through, vec!["3", "4"]));
    let ahead_outcomes: Vec<(i64, Outcome)> = ahead
        .events
        .iter()
        .map(|e| (e.id, Outcome::Delivered(None)))
        .collect();
    assert!(!store
        .record_peeked(
            b.id,
            ahead.from,
            ahead.through,
            ahead_outcomes.clone(),
            Vec::new(),
            instant(2)
        )
        .await
        .expect("record out of order"));
    assert_eq!(store.sink_counts(b.id).await.expect("counts").delivered, 0);
    assert!(store
        .record_peeked(
            b.id,
            peeked.from,
            peeked.through,
            vec![(e.id, Outcome::Delivered(None))],
            Vec::new(),
            instant(2)
        )
        .await
        .expect("record"));
    let counts = store.sink_counts(b.id).await.expect("counts");
    assert_eq!(
        (counts.pending, counts.delivered, counts.parked),
        (2, 1, 0),
        "delivered without a row counts as delivered; 3 and 4 wait past the cursor"
    );
    // Now the cursor is where the read-ahead started: it is recorded like any round.
    assert!(store
        .record_peeked(
            b.id,
            ahead.from,
            ahead.through,
            ahead_outcomes,
            Vec::new(),
            instant(2)
        )
        .await
        .expect("record the read-ahead"));
    let counts = store.sink_counts(b.id).await.expect("counts");
    assert_eq!((counts.pending, counts.delivered, counts.parked), (0, 3, 0));

    // a: one of each outcome, and one held back.
    let peeked = store
        .peek_events(a.id, None, 10)
        .await
        .expect("peek")
        .expect("fast path");
    let ids: Vec<i64> = peeked.events.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 4);
    let later = instant(600);
    assert!(store
        .record_peeked(
            a.id,
            peeked.from,
            peeked.through,
            vec![
                (ids[0], Outcome::Delivered(None)),
                (ids[1], Outcome::Delivered(Some("EMP-CKIN-1".into()))),
                (
                    ids[2],
                    Outcome::Retry {
                        at: later,
                        error: "HTTP 502".into()
                    }
                ),
            ],
            vec![ids[3]],
            instant(3),
        )
        .await
        .expect("record"));
    let counts = store.sink_counts(a.id).await.expect("counts");
    assert_eq!(
        (
            counts.pending,
            counts.failed,
            counts.delivered,
            counts.parked
        ),
        (2, 1, 2, 0)
    );
    assert_eq!(
        store
            .remote_ref(a.id, ids[1])
            .await
            .expect("ref")
            .as_deref(),
        Some("EMP-CKIN-1")
    );
    assert_eq!(store.remote_ref(a.id, ids[0]).await.expect("ref"), None);
    let waiting: Vec<(i64, u32, DateTime<Utc>)> = store
        .pending_events(a.id, None, 10)
        .await
        .expect("pending")
        .iter()
        .map(|e| (e.id, e.attempts, e.next_attempt_at))
        .collect();
    assert_eq!(
        waiting,
        vec![(ids[2], 1, later), (ids[3], 0, instant(3))],
        "the retry backs off; the held one is due at once, attempts untouched"
    );
    let again = store
        .peek_events(a.id, None, 10)
        .await
        .expect("peek")
        .expect("fast path");
    assert_eq!(
        (again.events.len(), again.from, again.through),
        (0, ids[3], ids[3])
    );

    // A stale round (the cursor moved under it): its peeked outcomes are not written.
    assert!(!store
        .record_peeked(
            a.id,
            peeked.from,
            peeked.through,
            vec![(
                ids[0],
                Outcome::Parked {
                    kind: ParkKind::Rejected,
                    reason: "stale".into()
                }
            )],
            Vec::new(),
            instant(4),
        )
        .await
        .expect("record"));
    assert_eq!(store.sink_counts(a.id).await.expect("counts").parked, 0);

    // Taken events' outcomes go through the same call.
    assert!(store
        .record_peeked(
            a.id,
            ids[3],
            ids[3],
            vec![
                (ids[2], Outcome::Delivered(None)),
                (
                    ids[3],
                    Outcome::Parked {
                        kind: ParkKind::Rejected,
                        reason: "HTTP 422".into()
                    }
                ),
            ],
            Vec::new(),
            instant(5),
        )
        .await
        .expect("record"));
    let counts = store.sink_counts(a.id).await.expect("counts");
    assert_eq!((counts.pending, counts.delivered, counts.parked), (0, 3, 1));
    // Replay sets them all pending again, rows written for the ones delivered without one.
    assert_eq!(
        store
            .replay_sink(
                "fast-a",
                DateTime::from_naive_utc_and_offset(local(1, 0, 0), Utc),
                instant(6)
            )
            .await
            .expect("replay"),
        4
    );
    let counts = store.sink_counts(a.id).await.expect("counts");
    assert_eq!((counts.pending, counts.delivered), (4, 0));
}

/// A sink made without a start date gets the punches stored after it, and only those, even when a later sink's
/// start date writes events for punches stored before it (README, "sinks": "without `--since`, a new sink gets
/// every punch acknowledged after `sinks add` returns"); after a replay from a date, the punches from that date,
/// and still none older. On a fresh store.
pub(crate) async fn run_start_dates_apart(store: &dyn Store) {
    let day = |d: u32| DateTime::from_naive_utc_and_offset(local(d, 0, 0), Utc);
    // Stored while no sink exists: no events.
    store_one(store, "0", local(1, 8, 0), instant(0)).await;
    store_one(store, "1", local(2, 8, 0), instant(0)).await;
    let a = store
        .create_sink(new_sink("a", None), instant(1))
        .await
        .expect("create a");
    store_one(store, "2", local(2, 9, 0), instant(2)).await;
    // From the 2nd: punch 1 gets its event now.
    let b = store
        .create_sink(new_sink("b", Some(day(2))), instant(3))
        .await
        .expect("create b");
    store_one(store, "3", local(2, 10, 0), instant(4)).await;
    assert_eq!(
        owed_pins(store, b.id, instant(5)).await,
        ["1", "2", "3"],
        "b: every punch from its start date"
    );
    assert_eq!(
        owed_pins(store, a.id, instant(5)).await,
        ["2", "3"],
        "a: the punches stored after it only, not the one b's start date gave an event"
    );
    assert_eq!(store.sink_counts(a.id).await.expect("counts").pending, 2);

    // Replayed from the 2nd, a owes every punch from then: 1 too.
    assert_eq!(
        store
            .replay_sink("a", day(2), instant(6))
            .await
            .expect("replay"),
        3
    );
    assert_eq!(owed_pins(store, a.id, instant(7)).await, ["1", "2", "3"]);
    // A sink from the 1st gives punch 0 an event: c owes it, a (from the 2nd) still does not.
    let c = store
        .create_sink(new_sink("c", Some(day(1))), instant(8))
        .await
        .expect("create c");
    assert_eq!(
        owed_pins(store, c.id, instant(9)).await,
        ["0", "1", "2", "3"]
    );
    assert_eq!(
        owed_pins(store, a.id, instant(9)).await,
        ["1", "2", "3"],
        "a: nothing from before the date it was replayed from"
    );
    assert_eq!(store.sink_counts(a.id).await.expect("counts").pending, 3);
}

/// Store one punch of PIN `pin` at `t` (terminal OUTBOX-2), received at `at`.
async fn store_one(store: &dyn Store, pin: &str, t: NaiveDateTime, at: DateTime<Utc>) {
    store
        .write_batch(batch(&sn("OUTBOX-2"), &[(pin, t, 0)], at))
        .await
        .expect("batch");
}

mod tests {
    use crate::store::sqlite::{Durability, SqliteStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_outbox_fast_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            SqliteStore::open(&dir.path().join("outbox.db"), Durability::PowerSafe).expect("open");
        super::run_fast_path(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_outbox_keeps_the_contract() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            SqliteStore::open(&dir.path().join("outbox.db"), Durability::PowerSafe).expect("open");
        super::run_all(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_sinks_without_a_start_date_get_no_older_punch() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            SqliteStore::open(&dir.path().join("outbox.db"), Durability::PowerSafe).expect("open");
        super::run_start_dates_apart(&store).await;
    }
}
