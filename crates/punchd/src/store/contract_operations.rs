//! Contract of [`OperationsStore`]: device removal keeps the audit trail, cancellation only of queued commands,
//! journal listing filters. Run against SQLite here; a PostgreSQL backend runs [`run_all`] too.

use chrono::{DateTime, TimeZone, Utc};

use super::operations::CancelError;
use super::{
    Batch, DeviceContact, JournalFilter, LineIssue, PunchFilter, RawEntry, Store, StoreError,
};
use crate::domain::{
    Approval, CommandKind, CommandStatus, DeviceSn, NewCommand, Source, Transport,
};

fn sn(s: &str) -> DeviceSn {
    DeviceSn::parse(s).expect("test SN")
}

fn instant(secs_after: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_720_000_000 + secs_after, 0)
        .single()
        .expect("test instant")
}

fn raw(dev: &DeviceSn, kind: &str, at: DateTime<Utc>, errors: Vec<LineIssue>) -> RawEntry {
    RawEntry {
        received_at: at,
        device_sn: Some(dev.clone()),
        source: Source::Push,
        kind: kind.into(),
        request: format!("POST /iclock/cdata?SN={dev}&table={kind}"),
        remote_addr: None,
        body: b"body".to_vec(),
        errors,
    }
}

/// Run every check against `store`.
pub(crate) async fn run_all(store: &dyn Store) {
    removed_devices_keep_their_punches_and_reach_other_instances(store).await;
    only_queued_commands_are_cancelled(store).await;
    journal_is_listed_with_filters(store).await;
}

async fn contact(store: &dyn Store, dev: &DeviceSn, at: DateTime<Utc>) {
    store
        .upsert_device(DeviceContact {
            sn: dev.clone(),
            poll_delay_secs: 10,
            approval_if_new: Approval::Approved,
            transport: Transport::Push,
            seen_at: at,
            ip: None,
            firmware: None,
            push_version: None,
            language: None,
            device_type: None,
        })
        .await
        .expect("upsert");
}

async fn removed_devices_keep_their_punches_and_reach_other_instances(store: &dyn Store) {
    let dev = sn("OPS-DEL-1");
    contact(store, &dev, instant(0)).await;
    let mut batch = Batch::new(raw(&dev, "ATTLOG", instant(1), Vec::new()));
    batch.punches.push(crate::domain::NewPunch {
        device_sn: dev.clone(),
        pin: crate::domain::Pin("7".into()),
        punched_at: chrono::NaiveDate::from_ymd_opt(2024, 7, 1)
            .and_then(|d| d.and_hms_opt(8, 0, 0))
            .expect("time"),
        punch_state: Some(crate::domain::PunchState::from_code(0)),
        verify_mode: Some(crate::domain::VerifyMode(1)),
        work_code: None,
        extra: Vec::new(),
        time_zone: "UTC".into(),
        punched_at_utc: instant(2),
        source: Source::Push,
    });
    store.write_batch(batch).await.expect("batch");
    let queued = store
        .enqueue_commands(
            vec![NewCommand {
                device_sn: dev.clone(),
                kind: CommandKind::Reboot,
                wire: Some("REBOOT".into()),
                requested_by: "test".into(),
            }],
            instant(3),
        )
        .await
        .expect("enqueue");
    let (_, revision) = store.devices_changed_since(0).await.expect("changed");
    store.delete_device(&dev, instant(4)).await.expect("delete");
    assert!(matches!(
        store.get_device(&dev).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_device(&dev, instant(5)).await,
        Err(StoreError::NotFound(_))
    ));
    let (deleted, deleted_max) = store
        .devices_deleted_since(revision)
        .await
        .expect("deleted");
    assert_eq!(deleted, vec![dev.clone()]);
    assert!(deleted_max > revision);
    let filter = PunchFilter {
        device_sn: Some(dev.clone()),
        ..PunchFilter::default()
    };
    assert_eq!(store.count_punches(&filter).await.expect("count"), 1);
    let command = store.get_command(queued[0].id).await.expect("command");
    assert_eq!(command.status, CommandStatus::Cancelled);
    // A later change gets a higher revision than the removal (instances never miss it).
    let other = sn("OPS-DEL-2");
    contact(store, &other, instant(6)).await;
    let (changed, max) = store
        .devices_changed_since(revision)
        .await
        .expect("changed");
    assert!(changed.iter().any(|d| d.sn == other));
    assert!(
        max > deleted_max,
        "revision went back: {max} after removal {deleted_max}"
    );
    assert!(store
        .devices_deleted_since(max)
        .await
        .expect("deleted")
        .0
        .is_empty());
}

