//! [`AgentStore`] for SQLite: the `agents`, `agent_devices`, `agent_alarms` and `agent_outbound` tables
//! (migration 0009_agents.sql).

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{backend, from_ms, ms, punch_from_row, sn_from, SqliteStore, PUNCH_COLUMNS};
use crate::domain::{DeviceSn, Punch};
use crate::store::agents::{
    sequence_gap_message, AgentAlarm, AgentContact, AgentDevice, AgentInfo, AgentStore, NewAgent,
    NewAlarm, Outbound, Phase, SeqRun, GAP_STAMP, SEQ_STAMP,
};
use crate::store::{Result, StoreError};

const AGENT_COLUMNS: &str =
    "id, name, site, created_at, version, last_contact_at, last_contact_ip, \
     backlog_count, backlog_oldest_at";

/// Alarms listed with an agent.
const ALARMS_LISTED: usize = 20;

fn agent_from_row(row: &Row<'_>) -> rusqlite::Result<AgentInfo> {
    Ok(AgentInfo {
        id: row.get(0)?,
        name: row.get(1)?,
        site: row.get(2)?,
        created_at: from_ms(row.get(3)?),
        version: row.get(4)?,
        last_contact_at: row.get::<_, Option<i64>>(5)?.map(from_ms),
        last_contact_ip: row.get(6)?,
        backlog_count: row.get::<_, i64>(7)?.max(0) as u64,
        backlog_oldest_at: row.get::<_, Option<i64>>(8)?.map(from_ms),
        devices: Vec::new(),
        alarms: Vec::new(),
    })
}

fn alarm_from_row(row: &Row<'_>) -> rusqlite::Result<AgentAlarm> {
    Ok(AgentAlarm {
        id: row.get(0)?,
        device_sn: row.get::<_, Option<String>>(1)?.map(sn_from).transpose()?,
        kind: row.get(2)?,
        message: row.get(3)?,
        raised_at: from_ms(row.get(4)?),
        reported_at: row.get::<_, Option<i64>>(5)?.map(from_ms),
    })
}

fn alarms_on(conn: &Connection, agent_id: i64, limit: usize) -> Result<Vec<AgentAlarm>> {
    let mut st = conn
        .prepare_cached(
            "SELECT id, device_sn, kind, message, raised_at, reported_at FROM agent_alarms \
             WHERE agent_id = ?1 ORDER BY id DESC LIMIT ?2",
        )
        .map_err(backend)?;
    let rows = st
        .query_map(params![agent_id, limit as i64], alarm_from_row)
        .map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

/// An agent with its devices and latest alarms.
fn complete(conn: &Connection, mut agent: AgentInfo) -> Result<AgentInfo> {
    let mut st = conn
        .prepare_cached(
            "SELECT device_sn, time_zone, claimed_at FROM agent_devices WHERE agent_id = ?1 \
             ORDER BY device_sn",
        )
        .map_err(backend)?;
    let rows = st
        .query_map([agent.id], |r| {
            Ok(AgentDevice {
                device_sn: sn_from(r.get(0)?)?,
                time_zone: r.get(1)?,
                claimed_at: from_ms(r.get(2)?),
            })
        })
        .map_err(backend)?;
    agent.devices = rows
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?;
    agent.alarms = alarms_on(conn, agent.id, ALARMS_LISTED)?;
    Ok(agent)
}

fn by_name(conn: &Connection, name: &str) -> Result<Option<AgentInfo>> {
    let agent = conn
        .prepare_cached(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE name = ?1"
        ))
        .and_then(|mut st| st.query_row([name], agent_from_row).optional())
        .map_err(backend)?;
    agent.map(|a| complete(conn, a)).transpose()
}

fn outbound_from_row(row: &Row<'_>) -> rusqlite::Result<Outbound> {
    let phase: String = row.get(1)?;
    Ok(Outbound {
        device_sn: sn_from(row.get(0)?)?,
        phase: Phase::parse(&phase).unwrap_or(Phase::Stored),
        acked_id: row.get(2)?,
        acked_seq: row.get(3)?,
        sent_id: row.get(4)?,
        sent_seq: row.get(5)?,
        sent_at: row.get::<_, Option<i64>>(6)?.map(from_ms),
    })
}

