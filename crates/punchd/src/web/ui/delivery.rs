//! Delivery and sources (`/ui/delivery`, `/ui/sources`): every sink with its state, backlog and parked events
//! with their reasons, and the buttons `punchd sinks` has — pause, resume, retry (all, or only the unmapped),
//! replay from a date; every source (webhooks, imports, BioTime readers) with its state, cursor, last error and
//! counts, a "Read now" button for BioTime readers, and the lines sources sent that were refused, with the reason.
//!
//! Reading needs scope `read`; the sink buttons and "Read now" need `operate`, as `POST /api/v1/sinks/{name}/…`
//! and `POST /api/v1/sources/{name}/run`.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, ago, badge, csrf_field, enc, table, text, Flash};
use super::paging::Pager;
use super::{require, Nav, UiCtx, UiError, UiUser};
use crate::app::App;
use crate::domain::Scope;
use crate::sinks::{self, SinkState, SinkStatus};
use crate::store::operations::JournalFilter;
use crate::store::outbox::{ParkKind, ParkedEvent};
use crate::store::sources::SourceKind;

/// Parked events per page of a sink.
const PARKED_PER_PAGE: usize = 100;

/// Parked events read from the store for one sink page (the API's limit too).
const PARKED_MAX: usize = 1000;

/// The routes (relative to `/ui`).
pub fn routes() -> Router<App> {
    Router::new()
        .route("/delivery", get(delivery_page))
        .route("/delivery/sink", get(sink_page))
        .route("/delivery/action", post(sink_action))
        .route("/sources", get(sources_page))
        .route("/sources/run", post(source_run))
}

fn state_badge(s: SinkState) -> Markup {
    match s {
        SinkState::Running => badge("ok", "running"),
        SinkState::Paused => badge("muted", "paused"),
        SinkState::Failing => badge("bad", "failing"),
        SinkState::NeedsConfiguration => badge("bad", "needs configuration"),
    }
}

fn park_text(k: ParkKind) -> &'static str {
    match k {
        ParkKind::Unmapped => "unmapped employee",
        ParkKind::Rejected => "rejected",
        ParkKind::GaveUp => "gave up",
    }
}

fn sink_url(name: &str) -> String {
    format!("/ui/delivery/sink?name={}", enc(name))
}

/// The buttons of one sink (scope `operate`): pause or resume, retry, retry unmapped only, replay from a date.
fn sink_actions(ctx: &UiCtx, s: &SinkStatus, idx: usize) -> Markup {
    let button = |action: &str, label: &str, class: &str| {
        html! {
            form.inline method="post" action="/ui/delivery/action" {
                (csrf_field(ctx))
                input type="hidden" name="name" value=(s.name);
                input type="hidden" name="action" value=(action);
                button type="submit" class=(class) aria-label={(label) " " (s.name)} { (label) }
            }
        }
    };
    let paused = matches!(s.state, SinkState::Paused | SinkState::NeedsConfiguration);
    let id = format!("replay-{idx}");
    html! {
        div.actions {
            @if paused { (button("resume", "Resume", "")) } @else { (button("pause", "Pause", "secondary")) }
            (button("retry", "Retry now", ""))
            @if s.counts.parked > 0 { (button("retry-unmapped", "Retry unmapped", "secondary")) }
            form.inline.replay method="post" action="/ui/delivery/action" {
                (csrf_field(ctx))
                input type="hidden" name="name" value=(s.name);
                input type="hidden" name="action" value="replay";
                label for=(id) { "Replay from (UTC)" }
                " "
                input id=(id) type="datetime-local" name="from" required;
                " "
                button.secondary type="submit" aria-label={"Replay " (s.name) " from the date"} { "Replay" }
            }
        }
    }
}

