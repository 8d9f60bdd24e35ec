//! Web UI accounts and their server-side sessions (issue 11).
//!
//! An account has a name, a [`Role`] and an argon2 password hash (hashing and checking live in
//! `web::ui::session`; the store only keeps the PHC string). A session is a random cookie value of which only the
//! SHA-256 is stored, with its CSRF token and when it was last used: [`UiAccountsStore::find_ui_session`] answers
//! only for a session used after the idle cut-off, of an account that is not disabled. Disabling an account or
//! changing its password ends its sessions.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::attendance::AuditRecord;
use super::Result;
use crate::domain::Role;

/// A UI account as stored (the password hash is kept out of listings: see [`UiAccountsStore::ui_password_hash`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UiAccount {
    /// Id.
    pub id: i64,
    /// Unique sign-in name.
    pub name: String,
    /// What the account may do.
    pub role: Role,
    /// A disabled account cannot sign in and has no sessions.
    pub disabled: bool,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last change of role, password or state (UTC).
    pub updated_at: DateTime<Utc>,
    /// Last successful sign-in (UTC).
    pub last_login_at: Option<DateTime<Utc>>,
}

/// A session to store at sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUiSession {
    /// SHA-256 hex of the cookie value.
    pub token_hash: String,
    /// Whose.
    pub account_id: i64,
    /// The CSRF token forms of this session carry.
    pub csrf_token: String,
    /// Remote address at sign-in.
    pub remote_addr: Option<String>,
    /// Sign-in time (UTC); also the first `last_seen_at`.
    pub now: DateTime<Utc>,
}

/// A live session with its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSession {
    /// SHA-256 hex of the cookie value.
    pub token_hash: String,
    /// The account (never disabled: a disabled account has no sessions).
    pub account: UiAccount,
    /// The CSRF token of this session.
    pub csrf_token: String,
    /// Signed in (UTC).
    pub created_at: DateTime<Utc>,
    /// Last used (UTC); the session expires when idle longer than the configured time.
    pub last_seen_at: DateTime<Utc>,
}

/// Accounts and sessions of the web UI.
#[async_trait::async_trait]
pub trait UiAccountsStore {
    /// Create an account; `Conflict` when the name is taken.
    async fn create_ui_account(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<UiAccount>;
    /// One account by name, or `NotFound`.
    async fn get_ui_account(&self, name: &str) -> Result<UiAccount>;
    /// Every account, by name.
    async fn list_ui_accounts(&self) -> Result<Vec<UiAccount>>;
    /// The account and its password hash, for signing in; `None` when no account has this name.
    async fn ui_password_hash(&self, name: &str) -> Result<Option<(UiAccount, String)>>;
    /// Replace the password hash and end the account's sessions. `NotFound` if unknown.
    async fn set_ui_password(
        &self,
        name: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Change the role (the account's sessions keep going with the new role). `NotFound` if unknown.
    async fn set_ui_role(&self, name: &str, role: Role, now: DateTime<Utc>) -> Result<UiAccount>;
    /// Disable (ending its sessions) or enable an account. `NotFound` if unknown.
    async fn set_ui_disabled(
        &self,
        name: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<UiAccount>;

    /// End every session of an account (an admin's "sign out everywhere"); returns how many ended. `NotFound` if
    /// unknown.
    async fn end_ui_sessions(&self, name: &str) -> Result<usize>;
    /// Write one entry in the audit log about an account change (`ui_account.add`, `ui_account.role`, …; the
    /// CLI's `ui-users` and the UI's accounts page call it after the change succeeded: the account methods do
    /// not audit by themselves). The entry's time is the store's now (UTC).
    async fn audit_ui_account(&self, audit: AuditRecord) -> Result<()>;

    /// Store a session and record the sign-in on the account.
    async fn create_ui_session(&self, session: NewUiSession) -> Result<()>;
    /// The session with this hash when it was last used at or after `idle_cutoff` and its account is enabled.
    async fn find_ui_session(
        &self,
        token_hash: &str,
        idle_cutoff: DateTime<Utc>,
    ) -> Result<Option<UiSession>>;
    /// Mark a session used at `now` (idle expiry restarts).
    async fn touch_ui_session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<()>;
    /// End one session (sign-out); ending an unknown one is not an error.
    async fn delete_ui_session(&self, token_hash: &str) -> Result<()>;
    /// Forget sessions last used before `idle_cutoff`; returns how many.
    async fn prune_ui_sessions(&self, idle_cutoff: DateTime<Utc>) -> Result<usize>;
}
