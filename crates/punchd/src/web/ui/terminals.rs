//! Terminals (`/ui/terminals`): list and search; approve and block (scope `operate`); settings (scope `admin`,
//! like `PATCH /api/v1/devices/{sn}`); send a command, follow its result and cancel a queued one (scope `operate`); users and
//! templates on the terminal. Each action calls what the JSON API calls, with the same scope.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, badge, link, text, Flash, FormErrors, Nav};
use super::{require, UiCtx, UiError, UiUser};
use crate::app::App;
use crate::devices::{health, settings};
use crate::domain::{
    Approval, Command, CommandKind, CommandStatus, Device, DeviceSn, Scope, Transport,
};
use crate::store::{CommandFilter, DevicePatch};

/// A terminal is **silent** when it is online but has sent no punch for this long (or never).
pub const SILENT_AFTER: chrono::Duration = chrono::Duration::hours(24);

/// Queued commands listed on a terminal's page (the newest first).
const QUEUED_SHOWN: usize = 50;

/// The terminal pages' routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/terminals", get(list))
        .route("/terminals/{sn}", get(show))
        .route("/terminals/{sn}/approve", post(approve))
        .route("/terminals/{sn}/block", post(block))
        .route("/terminals/{sn}/settings", post(save_settings))
        .route("/terminals/{sn}/commands", post(send_command))
        .route("/terminals/{sn}/commands/{id}", get(command_status))
        .route("/terminals/{sn}/commands/{id}/cancel", post(cancel_command))
}

fn parse_sn(sn: &str) -> Result<DeviceSn, UiError> {
    DeviceSn::parse(sn).map_err(|e| UiError::NotFound(format!("no terminal {sn:?}: {e}")))
}

/// How a terminal is doing, for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Seen within its online window, and punches arrive.
    Online,
    /// Seen within its online window, but no punch for [`SILENT_AFTER`].
    Silent,
    /// Not seen within its online window (or never).
    Offline,
}

impl Presence {
    /// The presence of `device` at `now`, given its last punch (UTC).
    pub fn of(device: &Device, last_punch: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Presence {
        if !health::is_online(device, now) {
            Presence::Offline
        } else if last_punch.is_none_or(|at| now - at > SILENT_AFTER) {
            Presence::Silent
        } else {
            Presence::Online
        }
    }

    /// `online`, `silent` or `offline`.
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Online => "online",
            Presence::Silent => "silent",
            Presence::Offline => "offline",
        }
    }

    /// A badge saying it, with how long (since last seen for offline, since the last punch for silent).
    pub fn badge(
        self,
        device: &Device,
        last_punch: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Markup {
        match self {
            Presence::Online => badge("ok", "online"),
            Presence::Silent => badge(
                "warn",
                match last_punch {
                    Some(at) => format!("silent {}", layout::ago(now - at)),
                    None => "silent, no punch yet".to_owned(),
                },
            ),
            Presence::Offline => badge(
                "bad",
                match device.last_seen {
                    Some(at) => format!("offline {}", layout::ago(now - at)),
                    None => "never seen".to_owned(),
                },
            ),
        }
    }
}

/// A badge for the approval state.
pub fn approval_badge(a: Approval) -> Markup {
    match a {
        Approval::Approved => badge("ok", "approved"),
        Approval::Pending => badge("warn", "pending"),
        Approval::Blocked => badge("bad", "blocked"),
    }
}

/// The last punch (UTC) of every device, from the per-PIN summary kept up to date
/// ([`AppState::seen`](crate::app::AppState::seen)).
pub async fn last_punches(
    app: &App,
) -> Result<std::collections::HashMap<String, DateTime<Utc>>, UiError> {
    Ok(crate::attendance::seen_cache::last_punches_of(
        &super::pins_seen(app).await?,
    ))
}

/// The list's search and filter.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Text found in the SN, alias, site, address or firmware (any letter case).
    #[serde(default)]
    q: Option<String>,
    /// `pending`, `approved`, `blocked`, `online`, `silent` or `offline`.
    #[serde(default)]
    state: Option<String>,
}

