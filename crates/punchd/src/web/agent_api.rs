//! HTTP for edge agents (issue 10), on the hub:
//! - `/api/v1/agent/…`, authorised by an **agent token** (`Authorization: Bearer <token>`, printed by
//!   `punchd agents add`). An agent token is not an API token: it opens these routes only, and only for the
//!   devices of the agent's site. `hello` names the agent's devices, `batches` stores punches (through `ingest`,
//!   source `pull`, journaled raw; the answer comes after the commit), `devices/{sn}` says how far the hub holds a
//!   device (for gap detection), `alarms` takes the agent's alarms.
//! - `GET /api/v1/agents`, API token of scope `read`: every agent with its last contact, backlog, devices and
//!   alarms.
//!
//! The hub keeps how far it holds a device as the stamp [`SEQ_STAMP`], checked and advanced in the batch's
//! transaction under a hold on the device's sequence that works across hub instances on PostgreSQL (see
//! [`crate::store::agents`]): any instance behind a load balancer may take any batch.

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use chrono::Utc;
use chrono_tz::Tz;

use super::auth::{bearer_token, hash_token, require_token, scoped};
use super::error::Error;
use crate::agent::wire::{
    AlarmReport, BatchReply, DeviceStatus, Hello, HelloReply, PunchBatch, SequenceGap,
};
use crate::app::App;
use crate::devices::registry::new_pull_device;
use crate::domain::{DeviceSn, Scope, Source, Transport};
use crate::ingest::{Delivery, PunchRecord};
use crate::sources::push::RemoteAddr;
use crate::store::agents::{
    is_sequence_gap, AgentContact, AgentInfo, NewAlarm, SeqRun, GAP_STAMP, SEQ_STAMP,
};
use crate::store::{Batch, DevicePatch, PunchFilter, RawEntry, SeenUpdate, StoreError};

/// The OpenAPI paths of these routes (merged into `/api/v1/openapi.json`).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_agents, hello, receive_batch, device_status, receive_alarms),
    components(schemas(
        AgentInfo,
        crate::store::agents::AgentDevice,
        crate::store::agents::AgentAlarm,
        Hello,
        HelloReply,
        crate::agent::wire::HelloDevice,
        crate::agent::wire::Backlog,
        DeviceStatus,
        PunchBatch,
        crate::agent::wire::WirePunch,
        BatchReply,
        SequenceGap,
        AlarmReport
    ))
)]
pub struct AgentDoc;

/// The routes, with their full paths: merge them into the root router.
pub fn routes(app: App) -> Router<App> {
    let listing = scoped(
        Scope::Read,
        Router::new().route("/api/v1/agents", get(list_agents)),
    )
    .route_layer(middleware::from_fn_with_state(app.clone(), require_token));
    let agent = Router::new()
        .route("/api/v1/agent/hello", post(hello))
        .route("/api/v1/agent/batches", post(receive_batch))
        .route("/api/v1/agent/devices/{sn}", get(device_status))
        .route("/api/v1/agent/alarms", post(receive_alarms))
        .route_layer(middleware::from_fn_with_state(app, require_agent));
    Router::new().merge(listing).merge(agent)
}

/// Middleware: require `Authorization: Bearer <agent token>`; puts the [`AgentInfo`] in the request's
/// extensions and records the contact. 401 otherwise (an API token is refused here too).
async fn require_agent(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(str::to_owned);
    let Some(token) = token else {
        return Error::Unauthorized.into_response();
    };
    match app.store.find_agent_by_token(&hash_token(&token)).await {
        Ok(Some(agent)) => {
            let ip = request
                .extensions()
                .get::<RemoteAddr>()
                .map(|RemoteAddr(a)| a.ip().to_string());
            let contact = AgentContact {
                at: Utc::now(),
                ip,
                version: None,
                backlog: None,
            };
            if let Err(e) = app.store.record_agent_contact(agent.id, contact).await {
                tracing::warn!(agent = %agent.name, error = %e, "recording agent contact failed");
            }
            request.extensions_mut().insert(agent);
            next.run(request).await
        }
        Ok(None) => Error::Forbidden(
            "unknown agent token (`punchd agents add --site SITE` on the hub prints one)".into(),
        )
        .into_response(),
        Err(e) => Error::from(e).into_response(),
    }
}

fn parse_sn(sn: &str) -> Result<DeviceSn, Error> {
    DeviceSn::parse(sn).map_err(|e| Error::BadRequest(format!("invalid SN {sn:?}: {e}")))
}

