//! The store contract: what every [`Store`] backend must do, written against `&dyn Store` only, so SQLite and
//! PostgreSQL run the very same checks.
//!
//! [`run_all`] is the whole suite. Each check uses its own device serial numbers, so the checks share one store and
//! do not see each other's data. SQLite runs it in the tests at the bottom of this file; PostgreSQL in
//! `store/postgres.rs` (`postgres_store_keeps_the_contract`, when `PUNCHD_TEST_POSTGRES_URL` is set — always in CI).
//! The other areas' suites (`contract_<area>.rs`) follow the same rule, each run on both backends.
//! Backend-specific failure injection (an SQLite trigger) lives next to that backend's test, not in the suite.

use std::future::Future;
use std::pin::Pin as PinBox;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::{
    Batch, CommandCompletion, CommandFilter, DeviceContact, DevicePatch, DeviceUser, LineIssue,
    PunchFilter, RawEntry, SeenUpdate, Store, StoreError, Template, TimeBound,
};
use crate::domain::{
    Approval, CommandKind, CommandStatus, Device, DeviceSn, NewCommand, NewPunch, Pin, PunchState,
    Scope, Source, Transport, VerifyMode,
};

/// Run every check of the contract against `store`. Panics on the first broken rule.
pub(crate) async fn run_all(store: &dyn Store) {
    store.ping().await.expect("ping");
    punches_are_stored_once_and_resent_ones_counted_as_duplicates(store).await;
    journal_keeps_bytes_and_line_errors(store).await;
    stamps_advance_per_table(store).await;
    punches_are_listed_by_sn_pin_local_day_and_utc_range_with_pagination(store).await;
    devices_register_update_and_bump_revisions(store).await;
    device_info_is_merged(store).await;
    users_and_templates_are_upserted(store).await;
    commands_move_queued_sent_finished(store).await;
    commands_are_swept_requeued_then_expired(store).await;
    command_results_apply_their_effect_on_users(store).await;
    tokens_are_created_found_and_revoked(store).await;
    group_commit_answers_each_write_with_its_own_outcome(store).await;
    batches_written_at_once_share_punches_and_stamps_as_if_one_after_another(store).await;
    large_batches_mixing_new_and_held_punches_are_counted_exactly(store).await;
}

/// A boxed store call, to run many at once with [`join_all`].
type Pending<'a, T> = PinBox<Box<dyn Future<Output = T> + Send + 'a>>;

/// Poll every future concurrently on the current task (all jobs reach the store before any is answered, so a
/// group-committing backend takes them in few transactions). Outputs in input order.
async fn join_all<'a, T>(futures: Vec<Pending<'a, T>>) -> Vec<T> {
    let mut futures: Vec<Option<Pending<'a, T>>> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (slot, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *output = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(outputs.iter_mut().filter_map(Option::take).collect())
        }
    })
    .await
}

fn sn(s: &str) -> DeviceSn {
    DeviceSn::parse(s).expect("test SN")
}

fn local(day: u32, h: u32, m: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 3, day)
        .and_then(|d| d.and_hms_opt(h, m, s))
        .expect("test time")
}

/// A fixed instant with whole milliseconds (what every backend can hold).
fn instant(secs_after: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_710_000_000 + secs_after, 123_000_000)
        .single()
        .expect("test instant")
}

fn raw(device: &DeviceSn, kind: &str, body: &[u8], at: DateTime<Utc>) -> RawEntry {
    RawEntry {
        received_at: at,
        device_sn: Some(device.clone()),
        source: Source::Push,
        kind: kind.to_owned(),
        request: format!("POST /iclock/cdata?SN={device}&table={kind}"),
        remote_addr: Some("192.0.2.7".into()),
        body: body.to_vec(),
        errors: Vec::new(),
    }
}

/// A punch in Asia/Kolkata (UTC+05:30).
fn punch(device: &DeviceSn, pin: &str, at: NaiveDateTime, state: Option<u16>) -> NewPunch {
    NewPunch {
        device_sn: device.clone(),
        pin: Pin(pin.to_owned()),
        punched_at: at,
        time_zone: "Asia/Kolkata".into(),
        punched_at_utc: DateTime::from_naive_utc_and_offset(at - Duration::minutes(330), Utc),
        punch_state: state.map(PunchState::from_code),
        verify_mode: Some(VerifyMode(15)),
        work_code: Some("0".into()),
        extra: vec!["0".into(), "255".into()],
        source: Source::Push,
    }
}

fn batch_of(device: &DeviceSn, punches: Vec<NewPunch>, at: DateTime<Utc>) -> Batch {
    let mut batch = Batch::new(raw(device, "ATTLOG", b"lines", at));
    batch.punches = punches;
    batch
}

/// A push terminal's first contact at `at`, registered with `approval` (shared with the store's own tests).
pub(crate) fn contact(device: &DeviceSn, at: DateTime<Utc>, approval: Approval) -> DeviceContact {
    DeviceContact {
        sn: device.clone(),
        poll_delay_secs: 10,
        approval_if_new: approval,
        transport: Transport::Push,
        seen_at: at,
        ip: Some("192.0.2.10".into()),
        firmware: Some("Ver 6.60".into()),
        push_version: Some("2.4.1".into()),
        language: Some("69".into()),
        device_type: Some("att".into()),
    }
}

fn by_device(device: &DeviceSn) -> PunchFilter {
    PunchFilter {
        device_sn: Some(device.clone()),
        ..PunchFilter::default()
    }
}