/// `GET /ui/delivery`: every sink with its state and counts.
async fn delivery_page(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    let store = app.store.as_ref();
    let mut statuses = Vec::new();
    for sink in store.list_sinks().await? {
        statuses.push(sinks::status(store, &sink).await?);
    }
    let operate = ctx.may(Scope::Operate);
    let rows: Vec<Vec<Markup>> = statuses
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut row = vec![
                layout::link(&sink_url(&s.name), &s.name),
                text(s.kind.as_str()),
                state_badge(s.state),
                text(&s.target),
                html! {
                    (s.counts.pending)
                    @if let Some(age) = s.oldest_pending_age_secs { br; small { "oldest " (ago(chrono::Duration::seconds(age))) } }
                },
                text(s.counts.delivered.to_string()),
                html! {
                    @if s.counts.parked > 0 { a href=(sink_url(&s.name)) { (badge("warn", s.counts.parked.to_string())) } }
                    @else { "0" }
                },
                text(s.last_error.as_deref().unwrap_or("—")),
            ];
            if operate {
                row.push(sink_actions(&ctx, s, i));
            }
            row
        })
        .collect();
    let mut headers = vec![
        "Sink",
        "Kind",
        "State",
        "Target",
        "Backlog",
        "Delivered",
        "Parked",
        "Last error",
    ];
    if operate {
        headers.push("Actions");
    }
    let body = html! {
        link rel="stylesheet" href="/ui/assets/pages.css";
        p { "Every punch mapped to an employee goes to every sink through the outbox, at least once. An event a sink refuses is parked with its reason, never dropped; retry it when the cause is fixed." }
        (table("Sinks", &headers, rows, "No sink yet: add one with `punchd sinks add` (webhook, nats or frappe)."))
        @if !operate { p.hint { "Pausing, retrying and replaying need the admin role." } }
    };
    Ok(layout::html(layout::page(&ctx, "Delivery", Nav::Delivery, body)).into_response())
}

/// Which sink, and which page of its parked events.
#[derive(Debug, Deserialize)]
pub struct SinkQuery {
    /// Sink name.
    pub name: String,
    /// 1-based page of parked events.
    #[serde(default)]
    pub page: usize,
}

/// `GET /ui/delivery/sink?name=`: one sink, its parked events and their reasons.
async fn sink_page(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Query(q): Query<SinkQuery>,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    let store = app.store.as_ref();
    let sink = store.get_sink(&q.name).await?;
    let status = sinks::status(store, &sink).await?;
    let parked: Vec<ParkedEvent> = store.parked_events(sink.id, PARKED_MAX).await?;
    let pager = Pager::new(q.page, PARKED_PER_PAGE, parked.len());
    let rows: Vec<Vec<Markup>> = parked[pager.range()]
        .iter()
        .map(|p| {
            vec![
                text(p.event_id.to_string()),
                text(&p.device_sn),
                text(&p.pin),
                text(&p.punched_at),
                text(park_text(p.kind)),
                text(&p.reason),
            ]
        })
        .collect();
    let c = &status.counts;
    let body = html! {
        link rel="stylesheet" href="/ui/assets/pages.css";
        p { a href="/ui/delivery" { "← All sinks" } }
        dl.facts {
            dt { "State" } dd { (state_badge(status.state)) }
            dt { "Kind" } dd { (status.kind.as_str()) }
            dt { "Target" } dd { (status.target) }
            dt { "Backlog" } dd { (c.pending) " pending" @if let Some(age) = status.oldest_pending_age_secs { ", oldest " (ago(chrono::Duration::seconds(age))) } }
            dt { "Delivered" } dd { (c.delivered) }
            dt { "Failed attempts" } dd { (c.failed) }
            dt { "Parked" } dd { (c.parked) }
            dt { "Last error" } dd { (status.last_error.as_deref().unwrap_or("—")) }
        }
        @if ctx.may(Scope::Operate) { (sink_actions(&ctx, &status, 0)) }
        h2 { "Parked events" }
        (table(
            &format!("Parked events of {}{}", status.name, if parked.len() >= PARKED_MAX { format!(" (the oldest {PARKED_MAX})") } else { String::new() }),
            &["Event", "Device", "PIN", "Punched at (terminal time)", "Why", "Reason"],
            rows,
            "Nothing parked.",
        ))
        (pager.links(|n| format!("{}&page={n}", sink_url(&status.name))))
    };
    Ok(layout::html(layout::page(
        &ctx,
        &format!("Sink {}", status.name),
        Nav::Delivery,
        body,
    ))
    .into_response())
}

