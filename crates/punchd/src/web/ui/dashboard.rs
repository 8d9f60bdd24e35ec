//! The dashboard (`/ui`): terminals (online, silent, offline with how long, pending, clock drift, last punch),
//! storage, delivery (backlog, failures, parked events), sources, unmapped PINs and incomplete days this month,
//! each figure a link to where it is dealt with; and a chart of punches per hour over the last days, per site
//! (an SVG drawn here, with its numbers in a table for screen readers; no chart library, no script).
//!
//! The month figures come from [`crate::attendance::monthly::month`], which computes a whole month (seconds for
//! thousands of employees): they are computed in the background and kept for [`MONTH_TTL`], so the page never
//! waits for them (a site not computed yet says so); the chart counts punches per hour in the store
//! ([`crate::store::attendance::AttendanceStore::punches_per_hour`]) rather than loading them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use maud::{html, Markup};

use super::layout::{self, badge, link, text, Nav};
use super::terminals::{drift_text, Presence};
use super::{require, UiCtx, UiError, UiUser};
use crate::app::App;
use crate::attendance::mapping::{unmapped, Resolver};
use crate::domain::{Approval, Device, Scope};

/// Hours the chart covers.
pub const CHART_HOURS: i64 = 72;
/// How long a site's month figures are reused.
pub const MONTH_TTL: Duration = Duration::from_secs(60);
/// A clock this far off (seconds, either way) is listed.
pub const DRIFT_WARN_SECS: i64 = 60;

/// The dashboard's routes (the page itself is `/ui`, mounted in [`super::routes`]).
pub fn routes() -> Router<App> {
    Router::new()
}

/// A site's month figures, kept for [`MONTH_TTL`].
#[derive(Debug, Clone, Copy)]
struct MonthFigures {
    incomplete_days: u32,
    open_exceptions: usize,
    at: Instant,
}

/// The figures per (site, month), and whether a refresh is running.
#[derive(Default)]
struct Figures {
    by_site: HashMap<(String, String), MonthFigures>,
    refreshing: bool,
}

fn figures() -> &'static Mutex<Figures> {
    static CACHE: OnceLock<Mutex<Figures>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Figures::default()))
}

/// The month figures of `sites` as last computed (`None` for a site not computed yet), and when any is missing or
/// older than [`MONTH_TTL`] and no refresh runs yet, the refresh to start: a site's month is a whole computation
/// (seconds for thousands of employees), which the page does not wait for. The page starts it once it is rendered
/// ([`MonthRefresh::start`]), so the computation does not compete with the view that asked for it.
fn month_figures(
    app: &App,
    sites: &[String],
    month: &str,
) -> (Vec<Option<MonthFigures>>, Option<MonthRefresh>) {
    let Ok(mut cache) = figures().lock() else {
        return (vec![None; sites.len()], None);
    };
    let found: Vec<Option<MonthFigures>> = sites
        .iter()
        .map(|site| {
            cache
                .by_site
                .get(&(site.clone(), month.to_owned()))
                .copied()
        })
        .collect();
    let stale = found
        .iter()
        .any(|f| f.is_none_or(|f| f.at.elapsed() >= MONTH_TTL));
    let refresh = (stale && !cache.refreshing).then(|| {
        cache.refreshing = true;
        MonthRefresh(Some((app.clone(), sites.to_vec(), month.to_owned())))
    });
    (found, refresh)
}

/// A refresh of the month figures the page owes (marked as running in the cache when it was handed out): the
/// sites and the month, until started. Dropped without being started (the page failed), it clears that mark, so the
/// next view hands it out again.
struct MonthRefresh(Option<(App, Vec<String>, String)>);

impl MonthRefresh {
    /// Compute every site's month in the background, one after the other.
    fn start(mut self) {
        let Some((app, sites, month)) = self.0.take() else {
            return;
        };
        tokio::spawn(async move {
            for site in &sites {
                refresh_site(&app, site, &month).await;
            }
            if let Ok(mut cache) = figures().lock() {
                cache.refreshing = false;
            }
        });
    }
}