async fn punches_are_stored_once_and_resent_ones_counted_as_duplicates(store: &dyn Store) {
    let dev = sn("CONTRACT-P1");
    let at = instant(0);
    let first = vec![
        punch(&dev, "0001", local(1, 9, 0, 0), Some(0)),
        punch(&dev, "0002", local(1, 9, 0, 0), Some(0)),
        punch(&dev, "0001", local(1, 18, 0, 0), Some(1)),
    ];
    let outcome = store
        .write_batch(batch_of(&dev, first.clone(), at))
        .await
        .expect("first batch");
    assert_eq!(
        (outcome.n_stored, outcome.n_duplicate, outcome.n_records),
        (3, 0, 3)
    );
    // The same punches again: nothing new, every one counted as held already, in a new journal entry.
    let again = store
        .write_batch(batch_of(&dev, first.clone(), instant(5)))
        .await
        .expect("re-sent batch");
    assert_eq!(
        (again.n_stored, again.n_duplicate, again.n_records),
        (0, 3, 3)
    );
    assert_ne!(again.journal_id, outcome.journal_id);
    // Same PIN, same second: another punch state, or none at all, is another punch; "01" is not "0001".
    let variants = vec![
        punch(&dev, "0001", local(1, 9, 0, 0), Some(2)),
        punch(&dev, "0001", local(1, 9, 0, 0), None),
        punch(&dev, "01", local(1, 9, 0, 0), Some(0)),
        punch(&dev, "0001", local(1, 9, 0, 0), Some(0)),
    ];
    let mixed = store
        .write_batch(batch_of(&dev, variants, instant(6)))
        .await
        .expect("variants");
    assert_eq!((mixed.n_stored, mixed.n_duplicate), (3, 1));
    // The same punch from another device is another punch.
    let other = sn("CONTRACT-P1B");
    let elsewhere = store
        .write_batch(batch_of(
            &other,
            vec![punch(&other, "0001", local(1, 9, 0, 0), Some(0))],
            at,
        ))
        .await
        .expect("other device");
    assert_eq!(elsewhere.n_stored, 1);

    let stored = store.list_punches(&by_device(&dev)).await.expect("list");
    assert_eq!(stored.len(), 6);
    assert!(
        stored.windows(2).all(|w| w[0].id < w[1].id),
        "ordered by id"
    );
    // Everything round-trips exactly.
    for (p, sent) in stored.iter().zip(&first) {
        assert_eq!(p.device_sn, dev);
        assert_eq!(p.pin, sent.pin);
        assert_eq!(p.punched_at, sent.punched_at);
        assert_eq!(p.time_zone, "Asia/Kolkata");
        assert_eq!(p.punched_at_utc, sent.punched_at_utc);
        assert_eq!(p.received_at, at);
        assert_eq!(p.punch_state, sent.punch_state.map(PunchState::code));
        assert_eq!(p.verify_mode, Some(15));
        assert_eq!(p.work_code.as_deref(), Some("0"));
        assert_eq!(p.extra, ["0", "255"]);
        assert_eq!(p.source, Source::Push);
        assert_eq!(p.journal_id, outcome.journal_id);
    }
    assert_eq!(
        stored[0].punched_at_utc,
        Utc.with_ymd_and_hms(2024, 3, 1, 3, 30, 0)
            .single()
            .expect("utc")
    );
    let states: Vec<(String, Option<u16>)> = stored[3..]
        .iter()
        .map(|p| (p.pin.0.clone(), p.punch_state))
        .collect();
    assert_eq!(
        states,
        [
            ("0001".to_owned(), Some(2)),
            ("0001".to_owned(), None),
            ("01".to_owned(), Some(0))
        ]
    );
    assert_eq!(
        store.count_punches(&by_device(&dev)).await.expect("count"),
        6
    );
    // A punch without verify mode, work code or extra columns keeps them absent.
    let mut bare = punch(&dev, "0003", local(1, 10, 0, 0), Some(0));
    bare.verify_mode = None;
    bare.work_code = None;
    bare.extra = Vec::new();
    store
        .write_batch(batch_of(&dev, vec![bare], at))
        .await
        .expect("bare punch");
    let bare = store
        .list_punches(&PunchFilter {
            pin: Some(Pin("0003".into())),
            ..by_device(&dev)
        })
        .await
        .expect("bare list");
    assert_eq!(bare.len(), 1);
    assert_eq!(
        (
            bare[0].verify_mode,
            bare[0].work_code.clone(),
            bare[0].extra.len()
        ),
        (None, None, 0)
    );
}

