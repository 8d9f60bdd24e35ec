//! [`AgentStore`] on PostgreSQL: the `agents`, `agent_devices`, `agent_alarms` and `agent_outbound` tables
//! (migration 0004_agents.sql). The agent side (`agent_outbound`, `punches_after`, …) is here for completeness:
//! an agent runs on SQLite.

use chrono::{DateTime, Utc};
use tokio_postgres::{GenericClient, Row};

use super::{backend, col, commit, narrow, punch_from_row, sn_from, PgStore, PUNCH_COLUMNS};
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
const ALARMS_LISTED: i64 = 20;

fn agent_from_row(row: &Row) -> Result<AgentInfo> {
    Ok(AgentInfo {
        id: col(row, 0)?,
        name: col(row, 1)?,
        site: col(row, 2)?,
        created_at: col(row, 3)?,
        version: col(row, 4)?,
        last_contact_at: col(row, 5)?,
        last_contact_ip: col(row, 6)?,
        backlog_count: narrow(col::<i64>(row, 7)?),
        backlog_oldest_at: col(row, 8)?,
        devices: Vec::new(),
        alarms: Vec::new(),
    })
}

fn alarm_from_row(row: &Row) -> Result<AgentAlarm> {
    Ok(AgentAlarm {
        id: col(row, 0)?,
        device_sn: col::<Option<String>>(row, 1)?.map(sn_from).transpose()?,
        kind: col(row, 2)?,
        message: col(row, 3)?,
        raised_at: col(row, 4)?,
        reported_at: col(row, 5)?,
    })
}

async fn alarms_on(
    client: &impl GenericClient,
    agent_id: i64,
    limit: i64,
) -> Result<Vec<AgentAlarm>> {
    client
        .query(
            "SELECT id, device_sn, kind, message, raised_at, reported_at FROM agent_alarms \
             WHERE agent_id = $1 ORDER BY id DESC LIMIT $2",
            &[&agent_id, &limit],
        )
        .await
        .map_err(backend)?
        .iter()
        .map(alarm_from_row)
        .collect()
}