impl Drop for MonthRefresh {
    fn drop(&mut self) {
        if self.0.is_some() {
            if let Ok(mut cache) = figures().lock() {
                cache.refreshing = false;
            }
        }
    }
}

async fn refresh_site(app: &App, site: &str, month: &str) {
    match crate::attendance::monthly::month(app.store.as_ref(), site, month, Utc::now()).await {
        Ok(m) => {
            let f = MonthFigures {
                incomplete_days: m.incomplete_days,
                open_exceptions: m
                    .exceptions
                    .iter()
                    .filter(|e| e.state == crate::store::attendance::ReviewState::Open)
                    .count(),
                at: Instant::now(),
            };
            if let Ok(mut cache) = figures().lock() {
                cache.by_site.insert((site.to_owned(), month.to_owned()), f);
            }
        }
        Err(e) => {
            tracing::warn!(site, month, error = %e, "dashboard: the month could not be computed");
        }
    }
}

/// One tile: a number, what it counts, where it is dealt with, and how worrying it is.
fn tile(n: impl std::fmt::Display, what: &str, href: &str, level: &str) -> Markup {
    html! {
        li class=(level) {
            a href=(href) { span.n { (n) } span.what { (what) } }
        }
    }
}

/// Punches per hour of one site, oldest hour first, ending with the current hour (terminal local time).
struct SiteChart {
    site: String,
    hours: Vec<(NaiveDateTime, usize)>,
}

async fn charts(
    app: &App,
    devices: &[Device],
    now: DateTime<Utc>,
) -> Result<Vec<SiteChart>, UiError> {
    let mut by_site: BTreeMap<String, Vec<&Device>> = BTreeMap::new();
    for d in devices.iter().filter(|d| d.approval == Approval::Approved) {
        by_site
            .entry(d.site.clone().unwrap_or_default())
            .or_default()
            .push(d);
    }
    // Each site's hours are counted in the store; the sites are asked at once (the store reads them side by side
    // on its readers), not one after the other.
    let reads = by_site.into_iter().take(12).filter_map(|(site, devs)| {
        // The hour axis in the first terminal's zone (a site has one zone).
        let zone = devs
            .first()
            .map(|d| app.registry.time_zone(d))
            .unwrap_or(app.config.default_time_zone);
        let local_now = now.with_timezone(&zone).naive_local();
        let current_hour = local_now
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))?;
        let first_hour = current_hour - chrono::Duration::hours(CHART_HOURS - 1);
        let sns = devs.iter().map(|d| d.sn.clone()).collect();
        Some(async move {
            let per_hour = app
                .store
                .punches_per_hour(sns, first_hour, current_hour + chrono::Duration::hours(1))
                .await?;
            let mut counts = vec![0usize; CHART_HOURS as usize];
            for (hour, n) in per_hour {
                let idx = (hour - first_hour).num_hours();
                if hour >= first_hour && (0..CHART_HOURS).contains(&idx) {
                    counts[idx as usize] += n as usize;
                }
            }
            Ok::<_, UiError>(SiteChart {
                site: if site.is_empty() {
                    "(no site)".into()
                } else {
                    site
                },
                hours: counts
                    .into_iter()
                    .enumerate()
                    .map(|(i, n)| (first_hour + chrono::Duration::hours(i as i64), n))
                    .collect(),
            })
        })
    });
    futures_util::future::try_join_all(reads).await
}

