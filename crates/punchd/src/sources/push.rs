//! The push source: the `/iclock/*` routes push terminals (ADMS/iclock, attendance dialect 2.x) talk to.
//!
//! Each handler only translates: `zk_push` parses the request and body into typed values, this module turns them
//! into an `ingest::Delivery` (or a registry/command-queue call) and formats the reply with `zk_push::reply`.
//!
//! Transport rules followed here (push.md §1, §12): every answer is `200` with `Content-Type: text/plain` and a GMT
//! `Date` header (terminals set their clock from it; hyper adds it); bodies are read raw whatever the
//! Content-Type; `OK:<n>` is sent only after the batch is committed, and a storage failure is answered `503` so
//! the terminal keeps the data and retries; a device that is not approved gets `UNKNOWN DEVICE`, and so does an
//! approved one whose request fails terminal authentication (`auth`: address binding, ComKey, pushcommkey); any
//! unknown table or `/iclock` path gets `OK` and is kept in the raw journal.

mod auth;
mod user_file;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::any;
use axum::{Extension, Router};
use base64::Engine;
use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use http_body_util::BodyExt;
use zk_push::query::Query;
use zk_push::request::{Request, Table};

use crate::app::App;
use crate::devices::registry::ContactFacts;
use crate::domain::{Approval, DeviceSn, Source, Transport};
use crate::ingest::{Delivery, PunchRecord};
use crate::store::{
    Batch, CommandCompletion, DeviceRecord, DeviceUser, LineIssue, OplogEntry, Photo, RawEntry,
    StoreError, Template,
};

/// The remote address of a connection, put into request extensions by the server loop.
#[derive(Debug, Clone, Copy)]
pub struct RemoteAddr(pub SocketAddr);

/// The `/iclock` routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/iclock", any(iclock))
        .route("/iclock/", any(iclock))
        .route("/iclock/{*rest}", any(iclock))
}

/// A plain-text answer with the headers terminals need.
fn text(status: StatusCode, body: String) -> Response {
    // Built by hand: the tuple form sets a content type only to replace it, on every terminal request.
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.reserve(3);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn ok(body: impl Into<String>) -> Response {
    text(StatusCode::OK, body.into())
}

/// The answer when the store failed: not 200, so the terminal keeps the data and retries (push.md §12).
fn storage_failed(app: &App, sn: &DeviceSn, what: &str, err: &StoreError) -> Response {
    tracing::error!(sn = %sn, error = %err, "storing {what} failed; the terminal was not acknowledged and will retry");
    app.metrics.storage_errors.inc();
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage unavailable, retry later".into(),
    )
}

/// The current UTC offset of a zone, in minutes.
pub fn offset_minutes(tz: Tz, now: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&now.naive_utc())
        .fix()
        .local_minus_utc()
        / 60
}

fn clip(line: &str) -> String {
    line.chars().take(512).collect()
}

fn issue(e: zk_push::attlog::LineError) -> LineIssue {
    crate::limits::clipped_issue(e.line_no, &e.line, &e.reason)
}

/// The answer to an upload over `max_lines_per_request`: `413`, nothing kept, so the terminal sends it again in
/// smaller batches (push.md §7.1 "Batch size").
fn too_many_lines(ctx: &Ctx, kind: &str, e: &crate::limits::TooManyLines) -> Response {
    tracing::warn!(sn = %ctx.sn, table = kind, lines = e.lines, max = e.max,
        "upload refused before parsing: too many lines; nothing kept");
    ctx.app.metrics.refuse("too_many_lines");
    text(StatusCode::PAYLOAD_TOO_LARGE, format!("{e}\n"))
}

fn endpoint_name(request: &Request) -> &'static str {
    match request {
        Request::Handshake(_) => "handshake",
        Request::ServerTime | Request::RtdataTime => "time",
        Request::RemoteAtt { .. } => "remote_att",
        Request::Upload { table, .. } => match table {
            Table::AttLog => "attlog",
            Table::OperLog => "operlog",
            Table::AttPhoto => "attphoto",
            Table::BioData => "biodata",
            Table::IdCard => "idcard",
            Table::ErrorLog => "errorlog",
            Table::Options => "options",
            Table::Other(_) => "other_table",
        },
        Request::PhotoUpload { .. } => "attphoto",
        Request::Poll { .. } => "poll",
        Request::Ping => "ping",
        Request::CommandResults => "devicecmd",
        Request::SecurityDialect { .. } => "security_dialect",
        Request::Other { .. } => "other",
    }
}