/// An agent with its devices and latest alarms.
async fn complete(client: &impl GenericClient, mut agent: AgentInfo) -> Result<AgentInfo> {
    agent.devices = client
        .query(
            "SELECT device_sn, time_zone, claimed_at FROM agent_devices WHERE agent_id = $1 \
             ORDER BY device_sn",
            &[&agent.id],
        )
        .await
        .map_err(backend)?
        .iter()
        .map(|r| {
            Ok(AgentDevice {
                device_sn: sn_from(col(r, 0)?)?,
                time_zone: col(r, 1)?,
                claimed_at: col(r, 2)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    agent.alarms = alarms_on(client, agent.id, ALARMS_LISTED).await?;
    Ok(agent)
}

fn outbound_from_row(row: &Row) -> Result<Outbound> {
    let phase: String = col(row, 1)?;
    Ok(Outbound {
        device_sn: sn_from(col(row, 0)?)?,
        phase: Phase::parse(&phase).unwrap_or(Phase::Stored),
        acked_id: col(row, 2)?,
        acked_seq: col(row, 3)?,
        sent_id: col(row, 4)?,
        sent_seq: col(row, 5)?,
        sent_at: col(row, 6)?,
    })
}

/// The highest sequence number the hub holds for a device ([`SEQ_STAMP`], 0 when none).
async fn held_seq(client: &impl GenericClient, sn: &str) -> Result<i64> {
    let row = client
        .query_opt(
            "SELECT value FROM stamps WHERE device_sn = $1 AND table_name = $2",
            &[&sn, &SEQ_STAMP],
        )
        .await
        .map_err(backend)?;
    Ok(match row {
        Some(row) => col::<String>(&row, 0)?.trim().parse().unwrap_or(0),
        None => 0,
    })
}

/// First step of an agent batch's transaction, before its punches: hold the device's sequence until the commit
/// (a transaction-scoped advisory lock keyed by the device, the same on every instance), then check the run
/// against what the hub holds. Returns the sequence number held; `Conflict` ([`sequence_gap_message`]) when the
/// run starts past it.
pub(super) async fn begin_agent_seq(tx: &impl GenericClient, run: &SeqRun) -> Result<i64> {
    let key = format!("agent:seq:{}", run.device_sn);
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&key],
    )
    .await
    .map_err(backend)?;
    let held = held_seq(tx, run.device_sn.as_str()).await?;
    if run.first_seq > held + 1 {
        return Err(StoreError::Conflict(sequence_gap_message(
            &run.device_sn,
            held,
            run.first_seq,
        )));
    }
    Ok(held)
}

/// Last step of an agent batch's transaction: the stamp moves to `max(held, last_seq)` (never back), and a batch
/// with punches is recorded with how many it newly stored.
pub(super) async fn finish_agent_seq(
    tx: &impl GenericClient,
    run: &SeqRun,
    held: i64,
    journal_id: i64,
    n_stored: usize,
    n_punches: usize,
    at: DateTime<Utc>,
) -> Result<()> {
    let acked = held.max(run.last_seq);
    tx.execute(
        "INSERT INTO stamps (device_sn, table_name, value, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (device_sn, table_name) DO UPDATE SET value = excluded.value, \
         updated_at = excluded.updated_at",
        &[&run.device_sn.as_str(), &SEQ_STAMP, &acked.to_string(), &at],
    )
    .await
    .map_err(backend)?;
    if n_punches > 0 {
        tx.execute(
            "INSERT INTO agent_batches (journal_id, device_sn, first_seq, last_seq, n_stored) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &journal_id,
                &run.device_sn.as_str(),
                &run.first_seq,
                &run.last_seq,
                &i64::try_from(n_stored).unwrap_or(i64::MAX),
            ],
        )
        .await
        .map_err(backend)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl AgentStore for PgStore {
    async fn create_agent(&self, agent: NewAgent, now: DateTime<Utc>) -> Result<AgentInfo> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let row = tx
            .query_opt(
                &format!(
                    "INSERT INTO agents (name, site, token_hash, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT DO NOTHING RETURNING {AGENT_COLUMNS}"
                ),
                &[&agent.name, &agent.site, &agent.token_hash, &now],
            )
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::Conflict(format!("an agent named {:?} exists", agent.name)))?;
        let info = agent_from_row(&row)?;
        commit(tx).await?;
        Ok(info)
    }

    async fn find_agent_by_token(&self, token_hash: &str) -> Result<Option<AgentInfo>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {AGENT_COLUMNS} FROM agents WHERE token_hash = $1"),
                &[&token_hash],
            )
            .await
            .map_err(backend)?;
        match row {
            Some(row) => Ok(Some(complete(&**client, agent_from_row(&row)?).await?)),
            None => Ok(None),
        }
    }

    async fn list_agents(&self) -> Result<Vec<AgentInfo>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY name"),
                &[],
            )
            .await
            .map_err(backend)?;
        let mut agents = Vec::with_capacity(rows.len());
        for row in &rows {
            agents.push(complete(&**client, agent_from_row(row)?).await?);
        }
        Ok(agents)
    }

    async fn record_agent_contact(&self, agent_id: i64, contact: AgentContact) -> Result<()> {
        let (has_backlog, count, oldest) = match contact.backlog {
            Some((count, oldest)) => (true, i64::try_from(count).unwrap_or(i64::MAX), oldest),
            None => (false, 0, None),
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let n = tx
            .execute(
                "UPDATE agents SET last_contact_at = GREATEST(last_contact_at, $2), \
                 last_contact_ip = COALESCE($3, last_contact_ip), version = COALESCE($4, version), \
                 backlog_count = CASE WHEN $5 THEN $6 ELSE backlog_count END, \
                 backlog_oldest_at = CASE WHEN $5 THEN $7 ELSE backlog_oldest_at END \
                 WHERE id = $1",
                &[
                    &agent_id,
                    &contact.at,
                    &contact.ip,
                    &contact.version,
                    &has_backlog,
                    &count,
                    &oldest,
                ],
            )
            .await
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("agent {agent_id}")));
        }
        commit(tx).await
    }

    async fn claim_agent_devices(
        &self,
        agent_id: i64,
        devices: Vec<(DeviceSn, Option<String>)>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        for (sn, zone) in &devices {
            // Insert or keep; the row answers who owns the device (locked until the commit).
            let row = tx
                .query_one(
                    "INSERT INTO agent_devices (device_sn, agent_id, time_zone, claimed_at) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (device_sn) DO UPDATE SET time_zone = CASE \
                       WHEN agent_devices.agent_id = EXCLUDED.agent_id \
                       THEN COALESCE(EXCLUDED.time_zone, agent_devices.time_zone) \
                       ELSE agent_devices.time_zone END \
                     RETURNING agent_id",
                    &[&sn.as_str(), &agent_id, zone, &now],
                )
                .await
                .map_err(backend)?;
            let owner: i64 = col(&row, 0)?;
            if owner != agent_id {
                // Dropping the transaction rolls back what this call claimed.
                return Err(StoreError::Conflict(format!(
                    "device {sn} is fed by another agent"
                )));
            }
        }
        commit(tx).await
    }

    async fn agent_of_device(&self, sn: &DeviceSn) -> Result<Option<i64>> {
        let client = self.client().await?;
        client
            .query_opt(
                "SELECT agent_id FROM agent_devices WHERE device_sn = $1",
                &[&sn.as_str()],
            )
            .await
            .map_err(backend)?
            .map(|r| col(&r, 0))
            .transpose()
    }

    async fn raise_agent_alarm(&self, alarm: NewAlarm) -> Result<i64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let row = tx
            .query_one(
                "INSERT INTO agent_alarms (agent_id, device_sn, kind, message, raised_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    &alarm.agent_id,
                    &alarm.device_sn.as_ref().map(DeviceSn::as_str),
                    &alarm.kind,
                    &alarm.message,
                    &alarm.raised_at,
                ],
            )
            .await
            .map_err(backend)?;
        let id: i64 = col(&row, 0)?;
        commit(tx).await?;
        Ok(id)
    }

    async fn agent_alarms(&self, agent_id: i64, limit: usize) -> Result<Vec<AgentAlarm>> {
        let client = self.client().await?;
        alarms_on(
            &**client,
            agent_id,
            i64::try_from(limit).unwrap_or(i64::MAX),
        )
        .await
    }

    async fn mark_alarms_reported(&self, ids: Vec<i64>, now: DateTime<Utc>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "UPDATE agent_alarms SET reported_at = COALESCE(reported_at, $2) WHERE id = ANY($1)",
            &[&ids, &now],
        )
        .await
        .map_err(backend)?;
        commit(tx).await
    }

    async fn agent_resend_from(&self, sn: &DeviceSn, now: DateTime<Utc>) -> Result<i64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let row = tx
            .query_one(
                "SELECT COALESCE(MIN(b.first_seq), 1) FROM agent_batches b \
                 LEFT JOIN (SELECT journal_id, COUNT(*) AS n FROM punches WHERE device_sn = $1 \
                   GROUP BY journal_id) p ON p.journal_id = b.journal_id \
                 WHERE b.device_sn = $1 AND COALESCE(p.n, 0) < b.n_stored",
                &[&sn.as_str()],
            )
            .await
            .map_err(backend)?;
        let from: i64 = col(&row, 0)?;
        tx.execute(
            "INSERT INTO stamps (device_sn, table_name, value, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (device_sn, table_name) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
            &[&sn.as_str(), &GAP_STAMP, &from.to_string(), &now],
        )
        .await
        .map_err(backend)?;
        commit(tx).await?;
        Ok(from)
    }

    async fn settle_agent_gap(&self, sn: &DeviceSn) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let open = tx
            .execute(
                "DELETE FROM stamps WHERE device_sn = $1 AND table_name = $2",
                &[&sn.as_str(), &GAP_STAMP],
            )
            .await
            .map_err(backend)?;
        if open == 0 {
            return Ok(false);
        }
        tx.execute(
            "UPDATE agent_batches b SET n_stored = COALESCE(p.n, 0) FROM agent_batches b2 \
             LEFT JOIN (SELECT journal_id, COUNT(*) AS n FROM punches WHERE device_sn = $1 \
               GROUP BY journal_id) p ON p.journal_id = b2.journal_id \
             WHERE b2.journal_id = b.journal_id AND b.device_sn = $1",
            &[&sn.as_str()],
        )
        .await
        .map_err(backend)?;
        commit(tx).await?;
        Ok(true)
    }

    async fn outbound(&self, sn: &DeviceSn) -> Result<Outbound> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT device_sn, phase, acked_id, acked_seq, sent_id, sent_seq, sent_at \
                 FROM agent_outbound WHERE device_sn = $1",
                &[&sn.as_str()],
            )
            .await
            .map_err(backend)?;
        match row {
            Some(row) => outbound_from_row(&row),
            None => Ok(Outbound::new(sn.clone())),
        }
    }

    async fn save_outbound(&self, state: Outbound, now: DateTime<Utc>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "INSERT INTO agent_outbound (device_sn, phase, acked_id, acked_seq, sent_id, sent_seq, sent_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (device_sn) DO UPDATE SET phase = EXCLUDED.phase, acked_id = EXCLUDED.acked_id, \
             acked_seq = EXCLUDED.acked_seq, sent_id = EXCLUDED.sent_id, sent_seq = EXCLUDED.sent_seq, \
             sent_at = EXCLUDED.sent_at, updated_at = EXCLUDED.updated_at",
            &[
                &state.device_sn.as_str(),
                &state.phase.as_str(),
                &state.acked_id,
                &state.acked_seq,
                &state.sent_id,
                &state.sent_seq,
                &state.sent_at,
                &now,
            ],
        )
        .await
        .map_err(backend)?;
        commit(tx).await
    }

    async fn punches_after(
        &self,
        sn: &DeviceSn,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<Punch>> {
        let client = self.client().await?;
        client
            .query(
                &format!(
                    "SELECT {PUNCH_COLUMNS} FROM punches WHERE device_sn = $1 AND id > $2 ORDER BY id LIMIT $3"
                ),
                &[&sn.as_str(), &after_id, &i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(punch_from_row)
            .collect()
    }

    async fn punch_id_at_seq(&self, sn: &DeviceSn, seq: i64) -> Result<Option<i64>> {
        if seq <= 0 {
            return Ok(Some(0));
        }
        let client = self.client().await?;
        client
            .query_opt(
                "SELECT id FROM punches WHERE device_sn = $1 ORDER BY id LIMIT 1 OFFSET $2",
                &[&sn.as_str(), &(seq - 1)],
            )
            .await
            .map_err(backend)?
            .map(|r| col(&r, 0))
            .transpose()
    }

    async fn outbound_backlog(&self) -> Result<(u64, Option<DateTime<Utc>>)> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT COUNT(*), MIN(p.received_at) FROM punches p \
                 LEFT JOIN agent_outbound o ON o.device_sn = p.device_sn \
                 WHERE p.id > COALESCE(o.acked_id, 0)",
                &[],
            )
            .await
            .map_err(backend)?;
        Ok((narrow(col::<i64>(&row, 0)?), col(&row, 1)?))
    }
}