/// First step of an agent batch's write, before its punches: check the run against what the hub holds
/// ([`SEQ_STAMP`], 0 when none) and return that. The single writer holds the device's sequence until the commit
/// (one instance per SQLite file). `Conflict` ([`sequence_gap_message`]) when the run starts past it.
pub(super) fn begin_agent_seq(conn: &Connection, run: &SeqRun) -> Result<i64> {
    let value: Option<String> = conn
        .prepare_cached("SELECT value FROM stamps WHERE device_sn = ?1 AND table_name = ?2")
        .and_then(|mut st| {
            st.query_row(params![run.device_sn.as_str(), SEQ_STAMP], |r| r.get(0))
                .optional()
        })
        .map_err(backend)?;
    let held = value.and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    if run.first_seq > held + 1 {
        return Err(StoreError::Conflict(sequence_gap_message(
            &run.device_sn,
            held,
            run.first_seq,
        )));
    }
    Ok(held)
}

/// Last step of an agent batch's write: the stamp moves to `max(held, last_seq)` (never back), and a batch with
/// punches is recorded with how many it newly stored. `at` is UTC unix milliseconds.
pub(super) fn finish_agent_seq(
    conn: &Connection,
    run: &SeqRun,
    held: i64,
    journal_id: i64,
    (n_stored, n_punches): (usize, usize),
    at: i64,
) -> Result<()> {
    let acked = held.max(run.last_seq);
    conn.prepare_cached(
        "INSERT INTO stamps (device_sn, table_name, value, updated_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (device_sn, table_name) DO UPDATE SET value = excluded.value, \
         updated_at = excluded.updated_at",
    )
    .and_then(|mut st| {
        st.execute(params![
            run.device_sn.as_str(),
            SEQ_STAMP,
            acked.to_string(),
            at
        ])
    })
    .map_err(backend)?;
    if n_punches > 0 {
        conn.prepare_cached(
            "INSERT INTO agent_batches (journal_id, device_sn, first_seq, last_seq, n_stored) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut st| {
            st.execute(params![
                journal_id,
                run.device_sn.as_str(),
                run.first_seq,
                run.last_seq,
                n_stored as i64
            ])
        })
        .map_err(backend)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl AgentStore for SqliteStore {
    async fn create_agent(&self, agent: NewAgent, now: DateTime<Utc>) -> Result<AgentInfo> {
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "INSERT INTO agents (name, site, token_hash, created_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT DO NOTHING",
                )
                .and_then(|mut st| {
                    st.execute(params![agent.name, agent.site, agent.token_hash, ms(now)])
                })
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "an agent named {:?} exists",
                    agent.name
                )));
            }
            by_name(conn, &agent.name)?
                .ok_or_else(|| StoreError::Backend("inserted agent not found".into()))
        })
        .await
    }

    async fn find_agent_by_token(&self, token_hash: &str) -> Result<Option<AgentInfo>> {
        let hash = token_hash.to_owned();
        self.read(move |conn| {
            let agent = conn
                .prepare_cached(&format!(
                    "SELECT {AGENT_COLUMNS} FROM agents WHERE token_hash = ?1"
                ))
                .and_then(|mut st| st.query_row([&hash], agent_from_row).optional())
                .map_err(backend)?;
            agent.map(|a| complete(conn, a)).transpose()
        })
        .await
    }

    async fn list_agents(&self) -> Result<Vec<AgentInfo>> {
        self.read(|conn| {
            let mut st = conn
                .prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY name"))
                .map_err(backend)?;
            let agents = st
                .query_map([], agent_from_row)
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            agents.into_iter().map(|a| complete(conn, a)).collect()
        })
        .await
    }

    async fn record_agent_contact(&self, agent_id: i64, contact: AgentContact) -> Result<()> {
        self.write(move |conn| {
            let (has_backlog, count, oldest) = match contact.backlog {
                Some((count, oldest)) => (true, count as i64, oldest.map(ms)),
                None => (false, 0, None),
            };
            let n = conn
                .prepare_cached(
                    "UPDATE agents SET last_contact_at = MAX(COALESCE(last_contact_at, 0), ?2), \
                     last_contact_ip = COALESCE(?3, last_contact_ip), version = COALESCE(?4, version), \
                     backlog_count = CASE WHEN ?5 THEN ?6 ELSE backlog_count END, \
                     backlog_oldest_at = CASE WHEN ?5 THEN ?7 ELSE backlog_oldest_at END \
                     WHERE id = ?1",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        agent_id,
                        ms(contact.at),
                        contact.ip,
                        contact.version,
                        has_backlog,
                        count,
                        oldest
                    ])
                })
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("agent {agent_id}")));
            }
            Ok(())
        })
        .await
    }

    async fn claim_agent_devices(
        &self,
        agent_id: i64,
        devices: Vec<(DeviceSn, Option<String>)>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.write(move |conn| {
            for (sn, zone) in &devices {
                let owner: Option<i64> = conn
                    .prepare_cached("SELECT agent_id FROM agent_devices WHERE device_sn = ?1")
                    .and_then(|mut st| st.query_row([sn.as_str()], |r| r.get(0)).optional())
                    .map_err(backend)?;
                match owner {
                    Some(other) if other != agent_id => {
                        return Err(StoreError::Conflict(format!(
                            "device {sn} is fed by another agent"
                        )))
                    }
                    Some(_) => {
                        conn.prepare_cached(
                            "UPDATE agent_devices SET time_zone = COALESCE(?2, time_zone) \
                             WHERE device_sn = ?1",
                        )
                        .and_then(|mut st| st.execute(params![sn.as_str(), zone]))
                        .map_err(backend)?;
                    }
                    None => {
                        conn.prepare_cached(
                            "INSERT INTO agent_devices (device_sn, agent_id, time_zone, claimed_at) \
                             VALUES (?1, ?2, ?3, ?4)",
                        )
                        .and_then(|mut st| {
                            st.execute(params![sn.as_str(), agent_id, zone, ms(now)])
                        })
                        .map_err(backend)?;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn agent_of_device(&self, sn: &DeviceSn) -> Result<Option<i64>> {
        let sn = sn.clone();
        self.read(move |conn| {
            conn.prepare_cached("SELECT agent_id FROM agent_devices WHERE device_sn = ?1")
                .and_then(|mut st| st.query_row([sn.as_str()], |r| r.get(0)).optional())
                .map_err(backend)
        })
        .await
    }

    async fn raise_agent_alarm(&self, alarm: NewAlarm) -> Result<i64> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO agent_alarms (agent_id, device_sn, kind, message, raised_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    alarm.agent_id,
                    alarm.device_sn.as_ref().map(DeviceSn::as_str),
                    alarm.kind,
                    alarm.message,
                    ms(alarm.raised_at)
                ])
            })
            .map_err(backend)?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    async fn agent_alarms(&self, agent_id: i64, limit: usize) -> Result<Vec<AgentAlarm>> {
        self.read(move |conn| alarms_on(conn, agent_id, limit))
            .await
    }

    async fn mark_alarms_reported(&self, ids: Vec<i64>, now: DateTime<Utc>) -> Result<()> {
        self.write(move |conn| {
            let mut st = conn
                .prepare_cached(
                    "UPDATE agent_alarms SET reported_at = COALESCE(reported_at, ?2) WHERE id = ?1",
                )
                .map_err(backend)?;
            for id in &ids {
                st.execute(params![id, ms(now)]).map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn agent_resend_from(&self, sn: &DeviceSn, now: DateTime<Utc>) -> Result<i64> {
        let sn = sn.clone();
        self.write(move |conn| {
            let from: i64 = conn
                .prepare_cached(
                    "SELECT COALESCE(MIN(b.first_seq), 1) FROM agent_batches b \
                     LEFT JOIN (SELECT journal_id, COUNT(*) AS n FROM punches WHERE device_sn = ?1 \
                       GROUP BY journal_id) p ON p.journal_id = b.journal_id \
                     WHERE b.device_sn = ?1 AND COALESCE(p.n, 0) < b.n_stored",
                )
                .and_then(|mut st| st.query_row([sn.as_str()], |r| r.get(0)))
                .map_err(backend)?;
            conn.prepare_cached(
                "INSERT INTO stamps (device_sn, table_name, value, updated_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (device_sn, table_name) DO UPDATE SET value = excluded.value, \
                 updated_at = excluded.updated_at",
            )
            .and_then(|mut st| {
                st.execute(params![sn.as_str(), GAP_STAMP, from.to_string(), ms(now)])
            })
            .map_err(backend)?;
            Ok(from)
        })
        .await
    }

    async fn settle_agent_gap(&self, sn: &DeviceSn) -> Result<bool> {
        let sn = sn.clone();
        self.write(move |conn| {
            let open = conn
                .prepare_cached("DELETE FROM stamps WHERE device_sn = ?1 AND table_name = ?2")
                .and_then(|mut st| st.execute(params![sn.as_str(), GAP_STAMP]))
                .map_err(backend)?;
            if open == 0 {
                return Ok(false);
            }
            conn.prepare_cached(
                "UPDATE agent_batches SET n_stored = COALESCE(p.n, 0) \
                 FROM (SELECT b.journal_id AS jid, c.n AS n FROM agent_batches b \
                   LEFT JOIN (SELECT journal_id, COUNT(*) AS n FROM punches WHERE device_sn = ?1 \
                     GROUP BY journal_id) c ON c.journal_id = b.journal_id WHERE b.device_sn = ?1) p \
                 WHERE agent_batches.journal_id = p.jid",
            )
            .and_then(|mut st| st.execute([sn.as_str()]))
            .map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn outbound(&self, sn: &DeviceSn) -> Result<Outbound> {
        let sn = sn.clone();
        self.read(move |conn| {
            let state = conn
                .prepare_cached(
                    "SELECT device_sn, phase, acked_id, acked_seq, sent_id, sent_seq, sent_at \
                     FROM agent_outbound WHERE device_sn = ?1",
                )
                .and_then(|mut st| st.query_row([sn.as_str()], outbound_from_row).optional())
                .map_err(backend)?;
            Ok(state.unwrap_or_else(|| Outbound::new(sn)))
        })
        .await
    }

    async fn save_outbound(&self, state: Outbound, now: DateTime<Utc>) -> Result<()> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO agent_outbound (device_sn, phase, acked_id, acked_seq, sent_id, sent_seq, \
                 sent_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (device_sn) DO UPDATE SET phase = excluded.phase, acked_id = excluded.acked_id, \
                 acked_seq = excluded.acked_seq, sent_id = excluded.sent_id, sent_seq = excluded.sent_seq, \
                 sent_at = excluded.sent_at, updated_at = excluded.updated_at",
            )
            .and_then(|mut st| {
                st.execute(params![
                    state.device_sn.as_str(),
                    state.phase.as_str(),
                    state.acked_id,
                    state.acked_seq,
                    state.sent_id,
                    state.sent_seq,
                    state.sent_at.map(ms),
                    ms(now)
                ])
            })
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn punches_after(
        &self,
        sn: &DeviceSn,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<Punch>> {
        let sn = sn.clone();
        self.read(move |conn| {
            // By rowid from `after_id` on: the identity index (device first, then time) would make every batch
            // read all of the device's punches to sort them by id. An agent feeds a few devices, so the rows of
            // the others that this walks past are few.
            let mut st = conn
                .prepare_cached(&format!(
                    "SELECT {PUNCH_COLUMNS} FROM punches NOT INDEXED WHERE id > ?1 AND device_sn = ?2 \
                     ORDER BY id LIMIT ?3"
                ))
                .map_err(backend)?;
            let rows = st
                .query_map(
                    params![after_id, sn.as_str(), limit as i64],
                    punch_from_row,
                )
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn punch_id_at_seq(&self, sn: &DeviceSn, seq: i64) -> Result<Option<i64>> {
        if seq <= 0 {
            return Ok(Some(0));
        }
        let sn = sn.clone();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id FROM punches NOT INDEXED WHERE device_sn = ?1 ORDER BY id LIMIT 1 OFFSET ?2",
            )
            .and_then(|mut st| {
                st.query_row(params![sn.as_str(), seq - 1], |r| r.get(0))
                    .optional()
            })
            .map_err(backend)
        })
        .await
    }

    async fn outbound_backlog(&self) -> Result<(u64, Option<DateTime<Utc>>)> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT COUNT(*), MIN(p.received_at) FROM punches p \
                 LEFT JOIN agent_outbound o ON o.device_sn = p.device_sn \
                 WHERE p.id > COALESCE(o.acked_id, 0)",
            )
            .and_then(|mut st| {
                st.query_row([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?.max(0) as u64,
                        r.get::<_, Option<i64>>(1)?.map(from_ms),
                    ))
                })
            })
            .map_err(backend)
        })
        .await
    }
}