/// `GET /ui/terminals`: every terminal, searchable.
async fn list(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    let now = Utc::now();
    let last = last_punches(&app).await?;
    let needle = q.q.as_deref().unwrap_or("").trim().to_lowercase();
    let state = q.state.as_deref().unwrap_or("");
    let mut devices = app.registry.devices_where(|_| true);
    devices.sort_by(|a, b| a.sn.as_str().cmp(b.sn.as_str()));
    let may_operate = user.may(Scope::Operate);
    let mut rows = Vec::new();
    let mut n_pending = 0;
    for d in &devices {
        let last_punch = last.get(d.sn.as_str()).copied();
        let presence = Presence::of(d, last_punch, now);
        if d.approval == Approval::Pending {
            n_pending += 1;
        }
        let haystack = [
            Some(d.sn.as_str()),
            d.alias.as_deref(),
            d.site.as_deref(),
            d.address.as_deref(),
            d.last_ip.as_deref(),
            d.firmware.as_deref(),
        ]
        .into_iter()
        .flatten()
        .any(|s| s.to_lowercase().contains(&needle));
        let state_ok = match state {
            "" => true,
            "pending" => d.approval == Approval::Pending,
            "approved" => d.approval == Approval::Approved,
            "blocked" => d.approval == Approval::Blocked,
            other => presence.as_str() == other,
        };
        if !(haystack && state_ok) {
            continue;
        }
        let href = format!("/ui/terminals/{}", layout::enc(d.sn.as_str()));
        let actions = html! {
            @if may_operate && d.approval != Approval::Approved {
                (layout::post_button(&ctx, &format!("{href}/approve"), "Approve", ""))
            }
            @if may_operate && d.approval != Approval::Blocked {
                form.inline method="post" action={(href) "/block"}
                    data-confirm={"Block " (d.sn) "? It will be answered UNKNOWN DEVICE and keep its data."} {
                    (layout::csrf_field(&ctx))
                    button.secondary type="submit" { "Block" }
                }
            }
        };
        rows.push(vec![
            link(&href, d.sn.as_str()),
            text(d.alias.as_deref().unwrap_or("")),
            text(d.site.as_deref().unwrap_or("")),
            text(d.transport.as_str()),
            approval_badge(d.approval),
            presence.badge(d, last_punch, now),
            text(
                last_punch
                    .map(|t| format!("{} ago", layout::ago(now - t)))
                    .unwrap_or_else(|| "never".into()),
            ),
            text(drift_text(d.clock_drift_secs)),
            actions,
        ]);
    }
    let states: Vec<(String, String)> = [
        ("", "Any state"),
        ("pending", "Pending approval"),
        ("approved", "Approved"),
        ("blocked", "Blocked"),
        ("online", "Online"),
        ("silent", "Silent"),
        ("offline", "Offline"),
    ]
    .into_iter()
    .map(|(v, l)| (v.to_owned(), l.to_owned()))
    .collect();
    let body = html! {
        @if n_pending > 0 {
            p { (badge("warn", format!("{n_pending} pending"))) " "
                a href="/ui/terminals?state=pending" { "terminals wait for approval" } }
        }
        form.card.row method="get" action="/ui/terminals" role="search" {
            (layout::field("Search", "q", "search", q.q.as_deref().unwrap_or(""), None, None))
            (layout::select("State", "state", &states, state, None))
            button type="submit" { "Search" }
        }
        (layout::table(
            &format!("{} of {} terminals", rows.len(), devices.len()),
            &["SN", "Alias", "Site", "Transport", "Approval", "State", "Last punch", "Clock drift", "Actions"],
            rows,
            "No terminal matches.",
        ))
    };
    Ok(layout::html(layout::page(&ctx, "Terminals", Nav::Terminals, body)).into_response())
}

/// Clock drift for people: `+12 s` (terminal ahead), `−3 s`, or empty when unknown.
pub fn drift_text(secs: Option<i64>) -> String {
    match secs {
        Some(s) if s > 0 => format!("+{s} s"),
        Some(s) if s < 0 => format!("−{} s", -s),
        Some(_) => "0 s".to_owned(),
        None => String::new(),
    }
}