/// The device, if this agent feeds it; 403 otherwise.
async fn owned_device(app: &App, agent: &AgentInfo, sn: &str) -> Result<DeviceSn, Error> {
    let sn = parse_sn(sn)?;
    match app.store.agent_of_device(&sn).await? {
        Some(id) if id == agent.id => Ok(sn),
        _ => Err(Error::Forbidden(format!(
            "device {sn} is not fed by agent {:?} (name it in the agent's hello first)",
            agent.name
        ))),
    }
}

/// How far the hub holds a device: the [`SEQ_STAMP`] stamp (0 when there is none), and whether a gap is open
/// ([`GAP_STAMP`]).
async fn held(app: &App, sn: &DeviceSn) -> Result<(i64, bool), StoreError> {
    let stamps = app.store.stamps(sn).await?;
    let seq = stamps
        .iter()
        .find(|(table, _)| table == SEQ_STAMP)
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    let gap_open = stamps.iter().any(|(table, _)| table == GAP_STAMP);
    Ok((seq, gap_open))
}

/// How far the hub holds a device: the [`SEQ_STAMP`] stamp (0 when there is none).
async fn last_seq(app: &App, sn: &DeviceSn) -> Result<i64, StoreError> {
    Ok(held(app, sn).await?.0)
}

/// The status of a device. When the hub holds fewer punches than it acknowledged (a gap) it raises a `gap` alarm
/// at the hub and names where the agent must re-send from (`resend_from`, the earliest batch that lost punches);
/// once the device is whole again the gap is settled.
async fn status_of(app: &App, agent: &AgentInfo, sn: &DeviceSn) -> Result<DeviceStatus, Error> {
    let (last_seq, gap_open) = held(app, sn).await?;
    let count = app
        .store
        .count_punches(&PunchFilter {
            device_sn: Some(sn.clone()),
            ..PunchFilter::default()
        })
        .await?;
    let mut resend_from = None;
    if (count as i64) < last_seq {
        let from = app.store.agent_resend_from(sn, Utc::now()).await?;
        resend_from = Some(from);
        let message = format!(
            "the hub holds {count} punches of {sn} but acknowledged {last_seq} from agent {:?}; the earliest \
             batch that lost punches starts at sequence {from}",
            agent.name
        );
        tracing::warn!(agent = %agent.name, sn = %sn, count, last_seq, resend_from = from, "agent-fed device has a gap");
        let newest = app.store.agent_alarms(agent.id, 1).await?;
        let repeated = newest
            .first()
            .is_some_and(|a| a.message == message && a.device_sn.as_ref() == Some(sn));
        if !repeated {
            app.metrics.agent_alarms.inc();
            app.store
                .raise_agent_alarm(NewAlarm {
                    agent_id: agent.id,
                    device_sn: Some(sn.clone()),
                    kind: "gap".into(),
                    message,
                    raised_at: Utc::now(),
                })
                .await?;
        }
    } else if gap_open && app.store.settle_agent_gap(sn).await? {
        tracing::info!(agent = %agent.name, sn = %sn, count, last_seq, "agent-fed device is whole again");
    }
    Ok(DeviceStatus {
        device_sn: sn.to_string(),
        last_seq,
        count,
        resend_from,
    })
}

/// `GET /api/v1/agents`: every agent with its last contact, backlog, devices and newest alarms.
#[utoipa::path(get, path = "/api/v1/agents", security(("bearer" = ["read"])),
    responses((status = 200, description = "Agents by name", body = [AgentInfo])))]
async fn list_agents(State(app): State<App>) -> Result<Json<Vec<AgentInfo>>, Error> {
    Ok(Json(app.store.list_agents().await?))
}

/// `POST /api/v1/agent/hello`: the agent names its devices (registered at the hub on first hello, in the agent's
/// site) and reports its version and backlog; the answer says how far the hub holds each device. 403 when a
/// device belongs to another site or agent.
#[utoipa::path(post, path = "/api/v1/agent/hello", request_body = Hello, security(("bearer" = [])),
    responses((status = 200, description = "Devices registered; where each stands", body = HelloReply),
              (status = 403, description = "A device of another site or agent")))]
