//! [`PushStore`] on SQLite: the `push_auth` table (migration 0004) and user files kept in `photos`; and the
//! effect of a succeeded `upsert_user` on punchd's copy of the terminal's users.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::{backend, from_ms, ms, parse_local, sn_from, SqliteStore};
use crate::domain::{Command, CommandKind, DeviceSn, Pin};
use crate::store::push::{PushAuth, PushAuthPatch, PushStore, UserFile};
use crate::store::{Result, StoreError};

/// How many accepted addresses a terminal keeps (the oldest is dropped): a DHCP lease history, not a list that
/// grows forever.
const MAX_ADDRESSES: usize = 16;

/// The kinds of `photos` rows that belong to a user rather than to a punch.
const USER_FILE_KINDS: &str = "('userfile', 'userpic', 'biophoto')";

/// A succeeded `upsert_user` writes the record it sent into `device_users`, so `users --device` shows it,
/// `enable_user` can restore it and a rename is seen at once. On a push terminal the record is written whole
/// (the user is enabled: `DATA UPDATE USERINFO` puts a disabled user back on the terminal); on a pull terminal a
/// disabled user stays disabled (the command keeps the flag), and the next user read refreshes the copy.
pub(super) fn apply_upsert_on(conn: &Connection, command: &Command) -> Result<()> {
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
    let transport: Option<String> = conn
        .prepare_cached("SELECT transport FROM devices WHERE sn = ?1")
        .and_then(|mut st| st.query_row([sn], |r| r.get(0)).optional())
        .map_err(backend)?;
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
    conn.prepare_cached(
        "INSERT INTO device_users (device_sn, pin, name, privilege, password, card, grp, time_zones, enabled, \
         fields, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9, ?10) \
         ON CONFLICT (device_sn, pin) DO UPDATE SET name = excluded.name, privilege = excluded.privilege, \
         password = excluded.password, card = excluded.card, grp = excluded.grp, \
         time_zones = CASE WHEN ?11 THEN excluded.time_zones ELSE device_users.time_zones END, \
         enabled = CASE WHEN ?11 THEN 1 ELSE device_users.enabled END, \
         fields = excluded.fields, updated_at = excluded.updated_at",
    )
    .and_then(|mut st| {
        st.execute(params![
            sn,
            pin,
            name,
            privilege,
            password,
            card,
            group,
            time_zones,
            fields.to_string(),
            ms(now),
            push,
        ])
    })
    .map_err(backend)?;
    Ok(())
}

fn read_auth_on(conn: &Connection, sn: &str) -> Result<PushAuth> {
    conn.prepare_cached(
        "SELECT bind_addresses, addresses, held_address, held_since, held_requests, comm_key, handshake_key, \
         comm_key_seen FROM push_auth WHERE sn = ?1",
    )
    .and_then(|mut st| {
        st.query_row([sn], |r| {
            let addresses: String = r.get(1)?;
            Ok(PushAuth {
                bind_addresses: r.get(0)?,
                addresses: serde_json::from_str(&addresses).unwrap_or_default(),
                held_address: r.get(2)?,
                held_since: r.get::<_, Option<i64>>(3)?.map(from_ms),
                held_requests: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                comm_key: r.get(5)?,
                handshake_key: r.get(6)?,
                comm_key_seen: r.get(7)?,
            })
        })
        .optional()
    })
    .map(Option::unwrap_or_default)
    .map_err(backend)
}

