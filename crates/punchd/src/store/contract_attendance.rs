//! The [`AttendanceStore`](super::attendance::AttendanceStore) contract, written against `&dyn Store` only so the
//! PostgreSQL backend can run the same checks ([`run_all`]). Refused writes must leave nothing behind, audit
//! records included.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

use super::attendance::{
    AttendancePunch, AuditRecord, Correction, CorrectionKind, Employee, EmployeeStatus, Holiday,
    PinMapping, PinSeen, Revocation, RosterEntry, Scope, ShiftDef, SignOff, Site,
};
use super::{Batch, DeviceContact, DevicePatch, RawEntry, Store, StoreError};
use crate::domain::{Approval, DeviceSn, NewPunch, Pin, PunchState, Source, Transport};

fn audit(action: &str) -> AuditRecord {
    AuditRecord {
        author: "contract".into(),
        action: action.into(),
        subject: "s".into(),
        detail: serde_json::json!({"n": 1}),
    }
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, d).expect("test date")
}

fn employee(code: &str, site: &str) -> Employee {
    Employee {
        code: code.into(),
        name: format!("Name {code}"),
        status: EmployeeStatus::Active,
        joined_on: Some(day(1)),
        left_on: None,
        site: Some(site.into()),
        department: None,
        default_shift: None,
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + secs, 0)
        .single()
        .expect("instant")
}

async fn n_audit(store: &dyn Store) -> usize {
    store.list_audit(0).await.expect("audit").len()
}

/// Run every check.
pub(crate) async fn run_all(store: &dyn Store) {
    sites_keep_zone_offs_and_replace_holidays(store).await;
    employees_and_mappings_refuse_ambiguity(store).await;
    shifts_and_roster_are_all_or_nothing(store).await;
    corrections_signoffs_and_punch_windows(store).await;
    attendance_read_dense_and_scattered(store).await;
    roster_is_paged_and_counted_in_the_store(store).await;
    revoked_corrections_keep_who_and_why(store).await;
    pin_summary_saves_whole_or_changed_pairs(store).await;
}

async fn sites_keep_zone_offs_and_replace_holidays(store: &dyn Store) {
    let mut site = Site {
        name: "CT-S1".into(),
        time_zone: "Europe/Berlin".into(),
        day_change: "04:00".into(),
        weekly_offs: vec![6, 7],
        holidays: vec![Holiday {
            day: day(3),
            name: "Unity".into(),
        }],
    };
    store
        .put_site(site.clone(), audit("site"))
        .await
        .expect("put");
    site.holidays = vec![Holiday {
        day: day(31),
        name: "Reformation".into(),
    }];
    store
        .put_site(site.clone(), audit("site"))
        .await
        .expect("replace");
    let sites = store.list_sites().await.expect("list");
    assert_eq!(sites.iter().find(|s| s.name == "CT-S1"), Some(&site));
}