/// Read a request body into one buffer of exactly its size (issue 6, memory): the buffer is reserved once from
/// `Content-Length` (at most `limit`) and each chunk is appended as it arrives, so a 16 MiB body costs 16 MiB,
/// not the chunk list plus a contiguous copy that collecting into `Bytes` holds at its peak.
///
/// Errors: `413` when the body is over `limit` bytes (`max_body_bytes`), `400` when it cannot be read (the
/// client went away, a malformed chunk); the text says which.
async fn read_body(
    mut body: Body,
    headers: &axum::http::HeaderMap,
    limit: usize,
) -> Result<Vec<u8>, (StatusCode, String)> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(limit);
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("failed to read the request body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > limit {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is over the limit of {limit} bytes (max_body_bytes)\n"),
            ));
        }
        if buf.capacity() == 0 {
            buf.reserve_exact(declared.max(data.len()));
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf)
}

/// Read a request body and drop it chunk by chunk (at most `limit` bytes are read), for requests answered
/// without their body.
async fn drain_body(mut body: Body, limit: usize) {
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > limit {
                break;
            }
        }
    }
}

/// Whether a path names an iclock endpoint that always carries an SN.
fn is_known_endpoint(path: &str) -> bool {
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    [
        "cdata",
        "getrequest",
        "devicecmd",
        "fdata",
        "ping",
        "rtdata",
        "registry",
        "push",
        "querydata",
        "exchange",
    ]
    .iter()
    .any(|e| last.eq_ignore_ascii_case(e))
}

/// Everything about the request a handler needs.
struct Ctx {
    app: App,
    sn: DeviceSn,
    now: DateTime<Utc>,
    tz: Tz,
    request_line: String,
    remote: Option<String>,
    /// The request body; [`Ctx::raw`] moves it into the journal entry (no copy), after which it is empty.
    body: Vec<u8>,
}

impl Ctx {
    /// The journal entry of this request. It takes the body (the one copy of it the request holds): call it once,
    /// after everything that reads `self.body`.
    fn raw(&mut self, kind: &str, errors: Vec<LineIssue>) -> RawEntry {
        RawEntry {
            received_at: self.now,
            device_sn: Some(self.sn.clone()),
            source: Source::Push,
            kind: kind.to_owned(),
            request: self.request_line.clone(),
            remote_addr: self.remote.clone(),
            body: std::mem::take(&mut self.body),
            errors,
        }
    }

    fn delivery(&self, batch: Batch, punches: Vec<PunchRecord>) -> Delivery {
        Delivery {
            device_sn: self.sn.clone(),
            time_zone: self.tz,
            source: Source::Push,
            punches,
            batch,
        }
    }

    /// Journal the body as it is (unknown tables, security-dialect bodies) and answer `OK`.
    async fn keep_raw(&mut self, kind: &str) -> Response {
        if self.body.is_empty() {
            return ok(zk_push::reply::OK);
        }
        let raw = self.raw(kind, Vec::new());
        match self.app.ingest.journal(raw).await {
            Ok(_) => ok(zk_push::reply::OK),
            Err(e) => storage_failed(&self.app, &self.sn, kind, &e),
        }
    }
}