/// The chart as SVG: one bar per hour, a line under each day's start with its date.
fn chart_svg(chart: &SiteChart) -> Markup {
    let (w, h, pad) = (720.0_f64, 160.0_f64, 18.0_f64);
    let max = chart
        .hours
        .iter()
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let bar_w = w / chart.hours.len().max(1) as f64;
    let total: usize = chart.hours.iter().map(|(_, n)| *n).sum();
    let busiest = chart
        .hours
        .iter()
        .max_by_key(|(_, n)| *n)
        .map(|(t, n)| format!("busiest hour {} with {n}", t.format("%a %H:00")))
        .unwrap_or_default();
    let label = format!(
        "Punches per hour at {}, last {CHART_HOURS} hours: {total} in all, {busiest}.",
        chart.site
    );
    let mut svg = format!(
        "<svg viewBox=\"0 0 {w} {}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        h + pad,
        maud::html! { (label) }.into_string()
    );
    svg.push_str(&format!(
        "<line class=\"axis\" x1=\"0\" y1=\"{h}\" x2=\"{w}\" y2=\"{h}\"></line>"
    ));
    for (i, (t, n)) in chart.hours.iter().enumerate() {
        let bh = (*n as f64 / max) * (h - 12.0);
        let x = i as f64 * bar_w;
        svg.push_str(&format!(
            "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{} {n}</title></rect>",
            x + 0.5,
            h - bh,
            (bar_w - 1.0).max(0.5),
            bh,
            t.format("%Y-%m-%d %H:00"),
        ));
        if t.hour() == 0 {
            svg.push_str(&format!(
                "<line class=\"axis\" x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"{h}\"></line>\
                 <text x=\"{:.1}\" y=\"{}\">{}</text>",
                x + 2.0,
                h + 13.0,
                t.format("%a %d")
            ));
        }
    }
    svg.push_str(&format!(
        "<text x=\"{:.1}\" y=\"10\">max {}</text>",
        w - 60.0,
        max as usize
    ));
    svg.push_str("</svg>");
    layout::trusted(svg)
}