/// A sink button.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    /// Sink name.
    pub name: String,
    /// `pause`, `resume`, `retry`, `retry-unmapped` or `replay`.
    pub action: String,
    /// replay: from this instant (UTC), `YYYY-MM-DDTHH:MM`.
    #[serde(default)]
    pub from: String,
}

/// Parse the replay form's `datetime-local` value (UTC).
pub fn parse_from(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .ok()
        .map(|t| t.and_utc())
}

/// `POST /ui/delivery/action` (scope `operate`): pause, resume, retry, retry unmapped, replay from a date.
async fn sink_action(
    State(app): State<App>,
    user: UiUser,
    Form(form): Form<ActionForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Operate)?;
    let store = app.store.as_ref();
    let back = sink_url(&form.name);
    let name = &form.name;
    let text = match form.action.as_str() {
        "pause" => {
            store.set_sink_paused(name, true, None).await?;
            format!("Sink {name} paused")
        }
        "resume" => {
            store.set_sink_paused(name, false, None).await?;
            format!("Sink {name} resumed")
        }
        "retry" => {
            let n = store.retry_sink(name, None, Utc::now()).await?;
            format!("Sink {name}: {n} events set to go now")
        }
        "retry-unmapped" => {
            let n = store
                .retry_sink(name, Some(ParkKind::Unmapped), Utc::now())
                .await?;
            format!("Sink {name}: {n} unmapped events set to go now")
        }
        "replay" => {
            let Some(from) = parse_from(&form.from) else {
                return Ok(layout::redirect_with_flash(
                    &back,
                    Flash::error(format!(
                        "Replay: {:?} is not a date and time (YYYY-MM-DDTHH:MM, UTC)",
                        form.from
                    )),
                ));
            };
            let n = store.replay_sink(name, from, Utc::now()).await?;
            format!(
                "Sink {name}: {n} punches from {} UTC will be delivered again",
                from.format("%Y-%m-%d %H:%M")
            )
        }
        other => return Err(UiError::BadRequest(format!("unknown action {other:?}"))),
    };
    Ok(layout::redirect_with_flash(&back, Flash::ok(text)))
}

/// The sources page's button.
#[derive(Debug, Deserialize)]
pub struct SourceRunForm {
    /// Source name.
    pub name: String,
}

/// `POST /ui/sources/run` (scope `operate`): read a BioTime source now ([`crate::sources::biotime::request_read`]).
async fn source_run(
    State(app): State<App>,
    user: UiUser,
    Form(form): Form<SourceRunForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Operate)?;
    let flash =
        match crate::sources::biotime::request_read(app.store.as_ref(), &form.name, Utc::now())
            .await
        {
            Ok(_) => Flash::ok(format!(
                "Source {} will be read within seconds; reload to see how it went",
                form.name
            )),
            Err(crate::store::StoreError::Conflict(why)) => Flash::error(why),
            Err(e) => return Err(e.into()),
        };
    Ok(layout::redirect_with_flash("/ui/sources", flash))
}

/// "Read now" for one BioTime source.
fn read_now(ctx: &UiCtx, name: &str) -> Markup {
    html! {
        form.inline method="post" action="/ui/sources/run" {
            (csrf_field(ctx))
            input type="hidden" name="name" value=(name);
            button type="submit" aria-label={"Read " (name) " now"} { "Read now" }
        }
    }
}