async fn journal_keeps_bytes_and_line_errors(store: &dyn Store) {
    let dev = sn("CONTRACT-J1");
    let body = b"1\t2024-03-01 09:00:00\n\xff\xfe broken\n".to_vec();
    let mut entry = raw(&dev, "ATTLOG", &body, instant(10));
    entry.errors = vec![LineIssue {
        line_no: 2,
        line: "\u{ff}\u{fe} broken".into(),
        reason: "expected at least 2 tab-separated fields (PIN, time), got 1".into(),
    }];
    let mut batch = Batch::new(entry.clone());
    batch.punches = vec![punch(&dev, "1", local(1, 9, 0, 0), None)];
    let outcome = store.write_batch(batch).await.expect("batch");
    let journal = store
        .get_journal(outcome.journal_id)
        .await
        .expect("journal");
    assert_eq!(journal.id, outcome.journal_id);
    assert_eq!(journal.received_at, entry.received_at);
    assert_eq!(journal.device_sn, Some(dev.clone()));
    assert_eq!(journal.source, Source::Push);
    assert_eq!(journal.kind, "ATTLOG");
    assert_eq!(journal.request, entry.request);
    assert_eq!(journal.remote_addr.as_deref(), Some("192.0.2.7"));
    assert_eq!(journal.body, body);
    assert_eq!(journal.errors, entry.errors);
    assert_eq!(
        (journal.n_records, journal.n_stored, journal.n_duplicate),
        (1, 1, 0)
    );
    // A bare journal entry (no records, no device).
    let mut bare = raw(&dev, "other", b"\x00\x01", instant(11));
    bare.device_sn = None;
    bare.remote_addr = None;
    let id = store
        .write_journal(bare.clone())
        .await
        .expect("write_journal");
    assert!(id > outcome.journal_id);
    let journal = store.get_journal(id).await.expect("bare journal");
    assert_eq!(
        (
            journal.device_sn,
            journal.remote_addr,
            journal.body,
            journal.errors
        ),
        (None, None, bare.body, Vec::new())
    );
    assert_eq!((journal.n_records, journal.n_stored), (0, 0));
    assert!(matches!(
        store.get_journal(id + 1_000_000).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn stamps_advance_per_table(store: &dyn Store) {
    let dev = sn("CONTRACT-S1");
    assert_eq!(store.stamps(&dev).await.expect("stamps"), []);
    for (table, value) in [("ATTLOG", "100"), ("OPERLOG", "7"), ("ATTLOG", "250")] {
        let mut batch = Batch::new(raw(&dev, table, b"", instant(20)));
        batch.stamp = Some((dev.clone(), table.to_owned(), value.to_owned()));
        store.write_batch(batch).await.expect("stamp batch");
    }
    assert_eq!(
        store.stamps(&dev).await.expect("stamps"),
        [
            ("ATTLOG".to_owned(), "250".to_owned()),
            ("OPERLOG".to_owned(), "7".to_owned())
        ]
    );
    assert_eq!(store.stamps(&sn("CONTRACT-S2")).await.expect("none"), []);
}

async fn punches_are_listed_by_sn_pin_local_day_and_utc_range_with_pagination(store: &dyn Store) {
    let dev = sn("CONTRACT-L1");
    let other = sn("CONTRACT-L2");
    let mut punches = Vec::new();
    for day in 1..=3 {
        for (pin, hour) in [("A", 0), ("B", 4), ("A", 8), ("B", 23)] {
            punches.push(punch(&dev, pin, local(day, hour, 30, 0), Some(0)));
        }
    }
    store
        .write_batch(batch_of(&dev, punches, instant(30)))
        .await
        .expect("batch");
    store
        .write_batch(batch_of(
            &other,
            vec![punch(&other, "A", local(2, 8, 30, 0), Some(0))],
            instant(30),
        ))
        .await
        .expect("other");
    let times = |ps: &[crate::domain::Punch]| -> Vec<String> {
        ps.iter()
            .map(|p| format!("{} {}", p.pin, p.punched_at.format("%d %H:%M")))
            .collect()
    };
    // By PIN.
    let a = store
        .list_punches(&PunchFilter {
            pin: Some(Pin("A".into())),
            ..by_device(&dev)
        })
        .await
        .expect("pin");
    assert_eq!(
        times(&a),
        [
            "A 01 00:30",
            "A 01 08:30",
            "A 02 00:30",
            "A 02 08:30",
            "A 03 00:30",
            "A 03 08:30"
        ]
    );
    // A terminal-local day: [2024-03-02 00:00, 2024-03-03 00:00).
    let day = PunchFilter {
        from: Some(TimeBound::Local(local(2, 0, 0, 0))),
        to: Some(TimeBound::Local(local(3, 0, 0, 0))),
        ..by_device(&dev)
    };
    let local_day = store.list_punches(&day).await.expect("local day");
    assert_eq!(
        times(&local_day),
        ["A 02 00:30", "B 02 04:30", "A 02 08:30", "B 02 23:30"]
    );
    assert_eq!(store.count_punches(&day).await.expect("count"), 4);
    // A UTC day: Kolkata is 5:30 ahead, so it runs from 05:30 local to 05:30 local the next day.
    let utc_day = PunchFilter {
        from: Some(TimeBound::Utc(
            Utc.with_ymd_and_hms(2024, 3, 2, 0, 0, 0)
                .single()
                .expect("utc"),
        )),
        to: Some(TimeBound::Utc(
            Utc.with_ymd_and_hms(2024, 3, 3, 0, 0, 0)
                .single()
                .expect("utc"),
        )),
        ..by_device(&dev)
    };
    let utc = store.list_punches(&utc_day).await.expect("utc day");
    assert_eq!(
        times(&utc),
        ["A 02 08:30", "B 02 23:30", "A 03 00:30", "B 03 04:30"]
    );
    // Across devices.
    let everywhere = store
        .list_punches(&PunchFilter {
            pin: Some(Pin("A".into())),
            from: Some(TimeBound::Local(local(2, 8, 30, 0))),
            to: Some(TimeBound::Local(local(2, 8, 30, 1))),
            ..PunchFilter::default()
        })
        .await
        .expect("all devices");
    let devices: Vec<&str> = everywhere.iter().map(|p| p.device_sn.as_str()).collect();
    assert_eq!(devices, ["CONTRACT-L1", "CONTRACT-L2"]);
    // Pages of 5 by id cover everything once, in order; counting ignores the cursor and the limit.
    let all = store.list_punches(&by_device(&dev)).await.expect("all");
    assert_eq!(all.len(), 12);
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_punches(&PunchFilter {
                after_id: after,
                limit: 5,
                ..by_device(&dev)
            })
            .await
            .expect("page");
        assert!(page.len() <= 5);
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        paged.extend(page);
    }
    assert_eq!(paged, all);
    let filter = PunchFilter {
        after_id: Some(all[9].id),
        limit: 1,
        ..by_device(&dev)
    };
    assert_eq!(store.count_punches(&filter).await.expect("count"), 12);
    assert_eq!(
        store.list_punches(&filter).await.expect("after")[0].id,
        all[10].id
    );
}

async fn devices_register_update_and_bump_revisions(store: &dyn Store) {
    let dev = sn("CONTRACT-D1");
    assert!(matches!(
        store.get_device(&dev).await,
        Err(StoreError::NotFound(_))
    ));
    let (_, rev0) = store.devices_changed_since(0).await.expect("revisions");
    let first = store
        .upsert_device(contact(&dev, instant(40), Approval::Pending))
        .await
        .expect("first contact");
    assert_eq!(first.sn, dev);
    assert_eq!(first.approval, Approval::Pending);
    assert_eq!(first.transport, Transport::Push);
    assert_eq!(first.first_seen, instant(40));
    assert_eq!(first.last_seen, Some(instant(40)));
    assert_eq!(first.last_ip.as_deref(), Some("192.0.2.10"));
    assert_eq!(first.firmware.as_deref(), Some("Ver 6.60"));
    assert_eq!(first.push_version.as_deref(), Some("2.4.1"));
    assert_eq!(first.language.as_deref(), Some("69"));
    assert_eq!(first.device_type.as_deref(), Some("att"));
    assert_eq!(first.poll_delay_secs, 10);
    let (changed, rev1) = store.devices_changed_since(rev0).await.expect("changed");
    assert!(rev1 > rev0);
    assert!(changed.iter().any(|d| d.sn == dev));
    // Seen again: the approval of a known device is not the policy's business; facts not reported are kept.
    let mut again = contact(&dev, instant(50), Approval::Approved);
    again.firmware = None;
    again.ip = Some("192.0.2.11".into());
    let second = store.upsert_device(again).await.expect("second contact");
    assert_eq!(second.approval, Approval::Pending);
    assert_eq!(second.first_seen, instant(40));
    assert_eq!(second.last_seen, Some(instant(50)));
    assert_eq!(second.last_ip.as_deref(), Some("192.0.2.11"));
    assert_eq!(second.firmware.as_deref(), Some("Ver 6.60"));

    // Settings: absent fields stay, Some(None) clears, the revision moves.
    let patched = store
        .update_device(
            &dev,
            DevicePatch {
                approval: Some(Approval::Approved),
                alias: Some(Some("Gate 2".into())),
                site: Some(Some("Pune".into())),
                time_zone: Some(Some("Asia/Kolkata".into())),
                poll_delay_secs: Some(30),
                ..DevicePatch::default()
            },
        )
        .await
        .expect("patch");
    assert_eq!(patched.approval, Approval::Approved);
    assert_eq!(patched.alias.as_deref(), Some("Gate 2"));
    assert_eq!(patched.poll_delay_secs, 30);
    let (changed, rev2) = store.devices_changed_since(rev1).await.expect("changed");
    assert!(rev2 > rev1);
    assert_eq!(
        changed.iter().map(|d| d.sn.as_str()).collect::<Vec<_>>(),
        ["CONTRACT-D1"]
    );
    assert_eq!(changed[0], patched);
    let cleared = store
        .update_device(
            &dev,
            DevicePatch {
                alias: Some(None),
                ..DevicePatch::default()
            },
        )
        .await
        .expect("clear alias");
    assert_eq!(cleared.alias, None);
    assert_eq!(cleared.site.as_deref(), Some("Pune"));
    assert_eq!(cleared.time_zone.as_deref(), Some("Asia/Kolkata"));
    assert_eq!(cleared.approval, Approval::Approved);
    assert_eq!(store.get_device(&dev).await.expect("get"), cleared);
    let (_, rev3) = store.devices_changed_since(rev2).await.expect("changed");
    assert!(rev3 > rev2);
    let (none, same) = store.devices_changed_since(rev3).await.expect("nothing");
    assert!(none.is_empty());
    assert_eq!(same, rev3);
    assert!(matches!(
        store
            .update_device(&sn("CONTRACT-NOPE"), DevicePatch::default())
            .await,
        Err(StoreError::NotFound(_))
    ));

    // Last seen only moves forward; health is recorded.
    store
        .record_seen(vec![
            SeenUpdate {
                sn: dev.clone(),
                at: instant(70),
                ip: Some("192.0.2.12".into()),
            },
            SeenUpdate {
                sn: dev.clone(),
                at: instant(60),
                ip: None,
            },
        ])
        .await
        .expect("seen");
    let seen = store.get_device(&dev).await.expect("get");
    assert_eq!(seen.last_seen, Some(instant(70)));
    assert_eq!(seen.last_ip.as_deref(), Some("192.0.2.12"));
    store
        .record_device_health(&dev, instant(80), Some("timeout".into()), Some(-3))
        .await
        .expect("health");
    let unhealthy = store.get_device(&dev).await.expect("get");
    assert_eq!(unhealthy.last_error.as_deref(), Some("timeout"));
    assert_eq!(unhealthy.clock_drift_secs, Some(-3));
    assert_eq!(unhealthy.last_seen, Some(instant(70)));
    store
        .record_device_health(&dev, instant(90), None, None)
        .await
        .expect("health");
    let healthy = store.get_device(&dev).await.expect("get");
    assert_eq!(healthy.last_error, None);
    assert_eq!(healthy.clock_drift_secs, Some(-3));
    assert_eq!(healthy.last_seen, Some(instant(90)));

    // Explicit creation (pull devices): conflict when it exists.
    let pull = Device {
        sn: sn("CONTRACT-D0"),
        approval: Approval::Approved,
        transport: Transport::Udp,
        alias: Some("Old clock".into()),
        site: None,
        time_zone: Some("Europe/Berlin".into()),
        address: Some("192.0.2.200:4370".into()),
        comm_key: Some(1234),
        pull_interval_secs: Some(0),
        clear_after_pull: true,
        first_seen: instant(100),
        last_seen: None,
        last_ip: None,
        firmware: None,
        push_version: None,
        language: None,
        device_type: None,
        poll_delay_secs: 0,
        info: serde_json::Map::new(),
        last_error: None,
        clock_drift_secs: None,
        safe_clear: true,
    };
    let created = store.create_device(pull.clone()).await.expect("create");
    assert_eq!(created, pull);
    assert!(matches!(
        store.create_device(pull).await,
        Err(StoreError::Conflict(_))
    ));
    let listed: Vec<String> = store
        .list_devices()
        .await
        .expect("list")
        .into_iter()
        .map(|d| d.sn.as_str().to_owned())
        .filter(|s| s.starts_with("CONTRACT-D"))
        .collect();
    assert_eq!(listed, ["CONTRACT-D0", "CONTRACT-D1"]);
}

async fn device_info_is_merged(store: &dyn Store) {
    let dev = sn("CONTRACT-I1");
    store
        .upsert_device(contact(&dev, instant(110), Approval::Approved))
        .await
        .expect("contact");
    let info = |pairs: &[(&str, &str)]| -> serde_json::Map<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned())))
            .collect()
    };
    let mut batch = Batch::new(raw(&dev, "options", b"", instant(111)));
    batch.device_info = Some((dev.clone(), info(&[("UserCount", "3"), ("FaceFunOn", "1")])));
    store.write_batch(batch).await.expect("options");
    let mut batch = Batch::new(raw(&dev, "options", b"", instant(112)));
    batch.device_info = Some((
        dev.clone(),
        info(&[("UserCount", "4"), ("FWVersion", "ZAM180-NF50VA-Ver3.4.9")]),
    ));
    store.write_batch(batch).await.expect("options");
    let device = store.get_device(&dev).await.expect("get");
    assert_eq!(
        device.info,
        info(&[
            ("FWVersion", "ZAM180-NF50VA-Ver3.4.9"),
            ("FaceFunOn", "1"),
            ("UserCount", "4")
        ])
    );
    assert_eq!(device.firmware.as_deref(), Some("ZAM180-NF50VA-Ver3.4.9"));
}

