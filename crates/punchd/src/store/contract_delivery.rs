//! The delivery contract ([`super::delivery::DeliveryStore`]), written against `&dyn Store` so every backend runs
//! the same checks: what a sink still owes per device (taken and pending, or not taken yet; delivered and parked
//! events owe nothing), and outbox pruning that deletes only old events every sink has delivered.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::attendance::{AuditRecord, Correction, CorrectionKind, Employee, EmployeeStatus};
use super::delivery::{
    AddedPunch, CorrectionDelivery, Undelivered, VoidedPunch, Withdrawal, WithdrawalStatus,
};
use super::outbox::{NewSink, Outcome, ParkKind, SinkKind};
use super::{Batch, CommandCompletion, RawEntry, Store, StoreError};
use crate::domain::{
    Command, CommandKind, CommandStatus, DeviceSn, NewCommand, NewPunch, Pin, PunchState, Source,
};

fn sn(s: &str) -> DeviceSn {
    DeviceSn::parse(s).expect("test SN")
}

fn local(h: u32, m: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2025, 6, 2)
        .and_then(|d| d.and_hms_opt(h, m, 0))
        .expect("test time")
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

fn instant(secs_after: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_760_000_000 + secs_after, 0)
        .single()
        .expect("test instant")
}

fn batch(device: &DeviceSn, pin: &str, t: NaiveDateTime, at: DateTime<Utc>) -> Batch {
    let mut batch = Batch::new(RawEntry {
        received_at: at,
        device_sn: Some(device.clone()),
        source: Source::Push,
        kind: "ATTLOG".into(),
        request: "POST /iclock/cdata".into(),
        remote_addr: None,
        body: b"line".to_vec(),
        errors: Vec::new(),
    });
    batch.punches = vec![NewPunch {
        device_sn: device.clone(),
        pin: Pin(pin.to_owned()),
        punched_at: t,
        time_zone: "UTC".into(),
        punched_at_utc: utc(t),
        punch_state: Some(PunchState::from_code(0)),
        verify_mode: None,
        work_code: None,
        extra: Vec::new(),
        source: Source::Push,
    }];
    batch
}

fn sink(name: &str) -> NewSink {
    NewSink {
        name: name.into(),
        kind: SinkKind::Webhook,
        config: serde_json::json!({"url": "http://127.0.0.1:9/"}),
        since: None,
    }
}

