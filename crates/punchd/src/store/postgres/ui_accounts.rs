//! [`UiAccountsStore`] on PostgreSQL: the `ui_accounts` and `ui_sessions` tables (migration 0005_ui_accounts.sql).
//! Same rules as the SQLite twin: a name is unique, a new password or a disabled account ends the account's
//! sessions, a disabled account's sessions are never found.

use chrono::{DateTime, Utc};
use tokio_postgres::{GenericClient, Row};

use super::{backend, col, commit, PgStore};
use crate::domain::Role;
use crate::store::attendance::AuditRecord;
use crate::store::ui_accounts::{NewUiSession, UiAccount, UiAccountsStore, UiSession};
use crate::store::{Result, StoreError};

const COLUMNS: &str =
    "a.id, a.name, a.role, a.disabled, a.created_at, a.updated_at, a.last_login_at";

fn account_from_row(row: &Row) -> Result<UiAccount> {
    let role: String = col(row, 2)?;
    Ok(UiAccount {
        id: col(row, 0)?,
        name: col(row, 1)?,
        // An unknown stored role reads as the least privilege.
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        disabled: col(row, 3)?,
        created_at: col(row, 4)?,
        updated_at: col(row, 5)?,
        last_login_at: col(row, 6)?,
    })
}

async fn existing(client: &impl GenericClient, name: &str) -> Result<UiAccount> {
    client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM ui_accounts a WHERE a.name = $1"),
            &[&name],
        )
        .await
        .map_err(backend)?
        .map(|row| account_from_row(&row))
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("UI account {name:?}")))
}

#[async_trait::async_trait]
impl UiAccountsStore for PgStore {
    async fn create_ui_account(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<UiAccount> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO ui_accounts (name, role, password_hash, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO NOTHING",
                &[&name, &role.as_str(), &password_hash, &now],
            )
            .await
            .map_err(backend)?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "a UI account named {name:?} exists"
            )));
        }
        existing(&**client, name).await
    }

    async fn get_ui_account(&self, name: &str) -> Result<UiAccount> {
        let client = self.client().await?;
        existing(&**client, name).await
    }

    async fn list_ui_accounts(&self) -> Result<Vec<UiAccount>> {
        let client = self.client().await?;
        client
            .query(
                &format!("SELECT {COLUMNS} FROM ui_accounts a ORDER BY a.name"),
                &[],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(account_from_row)
            .collect()
    }

    async fn ui_password_hash(&self, name: &str) -> Result<Option<(UiAccount, String)>> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {COLUMNS}, a.password_hash FROM ui_accounts a WHERE a.name = $1"),
                &[&name],
            )
            .await
            .map_err(backend)?
            .map(|row| Ok((account_from_row(&row)?, col(&row, 7)?)))
            .transpose()
    }

    async fn set_ui_password(
        &self,
        name: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let account = existing(&*tx, name).await?;
        tx.execute(
            "UPDATE ui_accounts SET password_hash = $2, updated_at = $3 WHERE id = $1",
            &[&account.id, &password_hash, &now],
        )
        .await
        .map_err(backend)?;
        tx.execute(
            "DELETE FROM ui_sessions WHERE account_id = $1",
            &[&account.id],
        )
        .await
        .map_err(backend)?;
        commit(tx).await
    }

    async fn set_ui_role(&self, name: &str, role: Role, now: DateTime<Utc>) -> Result<UiAccount> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE ui_accounts SET role = $2, updated_at = $3 WHERE name = $1",
                &[&name, &role.as_str(), &now],
            )
            .await
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("UI account {name:?}")));
        }
        existing(&**client, name).await
    }

    async fn set_ui_disabled(
        &self,
        name: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<UiAccount> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let account = existing(&*tx, name).await?;
        tx.execute(
            "UPDATE ui_accounts SET disabled = $2, updated_at = $3 WHERE id = $1",
            &[&account.id, &disabled, &now],
        )
        .await
        .map_err(backend)?;
        if disabled {
            tx.execute(
                "DELETE FROM ui_sessions WHERE account_id = $1",
                &[&account.id],
            )
            .await
            .map_err(backend)?;
        }
        let account = existing(&*tx, name).await?;
        commit(tx).await?;
        Ok(account)
    }

    async fn end_ui_sessions(&self, name: &str) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let account = existing(&*tx, name).await?;
        let n = tx
            .execute(
                "DELETE FROM ui_sessions WHERE account_id = $1",
                &[&account.id],
            )
            .await
            .map_err(backend)?;
        commit(tx).await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn audit_ui_account(&self, audit: AuditRecord) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO audit_log (at, author, action, subject, detail) VALUES (now(), $1, $2, $3, $4)",
                &[&audit.author, &audit.action, &audit.subject, &audit.detail],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn create_ui_session(&self, session: NewUiSession) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "INSERT INTO ui_sessions (token_hash, account_id, csrf_token, created_at, last_seen_at, \
             remote_addr) VALUES ($1, $2, $3, $4, $4, $5)",
            &[
                &session.token_hash,
                &session.account_id,
                &session.csrf_token,
                &session.now,
                &session.remote_addr,
            ],
        )
        .await
        .map_err(backend)?;
        tx.execute(
            "UPDATE ui_accounts SET last_login_at = $2 WHERE id = $1",
            &[&session.account_id, &session.now],
        )
        .await
        .map_err(backend)?;
        commit(tx).await
    }

    async fn find_ui_session(
        &self,
        token_hash: &str,
        idle_cutoff: DateTime<Utc>,
    ) -> Result<Option<UiSession>> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!(
                    "SELECT {COLUMNS}, s.csrf_token, s.created_at, s.last_seen_at \
                     FROM ui_sessions s JOIN ui_accounts a ON a.id = s.account_id \
                     WHERE s.token_hash = $1 AND s.last_seen_at >= $2 AND NOT a.disabled"
                ),
                &[&token_hash, &idle_cutoff],
            )
            .await
            .map_err(backend)?
            .map(|row| {
                Ok(UiSession {
                    token_hash: token_hash.to_owned(),
                    account: account_from_row(&row)?,
                    csrf_token: col(&row, 7)?,
                    created_at: col(&row, 8)?,
                    last_seen_at: col(&row, 9)?,
                })
            })
            .transpose()
    }

    async fn touch_ui_session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE ui_sessions SET last_seen_at = GREATEST(last_seen_at, $2) WHERE token_hash = $1",
                &[&token_hash, &now],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn delete_ui_session(&self, token_hash: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM ui_sessions WHERE token_hash = $1",
                &[&token_hash],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn prune_ui_sessions(&self, idle_cutoff: DateTime<Utc>) -> Result<usize> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM ui_sessions WHERE last_seen_at < $1",
                &[&idle_cutoff],
            )
            .await
            .map_err(backend)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}