/// A user of `device` as a terminal reports it (card, group, time zones set; `Name` among its fields).
pub(crate) fn user(device: &DeviceSn, pin: &str, name: &str) -> DeviceUser {
    DeviceUser {
        device_sn: device.clone(),
        pin: Pin(pin.to_owned()),
        name: name.to_owned(),
        privilege: Some(0),
        password: String::new(),
        card: "133440".into(),
        group: "1".into(),
        time_zones: "0001000000000000".into(),
        verify_mode: None,
        enabled: true,
        fields: [(
            "Name".to_owned(),
            serde_json::Value::String(name.to_owned()),
        )]
        .into_iter()
        .collect(),
        updated_at: instant(120),
    }
}

fn template(device: &DeviceSn, pin: &str, no: u16, data: &str) -> Template {
    Template {
        device_sn: device.clone(),
        pin: Pin(pin.to_owned()),
        kind: "finger".into(),
        bio_type: 0,
        no,
        index: 0,
        valid: Some(1),
        duress: false,
        major_ver: None,
        minor_ver: None,
        format: None,
        template: data.to_owned(),
        updated_at: instant(120),
    }
}

async fn users_and_templates_are_upserted(store: &dyn Store) {
    let dev = sn("CONTRACT-U1");
    let mut batch = Batch::new(raw(&dev, "OPERLOG", b"USER ...", instant(120)));
    batch.users = vec![user(&dev, "36235", "Bo"), user(&dev, "036234", "张三")];
    batch.templates = vec![
        template(&dev, "036234", 6, "TUlDUx"),
        template(&dev, "036234", 7, "AAAA"),
        template(&dev, "36235", 6, "BBBB"),
    ];
    let outcome = store.write_batch(batch.clone()).await.expect("users");
    assert_eq!(outcome.n_records, 5);
    assert_eq!((outcome.n_stored, outcome.n_duplicate), (0, 0));
    let users = store.list_device_users(&dev).await.expect("users");
    assert_eq!(
        users,
        [user(&dev, "036234", "张三"), user(&dev, "36235", "Bo")]
    );
    // The same records again, one changed: still one row each.
    batch.users[0].name = "Bo Ek".into();
    batch.templates[1].template = "CCCC".into();
    store.write_batch(batch).await.expect("again");
    let users = store.list_device_users(&dev).await.expect("users");
    assert_eq!(users.len(), 2);
    assert_eq!(users[1].name, "Bo Ek");
    let templates = store
        .list_templates(&dev, Some(&Pin("036234".into())))
        .await
        .expect("templates");
    assert_eq!(
        templates,
        [
            template(&dev, "036234", 6, "TUlDUx"),
            template(&dev, "036234", 7, "CCCC")
        ]
    );
    assert_eq!(
        store.list_templates(&dev, None).await.expect("all").len(),
        3
    );
    // Forgetting a user takes their templates along (the enabled flag is set by command results, see
    // command_results_apply_their_effect_on_users).
    store
        .delete_device_user(&dev, &Pin("036234".into()))
        .await
        .expect("delete");
    let users = store.list_device_users(&dev).await.expect("users");
    assert_eq!(
        users.iter().map(|u| u.pin.as_str()).collect::<Vec<_>>(),
        ["36235"]
    );
    let left = store.list_templates(&dev, None).await.expect("templates");
    assert_eq!(
        left.iter()
            .map(|t| (t.pin.as_str(), t.no))
            .collect::<Vec<_>>(),
        [("36235", 6)]
    );
}

