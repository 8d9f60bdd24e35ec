//! Queued commands run on a pull device: the device-neutral [`CommandKind`] as pull protocol calls (pull.md
//! §4–§8), with results recorded through `CommandQueue::complete` (return code 0 = done, negative = refused,
//! with a readable message), so push and pull devices share one command vocabulary and history.
//!
//! A command is marked `sent` right before it runs. When the connection drops while it runs, it stays `sent`
//! and housekeeping queues it again after the command timeout (it may or may not have run, as on push).

use chrono::Utc;
use zk_pull::records::User;
use zk_pull::ClientError;

use super::session::{ClearOutcome, DeviceState, Session, SessionError};
use crate::domain::{Command, CommandKind};
use crate::store::CommandCompletion;

/// How many queued commands one session takes at most (the rest wait for the next one).
const COMMANDS_PER_SESSION: usize = 50;

/// Seconds the door stays open for `unlock` (pyzk's default is 3).
const UNLOCK_SECS: u32 = 3;

/// The result of one command on the device.
struct Done {
    return_code: i64,
    message: String,
    result: Option<serde_json::Value>,
    /// Not run after all: the command goes back to the queue with `message` (safe clear).
    held: bool,
}

fn ok(message: impl Into<String>) -> Result<Done, SessionError> {
    Ok(Done {
        return_code: 0,
        message: message.into(),
        result: None,
        held: false,
    })
}

fn refused(message: impl Into<String>) -> Result<Done, SessionError> {
    Ok(Done {
        return_code: -1,
        message: message.into(),
        result: None,
        held: false,
    })
}

/// Run the device's queued commands, oldest first. A reboot ends the session: commands queued after it wait
/// for the next one. Returns how many ran.
///
/// Errors: the connection or the store failed (the command that was running stays `sent`).
pub async fn run_queued(
    session: &mut Session<'_>,
    state: &mut DeviceState,
) -> Result<usize, SessionError> {
    let sn = session.sn().clone();
    let queued = session
        .app
        .store
        .queued_commands(&sn, COMMANDS_PER_SESSION)
        .await?;
    let mut n_run = 0;
    for command in queued {
        // Safe clear: a clear waits (stays queued, its message says why) while a sink owes this terminal's punches.
        if crate::sinks::safe_clear::hold_if_owed(
            session.app.store.as_ref(),
            &session.device,
            &command,
        )
        .await?
        {
            continue;
        }
        // Another instance may have taken it meanwhile: run only what we marked.
        if session
            .app
            .store
            .mark_sent(vec![command.id], Utc::now())
            .await?
            .is_empty()
        {
            continue;
        }
        let reboot = matches!(command.kind, CommandKind::Reboot);
        let done = match run_one(session, state, &command).await {
            Ok(done) => done,
            Err(e) if e.lost_connection() => return Err(e),
            Err(e) => Done {
                return_code: -1,
                message: e.to_string(),
                result: None,
                held: false,
            },
        };
        if done.held {
            // The pull this clear made stored punches the sinks do not have yet: back to the queue, for a later
            // session.
            session
                .app
                .store
                .hold_command(command.id, Some(done.message))
                .await?;
            continue;
        }
        tracing::info!(sn = %sn, id = command.id, kind = command.kind.name(), return_code = done.return_code,
            message = %done.message, "command ran on the terminal");
        session
            .app
            .commands
            .complete(
                &sn,
                vec![CommandCompletion {
                    id: command.id,
                    return_code: done.return_code,
                    message: done.message,
                    result: done.result,
                }],
                Utc::now(),
            )
            .await?;
        n_run += 1;
        if reboot && session.client.is_none() {
            return Ok(n_run);
        }
    }
    // Held clears alone do not keep the hint set: the next scheduled pull session looks at them again.
    if session
        .app
        .store
        .queued_commands(&sn, COMMANDS_PER_SESSION)
        .await?
        .iter()
        .all(|c| {
            c.message
                .as_deref()
                .is_some_and(|m| m.starts_with(crate::sinks::safe_clear::HELD))
        })
    {
        if let Some(entry) = session.app.registry.get(&sn) {
            entry.set_may_have_commands(false);
        }
    }
    Ok(n_run)
}

/// The user with this PIN on the device, read fresh (the uid is the device's key for writes and deletes).
async fn find_user(session: &mut Session<'_>, pin: &str) -> Result<Option<User>, SessionError> {
    let users = session.client()?.users().await?;
    Ok(users.into_iter().find(|u| u.user_id.trim() == pin))
}