fn write_auth_on(conn: &Connection, sn: &str, auth: &PushAuth, now: DateTime<Utc>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO push_auth (sn, bind_addresses, addresses, held_address, held_since, held_requests, comm_key, \
         handshake_key, updated_at, comm_key_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (sn) DO UPDATE SET bind_addresses = excluded.bind_addresses, addresses = excluded.addresses, \
         held_address = excluded.held_address, held_since = excluded.held_since, \
         held_requests = excluded.held_requests, comm_key = excluded.comm_key, \
         handshake_key = excluded.handshake_key, updated_at = excluded.updated_at, \
         comm_key_seen = excluded.comm_key_seen",
    )
    .and_then(|mut st| {
        st.execute(params![
            sn,
            auth.bind_addresses,
            serde_json::to_string(&auth.addresses).unwrap_or_else(|_| "[]".into()),
            auth.held_address,
            auth.held_since.map(ms),
            i64::try_from(auth.held_requests).unwrap_or(i64::MAX),
            auth.comm_key,
            auth.handshake_key,
            ms(now),
            auth.comm_key_seen,
        ])
    })
    .map_err(backend)?;
    Ok(())
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

impl SqliteStore {
    /// Read, change and write a terminal's state in one write job.
    async fn change_auth(
        &self,
        sn: &DeviceSn,
        now: DateTime<Utc>,
        f: impl FnOnce(&mut PushAuth) + Send + 'static,
    ) -> Result<PushAuth> {
        let sn = sn.clone();
        self.write(move |conn| {
            let mut auth = read_auth_on(conn, sn.as_str())?;
            f(&mut auth);
            write_auth_on(conn, sn.as_str(), &auth, now)?;
            Ok(auth)
        })
        .await
    }
}

fn user_file_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserFile> {
    Ok(UserFile {
        id: r.get(0)?,
        device_sn: sn_from(r.get(1)?)?,
        pin: Pin(r.get(2)?),
        kind: r.get(3)?,
        file_name: r.get(4)?,
        size: u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
        taken_at: r
            .get::<_, Option<String>>(6)?
            .map(|t| parse_local(&t))
            .transpose()?,
        received_at: from_ms(r.get(7)?),
    })
}

#[async_trait::async_trait]
impl PushStore for SqliteStore {
    async fn push_auth(&self, sn: &DeviceSn) -> Result<PushAuth> {
        let sn = sn.clone();
        self.read(move |conn| read_auth_on(conn, sn.as_str())).await
    }

    async fn bind_push_address(
        &self,
        sn: &DeviceSn,
        address: &str,
        now: DateTime<Utc>,
    ) -> Result<PushAuth> {
        let address = address.to_owned();
        self.change_auth(sn, now, move |auth| add_address(auth, &address))
            .await
    }

    async fn hold_push_address(
        &self,
        sn: &DeviceSn,
        address: &str,
        n_requests: u64,
        now: DateTime<Utc>,
    ) -> Result<PushAuth> {
        let address = address.to_owned();
        self.change_auth(sn, now, move |auth| {
            if auth.held_address.as_deref() != Some(address.as_str()) {
                auth.held_address = Some(address);
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
        let key = key.to_owned();
        self.change_auth(sn, now, move |auth| auth.handshake_key = Some(key))
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
        let (sn, pin) = (sn.clone(), pin.clone());
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT id, device_sn, pin, kind, file_name, length(content), taken_at, received_at FROM photos \
                 WHERE device_sn = ?1 AND pin = ?2 AND kind IN {USER_FILE_KINDS} ORDER BY id"
            ))
            .and_then(|mut st| {
                st.query_map(params![sn.as_str(), pin.as_str()], user_file_from)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(backend)
        })
        .await
    }

    async fn get_user_file(
        &self,
        sn: &DeviceSn,
        pin: &Pin,
        id: i64,
    ) -> Result<(UserFile, Vec<u8>)> {
        let (sn, pin) = (sn.clone(), pin.clone());
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT id, device_sn, pin, kind, file_name, length(content), taken_at, received_at, content \
                 FROM photos WHERE device_sn = ?1 AND pin = ?2 AND id = ?3 AND kind IN {USER_FILE_KINDS}"
            ))
            .and_then(|mut st| {
                st.query_row(params![sn.as_str(), pin.as_str(), id], |r| {
                    Ok((user_file_from(r)?, r.get::<_, Vec<u8>>(8)?))
                })
                .optional()
            })
            .map_err(backend)?
            .ok_or_else(|| StoreError::NotFound(format!("file {id} of user {pin} on {sn}")))
        })
        .await
    }
}