fn new_command(device: &DeviceSn, kind: CommandKind, wire: &str) -> NewCommand {
    NewCommand {
        device_sn: device.clone(),
        kind,
        wire: Some(wire.to_owned()),
        requested_by: "contract".into(),
    }
}

async fn commands_move_queued_sent_finished(store: &dyn Store) {
    let dev = sn("CONTRACT-C1");
    let t0 = instant(200);
    let queued = store
        .enqueue_commands(
            vec![
                new_command(
                    &dev,
                    CommandKind::DeleteUser { pin: "0042".into() },
                    "DATA DELETE USERINFO PIN=0042",
                ),
                new_command(&dev, CommandKind::FetchInfo, "INFO"),
                new_command(&dev, CommandKind::Reboot, "REBOOT"),
            ],
            t0,
        )
        .await
        .expect("enqueue");
    assert_eq!(queued.len(), 3);
    let ids: Vec<i64> = queued.iter().map(|c| c.id).collect();
    assert!(ids[0] < ids[1] && ids[1] < ids[2]);
    for c in &queued {
        assert_eq!(c.device_sn, dev);
        assert_eq!(c.status, CommandStatus::Queued);
        assert_eq!(c.attempts, 0);
        assert_eq!(c.requested_by, "contract");
        assert_eq!(c.created_at, t0);
        assert_eq!(
            (c.sent_at, c.finished_at, c.return_code),
            (None, None, None)
        );
    }
    assert_eq!(
        queued[0].kind,
        CommandKind::DeleteUser { pin: "0042".into() }
    );
    assert_eq!(
        queued[0].wire.as_deref(),
        Some("DATA DELETE USERINFO PIN=0042")
    );
    assert!(store
        .devices_with_queued_commands()
        .await
        .expect("devices")
        .contains(&dev));

    // Oldest first, at most `max`.
    let first_two = store.queued_commands(&dev, 2).await.expect("queued");
    assert_eq!(first_two.iter().map(|c| c.id).collect::<Vec<_>>(), ids[..2]);
    // Only queued commands are marked sent; an id marked already is not marked again.
    let t1 = instant(210);
    assert_eq!(
        store
            .mark_sent(vec![ids[0], ids[1]], t1)
            .await
            .expect("mark"),
        ids[..2]
    );
    assert_eq!(
        store
            .mark_sent(vec![ids[0], ids[2], 9_999_999], t1)
            .await
            .expect("mark"),
        [ids[2]]
    );
    let sent = store.get_command(ids[0]).await.expect("get");
    assert_eq!(
        (sent.status, sent.attempts, sent.sent_at),
        (CommandStatus::Sent, 1, Some(t1))
    );
    assert!(store
        .queued_commands(&dev, 10)
        .await
        .expect("none")
        .is_empty());
    assert!(!store
        .devices_with_queued_commands()
        .await
        .expect("devices")
        .contains(&dev));

    // Results: success, failure; unknown ids and other devices' results are ignored.
    let t2 = instant(220);
    let info = serde_json::json!({"cmd": "INFO", "fields": {"UserCount": "12"}});
    let done = store
        .complete_commands(
            &dev,
            vec![
                CommandCompletion {
                    id: ids[0],
                    return_code: -10,
                    message: "PIN does not exist (Return=-10)".into(),
                    result: None,
                },
                CommandCompletion {
                    id: ids[1],
                    return_code: 0,
                    message: "success (Return=0)".into(),
                    result: Some(info.clone()),
                },
                CommandCompletion {
                    id: 9_999_999,
                    return_code: 0,
                    message: "unknown".into(),
                    result: None,
                },
            ],
            t2,
        )
        .await
        .expect("complete");
    assert_eq!(done.iter().map(|c| c.id).collect::<Vec<_>>(), ids[..2]);
    assert_eq!(done[0].status, CommandStatus::Failed);
    assert_eq!(done[0].return_code, Some(-10));
    assert_eq!(
        done[0].message.as_deref(),
        Some("PIN does not exist (Return=-10)")
    );
    assert_eq!(done[0].finished_at, Some(t2));
    assert_eq!(done[1].status, CommandStatus::Succeeded);
    assert_eq!(done[1].result, Some(info));
    let wrong_device = store
        .complete_commands(
            &sn("CONTRACT-C9"),
            vec![CommandCompletion {
                id: ids[2],
                return_code: 0,
                message: "not yours".into(),
                result: None,
            }],
            t2,
        )
        .await
        .expect("other device");
    assert!(wrong_device.is_empty());
    assert_eq!(
        store.get_command(ids[2]).await.expect("get").status,
        CommandStatus::Sent
    );
    // Re-posted results for finished commands change nothing.
    let before = store.get_command(ids[0]).await.expect("get");
    let again = store
        .complete_commands(
            &dev,
            vec![CommandCompletion {
                id: ids[0],
                return_code: 0,
                message: "late success".into(),
                result: None,
            }],
            instant(230),
        )
        .await
        .expect("again");
    assert!(again.is_empty());
    assert_eq!(store.get_command(ids[0]).await.expect("get"), before);

    // Listing: newest first, by device, by status, limited.
    let all = store
        .list_commands(&CommandFilter {
            device_sn: Some(dev.clone()),
            ..CommandFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(
        all.iter().map(|c| c.id).collect::<Vec<_>>(),
        [ids[2], ids[1], ids[0]]
    );
    let failed = store
        .list_commands(&CommandFilter {
            device_sn: Some(dev.clone()),
            status: Some(CommandStatus::Failed),
            limit: 0,
        })
        .await
        .expect("failed");
    assert_eq!(failed.iter().map(|c| c.id).collect::<Vec<_>>(), [ids[0]]);
    let newest = store
        .list_commands(&CommandFilter {
            device_sn: Some(dev.clone()),
            status: None,
            limit: 1,
        })
        .await
        .expect("limited");
    assert_eq!(newest.iter().map(|c| c.id).collect::<Vec<_>>(), [ids[2]]);
    assert!(matches!(
        store.get_command(ids[2] + 1_000_000).await,
        Err(StoreError::NotFound(_))
    ));
    // Finish the last one, so that sweeps (which cover every device) in later checks do not see it.
    let last = store
        .complete_commands(
            &dev,
            vec![CommandCompletion {
                id: ids[2],
                return_code: 0,
                message: "success (Return=0)".into(),
                result: None,
            }],
            instant(240),
        )
        .await
        .expect("last");
    assert_eq!(last.len(), 1);
}

async fn commands_are_swept_requeued_then_expired(store: &dyn Store) {
    let dev = sn("CONTRACT-C2");
    let t0 = instant(300);
    let cmds = store
        .enqueue_commands(
            vec![
                new_command(&dev, CommandKind::FetchInfo, "INFO"),
                new_command(&dev, CommandKind::SyncTime, "CHECK"),
            ],
            t0,
        )
        .await
        .expect("enqueue");
    let (retried, waiting) = (cmds[0].id, cmds[1].id);
    let long_ago = instant(-1_000_000);
    // Delivered three times without a result: requeued after each timeout, expired after the third.
    for attempt in 1..=3u32 {
        let sent_at = instant(300 + i64::from(attempt) * 100);
        assert_eq!(
            store.mark_sent(vec![retried], sent_at).await.expect("mark"),
            [retried]
        );
        // Not timed out yet: nothing moves.
        let (requeued, expired) = store
            .sweep_commands(sent_at, sent_at - Duration::seconds(1), long_ago, 3)
            .await
            .expect("sweep");
        assert_eq!((requeued, expired), (0, 0));
        let now = sent_at + Duration::seconds(120);
        let (requeued, expired) = store
            .sweep_commands(now, now - Duration::seconds(60), long_ago, 3)
            .await
            .expect("sweep");
        let c = store.get_command(retried).await.expect("get");
        assert_eq!(c.attempts, attempt);
        if attempt < 3 {
            assert_eq!((requeued, expired), (1, 0), "attempt {attempt}");
            assert_eq!(c.status, CommandStatus::Queued);
        } else {
            assert_eq!((requeued, expired), (0, 1), "attempt {attempt}");
            assert_eq!(c.status, CommandStatus::Expired);
            assert_eq!(c.finished_at, Some(now));
            assert_eq!(c.message.as_deref(), Some("no result after 3 deliveries"));
        }
    }
    // A command that was never delivered expires once it is older than `queued_before`.
    assert_eq!(
        store.get_command(waiting).await.expect("get").status,
        CommandStatus::Queued
    );
    let now = instant(10_000);
    let (requeued, expired) = store
        .sweep_commands(
            now,
            now - Duration::seconds(60),
            t0 + Duration::seconds(1),
            3,
        )
        .await
        .expect("sweep");
    assert_eq!((requeued, expired), (0, 1));
    let c = store.get_command(waiting).await.expect("get");
    assert_eq!(c.status, CommandStatus::Expired);
    assert_eq!(c.attempts, 0);
    assert_eq!(
        c.message.as_deref(),
        Some("not delivered: the device did not poll in time")
    );
    // Expired commands are not delivered.
    assert!(store
        .mark_sent(vec![retried, waiting], now)
        .await
        .expect("mark")
        .is_empty());
    // A late result for an expired command is recorded: the device did run it (the trait's contract).
    let late = store
        .complete_commands(
            &dev,
            vec![CommandCompletion {
                id: retried,
                return_code: 0,
                message: "success (Return=0)".into(),
                result: None,
            }],
            instant(10_001),
        )
        .await
        .expect("late result");
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].status, CommandStatus::Succeeded);
}

