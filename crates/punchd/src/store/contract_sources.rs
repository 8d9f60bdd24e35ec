//! The sources part of the store contract ([`SourcesStore`]): what every backend must do with sources, written
//! against `&dyn Store` only, so the PostgreSQL backend can run the same checks.

use chrono::{Duration, TimeZone, Utc};

use super::sources::{NewSource, SourceKind, SourceRun};
use super::{Store, StoreError};

fn webhook(name: &str, hash: &str) -> NewSource {
    NewSource {
        name: name.to_owned(),
        kind: SourceKind::Webhook,
        token_hash: Some(hash.to_owned()),
        time_zone: Some("Europe/Istanbul".to_owned()),
        settings: serde_json::Map::new(),
        secret: None,
    }
}

/// Every check of the sources contract.
pub(crate) async fn run_all(store: &dyn Store) {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap();
    let created = store
        .create_source(webhook("gate-app", "h1"), t0)
        .await
        .expect("create");
    assert_eq!(created.state, "new");
    assert_eq!(created.time_zone.as_deref(), Some("Europe/Istanbul"));
    assert!(matches!(
        store.create_source(webhook("gate-app", "h2"), t0).await,
        Err(StoreError::Conflict(_))
    ));
    // Found by its token hash only.
    let found = store.find_source_by_token("h1").await.expect("find");
    assert_eq!(found.map(|s| s.name), Some("gate-app".to_owned()));
    assert!(store
        .find_source_by_token("h2")
        .await
        .expect("find")
        .is_none());

    // Runs add up; an error is kept until the next success, which clears it but keeps its time.
    let t1 = t0 + Duration::seconds(10);
    let run = |at, error: Option<&str>, n_stored, cursor: Option<&str>| SourceRun {
        at,
        error: error.map(str::to_owned),
        n_stored,
        n_duplicate: 1,
        n_rejected: 2,
        cursor: cursor.map(str::to_owned),
    };
    store
        .record_source_run(created.id, run(t1, None, 5, Some("c1")))
        .await
        .expect("run 1");
    let t2 = t1 + Duration::seconds(10);
    store
        .record_source_run(created.id, run(t2, Some("server said 503"), 0, None))
        .await
        .expect("run 2");
    let s = store.get_source("gate-app").await.expect("get");
    assert_eq!(s.state, "failing");
    assert_eq!(s.last_error.as_deref(), Some("server said 503"));
    assert_eq!((s.last_success_at, s.last_error_at), (Some(t1), Some(t2)));
    assert_eq!(
        s.cursor.as_deref(),
        Some("c1"),
        "a run without a cursor keeps it"
    );
    assert_eq!(
        (s.n_runs, s.n_stored, s.n_duplicate, s.n_rejected),
        (2, 5, 2, 4)
    );
    let t3 = t2 + Duration::seconds(10);
    store
        .record_source_run(created.id, run(t3, None, 1, Some("c2")))
        .await
        .expect("run 3");
    let s = store.get_source("gate-app").await.expect("get");
    assert_eq!(s.state, "ok");
    assert_eq!(
        (s.last_error, s.last_success_at, s.last_error_at),
        (None, Some(t3), Some(t2))
    );
    assert_eq!(s.cursor.as_deref(), Some("c2"));
    assert!(matches!(
        store
            .record_source_run(i64::MAX, run(t3, None, 0, None))
            .await,
        Err(StoreError::NotFound(_))
    ));

    // ensure_source creates once, then returns the existing row unchanged.
    let import = NewSource {
        name: "import".to_owned(),
        kind: SourceKind::Import,
        token_hash: None,
        time_zone: None,
        settings: serde_json::Map::new(),
        secret: None,
    };
    let a = store
        .ensure_source(import.clone(), t0)
        .await
        .expect("ensure");
    let b = store.ensure_source(import, t3).await.expect("ensure again");
    assert_eq!(store.source_secret(a.id).await.expect("secret"), None);
    let with_secret = NewSource {
        name: "bt".to_owned(),
        kind: SourceKind::Biotime,
        token_hash: None,
        time_zone: None,
        settings: serde_json::Map::new(),
        secret: Some("pw".to_owned()),
    };
    let bt = store.create_source(with_secret, t0).await.expect("biotime");
    assert_eq!(
        store.source_secret(bt.id).await.expect("secret").as_deref(),
        Some("pw")
    );
    assert_eq!((a.id, a.created_at), (b.id, b.created_at));
    let names: Vec<String> = store
        .list_sources()
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["bt", "gate-app", "import"]);

    // A request to read now is kept (the last one wins) and survives runs; an unknown name is NotFound.
    assert_eq!(bt.run_requested_at, None);
    let asked = t3 + Duration::seconds(5);
    let s = store
        .request_source_run("bt", asked)
        .await
        .expect("request");
    assert_eq!((s.name.as_str(), s.run_requested_at), ("bt", Some(asked)));
    store
        .record_source_run(bt.id, run(asked + Duration::seconds(1), None, 0, None))
        .await
        .expect("run after the request");
    assert_eq!(
        store.get_source("bt").await.expect("get").run_requested_at,
        Some(asked)
    );
    assert!(matches!(
        store.request_source_run("nope", asked).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.get_source("nope").await,
        Err(StoreError::NotFound(_))
    ));
}

#[cfg(test)]
mod tests {
    use crate::store::sqlite::{Durability, SqliteStore};

    #[tokio::test]
    async fn sqlite_keeps_the_sources_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            SqliteStore::open(&dir.path().join("s.db"), Durability::PowerSafe).expect("open");
        super::run_all(&store).await;
    }
}