async fn employees_and_mappings_refuse_ambiguity(store: &dyn Store) {
    store
        .put_employees(
            vec![employee("CT-1", "CT-S1"), employee("CT-2", "CT-S1")],
            audit("import"),
        )
        .await
        .expect("employees");
    let mut changed = employee("CT-2", "CT-S1");
    changed.status = EmployeeStatus::Left;
    changed.left_on = Some(day(15));
    store
        .put_employees(vec![changed.clone()], audit("edit"))
        .await
        .expect("edit");
    let list = store.list_employees().await.expect("list");
    assert_eq!(list.iter().find(|e| e.code == "CT-2"), Some(&changed));

    let dev = DeviceSn::parse("CT-DEV1").expect("sn");
    store
        .upsert_device(DeviceContact {
            sn: dev.clone(),
            poll_delay_secs: 10,
            approval_if_new: Approval::Approved,
            transport: Transport::Push,
            seen_at: at(0),
            ip: None,
            firmware: None,
            push_version: None,
            language: None,
            device_type: None,
        })
        .await
        .expect("device");
    store
        .update_device(
            &dev,
            DevicePatch {
                site: Some(Some("CT-S1".into())),
                ..DevicePatch::default()
            },
        )
        .await
        .expect("site");
    let map = |scope, key: &str, pin: &str, e: &str| PinMapping {
        scope,
        scope_key: key.into(),
        pin: pin.into(),
        employee_code: e.into(),
    };
    store
        .add_mapping(map(Scope::Site, "CT-S1", "5", "CT-1"), audit("map"))
        .await
        .expect("map");
    let before = n_audit(store).await;
    let same_key = store
        .add_mapping(map(Scope::Site, "CT-S1", "5", "CT-2"), audit("map"))
        .await;
    assert!(
        matches!(same_key, Err(StoreError::Conflict(_))),
        "{same_key:?}"
    );
    let clash = store
        .add_mapping(map(Scope::Device, "CT-DEV1", "5", "CT-2"), audit("map"))
        .await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    let unknown = store
        .add_mapping(map(Scope::Device, "CT-DEV1", "6", "CT-404"), audit("map"))
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
    assert_eq!(
        n_audit(store).await,
        before,
        "refused changes are not audited"
    );
    // The same employee on the device agrees with the site mapping: allowed.
    store
        .add_mapping(map(Scope::Device, "CT-DEV1", "5", "CT-1"), audit("map"))
        .await
        .expect("agreeing device mapping");
    store
        .remove_mapping(Scope::Device, "CT-DEV1", "5", audit("unmap"))
        .await
        .expect("remove");
    let again = store
        .remove_mapping(Scope::Device, "CT-DEV1", "5", audit("unmap"))
        .await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
    let mappings = store.list_mappings().await.expect("list");
    assert_eq!(
        mappings
            .iter()
            .filter(|m| m.scope_key.starts_with("CT-"))
            .collect::<Vec<_>>(),
        [&map(Scope::Site, "CT-S1", "5", "CT-1")]
    );
}

async fn shifts_and_roster_are_all_or_nothing(store: &dyn Store) {
    let def = ShiftDef {
        name: "CT-Day".into(),
        definition: serde_json::json!({"start": "09:00:00"}),
    };
    store
        .put_shift(def.clone(), false, audit("shift"))
        .await
        .expect("shift");
    let dup = store.put_shift(def.clone(), false, audit("shift")).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let mut changed = def.clone();
    changed.definition = serde_json::json!({"start": "10:00:00"});
    store
        .put_shift(changed.clone(), true, audit("shift"))
        .await
        .expect("replace");
    let shifts = store.list_shifts().await.expect("list");
    assert_eq!(shifts.iter().find(|s| s.name == "CT-Day"), Some(&changed));

    let line = |code: &str, d: u32, shift: Option<&str>| RosterEntry {
        employee_code: code.into(),
        day: day(d),
        shift: shift.map(str::to_owned),
    };
    let bad = store
        .put_roster(
            vec![line("CT-1", 5, Some("CT-Day")), line("CT-404", 6, None)],
            audit("roster"),
        )
        .await;
    assert!(matches!(bad, Err(StoreError::NotFound(_))), "{bad:?}");
    let bad = store
        .put_roster(vec![line("CT-1", 5, Some("CT-Nope"))], audit("roster"))
        .await;
    assert!(matches!(bad, Err(StoreError::NotFound(_))), "{bad:?}");
    let held = store.list_roster(day(1), day(31)).await.expect("list");
    assert!(held.iter().all(|r| r.employee_code != "CT-1"), "{held:?}");
    store
        .put_roster(
            vec![line("CT-1", 5, Some("CT-Day")), line("CT-1", 6, None)],
            audit("roster"),
        )
        .await
        .expect("roster");
    let held = store.list_roster(day(5), day(6)).await.expect("list");
    assert_eq!(held, [line("CT-1", 5, Some("CT-Day"))]);
}