async fn only_queued_commands_are_cancelled(store: &dyn Store) {
    let dev = sn("OPS-CAN-1");
    contact(store, &dev, instant(10)).await;
    let new = |text: &str| NewCommand {
        device_sn: dev.clone(),
        kind: CommandKind::Raw { text: text.into() },
        wire: Some(text.into()),
        requested_by: "test".into(),
    };
    let queued = store
        .enqueue_commands(vec![new("A"), new("B")], instant(11))
        .await
        .expect("enqueue");
    store
        .mark_sent(vec![queued[1].id], instant(12))
        .await
        .expect("sent");
    let cancelled = store
        .cancel_command(queued[0].id, "cli:ann", instant(13))
        .await
        .expect("cancel");
    assert_eq!(cancelled.status, CommandStatus::Cancelled);
    assert_eq!(cancelled.message.as_deref(), Some("cancelled by cli:ann"));
    assert_eq!(cancelled.finished_at, Some(instant(13)));
    assert!(store
        .queued_commands(&dev, 10)
        .await
        .expect("queued")
        .is_empty());
    match store.cancel_command(queued[1].id, "x", instant(14)).await {
        Err(CancelError::NotQueued(c)) => assert_eq!(c.status, CommandStatus::Sent),
        other => panic!("sent command cancelled: {other:?}"),
    }
    assert!(matches!(
        store.cancel_command(queued[0].id, "x", instant(14)).await,
        Err(CancelError::NotQueued(_))
    ));
    assert!(matches!(
        store.cancel_command(999_999, "x", instant(14)).await,
        Err(CancelError::Store(StoreError::NotFound(_)))
    ));
}

async fn journal_is_listed_with_filters(store: &dyn Store) {
    let dev = sn("OPS-JNL-1");
    let issue = LineIssue {
        line_no: 2,
        line: "bad".into(),
        reason: "no PIN".into(),
    };
    let a = store
        .write_journal(raw(&dev, "ATTLOG", instant(20), vec![issue.clone()]))
        .await
        .expect("journal");
    let b = store
        .write_journal(raw(&dev, "OPERLOG", instant(30), Vec::new()))
        .await
        .expect("journal");
    let ids = |filter: JournalFilter| async move {
        store
            .list_journal(&filter)
            .await
            .expect("list")
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    let mine = JournalFilter {
        device_sn: Some(dev.clone()),
        ..JournalFilter::default()
    };
    assert_eq!(ids(mine.clone()).await, vec![a, b]);
    assert_eq!(
        ids(JournalFilter {
            has_errors: Some(true),
            ..mine.clone()
        })
        .await,
        vec![a]
    );
    assert_eq!(
        ids(JournalFilter {
            has_errors: Some(false),
            ..mine.clone()
        })
        .await,
        vec![b]
    );
    assert_eq!(
        ids(JournalFilter {
            kind: Some("OPERLOG".into()),
            ..mine.clone()
        })
        .await,
        vec![b]
    );
    assert_eq!(
        ids(JournalFilter {
            from: Some(instant(25)),
            ..mine.clone()
        })
        .await,
        vec![b]
    );
    assert_eq!(
        ids(JournalFilter {
            to: Some(instant(30)),
            ..mine.clone()
        })
        .await,
        vec![a]
    );
    assert_eq!(
        ids(JournalFilter {
            after_id: Some(a),
            limit: 1,
            ..mine.clone()
        })
        .await,
        vec![b]
    );
    // Received before `b` but written after it (a slower request): a higher id, an earlier time. A start time
    // finds it all the same, and the listing stays in id order.
    let c = store
        .write_journal(raw(&dev, "ATTLOG", instant(26), Vec::new()))
        .await
        .expect("journal");
    assert!(c > b);
    assert_eq!(
        ids(JournalFilter {
            from: Some(instant(25)),
            ..mine.clone()
        })
        .await,
        vec![b, c]
    );
    assert_eq!(
        ids(JournalFilter {
            from: Some(instant(27)),
            ..mine.clone()
        })
        .await,
        vec![b]
    );
    assert_eq!(
        ids(JournalFilter {
            from: Some(instant(25)),
            after_id: Some(b),
            kind: Some("ATTLOG".into()),
            ..mine.clone()
        })
        .await,
        vec![c]
    );
    assert!(ids(JournalFilter {
        from: Some(instant(31)),
        ..mine.clone()
    })
    .await
    .is_empty());
    let listed = store.list_journal(&mine).await.expect("list");
    assert_eq!(listed[0].errors, vec![issue]);
    assert_eq!(listed[0].body_len, 4);
}

#[cfg(test)]
mod sqlite {
    use crate::store::sqlite::{Durability, SqliteStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_store_keeps_the_operations_contract() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            SqliteStore::open(&dir.path().join("ops.db"), Durability::PowerSafe).expect("open");
        super::run_all(&store).await;
    }
}