/// Run every delivery check against `store` (a fresh store: the checks count events).
pub(crate) async fn run_all(store: &dyn Store) {
    let (d1, d2) = (sn("DELIV-1"), sn("DELIV-2"));
    let write = move |d: &DeviceSn, pin: &str, t: NaiveDateTime, at: i64| {
        store.write_batch(batch(d, pin, t, instant(at)))
    };
    write(&d1, "0", local(7, 0), 0).await.expect("batch");
    let a = store.create_sink(sink("a"), instant(1)).await.expect("a");
    write(&d1, "1", local(8, 0), 2).await.expect("batch");
    write(&d1, "2", local(8, 30), 3).await.expect("batch");
    write(&d2, "3", local(9, 0), 4).await.expect("batch");

    // Not taken yet: owed all the same; the punch stored before the sink existed is not.
    let owed = store.undelivered_by_device(a.id).await.expect("owed");
    assert_eq!(
        owed,
        vec![
            Undelivered {
                device_sn: "DELIV-1".into(),
                events: 2,
                oldest_punch_at: utc(local(8, 0)),
            },
            Undelivered {
                device_sn: "DELIV-2".into(),
                events: 1,
                oldest_punch_at: utc(local(9, 0)),
            },
        ]
    );
    assert!(matches!(
        store.undelivered_by_device(a.id + 1000).await,
        Err(StoreError::NotFound(_))
    ));

    // Delivered and parked owe nothing; pending (retrying) still does.
    assert_eq!(
        store
            .take_events(a.id, 100, instant(5))
            .await
            .expect("take"),
        3
    );
    let events = store
        .pending_events(a.id, None, 100)
        .await
        .expect("pending");
    let id_of = |pin: &str| {
        events
            .iter()
            .find(|e| e.punch.pin.as_str() == pin)
            .map(|e| e.id)
            .expect("event")
    };
    store
        .record_outcomes(
            a.id,
            vec![
                (id_of("1"), Outcome::Delivered(Some("EMP-CKIN-1".into()))),
                (
                    id_of("2"),
                    Outcome::Retry {
                        at: instant(600),
                        error: "HTTP 503".into(),
                    },
                ),
                (
                    id_of("3"),
                    Outcome::Parked {
                        kind: ParkKind::Rejected,
                        reason: "refused".into(),
                    },
                ),
            ],
            instant(6),
        )
        .await
        .expect("record");
    assert_eq!(
        store.undelivered_by_device(a.id).await.expect("owed"),
        vec![Undelivered {
            device_sn: "DELIV-1".into(),
            events: 1,
            oldest_punch_at: utc(local(8, 30)),
        }]
    );

    // Voided punches as sink a sees them: delivered (with its name), pending, or never had an event.
    let audit = || AuditRecord {
        author: "hr".into(),
        action: "test".into(),
        subject: "1".into(),
        detail: serde_json::Value::Null,
    };
    store
        .put_employees(
            vec![Employee {
                code: "E1".into(),
                name: "E One".into(),
                status: EmployeeStatus::Active,
                joined_on: None,
                left_on: None,
                site: None,
                department: None,
                default_shift: None,
            }],
            audit(),
        )
        .await
        .expect("employee");
    let all_punches = store
        .punches_between(vec![d1.clone()], utc(local(0, 0)), utc(local(23, 0)))
        .await
        .expect("punches");
    let punch_id = |pin: &str| {
        all_punches
            .iter()
            .find(|p| p.pin.as_str() == pin)
            .map(|p| p.id)
            .expect("punch")
    };
    let mut correction_ids = Vec::new();
    for pin in ["1", "2", "0"] {
        let c = store
            .add_correction(
                Correction {
                    id: 0,
                    employee_code: "E1".into(),
                    day: local(0, 0).date(),
                    kind: CorrectionKind::VoidPunch,
                    punched_at: None,
                    punch_state: None,
                    punch_id: Some(punch_id(pin)),
                    status: None,
                    minutes: None,
                    author: "hr".into(),
                    reason: "wrong".into(),
                    created_at: instant(6),
                },
                audit(),
            )
            .await
            .expect("void");
        correction_ids.push(c.id);
    }
    let voids = store.voids_to_withdraw(a.id, 10).await.expect("voids");
    let view = |v: &VoidedPunch| (v.pin.clone(), v.delivery.clone(), v.remote_ref.clone());
    let expected: Vec<(String, Option<String>, Option<String>)> = vec![
        (
            "1".into(),
            Some("delivered".into()),
            Some("EMP-CKIN-1".into()),
        ),
        ("2".into(), Some("pending".into()), None),
        ("0".into(), None, None),
    ];
    assert_eq!(voids.iter().map(view).collect::<Vec<_>>(), expected);
    assert_eq!(
        (
            voids[0].correction_id,
            voids[0].punch_id,
            voids[0].punched_at,
            voids[0].device_sn.as_str(),
            voids[0].punch_state
        ),
        (
            correction_ids[0],
            punch_id("1"),
            local(8, 0),
            "DELIV-1",
            Some(0)
        )
    );
    let withdrawn = Withdrawal {
        correction_id: correction_ids[0],
        punch_id: punch_id("1"),
        status: WithdrawalStatus::Withdrawn,
        remote_ref: Some("EMP-CKIN-1".into()),
        note: "deleted".into(),
        updated_at: instant(7),
    };
    store
        .record_withdrawal(a.id, withdrawn.clone())
        .await
        .expect("withdrawal");
    store
        .record_withdrawal(a.id, withdrawn.clone())
        .await
        .expect("recorded twice: replaced");
    assert_eq!(
        store.list_withdrawals(a.id).await.expect("list"),
        vec![withdrawn]
    );
    assert_eq!(
        store
            .voids_to_withdraw(a.id, 10)
            .await
            .expect("voids")
            .len(),
        2,
        "recorded ones are not offered again"
    );
    assert_eq!(
        store.voids_to_withdraw(a.id, 1).await.expect("voids").len(),
        1
    );

    // Punches HR added: offered to a sink once, when added after the sink was created (it has no start date).
    let mut added = Vec::new();
    for (at, state, created) in [
        (local(6, 0), Some(0), 0),
        (local(18, 0), Some(1), 6),
        (local(19, 0), None, 7),
    ] {
        let c = store
            .add_correction(
                Correction {
                    id: 0,
                    employee_code: "E1".into(),
                    day: local(0, 0).date(),
                    kind: CorrectionKind::AddPunch,
                    punched_at: Some(at),
                    punch_state: state,
                    punch_id: None,
                    status: None,
                    minutes: None,
                    author: "hr".into(),
                    reason: "forgot to punch".into(),
                    created_at: instant(created),
                },
                audit(),
            )
            .await
            .expect("add punch");
        added.push(c.id);
    }
    let offered = store
        .added_punches_to_deliver(a.id, 10)
        .await
        .expect("added");
    assert_eq!(
        offered,
        vec![
            AddedPunch {
                correction_id: added[1],
                employee_code: "E1".into(),
                punched_at: local(18, 0),
                punch_state: Some(1),
                created_at: instant(6),
            },
            AddedPunch {
                correction_id: added[2],
                employee_code: "E1".into(),
                punched_at: local(19, 0),
                punch_state: None,
                created_at: instant(7),
            }
        ],
        "the one added before sink a existed is not offered"
    );
    let delivered = CorrectionDelivery {
        correction_id: added[1],
        status: "delivered".into(),
        remote_ref: Some("EMP-CKIN-9".into()),
        note: "delivered".into(),
        updated_at: instant(8),
    };
    for _ in 0..2 {
        store
            .record_correction_delivery(a.id, delivered.clone())
            .await
            .expect("record");
    }
    assert_eq!(
        store.list_correction_deliveries(a.id).await.expect("list"),
        vec![delivered]
    );
    assert_eq!(
        store
            .added_punches_to_deliver(a.id, 10)
            .await
            .expect("added")
            .iter()
            .map(|a| a.correction_id)
            .collect::<Vec<_>>(),
        vec![added[2]]
    );

    // HR revokes the delivered added punch and the one not delivered yet: only the delivered one is to be
    // withdrawn (with when HR added it: its key), and the other is no longer offered for delivery.
    assert!(store
        .revoked_additions_to_withdraw(a.id, 10)
        .await
        .expect("revoked")
        .is_empty());
    for id in [added[1], added[2]] {
        store
            .revoke_correction(id, instant(9), audit())
            .await
            .expect("revoke");
    }
    assert!(matches!(
        store.revoke_correction(added[1], instant(9), audit()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.revoke_correction(999_999, instant(9), audit()).await,
        Err(StoreError::NotFound(_))
    ));
    let (c, revoked_at) = store.get_correction(added[1]).await.expect("get");
    assert_eq!(
        (c.id, c.kind, revoked_at),
        (added[1], CorrectionKind::AddPunch, Some(instant(9)))
    );
    assert!(store
        .added_punches_to_deliver(a.id, 10)
        .await
        .expect("added")
        .is_empty());
    assert_eq!(
        store
            .revoked_additions_to_withdraw(a.id, 10)
            .await
            .expect("revoked"),
        vec![VoidedPunch {
            correction_id: added[1],
            punch_id: 0,
            device_sn: "HR-CORRECTION".into(),
            pin: "E1".into(),
            punched_at: local(18, 0),
            punch_state: Some(1),
            delivery: Some("delivered".into()),
            remote_ref: Some("EMP-CKIN-9".into()),
            added_at: Some(instant(6)),
        }]
    );
    store
        .record_withdrawal(
            a.id,
            Withdrawal {
                correction_id: added[1],
                punch_id: 0,
                status: WithdrawalStatus::Withdrawn,
                remote_ref: Some("EMP-CKIN-9".into()),
                note: "deleted".into(),
                updated_at: instant(10),
            },
        )
        .await
        .expect("withdrawal");
    assert!(store
        .revoked_additions_to_withdraw(a.id, 10)
        .await
        .expect("revoked")
        .is_empty());
    assert_eq!(
        store
            .voids_to_withdraw(a.id, 10)
            .await
            .expect("voids")
            .len(),
        2,
        "the revoked additions are not voids"
    );

    // A second sink, created later, has taken nothing: the next event is not prunable for either.
    let b = store.create_sink(sink("b"), instant(7)).await.expect("b");
    write(&d2, "4", local(10, 0), 8).await.expect("batch");
    assert_eq!(
        store.undelivered_by_device(b.id).await.expect("owed b"),
        vec![Undelivered {
            device_sn: "DELIV-2".into(),
            events: 1,
            oldest_punch_at: utc(local(10, 0)),
        }]
    );

    // Pruning: nothing written before the cut-off; then only the event every sink is done with (delivered to
    // a; before b's cursor) goes, with its delivery row. Pending and parked stay.
    assert_eq!(store.prune_outbox(instant(0), 100).await.expect("prune"), 0);
    assert_eq!(
        store.prune_outbox(instant(3600), 100).await.expect("prune"),
        1
    );
    assert_eq!(
        store.prune_outbox(instant(3600), 100).await.expect("prune"),
        0
    );
    assert_eq!(store.remote_ref(a.id, id_of("1")).await.expect("ref"), None);
    let counts = store.sink_counts(a.id).await.expect("counts");
    assert_eq!(
        (counts.pending, counts.delivered, counts.parked),
        (2, 0, 1),
        "a: the retrying event and the new one pending, the parked one kept"
    );

    // A replay writes the pruned punch's event again (PostgreSQL past the cursor, for the worker to take; SQLite
    // under the punch's id, set pending at once).
    store
        .replay_sink("a", utc(local(8, 0)), instant(9))
        .await
        .expect("replay");
    let pins = super::contract_outbox::owed_pins(store, a.id, instant(9)).await;
    assert_eq!(
        pins,
        ["1", "2", "3", "4"],
        "the replayed events, the pruned one among them"
    );

    // No sink left: every old event goes (at most `max` per call).
    store.delete_sink("a").await.expect("delete a");
    store.delete_sink("b").await.expect("delete b");
    assert_eq!(
        store.prune_outbox(instant(3600), 2).await.expect("prune"),
        2
    );
    assert_eq!(
        store.prune_outbox(instant(3600), 100).await.expect("prune"),
        2
    );
    assert_eq!(
        store.prune_outbox(instant(3600), 100).await.expect("prune"),
        0
    );

    hold_command(store, &d1).await;
}

/// Holding a command (safe clear): a queued one stays queued with the note, a sent one goes back to the queue with
/// its delivery undone, a finished one is left alone; `None` removes the note.
async fn hold_command(store: &dyn Store, device: &DeviceSn) {
    let clear = || NewCommand {
        device_sn: device.clone(),
        kind: CommandKind::ClearAttendanceLog,
        wire: Some("CLEAR LOG".into()),
        requested_by: "test".into(),
    };
    let queued = store
        .enqueue_commands(vec![clear(), clear()], instant(10))
        .await
        .expect("enqueue");
    let (c1, c2) = (queued[0].id, queued[1].id);
    let view = |c: Command| (c.status, c.attempts, c.sent_at, c.message);
    assert!(store
        .hold_command(c1, Some("held: a owes 2".into()))
        .await
        .expect("hold"));
    assert_eq!(
        view(store.get_command(c1).await.expect("c1")),
        (
            CommandStatus::Queued,
            0,
            None,
            Some("held: a owes 2".into())
        )
    );
    assert_eq!(
        store.mark_sent(vec![c2], instant(11)).await.expect("sent"),
        vec![c2]
    );
    assert!(store
        .hold_command(c2, Some("held again".into()))
        .await
        .expect("hold"));
    assert_eq!(
        view(store.get_command(c2).await.expect("c2")),
        (CommandStatus::Queued, 0, None, Some("held again".into()))
    );
    assert!(store.hold_command(c1, None).await.expect("unhold"));
    assert_eq!(
        view(store.get_command(c1).await.expect("c1")),
        (CommandStatus::Queued, 0, None, None)
    );
    store.mark_sent(vec![c2], instant(12)).await.expect("sent");
    store
        .complete_commands(
            device,
            vec![CommandCompletion {
                id: c2,
                return_code: 0,
                message: "cleared".into(),
                result: None,
            }],
            instant(13),
        )
        .await
        .expect("complete");
    assert!(!store
        .hold_command(c2, Some("too late".into()))
        .await
        .expect("hold finished"));
    let done = store.get_command(c2).await.expect("c2");
    assert_eq!(
        (done.status, done.attempts, done.message.as_deref()),
        (CommandStatus::Succeeded, 1, Some("cleared"))
    );
    assert!(!store.hold_command(i64::MAX, None).await.expect("unknown"));
}

mod tests {
    use crate::store::sqlite::{Durability, SqliteStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_delivery_keeps_the_contract() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("delivery.db"), Durability::PowerSafe)
            .expect("open");
        super::run_all(&store).await;
    }
}
