//! The agents part of the store contract ([`AgentStore`]): registered agents, the devices they feed, alarms, and
//! the agent's own forwarding state, written against `&dyn Store` only, so the PostgreSQL backend can run the
//! same checks.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

use super::agents::{
    is_sequence_gap, AgentContact, NewAgent, NewAlarm, Outbound, Phase, SeqRun, GAP_STAMP,
    SEQ_STAMP,
};
use super::{Batch, RawEntry, Store, StoreError};
use crate::domain::{DeviceSn, NewPunch, Pin, PunchState, Source};

fn sn(s: &str) -> DeviceSn {
    DeviceSn::parse(s).expect("test SN")
}

fn agent(name: &str, site: &str, hash: &str) -> NewAgent {
    NewAgent {
        name: name.to_owned(),
        site: site.to_owned(),
        token_hash: hash.to_owned(),
    }
}

/// A batch of `n` punches of `device`, PINs `first..first+n`, received at `at`.
fn batch(device: &DeviceSn, first: usize, n: usize, at: DateTime<Utc>) -> Batch {
    let mut batch = Batch::new(RawEntry {
        received_at: at,
        device_sn: Some(device.clone()),
        source: Source::Pull,
        kind: "pull:attendance".into(),
        request: "test".into(),
        remote_addr: None,
        body: b"x".to_vec(),
        errors: Vec::new(),
    });
    let local = NaiveDate::from_ymd_opt(2026, 11, 2)
        .and_then(|d| d.and_hms_opt(8, 0, 0))
        .expect("test time");
    batch.punches = (first..first + n)
        .map(|i| NewPunch {
            device_sn: device.clone(),
            pin: Pin(i.to_string()),
            punched_at: local + Duration::seconds(i as i64),
            time_zone: "Africa/Lagos".into(),
            punched_at_utc: (local + Duration::seconds(i as i64) - Duration::hours(1)).and_utc(),
            punch_state: Some(PunchState::from_code(0)),
            verify_mode: None,
            work_code: None,
            extra: Vec::new(),
            source: Source::Pull,
        })
        .collect();
    batch
}

/// Every check of the agents contract. `lose` deletes punches of a device by PIN behind the store's back (a
/// restored backup, a manual `DELETE`), with a connection of its own.
pub(crate) async fn run_all(store: &dyn Store, lose: impl AsyncFn(&str, Vec<String>)) {
    hub_side_agents_devices_and_alarms(store).await;
    agent_side_forwarding_state_and_backlog(store).await;
    hub_side_sequence_runs(store).await;
    hub_side_sequence_runs_hold_under_concurrency(store).await;
    hub_side_gap_is_found_at_the_earliest_batch_that_lost_punches(store, lose).await;
}

/// An agent batch of `device`: sequence numbers `first..=last`, PIN = sequence number.
fn agent_batch(device: &DeviceSn, first: i64, last: i64, at: DateTime<Utc>) -> Batch {
    let mut b = batch(device, first as usize, (last - first + 1) as usize, at);
    b.raw.kind = "agent:batch".into();
    b.agent_seq = Some(SeqRun {
        device_sn: device.clone(),
        first_seq: first,
        last_seq: last,
    });
    b
}

async fn stamp_of(store: &dyn Store, device: &DeviceSn, table: &str) -> Option<String> {
    store
        .stamps(device)
        .await
        .expect("stamps")
        .into_iter()
        .find(|(t, _)| t == table)
        .map(|(_, v)| v)
}

async fn count_of(store: &dyn Store, device: &DeviceSn) -> u64 {
    store
        .count_punches(&super::PunchFilter {
            device_sn: Some(device.clone()),
            ..super::PunchFilter::default()
        })
        .await
        .expect("count")
}