async fn run_one(
    session: &mut Session<'_>,
    state: &mut DeviceState,
    command: &Command,
) -> Result<Done, SessionError> {
    match &command.kind {
        CommandKind::UpsertUser {
            pin,
            name,
            privilege,
            password,
            card,
            group,
        } => {
            let card = if card.trim().is_empty() {
                0
            } else {
                match card.trim().parse::<u32>() {
                    Ok(card) => card,
                    Err(_) => {
                        return refused(format!(
                            "card {card:?} is not a number up to 4294967295, which is all a pull terminal stores"
                        ))
                    }
                }
            };
            let Ok(privilege) = u8::try_from(*privilege) else {
                return refused(format!("privilege {privilege} is not 0, 2, 6 or 14"));
            };
            let users = session.client()?.users().await?;
            let existing = users.iter().find(|u| u.user_id.trim() == pin.as_str());
            let uid = match existing {
                Some(u) => u.uid,
                None => match users
                    .iter()
                    .map(|u| u.uid)
                    .max()
                    .unwrap_or(0)
                    .checked_add(1)
                {
                    Some(uid) if uid < u16::MAX => uid,
                    _ => return refused("the terminal has no free user number"),
                },
            };
            let mut user = User {
                uid,
                user_id: pin.clone(),
                name: name.clone(),
                privilege: privilege & !zk_pull::records::PRIVILEGE_DISABLED,
                password: password.clone(),
                group_id: group.clone(),
                card,
            };
            // Keep a disabled user disabled: enabling is its own command.
            user.set_enabled(existing.is_none_or(User::is_enabled));
            session.client()?.set_user(&user).await?;
            session.users_changed = true;
            ok(format!(
                "user {pin} {} (uid {uid})",
                if existing.is_some() {
                    "updated"
                } else {
                    "added"
                }
            ))
        }
        CommandKind::DeleteUser { pin } => {
            let Some(user) = find_user(session, pin).await? else {
                return refused(format!("no user with PIN {pin} on the terminal"));
            };
            session.client()?.delete_user(user.uid).await?;
            session.users_changed = true;
            ok(format!("user {pin} deleted (uid {})", user.uid))
        }
        CommandKind::EnableUser { pin } | CommandKind::DisableUser { pin } => {
            let enable = matches!(command.kind, CommandKind::EnableUser { .. });
            let Some(user) = find_user(session, pin).await? else {
                return refused(format!("no user with PIN {pin} on the terminal"));
            };
            match session.client()?.set_user_enabled(user.uid, enable).await {
                Ok(()) => {}
                Err(ClientError::UserNotFound { .. }) => {
                    return refused(format!("no user with PIN {pin} on the terminal"))
                }
                Err(e) => return Err(e.into()),
            }
            session.users_changed = true;
            ok(format!(
                "user {pin} {}",
                if enable { "enabled" } else { "disabled" }
            ))
        }
        CommandKind::ReuploadPunches { from, to } => {
            // The whole log is read again and every punch in the range goes to ingest (held ones are kept
            // once); the protocol has no date filter (pull.md §10.1).
            let (n_in_range, n_new) = session.reupload(*from, *to).await?;
            ok(format!("{n_in_range} punches in range, {n_new} new"))
        }
        CommandKind::FetchInfo => {
            let info = session.client()?.device_info().await?;
            let map = super::session::info_map(&info);
            session.set_info(map.clone());
            Ok(Done {
                return_code: 0,
                message: "device info read".into(),
                result: Some(serde_json::Value::Object(map)),
                held: false,
            })
        }
        CommandKind::SyncTime => {
            let before = session.sync_time(state).await?;
            ok(format!(
                "clock set to {} ({}); it was off by {before} s",
                Utc::now()
                    .with_timezone(&session.tz)
                    .format("%Y-%m-%d %H:%M:%S"),
                session.tz
            ))
        }
        CommandKind::ClearAttendanceLog => match session.pull_attendance(true).await?.clear {
            Some(ClearOutcome::Cleared(n)) => ok(format!(
                "attendance log cleared; punchd holds all {n} punches it had"
            )),
            Some(ClearOutcome::Deferred(why)) => {
                let owing =
                    crate::sinks::safe_clear::owed_by(session.app.store.as_ref(), session.sn())
                        .await?;
                Ok(Done {
                    return_code: 0,
                    message: owing.map_or_else(
                        || format!("{}{why}", crate::sinks::safe_clear::HELD),
                        |o| crate::sinks::safe_clear::held_note(&o),
                    ),
                    result: None,
                    held: true,
                })
            }
            Some(ClearOutcome::Refused(why)) => refused(format!("not cleared: {why}")),
            None => refused("not cleared"),
        },
        CommandKind::Reboot => {
            let Some(client) = session.client.take() else {
                return Err(SessionError::Client(ClientError::NotConnected));
            };
            client.restart().await?;
            ok("terminal restarting")
        }
        CommandKind::SetOption { key, value } => {
            if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
                return refused(format!("option {key:?} = {value:?} cannot be written"));
            }
            session.client()?.set_option(key, value).await?;
            ok(format!("option {key} set to {value}"))
        }
        CommandKind::Unlock => {
            session.client()?.unlock(UNLOCK_SECS).await?;
            ok(format!("door opened for {UNLOCK_SECS} s"))
        }
        CommandKind::Raw { .. } => {
            refused("raw commands are push protocol text; a pull terminal cannot run them")
        }
    }
}
