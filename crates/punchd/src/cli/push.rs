//! `punchd devices push-auth SN`: show and change a push terminal's authentication (README "Terminal
//! authentication"; `devices::push_auth`), and what `punchd devices approve` adds for push terminals.

use std::sync::Arc;

use chrono::Utc;
use clap::{Args, ValueEnum};

use crate::devices::push_auth;
use crate::domain::{CommandKind, DeviceSn, Transport};
use crate::store::push::{PushAuth, PushAuthPatch};
use crate::store::Store;

/// Binding setting of one terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Bind {
    /// Requests must come from an accepted address.
    On,
    /// Any address (DHCP sites).
    Off,
    /// Follow the server-wide `[push] bind_addresses`.
    Default,
}

/// `devices push-auth` options.
#[derive(Debug, Args)]
pub struct PushAuthArgs {
    /// Serial number.
    pub sn: String,
    /// Bind the terminal to its accepted addresses: on, off (DHCP sites) or default (the server-wide setting).
    #[arg(long, value_enum)]
    pub bind: Option<Bind>,
    /// Require `ComKey=<KEY>` on every request (SPEC-US). Also queues `SET OPTION PushComKey=<KEY>` and
    /// `SET OPTION IsPushComKey=1`; requests without the key are accepted until the terminal first sends it.
    #[arg(long, value_name = "KEY", conflicts_with = "no_comm_key")]
    pub comm_key: Option<String>,
    /// Stop requiring a ComKey.
    #[arg(long)]
    pub no_comm_key: bool,
    /// Forget the accepted addresses (the next request binds again).
    #[arg(long)]
    pub forget_addresses: bool,
    /// Forget the pinned handshake `pushcommkey` (a replaced or reset terminal).
    #[arg(long)]
    pub forget_handshake_key: bool,
}

/// The state as printed: the stored state plus what applies.
fn view(auth: &PushAuth, default_bind: bool) -> serde_json::Value {
    let mut v = serde_json::to_value(auth).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.insert(
            "binding".into(),
            auth.bind_addresses.unwrap_or(default_bind).into(),
        );
        map.insert("comm_key_set".into(), auth.comm_key.is_some().into());
        map.insert(
            "handshake_key_pinned".into(),
            auth.handshake_key.is_some().into(),
        );
    }
    v
}

/// Run `devices push-auth`: apply the changes given, print the state as JSON.
///
/// Errors: unknown device, an invalid key, a store failure.
pub async fn run(
    store: Arc<dyn Store>,
    sn: &DeviceSn,
    args: PushAuthArgs,
    default_bind: bool,
) -> anyhow::Result<()> {
    let device = store.get_device(sn).await?;
    if device.transport != Transport::Push {
        anyhow::bail!("{sn} is a pull terminal; push authentication applies to push terminals");
    }
    if let Some(key) = &args.comm_key {
        if key.is_empty() || key.len() > 32 || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            anyhow::bail!("comm key {key:?} is not 1–32 letters or digits");
        }
    }
    let patch = PushAuthPatch {
        bind_addresses: args.bind.map(|b| match b {
            Bind::On => Some(true),
            Bind::Off => Some(false),
            Bind::Default => None,
        }),
        comm_key: if args.no_comm_key {
            Some(None)
        } else {
            args.comm_key.clone().map(Some)
        },
        clear_handshake_key: args.forget_handshake_key,
        clear_addresses: args.forget_addresses,
    };
    let now = Utc::now();
    let auth = if patch == PushAuthPatch::default() {
        store.push_auth(sn).await?
    } else {
        push_auth::update(store.as_ref(), sn, patch, now).await?
    };
    if let Some(key) = &args.comm_key {
        let queue = crate::devices::CommandQueue::new(store.clone(), None);
        for (k, v) in [("PushComKey", key.as_str()), ("IsPushComKey", "1")] {
            let kind = CommandKind::SetOption {
                key: k.into(),
                value: v.into(),
            };
            for c in queue.enqueue(sn, kind, "cli", now).await? {
                eprintln!(
                    "queued command {}: {}",
                    c.id,
                    c.wire.as_deref().unwrap_or("")
                );
            }
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&view(&auth, default_bind))?
    );
    Ok(())
}

/// After `devices approve`: accept the held address of a push terminal and say so.
///
/// Errors: a store failure.
pub async fn after_approve(store: &dyn Store, sn: &DeviceSn) -> anyhow::Result<()> {
    let device = store.get_device(sn).await?;
    if device.transport == Transport::Push {
        let auth = push_auth::on_approve(store, &device, Utc::now()).await?;
        if !auth.addresses.is_empty() {
            eprintln!("{sn} is accepted from {}", auth.addresses.join(", "));
        }
    }
    Ok(())
}