async fn hub_side_sequence_runs(store: &dyn Store) {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 4, 8, 0, 0).unwrap();
    let d = sn("SEQ1");
    let out = store
        .write_batch(agent_batch(&d, 1, 3, t0))
        .await
        .expect("1..=3");
    assert_eq!((out.n_stored, out.n_duplicate), (3, 0));
    assert_eq!(stamp_of(store, &d, SEQ_STAMP).await.as_deref(), Some("3"));
    // Past what the hub holds: refused, nothing written.
    let refused = store.write_batch(agent_batch(&d, 5, 6, t0)).await;
    assert!(refused.as_ref().is_err_and(is_sequence_gap), "{refused:?}");
    assert_eq!(count_of(store, &d).await, 3);
    assert_eq!(stamp_of(store, &d, SEQ_STAMP).await.as_deref(), Some("3"));
    // Overlapping and contiguous runs are taken; a re-sent older run never moves the stamp back.
    let out = store
        .write_batch(agent_batch(&d, 2, 5, t0))
        .await
        .expect("2..=5");
    assert_eq!((out.n_stored, out.n_duplicate), (2, 2));
    assert_eq!(stamp_of(store, &d, SEQ_STAMP).await.as_deref(), Some("5"));
    let out = store
        .write_batch(agent_batch(&d, 1, 2, t0))
        .await
        .expect("1..=2 again");
    assert_eq!((out.n_stored, out.n_duplicate), (0, 2));
    assert_eq!(stamp_of(store, &d, SEQ_STAMP).await.as_deref(), Some("5"));
    assert_eq!(count_of(store, &d).await, 5);
    // A whole device has no gap to settle.
    assert!(!store.settle_agent_gap(&d).await.expect("settle"));
}

/// Eight runs of one device written at once, each retried while it starts past what the hub holds (as agents
/// behind several hub instances would): each is taken exactly once in order, the stamp ends at the last one.
async fn hub_side_sequence_runs_hold_under_concurrency(store: &dyn Store) {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 5, 8, 0, 0).unwrap();
    let d = sn("SEQ2");
    let writers = (0..8i64).map(|i| {
        let d = d.clone();
        async move {
            let (first, last) = (i * 5 + 1, i * 5 + 5);
            let mut refused = 0u32;
            loop {
                match store.write_batch(agent_batch(&d, first, last, t0)).await {
                    Ok(out) => return (out.n_stored, refused),
                    Err(e) if is_sequence_gap(&e) => {
                        refused += 1;
                        assert!(refused < 10_000, "run {first}..={last} never taken");
                        tokio::task::yield_now().await;
                    }
                    Err(e) => panic!("run {first}..={last}: {e}"),
                }
            }
        }
    });
    let outcomes = futures_util::future::join_all(writers).await;
    assert!(outcomes.iter().all(|(n, _)| *n == 5), "{outcomes:?}");
    assert_eq!(stamp_of(store, &d, SEQ_STAMP).await.as_deref(), Some("40"));
    assert_eq!(count_of(store, &d).await, 40);
}

async fn hub_side_gap_is_found_at_the_earliest_batch_that_lost_punches(
    store: &dyn Store,
    lose: impl AsyncFn(&str, Vec<String>),
) {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 6, 8, 0, 0).unwrap();
    let d = sn("GAP1");
    // Runs 1..=4, 5..=8, a re-send of 5..=8 (all duplicates), 9..=12, 13..=16.
    for (first, last) in [(1, 4), (5, 8), (5, 8), (9, 12), (13, 16)] {
        store
            .write_batch(agent_batch(&d, first, last, t0))
            .await
            .expect("run");
    }
    assert_eq!(count_of(store, &d).await, 16);
    // Punches 10 and 14 go: the earliest batch that lost punches starts at 9.
    lose(d.as_str(), vec!["10".into(), "14".into()]).await;
    assert_eq!(count_of(store, &d).await, 14);
    assert_eq!(store.agent_resend_from(&d, t0).await.expect("from"), 9);
    assert_eq!(stamp_of(store, &d, GAP_STAMP).await.as_deref(), Some("9"));
    // The agent re-sends 9..=16: whole again; settling re-bases the batches on what they hold now.
    for (first, last) in [(9, 12), (13, 16)] {
        store
            .write_batch(agent_batch(&d, first, last, t0))
            .await
            .expect("re-send");
    }
    assert_eq!(count_of(store, &d).await, 16);
    assert_eq!(stamp_of(store, &d, SEQ_STAMP).await.as_deref(), Some("16"));
    assert!(store.settle_agent_gap(&d).await.expect("settle"));
    assert_eq!(stamp_of(store, &d, GAP_STAMP).await, None);
    assert!(!store.settle_agent_gap(&d).await.expect("settled"));
    // A later loss is found where it is, not at the batch repaired before (its lost punches are held by the
    // re-sent batch now). Punch 3 held by the first batch: from 1.
    lose(d.as_str(), vec!["15".into()]).await;
    assert_eq!(store.agent_resend_from(&d, t0).await.expect("from"), 13);
    lose(d.as_str(), vec!["3".into()]).await;
    assert_eq!(store.agent_resend_from(&d, t0).await.expect("from"), 1);
    // Punches the hub holds from no recorded batch: it cannot say, so from the start.
    let other = sn("GAP2");
    store
        .write_batch(batch(&other, 1, 4, t0))
        .await
        .expect("pull");
    lose(other.as_str(), vec!["2".into()]).await;
    assert_eq!(store.agent_resend_from(&other, t0).await.expect("from"), 1);
}