/// The settings form's fields (as typed).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    alias: String,
    #[serde(default)]
    site: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    poll_delay_secs: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    comm_key: String,
    #[serde(default)]
    pull_interval_secs: String,
}

impl SettingsForm {
    fn of(d: &Device) -> SettingsForm {
        SettingsForm {
            alias: d.alias.clone().unwrap_or_default(),
            site: d.site.clone().unwrap_or_default(),
            time_zone: d.time_zone.clone().unwrap_or_default(),
            poll_delay_secs: d.poll_delay_secs.to_string(),
            address: d.address.clone().unwrap_or_default(),
            comm_key: d.comm_key.unwrap_or(0).to_string(),
            pull_interval_secs: d.pull_interval_secs.unwrap_or(300).to_string(),
        }
    }

    /// The change it asks for, or the errors by field.
    fn patch(&self, device: &Device) -> Result<DevicePatch, FormErrors> {
        let mut errors = FormErrors::new();
        let opt = |s: &str| {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_owned())
        };
        let alias = opt(&self.alias);
        if alias.as_ref().is_some_and(|a| a.chars().count() > 100) {
            errors.add("alias", "at most 100 characters");
        }
        let site = opt(&self.site);
        if site.as_ref().is_some_and(|a| a.chars().count() > 100) {
            errors.add("site", "at most 100 characters");
        }
        let time_zone = opt(&self.time_zone);
        if let Some(zone) = &time_zone {
            if let Err(e) = settings::check_time_zone(zone) {
                errors.add("time_zone", e);
            }
        }
        let number = |errors: &mut FormErrors, field: &str, s: &str| -> Option<u32> {
            match s.trim().parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => {
                    errors.add(field, "a whole number");
                    None
                }
            }
        };
        let mut patch = DevicePatch {
            alias: Some(alias),
            site: Some(site),
            time_zone: Some(time_zone),
            ..DevicePatch::default()
        };
        if device.transport == Transport::Push {
            if let Some(n) = number(&mut errors, "poll_delay_secs", &self.poll_delay_secs) {
                match settings::check_poll_delay(n) {
                    Ok(n) => patch.poll_delay_secs = Some(n),
                    Err(e) => errors.add("poll_delay_secs", e),
                }
            }
        } else {
            match settings::check_address(&self.address) {
                Ok(a) => patch.address = Some(Some(a)),
                Err(e) => errors.add("address", e),
            }
            if let Some(n) = number(&mut errors, "comm_key", &self.comm_key) {
                patch.comm_key = Some(n);
            }
            if let Some(n) = number(&mut errors, "pull_interval_secs", &self.pull_interval_secs) {
                match settings::check_pull_interval(n) {
                    Ok(n) => patch.pull_interval_secs = Some(n),
                    Err(e) => errors.add("pull_interval_secs", e),
                }
            }
        }
        if errors.is_empty() {
            if let Err(e) = settings::check_patch(device, &patch) {
                errors.add("alias", e);
            }
        }
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(errors)
        }
    }
}

/// The command form's fields (as typed).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct CommandForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    pin: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    text: String,
}

/// The commands a person can pick, with what they need.
const COMMAND_KINDS: &[(&str, &str)] = &[
    ("fetch_info", "Fetch info (status, counts, options)"),
    ("sync_time", "Set the clock"),
    ("reupload_punches", "Send punches again (from, to)"),
    ("upsert_user", "Add or replace a user (PIN, name)"),
    ("disable_user", "Disable a user (PIN)"),
    ("enable_user", "Enable a user (PIN)"),
    ("delete_user", "Delete a user (PIN)"),
    ("set_option", "Set an option (key, value)"),
    ("unlock", "Open the door"),
    ("clear_attendance_log", "Clear the attendance log"),
    ("reboot", "Restart"),
    ("raw", "Raw push command (text)"),
];

