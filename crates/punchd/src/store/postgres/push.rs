//! [`PushStore`] on PostgreSQL: the `push_auth` table and user files kept in `photos`; and the effect of a
//! succeeded `upsert_user` on punchd's copy of the terminal's users. Same rules as `sqlite/push.rs`.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::{backend, col, commit, narrow, sn_from, PgStore};
use crate::domain::{Command, CommandKind, DeviceSn, Pin};
use crate::store::push::{PushAuth, PushAuthPatch, PushStore, UserFile};
use crate::store::{Result, StoreError};

/// How many accepted addresses a terminal keeps (the oldest is dropped).
const MAX_ADDRESSES: usize = 16;

/// The kinds of `photos` rows that belong to a user rather than to a punch.
const USER_FILE_KINDS: &str = "('userfile', 'userpic', 'biophoto')";

/// A succeeded `upsert_user` writes the record it sent into `device_users` (see `sqlite/push.rs` for why a push
/// terminal's record is written whole and enabled, and a pull terminal's keeps its flag).
pub(super) async fn apply_upsert_on(
    tx: &deadpool_postgres::Transaction<'_>,
    command: &Command,
) -> Result<()> {
    let CommandKind::UpsertUser {
        pin,
        name,
        privilege,
        password,
        card,
        group,
    } = &command.kind
    else {
        return Ok(());
    };
    let sn = command.device_sn.as_str();
    let transport: Option<String> = tx
        .query_opt("SELECT transport FROM devices WHERE sn = $1", &[&sn])
        .await
        .map_err(backend)?
        .map(|r| col(&r, 0))
        .transpose()?;
    let push = transport.as_deref().is_none_or(|t| t == "push");
    // What the push wire form sends for these (devices::commands): group 1 when empty, no time zones.
    let (group, time_zones) = if push {
        (
            if group.is_empty() {
                "1"
            } else {
                group.as_str()
            },
            "0000000000000000",
        )
    } else {
        (group.as_str(), "")
    };
    let fields = serde_json::json!({
        "PIN": pin, "Name": name, "Pri": privilege.to_string(), "Passwd": password, "Card": card, "Grp": group,
    });
    let now = command.finished_at.unwrap_or_else(Utc::now);
    tx.execute(
        "INSERT INTO device_users (device_sn, pin, name, privilege, password, card, grp, time_zones, enabled, \
         fields, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true, $9, $10) \
         ON CONFLICT (device_sn, pin) DO UPDATE SET name = excluded.name, privilege = excluded.privilege, \
         password = excluded.password, card = excluded.card, grp = excluded.grp, \
         time_zones = CASE WHEN $11 THEN excluded.time_zones ELSE device_users.time_zones END, \
         enabled = CASE WHEN $11 THEN true ELSE device_users.enabled END, \
         fields = excluded.fields, updated_at = excluded.updated_at",
        &[
            &sn,
            pin,
            name,
            &i32::from(*privilege),
            password,
            card,
            &group,
            &time_zones,
            &fields,
            &now,
            &push,
        ],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

const AUTH_COLUMNS: &str =
    "bind_addresses, addresses, held_address, held_since, held_requests, comm_key, \
    handshake_key, comm_key_seen";

fn auth_from_row(r: &Row) -> Result<PushAuth> {
    let addresses: serde_json::Value = col(r, 1)?;
    Ok(PushAuth {
        bind_addresses: col(r, 0)?,
        addresses: serde_json::from_value(addresses).unwrap_or_default(),
        held_address: col(r, 2)?,
        held_since: col(r, 3)?,
        held_requests: narrow(col::<i64>(r, 4)?),
        comm_key: col(r, 5)?,
        handshake_key: col(r, 6)?,
        comm_key_seen: col(r, 7)?,
    })
}

fn add_address(auth: &mut PushAuth, address: &str) {
    if !auth.addresses.iter().any(|a| a == address) {
        auth.addresses.push(address.to_owned());
        let excess = auth.addresses.len().saturating_sub(MAX_ADDRESSES);
        auth.addresses.drain(..excess);
    }
    if auth.held_address.as_deref() == Some(address) {
        auth.held_address = None;
        auth.held_since = None;
        auth.held_requests = 0;
    }
}

impl PgStore {
    /// Read, change and write a terminal's state in one transaction, the row locked so that two instances
    /// changing one terminal at once apply both changes.
    async fn change_auth(
        &self,
        sn: &DeviceSn,
        now: DateTime<Utc>,
        f: impl FnOnce(&mut PushAuth) + Send,
    ) -> Result<PushAuth> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "INSERT INTO push_auth (sn, updated_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&sn.as_str(), &now],
        )
        .await
        .map_err(backend)?;
        let row = tx
            .query_one(
                &format!("SELECT {AUTH_COLUMNS} FROM push_auth WHERE sn = $1 FOR UPDATE"),
                &[&sn.as_str()],
            )
            .await
            .map_err(backend)?;
        let mut auth = auth_from_row(&row)?;
        f(&mut auth);
        tx.execute(
            "UPDATE push_auth SET bind_addresses = $2, addresses = $3, held_address = $4, held_since = $5, \
             held_requests = $6, comm_key = $7, handshake_key = $8, updated_at = $9, comm_key_seen = $10 \
             WHERE sn = $1",
            &[
                &sn.as_str(),
                &auth.bind_addresses,
                &serde_json::to_value(&auth.addresses).unwrap_or_default(),
                &auth.held_address,
                &auth.held_since,
                &i64::try_from(auth.held_requests).unwrap_or(i64::MAX),
                &auth.comm_key,
                &auth.handshake_key,
                &now,
                &auth.comm_key_seen,
            ],
        )
        .await
        .map_err(backend)?;
        commit(tx).await?;
        Ok(auth)
    }
}

