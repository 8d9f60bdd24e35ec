//! `punchd sinks`: add, list and steer the destinations check-ins are delivered to (issue 8, sinks/mod.rs).
//!
//! Works on the database directly, like the other subcommands: a running `punchd serve` picks up a new, paused,
//! resumed or removed sink within a second.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::format::{Format, Rows};
use crate::sinks::frappe::{FrappeConfig, LogTypeMode};
use crate::sinks::nats::NatsConfig;
use crate::sinks::webhook::WebhookConfig;
use crate::sinks::{self, DeliveryOptions, SinkStatus};
use crate::store::outbox::{ParkKind, SinkKind};

/// Sink actions.
#[derive(Debug, Subcommand)]
pub enum SinkAction {
    /// List sinks: state, pending count, oldest pending age, delivered/failed/parked counts, last error.
    List,
    /// One sink's status and its parked events with their reasons.
    Show {
        /// Sink name.
        name: String,
    },
    /// Add a sink.
    Add {
        /// Which kind.
        #[command(subcommand)]
        kind: Box<AddKind>,
    },
    /// Stop delivering (events keep accumulating in the outbox).
    Pause {
        /// Sink name.
        name: String,
    },
    /// Deliver again after a pause (also after punchd paused it for a configuration error).
    Resume {
        /// Sink name.
        name: String,
    },
    /// Try parked and waiting events now (e.g. after an employee was created in Frappe).
    Retry {
        /// Sink name.
        name: String,
        /// Only events parked as unmapped.
        #[arg(long)]
        unmapped: bool,
    },
    /// Deliver every punch from a date again, delivered or not (receivers de-duplicate by idempotency key).
    /// Without --from: the parked events.
    Replay {
        /// Sink name.
        name: String,
        /// From (RFC 3339 instant, or terminal local date/time in the default zone).
        #[arg(long)]
        from: Option<String>,
    },
    /// Remove a sink and its delivery state (the outbox keeps the events).
    Remove {
        /// Sink name.
        name: String,
    },
    /// Frappe: advance the sink's Shift Types' last_sync_of_checkin to the watermark of the devices feeding them
    /// now (`punchd serve` does it every minute) and print what each came to and which device holds it back.
    SyncShifts {
        /// Sink name.
        name: String,
    },
    /// Withdraw the check-ins of punches voided by a correction now (`punchd serve` does it every minute) and print
    /// what became of each: Frappe deletes the Employee Checkin; webhook and NATS get a `checkin.voided` event.
    WithdrawVoids {
        /// Sink name.
        name: String,
    },
    /// Deliver the punches HR added in the monthly review (add-punch corrections) that the sink has not had yet
    /// now (`punchd serve` does it every minute), and print what became of each.
    DeliverAdded {
        /// Sink name.
        name: String,
    },
    /// Frappe: read Employees (those with the sink's employee field set) into punchd's employees. New ones are
    /// created; differences with local ones are listed as conflicts and left alone unless --overwrite.
    EmployeesSync {
        /// Sink name.
        name: String,
        /// Replace punchd's values with Frappe's where they differ.
        #[arg(long)]
        overwrite: bool,
        /// Only report what would change.
        #[arg(long)]
        dry_run: bool,
        /// Who (recorded in the audit log).
        #[arg(long, default_value = "cli")]
        author: String,
    },
}

/// Options every kind takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Name (default: the kind).
    #[arg(long)]
    pub name: Option<String>,
    /// Also deliver punches stored before the sink existed, from this date (RFC 3339, or a local date/time in the
    /// default zone). Without it: every punch stored from now on, whatever its time (late uploads included).
    #[arg(long)]
    pub since: Option<String>,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Attempts after which a failing event is parked.
    #[arg(long, default_value_t = 50)]
    pub max_attempts: u32,
    /// Hours after which a failing event is parked.
    #[arg(long, default_value_t = 168)]
    pub max_age_hours: u64,
    /// First retry delay in milliseconds (doubles per attempt, with jitter).
    #[arg(long, default_value_t = 1000)]
    pub backoff_ms: u64,
    /// Longest retry delay in seconds.
    #[arg(long, default_value_t = 3600)]
    pub backoff_max_secs: u64,
}

