//! The persisted command queue (DESIGN.md "Commands are data"): queued → sent (with id) → succeeded | failed
//! (device return code) | expired.
//!
//! For push terminals the wire text (push.md §8.2) is fixed when a command is queued, so the history shows exactly
//! what was delivered. Delivery happens on the terminal's poll (`sources::push`), results come back on
//! `devicecmd`; [`CommandQueue::complete`] records them, and the store applies their effect on what punchd knows
//! in the same transaction (a deleted user is forgotten, a disabled user is marked so).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Registry;
use crate::domain::{Command, CommandKind, Device, DeviceSn, NewCommand, Pin, Transport};
use crate::store::{CommandCompletion, Store, StoreError};

/// Why a command could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The device is not registered.
    #[error("device {0} is not registered")]
    UnknownDevice(DeviceSn),
    /// The command needs data punchd does not have (e.g. enabling a user it never saw).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The command queue.
#[derive(Clone)]
pub struct CommandQueue {
    store: Arc<dyn Store>,
    registry: Option<Arc<Registry>>,
}

impl CommandQueue {
    /// A queue over a store. With a registry (a running server), the target device's "commands waiting" hint is
    /// set at once so its next poll picks the command up.
    pub fn new(store: Arc<dyn Store>, registry: Option<Arc<Registry>>) -> CommandQueue {
        CommandQueue { store, registry }
    }

    /// The push wire lines for a command (more than one for `enable_user`, which also restores templates).
    async fn push_wire(
        &self,
        device: &Device,
        kind: &CommandKind,
    ) -> Result<Vec<(CommandKind, String)>, EnqueueError> {
        use zk_push::command::{Command as Wire, UserInfo};
        let one = |wire: Wire| Ok(vec![(kind.clone(), wire.encode())]);
        match kind {
            CommandKind::UpsertUser {
                pin,
                name,
                privilege,
                password,
                card,
                group,
            } => one(Wire::UpdateUser(UserInfo {
                pin: pin.clone(),
                name: name.clone(),
                privilege: *privilege,
                password: password.clone(),
                card: card.clone(),
                group: if group.is_empty() {
                    "1".into()
                } else {
                    group.clone()
                },
                time_zones: "0000000000000000".into(),
                verify_mode: None,
            })),
            CommandKind::DeleteUser { pin } | CommandKind::DisableUser { pin } => {
                one(Wire::DeleteUser { pin: pin.clone() })
            }
            CommandKind::EnableUser { pin } => {
                let users = self.store.list_device_users(&device.sn).await?;
                let user = users.into_iter().find(|u| u.pin.as_str() == pin).ok_or_else(|| {
                    EnqueueError::Invalid(format!(
                        "punchd holds no record of user {pin} on {}; use upsert_user with the full record",
                        device.sn
                    ))
                })?;
                let mut out = vec![(
                    kind.clone(),
                    Wire::UpdateUser(UserInfo {
                        pin: user.pin.0.clone(),
                        name: user.name.clone(),
                        privilege: user.privilege.unwrap_or(0),
                        password: user.password.clone(),
                        card: user.card.clone(),
                        group: user.group.clone(),
                        time_zones: user.time_zones.clone(),
                        verify_mode: user.verify_mode,
                    })
                    .encode(),
                )];
                for t in self
                    .store
                    .list_templates(&device.sn, Some(&Pin(pin.clone())))
                    .await?
                {
                    let wire = match t.kind.as_str() {
                        "finger" => Wire::UpdateFingerTemplate {
                            pin: pin.clone(),
                            fid: t.no,
                            valid: t.valid.unwrap_or(1),
                            template: t.template.clone(),
                        },
                        "face" => Wire::UpdateFace {
                            pin: pin.clone(),
                            fid: t.no,
                            valid: t.valid.unwrap_or(1),
                            template: t.template.clone(),
                        },
                        _ => Wire::UpdateBioData {
                            pin: pin.clone(),
                            no: t.no,
                            index: t.index,
                            valid: t.valid.unwrap_or(1),
                            duress: t.duress,
                            bio_type: t.bio_type,
                            major_ver: t.major_ver.clone().unwrap_or_default(),
                            minor_ver: t.minor_ver.clone().unwrap_or_default(),
                            format: t.format.unwrap_or(0),
                            template: t.template.clone(),
                        },
                    };
                    let text = wire.encode();
                    out.push((CommandKind::Raw { text: text.clone() }, text));
                }
                Ok(out)
            }
            CommandKind::ReuploadPunches { from, to } => one(Wire::QueryAttLog {
                start: *from,
                end: *to,
            }),
            CommandKind::FetchInfo => one(Wire::Info),
            CommandKind::SyncTime => one(Wire::Check),
            CommandKind::ClearAttendanceLog => one(Wire::ClearLog),
            CommandKind::Reboot => one(Wire::Reboot),
            CommandKind::SetOption { key, value } => {
                if key.is_empty() || key.contains(['=', '\t', '\n', '\r']) {
                    return Err(EnqueueError::Invalid(format!(
                        "option name {key:?} is not valid"
                    )));
                }
                one(Wire::SetOption {
                    key: key.clone(),
                    value: value.clone(),
                })
            }
            CommandKind::Unlock => one(Wire::Unlock),
            CommandKind::Raw { text } => {
                if text.trim().is_empty() || text.contains(['\n', '\r']) {
                    return Err(EnqueueError::Invalid(
                        "a raw command is one non-empty line".into(),
                    ));
                }
                one(Wire::Raw(text.clone()))
            }
        }
    }

    /// Queue a command for a device. Returns the queued commands (more than one when a command expands, e.g.
    /// `enable_user` restores the user's templates too).
    ///
    /// Errors: unknown device, a command that cannot be rendered, or a store failure.
    pub async fn enqueue(
        &self,
        sn: &DeviceSn,
        kind: CommandKind,
        requested_by: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Command>, EnqueueError> {
        let device = match self.store.get_device(sn).await {
            Ok(device) => device,
            Err(StoreError::NotFound(_)) => return Err(EnqueueError::UnknownDevice(sn.clone())),
            Err(e) => return Err(e.into()),
        };
        super::validate::check_command(&kind, device.transport).map_err(EnqueueError::Invalid)?;
        let parts: Vec<(CommandKind, Option<String>)> = match device.transport {
            Transport::Push => self
                .push_wire(&device, &kind)
                .await?
                .into_iter()
                .map(|(k, w)| (k, Some(w)))
                .collect(),
            Transport::Tcp | Transport::Udp => vec![(kind, None)],
            Transport::Biotime => {
                return Err(EnqueueError::Invalid(
                    super::validate::read_through_biotime(),
                ))
            }
        };
        let commands = parts
            .into_iter()
            .map(|(kind, wire)| NewCommand {
                device_sn: sn.clone(),
                kind,
                wire,
                requested_by: requested_by.to_owned(),
            })
            .collect();
        let queued = self.store.enqueue_commands(commands, now).await?;
        if let Some(entry) = self.registry.as_ref().and_then(|r| r.get(sn)) {
            entry.set_may_have_commands(true);
        }
        Ok(queued)
    }

    /// Record a device's results; the store applies their effect on what punchd knows (a deleted user is
    /// forgotten, a disabled user is marked) in the same transaction. Returns the commands that changed.
    ///
    /// Errors: the store failed (the device should not be acknowledged; it re-posts its results).
    pub async fn complete(
        &self,
        sn: &DeviceSn,
        completions: Vec<CommandCompletion>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Command>, StoreError> {
        self.store.complete_commands(sn, completions, now).await
    }
}