async fn command_results_apply_their_effect_on_users(store: &dyn Store) {
    let dev = sn("CONTRACT-E1");
    let t0 = instant(300);
    let mut batch = batch_of(&dev, Vec::new(), t0);
    batch.users = vec![
        user(&dev, "0042", "Ann"),
        user(&dev, "0043", "Bob"),
        user(&dev, "0044", "Cem"),
    ];
    batch.templates = vec![
        template(&dev, "0042", 1, "QUFB"),
        template(&dev, "0043", 1, "QkJC"),
    ];
    store.write_batch(batch).await.expect("users");
    let queued = store
        .enqueue_commands(
            vec![
                new_command(
                    &dev,
                    CommandKind::DeleteUser { pin: "0042".into() },
                    "DATA DELETE USERINFO PIN=0042",
                ),
                new_command(
                    &dev,
                    CommandKind::DisableUser { pin: "0043".into() },
                    "DATA DELETE USERINFO PIN=0043",
                ),
                new_command(
                    &dev,
                    CommandKind::DisableUser { pin: "0044".into() },
                    "DATA DELETE USERINFO PIN=0044",
                ),
            ],
            t0,
        )
        .await
        .expect("enqueue");
    let ids: Vec<i64> = queued.iter().map(|c| c.id).collect();
    store.mark_sent(ids.clone(), t0).await.expect("mark");
    let done = |id: i64, return_code: i64| CommandCompletion {
        id,
        return_code,
        message: String::new(),
        result: None,
    };
    store
        .complete_commands(
            &dev,
            vec![done(ids[0], 0), done(ids[1], 0), done(ids[2], -10)],
            instant(301),
        )
        .await
        .expect("complete");
    // A succeeded delete forgets the user and their templates; a succeeded disable marks the user; a failed
    // command changes nothing.
    let users: Vec<(String, bool)> = store
        .list_device_users(&dev)
        .await
        .expect("users")
        .into_iter()
        .map(|u| (u.pin.0, u.enabled))
        .collect();
    assert_eq!(
        users,
        [("0043".to_owned(), false), ("0044".to_owned(), true)]
    );
    let templates: Vec<String> = store
        .list_templates(&dev, None)
        .await
        .expect("templates")
        .into_iter()
        .map(|t| t.pin.0)
        .collect();
    assert_eq!(templates, ["0043"]);
}