impl CommandForm {
    fn kind(&self) -> Result<CommandKind, FormErrors> {
        let mut errors = FormErrors::new();
        let pin = self.pin.trim().to_owned();
        let need_pin = |errors: &mut FormErrors| {
            if pin.is_empty() {
                errors.add("pin", "this command needs the user's PIN");
            }
        };
        let time = |errors: &mut FormErrors, field: &str, s: &str| -> Option<NaiveDateTime> {
            let s = s.trim();
            [
                "%Y-%m-%dT%H:%M",
                "%Y-%m-%d %H:%M",
                "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d %H:%M:%S",
            ]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
            .or_else(|| {
                errors.add(field, "a terminal local time, e.g. 2026-11-30 08:00");
                None
            })
        };
        let kind = match self.kind.as_str() {
            "fetch_info" => Some(CommandKind::FetchInfo),
            "sync_time" => Some(CommandKind::SyncTime),
            "clear_attendance_log" => Some(CommandKind::ClearAttendanceLog),
            "reboot" => Some(CommandKind::Reboot),
            "unlock" => Some(CommandKind::Unlock),
            "reupload_punches" => {
                let from = time(&mut errors, "from", &self.from);
                let to = time(&mut errors, "to", &self.to);
                match (from, to) {
                    (Some(from), Some(to)) if from < to => {
                        Some(CommandKind::ReuploadPunches { from, to })
                    }
                    (Some(_), Some(_)) => {
                        errors.add("to", "must be after from");
                        None
                    }
                    _ => None,
                }
            }
            "upsert_user" => {
                need_pin(&mut errors);
                if self.name.chars().count() > 24 {
                    errors.add("name", "terminals keep at most 24 characters");
                }
                Some(CommandKind::UpsertUser {
                    pin: pin.clone(),
                    name: self.name.trim().to_owned(),
                    privilege: 0,
                    password: String::new(),
                    card: String::new(),
                    group: String::new(),
                })
            }
            "disable_user" => {
                need_pin(&mut errors);
                Some(CommandKind::DisableUser { pin: pin.clone() })
            }
            "enable_user" => {
                need_pin(&mut errors);
                Some(CommandKind::EnableUser { pin: pin.clone() })
            }
            "delete_user" => {
                need_pin(&mut errors);
                Some(CommandKind::DeleteUser { pin: pin.clone() })
            }
            "set_option" => {
                if self.key.trim().is_empty() {
                    errors.add("key", "the option's name");
                }
                Some(CommandKind::SetOption {
                    key: self.key.trim().to_owned(),
                    value: self.value.clone(),
                })
            }
            "raw" => {
                if self.text.trim().is_empty() {
                    errors.add("text", "the command text after C:<id>:");
                }
                Some(CommandKind::Raw {
                    text: self.text.clone(),
                })
            }
            _ => {
                errors.add("kind", "choose a command");
                None
            }
        };
        match kind {
            Some(kind) if errors.is_empty() => Ok(kind),
            _ => Err(errors),
        }
    }
}

fn status_badge(s: CommandStatus) -> Markup {
    let kind = match s {
        CommandStatus::Succeeded => "ok",
        CommandStatus::Failed | CommandStatus::Expired => "bad",
        CommandStatus::Queued | CommandStatus::Sent => "warn",
        _ => "muted",
    };
    badge(kind, s.as_str())
}

fn is_done(s: CommandStatus) -> bool {
    !matches!(s, CommandStatus::Queued | CommandStatus::Sent)
}

/// Everything the terminal page shows besides the forms' state.
struct Shown {
    device: Device,
    commands: Vec<Command>,
    /// Commands waiting for the terminal (the newest [`QUEUED_SHOWN`]), which may still be cancelled.
    queued: Vec<Command>,
    users: Vec<crate::store::DeviceUser>,
    n_templates: usize,
    last_punch: Option<DateTime<Utc>>,
}