async fn corrections_signoffs_and_punch_windows(store: &dyn Store) {
    let dev = DeviceSn::parse("CT-DEV1").expect("sn");
    let mut batch = Batch::new(RawEntry {
        received_at: at(0),
        device_sn: Some(dev.clone()),
        source: Source::Push,
        kind: "ATTLOG".into(),
        request: "contract".into(),
        remote_addr: None,
        body: b"x".to_vec(),
        errors: Vec::new(),
    });
    for (i, secs) in [0i64, 3600, 7200].iter().enumerate() {
        let utc = at(*secs);
        batch.punches.push(NewPunch {
            device_sn: dev.clone(),
            pin: Pin(if i == 2 { "77".into() } else { "5".into() }),
            punched_at: utc.naive_utc() + Duration::hours(2),
            time_zone: "Europe/Berlin".into(),
            punched_at_utc: utc,
            punch_state: Some(PunchState::CheckIn),
            verify_mode: None,
            work_code: None,
            extra: Vec::new(),
            source: Source::Push,
        });
    }
    store.write_batch(batch).await.expect("batch");
    let window = store
        .punches_between(vec![dev.clone()], at(0), at(7200))
        .await
        .expect("window");
    assert_eq!(
        window.iter().map(|p| p.punched_at_utc).collect::<Vec<_>>(),
        [at(0), at(3600)],
        "from inclusive, to exclusive, by the UTC instant"
    );
    // The attendance read is the same window with only what the month uses.
    let lean = store
        .attendance_punches_between(vec![dev.clone()], at(0), at(7200))
        .await
        .expect("attendance window");
    assert_eq!(
        lean,
        window
            .iter()
            .map(crate::store::attendance::AttendancePunch::from)
            .collect::<Vec<_>>()
    );
    assert_eq!(&*lean[0].pin, "5");
    assert_eq!(lean[0].punch_state, Some(0));
    let max = store.max_punch_id().await.expect("max");
    assert_eq!(max, window[1].id + 1);
    // What arrived after an id: by id, up to an id, limited; other devices and no devices give nothing.
    let ids = [window[0].id, window[1].id, max];
    let after = |after: i64, up_to: i64, limit: usize, devices: Vec<DeviceSn>| async move {
        store
            .punches_after_id(devices, after, up_to, limit)
            .await
            .expect("after id")
            .iter()
            .map(|p| p.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(after(ids[0] - 1, max, 10, vec![dev.clone()]).await, ids);
    assert_eq!(after(ids[0], max, 10, vec![dev.clone()]).await, ids[1..]);
    assert_eq!(after(ids[0] - 1, max, 2, vec![dev.clone()]).await, ids[..2]);
    assert_eq!(
        after(ids[0] - 1, ids[1], 10, vec![dev.clone()]).await,
        ids[..2]
    );
    assert_eq!(
        after(max, max, 10, vec![dev.clone()]).await,
        Vec::<i64>::new()
    );
    let other = DeviceSn::parse("CT-OTHER").expect("sn");
    assert_eq!(after(0, max, 10, vec![other]).await, Vec::<i64>::new());
    assert_eq!(after(0, max, 10, Vec::new()).await, Vec::<i64>::new());
    let full = store
        .punches_after_id(vec![dev.clone()], ids[1], max, 10)
        .await
        .expect("after id");
    assert_eq!(
        (full[0].pin.0.as_str(), full[0].punched_at_utc),
        ("77", at(7200)),
        "whole punches"
    );
    let seen = store.pins_seen().await.expect("seen");
    let five = seen
        .iter()
        .find(|s| s.device_sn == dev && s.pin == "5")
        .expect("pin 5");
    assert_eq!(
        (five.count, five.first_seen, five.last_seen),
        (2, at(0), at(3600))
    );
    // Per hour of terminal local time (Berlin, +2 h here): two hours hold PIN 5's punches, the next PIN 77's;
    // the end is exclusive and other devices count nothing.
    let local = |secs: i64| at(secs).naive_utc() + Duration::hours(2);
    let hour = |t: chrono::NaiveDateTime| {
        t.date()
            .and_hms_opt(chrono::Timelike::hour(&t), 0, 0)
            .expect("hour")
    };
    assert_eq!(
        store
            .punches_per_hour(vec![dev.clone()], local(0), local(7200))
            .await
            .expect("per hour"),
        [(hour(local(0)), 1), (hour(local(3600)), 1)]
    );
    assert_eq!(
        store
            .punches_per_hour(
                vec![dev.clone(), DeviceSn::parse("CT-OTHER").expect("sn")],
                local(-3600),
                local(7201)
            )
            .await
            .expect("per hour"),
        [
            (hour(local(0)), 1),
            (hour(local(3600)), 1),
            (hour(local(7200)), 1)
        ]
    );
    // The same over an id range only: (ids[0], max] holds PIN 5's second punch and PIN 77's.
    let between = store
        .pins_seen_between(ids[0], max)
        .await
        .expect("seen between");
    let mine: Vec<_> = between
        .iter()
        .filter(|s| s.device_sn == dev)
        .map(|s| (s.pin.as_str(), s.count, s.first_seen, s.last_seen))
        .collect();
    assert_eq!(
        mine,
        [("5", 1, at(3600), at(3600)), ("77", 1, at(7200), at(7200))]
    );
    assert!(store
        .pins_seen_between(max, max)
        .await
        .expect("empty range")
        .is_empty());

    let correction = Correction {
        id: 0,
        employee_code: "CT-1".into(),
        day: day(5),
        kind: CorrectionKind::VoidPunch,
        punched_at: None,
        punch_state: None,
        punch_id: Some(window[0].id),
        status: None,
        minutes: None,
        author: "hr".into(),
        reason: "wrong person".into(),
        created_at: at(10),
    };
    let stored = store
        .add_correction(correction.clone(), audit("correct"))
        .await
        .expect("correct");
    assert!(stored.id > 0);
    let missing = Correction {
        punch_id: Some(max + 1000),
        ..correction.clone()
    };
    assert!(matches!(
        store.add_correction(missing, audit("correct")).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.list_corrections(day(5), day(6)).await.expect("list"),
        [stored]
    );

    let signoff = SignOff {
        site: "CT-S1".into(),
        month: "2026-10".into(),
        signed_at: at(20),
        author: "hr".into(),
        forced: true,
        max_punch_id: max,
        snapshot: serde_json::json!({"frozen": true}),
    };
    store
        .sign_off(signoff.clone(), audit("signoff"))
        .await
        .expect("sign off");
    assert!(matches!(
        store.sign_off(signoff.clone(), audit("signoff")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.get_signoff("CT-S1", "2026-10").await.expect("get"),
        Some(signoff)
    );
    store
        .reopen("CT-S1", "2026-10", audit("reopen"))
        .await
        .expect("reopen");
    assert_eq!(
        store.get_signoff("CT-S1", "2026-10").await.expect("get"),
        None
    );
    assert!(matches!(
        store.reopen("CT-S1", "2026-10", audit("reopen")).await,
        Err(StoreError::NotFound(_))
    ));
    let log = store.list_audit(2).await.expect("audit");
    assert_eq!(
        log.iter()
            .map(|e| e.record.action.as_str())
            .collect::<Vec<_>>(),
        ["reopen", "signoff"]
    );
    assert_eq!(log[0].record.detail, serde_json::json!({"n": 1}));
}

/// The attendance read gives the same rows whether a device's rows lie densely in the table or scattered among
/// another device's (the SQLite store reads the two cases differently: one pass over the id range, or the identity
/// index row by row).
async fn attendance_read_dense_and_scattered(store: &dyn Store) {
    let mine = DeviceSn::parse("CT-LEAN1").expect("sn");
    let other = DeviceSn::parse("CT-LEAN2").expect("sn");
    let punch = |sn: &DeviceSn, pin: &str, secs: i64| {
        let utc = at(secs);
        NewPunch {
            device_sn: sn.clone(),
            pin: Pin(pin.into()),
            punched_at: utc.naive_utc() + Duration::hours(1),
            time_zone: "Europe/Berlin".into(),
            punched_at_utc: utc,
            punch_state: if secs % 2 == 0 {
                Some(PunchState::CheckOut)
            } else {
                None
            },
            verify_mode: None,
            work_code: None,
            extra: Vec::new(),
            source: Source::Push,
        }
    };
    let write = |punches: Vec<NewPunch>| async move {
        let mut batch = Batch::new(RawEntry {
            received_at: at(0),
            device_sn: None,
            source: Source::Import,
            kind: "ATTLOG".into(),
            request: "contract".into(),
            remote_addr: None,
            body: Vec::new(),
            errors: Vec::new(),
        });
        batch.punches = punches;
        store.write_batch(batch).await.expect("batch");
    };
    let read = |from: i64, to: i64| {
        let mine = mine.clone();
        async move {
            let full = store
                .punches_between(vec![mine.clone()], at(from), at(to))
                .await
                .expect("punches");
            let lean = store
                .attendance_punches_between(vec![mine], at(from), at(to))
                .await
                .expect("attendance punches");
            (full, lean)
        }
    };
    // Dense: four punches of one device in a row.
    write(
        (0..4)
            .map(|i| punch(&mine, "1", 100_000 + i * 60))
            .collect(),
    )
    .await;
    let (full, lean) = read(100_000, 100_000 + 3600).await;
    assert_eq!(full.len(), 4);
    assert_eq!(
        lean,
        full.iter().map(AttendancePunch::from).collect::<Vec<_>>()
    );
    // Scattered: forty punches of another device between this device's, and one outside the UTC window.
    write((0..40).map(|i| punch(&other, "2", 100_000 + i)).collect()).await;
    write(vec![
        punch(&mine, "3", 100_000 + 7),
        punch(&mine, "4", 100_000 + 9999),
    ])
    .await;
    let (full, lean) = read(100_000, 100_000 + 3600).await;
    assert_eq!(full.len(), 5, "four, the late one, not the one outside");
    assert_eq!(
        lean,
        full.iter().map(AttendancePunch::from).collect::<Vec<_>>()
    );
    assert!(lean.windows(2).all(|w| w[0].id < w[1].id), "by id");
    assert_eq!(&*lean[4].pin, "3");
    assert_eq!(lean[4].punch_state, None);
}

fn nov(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).expect("test date")
}

/// `list_roster_page`: byte order of the code then day, the day range, the employee filter (case-sensitive
/// "contains"), limit and offset, and the count of every matching line whatever the page.
async fn roster_is_paged_and_counted_in_the_store(store: &dyn Store) {
    // Byte order puts "RP-B" before "RP-a" (a linguistic collation would not).
    let codes = ["RP-a", "RP-B", "RP-Ba", "RP-c"];
    store
        .put_employees(
            codes.iter().map(|c| employee(c, "CT-S1")).collect(),
            audit("import"),
        )
        .await
        .expect("employees");
    let mut lines = Vec::new();
    for code in codes {
        // The last day of October and the first of December lie outside November.
        for d in [day(31), nov(1), nov(2), nov(30)] {
            lines.push(RosterEntry {
                employee_code: code.into(),
                day: d,
                shift: None,
            });
        }
        lines.push(RosterEntry {
            employee_code: code.into(),
            day: NaiveDate::from_ymd_opt(2026, 12, 1).expect("date"),
            shift: None,
        });
    }
    store
        .put_roster(lines, audit("roster"))
        .await
        .expect("roster");
    let (first, next) = (nov(1), NaiveDate::from_ymd_opt(2026, 12, 1).expect("date"));
    let keys = |page: &super::attendance::RosterPage| -> Vec<(String, u32)> {
        page.lines
            .iter()
            .map(|l| (l.employee_code.clone(), chrono::Datelike::day(&l.day)))
            .collect()
    };
    let all = store
        .list_roster_page(first, next, "RP-", 100, 0)
        .await
        .expect("page");
    assert_eq!(all.total, 12);
    let expected: Vec<(String, u32)> = ["RP-B", "RP-Ba", "RP-a", "RP-c"]
        .iter()
        .flat_map(|c| [1, 2, 30].map(|d| ((*c).to_owned(), d)))
        .collect();
    assert_eq!(keys(&all), expected);
    let page = store
        .list_roster_page(first, next, "RP-", 5, 5)
        .await
        .expect("page");
    assert_eq!((keys(&page), page.total), (expected[5..10].to_vec(), 12));
    let past = store
        .list_roster_page(first, next, "RP-", 5, 100)
        .await
        .expect("page");
    assert_eq!((past.lines.len(), past.total), (0, 12));
    // "contains", case-sensitive: "B" is in RP-B and RP-Ba only.
    let b = store
        .list_roster_page(first, next, "B", 2, 0)
        .await
        .expect("page");
    assert_eq!(
        (keys(&b), b.total),
        (vec![("RP-B".to_owned(), 1), ("RP-B".to_owned(), 2)], 6)
    );
    // The filter is text, not a pattern.
    let none = store
        .list_roster_page(first, next, "RP-%", 10, 0)
        .await
        .expect("page");
    assert_eq!((none.lines.len(), none.total), (0, 0));
    // No filter: every line of the range, these among them.
    let every = store
        .list_roster_page(first, next, "", 10_000, 0)
        .await
        .expect("page");
    assert_eq!(every.total as usize, every.lines.len());
    assert_eq!(
        every
            .lines
            .iter()
            .filter(|l| l.employee_code.starts_with("RP-"))
            .count(),
        12
    );
}

/// `corrections_of` lists an employee's corrections in a range, revoked ones with who revoked them, when and why
/// (the revocation's audit author and `detail.reason`); `list_corrections` leaves the revoked ones out.
async fn revoked_corrections_keep_who_and_why(store: &dyn Store) {
    let correction = |reason: &str| Correction {
        id: 0,
        employee_code: "CT-1".into(),
        day: nov(3),
        kind: CorrectionKind::SetStatus,
        punched_at: None,
        punch_state: None,
        punch_id: None,
        status: Some("leave".into()),
        minutes: None,
        author: "hr".into(),
        reason: reason.into(),
        created_at: at(30),
    };
    let kept = store
        .add_correction(correction("sick note"), audit("correction.add"))
        .await
        .expect("correct");
    let taken_back = store
        .add_correction(correction("typo"), audit("correction.add"))
        .await
        .expect("correct");
    store
        .revoke_correction(
            taken_back.id,
            at(40),
            AuditRecord {
                author: "ui:hana".into(),
                action: "correction.revoke".into(),
                subject: "CT-1/2026-11-03".into(),
                detail: serde_json::json!({"kind": "set-status", "reason": "wrong day"}),
            },
        )
        .await
        .expect("revoke");
    let listed = store
        .corrections_of("CT-1", nov(3), nov(4))
        .await
        .expect("corrections");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!((&listed[0].correction, &listed[0].revoked), (&kept, &None));
    assert_eq!(listed[1].correction, taken_back);
    assert_eq!(
        listed[1].revoked,
        Some(Revocation {
            at: at(40),
            author: "ui:hana".into(),
            reason: "wrong day".into(),
        })
    );
    assert!(store
        .corrections_of("CT-2", nov(3), nov(4))
        .await
        .expect("corrections")
        .is_empty());
    assert!(store
        .corrections_of("CT-1", nov(4), nov(5))
        .await
        .expect("corrections")
        .is_empty());
    assert_eq!(
        store.list_corrections(nov(3), nov(4)).await.expect("list"),
        [kept]
    );
}

/// The saved per-PIN summary: none at first; a whole save replaces every row; a save of changed pairs overwrites
/// those pairs and keeps the others, and is refused (nothing written) unless the saved summary counts up to an id
/// between its base and its new id. Times keep their milliseconds; pairs come back in byte order.
async fn pin_summary_saves_whole_or_changed_pairs(store: &dyn Store) {
    let pair = |sn: &str, pin: &str, count: u64, first: i64, last: i64| PinSeen {
        device_sn: DeviceSn::parse(sn).expect("sn"),
        pin: pin.into(),
        count,
        first_seen: at(first) + Duration::milliseconds(250),
        last_seen: at(last) + Duration::milliseconds(999),
    };
    assert_eq!(store.load_pin_summary().await.expect("load"), None);
    // Changed pairs with nothing saved: refused, nothing written.
    let refused = store
        .save_pin_summary(Some(0), 5, vec![pair("CT-SUM1", "1", 1, 0, 0)])
        .await
        .expect("save");
    assert!(!refused);
    assert_eq!(store.load_pin_summary().await.expect("load"), None);

    let (a, b) = (
        pair("CT-SUM1", "9", 3, 0, 20),
        pair("CT-SUM1", "10", 1, 5, 5),
    );
    let c = pair("CT-SUM2", "007", 2, -50, 7);
    assert!(store
        .save_pin_summary(None, 10, vec![a.clone(), b.clone(), c.clone()])
        .await
        .expect("whole"));
    assert_eq!(
        store.load_pin_summary().await.expect("load"),
        Some((10, vec![b.clone(), a.clone(), c.clone()]))
    );

    // Pairs changed after 10, up to 15: b overwritten, a new pair added, a and c kept.
    let b2 = pair("CT-SUM1", "10", 4, 5, 60);
    let d = pair("CT-SUM1", "00", 1, 61, 61);
    assert!(store
        .save_pin_summary(Some(10), 15, vec![b2.clone(), d.clone()])
        .await
        .expect("changed"));
    let after = Some((15, vec![d.clone(), b2.clone(), a.clone(), c.clone()]));
    assert_eq!(store.load_pin_summary().await.expect("load"), after);
    // A base above what is saved (pairs changed in 15..=20 would be missed), or an id below it: refused.
    for (base, up_to) in [(20, 25), (5, 12)] {
        let saved = store
            .save_pin_summary(Some(base), up_to, vec![pair("CT-SUM1", "9", 99, 0, 99)])
            .await
            .expect("save");
        assert!(!saved, "after {base} up to {up_to}");
        assert_eq!(store.load_pin_summary().await.expect("load"), after);
    }
    // A base below and an id above what is saved: written.
    let a2 = pair("CT-SUM1", "9", 5, 0, 80);
    assert!(store
        .save_pin_summary(Some(12), 18, vec![a2.clone()])
        .await
        .expect("changed"));
    assert_eq!(
        store.load_pin_summary().await.expect("load"),
        Some((18, vec![d, b2, a2, c.clone()]))
    );

    // The whole again: what it leaves out is gone.
    let c2 = pair("CT-SUM2", "007", 3, -50, 90);
    assert!(store
        .save_pin_summary(None, 30, vec![c2.clone()])
        .await
        .expect("whole"));
    assert_eq!(
        store.load_pin_summary().await.expect("load"),
        Some((30, vec![c2]))
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{Durability, SqliteStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_store_keeps_the_attendance_contract() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            SqliteStore::open(&dir.path().join("att.db"), Durability::PowerSafe).expect("open");
        run_all(&store).await;
    }

    /// The same checks on PostgreSQL, in a schema of their own, when `PUNCHD_TEST_POSTGRES_URL` is set (always in
    /// CI); on their own so an attendance failure is not hidden behind another area's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_store_keeps_the_attendance_contract() {
        let url = match std::env::var("PUNCHD_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                assert!(
                    std::env::var("CI").is_err(),
                    "PUNCHD_TEST_POSTGRES_URL must be set in CI (.ci/run sets it)"
                );
                eprintln!("skipped: PUNCHD_TEST_POSTGRES_URL is not set");
                return;
            }
        };
        let store = crate::store::postgres::PgStore::open_isolated_for_test(&url)
            .await
            .expect("open postgres");
        run_all(&store).await;
    }
}
