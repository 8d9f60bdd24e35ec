//! The store contract for [`HardeningStore`](super::HardeningStore), against `&dyn Store` only (so a PostgreSQL
//! backend can run it): the pending-device cap, device records deduplicated, storage health.

use chrono::{TimeZone, Utc};

use super::{Batch, DeviceContact, DeviceRecord, RawEntry, Store};
use crate::domain::{Approval, DeviceSn, Source, Transport};

fn sn(s: &str) -> DeviceSn {
    DeviceSn::parse(s).expect("valid SN")
}

fn contact(sn: &DeviceSn, minute: u32, approval: Approval) -> DeviceContact {
    DeviceContact {
        sn: sn.clone(),
        poll_delay_secs: 10,
        approval_if_new: approval,
        transport: Transport::Push,
        seen_at: Utc
            .with_ymd_and_hms(2026, 1, 1, 8, minute, 0)
            .single()
            .expect("valid time"),
        ip: None,
        firmware: None,
        push_version: None,
        language: None,
        device_type: None,
    }
}

/// Run every check.
pub(crate) async fn run_all(store: &dyn Store) {
    pending_devices_beyond_the_cap_go_oldest_first(store).await;
    resent_device_records_are_kept_once(store).await;
    assert_eq!(
        store.storage_fault(),
        None,
        "a working store reports no fault"
    );
}

async fn pending_devices_beyond_the_cap_go_oldest_first(store: &dyn Store) {
    let approved = sn("HARD-P-APPROVED");
    store
        .upsert_device(contact(&approved, 0, Approval::Approved))
        .await
        .expect("approved device");
    for minute in 1..=5 {
        let dev = sn(&format!("HARD-P{minute}"));
        store
            .upsert_device(contact(&dev, minute, Approval::Pending))
            .await
            .expect("pending device");
    }
    let gone = store.prune_pending(2).await.expect("prune");
    assert_eq!(gone, vec![sn("HARD-P1"), sn("HARD-P2"), sn("HARD-P3")]);
    for minute in 1..=3 {
        assert!(store
            .get_device(&sn(&format!("HARD-P{minute}")))
            .await
            .is_err());
    }
    for minute in 4..=5 {
        assert!(store
            .get_device(&sn(&format!("HARD-P{minute}")))
            .await
            .is_ok());
    }
    assert!(store.get_device(&approved).await.is_ok());
    assert!(store.prune_pending(2).await.expect("prune").is_empty());
}

async fn resent_device_records_are_kept_once(store: &dyn Store) {
    let dev = sn("HARD-R1");
    for _ in 0..3 {
        let mut batch = Batch::new(RawEntry {
            received_at: Utc::now(),
            device_sn: Some(dev.clone()),
            source: Source::Push,
            kind: "IDCARD".into(),
            request: "POST /iclock/cdata?SN=HARD-R1&table=IDCARD".into(),
            remote_addr: None,
            body: b"IDCARD PIN=1\tIDNum=X".to_vec(),
            errors: Vec::new(),
        });
        batch.records = vec![DeviceRecord {
            device_sn: dev.clone(),
            tag: "IDCARD".into(),
            fields: vec![("PIN".into(), "1".into()), ("IDNum".into(), "X".into())],
        }];
        let outcome = store.write_batch(batch).await.expect("batch");
        assert_eq!(
            outcome.n_records, 1,
            "a re-sent record is still acknowledged"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{Durability, SqliteStore};
    use crate::store::HardeningStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_store_keeps_the_hardening_contract() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("hardening.db");
        let store = SqliteStore::open(&db, Durability::PowerSafe).expect("open");
        run_all(&store).await;
        let conn = rusqlite::Connection::open(&db).expect("open");
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM device_records WHERE device_sn = 'HARD-R1'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(n, 1);
    }

    /// A full database (here: `max_page_count` reached) sets the fault; once space is freed the writer's probe
    /// clears it on its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_storage_fault_is_set_by_a_full_database_and_cleared_when_space_returns() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("full.db");
        let store = SqliteStore::open(&db, Durability::PowerSafe).expect("open");
        let raw = |n: usize| RawEntry {
            received_at: Utc::now(),
            device_sn: None,
            source: Source::Push,
            kind: "test".into(),
            request: "test".into(),
            remote_addr: None,
            body: vec![7u8; n],
            errors: Vec::new(),
        };
        store.write_journal(raw(4096)).await.expect("small write");
        let limit = store.limit_size(2 * 1024 * 1024).await.expect("limit");
        assert!(limit >= 2 * 1024 * 1024 - 4096, "{limit}");
        // SQLite rolls the whole transaction back on SQLITE_FULL, so the caller may see the commit's error.
        store
            .write_journal(raw(4 * 1024 * 1024))
            .await
            .expect_err("over the size limit");
        let fault = store.storage_fault().expect("fault set");
        assert!(fault.contains("full"), "{fault}");
        store.limit_size(64 * 1024 * 1024).await.ok();
        // The probe runs within 2 s of idleness (or the next write clears it).
        let start = std::time::Instant::now();
        while store.storage_fault().is_some() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "not recovered"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