fn user_file_from(r: &Row) -> Result<UserFile> {
    Ok(UserFile {
        id: col(r, 0)?,
        device_sn: sn_from(col(r, 1)?)?,
        pin: Pin(col(r, 2)?),
        kind: col(r, 3)?,
        file_name: col(r, 4)?,
        size: narrow(i64::from(col::<i32>(r, 5)?)),
        taken_at: col(r, 6)?,
        received_at: col(r, 7)?,
    })
}

#[async_trait::async_trait]
impl PushStore for PgStore {
    async fn push_auth(&self, sn: &DeviceSn) -> Result<PushAuth> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {AUTH_COLUMNS} FROM push_auth WHERE sn = $1"),
                &[&sn.as_str()],
            )
            .await
            .map_err(backend)?
            .map_or(Ok(PushAuth::default()), |r| auth_from_row(&r))
    }

    async fn bind_push_address(
        &self,
        sn: &DeviceSn,
        address: &str,
        now: DateTime<Utc>,
    ) -> Result<PushAuth> {
        self.change_auth(sn, now, |auth| add_address(auth, address))
            .await
    }

    async fn hold_push_address(
        &self,
        sn: &DeviceSn,
        address: &str,
        n_requests: u64,
        now: DateTime<Utc>,
    ) -> Result<PushAuth> {
        self.change_auth(sn, now, |auth| {
            if auth.held_address.as_deref() != Some(address) {
                auth.held_address = Some(address.to_owned());
                auth.held_since = Some(now);
                auth.held_requests = 0;
            }
            auth.held_requests = auth.held_requests.saturating_add(n_requests);
        })
        .await
    }

    async fn accept_held_push_address(
        &self,
        sn: &DeviceSn,
        now: DateTime<Utc>,
    ) -> Result<PushAuth> {
        self.change_auth(sn, now, |auth| {
            if let Some(held) = auth.held_address.clone() {
                add_address(auth, &held);
            }
        })
        .await
    }

    async fn mark_push_comm_key_seen(&self, sn: &DeviceSn, now: DateTime<Utc>) -> Result<PushAuth> {
        self.change_auth(sn, now, |auth| auth.comm_key_seen = true)
            .await
    }

    async fn pin_push_handshake_key(
        &self,
        sn: &DeviceSn,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<PushAuth> {
        self.change_auth(sn, now, |auth| auth.handshake_key = Some(key.to_owned()))
            .await
    }

    async fn update_push_auth(
        &self,
        sn: &DeviceSn,
        patch: PushAuthPatch,
        now: DateTime<Utc>,
    ) -> Result<PushAuth> {
        self.change_auth(sn, now, move |auth| {
            if let Some(bind) = patch.bind_addresses {
                auth.bind_addresses = bind;
            }
            if let Some(key) = patch.comm_key {
                auth.comm_key = key;
                auth.comm_key_seen = false;
            }
            if patch.clear_handshake_key {
                auth.handshake_key = None;
            }
            if patch.clear_addresses {
                auth.addresses.clear();
            }
        })
        .await
    }

    async fn list_user_files(&self, sn: &DeviceSn, pin: &Pin) -> Result<Vec<UserFile>> {
        let client = self.client().await?;
        client
            .query(
                &format!(
                    "SELECT id, device_sn, pin, kind, file_name, length(content), taken_at, received_at \
                     FROM photos WHERE device_sn = $1 AND pin = $2 AND kind IN {USER_FILE_KINDS} ORDER BY id"
                ),
                &[&sn.as_str(), &pin.as_str()],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(user_file_from)
            .collect()
    }

    async fn get_user_file(
        &self,
        sn: &DeviceSn,
        pin: &Pin,
        id: i64,
    ) -> Result<(UserFile, Vec<u8>)> {
        let client = self.client().await?;
        let r = client
            .query_opt(
                &format!(
                    "SELECT id, device_sn, pin, kind, file_name, length(content), taken_at, received_at, \
                     content FROM photos WHERE device_sn = $1 AND pin = $2 AND id = $3 AND kind IN {USER_FILE_KINDS}"
                ),
                &[&sn.as_str(), &pin.as_str(), &id],
            )
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::NotFound(format!("file {id} of user {pin} on {sn}")))?;
        Ok((user_file_from(&r)?, col(&r, 8)?))
    }
}