async fn hub_side_agents_devices_and_alarms(store: &dyn Store) {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap();
    let lagos = store
        .create_agent(agent("lagos-office", "lagos", "h-lagos"), t0)
        .await
        .expect("create");
    assert_eq!(
        (lagos.name.as_str(), lagos.site.as_str()),
        ("lagos-office", "lagos")
    );
    assert_eq!(lagos.backlog_count, 0);
    assert!(lagos.devices.is_empty() && lagos.last_contact_at.is_none());
    assert!(matches!(
        store
            .create_agent(agent("lagos-office", "x", "h-other"), t0)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let accra = store
        .create_agent(agent("accra", "accra", "h-accra"), t0)
        .await
        .expect("create");
    // Found by the token hash only.
    let found = store.find_agent_by_token("h-lagos").await.expect("find");
    assert_eq!(found.map(|a| a.id), Some(lagos.id));
    assert!(store
        .find_agent_by_token("nope")
        .await
        .expect("find")
        .is_none());

    // Devices: claimed once; another agent cannot take them, and a refused claim records nothing.
    store
        .claim_agent_devices(
            lagos.id,
            vec![(sn("TX1"), Some("Africa/Lagos".into())), (sn("TX2"), None)],
            t0,
        )
        .await
        .expect("claim");
    assert!(matches!(
        store
            .claim_agent_devices(accra.id, vec![(sn("TX3"), None), (sn("TX2"), None)], t0)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.agent_of_device(&sn("TX3")).await.expect("of"), None);
    assert_eq!(
        store.agent_of_device(&sn("TX2")).await.expect("of"),
        Some(lagos.id)
    );
    // Claiming again keeps the first claim time and a zone given before.
    store
        .claim_agent_devices(lagos.id, vec![(sn("TX1"), None)], t0 + Duration::hours(1))
        .await
        .expect("claim again");

    // Contact: the latest time wins, backlog and version only when given.
    let t1 = t0 + Duration::seconds(30);
    store
        .record_agent_contact(
            lagos.id,
            AgentContact {
                at: t1,
                ip: Some("192.0.2.9".into()),
                version: Some("0.9.0".into()),
                backlog: Some((42, Some(t0))),
            },
        )
        .await
        .expect("contact");
    store
        .record_agent_contact(
            lagos.id,
            AgentContact {
                at: t0,
                ip: None,
                version: None,
                backlog: None,
            },
        )
        .await
        .expect("older contact");
    assert!(matches!(
        store
            .record_agent_contact(
                9999,
                AgentContact {
                    at: t0,
                    ip: None,
                    version: None,
                    backlog: None
                }
            )
            .await,
        Err(StoreError::NotFound(_))
    ));

    // Alarms: newest first, listed with the agent.
    for (i, kind) in ["sequence", "gap"].into_iter().enumerate() {
        store
            .raise_agent_alarm(NewAlarm {
                agent_id: lagos.id,
                device_sn: Some(sn("TX1")),
                kind: kind.into(),
                message: format!("alarm {i}"),
                raised_at: t1 + Duration::seconds(i as i64),
            })
            .await
            .expect("alarm");
    }
    let agents = store.list_agents().await.expect("list");
    let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["accra", "lagos-office"]);
    let lagos = &agents[1];
    assert_eq!(lagos.last_contact_at, Some(t1));
    assert_eq!(lagos.last_contact_ip.as_deref(), Some("192.0.2.9"));
    assert_eq!(lagos.version.as_deref(), Some("0.9.0"));
    assert_eq!(
        (lagos.backlog_count, lagos.backlog_oldest_at),
        (42, Some(t0))
    );
    let devices: Vec<(&str, Option<&str>, DateTime<Utc>)> = lagos
        .devices
        .iter()
        .map(|d| (d.device_sn.as_str(), d.time_zone.as_deref(), d.claimed_at))
        .collect();
    assert_eq!(
        devices,
        [("TX1", Some("Africa/Lagos"), t0), ("TX2", None, t0)]
    );
    let alarms: Vec<(&str, &str)> = lagos
        .alarms
        .iter()
        .map(|a| (a.kind.as_str(), a.message.as_str()))
        .collect();
    assert_eq!(alarms, [("gap", "alarm 1"), ("sequence", "alarm 0")]);
    assert!(agents[0].alarms.is_empty() && agents[0].devices.is_empty());
}

async fn agent_side_forwarding_state_and_backlog(store: &dyn Store) {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 3, 8, 0, 0).unwrap();
    let a = sn("AGT1");
    let b = sn("AGT2");
    // Nothing sent yet.
    assert_eq!(
        store.outbound(&a).await.expect("state"),
        Outbound::new(a.clone())
    );
    // Interleaved devices: a 0..3, b 0..2, a 3..5.
    store.write_batch(batch(&a, 0, 3, t0)).await.expect("a1");
    store
        .write_batch(batch(&b, 0, 2, t0 + Duration::seconds(1)))
        .await
        .expect("b1");
    store
        .write_batch(batch(&a, 3, 2, t0 + Duration::seconds(2)))
        .await
        .expect("a2");
    let all_a = store.punches_after(&a, 0, 100).await.expect("after");
    let pins: Vec<&str> = all_a.iter().map(|p| p.pin.as_str()).collect();
    assert_eq!(pins, ["0", "1", "2", "3", "4"]);
    assert!(all_a.windows(2).all(|w| w[0].id < w[1].id));
    let page = store.punches_after(&a, all_a[1].id, 2).await.expect("page");
    let pins: Vec<&str> = page.iter().map(|p| p.pin.as_str()).collect();
    assert_eq!(pins, ["2", "3"]);
    // Sequence numbers count the device's punches by id.
    assert_eq!(store.punch_id_at_seq(&a, 0).await.expect("seq"), Some(0));
    assert_eq!(
        store.punch_id_at_seq(&a, 4).await.expect("seq"),
        Some(all_a[3].id)
    );
    assert_eq!(store.punch_id_at_seq(&a, 6).await.expect("seq"), None);
    assert_eq!(
        store.outbound_backlog().await.expect("backlog"),
        (7, Some(t0))
    );

    // The state survives as written; the backlog counts past the acknowledged id.
    let sent = Outbound {
        device_sn: a.clone(),
        phase: Phase::Sent,
        acked_id: all_a[2].id,
        acked_seq: 3,
        sent_id: all_a[4].id,
        sent_seq: 5,
        sent_at: Some(t0 + Duration::seconds(5)),
    };
    store
        .save_outbound(sent.clone(), t0 + Duration::seconds(5))
        .await
        .expect("save");
    assert_eq!(store.outbound(&a).await.expect("state"), sent);
    assert_eq!(
        store.outbound_backlog().await.expect("backlog"),
        (4, Some(t0 + Duration::seconds(1)))
    );
    let acked = Outbound {
        phase: Phase::Acknowledged,
        acked_id: all_a[4].id,
        acked_seq: 5,
        ..sent
    };
    store
        .save_outbound(acked.clone(), t0 + Duration::seconds(6))
        .await
        .expect("save");
    assert_eq!(store.outbound(&a).await.expect("state"), acked);
    assert_eq!(
        store.outbound_backlog().await.expect("backlog"),
        (2, Some(t0 + Duration::seconds(1)))
    );

    // The agent's own alarms (agent 0): reported once taken by the hub.
    let id = store
        .raise_agent_alarm(NewAlarm {
            agent_id: 0,
            device_sn: Some(a.clone()),
            kind: "gap".into(),
            message: "hub holds 3 of 5".into(),
            raised_at: t0,
        })
        .await
        .expect("alarm");
    let alarms = store.agent_alarms(0, 10).await.expect("alarms");
    assert_eq!(alarms.len(), 1);
    assert_eq!(alarms[0].reported_at, None);
    store
        .mark_alarms_reported(vec![id], t0 + Duration::seconds(9))
        .await
        .expect("mark");
    let alarms = store.agent_alarms(0, 10).await.expect("alarms");
    assert_eq!(alarms[0].reported_at, Some(t0 + Duration::seconds(9)));
}

#[cfg(test)]
mod tests {
    use crate::store::sqlite::{Durability, SqliteStore};

    #[tokio::test]
    async fn sqlite_keeps_the_agents_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.db");
        let store = SqliteStore::open(&path, Durability::PowerSafe).expect("open");
        let lose = async |sn: &str, pins: Vec<String>| {
            let conn = rusqlite::Connection::open(&path).expect("open");
            for pin in pins {
                conn.execute(
                    "DELETE FROM punches WHERE device_sn = ?1 AND pin = ?2",
                    [sn, pin.as_str()],
                )
                .expect("delete");
            }
        };
        super::run_all(&store, lose).await;
    }
}