async fn load(app: &App, sn: &DeviceSn) -> Result<Shown, UiError> {
    let device = app.store.get_device(sn).await?;
    let commands = app
        .store
        .list_commands(&CommandFilter {
            device_sn: Some(sn.clone()),
            status: None,
            limit: 20,
        })
        .await?;
    let queued = app
        .store
        .list_commands(&CommandFilter {
            device_sn: Some(sn.clone()),
            status: Some(CommandStatus::Queued),
            limit: QUEUED_SHOWN,
        })
        .await?;
    let users = app.store.list_device_users(sn).await?;
    let n_templates = app.store.list_templates(sn, None).await?.len();
    let last_punch = last_punches(app).await?.get(sn.as_str()).copied();
    Ok(Shown {
        device,
        commands,
        queued,
        users,
        n_templates,
        last_punch,
    })
}

fn terminal_page(
    ctx: &UiCtx,
    shown: &Shown,
    settings_form: &SettingsForm,
    settings_errors: &FormErrors,
    command_form: &CommandForm,
    command_errors: &FormErrors,
    follow: Option<i64>,
) -> Markup {
    let d = &shown.device;
    let now = Utc::now();
    let href = format!("/ui/terminals/{}", layout::enc(d.sn.as_str()));
    let presence = Presence::of(d, shown.last_punch, now);
    let is_push = d.transport == Transport::Push;
    let may_operate = ctx.may(Scope::Operate);
    let may_admin = ctx.may(Scope::Admin);
    let kinds: Vec<(String, String)> = std::iter::once((String::new(), "Choose…".to_owned()))
        .chain(
            COMMAND_KINDS
                .iter()
                .map(|(k, l)| ((*k).to_owned(), (*l).to_owned())),
        )
        .collect();
    let body = html! {
        dl.facts {
            dt { "Approval" } dd { (approval_badge(d.approval)) }
            dt { "State" } dd { (presence.badge(d, shown.last_punch, now)) }
            dt { "Transport" } dd { (d.transport.as_str()) }
            dt { "Last seen" } dd { (d.last_seen.map(|t| format!("{} UTC ({} ago)", t.format("%Y-%m-%d %H:%M:%S"), layout::ago(now - t))).unwrap_or_else(|| "never".into())) }
            dt { "Last punch" } dd { (shown.last_punch.map(|t| format!("{} ago", layout::ago(now - t))).unwrap_or_else(|| "none".into())) }
            dt { "Address" } dd { (d.last_ip.as_deref().or(d.address.as_deref()).unwrap_or("")) }
            dt { "Firmware" } dd { (d.firmware.as_deref().unwrap_or("")) " " (d.device_type.as_deref().unwrap_or("")) }
            dt { "Clock drift" } dd { (drift_text(d.clock_drift_secs)) }
            @if let Some(e) = &d.last_error { dt { "Last error" } dd { (e) } }
        }
        @if may_operate {
            p {
                @if d.approval != Approval::Approved {
                    (layout::post_button(ctx, &format!("{href}/approve"), "Approve", ""))
                }
                @if d.approval != Approval::Blocked {
                    form.inline method="post" action={(href) "/block"}
                        data-confirm={"Block " (d.sn) "? It will be answered UNKNOWN DEVICE and keep its data."} {
                        (layout::csrf_field(ctx))
                        button.secondary type="submit" { "Block" }
                    }
                }
            }
        }

        h2 #settings { "Settings" }
        @if !may_admin {
            p.hint { "Changing settings needs " (super::roles_with(Scope::Admin)) "." }
        }
        form.card method="post" action={(href) "/settings"} {
            (layout::csrf_field(ctx))
            fieldset disabled[!may_admin] {
                legend.visually-hidden { "Settings of " (d.sn) }
                (layout::field("Alias", "alias", "text", &settings_form.alias, settings_errors.get("alias"), Some("A name people recognise")))
                (layout::field("Site", "site", "text", &settings_form.site, settings_errors.get("site"), None))
                (layout::field("Time zone", "time_zone", "text", &settings_form.time_zone, settings_errors.get("time_zone"), Some("IANA name such as Europe/Berlin; empty = the server's default")))
                @if is_push {
                    (layout::field("Poll delay (seconds)", "poll_delay_secs", "number", &settings_form.poll_delay_secs, settings_errors.get("poll_delay_secs"), Some("1–3600; how often the terminal asks for commands")))
                } @else {
                    (layout::field("Address", "address", "text", &settings_form.address, settings_errors.get("address"), Some("host or host:port (4370 by default)")))
                    (layout::field("Comm key", "comm_key", "number", &settings_form.comm_key, settings_errors.get("comm_key"), Some("0 = none")))
                    (layout::field("Pull interval (seconds)", "pull_interval_secs", "number", &settings_form.pull_interval_secs, settings_errors.get("pull_interval_secs"), Some("0 keeps a live connection; at most a week")))
                }
                button type="submit" { "Save settings" }
            }
        }

        h2 #commands { "Commands" }
        @if let Some(id) = follow {
            div.card data-follow={(href) "/commands/" (id)} role="status" aria-live="polite" {
                "Command " (id) " is waiting for the terminal; this page reloads when its result arrives. "
                a href={(href) "#commands"} { "Reload now" }
            }
        }
        @if !may_operate {
            p.hint { "Sending commands needs " (super::roles_with(Scope::Operate)) "." }
        }
        form.card method="post" action={(href) "/commands"} {
            (layout::csrf_field(ctx))
            fieldset disabled[!may_operate] {
                legend.visually-hidden { "Send a command to " (d.sn) }
                (layout::select("Command", "kind", &kinds, &command_form.kind, command_errors.get("kind")))
                div.row {
                    (layout::field("PIN", "pin", "text", &command_form.pin, command_errors.get("pin"), None))
                    (layout::field("Name", "name", "text", &command_form.name, command_errors.get("name"), None))
                }
                div.row {
                    (layout::field("From", "from", "datetime-local", &command_form.from, command_errors.get("from"), None))
                    (layout::field("To", "to", "datetime-local", &command_form.to, command_errors.get("to"), None))
                }
                div.row {
                    (layout::field("Option", "key", "text", &command_form.key, command_errors.get("key"), None))
                    (layout::field("Value", "value", "text", &command_form.value, command_errors.get("value"), None))
                }
                (layout::field("Raw command", "text", "text", &command_form.text, command_errors.get("text"), None))
                button type="submit" { "Send command" }
            }
        }
        @if !shown.queued.is_empty() {
            (layout::table(
                "Queued commands: not yet taken by the terminal",
                &["Id", "Command", "By", "Created (UTC)", "Actions"],
                shown.queued.iter().map(|c| vec![
                    text(c.id.to_string()),
                    text(c.kind.name()),
                    text(&c.requested_by),
                    text(c.created_at.format("%Y-%m-%d %H:%M:%S").to_string()),
                    html! {
                        @if may_operate {
                            form.inline method="post" action={(href) "/commands/" (c.id) "/cancel"} {
                                (layout::csrf_field(ctx))
                                button.secondary type="submit" aria-label={"Cancel command " (c.id)} { "Cancel" }
                            }
                        }
                    },
                ]).collect(),
                "",
            ))
        }
        (layout::table(
            "Recent commands, newest first",
            &["Id", "Command", "Status", "By", "Created (UTC)", "Result"],
            shown.commands.iter().map(|c| vec![
                text(c.id.to_string()),
                text(c.kind.name()),
                status_badge(c.status),
                text(&c.requested_by),
                text(c.created_at.format("%Y-%m-%d %H:%M:%S").to_string()),
                html! {
                    @if let Some(code) = c.return_code { "return " (code) " " }
                    (c.message.as_deref().unwrap_or(""))
                    @if let Some(result) = &c.result {
                        details { summary { "Result" } pre.result { (serde_json::to_string_pretty(result).unwrap_or_default()) } }
                    }
                },
            ]).collect(),
            "No commands yet.",
        ))

        h2 #users { "Users on the terminal" }
        p { (shown.users.len()) " users, " (shown.n_templates) " biometric templates." }
        (layout::table(
            "Users on the terminal",
            &["PIN", "Name", "Privilege", "Card", "Enabled"],
            shown.users.iter().take(500).map(|u| vec![
                text(&u.pin.0),
                text(&u.name),
                text(u.privilege.map(|p| p.to_string()).unwrap_or_default()),
                text(&u.card),
                text(if u.enabled { "yes" } else { "no" }),
            ]).collect(),
            "The terminal has reported no users.",
        ))
    };
    let title = match &d.alias {
        Some(alias) => format!("Terminal {alias} ({})", d.sn),
        None => format!("Terminal {}", d.sn),
    };
    layout::page(ctx, &title, Nav::Terminals, body)
}