async fn tokens_are_created_found_and_revoked(store: &dyn Store) {
    let t0 = instant(400);
    let created = store
        .create_token("contract-ops", "hash-ops", Scope::Operate, t0)
        .await
        .expect("create");
    assert_eq!(created.name, "contract-ops");
    assert_eq!(created.created_at, t0);
    assert_eq!(created.revoked_at, None);
    assert_eq!(created.scope, Scope::Operate);
    assert!(matches!(
        store
            .create_token("contract-ops", "hash-other", Scope::Admin, t0)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.find_token("hash-ops").await.expect("find"),
        Some(created.clone())
    );
    assert_eq!(store.find_token("hash-nope").await.expect("find"), None);
    let t1 = instant(410);
    store
        .revoke_token("contract-ops", t1)
        .await
        .expect("revoke");
    assert_eq!(store.find_token("hash-ops").await.expect("find"), None);
    assert!(matches!(
        store.revoke_token("contract-ops", t1).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.revoke_token("contract-nope", t1).await,
        Err(StoreError::NotFound(_))
    ));
    let listed = store.list_tokens().await.expect("list");
    let ops = listed
        .iter()
        .find(|t| t.name == "contract-ops")
        .expect("listed");
    assert_eq!((ops.id, ops.revoked_at), (created.id, Some(t1)));
    // A revoked name stays taken.
    assert!(matches!(
        store
            .create_token("contract-ops", "hash-new", Scope::Read, t1)
            .await,
        Err(StoreError::Conflict(_))
    ));
}

async fn group_commit_answers_each_write_with_its_own_outcome(store: &dyn Store) {
    let dev = sn("CONTRACT-G1");
    let existing = sn("CONTRACT-G0");
    store
        .upsert_device(contact(&existing, instant(500), Approval::Approved))
        .await
        .expect("device");
    let mut writes: Vec<Pending<'_, Result<i64, StoreError>>> = Vec::new();
    for i in 0..200u32 {
        let batch = batch_of(
            &dev,
            vec![punch(
                &dev,
                &format!("{}", 1000 + i),
                local(10, 8, i / 60, i % 60),
                Some(0),
            )],
            instant(500),
        );
        writes.push(Box::pin(async move {
            let outcome = store.write_batch(batch).await?;
            assert_eq!((outcome.n_stored, outcome.n_duplicate), (1, 0));
            Ok(outcome.journal_id)
        }));
        if i == 100 {
            // A job that fails in the middle of the group: it fails alone.
            let device = store.get_device(&existing).await.expect("existing device");
            writes.push(Box::pin(async move {
                store.create_device(device).await.map(|_| -1)
            }));
        }
    }
    let outcomes = join_all(writes).await;
    assert_eq!(outcomes.len(), 201);
    assert!(matches!(outcomes[101], Err(StoreError::Conflict(_))));
    let journal_ids: Vec<i64> = outcomes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 101)
        .map(|(_, o)| *o.as_ref().expect("committed"))
        .collect();
    let unique: std::collections::HashSet<&i64> = journal_ids.iter().collect();
    assert_eq!(unique.len(), 200, "each write has its own journal entry");
    let stored = store.list_punches(&by_device(&dev)).await.expect("list");
    assert_eq!(stored.len(), 200);
    // Each write saw its own outcome: the punch it carried hangs off the journal entry it was told about.
    for (i, journal_id) in journal_ids.iter().enumerate() {
        let p = stored
            .iter()
            .find(|p| p.pin.as_str() == format!("{}", 1000 + i))
            .expect("stored punch");
        assert_eq!(p.journal_id, *journal_id, "write {i}");
    }
}

/// Batches that reach the store at once (a group commit may write them in one statement): a punch two of them
/// carry (a terminal that re-sent an upload whose answer it missed) is stored once and counted stored by exactly
/// one, every batch keeps its own journal entry and counts, and the device's stamp is one batch's value (several
/// stamps of one device in one statement must not clash; which wins among requests sent at once is not ordered —
/// a terminal sends its next upload only after the answer to the last).
async fn batches_written_at_once_share_punches_and_stamps_as_if_one_after_another(
    store: &dyn Store,
) {
    let dev = sn("CONTRACT-G2");
    let shared = punch(&dev, "2000", local(11, 9, 0, 0), Some(0));
    let mut writes: Vec<Pending<'_, Result<super::BatchOutcome, StoreError>>> = Vec::new();
    for i in 0..40u32 {
        let mut punches = vec![punch(
            &dev,
            &format!("{}", 2100 + i),
            local(11, 10, i, 0),
            Some(1),
        )];
        if i % 10 == 3 {
            punches.push(shared.clone());
        }
        let mut batch = batch_of(&dev, punches, instant(600 + i64::from(i)));
        batch.stamp = Some((dev.clone(), "ATTLOG".into(), format!("{}", 900 + i)));
        writes.push(Box::pin(store.write_batch(batch)));
    }
    let outcomes: Vec<super::BatchOutcome> = join_all(writes)
        .await
        .into_iter()
        .map(|o| o.expect("committed"))
        .collect();
    let carriers: Vec<&super::BatchOutcome> = outcomes
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 == 3)
        .map(|(_, o)| o)
        .collect();
    assert_eq!(
        carriers.iter().map(|o| o.n_stored).sum::<usize>(),
        4 + 1,
        "the shared punch counts stored once over its four carriers"
    );
    assert_eq!(carriers.iter().map(|o| o.n_duplicate).sum::<usize>(), 3);
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o.n_records, if i % 10 == 3 { 2 } else { 1 }, "batch {i}");
        let journal = store
            .get_journal(o.journal_id)
            .await
            .expect("journal entry");
        assert_eq!(
            (journal.n_stored, journal.n_duplicate),
            (o.n_stored, o.n_duplicate),
            "batch {i}'s journal counts"
        );
        assert_eq!(journal.received_at, instant(600 + i as i64), "batch {i}");
    }
    let stored = store.list_punches(&by_device(&dev)).await.expect("list");
    assert_eq!(stored.len(), 41);
    let held = stored
        .iter()
        .find(|p| p.pin.as_str() == "2000")
        .expect("the shared punch");
    let credited: Vec<i64> = carriers
        .iter()
        .filter(|o| o.n_stored == 2)
        .map(|o| o.journal_id)
        .collect();
    assert_eq!(
        credited,
        [held.journal_id],
        "held under the batch that stored it"
    );
    let stamps = store.stamps(&dev).await.expect("stamps");
    assert_eq!(stamps.len(), 1);
    assert_eq!(stamps[0].0, "ATTLOG");
    let value: u32 = stamps[0].1.parse().expect("a value written");
    assert!((900..940).contains(&value), "{value}");
}

