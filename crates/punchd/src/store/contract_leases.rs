//! The lease contract ([`super::leases::LeaseStore`]), written against `&dyn Store` so SQLite and PostgreSQL run
//! the same checks: one holder at a time, renewal only while held, takeover only after expiry (with the generation
//! counting the changes of hands), release frees it at once. Times are explicit instants: nothing waits.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::Store;

fn instant(secs_after: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_760_000_000 + secs_after, 0)
        .single()
        .expect("test instant")
}

/// Run every lease check against `store` (lease names start with `contract:` so they meet nothing else).
pub(crate) async fn run_all(store: &dyn Store) {
    one_holder_at_a_time_and_takeover_after_expiry(store).await;
    release_frees_the_lease_at_once(store).await;
    many_instances_racing_for_a_free_lease_get_one_winner(store).await;
}

async fn one_holder_at_a_time_and_takeover_after_expiry(store: &dyn Store) {
    let ttl = Duration::seconds(30);
    let name = "contract:sink:a";
    assert_eq!(store.get_lease(name).await.expect("get"), None);

    let a = store
        .acquire_lease(name, "A", ttl, instant(0))
        .await
        .expect("acquire")
        .expect("a free lease is taken");
    assert_eq!(
        (a.holder.as_str(), a.acquired_at, a.expires_at, a.generation),
        ("A", instant(0), instant(30), 1)
    );
    // B cannot take it while it runs, not even one second before it ends.
    for t in [0, 10, 29] {
        assert_eq!(
            store
                .acquire_lease(name, "B", ttl, instant(t))
                .await
                .expect("acquire"),
            None,
            "B while A's lease runs (t = {t})"
        );
    }
    // B cannot renew what it does not hold.
    assert_eq!(
        store
            .renew_lease(name, "B", ttl, instant(5))
            .await
            .expect("renew"),
        None
    );
    // A renews: the end moves, the start stays.
    let renewed = store
        .renew_lease(name, "A", ttl, instant(20))
        .await
        .expect("renew")
        .expect("A holds it");
    assert_eq!(
        (renewed.acquired_at, renewed.expires_at, renewed.generation),
        (instant(0), instant(50), 1)
    );
    // Acquiring again as the holder is a renewal too.
    let again = store
        .acquire_lease(name, "A", ttl, instant(25))
        .await
        .expect("acquire")
        .expect("A holds it");
    assert_eq!(
        (again.acquired_at, again.expires_at, again.generation),
        (instant(0), instant(55), 1)
    );
    assert_eq!(
        store
            .acquire_lease(name, "B", ttl, instant(54))
            .await
            .expect("acquire"),
        None
    );

    // A stops renewing (it died): at the expiry B takes it over, and the generation counts the change of hands.
    let b = store
        .acquire_lease(name, "B", ttl, instant(55))
        .await
        .expect("acquire")
        .expect("an expired lease is taken over");
    assert_eq!(
        (b.holder.as_str(), b.acquired_at, b.expires_at, b.generation),
        ("B", instant(55), instant(85), 2)
    );
    // A, back, learns it lost the lease: its renewal is refused, and so is taking it back while B's runs.
    assert_eq!(
        store
            .renew_lease(name, "A", ttl, instant(56))
            .await
            .expect("renew"),
        None
    );
    assert_eq!(
        store
            .acquire_lease(name, "A", ttl, instant(56))
            .await
            .expect("acquire"),
        None
    );
    // A renewal after the holder's own expiry is refused even when nobody took the lease meanwhile: the holder
    // must not count on a lease it let lapse; it acquires again instead (same holder: same generation).
    assert_eq!(
        store
            .renew_lease(name, "B", ttl, instant(85))
            .await
            .expect("renew"),
        None
    );
    let b_again = store
        .acquire_lease(name, "B", ttl, instant(86))
        .await
        .expect("acquire")
        .expect("B takes its lapsed lease again");
    assert_eq!((b_again.expires_at, b_again.generation), (instant(116), 2));
    assert_eq!(
        store.get_lease(name).await.expect("get"),
        Some(b_again.clone())
    );
    // Other names are independent.
    let other = store
        .acquire_lease("contract:pull:X1", "A", ttl, instant(60))
        .await
        .expect("acquire")
        .expect("another lease is free");
    assert_eq!(other.generation, 1);
    let listed: Vec<(String, String)> = store
        .list_leases()
        .await
        .expect("list")
        .into_iter()
        .filter(|l| l.name.starts_with("contract:"))
        .map(|l| (l.name, l.holder))
        .collect();
    assert_eq!(
        listed,
        [
            ("contract:pull:X1".to_owned(), "A".to_owned()),
            ("contract:sink:a".to_owned(), "B".to_owned())
        ]
    );
}

async fn release_frees_the_lease_at_once(store: &dyn Store) {
    let ttl = Duration::seconds(30);
    let name = "contract:release";
    store
        .acquire_lease(name, "A", ttl, instant(0))
        .await
        .expect("acquire")
        .expect("free");
    assert!(
        !store.release_lease(name, "B").await.expect("release"),
        "B holds nothing to release"
    );
    assert!(store.release_lease(name, "A").await.expect("release"));
    assert_eq!(
        store
            .renew_lease(name, "A", ttl, instant(1))
            .await
            .expect("renew"),
        None,
        "a released lease is not renewed"
    );
    let b = store
        .acquire_lease(name, "B", ttl, instant(1))
        .await
        .expect("acquire")
        .expect("released: free before its expiry");
    assert_eq!((b.holder.as_str(), b.generation), ("B", 2));
    assert_eq!(
        store.release_lease("contract:none", "A").await.ok(),
        Some(false)
    );
}

async fn many_instances_racing_for_a_free_lease_get_one_winner(store: &dyn Store) {
    let ttl = Duration::seconds(30);
    let name = "contract:race";
    let holders: Vec<String> = (0..8).map(|i| format!("H{i}")).collect();
    let attempts = holders
        .iter()
        .map(|h| store.acquire_lease(name, h, ttl, instant(0)));
    let results = futures_util::future::join_all(attempts).await;
    let winners: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.expect("acquire"))
        .map(|l| l.holder)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:?}");
    let stored = store.get_lease(name).await.expect("get").expect("stored");
    assert_eq!((stored.holder, stored.generation), (winners[0].clone(), 1));
}

mod tests {
    use crate::store::sqlite::{Durability, SqliteStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_keeps_the_lease_contract() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            SqliteStore::open(&dir.path().join("leases.db"), Durability::PowerSafe).expect("open");
        super::run_all(&store).await;
    }
}
