//! `punchd ui-users`: accounts of the web UI (`add`, `list`, `passwd`, `role`, `disable`, `enable`). Named
//! apart from `users`, which lists the users enrolled on a terminal.
//!
//! Passwords are asked for on the terminal without echo, or read from the first line of standard input with
//! `--password-stdin` (scripts, tests); they are stored as argon2id hashes only. Every change is written to the
//! audit log (author `cli`; the UI's accounts page writes the same actions as `ui:<name>`).

use std::io::{BufRead, IsTerminal};

use anyhow::{bail, Context};
use chrono::Utc;
use clap::Subcommand;

use super::open_store_with;
use crate::config::Config;
use crate::domain::Role;
use crate::format::Format;
use crate::web::ui::session::{check_account_name, check_new_password, hash_password};

/// `ui-users` actions.
#[derive(Debug, Subcommand)]
pub enum UiUserAction {
    /// Create an account (the first one: `punchd ui-users add NAME --role admin`).
    Add {
        /// Sign-in name: letters, digits, '.', '_', '-', '@'.
        name: String,
        /// viewer (reads everything), hr (people, mapping, shifts, policy, review, sign-off) or admin
        /// (everything, terminals included).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Read the password from the first line of standard input instead of asking.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts: name, role, state, created and last sign-in (UTC).
    List,
    /// Set a new password (ends the account's sessions).
    Passwd {
        /// The account.
        name: String,
        /// Read the password from the first line of standard input instead of asking.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change an account's role.
    Role {
        /// The account.
        name: String,
        /// viewer, hr or admin.
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Disable an account: it can no longer sign in, and its sessions end at once.
    Disable {
        /// The account.
        name: String,
    },
    /// Enable a disabled account again.
    Enable {
        /// The account.
        name: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("role {s:?} is not viewer, hr or admin"))
}

/// Ask for a password (twice on a terminal), or read one line of standard input.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        let again = rpassword::prompt_password("Again: ").context("reading the password")?;
        if first != again {
            bail!("the two passwords differ; nothing was changed");
        }
        first
    };
    check_new_password(&password).map_err(|e| anyhow::anyhow!(e))?;
    Ok(password)
}

/// Write an account change to the audit log (author `cli`), as the UI's accounts page does.
async fn audit(
    store: &dyn crate::store::Store,
    action: &str,
    name: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    store
        .audit_ui_account(crate::store::attendance::AuditRecord {
            author: "cli".into(),
            action: action.into(),
            subject: name.into(),
            detail,
        })
        .await?;
    Ok(())
}

/// Run a `ui-users` action.
pub(super) async fn run(
    config: Config,
    action: UiUserAction,
    format: Format,
) -> anyhow::Result<()> {
    let store = open_store_with(&config, matches!(action, UiUserAction::Add { .. })).await?;
    let now = Utc::now();
    match action {
        UiUserAction::Add {
            name,
            role,
            password_stdin,
        } => {
            check_account_name(&name).map_err(|e| anyhow::anyhow!(e))?;
            let password = read_password(password_stdin)?;
            let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
            let account = store
                .create_ui_account(&name, role, &hash, now)
                .await
                .map_err(|e| match e {
                    crate::store::StoreError::Conflict(_) => anyhow::anyhow!(
                        "an account named {name:?} exists (`punchd ui-users passwd {name}` sets a new password)"
                    ),
                    other => other.into(),
                })?;
            audit(
                &*store,
                "ui_account.add",
                &name,
                serde_json::json!({ "role": role.as_str() }),
            )
            .await?;
            eprintln!(
                "UI account {:?} ({}) created; sign in at http://{}/ui",
                account.name, account.role, config.listen
            );
        }
        UiUserAction::List => {
            let accounts = store.list_ui_accounts().await?;
            let mut rows = crate::format::Rows {
                header: vec!["name", "role", "state", "created", "last_login"],
                rows: Vec::new(),
            };
            for a in &accounts {
                rows.rows.push(vec![
                    a.name.clone(),
                    a.role.to_string(),
                    if a.disabled { "disabled" } else { "enabled" }.to_owned(),
                    a.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    a.last_login_at
                        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                        .unwrap_or_default(),
                ]);
            }
            super::print_rows(&rows, format, serde_json::to_value(&accounts)?)?;
        }
        UiUserAction::Passwd {
            name,
            password_stdin,
        } => {
            store.get_ui_account(&name).await?;
            let password = read_password(password_stdin)?;
            let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
            store.set_ui_password(&name, &hash, now).await?;
            audit(&*store, "ui_account.password", &name, serde_json::json!({})).await?;
            eprintln!("password of {name:?} changed; its sessions ended");
        }
        UiUserAction::Role { name, role } => {
            let before = store.get_ui_account(&name).await?.role;
            store.set_ui_role(&name, role, now).await?;
            audit(
                &*store,
                "ui_account.role",
                &name,
                serde_json::json!({ "from": before.as_str(), "to": role.as_str() }),
            )
            .await?;
            eprintln!("{name:?} is now {role}");
        }
        UiUserAction::Disable { name } => {
            store.set_ui_disabled(&name, true, now).await?;
            audit(&*store, "ui_account.disable", &name, serde_json::json!({})).await?;
            eprintln!("{name:?} disabled; its sessions ended");
        }
        UiUserAction::Enable { name } => {
            store.set_ui_disabled(&name, false, now).await?;
            audit(&*store, "ui_account.enable", &name, serde_json::json!({})).await?;
            eprintln!("{name:?} enabled");
        }
    }
    Ok(())
}
