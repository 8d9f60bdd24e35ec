//! The agents part of the store contract ([`AgentStore`]): registered agents, the devices they feed, alarms, and
//! the agent's own forwarding state, written against `&dyn Store` only, so the PostgreSQL backend can run the
//! same checks.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

use super::agents::{AgentContact, NewAgent, NewAlarm, Outbound, Phase};
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

/// Every check of the agents contract.
pub(crate) async fn run_all(store: &dyn Store) {
    hub_side_agents_devices_and_alarms(store).await;
    agent_side_forwarding_state_and_backlog(store).await;
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
        let store =
            SqliteStore::open(&dir.path().join("a.db"), Durability::PowerSafe).expect("open");
        super::run_all(&store).await;
    }
}