/// `?follow=<command id>` after sending a command.
#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    #[serde(default)]
    follow: Option<i64>,
}

/// `GET /ui/terminals/{sn}`: facts, approval, settings, commands, users.
async fn show(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Path(sn): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    let shown = load(&app, &parse_sn(&sn)?).await?;
    let follow = q.follow.filter(|id| {
        shown
            .commands
            .iter()
            .any(|c| c.id == *id && !is_done(c.status))
    });
    let form = SettingsForm::of(&shown.device);
    Ok(layout::html(terminal_page(
        &ctx,
        &shown,
        &form,
        &FormErrors::new(),
        &CommandForm::default(),
        &FormErrors::new(),
        follow,
    ))
    .into_response())
}

async fn set_approval(app: &App, sn: &DeviceSn, approval: Approval) -> Result<Device, UiError> {
    let patch = DevicePatch {
        approval: Some(approval),
        ..DevicePatch::default()
    };
    let device = app.store.get_device(sn).await?;
    settings::check_patch(&device, &patch).map_err(UiError::BadRequest)?;
    let device = app.store.update_device(sn, patch).await?;
    app.registry.update(device.clone());
    Ok(device)
}

/// `POST /ui/terminals/{sn}/approve` (scope `operate`, as `POST /api/v1/devices/{sn}/approve`).
async fn approve(
    State(app): State<App>,
    user: UiUser,
    Path(sn): Path<String>,
) -> Result<Response, UiError> {
    require(&user, Scope::Operate)?;
    let sn = parse_sn(&sn)?;
    let device = set_approval(&app, &sn, Approval::Approved).await?;
    crate::devices::push_auth::on_approve(app.store.as_ref(), &device, Utc::now()).await?;
    app.push_guard.forget(&device.sn);
    tracing::info!(sn = %sn, by = %user.name, "terminal approved in the web UI");
    Ok(layout::redirect_with_flash(
        &format!("/ui/terminals/{}", layout::enc(sn.as_str())),
        Flash::ok(format!(
            "Terminal {sn} approved: its data is taken from its next request on."
        )),
    ))
}