/// The `/iclock` routes' handler as the router mounts it (request replay, in-process tests); `web::serve` calls
/// [`handle`] directly.
async fn iclock(
    State(app): State<App>,
    remote: Option<Extension<RemoteAddr>>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Response {
    handle(
        app,
        remote.map(|Extension(RemoteAddr(addr))| addr),
        method,
        uri,
        headers,
        body,
    )
    .await
}

/// Whether `path` (a request URI's path, not decoded) is a terminal's: one of the `/iclock` routes of [`routes`]
/// (`/iclock` itself or anything under `/iclock/`) outside `/iclock/api/`, where the router also serves
/// BioTime's API (`web::biotime_api`) and alone knows which path is whose. No terminal uses `/iclock/api/`.
pub fn is_iclock_path(path: &str) -> bool {
    (path == "/iclock" || path.starts_with("/iclock/")) && !path.starts_with("/iclock/api/")
}

/// The one handler behind every `/iclock` path: a terminal's request (push.md) from `peer` (the TCP peer, `None`
/// when unknown), answered as push.md says. The server loop calls it directly for [`is_iclock_path`] paths,
/// without the router, after refusing an oversized declared body and under the request timeout (`web::serve`).
pub async fn handle(
    app: App,
    peer: Option<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Response {
    let query = Query::parse(uri.query().unwrap_or(""));
    let target = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let remote = auth::client_address(&app, peer, &headers);
    let (sn_text, request) = match zk_push::request::parse_request(
        method.as_str(),
        uri.path(),
        &query,
    ) {
        Ok(parsed) => parsed,
        Err(zk_push::request::RequestError::MissingSn) if !is_known_endpoint(uri.path()) => {
            // Firmware fetches files relative to its root URL without an SN (PutFile, push.md §8.2 FIELD
            // ZAM180). Unknown /iclock paths get 200 OK (push.md §1.1 tolerance rule) but, carrying no SN of an
            // approved device, nothing of them is kept (issue 6: anyone could fill the journal this way). The
            // body is read and dropped as it arrives (a client that does not read an early answer would see
            // its connection reset).
            drain_body(body, app.config.max_body_bytes).await;
            tracing::info!(remote = ?remote, target = %target, "iclock request without SN for an unknown path; answered OK, nothing kept");
            app.metrics.refuse("no_sn");
            app.metrics.request("other", 200);
            return ok(zk_push::reply::OK);
        }
        Err(e) => {
            drain_body(body, app.config.max_body_bytes).await;
            tracing::warn!(remote = ?remote, target = %target, "rejected iclock request: {e}");
            app.metrics.request("invalid", 400);
            return text(StatusCode::BAD_REQUEST, format!("{e}"));
        }
    };
    let endpoint = endpoint_name(&request);
    // Read whole before any other answer, as terminals send it whole before reading one.
    let body = read_body(body, &headers, app.config.max_body_bytes).await;
    let sn = match DeviceSn::parse(&sn_text) {
        Ok(sn) => sn,
        Err(e) => {
            tracing::warn!(remote = ?remote, target = %target, "rejected iclock request: {e}");
            app.metrics.request("invalid", 400);
            return text(StatusCode::BAD_REQUEST, format!("invalid SN: {e}"));
        }
    };
    let body = match body {
        Ok(body) => body,
        Err((status, reason)) => {
            tracing::warn!(sn = %sn, remote = ?remote, target = %target, "request body refused: {reason}");
            app.metrics.request(endpoint, status.as_u16());
            return text(status, reason);
        }
    };
    let now = Utc::now();
    let facts = match &request {
        Request::Handshake(h) => Some(ContactFacts {
            firmware: None,
            push_version: h.push_version.clone(),
            language: h.language.clone(),
            device_type: h.device_type.clone(),
        }),
        _ => None,
    };
    let known = app.registry.get(&sn);
    let is_new = known.is_none();
    if is_new && !crate::limits::admit_new_sn(&app, &sn, remote.as_deref()) {
        app.metrics.request(endpoint, 200);
        return ok(zk_push::reply::UNKNOWN_DEVICE);
    }
    let entry = match app
        .registry
        .contact_known(known, &sn, Transport::Push, remote.clone(), now, facts)
        .await
    {
        Ok(entry) => entry,
        Err(e) => {
            let response = storage_failed(&app, &sn, "device registration", &e);
            app.metrics.request(endpoint, response.status().as_u16());
            return response;
        }
    };
    if is_new && entry.approval() == Approval::Pending {
        crate::limits::cap_pending(&app).await;
    }
    if entry.approval() != Approval::Approved {
        tracing::debug!(sn = %sn, endpoint, "device not approved: UNKNOWN DEVICE");
        app.metrics.refuse("unapproved");
        app.metrics.request(endpoint, 200);
        return ok(zk_push::reply::UNKNOWN_DEVICE);
    }
    if let Some(refused) = auth::check(&app, &sn, remote.as_deref(), &query, &request, now).await {
        app.metrics.request(endpoint, refused.status().as_u16());
        return refused;
    }
    let tz = app.registry.entry_time_zone(&entry);
    let mut ctx = Ctx {
        app: app.clone(),
        sn,
        now,
        tz,
        request_line: [method.as_str(), " ", target].concat(),
        remote,
        body,
    };
    let response = match request {
        Request::Handshake(h) => handshake(&ctx, entry.poll_delay_secs(), h).await,
        Request::ServerTime => ok(zk_push::reply::encode_server_time(
            now.with_timezone(&tz).naive_local(),
            offset_minutes(tz, now),
        )),
        Request::RtdataTime => ok(zk_push::reply::encode_rtdata_time(
            now.naive_utc(),
            offset_minutes(tz, now),
        )),
        Request::RemoteAtt { pin } => {
            tracing::info!(sn = %ctx.sn, pin = %pin, "terminal asked for an unknown user; answering NONE");
            ok("NONE")
        }
        Request::Upload { table, stamp } => upload(&mut ctx, table, stamp).await,
        Request::PhotoUpload { stamp } => {
            if let Some(pin) = user_file::user_file_pin(&query, &ctx.body) {
                user_file::store(&mut ctx, &query, &pin).await
            } else {
                let legacy_pin = query.get("PIN").map(str::to_owned);
                attphoto(&mut ctx, stamp, legacy_pin.as_deref()).await
            }
        }
        Request::Poll { info } => poll(&mut ctx, &entry, info).await,
        Request::Ping => ok(zk_push::reply::OK),
        Request::CommandResults => command_results(&mut ctx).await,
        Request::SecurityDialect { what } => {
            tracing::warn!(
                sn = %ctx.sn,
                what = %what,
                "terminal uses the 3.x security push dialect ({what}); punchd speaks the attendance dialect (2.x): \
                 set the terminal's push protocol to attendance/ADMS. The request was kept in the raw journal"
            );
            ctx.keep_raw(&format!("security:{what}")).await
        }
        Request::Other { path } => {
            tracing::info!(sn = %ctx.sn, path = %path, "unknown iclock path; answered OK and kept raw");
            ctx.keep_raw("other").await
        }
    };
    app.metrics.request(endpoint, response.status().as_u16());
    response
}

async fn handshake(ctx: &Ctx, poll_delay_secs: u32, h: zk_push::request::Handshake) -> Response {
    let stamps = match ctx.app.store.stamps(&ctx.sn).await {
        Ok(stamps) => stamps,
        Err(e) => return storage_failed(&ctx.app, &ctx.sn, "handshake", &e),
    };
    if h.push_version
        .as_deref()
        .is_some_and(|v| v.starts_with('3'))
    {
        tracing::info!(
            sn = %ctx.sn,
            pushver = ?h.push_version,
            "terminal announces push protocol 3.x; answering in the attendance dialect (2.x), which att-mode \
             firmware accepts"
        );
    }
    let push = &ctx.app.config.push;
    let mut reply =
        zk_push::reply::OptionsReply::new(ctx.sn.as_str(), offset_minutes(ctx.tz, ctx.now));
    reply.stamps = ["ATTLOG", "OPERLOG", "ATTPHOTO", "BIODATA"]
        .iter()
        .map(|table| {
            let value = stamps
                .iter()
                .find(|(t, _)| t == table)
                .map_or_else(|| "0".to_owned(), |(_, v)| v.clone());
            ((*table).to_owned(), value)
        })
        .collect();
    reply.delay = poll_delay_secs;
    reply.error_delay = push.error_delay_secs;
    reply.trans_interval = push.trans_interval_mins;
    reply.trans_times.clone_from(&push.trans_times);
    reply.realtime = push.realtime;
    tracing::info!(sn = %ctx.sn, pushver = ?h.push_version, "handshake");
    ok(reply.encode())
}

async fn upload(ctx: &mut Ctx, table: Table, stamp: Option<String>) -> Response {
    let sn = ctx.sn.clone();
    let stamp_for = |name: &str| {
        stamp
            .clone()
            .map(|value| (sn.clone(), name.to_owned(), value))
    };
    match table {
        Table::AttLog => {
            // Parsed in bounded runs after the line limits are checked (crate::limits): memory stays a small
            // multiple of the body's size whatever its shape.
            let (punches, errors) =
                match crate::limits::parse_attlog_in_runs(&ctx.body, &ctx.app.config.limits) {
                    Ok(parsed) => parsed,
                    Err(e) => return too_many_lines(ctx, "ATTLOG", &e),
                };
            let bad = first_issue(&errors);
            let mut batch = Batch::new(ctx.raw("ATTLOG", errors));
            batch.stamp = stamp_for("ATTLOG");
            batch.stamp_may_lag = true;
            match ctx.app.ingest.ingest(ctx.delivery(batch, punches)).await {
                Ok(outcome) => {
                    if let Some((n_bad, first)) = &bad {
                        tracing::warn!(sn = %ctx.sn, journal_id = outcome.journal_id, n_bad, first = %first,
                            "ATTLOG lines could not be read; kept in the raw journal (punchd journal --errors), the rest stored");
                    }
                    tracing::debug!(sn = %ctx.sn, stored = outcome.n_stored, duplicate = outcome.n_duplicate, "ATTLOG");
                    ok(zk_push::reply::encode_ok_count(
                        outcome.n_stored + outcome.n_duplicate,
                    ))
                }
                Err(e) => storage_failed(&ctx.app, &ctx.sn, "ATTLOG", &e),
            }
        }
        Table::OperLog | Table::BioData | Table::IdCard | Table::ErrorLog => {
            let kind = table.as_str().to_owned();
            let (mut batch, n_lines) = match operlog_batch(ctx, &kind) {
                Ok(parsed) => parsed,
                Err(e) => return too_many_lines(ctx, &kind, &e),
            };
            batch.stamp = stamp_for(&kind);
            batch.stamp_may_lag = true;
            let bad = first_issue(&batch.raw.errors);
            match ctx.app.ingest.ingest(ctx.delivery(batch, Vec::new())).await {
                Ok(outcome) => {
                    if let Some((n_bad, first)) = &bad {
                        tracing::warn!(sn = %ctx.sn, journal_id = outcome.journal_id, table = %kind, n_bad, first = %first,
                            "lines could not be read; kept in the raw journal (punchd journal --errors), the rest stored");
                    }
                    tracing::debug!(sn = %ctx.sn, table = %kind, records = outcome.n_records, lines = n_lines, "stored");
                    ok(zk_push::reply::encode_ok_count(outcome.n_records))
                }
                Err(e) => storage_failed(&ctx.app, &ctx.sn, &kind, &e),
            }
        }
        Table::AttPhoto => attphoto(ctx, stamp, None).await,
        Table::Options => {
            let (options, errors) =
                match crate::limits::parse_options_bounded(&ctx.body, &ctx.app.config.limits) {
                    Ok(parsed) => parsed,
                    Err(e) => return too_many_lines(ctx, "options", &e),
                };
            let info: serde_json::Map<String, serde_json::Value> = options
                .into_iter()
                .map(|(_, (k, v))| (k, serde_json::Value::String(v)))
                .collect();
            let mut batch = Batch::new(ctx.raw("options", errors));
            batch.device_info = Some((ctx.sn.clone(), info));
            match ctx.app.ingest.ingest(ctx.delivery(batch, Vec::new())).await {
                Ok(_) => ok(zk_push::reply::OK),
                Err(e) => storage_failed(&ctx.app, &ctx.sn, "options", &e),
            }
        }
        Table::Other(name) => {
            tracing::info!(sn = %ctx.sn, table = %name, "unknown table; answered OK and kept raw");
            let response = ctx.keep_raw(&format!("table:{name}")).await;
            if response.status() == StatusCode::OK {
                ok(zk_push::reply::encode_ok_count(0))
            } else {
                response
            }
        }
    }
}

/// How many lines could not be read and the first reason, for the log line written once the journal id is known.
fn first_issue(errors: &[LineIssue]) -> Option<(usize, String)> {
    errors.first().map(|e| (errors.len(), e.reason.clone()))
}

fn fields_map(fields: &[(String, String)]) -> serde_json::Map<String, serde_json::Value> {
    fields
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect()
}

/// OPERLOG-shaped bodies (also BIODATA, IDCARD, ERRORLOG): every line becomes a record or a journal error.
fn operlog_batch(ctx: &mut Ctx, kind: &str) -> Result<(Batch, usize), crate::limits::TooManyLines> {
    use zk_push::operlog::{OperlogRecord, PhotoKind, TemplateKind};
    let (records, mut errors) =
        crate::limits::parse_in_runs(&ctx.body, &ctx.app.config.limits, |run| {
            if kind == "BIODATA" {
                zk_push::operlog::parse_biodata(run)
            } else {
                zk_push::operlog::parse_operlog(run)
            }
            .into_iter()
            .map(|r| (0, r))
            .collect()
        })?;
    let n_lines = records.len() + errors.len();
    let parsed = records
        .into_iter()
        .map(|(_, r)| Ok::<_, zk_push::attlog::LineError>(r));
    let mut users = Vec::new();
    let mut templates = Vec::new();
    let mut photos = Vec::new();
    let mut oplog = Vec::new();
    let mut records = Vec::new();
    for (idx, line) in parsed.into_iter().enumerate() {
        match line {
            Err(e) => errors.push(issue(e)),
            Ok(OperlogRecord::Oplog(o)) => oplog.push(OplogEntry {
                device_sn: ctx.sn.clone(),
                op_type: o.op_type,
                operator: o.operator,
                op_at: o.time,
                objects: o.objects,
            }),
            Ok(OperlogRecord::User(u)) => users.push(DeviceUser {
                device_sn: ctx.sn.clone(),
                pin: crate::domain::Pin(u.pin),
                name: u.name,
                privilege: u.privilege,
                password: u.password,
                card: u.card,
                group: u.group,
                time_zones: u.time_zones,
                verify_mode: u.verify_mode,
                enabled: true,
                fields: fields_map(&u.fields),
                updated_at: ctx.now,
            }),
            Ok(OperlogRecord::Template(t)) => {
                let (kind, bio_type) = match t.kind {
                    TemplateKind::Finger => ("finger", 0),
                    TemplateKind::Face => ("face", 0),
                    TemplateKind::FingerVein => ("finger-vein", 0),
                    TemplateKind::Bio { bio_type } => ("bio", bio_type),
                };
                templates.push(Template {
                    device_sn: ctx.sn.clone(),
                    pin: crate::domain::Pin(t.pin),
                    kind: kind.to_owned(),
                    bio_type,
                    no: t.no,
                    index: t.index,
                    valid: t.valid,
                    duress: t.duress,
                    major_ver: t.major_ver,
                    minor_ver: t.minor_ver,
                    format: t.format,
                    template: t.template,
                    updated_at: ctx.now,
                });
            }
            Ok(OperlogRecord::Photo(p)) => {
                match base64::engine::general_purpose::STANDARD.decode(p.content_base64.trim()) {
                    Ok(content) => photos.push(Photo {
                        device_sn: ctx.sn.clone(),
                        kind: match p.kind {
                            PhotoKind::UserPic => "userpic",
                            PhotoKind::BioPhoto => "biophoto",
                        }
                        .to_owned(),
                        pin: Some(p.pin),
                        file_name: p.file_name,
                        taken_at: None,
                        content,
                    }),
                    Err(e) => errors.push(LineIssue {
                        line_no: idx + 1,
                        line: clip(&format!("photo {} of PIN {}", p.file_name, p.pin)),
                        reason: format!("photo content is not base64: {e}"),
                    }),
                }
            }
            Ok(OperlogRecord::Other { tag, fields }) => records.push(DeviceRecord {
                device_sn: ctx.sn.clone(),
                tag,
                fields,
            }),
        }
    }
    let mut batch = Batch::new(ctx.raw(kind, errors));
    batch.users = users;
    batch.templates = templates;
    batch.photos = photos;
    batch.oplog = oplog;
    batch.records = records;
    Ok((batch, n_lines))
}

async fn attphoto(ctx: &mut Ctx, stamp: Option<String>, legacy_pin: Option<&str>) -> Response {
    let mut errors = Vec::new();
    let mut photos = Vec::new();
    match zk_push::photo::parse_attphoto(&ctx.body, legacy_pin) {
        Ok(p) => photos.push(Photo {
            device_sn: ctx.sn.clone(),
            kind: "attphoto".into(),
            pin: p.pin,
            file_name: p.file_name,
            taken_at: p.taken_at,
            content: p.jpeg,
        }),
        Err(e) => {
            errors.push(LineIssue {
                line_no: 1,
                line: clip(&String::from_utf8_lossy(
                    &ctx.body[..ctx.body.len().min(120)],
                )),
                reason: e.to_string(),
            });
        }
    }
    let mut batch = Batch::new(ctx.raw("ATTPHOTO", errors));
    batch.photos = photos;
    batch.stamp = stamp.map(|value| (ctx.sn.clone(), "ATTPHOTO".to_owned(), value));
    batch.stamp_may_lag = true;
    let bad = first_issue(&batch.raw.errors);
    match ctx.app.ingest.ingest(ctx.delivery(batch, Vec::new())).await {
        Ok(outcome) => {
            if let Some((_, reason)) = &bad {
                tracing::warn!(sn = %ctx.sn, journal_id = outcome.journal_id,
                    "capture photo could not be read ({reason}); kept in the raw journal");
            }
            ok(zk_push::reply::OK)
        }
        Err(e) => storage_failed(&ctx.app, &ctx.sn, "ATTPHOTO", &e),
    }
}

fn info_map(info: &zk_push::info::DeviceInfo) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    let mut put = |k: &str, v: Option<serde_json::Value>| {
        if let Some(v) = v {
            map.insert(k.to_owned(), v);
        }
    };
    put("firmware", info.firmware.clone().map(Into::into));
    put("UserCount", info.user_count.map(Into::into));
    put("FPCount", info.fp_count.map(Into::into));
    put("TransactionCount", info.attlog_count.map(Into::into));
    put("IPAddress", info.ip.clone().map(Into::into));
    put("FPVersion", info.fp_alg_version.clone().map(Into::into));
    put("FaceVersion", info.face_alg_version.clone().map(Into::into));
    put("FaceCount", info.face_count.map(Into::into));
    map
}

async fn poll(
    ctx: &mut Ctx,
    entry: &crate::devices::registry::Entry,
    info: Option<zk_push::info::DeviceInfo>,
) -> Response {
    if let Some(info) = info {
        let mut batch = Batch::new(ctx.raw("INFO", Vec::new()));
        batch.raw.body = info.raw.clone().into_bytes();
        batch.device_info = Some((ctx.sn.clone(), info_map(&info)));
        if let Err(e) = ctx.app.ingest.ingest(ctx.delivery(batch, Vec::new())).await {
            return storage_failed(&ctx.app, &ctx.sn, "INFO", &e);
        }
    }
    if !entry.may_have_commands() {
        return ok(zk_push::reply::OK);
    }
    let push = &ctx.app.config.push;
    let queued = match ctx
        .app
        .store
        .queued_commands(&ctx.sn, push.commands_per_poll)
        .await
    {
        Ok(queued) => queued,
        Err(e) => return storage_failed(&ctx.app, &ctx.sn, "command delivery", &e),
    };
    // Safe clear: a clear_attendance_log waits while a sink owes this terminal's punches (it stays queued, and
    // the hint stays set so every poll looks again).
    let mut n_held = 0;
    let mut sendable = Vec::with_capacity(queued.len());
    for command in queued {
        if command.kind == crate::domain::CommandKind::ClearAttendanceLog {
            match crate::sinks::safe_clear::hold_if_owed(
                ctx.app.store.as_ref(),
                &entry.device(),
                &command,
            )
            .await
            {
                Ok(false) => {}
                Ok(true) => {
                    n_held += 1;
                    continue;
                }
                Err(e) => return storage_failed(&ctx.app, &ctx.sn, "command delivery", &e),
            }
        }
        sendable.push(command);
    }
    let queued = sendable;
    if queued.is_empty() {
        if n_held == 0 {
            entry.set_may_have_commands(false);
        }
        return ok(zk_push::reply::OK);
    }
    let lines: Vec<(u64, String)> = queued
        .iter()
        .filter_map(|c| Some((u64::try_from(c.id).ok()?, c.wire.clone()?)))
        .collect();
    let (_, n_fit) = zk_push::command::encode_command_reply(&lines, push.command_reply_bytes);
    let ids: Vec<i64> = lines[..n_fit]
        .iter()
        .filter_map(|(id, _)| i64::try_from(*id).ok())
        .collect();
    let marked = match ctx.app.store.mark_sent(ids, ctx.now).await {
        Ok(marked) => marked,
        Err(e) => return storage_failed(&ctx.app, &ctx.sn, "command delivery", &e),
    };
    let deliver: Vec<(u64, String)> = lines
        .into_iter()
        .filter(|(id, _)| i64::try_from(*id).is_ok_and(|id| marked.contains(&id)))
        .collect();
    if deliver.is_empty() {
        return ok(zk_push::reply::OK);
    }
    let (reply, n) = zk_push::command::encode_command_reply(&deliver, push.command_reply_bytes);
    tracing::info!(sn = %ctx.sn, n_commands = n, "commands delivered");
    ok(reply)
}

/// At most this many bytes of a result's `Content=` (Shell output, GetFile) are kept in the command's result, as
/// text; the whole content stays in the raw journal entry, whose id the result then names (`journal_id`).
pub const MAX_RESULT_CONTENT_BYTES: usize = 64 * 1024;
/// A result field value (INFO keys, counts) longer than this many characters is clipped (see
/// [`crate::limits::clip_text`]); the raw journal keeps it whole.
pub const MAX_RESULT_FIELD_CHARS: usize = 1_024;

fn clipped_fields(fields: &[(String, String)]) -> serde_json::Map<String, serde_json::Value> {
    fields
        .iter()
        .map(|(k, v)| {
            (
                crate::limits::clip_text(k, MAX_RESULT_FIELD_CHARS),
                serde_json::Value::String(crate::limits::clip_text(v, MAX_RESULT_FIELD_CHARS)),
            )
        })
        .collect()
}

/// `POST /iclock/devicecmd`: command results, read one at a time (issue 6: a body of any shape costs a small
/// multiple of its size): at most `max_lines_per_request` results are applied (the rest recorded as line
/// errors, themselves capped at `max_line_errors`), at most [`zk_push::devicecmd::MAX_FIELDS_PER_RESULT`]
/// fields per result, field values clipped to [`MAX_RESULT_FIELD_CHARS`], content to
/// [`MAX_RESULT_CONTENT_BYTES`].
async fn command_results(ctx: &mut Ctx) -> Response {
    let max_results = ctx.app.config.limits.max_lines_per_request;
    let mut errors = crate::limits::IssueLog::new(ctx.app.config.limits.max_line_errors);
    let mut completions = Vec::new();
    let mut clipped_content = Vec::new();
    let mut info = serde_json::Map::new();
    zk_push::devicecmd::for_each_command_result(&ctx.body, MAX_RESULT_CONTENT_BYTES, |result| {
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                errors.push(issue(e));
                return;
            }
        };
        let Ok(id) = r.id.trim().parse::<i64>() else {
            errors.push(crate::limits::clipped_issue(
                0,
                &format!("ID={}&Return={}&CMD={}", r.id, r.return_code, r.cmd),
                "command id is not one punchd issued",
            ));
            return;
        };
        if completions.len() >= max_results {
            errors.push(crate::limits::clipped_issue(
                0,
                &format!("ID={}&Return={}&CMD={}", r.id, r.return_code, r.cmd),
                &format!("more than {max_results} command results in one request (max_lines_per_request); not applied"),
            ));
            return;
        }
        let fields = clipped_fields(&r.fields);
        if r.cmd.eq_ignore_ascii_case("INFO") {
            info.extend(fields.clone());
        }
        let mut result = serde_json::Map::new();
        result.insert(
            "cmd".into(),
            crate::limits::clip_text(&r.cmd, MAX_RESULT_FIELD_CHARS).into(),
        );
        if !fields.is_empty() {
            result.insert("fields".into(), serde_json::Value::Object(fields));
        }
        if r.dropped_fields > 0 {
            result.insert("fields_not_kept".into(), r.dropped_fields.into());
        }
        if let Some(content) = &r.content {
            result.insert(
                "content".into(),
                String::from_utf8_lossy(content).into_owned().into(),
            );
            if content.len() < r.content_bytes {
                result.insert("content_bytes".into(), r.content_bytes.into());
                clipped_content.push(completions.len());
            }
        }
        let meaning = zk_push::devicecmd::describe_return_code(r.return_code);
        completions.push(CommandCompletion {
            id,
            return_code: r.return_code,
            message: format!("{} (Return={})", meaning, r.return_code),
            result: Some(serde_json::Value::Object(result)),
        });
    });
    let mut batch = Batch::new(ctx.raw("devicecmd", errors.finish()));
    if !info.is_empty() {
        batch.device_info = Some((ctx.sn.clone(), info));
    }
    let journal_id = match ctx.app.ingest.ingest(ctx.delivery(batch, Vec::new())).await {
        Ok(outcome) => outcome.journal_id,
        Err(e) => return storage_failed(&ctx.app, &ctx.sn, "command results", &e),
    };
    // A clipped content names the journal entry that holds it whole.
    for at in clipped_content {
        if let Some(serde_json::Value::Object(result)) = &mut completions[at].result {
            result.insert("journal_id".into(), journal_id.into());
        }
    }
    match ctx
        .app
        .commands
        .complete(&ctx.sn, completions, ctx.now)
        .await
    {
        Ok(done) => {
            for c in &done {
                tracing::info!(sn = %ctx.sn, id = c.id, kind = c.kind.name(), status = c.status.as_str(),
                    message = ?c.message, "command result");
            }
            ok(zk_push::reply::OK)
        }
        Err(e) => storage_failed(&ctx.app, &ctx.sn, "command results", &e),
    }
}

#[cfg(test)]
mod path_tests {
    #[test]
    fn terminal_paths_are_iclock_paths_outside_the_biotime_api() {
        for path in [
            "/iclock",
            "/iclock/",
            "/iclock/cdata",
            "/iclock/getrequest",
            "/iclock/x/y.bin",
        ] {
            assert!(super::is_iclock_path(path), "{path}");
        }
        for path in [
            "/iclockx",
            "/iclock/api/terminals/",
            "/iclock/api/transactions/",
            "/iclock/api/other",
            "/api/v1/devices",
            "/",
        ] {
            assert!(!super::is_iclock_path(path), "{path}");
        }
    }
}