async fn hello(
    State(app): State<App>,
    Extension(agent): Extension<AgentInfo>,
    remote: Option<Extension<RemoteAddr>>,
    Json(hello): Json<Hello>,
) -> Result<Json<HelloReply>, Error> {
    let now = Utc::now();
    let mut claimed = Vec::with_capacity(hello.devices.len());
    for d in &hello.devices {
        let sn = parse_sn(&d.sn)?;
        if let Some(zone) = &d.time_zone {
            zone.parse::<Tz>().map_err(|_| {
                Error::BadRequest(format!("device {sn}: unknown time zone {zone:?}"))
            })?;
        }
        match app.store.get_device(&sn).await {
            Ok(device) => match device.site.as_deref() {
                Some(site) if site != agent.site => {
                    return Err(Error::Forbidden(format!(
                        "device {sn} belongs to site {site:?}; agent {:?} writes for site {:?}",
                        agent.name, agent.site
                    )))
                }
                Some(_) => {}
                None => {
                    app.store
                        .update_device(
                            &sn,
                            DevicePatch {
                                site: Some(Some(agent.site.clone())),
                                ..DevicePatch::default()
                            },
                        )
                        .await?;
                }
            },
            Err(StoreError::NotFound(_)) => {
                // Pulled by the agent, never by the hub: no address, so the hub's scheduler leaves it alone.
                let mut device = new_pull_device(
                    sn.clone(),
                    Transport::Tcp,
                    String::new(),
                    0,
                    300,
                    false,
                    now,
                );
                device.address = None;
                device.site = Some(agent.site.clone());
                device.time_zone.clone_from(&d.time_zone);
                device.alias = Some(format!("via agent {}", agent.name));
                match app.store.create_device(device).await {
                    Ok(_) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
        claimed.push((sn, d.time_zone.clone()));
    }
    app.store
        .claim_agent_devices(agent.id, claimed.clone(), now)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(what) => Error::Forbidden(what),
            other => other.into(),
        })?;
    app.store
        .record_agent_contact(
            agent.id,
            AgentContact {
                at: now,
                ip: remote.map(|Extension(RemoteAddr(a))| a.ip().to_string()),
                version: Some(hello.version.clone()),
                backlog: Some((hello.backlog.count, hello.backlog.oldest_at)),
            },
        )
        .await?;
    let mut devices = Vec::with_capacity(claimed.len());
    for (sn, _) in &claimed {
        devices.push(status_of(&app, &agent, sn).await?);
    }
    tracing::info!(agent = %agent.name, version = %hello.version, n_devices = devices.len(), "agent said hello");
    Ok(Json(HelloReply {
        agent: agent.name.clone(),
        site: agent.site.clone(),
        devices,
    }))
}

/// `POST /api/v1/agent/batches`: punches of one device ([`PunchBatch`]). Stored through `ingest` (source
/// `pull`, the body journaled raw); the store checks the batch's sequence run against the device's stamp and
/// advances it in the same transaction, holding the device's sequence across hub instances
/// ([`crate::store::agents`]); the answer comes after the commit. 409 [`SequenceGap`] when the batch starts past
/// what the hub holds; 503 when storage failed (nothing acknowledged: send again).
#[utoipa::path(post, path = "/api/v1/agent/batches", request_body = PunchBatch, security(("bearer" = [])),
    responses((status = 200, description = "Stored (durable)", body = BatchReply),
              (status = 409, description = "The batch starts past what the hub holds", body = SequenceGap),
              (status = 403, description = "Not a device of this agent")))]