/// A batch larger than one multi-row insert (SQLite writes 64 punches a statement), held and new punches
/// interleaved: each is stored once with its own fields, and the counts are exact.
async fn large_batches_mixing_new_and_held_punches_are_counted_exactly(store: &dyn Store) {
    let dev = sn("CONTRACT-BIG");
    let make = |i: u32| {
        let mut p = punch(
            &dev,
            &format!("{:04}", 1000 + i),
            local(2, i / 60, i % 60, i % 60),
            Some((i % 2) as u16),
        );
        p.work_code = (i % 3 == 0).then(|| format!("w{i}"));
        p.extra = if i % 5 == 0 {
            Vec::new()
        } else {
            vec![i.to_string()]
        };
        p
    };
    // Even punches first: 75 of them, one full statement and a rest.
    let first: Vec<NewPunch> = (0..150).step_by(2).map(make).collect();
    let outcome = store
        .write_batch(batch_of(&dev, first, instant(0)))
        .await
        .expect("first batch");
    assert_eq!((outcome.n_stored, outcome.n_duplicate), (75, 0));
    // All 150: the 75 odd ones are new, the even ones held, interleaved one by one.
    let all: Vec<NewPunch> = (0..150).map(make).collect();
    let again = store
        .write_batch(batch_of(&dev, all.clone(), instant(1)))
        .await
        .expect("second batch");
    assert_eq!(
        (again.n_stored, again.n_duplicate, again.n_records),
        (75, 75, 150)
    );
    let journal = store
        .get_journal(again.journal_id)
        .await
        .expect("journal entry");
    assert_eq!((journal.n_stored, journal.n_duplicate), (75, 75));
    let mut stored = store.list_punches(&by_device(&dev)).await.expect("list");
    assert_eq!(stored.len(), 150);
    stored.sort_by_key(|p| (p.punched_at, p.pin.as_str().to_owned()));
    for (p, want) in stored.iter().zip(&all) {
        assert_eq!(
            (
                &p.pin,
                p.punched_at,
                p.punch_state,
                &p.work_code,
                &p.extra,
                p.punched_at_utc
            ),
            (
                &want.pin,
                want.punched_at,
                want.punch_state.map(|s| s.code()),
                &want.work_code,
                &want.extra,
                want.punched_at_utc
            )
        );
        let batch = if p.pin.as_str().parse::<u32>().expect("pin") % 2 == 0 {
            outcome.journal_id
        } else {
            again.journal_id
        };
        assert_eq!(p.journal_id, batch, "{}", p.pin.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{Durability, SqliteStore};

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("contract.db"), Durability::PowerSafe)
            .expect("open");
        (dir, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_store_keeps_the_contract() {
        let (_dir, store) = open();
        run_all(&store).await;
    }

    /// SQLite-specific: the writer never checkpoints (so a commit never waits for one); the checkpoint thread
    /// moves committed pages from the WAL into the database file on its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_checkpoints_happen_off_the_writer() {
        let (dir, store) = open();
        let db = dir.path().join("contract.db");
        let dev = sn("CONTRACT-K1");
        let size_before = std::fs::metadata(&db).expect("db").len();
        let punches = (0..3000u32)
            .map(|i| {
                punch(
                    &dev,
                    &format!("{i}"),
                    local(12, 8, i / 60 % 60, i % 60),
                    Some(0),
                )
            })
            .collect();
        store
            .write_batch(batch_of(&dev, punches, instant(700)))
            .await
            .expect("write");
        // The writer connection has wal_autocheckpoint = 0: without the checkpoint thread the file would keep its
        // size until the last connection closed.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::fs::metadata(&db).expect("db").len() <= size_before {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint reached the database file"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let conn = rusqlite::Connection::open(&db).expect("open");
        let n_punches: i64 = conn
            .query_row("SELECT COUNT(*) FROM punches", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n_punches, 3000);
    }

    /// SQLite-specific failure injection: a trigger makes some inserts fail; in one group commit the failing
    /// batches fail alone (nothing of theirs is kept, journal included) and the others are committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_failing_batches_fail_alone_in_a_group_commit() {
        let (dir, store) = open();
        let conn = rusqlite::Connection::open(dir.path().join("contract.db")).expect("open");
        conn.execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON punches WHEN NEW.pin LIKE 'poison%' \
             BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
        )
        .expect("trigger");
        let dev = sn("CONTRACT-F1");
        let store_ref: &dyn Store = &store;
        let writes: Vec<Pending<'_, _>> = (0..60u32)
            .map(|i| {
                let pin = if i % 10 == 3 {
                    format!("poison{i}")
                } else {
                    format!("{i}")
                };
                let mut batch = batch_of(
                    &dev,
                    vec![
                        punch(&dev, &format!("ok{i}"), local(11, 8, 0, i % 60), Some(0)),
                        punch(&dev, &pin, local(11, 9, 0, i % 60), Some(0)),
                    ],
                    instant(600),
                );
                batch.stamp = Some((dev.clone(), "ATTLOG".into(), format!("{i}")));
                let f: Pending<'_, _> = Box::pin(store_ref.write_batch(batch));
                f
            })
            .collect();
        let outcomes = join_all(writes).await;
        for (i, outcome) in outcomes.iter().enumerate() {
            if i % 10 == 3 {
                match outcome {
                    Err(StoreError::Backend(message)) => {
                        assert!(message.contains("disk on fire"), "{message}")
                    }
                    other => panic!("write {i}: {other:?}"),
                }
            } else {
                assert_eq!(
                    outcome.as_ref().expect("committed").n_stored,
                    2,
                    "write {i}"
                );
            }
        }
        let stored = store.list_punches(&by_device(&dev)).await.expect("list");
        assert_eq!(stored.len(), 54 * 2);
        assert!(!stored.iter().any(|p| p.pin.as_str() == "ok3"));
        let n_journal: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM journal WHERE device_sn = 'CONTRACT-F1'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(n_journal, 54);
        // Dropping the trigger: the failed batches go through when re-sent.
        conn.execute_batch("DROP TRIGGER poison;").expect("drop");
        let retry = batch_of(
            &dev,
            vec![
                punch(&dev, "ok3", local(11, 8, 0, 3), Some(0)),
                punch(&dev, "poison3", local(11, 9, 0, 3), Some(0)),
            ],
            instant(700),
        );
        let outcome = store.write_batch(retry).await.expect("retry");
        assert_eq!((outcome.n_stored, outcome.n_duplicate), (2, 0));
    }
}