/// `GET /ui`: the dashboard.
pub async fn page(State(app): State<App>, user: UiUser, ctx: UiCtx) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    let now = Utc::now();
    let mut devices = app.registry.devices_where(|_| true);
    devices.sort_by(|a, b| a.sn.as_str().cmp(b.sn.as_str()));
    // Everything the page reads, read at once: the store answers on several readers side by side (one after
    // the other they were most of the page's time at 10 M punches).
    let store = app.store.as_ref();
    let (seen, mappings, employees, sinks, sources, sites, charts) = tokio::try_join!(
        super::pins_seen(&app),
        async { Ok::<_, UiError>(store.list_mappings().await?) },
        async { Ok::<_, UiError>(store.list_employees().await?) },
        async {
            let mut sinks = Vec::new();
            for sink in store.list_sinks().await? {
                let counts = store.sink_counts(sink.id).await?;
                sinks.push((sink, counts));
            }
            Ok::<_, UiError>(sinks)
        },
        async { Ok::<_, UiError>(store.list_sources().await?) },
        async { Ok::<_, UiError>(store.list_sites().await?) },
        charts(&app, &devices, now),
    )?;
    let last = crate::attendance::seen_cache::last_punches_of(&seen);

    let (mut n_online, mut n_silent, mut n_offline, mut n_pending) = (0, 0, 0, 0);
    let mut trouble: Vec<(Presence, &Device, Option<DateTime<Utc>>)> = Vec::new();
    let mut drifting = Vec::new();
    for d in &devices {
        if d.approval == Approval::Pending {
            n_pending += 1;
        }
        if d.approval != Approval::Approved {
            continue;
        }
        let last_punch = last.get(d.sn.as_str()).copied();
        let presence = Presence::of(d, last_punch, now);
        match presence {
            Presence::Online => n_online += 1,
            Presence::Silent => n_silent += 1,
            Presence::Offline => n_offline += 1,
        }
        if presence != Presence::Online {
            trouble.push((presence, d, last_punch));
        }
        if d.clock_drift_secs
            .is_some_and(|s| s.abs() >= DRIFT_WARN_SECS)
        {
            drifting.push(d);
        }
    }
    // Offline first, then silent; the longest gone first.
    trouble.sort_by_key(|(p, d, _)| (*p != Presence::Offline, d.last_seen));

    // Unmapped PINs, as the review and the API count them.
    let resolver = Resolver::new(&mappings, &employees, &devices);
    let n_unmapped = unmapped(&resolver, &seen).len();

    // Delivery.
    let mut sink_rows = Vec::new();
    let (mut backlog, mut parked, mut failing) = (0u64, 0u64, 0usize);
    for (sink, counts) in sinks {
        backlog += counts.pending;
        parked += counts.parked;
        let state = if sink.paused {
            badge("muted", "paused")
        } else if sink.failing_since.is_some() {
            failing += 1;
            badge("bad", "failing")
        } else {
            badge("ok", "ok")
        };
        sink_rows.push(vec![
            link(
                &format!("/ui/delivery#{}", layout::enc(&sink.name)),
                &sink.name,
            ),
            text(sink.kind.as_str()),
            state,
            text(counts.pending.to_string()),
            text(
                counts
                    .oldest_pending_at
                    .map(|t| layout::ago(now - t))
                    .unwrap_or_default(),
            ),
            text(counts.parked.to_string()),
            text(sink.last_error.as_deref().unwrap_or("")),
        ]);
    }

    // Sources.
    let n_sources_failing = sources.iter().filter(|s| s.state == "failing").count();

    // Storage.
    let db_bytes = [
        app.config.database.clone(),
        app.config.database.with_extension("db-wal"),
    ]
    .iter()
    .filter_map(|p| std::fs::metadata(p).ok())
    .map(|m| m.len())
    .sum::<u64>();
    let fault = app.store.storage_fault();

    // The month so far, per site.
    let month = now
        .with_timezone(&app.config.default_time_zone)
        .format("%Y-%m")
        .to_string();
    let mut month_rows = Vec::new();
    let (mut incomplete, mut open, mut computing) = (0u32, 0usize, false);
    let site_names: Vec<String> = sites.into_iter().take(20).map(|s| s.name).collect();
    let (figures_now, refresh) = month_figures(&app, &site_names, &month);
    for (site, f) in site_names.iter().zip(figures_now) {
        let href = format!(
            "/ui/review?site={}&month={}",
            layout::enc(site),
            layout::enc(&month)
        );
        match f {
            Some(f) => {
                incomplete += f.incomplete_days;
                open += f.open_exceptions;
                month_rows.push(vec![
                    link(&href, site),
                    text(f.incomplete_days.to_string()),
                    text(f.open_exceptions.to_string()),
                ]);
            }
            None => {
                computing = true;
                month_rows.push(vec![
                    link(&href, site),
                    text("being computed"),
                    text("being computed"),
                ]);
            }
        }
    }
    // A figure not computed yet is shown as such, not as 0.
    let month_figure = |n: usize| {
        if computing {
            format!("{n}+")
        } else {
            n.to_string()
        }
    };

    let level = |bad: bool, n: usize| {
        if n == 0 {
            ""
        } else if bad {
            "bad"
        } else {
            "warn"
        }
    };

    let body = html! {
        @if let Some(reason) = &fault {
            div.flash.error role="alert" { "Storage is failing: " (reason) ". Terminals are not acknowledged until it recovers." }
        }
        h2 { "At a glance" }
        ul.tiles {
            (tile(n_online, "terminals online", "/ui/terminals?state=online", ""))
            (tile(n_silent, "silent (no punch for 24 h)", "/ui/terminals?state=silent", level(false, n_silent)))
            (tile(n_offline, "offline", "/ui/terminals?state=offline", level(true, n_offline)))
            (tile(n_pending, "waiting for approval", "/ui/terminals?state=pending", level(false, n_pending)))
            (tile(drifting.len(), "clocks off by a minute or more", "#drift", level(false, drifting.len())))
            (tile(n_unmapped, "unmapped PINs", "/ui/unmapped", level(false, n_unmapped)))
            (tile(month_figure(incomplete as usize), format!("incomplete days in {month}").as_str(), "/ui/review", level(false, incomplete as usize)))
            (tile(month_figure(open), format!("open exceptions in {month}").as_str(), "/ui/review", level(false, open)))
            (tile(backlog, "check-ins waiting for delivery", "/ui/delivery", level(false, if backlog > 1000 { 1 } else { 0 })))
            (tile(parked, "parked deliveries", "/ui/delivery", level(true, parked as usize)))
            (tile(failing, "sinks failing", "/ui/delivery", level(true, failing)))
            (tile(n_sources_failing, "sources failing", "/ui/sources", level(true, n_sources_failing)))
            (tile(format!("{:.1} MB", db_bytes as f64 / 1e6), "database on disk", "#storage", if fault.is_some() { "bad" } else { "" }))
        }

        h2 { "Punches per hour" }
        @if charts.is_empty() {
            p.empty { "No approved terminals yet." }
        }
        @for chart in &charts {
            figure.chart {
                (chart_svg(chart))
                figcaption { (chart.site) ": punches per hour over the last " (CHART_HOURS) " hours, terminal local time." }
                details {
                    summary { "The numbers" }
                    (layout::table(
                        &format!("Punches per hour at {}", chart.site),
                        &["Hour", "Punches"],
                        chart.hours.iter().filter(|(_, n)| *n > 0).map(|(t, n)| vec![
                            text(t.format("%Y-%m-%d %H:00").to_string()),
                            text(n.to_string()),
                        ]).collect(),
                        "No punches in these hours.",
                    ))
                }
            }
        }

        h2 { "Terminals needing attention" }
        (layout::table(
            "Terminals offline or silent",
            &["Terminal", "Site", "State", "Last seen", "Last punch"],
            trouble.iter().take(50).map(|(p, d, last_punch)| vec![
                link(&format!("/ui/terminals/{}", layout::enc(d.sn.as_str())),
                     d.alias.as_deref().map_or_else(|| d.sn.to_string(), |a| format!("{a} ({})", d.sn))),
                text(d.site.as_deref().unwrap_or("")),
                p.badge(d, *last_punch, now),
                text(d.last_seen.map(|t| format!("{} ago", layout::ago(now - t))).unwrap_or_else(|| "never".into())),
                text(last_punch.map(|t| format!("{} ago", layout::ago(now - t))).unwrap_or_else(|| "never".into())),
            ]).collect(),
            "Every approved terminal is online and punches arrive.",
        ))

        h2 #drift { "Clock drift" }
        (layout::table(
            "Terminals whose clock is off",
            &["Terminal", "Drift"],
            drifting.iter().map(|d| vec![
                link(&format!("/ui/terminals/{}#commands", layout::enc(d.sn.as_str())), d.sn.as_str()),
                text(drift_text(d.clock_drift_secs)),
            ]).collect(),
            "No terminal's clock is off by a minute or more (drift is measured when a pull terminal is read).",
        ))

        h2 { "Delivery" }
        (layout::table(
            "Sinks",
            &["Sink", "Kind", "State", "Waiting", "Oldest waiting", "Parked", "Last error"],
            sink_rows,
            "No sinks: check-ins are kept, not delivered anywhere.",
        ))

        h2 { "Sources" }
        (layout::table(
            "Sources other than terminals",
            &["Source", "Kind", "State", "Last run", "Last error"],
            sources.iter().map(|s| vec![
                link(&format!("/ui/sources#{}", layout::enc(&s.name)), &s.name),
                text(s.kind.as_str()),
                match s.state.as_str() {
                    "ok" => badge("ok", "ok"),
                    "failing" => badge("bad", "failing"),
                    other => badge("muted", other),
                },
                text(s.last_run_at.map(|t| format!("{} ago", layout::ago(now - t))).unwrap_or_else(|| "never".into())),
                text(s.last_error.as_deref().unwrap_or("")),
            ]).collect(),
            "No webhooks, imports or BioTime readers.",
        ))

        h2 { "This month" }
        (layout::table(
            &format!("Attendance in {month} by site"),
            &["Site", "Incomplete days", "Open exceptions"],
            month_rows,
            "No sites set up yet.",
        ))
        @if computing { p.hint { "Some sites' months are being computed; reload in a moment." } }

        h2 #storage { "Storage" }
        p { "Database " code { (app.config.database.display()) } ": " (format!("{:.1} MB", db_bytes as f64 / 1e6)) " with its write-ahead log. "
            @if let Some(r) = &fault { (badge("bad", "failing")) " " (r) } @else { (badge("ok", "writes succeed")) } }
    };
    let page = layout::html(layout::page(&ctx, "Dashboard", Nav::Dashboard, body)).into_response();
    if let Some(refresh) = refresh {
        refresh.start();
    }
    Ok(page)
}