/// The kinds of sink.
#[derive(Debug, Subcommand)]
pub enum AddKind {
    /// Signed JSON batches POSTed to a URL.
    Webhook {
        /// Receiver URL.
        #[arg(long)]
        url: String,
        /// HMAC-SHA256 key (the receiver verifies X-Punchd-Signature with it).
        #[arg(long, env = "PUNCHD_WEBHOOK_SECRET")]
        secret: String,
        /// Check-ins per request.
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
        /// Common options.
        #[command(flatten)]
        common: Common,
    },
    /// NATS JetStream: punches on punchd.punches.SITE.SN, check-ins on punchd.checkins.SITE.EMPLOYEE.
    Nats {
        /// Server URL.
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        url: String,
        /// Stream (created with subjects punchd.> when missing).
        #[arg(long, default_value = "PUNCHD")]
        stream: String,
        /// Common options.
        #[command(flatten)]
        common: Common,
    },
    /// Frappe HR / ERPNext: one Employee Checkin per check-in (the site is probed first).
    Frappe {
        /// Site URL.
        #[arg(long)]
        url: String,
        /// API key.
        #[arg(long, env = "PUNCHD_FRAPPE_API_KEY")]
        api_key: String,
        /// API secret.
        #[arg(long, env = "PUNCHD_FRAPPE_API_SECRET")]
        api_secret: String,
        /// Employee field matched against the employee value (the PIN until mappings exist).
        #[arg(long, default_value = "attendance_device_id")]
        employee_field: String,
        /// log_type: device (from the punch state), none, or policy (not available yet).
        #[arg(long, value_enum, default_value_t = LogTypeMode::Device)]
        log_type: LogTypeMode,
        /// The site's IANA zone (timestamps are converted to it); default: read from the site's System Settings,
        /// else terminal local time unchanged.
        #[arg(long)]
        time_zone: Option<String>,
        /// Latitude to send (only if HR Settings require geolocation).
        #[arg(long, requires = "longitude")]
        latitude: Option<f64>,
        /// Longitude to send.
        #[arg(long, requires = "latitude")]
        longitude: Option<f64>,
        /// Seconds to wait for Frappe's answer.
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
        /// A Shift Type whose last_sync_of_checkin punchd advances: NAME (fed by every device) or
        /// NAME=SN,SN,site:SITE (repeatable).
        #[arg(long = "shift-type", value_parser = crate::sinks::frappe_shift::parse_feed)]
        shift_types: Vec<crate::sinks::frappe_shift::ShiftTypeFeed>,
        /// A device's fixed log_type: SN=in|out|device|none (repeatable); overrides --log-type for that device.
        #[arg(long = "device-log-type", value_parser = crate::sinks::frappe::parse_device_log_type)]
        device_log_types: Vec<(String, crate::sinks::frappe::DeviceLogType)>,
        /// Common options.
        #[command(flatten)]
        common: Common,
    },
}

/// A date given on the command line as an instant: RFC 3339, or terminal local time in the default zone.
fn instant(config: &Config, s: &str) -> anyhow::Result<DateTime<Utc>> {
    sinks::parse_instant(config.default_time_zone, s)
}

/// Status rows.
pub fn status_rows(list: &[SinkStatus]) -> Rows {
    Rows {
        header: vec![
            "name",
            "kind",
            "state",
            "pending",
            "oldest_pending_age_s",
            "delivered",
            "failed",
            "parked",
            "target",
            "last_error",
        ],
        rows: list
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.kind.as_str().to_owned(),
                    s.state.as_str().to_owned(),
                    s.counts.pending.to_string(),
                    s.oldest_pending_age_secs
                        .map_or(String::new(), |a| a.to_string()),
                    s.counts.delivered.to_string(),
                    s.counts.failed.to_string(),
                    s.counts.parked.to_string(),
                    s.target.clone(),
                    s.last_error.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    }
}

fn options(c: &Common) -> DeliveryOptions {
    DeliveryOptions {
        concurrency: c.concurrency,
        max_attempts: c.max_attempts.max(1),
        max_age_secs: c.max_age_hours.saturating_mul(3600),
        backoff_ms: c.backoff_ms.max(1),
        backoff_max_secs: c.backoff_max_secs.max(1),
    }
}

