//! The [`PushStore`](super::push::PushStore) contract, written against `&dyn Store` only (like `contract.rs`), so
//! a PostgreSQL backend runs the same checks: push terminal authentication state, user files, and the effect of a
//! succeeded `upsert_user` on punchd's copy of a terminal's users.

use chrono::{DateTime, TimeZone, Utc};

use super::push::PushAuthPatch;
use super::{Batch, CommandCompletion, DeviceContact, Photo, RawEntry, Store, StoreError};
use crate::domain::{Approval, CommandKind, DeviceSn, NewCommand, Pin, Source, Transport};

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + secs, 0)
        .single()
        .expect("valid instant")
}

async fn push_device(store: &dyn Store, sn: &str) -> DeviceSn {
    let sn = DeviceSn::parse(sn).expect("valid SN");
    store
        .upsert_device(DeviceContact {
            sn: sn.clone(),
            poll_delay_secs: 10,
            approval_if_new: Approval::Approved,
            transport: Transport::Push,
            seen_at: at(0),
            ip: Some("192.0.2.10".into()),
            firmware: None,
            push_version: None,
            language: None,
            device_type: None,
        })
        .await
        .expect("device");
    sn
}

/// Run every check against `store`. Panics on the first broken rule.
pub(crate) async fn run_all(store: &dyn Store) {
    auth_state_binds_holds_accepts_and_patches(store).await;
    user_files_are_listed_per_user(store).await;
    succeeded_upsert_user_is_kept(store).await;
}

async fn auth_state_binds_holds_accepts_and_patches(store: &dyn Store) {
    let sn = push_device(store, "CPUSH0001").await;
    let fresh = store.push_auth(&sn).await.expect("read");
    assert_eq!(fresh, Default::default());
    let bound = store
        .bind_push_address(&sn, "192.0.2.10", at(1))
        .await
        .expect("bind");
    assert_eq!(bound.addresses, ["192.0.2.10"]);
    let held = store
        .hold_push_address(&sn, "198.51.100.7", 1, at(2))
        .await
        .expect("hold");
    let again = store
        .hold_push_address(&sn, "198.51.100.7", 4, at(3))
        .await
        .expect("hold");
    assert_eq!(held.held_since, Some(at(2)));
    assert_eq!(
        (
            again.held_address.as_deref(),
            again.held_since,
            again.held_requests
        ),
        (Some("198.51.100.7"), Some(at(2)), 5)
    );
    let accepted = store
        .accept_held_push_address(&sn, at(4))
        .await
        .expect("accept");
    assert_eq!(accepted.addresses, ["192.0.2.10", "198.51.100.7"]);
    assert_eq!((accepted.held_address, accepted.held_requests), (None, 0));
    let keyed = store
        .update_push_auth(
            &sn,
            PushAuthPatch {
                bind_addresses: Some(Some(false)),
                comm_key: Some(Some("K1".into())),
                ..PushAuthPatch::default()
            },
            at(5),
        )
        .await
        .expect("patch");
    assert_eq!(
        (
            keyed.bind_addresses,
            keyed.comm_key.as_deref(),
            keyed.comm_key_seen
        ),
        (Some(false), Some("K1"), false)
    );
    assert!(
        store
            .mark_push_comm_key_seen(&sn, at(6))
            .await
            .expect("seen")
            .comm_key_seen
    );
    let pinned = store
        .pin_push_handshake_key(&sn, "abc", at(7))
        .await
        .expect("pin");
    assert_eq!(pinned.handshake_key.as_deref(), Some("abc"));
    let reset = store
        .update_push_auth(
            &sn,
            PushAuthPatch {
                bind_addresses: Some(None),
                comm_key: Some(None),
                clear_handshake_key: true,
                clear_addresses: true,
            },
            at(8),
        )
        .await
        .expect("reset");
    assert_eq!(reset, Default::default());
    assert_eq!(store.push_auth(&sn).await.expect("read"), reset);
}

async fn user_files_are_listed_per_user(store: &dyn Store) {
    let sn = push_device(store, "CPUSH0002").await;
    let mut batch = Batch::new(RawEntry {
        received_at: at(10),
        device_sn: Some(sn.clone()),
        source: Source::Push,
        kind: "fdata".into(),
        request: "POST /iclock/fdata".into(),
        remote_addr: None,
        body: vec![1, 2, 3],
        errors: Vec::new(),
    });
    for (kind, pin, name) in [
        ("userfile", "7", "a.bin"),
        ("attphoto", "7", "b.jpg"),
        ("userfile", "8", "c.bin"),
    ] {
        batch.photos.push(Photo {
            device_sn: sn.clone(),
            kind: kind.into(),
            pin: Some(pin.into()),
            file_name: name.into(),
            taken_at: None,
            content: vec![1, 2, 3],
        });
    }
    store.write_batch(batch).await.expect("write");
    let files = store
        .list_user_files(&sn, &Pin("7".into()))
        .await
        .expect("list");
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        (
            files[0].kind.as_str(),
            files[0].file_name.as_str(),
            files[0].size
        ),
        ("userfile", "a.bin", 3)
    );
    let (file, bytes) = store
        .get_user_file(&sn, &Pin("7".into()), files[0].id)
        .await
        .expect("get");
    assert_eq!((file, bytes), (files[0].clone(), vec![1, 2, 3]));
    assert!(matches!(
        store
            .get_user_file(&sn, &Pin("8".into()), files[0].id)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn succeeded_upsert_user_is_kept(store: &dyn Store) {
    let sn = push_device(store, "CPUSH0003").await;
    let upsert = |name: &str| CommandKind::UpsertUser {
        pin: "42".into(),
        name: name.into(),
        privilege: 0,
        password: String::new(),
        card: "9".into(),
        group: String::new(),
    };
    for (name, code) in [("Ann", 0), ("Ann Lee", 0), ("Nope", -1)] {
        let queued = store
            .enqueue_commands(
                vec![NewCommand {
                    device_sn: sn.clone(),
                    kind: upsert(name),
                    wire: Some("DATA UPDATE USERINFO …".into()),
                    requested_by: "test".into(),
                }],
                at(20),
            )
            .await
            .expect("enqueue");
        store
            .mark_sent(vec![queued[0].id], at(21))
            .await
            .expect("sent");
        store
            .complete_commands(
                &sn,
                vec![CommandCompletion {
                    id: queued[0].id,
                    return_code: code,
                    message: String::new(),
                    result: None,
                }],
                at(22),
            )
            .await
            .expect("complete");
    }
    let users = store.list_device_users(&sn).await.expect("users");
    assert_eq!(users.len(), 1);
    assert_eq!(
        (
            users[0].pin.as_str(),
            users[0].name.as_str(),
            users[0].card.as_str(),
            users[0].group.as_str(),
            users[0].enabled
        ),
        ("42", "Ann Lee", "9", "1", true)
    );
}

#[cfg(test)]
mod tests {
    use crate::store::sqlite::{Durability, SqliteStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_store_keeps_the_push_contract() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("contract_push.db"), Durability::PowerSafe)
            .expect("open");
        super::run_all(&store).await;
    }
}
