//! Live punches (`/ui/live`): the newest punches (rendered on the server, so the page works without
//! JavaScript), and new ones as they arrive over server-sent events (`/ui/live/events`), filtered by site or
//! device.
//!
//! The event stream batches: at most one `punches` message per [`BATCH_EVERY`] with every punch since the last
//! one (at most [`MAX_PER_MESSAGE`], the newest; the rest are counted in `dropped`), so a browser keeps up with
//! 1,000 punches/s; the page keeps at most [`KEEP_ROWS`] rows. Names come from the PIN mapping as it is now
//! ([`Directory`], reloaded every [`DIRECTORY_TTL`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::html;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::layout::{self, Nav};
use super::{require, UiCtx, UiError, UiUser};
use crate::app::App;
use crate::attendance::mapping::Resolver;
use crate::domain::{Device, DeviceSn, Punch, PunchState, Scope, VerifyMode};
use crate::live::{LiveEvent, LivePunch};
use crate::store::sources::PunchOrder;
use crate::store::PunchFilter;

/// At most one message per this long.
pub const BATCH_EVERY: Duration = Duration::from_millis(250);
/// At most this many punches in one message (the newest; the page shows no more anyway).
pub const MAX_PER_MESSAGE: usize = 200;
/// Rows the page keeps (older ones are removed as new ones arrive).
pub const KEEP_ROWS: usize = 200;
/// Rows rendered with the page.
const FIRST_ROWS: u64 = 50;
/// How long names and sites are reused before they are read again.
pub const DIRECTORY_TTL: Duration = Duration::from_secs(30);

/// The live page's routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/live", get(page))
        .route("/live/events", get(events))
}

/// The live page's filter.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct LiveFilter {
    /// Only devices of this site.
    #[serde(default)]
    pub site: Option<String>,
    /// Only this device (SN).
    #[serde(default)]
    pub device: Option<String>,
}

impl LiveFilter {
    fn site(&self) -> Option<&str> {
        self.site
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    fn device(&self) -> Option<&str> {
        self.device
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    fn query(&self) -> String {
        let mut q = Vec::new();
        if let Some(site) = self.site() {
            q.push(format!("site={}", layout::enc(site)));
        }
        if let Some(device) = self.device() {
            q.push(format!("device={}", layout::enc(device)));
        }
        q.join("&")
    }

    /// Whether a device passes the filter.
    fn admits(&self, sn: &str, site: Option<&str>) -> bool {
        self.device().is_none_or(|d| d == sn) && self.site().is_none_or(|s| Some(s) == site)
    }
}

/// Who a (device, PIN) is, and where a device stands: built from the store's mappings, employees and devices.
pub struct Directory {
    resolver: Resolver,
    names: HashMap<String, String>,
    devices: HashMap<String, Device>,
    loaded: Instant,
}

impl Directory {
    /// Read the current mappings, employees and devices.
    ///
    /// Errors: the store failed.
    pub async fn load(app: &App) -> Result<Directory, UiError> {
        let mappings = app.store.list_mappings().await?;
        let employees = app.store.list_employees().await?;
        let devices = app.registry.devices_where(|_| true);
        Ok(Directory {
            resolver: Resolver::new(&mappings, &employees, &devices),
            names: employees.into_iter().map(|e| (e.code, e.name)).collect(),
            devices: devices
                .into_iter()
                .map(|d| (d.sn.as_str().to_owned(), d))
                .collect(),
            loaded: Instant::now(),
        })
    }

    /// The employee a PIN on a device means, as `Name (code)`, or `unmapped`.
    pub fn who(&self, sn: &str, pin: &str) -> String {
        match self.resolver.resolve(sn, pin) {
            Some(code) => match self.names.get(code) {
                Some(name) => format!("{name} ({code})"),
                None => code.to_owned(),
            },
            None => "unmapped".to_owned(),
        }
    }

    /// A device's site.
    pub fn site(&self, sn: &str) -> Option<&str> {
        self.devices.get(sn).and_then(|d| d.site.as_deref())
    }

    /// A device's alias, else its SN.
    pub fn device_label(&self, sn: &str) -> String {
        match self.devices.get(sn).and_then(|d| d.alias.as_deref()) {
            Some(alias) => format!("{alias} ({sn})"),
            None => sn.to_owned(),
        }
    }
}

/// One row of the live table (the JSON of a `punches` message, and the server-rendered rows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveRow {
    /// Terminal local time, `YYYY-MM-DD HH:MM:SS`.
    pub punched_at: String,
    /// `Name (code)` or `unmapped`.
    pub who: String,
    /// The PIN.
    pub pin: String,
    /// The punch state's name (`check-in`, …), or empty.
    pub state: String,
    /// The verify mode's name (`face`, …) or its code, or empty.
    pub verify: String,
    /// Alias and SN.
    pub device: String,
    /// The device's site, or empty.
    pub site: String,
}

fn state_name(code: Option<u16>) -> String {
    code.map(|c| PunchState::from_code(c).name().to_owned())
        .unwrap_or_default()
}

fn verify_name(code: Option<u16>) -> String {
    code.map(|c| {
        VerifyMode(c)
            .name()
            .map_or_else(|| c.to_string(), str::to_owned)
    })
    .unwrap_or_default()
}

impl LiveRow {
    fn from_live(p: &LivePunch, dir: &Directory) -> LiveRow {
        LiveRow {
            punched_at: p.punched_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            who: dir.who(&p.sn, &p.pin),
            pin: p.pin.clone(),
            state: state_name(p.state),
            verify: verify_name(p.verify),
            device: dir.device_label(&p.sn),
            site: dir.site(&p.sn).unwrap_or_default().to_owned(),
        }
    }