/// Run `punchd sinks …`.
pub async fn run(config: Config, action: SinkAction, format: Format) -> anyhow::Result<()> {
    let store = super::open_store(&config).await?;
    match action {
        SinkAction::List => {
            let mut list = Vec::new();
            for sink in store.list_sinks().await? {
                list.push(sinks::status(store.as_ref(), &sink).await?);
            }
            super::print_rows(&status_rows(&list), format, serde_json::to_value(&list)?)
        }
        SinkAction::Show { name } => {
            let sink = store.get_sink(&name).await?;
            let status = sinks::status(store.as_ref(), &sink).await?;
            let parked = store.parked_events(sink.id, 1000).await?;
            let shift_types = crate::sinks::frappe_shift::plans(
                store.as_ref(),
                &sink,
                config.default_time_zone,
                Utc::now(),
            )
            .await?;
            let mut json = serde_json::json!({ "status": status, "parked": parked });
            if !shift_types.is_empty() {
                json["shift_types"] = serde_json::to_value(shift_types)?;
            }
            let withdrawals = store.list_withdrawals(sink.id).await?;
            if !withdrawals.is_empty() {
                json["withdrawals"] = serde_json::to_value(withdrawals)?;
            }
            let added = store.list_correction_deliveries(sink.id).await?;
            if !added.is_empty() {
                json["added"] = serde_json::to_value(added)?;
            }
            println!("{}", serde_json::to_string_pretty(&json)?);
            Ok(())
        }
        SinkAction::Add { kind } => {
            let (kind, name, settings, common) = match *kind {
                AddKind::Webhook {
                    url,
                    secret,
                    batch_size,
                    common,
                } => (
                    SinkKind::Webhook,
                    "webhook",
                    serde_json::to_value(WebhookConfig {
                        url,
                        secret,
                        batch_size,
                        timeout_secs: 30,
                    })?,
                    common,
                ),
                AddKind::Nats {
                    url,
                    stream,
                    common,
                } => (
                    SinkKind::Nats,
                    "nats",
                    serde_json::to_value(NatsConfig { url, stream })?,
                    common,
                ),
                AddKind::Frappe {
                    url,
                    api_key,
                    api_secret,
                    employee_field,
                    log_type,
                    time_zone,
                    latitude,
                    longitude,
                    timeout_secs,
                    shift_types,
                    device_log_types,
                    common,
                } => (
                    SinkKind::Frappe,
                    "frappe",
                    serde_json::to_value(FrappeConfig {
                        url,
                        api_key,
                        api_secret,
                        employee_field,
                        log_type,
                        time_zone,
                        latitude,
                        longitude,
                        method: None,
                        timeout_secs,
                        shift_types,
                        device_log_types: device_log_types.into_iter().collect(),
                    })?,
                    common,
                ),
            };
            let since = common
                .since
                .as_deref()
                .map(|s| instant(&config, s))
                .transpose()?;
            let name = common.name.clone().unwrap_or_else(|| name.to_owned());
            let sink = sinks::add(
                store.as_ref(),
                name,
                kind,
                settings,
                options(&common),
                since,
            )
            .await?;
            if kind == SinkKind::Frappe {
                match sink.config.get("time_zone").and_then(|z| z.as_str()) {
                    Some(zone) => println!("Frappe timestamps are sent in {zone}"),
                    None => println!(
                        "the site's time zone could not be read (System Settings): timestamps are sent in terminal \
                         local time; give --time-zone if the site is in another zone"
                    ),
                }
            }
            let method = sink.config.get("method").and_then(|m| m.as_str());
            match method {
                Some(m) => println!("sink {} added ({}; method {m})", sink.name, kind.as_str()),
                None => println!("sink {} added ({})", sink.name, kind.as_str()),
            }
            Ok(())
        }
        SinkAction::Pause { name } => {
            store.set_sink_paused(&name, true, None).await?;
            println!("sink {name} paused");
            Ok(())
        }
        SinkAction::Resume { name } => {
            store.set_sink_paused(&name, false, None).await?;
            println!("sink {name} resumed");
            Ok(())
        }
        SinkAction::Retry { name, unmapped } => {
            let only = unmapped.then_some(ParkKind::Unmapped);
            let n = store.retry_sink(&name, only, Utc::now()).await?;
            println!("{n} events of sink {name} will be tried now");
            Ok(())
        }
        SinkAction::Replay { name, from } => {
            let n = match from {
                Some(from) => {
                    let from = instant(&config, &from)?;
                    store.replay_sink(&name, from, Utc::now()).await?
                }
                None => store.retry_sink(&name, None, Utc::now()).await?,
            };
            println!("{n} events of sink {name} will be delivered again");
            Ok(())
        }
        SinkAction::Remove { name } => {
            store.delete_sink(&name).await?;
            println!("sink {name} removed");
            Ok(())
        }
        SinkAction::SyncShifts { name } => {
            let sink = store.get_sink(&name).await?;
            if sink.kind != SinkKind::Frappe {
                anyhow::bail!("sink {name} is not a Frappe sink");
            }
            let results = crate::sinks::frappe_shift::sync(
                store.as_ref(),
                &sink,
                config.default_time_zone,
                Utc::now(),
            )
            .await?;
            if results.is_empty() {
                println!("sink {name} has no Shift Types (add it with --shift-type)");
                return Ok(());
            }
            println!("{}", serde_json::to_string_pretty(&results)?);
            Ok(())
        }
        SinkAction::WithdrawVoids { name } => {
            let sink = store.get_sink(&name).await?;
            let report = crate::sinks::withdraw::withdraw(store.as_ref(), &sink).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        SinkAction::DeliverAdded { name } => {
            let sink = store.get_sink(&name).await?;
            let Some(report) = crate::sinks::added::deliver_exclusively(
                store.clone(),
                &crate::leases::Leases::default(),
                &sink,
                config.default_time_zone,
                crate::sinks::added::WAIT_FOR_ROUND,
            )
            .await?
            else {
                anyhow::bail!(crate::sinks::added::another_round(&name));
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        SinkAction::EmployeesSync {
            name,
            overwrite,
            dry_run,
            author,
        } => {
            let sink = store.get_sink(&name).await?;
            let report = crate::sinks::frappe_employees::sync(
                store.as_ref(),
                &sink,
                overwrite,
                dry_run,
                &author,
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
    }
}
