//! The UI accounts part of the store contract ([`UiAccountsStore`]): accounts, sessions, idle expiry, and what
//! disabling, a new password or signing out everywhere does to sessions, and the audit of account changes. Written against `&dyn Store` only, so the PostgreSQL backend
//! runs the same checks.

use chrono::{Duration, TimeZone, Utc};

use super::attendance::AuditRecord;
use super::ui_accounts::NewUiSession;
use super::{Store, StoreError};
use crate::domain::Role;

fn session(hash: &str, account_id: i64, now: chrono::DateTime<Utc>) -> NewUiSession {
    NewUiSession {
        token_hash: hash.to_owned(),
        account_id,
        csrf_token: format!("csrf-{hash}"),
        remote_addr: Some("192.0.2.7".to_owned()),
        now,
    }
}

/// Every check of the UI accounts contract.
pub(crate) async fn run_all(store: &dyn Store) {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap();
    let ana = store
        .create_ui_account("ana", Role::Admin, "$argon2id$hash-a", t0)
        .await
        .expect("create ana");
    assert_eq!(
        (ana.name.as_str(), ana.role, ana.disabled),
        ("ana", Role::Admin, false)
    );
    assert_eq!(ana.created_at, t0);
    assert_eq!(ana.last_login_at, None);
    assert!(matches!(
        store.create_ui_account("ana", Role::Viewer, "x", t0).await,
        Err(StoreError::Conflict(_))
    ));
    let vic = store
        .create_ui_account("vic", Role::Viewer, "$argon2id$hash-v", t0)
        .await
        .expect("create vic");

    // The hash is read back exactly; an unknown name is None.
    let (account, hash) = store
        .ui_password_hash("ana")
        .await
        .expect("hash")
        .expect("ana exists");
    assert_eq!((account.id, hash.as_str()), (ana.id, "$argon2id$hash-a"));
    assert!(store
        .ui_password_hash("nobody")
        .await
        .expect("hash")
        .is_none());

    // A session is found with its CSRF token while used within the idle window, and records the sign-in.
    let t1 = t0 + Duration::minutes(1);
    store
        .create_ui_session(session("s-ana", ana.id, t1))
        .await
        .expect("session");
    let found = store
        .find_ui_session("s-ana", t1 - Duration::minutes(30))
        .await
        .expect("find")
        .expect("live session");
    assert_eq!(found.account.name, "ana");
    assert_eq!(found.csrf_token, "csrf-s-ana");
    assert_eq!((found.created_at, found.last_seen_at), (t1, t1));
    assert_eq!(found.account.last_login_at, Some(t1));
    assert!(store
        .find_ui_session("s-other", t0)
        .await
        .expect("find")
        .is_none());
    // Idle past the cut-off: not found; a touch moves last use forward (never back).
    assert!(store
        .find_ui_session("s-ana", t1 + Duration::seconds(1))
        .await
        .expect("find")
        .is_none());
    let t2 = t1 + Duration::minutes(20);
    store.touch_ui_session("s-ana", t2).await.expect("touch");
    store
        .touch_ui_session("s-ana", t1)
        .await
        .expect("touch back");
    let found = store
        .find_ui_session("s-ana", t2)
        .await
        .expect("find")
        .expect("touched session");
    assert_eq!(found.last_seen_at, t2);

    // A new role is seen by the live session.
    let ana2 = store.set_ui_role("ana", Role::Hr, t2).await.expect("role");
    assert_eq!((ana2.role, ana2.updated_at), (Role::Hr, t2));
    let found = store.find_ui_session("s-ana", t2).await.expect("find");
    assert_eq!(found.map(|s| s.account.role), Some(Role::Hr));

    // A new password ends the account's sessions, and only its own.
    store
        .create_ui_session(session("s-vic", vic.id, t2))
        .await
        .expect("session vic");
    store
        .set_ui_password("ana", "$argon2id$hash-a2", t2)
        .await
        .expect("passwd");
    assert!(store
        .find_ui_session("s-ana", t0)
        .await
        .expect("find")
        .is_none());
    assert!(store
        .find_ui_session("s-vic", t0)
        .await
        .expect("find")
        .is_some());
    let (_, hash) = store
        .ui_password_hash("ana")
        .await
        .expect("hash")
        .expect("ana");
    assert_eq!(hash, "$argon2id$hash-a2");

    // Disabling ends sessions and keeps new ones from being found; enabling lets the account sign in again.
    let disabled = store
        .set_ui_disabled("vic", true, t2)
        .await
        .expect("disable");
    assert!(disabled.disabled);
    assert!(store
        .find_ui_session("s-vic", t0)
        .await
        .expect("find")
        .is_none());
    store
        .create_ui_session(session("s-vic2", vic.id, t2))
        .await
        .expect("session of a disabled account is stored");
    assert!(store
        .find_ui_session("s-vic2", t0)
        .await
        .expect("find")
        .is_none());
    store
        .set_ui_disabled("vic", false, t2)
        .await
        .expect("enable");
    assert!(store
        .find_ui_session("s-vic2", t0)
        .await
        .expect("find")
        .is_some());

    // Sign-out; pruning forgets idle sessions only.
    store.delete_ui_session("s-vic2").await.expect("sign out");
    store
        .delete_ui_session("s-vic2")
        .await
        .expect("twice is fine");
    assert!(store
        .find_ui_session("s-vic2", t0)
        .await
        .expect("find")
        .is_none());
    store
        .create_ui_session(session("s-old", ana.id, t0))
        .await
        .expect("old");
    store
        .create_ui_session(session("s-new", ana.id, t2))
        .await
        .expect("new");
    assert_eq!(store.prune_ui_sessions(t1).await.expect("prune"), 1);
    assert!(store
        .find_ui_session("s-new", t0)
        .await
        .expect("find")
        .is_some());

    // Signing an account out everywhere ends all its sessions and no other account's.
    store
        .create_ui_session(session("s-new2", ana.id, t2))
        .await
        .expect("second");
    store
        .create_ui_session(session("s-vic3", vic.id, t2))
        .await
        .expect("vic");
    assert_eq!(store.end_ui_sessions("ana").await.expect("end"), 2);
    assert_eq!(store.end_ui_sessions("ana").await.expect("again"), 0);
    for (hash, live) in [("s-new", false), ("s-new2", false), ("s-vic3", true)] {
        let found = store.find_ui_session(hash, t0).await.expect("find");
        assert_eq!(found.is_some(), live, "{hash}");
    }
    assert!(matches!(
        store.end_ui_sessions("nobody").await,
        Err(StoreError::NotFound(_))
    ));

    // An account change is audited as given.
    let audit = AuditRecord {
        author: "ana".into(),
        action: "ui_account.role".into(),
        subject: "vic".into(),
        detail: serde_json::json!({ "role": "hr" }),
    };
    store.audit_ui_account(audit.clone()).await.expect("audit");
    let log = store.list_audit(1).await.expect("log");
    assert_eq!(log.first().map(|e| &e.record), Some(&audit));

    // Unknown names are NotFound; the list is by name.
    assert!(matches!(
        store.set_ui_password("nobody", "x", t2).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.set_ui_disabled("nobody", true, t2).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.get_ui_account("nobody").await,
        Err(StoreError::NotFound(_))
    ));
    let names: Vec<String> = store
        .list_ui_accounts()
        .await
        .expect("list")
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["ana", "vic"]);
}

#[cfg(test)]
mod tests {
    use crate::store::sqlite::{Durability, SqliteStore};

    #[tokio::test]
    async fn sqlite_keeps_the_ui_accounts_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            SqliteStore::open(&dir.path().join("ui.db"), Durability::PowerSafe).expect("open");
        super::run_all(&store).await;
    }
}