    fn from_punch(p: &Punch, dir: &Directory) -> LiveRow {
        let sn = p.device_sn.as_str();
        LiveRow {
            punched_at: p.punched_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            who: dir.who(sn, &p.pin.0),
            pin: p.pin.0.clone(),
            state: state_name(p.punch_state),
            verify: verify_name(p.verify_mode),
            device: dir.device_label(sn),
            site: dir.site(sn).unwrap_or_default().to_owned(),
        }
    }
}

/// Punches read from the newest down to find a site's newest ones before asking each of its terminals.
const SITE_SCAN: u64 = 5_000;

/// The newest punches passing the filter, newest (highest id) first.
///
/// Without a filter: the last punches stored. For a site: its punches among the last [`SITE_SCAN`] stored, or,
/// for a quiet site with fewer there, the latest (by terminal time) of each of its terminals. For a terminal: its
/// latest by terminal time. The identity index (device, terminal time, …) serves the last two; asking a
/// terminal's punches by id instead reads and sorts every punch it ever sent.
async fn newest(app: &App, filter: &LiveFilter, dir: &Directory) -> Result<Vec<Punch>, UiError> {
    let sns: Vec<DeviceSn> = match (filter.device(), filter.site()) {
        (Some(sn), _) => match DeviceSn::parse(sn) {
            Ok(sn) => vec![sn],
            Err(_) => return Ok(Vec::new()),
        },
        (None, Some(site)) => {
            let recent = app
                .store
                .punch_page(&PunchFilter::default(), PunchOrder::IdDesc, 0, SITE_SCAN)
                .await?;
            let found: Vec<Punch> = recent
                .into_iter()
                .filter(|p| dir.site(p.device_sn.as_str()) == Some(site))
                .take(FIRST_ROWS as usize)
                .collect();
            if found.len() == FIRST_ROWS as usize {
                return Ok(found);
            }
            dir.devices
                .values()
                .filter(|d| d.site.as_deref() == Some(site))
                .take(100)
                .map(|d| d.sn.clone())
                .collect()
        }
        (None, None) => {
            return Ok(app
                .store
                .punch_page(&PunchFilter::default(), PunchOrder::IdDesc, 0, FIRST_ROWS)
                .await?);
        }
    };
    let mut punches = Vec::new();
    for sn in sns {
        let f = PunchFilter {
            device_sn: Some(sn),
            ..PunchFilter::default()
        };
        punches.extend(
            app.store
                .punch_page(&f, PunchOrder::PunchTimeDesc, 0, FIRST_ROWS)
                .await?,
        );
    }
    punches.sort_by_key(|p| std::cmp::Reverse(p.id));
    punches.truncate(FIRST_ROWS as usize);
    Ok(punches)
}

/// `GET /ui/live`: the filter, the newest punches, and the table new ones are added to.
async fn page(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Query(filter): Query<LiveFilter>,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    let dir = Directory::load(&app).await?;
    let punches = newest(&app, &filter, &dir).await?;
    let mut sites: Vec<String> = dir
        .devices
        .values()
        .filter_map(|d| d.site.clone())
        .collect();
    sites.sort();
    sites.dedup();
    let mut devices: Vec<(String, String)> = dir
        .devices
        .keys()
        .map(|sn| (sn.clone(), dir.device_label(sn)))
        .collect();
    devices.sort();
    let site_options: Vec<(String, String)> = std::iter::once((String::new(), "All sites".into()))
        .chain(sites.into_iter().map(|s| (s.clone(), s)))
        .collect();
    let device_options: Vec<(String, String)> =
        std::iter::once((String::new(), "All terminals".into()))
            .chain(devices)
            .collect();
    let events_url = match filter.query() {
        q if q.is_empty() => "/ui/live/events".to_owned(),
        q => format!("/ui/live/events?{q}"),
    };
    let rows: Vec<LiveRow> = punches
        .iter()
        .map(|p| LiveRow::from_punch(p, &dir))
        .collect();
    let body = html! {
        form.card.row method="get" action="/ui/live" {
            (layout::select("Site", "site", &site_options, filter.site().unwrap_or(""), None))
            (layout::select("Terminal", "device", &device_options, filter.device().unwrap_or(""), None))
            button type="submit" { "Filter" }
        }
        p #live-status role="status" aria-live="polite" {
            "Showing the newest punches; with JavaScript on, new ones appear as they arrive."
        }
        @if rows.is_empty() {
            p.empty #live-empty { "No punches yet." }
        }
        div.table-wrap tabindex="0" role="region" aria-label="Live punches" {
            table #live data-live-events=(events_url) data-live-max=(KEEP_ROWS) hidden[rows.is_empty()] {
                caption { "Punches, newest first (terminal local time)" }
                thead { tr {
                    th scope="col" { "Time" } th scope="col" { "Employee" } th scope="col" { "PIN" }
                    th scope="col" { "State" } th scope="col" { "Verified by" } th scope="col" { "Terminal" }
                    th scope="col" { "Site" }
                } }
                tbody {
                    @for r in &rows {
                        tr {
                            td { (r.punched_at) } td { (r.who) } td { (r.pin) } td { (r.state) }
                            td { (r.verify) } td { (r.device) } td { (r.site) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::html(layout::page(&ctx, "Live punches", Nav::Live, body)).into_response())
}

/// A `punches` message.
#[derive(Debug, Serialize)]
struct PunchesMessage {
    punches: Vec<LiveRow>,
    /// Punches left out of this message (more than [`MAX_PER_MESSAGE`], or lost because the reader fell
    /// behind the channel).
    dropped: u64,
}

/// `GET /ui/live/events`: server-sent events: `punches` (batched, see the module doc) and `presence` (a
/// terminal went online or offline).
async fn events(
    State(app): State<App>,
    user: UiUser,
    Query(filter): Query<LiveFilter>,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    let rx = app.live.subscribe();
    let dir = Directory::load(&app).await?;
    struct St {
        app: App,
        rx: tokio::sync::broadcast::Receiver<LiveEvent>,
        dir: Directory,
        filter: LiveFilter,
        last_sent: Option<Instant>,
        pending: Vec<Event>,
    }
    let state = St {
        app,
        rx,
        dir,
        filter,
        last_sent: None,
        pending: Vec::new(),
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.pending.pop() {
                return Some((Ok::<Event, Infallible>(event), st));
            }
            // Wait for the first event, then gather everything that arrives until the batch is due.
            let mut lost = 0u64;
            let first = loop {
                match st.rx.recv().await {
                    Ok(e) => break e,
                    Err(RecvError::Lagged(n)) => lost += n,
                    Err(RecvError::Closed) => return None,
                }
            };
            if let Some(last) = st.last_sent {
                tokio::time::sleep_until(last + BATCH_EVERY).await;
            }
            let mut batch = vec![first];
            loop {
                match st.rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => lost += n,
                    Err(_) => break,
                }
            }
            if st.dir.loaded.elapsed() > DIRECTORY_TTL {
                if let Ok(dir) = Directory::load(&st.app).await {
                    st.dir = dir;
                }
            }
            let mut rows = Vec::new();
            let mut presence = Vec::new();
            for e in &batch {
                let sn = e.sn();
                if !st.filter.admits(sn, st.dir.site(sn)) {
                    continue;
                }
                match e {
                    LiveEvent::Punch(p) => rows.push(LiveRow::from_live(p, &st.dir)),
                    LiveEvent::DeviceOnline { sn, .. } => {
                        presence.push(format!("{} is online.", st.dir.device_label(sn)))
                    }
                    LiveEvent::DeviceOffline { sn, .. } => {
                        presence.push(format!("{} went offline.", st.dir.device_label(sn)))
                    }
                }
            }
            let dropped = lost + rows.len().saturating_sub(MAX_PER_MESSAGE) as u64;
            if rows.len() > MAX_PER_MESSAGE {
                rows.drain(..rows.len() - MAX_PER_MESSAGE);
            }
            for text in presence {
                if let Ok(event) = Event::default()
                    .event("presence")
                    .json_data(serde_json::json!({ "text": text }))
                {
                    st.pending.push(event);
                }
            }
            if !rows.is_empty() || dropped > 0 {
                if let Ok(event) = Event::default().event("punches").json_data(PunchesMessage {
                    punches: rows,
                    dropped,
                }) {
                    st.pending.push(event);
                }
            }
            if !st.pending.is_empty() {
                st.last_sent = Some(Instant::now());
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