/// `GET /ui/sources`: sources with their state and counts, and the lines refused lately.
async fn sources_page(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    let store = app.store.as_ref();
    let now = Utc::now();
    let sources = store.list_sources().await?;
    let operate = ctx.may(Scope::Operate);
    let rows: Vec<Vec<Markup>> = sources
        .iter()
        .map(|s| {
            let state = match s.state.as_str() {
                "ok" => badge("ok", "ok"),
                "failing" => badge("bad", "failing"),
                "disabled" => badge("muted", "disabled"),
                other => badge("muted", other),
            };
            vec![
                text(&s.name),
                text(s.kind.as_str()),
                state,
                text(s.cursor.as_deref().unwrap_or("—")),
                text(
                    s.last_success_at
                        .map(|t| format!("{} ago", ago(now - t)))
                        .unwrap_or_else(|| "never".into()),
                ),
                html! {
                    @if let Some(e) = &s.last_error {
                        (e) @if let Some(t) = s.last_error_at { br; small { (ago(now - t)) " ago" } }
                    } @else { "—" }
                },
                text(s.n_runs.to_string()),
                text(s.n_stored.to_string()),
                text(s.n_duplicate.to_string()),
                text(s.n_rejected.to_string()),
                html! {
                    @if operate && s.kind == SourceKind::Biotime && s.enabled { (read_now(&ctx, &s.name)) }
                    @if let Some(t) = s.run_requested_at { @if s.last_run_at.is_none_or(|r| r < t) { small { "read asked for " (ago(now - t)) " ago" } } }
                },
            ]
        })
        .collect();
    let refused = store
        .list_journal(&JournalFilter {
            has_errors: Some(true),
            from: Some(now - chrono::Duration::days(7)),
            limit: 5000,
            ..JournalFilter::default()
        })
        .await?;
    // The newest 50 entries with refused lines (the list is in id order).
    let refused_rows: Vec<Vec<Markup>> = refused
        .iter()
        .rev()
        .take(50)
        .flat_map(|j| {
            j.errors.iter().take(5).map(move |issue| {
                vec![
                    text(j.received_at.format("%Y-%m-%d %H:%M:%S").to_string()),
                    text(j.source.as_str()),
                    text(
                        j.device_sn
                            .as_ref()
                            .map(|d| d.as_str().to_owned())
                            .unwrap_or_else(|| "—".into()),
                    ),
                    html! { code.raw { (issue.line.chars().take(200).collect::<String>()) } },
                    text(&issue.reason),
                    text(j.id.to_string()),
                ]
            })
        })
        .collect();
    let body = html! {
        link rel="stylesheet" href="/ui/assets/pages.css";
        p { "Terminals (push and pull) are on the " a href="/ui/terminals" { "Terminals" } " page; here are the other sources." }
        (table("Sources", &["Name", "Kind", "State", "Cursor", "Last success", "Last error", "Runs", "Stored", "Duplicates", "Refused", "Read"], rows,
            "No source yet: `punchd sources add webhook NAME`, `punchd import FILE`, or a BioTime reader in the settings."))
        h2 { "Refused lines of the last 7 days (newest first)" }
        p { "Lines a terminal, file or webhook sent that could not be read. The raw journal keeps them; the rest of each batch was stored." }
        (table("Refused lines", &["Arrived (UTC)", "Source", "Device", "Line", "Reason", "Journal"], refused_rows, "Nothing refused."))
    };
    Ok(layout::html(layout::page(&ctx, "Sources", Nav::Sources, body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_from;

    #[test]
    fn the_replay_date_is_read_as_utc() {
        assert_eq!(
            parse_from("2026-11-02T08:30").map(|t| t.to_rfc3339()),
            Some("2026-11-02T08:30:00+00:00".to_owned())
        );
        assert_eq!(parse_from("yesterday"), None);
    }
}