/// `POST /ui/terminals/{sn}/block` (scope `operate`, as `POST /api/v1/devices/{sn}/block`).
async fn block(
    State(app): State<App>,
    user: UiUser,
    Path(sn): Path<String>,
) -> Result<Response, UiError> {
    require(&user, Scope::Operate)?;
    let sn = parse_sn(&sn)?;
    set_approval(&app, &sn, Approval::Blocked).await?;
    tracing::info!(sn = %sn, by = %user.name, "terminal blocked in the web UI");
    Ok(layout::redirect_with_flash(
        &format!("/ui/terminals/{}", layout::enc(sn.as_str())),
        Flash::ok(format!(
            "Terminal {sn} blocked: it is answered UNKNOWN DEVICE and keeps its data."
        )),
    ))
}

/// `POST /ui/terminals/{sn}/settings` (scope `admin`, as `PATCH /api/v1/devices/{sn}`).
async fn save_settings(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Path(sn): Path<String>,
    Form(form): Form<SettingsForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Admin)?;
    let sn = parse_sn(&sn)?;
    let device = app.store.get_device(&sn).await?;
    match form.patch(&device) {
        Ok(patch) => {
            let device = app.store.update_device(&sn, patch).await?;
            app.registry.update(device);
            Ok(layout::redirect_with_flash(
                &format!("/ui/terminals/{}", layout::enc(sn.as_str())),
                Flash::ok("Settings saved."),
            ))
        }
        Err(errors) => {
            let shown = load(&app, &sn).await?;
            Ok((
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                layout::html(terminal_page(
                    &ctx,
                    &shown,
                    &form,
                    &errors,
                    &CommandForm::default(),
                    &FormErrors::new(),
                    None,
                )),
            )
                .into_response())
        }
    }
}