async fn receive_batch(
    State(app): State<App>,
    Extension(agent): Extension<AgentInfo>,
    remote: Option<Extension<RemoteAddr>>,
    body: Bytes,
) -> Result<Response, Error> {
    let batch: PunchBatch = serde_json::from_slice(&body)
        .map_err(|e| Error::BadRequest(format!("batch is not the expected JSON: {e}")))?;
    let sn = owned_device(&app, &agent, &batch.device_sn).await?;
    if batch.first_seq < 1 {
        return Err(Error::BadRequest("first_seq starts at 1".into()));
    }
    let zone = match app.store.get_device(&sn).await {
        Ok(d) => d.time_zone.or_else(|| batch.time_zone.clone()),
        Err(StoreError::NotFound(_)) => batch.time_zone.clone(),
        Err(e) => return Err(e.into()),
    };
    let time_zone = zone
        .and_then(|z| z.parse::<Tz>().ok())
        .unwrap_or(app.config.default_time_zone);
    // Read outside the batch's transaction, for the quick refusal and the answer: the stamp only grows, so what
    // is read here is at most what the store sees under its hold.
    let held = last_seq(&app, &sn).await?;
    if batch.first_seq > held + 1 {
        return Ok(gap_response(&agent, &sn, batch.first_seq, held));
    }
    if batch.punches.is_empty() {
        // A watermark only: nothing to journal (like a heartbeat).
        if let Some(at) = batch.complete_as_of {
            app.store
                .record_seen(vec![SeenUpdate {
                    sn: sn.clone(),
                    at,
                    ip: None,
                }])
                .await?;
        }
        return Ok(Json(BatchReply {
            acked_seq: held,
            n_stored: 0,
            n_duplicate: 0,
            journal_id: 0,
        })
        .into_response());
    }
    let acked_seq = held.max(batch.last_seq());
    let mut store_batch = Batch::new(RawEntry {
        received_at: Utc::now(),
        device_sn: Some(sn.clone()),
        source: Source::Pull,
        kind: "agent:batch".into(),
        request: format!(
            "POST /api/v1/agent/batches (agent {}, seq {}..={})",
            agent.name,
            batch.first_seq,
            batch.last_seq()
        ),
        remote_addr: remote.map(|Extension(RemoteAddr(a))| a.ip().to_string()),
        body: body.to_vec(),
        errors: Vec::new(),
    });
    store_batch.agent_seq = Some(SeqRun {
        device_sn: sn.clone(),
        first_seq: batch.first_seq,
        last_seq: batch.last_seq(),
    });
    let punches = batch
        .punches
        .iter()
        .enumerate()
        .map(|(i, p)| PunchRecord {
            line_no: i + 1,
            pin: p.pin.clone(),
            punched_at: p.punched_at,
            punch_state: p.punch_state,
            verify_mode: p.verify_mode,
            work_code: p.work_code.clone(),
            extra: p.extra.clone(),
        })
        .collect();
    let outcome = match app
        .ingest
        .ingest(Delivery {
            device_sn: sn.clone(),
            time_zone,
            source: Source::Pull,
            punches,
            batch: store_batch,
        })
        .await
    {
        Ok(outcome) => outcome,
        Err(e) if is_sequence_gap(&e) => {
            // Another instance's view moved between the read above and the store's hold (the hub's stamp went
            // back, e.g. a restored backup): nothing was written.
            let held = last_seq(&app, &sn).await?;
            return Ok(gap_response(&agent, &sn, batch.first_seq, held));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(at) = batch.complete_as_of {
        app.store
            .record_seen(vec![SeenUpdate {
                sn: sn.clone(),
                at,
                ip: None,
            }])
            .await?;
    }
    if let Some(backlog) = batch.backlog {
        app.store
            .record_agent_contact(
                agent.id,
                AgentContact {
                    at: Utc::now(),
                    ip: None,
                    version: None,
                    backlog: Some((backlog.count, backlog.oldest_at)),
                },
            )
            .await?;
    }
    Ok(Json(BatchReply {
        acked_seq,
        n_stored: outcome.n_stored,
        n_duplicate: outcome.n_duplicate,
        journal_id: outcome.journal_id,
    })
    .into_response())
}

/// The 409 answer to a batch that starts past what the hub holds.
fn gap_response(agent: &AgentInfo, sn: &DeviceSn, first_seq: i64, held: i64) -> Response {
    tracing::warn!(agent = %agent.name, sn = %sn, first_seq, held, "agent batch starts past what the hub holds");
    (
        StatusCode::CONFLICT,
        Json(SequenceGap {
            error: format!(
                "the hub holds {sn} up to sequence {held}; this batch starts at {first_seq}: send from {}",
                held + 1
            ),
            last_seq: held,
        }),
    )
        .into_response()
}

/// `GET /api/v1/agent/devices/{sn}`: how far the hub holds a device of this agent (sequence acknowledged, punches
/// held). A count below the sequence raises a `gap` alarm at the hub and the answer names `resend_from`.
#[utoipa::path(get, path = "/api/v1/agent/devices/{sn}", params(("sn" = String, Path, description = "Serial number")),
    security(("bearer" = [])),
    responses((status = 200, description = "Where the device stands", body = DeviceStatus),
              (status = 403, description = "Not a device of this agent")))]
async fn device_status(
    State(app): State<App>,
    Extension(agent): Extension<AgentInfo>,
    Path(sn): Path<String>,
) -> Result<Json<DeviceStatus>, Error> {
    let sn = owned_device(&app, &agent, &sn).await?;
    Ok(Json(status_of(&app, &agent, &sn).await?))
}

/// `POST /api/v1/agent/alarms`: alarms the agent raised; recorded at the hub and shown with the agent.
#[utoipa::path(post, path = "/api/v1/agent/alarms", request_body = [AlarmReport], security(("bearer" = [])),
    responses((status = 200, description = "Recorded; the answer is how many")))]
async fn receive_alarms(
    State(app): State<App>,
    Extension(agent): Extension<AgentInfo>,
    Json(alarms): Json<Vec<AlarmReport>>,
) -> Result<Json<serde_json::Value>, Error> {
    let n = alarms.len();
    for a in alarms {
        let device_sn = a.device_sn.as_deref().map(parse_sn).transpose()?;
        tracing::warn!(agent = %agent.name, sn = ?device_sn, kind = %a.kind, message = %a.message, "agent alarm");
        app.metrics.agent_alarms.inc();
        app.store
            .raise_agent_alarm(NewAlarm {
                agent_id: agent.id,
                device_sn,
                kind: a.kind,
                message: format!("agent: {}", a.message),
                raised_at: a.raised_at,
            })
            .await?;
    }
    Ok(Json(serde_json::json!({ "recorded": n })))
}
