//! [`UiAccountsStore`] for SQLite: the `ui_accounts` and `ui_sessions` tables (migration 0010_ui_accounts.sql).
//! Foreign keys are off in this store, so ending an account's sessions is an explicit `DELETE`.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{backend, from_ms, ms, SqliteStore};
use crate::domain::Role;
use crate::store::attendance::AuditRecord;
use crate::store::ui_accounts::{NewUiSession, UiAccount, UiAccountsStore, UiSession};
use crate::store::{Result, StoreError};

const COLUMNS: &str = "id, name, role, disabled, created_at, updated_at, last_login_at";

fn account_from_row(row: &Row<'_>) -> rusqlite::Result<UiAccount> {
    let role: String = row.get(2)?;
    Ok(UiAccount {
        id: row.get(0)?,
        name: row.get(1)?,
        // An unknown stored role reads as the least privilege.
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        disabled: row.get(3)?,
        created_at: from_ms(row.get(4)?),
        updated_at: from_ms(row.get(5)?),
        last_login_at: row.get::<_, Option<i64>>(6)?.map(from_ms),
    })
}

fn by_name(conn: &Connection, name: &str) -> Result<Option<UiAccount>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM ui_accounts WHERE name = ?1"
    ))
    .and_then(|mut st| st.query_row([name], account_from_row).optional())
    .map_err(backend)
}

fn existing(conn: &Connection, name: &str) -> Result<UiAccount> {
    by_name(conn, name)?.ok_or_else(|| StoreError::NotFound(format!("UI account {name:?}")))
}

fn end_sessions(conn: &Connection, account_id: i64) -> Result<usize> {
    conn.prepare_cached("DELETE FROM ui_sessions WHERE account_id = ?1")
        .and_then(|mut st| st.execute([account_id]))
        .map_err(backend)
}

#[async_trait::async_trait]
impl UiAccountsStore for SqliteStore {
    async fn create_ui_account(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<UiAccount> {
        let (name, hash) = (name.to_owned(), password_hash.to_owned());
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "INSERT INTO ui_accounts (name, role, password_hash, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT DO NOTHING",
                )
                .and_then(|mut st| st.execute(params![name, role.as_str(), hash, ms(now)]))
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "a UI account named {name:?} exists"
                )));
            }
            existing(conn, &name)
        })
        .await
    }

    async fn get_ui_account(&self, name: &str) -> Result<UiAccount> {
        let name = name.to_owned();
        self.read(move |conn| existing(conn, &name)).await
    }

    async fn list_ui_accounts(&self) -> Result<Vec<UiAccount>> {
        self.read(|conn| {
            let mut st = conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM ui_accounts ORDER BY name"))
                .map_err(backend)?;
            let rows = st.query_map([], account_from_row).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn ui_password_hash(&self, name: &str) -> Result<Option<(UiAccount, String)>> {
        let name = name.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS}, password_hash FROM ui_accounts WHERE name = ?1"
            ))
            .and_then(|mut st| {
                st.query_row([&name], |row| Ok((account_from_row(row)?, row.get(7)?)))
                    .optional()
            })
            .map_err(backend)
        })
        .await
    }

    async fn set_ui_password(
        &self,
        name: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (name, hash) = (name.to_owned(), password_hash.to_owned());
        self.write(move |conn| {
            let account = existing(conn, &name)?;
            conn.prepare_cached(
                "UPDATE ui_accounts SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
            )
            .and_then(|mut st| st.execute(params![account.id, hash, ms(now)]))
            .map_err(backend)?;
            end_sessions(conn, account.id).map(|_| ())
        })
        .await
    }

    async fn set_ui_role(&self, name: &str, role: Role, now: DateTime<Utc>) -> Result<UiAccount> {
        let name = name.to_owned();
        self.write(move |conn| {
            let account = existing(conn, &name)?;
            conn.prepare_cached("UPDATE ui_accounts SET role = ?2, updated_at = ?3 WHERE id = ?1")
                .and_then(|mut st| st.execute(params![account.id, role.as_str(), ms(now)]))
                .map_err(backend)?;
            existing(conn, &name)
        })
        .await
    }

    async fn set_ui_disabled(
        &self,
        name: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<UiAccount> {
        let name = name.to_owned();
        self.write(move |conn| {
            let account = existing(conn, &name)?;
            conn.prepare_cached(
                "UPDATE ui_accounts SET disabled = ?2, updated_at = ?3 WHERE id = ?1",
            )
            .and_then(|mut st| st.execute(params![account.id, disabled, ms(now)]))
            .map_err(backend)?;
            if disabled {
                end_sessions(conn, account.id)?;
            }
            existing(conn, &name)
        })
        .await
    }

    async fn end_ui_sessions(&self, name: &str) -> Result<usize> {
        let name = name.to_owned();
        self.write(move |conn| {
            let account = existing(conn, &name)?;
            end_sessions(conn, account.id)
        })
        .await
    }

    async fn audit_ui_account(&self, audit: AuditRecord) -> Result<()> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO audit_log (at, author, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    ms(Utc::now()),
                    audit.author,
                    audit.action,
                    audit.subject,
                    audit.detail.to_string()
                ])
            })
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn create_ui_session(&self, session: NewUiSession) -> Result<()> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO ui_sessions (token_hash, account_id, csrf_token, created_at, last_seen_at, \
                 remote_addr) VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    session.token_hash,
                    session.account_id,
                    session.csrf_token,
                    ms(session.now),
                    session.remote_addr
                ])
            })
            .map_err(backend)?;
            conn.prepare_cached("UPDATE ui_accounts SET last_login_at = ?2 WHERE id = ?1")
                .and_then(|mut st| st.execute(params![session.account_id, ms(session.now)]))
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn find_ui_session(
        &self,
        token_hash: &str,
        idle_cutoff: DateTime<Utc>,
    ) -> Result<Option<UiSession>> {
        let hash = token_hash.to_owned();
        self.read(move |conn| {
            let columns = COLUMNS
                .split(", ")
                .map(|c| format!("a.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            conn.prepare_cached(&format!(
                "SELECT {columns}, s.csrf_token, s.created_at, s.last_seen_at \
                 FROM ui_sessions s JOIN ui_accounts a ON a.id = s.account_id \
                 WHERE s.token_hash = ?1 AND s.last_seen_at >= ?2 AND a.disabled = 0"
            ))
            .and_then(|mut st| {
                st.query_row(params![hash, ms(idle_cutoff)], |row| {
                    Ok(UiSession {
                        token_hash: hash.clone(),
                        account: account_from_row(row)?,
                        csrf_token: row.get(7)?,
                        created_at: from_ms(row.get(8)?),
                        last_seen_at: from_ms(row.get(9)?),
                    })
                })
                .optional()
            })
            .map_err(backend)
        })
        .await
    }

    async fn touch_ui_session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<()> {
        let hash = token_hash.to_owned();
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE ui_sessions SET last_seen_at = MAX(last_seen_at, ?2) WHERE token_hash = ?1",
            )
            .and_then(|mut st| st.execute(params![hash, ms(now)]))
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn delete_ui_session(&self, token_hash: &str) -> Result<()> {
        let hash = token_hash.to_owned();
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM ui_sessions WHERE token_hash = ?1")
                .and_then(|mut st| st.execute([hash]))
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn prune_ui_sessions(&self, idle_cutoff: DateTime<Utc>) -> Result<usize> {
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM ui_sessions WHERE last_seen_at < ?1")
                .and_then(|mut st| st.execute([ms(idle_cutoff)]))
                .map_err(backend)
        })
        .await
    }
}