/// `POST /ui/terminals/{sn}/commands` (scope `operate`, as `POST /api/v1/devices/{sn}/commands`).
async fn send_command(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Path(sn): Path<String>,
    Form(form): Form<CommandForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Operate)?;
    let sn = parse_sn(&sn)?;
    let errors = match form.kind() {
        Ok(kind) => {
            match app
                .commands
                .enqueue(&sn, kind, &format!("ui:{}", user.name), Utc::now())
                .await
            {
                Ok(queued) => {
                    let id = queued.first().map(|c| c.id).unwrap_or_default();
                    return Ok(layout::redirect_with_flash(
                        &format!(
                            "/ui/terminals/{}?follow={id}#commands",
                            layout::enc(sn.as_str())
                        ),
                        Flash::ok(format!(
                            "Command {id} queued; the terminal takes it on its next poll."
                        )),
                    ));
                }
                Err(crate::devices::commands::EnqueueError::Invalid(why)) => {
                    let mut errors = FormErrors::new();
                    errors.add("kind", why);
                    errors
                }
                Err(crate::devices::commands::EnqueueError::UnknownDevice(sn)) => {
                    return Err(UiError::NotFound(format!("no terminal {sn}")))
                }
                Err(crate::devices::commands::EnqueueError::Store(e)) => return Err(e.into()),
            }
        }
        Err(errors) => errors,
    };
    let shown = load(&app, &sn).await?;
    let settings_form = SettingsForm::of(&shown.device);
    Ok((
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        layout::html(terminal_page(
            &ctx,
            &shown,
            &settings_form,
            &FormErrors::new(),
            &form,
            &errors,
            None,
        )),
    )
        .into_response())
}

/// `POST /ui/terminals/{sn}/commands/{id}/cancel` (scope `operate`, as `POST /api/v1/commands/{id}/cancel`):
/// cancel a queued command. One already sent or finished is not cancelled: the flash says why.
async fn cancel_command(
    State(app): State<App>,
    user: UiUser,
    Path((sn, id)): Path<(String, i64)>,
) -> Result<Response, UiError> {
    require(&user, Scope::Operate)?;
    let sn = parse_sn(&sn)?;
    let command = app.store.get_command(id).await?;
    if command.device_sn != sn {
        return Err(UiError::NotFound(format!("no command {id} for {sn}")));
    }
    let back = format!("/ui/terminals/{}#commands", layout::enc(sn.as_str()));
    let flash = match app
        .store
        .cancel_command(id, &format!("ui:{}", user.name), Utc::now())
        .await
    {
        Ok(_) => Flash::ok(format!("Command {id} cancelled.")),
        Err(e @ crate::store::operations::CancelError::NotQueued(_)) => Flash::error(e.to_string()),
        Err(crate::store::operations::CancelError::Store(e)) => return Err(e.into()),
    };
    Ok(layout::redirect_with_flash(&back, flash))
}

/// `GET /ui/terminals/{sn}/commands/{id}`: `{"done": bool, "status": "…"}` for the page that follows a command.
async fn command_status(
    State(app): State<App>,
    user: UiUser,
    Path((sn, id)): Path<(String, i64)>,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    let sn = parse_sn(&sn)?;
    let command = app.store.get_command(id).await?;
    if command.device_sn != sn {
        return Err(UiError::NotFound(format!("no command {id} for {sn}")));
    }
    Ok(Json(serde_json::json!({
        "done": is_done(command.status),
        "status": command.status.as_str(),
    }))
    .into_response())
}
