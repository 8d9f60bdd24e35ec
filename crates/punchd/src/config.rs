//! Settings: one [`Config`] built at start-up from defaults, an optional TOML file, `PUNCHD_*` environment
//! variables and flags (later wins), then passed down explicitly.
//!
//! Example `punchd.toml`:
//! ```toml
//! listen = "0.0.0.0:8080"
//! database = "/var/lib/punchd/punchd.db"   # or a PostgreSQL URL (also `database_url`): "postgres://punchd@db/punchd"
//! default_time_zone = "Asia/Kolkata"
//! durability = "power-safe"        # or "crash-safe"
//! delivery_nice = 19               # sinks yield the CPU to terminals' uploads (0 = same priority, 19 = lowest)
//! delivery_wait_secs = 30          # sinks wait at most this long while collection writes without pause (0 = never)
//!
//! [approval]
//! mode = "auto"                    # or "manual": new terminals wait in `pending`
//! allow = ["CNYG*", "PYA8262300072"] # SN patterns (* and ?) approved on first contact
//!
//! [push]
//! delay_secs = 10                  # poll interval (push `Delay`) given to terminals on registration
//! error_delay_secs = 30
//! commands_per_poll = 10
//! bind_addresses = true            # approved terminals are bound to their address (off for DHCP sites)
//! trusted_proxies = ["127.0.0.1"]  # a reverse proxy whose X-Forwarded-For names the terminal
//!
//! [[sinks]]                        # where check-ins go (README "Delivering check-ins"); created when missing
//! name = "hr"
//! kind = "frappe"                  # or "webhook", "nats"
//! since = "2026-11-01"             # optional: also punches stored before
//! settings = { url = "https://erp.example.com", api_key = "K", api_secret = "S" }
//! delivery = { concurrency = 4 }   # optional: concurrency, max_attempts, max_age_secs, backoff_ms, backoff_max_secs
//!
//! [limits]                         # what one request, client or address may cost (crate::limits)
//! max_lines_per_request = 10000
//! max_pending_devices = 1000
//! new_sns_per_address_per_minute = 20
//! max_connections = 0              # 0 = 3/4 of the open-file limit
//!
//! [ui]                             # the web UI at /ui (README "Web UI")
//! secure_cookies = true            # behind https: the session cookie gets `Secure`
//! session_idle_mins = 60           # a session unused this long is over
//!
//! [[devices]]                      # a terminal punchd pulls over TCP/UDP 4370
//! sn = "BWXP201960123"
//! address = "192.168.1.201"        # host or host:port (4370 by default)
//! transport = "tcp"                # or "udp"
//! comm_key = 0
//! interval_secs = 300              # 0 = keep a live connection
//! clear_after_pull = false         # clear the terminal's log once punchd verified it holds every punch
//! time_zone = "Asia/Kolkata"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::store::sqlite::Durability;

/// How new terminals are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    /// Approve every new terminal on first contact (a first install on a LAN expects this).
    #[default]
    Auto,
    /// New terminals wait in `pending` until approved, unless their SN matches `allow`.
    Manual,
}

/// Approval policy for terminals seen for the first time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalConfig {
    /// auto or manual.
    pub mode: ApprovalMode,
    /// SN patterns (`*` any run, `?` one character) approved on first contact. When the list is not empty, a
    /// terminal that matches none waits in `pending`, whatever the mode.
    pub allow: Vec<String>,
}

/// What push terminals are told in the handshake (push.md §3.2.1) and how commands are delivered.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// `Delay`: seconds between polls (the terminal treats it as an upper bound), given to a terminal when it
    /// registers; each terminal then keeps its own (`punchd devices set SN --poll-delay`), which the handshake
    /// sends and online detection uses.
    pub delay_secs: u32,
    /// `ErrorDelay`: seconds a terminal waits after a failed request.
    pub error_delay_secs: u32,
    /// `TransInterval`: minutes between checks for new data.
    pub trans_interval_mins: u32,
    /// `TransTimes`: fixed upload times, `HH:MM;HH:MM`.
    pub trans_times: String,
    /// `Realtime`: upload each punch as it happens.
    pub realtime: bool,
    /// At most this many commands in one poll reply.
    pub commands_per_poll: usize,
    /// At most this many bytes of commands in one poll reply (push.md §8.1 suggests 40 KB).
    pub command_reply_bytes: usize,
    /// Bind each approved terminal to the addresses it was approved from (README "Terminal authentication");
    /// a terminal's own setting (`punchd devices push-auth SN --bind on|off`) wins. Turn off for DHCP sites.
    pub bind_addresses: bool,
    /// Reverse proxies (IP addresses) whose `X-Forwarded-For` (last address) or `X-Real-IP` header names the
    /// terminal's address. Requests from other peers are taken at their socket address, headers ignored.
    pub trusted_proxies: Vec<String>,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            delay_secs: 10,
            error_delay_secs: 30,
            trans_interval_mins: 1,
            trans_times: "00:00;14:05".into(),
            realtime: true,
            commands_per_poll: 10,
            command_reply_bytes: 40 * 1024,
            bind_addresses: true,
            trusted_proxies: Vec::new(),
        }
    }
}

/// A pull terminal listed in the settings file. On start the store is brought in line with the file: the device
/// is created when missing, and its listed settings replace the stored ones.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Serial number.
    pub sn: String,
    /// `host` or `host:port`.
    pub address: String,
    /// tcp (default) or udp.
    #[serde(default)]
    pub transport: Option<String>,
    /// Comm key (0 = none).
    #[serde(default)]
    pub comm_key: u32,
    /// Seconds between pulls; 0 = live connection. Default 300.
    #[serde(default)]
    pub interval_secs: Option<u32>,
    /// Clear the terminal's attendance log after a verified complete pull.
    #[serde(default)]
    pub clear_after_pull: bool,
    /// IANA zone of the terminal's clock.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// A name people recognise.
    #[serde(default)]
    pub alias: Option<String>,
    /// Site.
    #[serde(default)]
    pub site: Option<String>,
}

/// The sink workers' default `nice` increment: the lowest priority. Delivery is background work whose events are
/// safe in the outbox; collection answers terminals that wait. Measured (BENCHMARKS.md, "Delivery: the fast path,
/// and delivery below collection's priority"): the push benchmark with three sinks ran at 77–92 % of the run
/// without (34 % before), while the sinks still delivered tens of thousands of check-ins per second during the
/// load, batching more per round. At this value the sink threads also take Linux's idle scheduling class
/// (`SCHED_IDLE`, `sinks::lower_priority`), so an upload waking up never waits out a sink's time slice: a median
/// of 0.54 → 0.76 of the run without sinks (BENCHMARKS.md, "Delivery under the idle scheduling class").
pub const DEFAULT_DELIVERY_NICE: i32 = 19;

/// The default of `delivery_wait_secs`: how long at most the sinks wait for a pause in collection. Check-ins then
/// reach a sink at most this much later during an upload burst; HR systems read them by the hour (Frappe's auto
/// attendance), so delivery stays out of the burst instead (BENCHMARKS.md, "Sinks wait for a pause in
/// collection").
pub const DEFAULT_DELIVERY_WAIT_SECS: u64 = 30;

/// The settings file, every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// Listen address for terminals and the API.
    pub listen: Option<String>,
    /// SQLite file path, or a PostgreSQL URL (`postgres://…`).
    pub database: Option<String>,
    /// PostgreSQL URL (`postgres://user[:password]@host[:port]/db`); wins over a path in `database`.
    pub database_url: Option<String>,
    /// IANA zone for terminals with none set.
    pub default_time_zone: Option<String>,
    /// power-safe or crash-safe.
    pub durability: Option<Durability>,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: Option<usize>,
    /// Seconds before a delivered command without a result is delivered again.
    pub command_timeout_secs: Option<u64>,
    /// Deliveries before a command expires.
    pub command_max_attempts: Option<u32>,
    /// Days a queued command waits for its terminal before it expires.
    pub command_expiry_days: Option<u32>,
    /// Approval policy.
    pub approval: ApprovalConfig,
    /// Push handshake settings.
    pub push: PushConfig,
    /// Pull terminals.
    pub devices: Vec<DeviceConfig>,
    /// Sinks (`[[sinks]]`), created by `punchd serve` when missing.
    pub sinks: Vec<crate::sinks::SinkFileConfig>,
    /// Days a fully delivered outbox event is kept before it is pruned (default 90; 0 keeps every event).
    pub outbox_retention_days: Option<u32>,
    /// How much lower the sink workers' CPU priority is than collection's, as a `nice` increment 0..=19
    /// (default [`DEFAULT_DELIVERY_NICE`]; 0 = the same). See [`Config::delivery_nice`].
    pub delivery_nice: Option<i32>,
    /// Longest wait of the sinks for a pause in collection, seconds (default [`DEFAULT_DELIVERY_WAIT_SECS`];
    /// 0 = never wait). See [`Config::delivery_wait`].
    pub delivery_wait_secs: Option<u64>,
    /// What one request, client or address may cost (`[limits]`).
    pub limits: crate::limits::LimitsConfig,
    /// The web UI (`[ui]`): cookies, session expiry, sign-in attempts.
    pub ui: crate::web::ui::UiConfig,
    /// Seconds a lease (a sink drained, a pull terminal pulled) lasts without renewal: how long the job waits
    /// after the instance holding it died (default 30, at least 2; `leases`).
    pub lease_secs: Option<u64>,
}

/// The effective settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where terminals and API clients connect.
    pub listen: SocketAddr,
    /// The SQLite database file (unused when `database_url` is set).
    pub database: PathBuf,
    /// The PostgreSQL database, when `--database`, `PUNCHD_DATABASE`, `database` or `database_url` is a
    /// `postgres://` URL; `None`: SQLite at `database`.
    pub database_url: Option<DatabaseUrl>,
    /// Zone for terminals with none set.
    pub default_time_zone: chrono_tz::Tz,
    /// How durable an acknowledgement is.
    pub durability: Durability,
    /// Largest accepted request body (bytes).
    pub max_body_bytes: usize,
    /// A delivered command with no result is delivered again after this long.
    pub command_timeout: Duration,
    /// A command expires after this many deliveries without a result.
    pub command_max_attempts: u32,
    /// A queued command expires when its terminal has not polled for this long.
    pub command_expiry: Duration,
    /// Approval policy.
    pub approval: ApprovalConfig,
    /// Push settings.
    pub push: PushConfig,
    /// Pull terminals listed in the settings file.
    pub devices: Vec<DeviceConfig>,
    /// Sinks listed in the settings file.
    pub sinks: Vec<crate::sinks::SinkFileConfig>,
    /// How long a fully delivered outbox event is kept (`None`: forever); sinks/retention.rs.
    pub outbox_retention: Option<Duration>,
    /// The sink workers run on threads of their own whose `nice` value is this much higher (Linux; 0..=19,
    /// default [`DEFAULT_DELIVERY_NICE`]): when terminals and delivery want the same CPU, the terminals' uploads
    /// win and delivery works through the outbox backlog as soon as the CPU is free (`sinks::run_at_priority`).
    /// At 19 the threads are also put under `SCHED_IDLE`; 1..=18 changes the nice value only.
    pub delivery_nice: i32,
    /// While collection is writing deliveries nearly all the time (an upload burst, terminals sending their
    /// backlog after an outage: `collection_load`), the sinks' rounds wait, and the outbox keeps what
    /// arrives; after this long of one such stretch they deliver alongside collection until it pauses
    /// (`sinks::collection_wait`). `Duration::ZERO`: never wait. Default [`DEFAULT_DELIVERY_WAIT_SECS`].
    pub delivery_wait: Duration,
    /// Resource limits.
    pub limits: crate::limits::LimitsConfig,
    /// Web UI settings.
    pub ui: crate::web::ui::UiConfig,
    /// How long a lease lasts without renewal (`lease_secs`, default 30 s).
    pub lease_ttl: Duration,
}

/// A PostgreSQL URL; printed (Debug and Display) without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL as given (with its password): for connecting only, never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::store::postgres::redact_url(&self.0))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// The default database file.
pub const DEFAULT_DATABASE: &str = "punchd.db";

/// Values given on the command line or in `PUNCHD_*` variables (clap reads both); they win over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen` / `PUNCHD_LISTEN`.
    pub listen: Option<String>,
    /// `--database` / `PUNCHD_DATABASE`.
    pub database: Option<String>,
    /// `--time-zone` / `PUNCHD_TIME_ZONE`.
    pub default_time_zone: Option<String>,
    /// `--durability` / `PUNCHD_DURABILITY`.
    pub durability: Option<Durability>,
    /// `--approval` / `PUNCHD_APPROVAL`.
    pub approval_mode: Option<ApprovalMode>,
    /// `--max-connections` / `PUNCHD_MAX_CONNECTIONS`.
    pub max_connections: Option<usize>,
    /// `--max-pending-devices` / `PUNCHD_MAX_PENDING_DEVICES`.
    pub max_pending_devices: Option<usize>,
    /// `--new-sns-per-minute` / `PUNCHD_NEW_SNS_PER_MINUTE`.
    pub new_sns_per_address_per_minute: Option<u32>,
}

/// The zone of this machine (from the OS), or UTC when it cannot be told.
pub fn system_time_zone() -> chrono_tz::Tz {
    iana_time_zone::get_timezone()
        .ok()
        .and_then(|name| name.parse().ok())
        .unwrap_or(chrono_tz::UTC)
}

/// Parse an IANA zone name with a helpful error.
pub fn parse_time_zone(name: &str) -> anyhow::Result<chrono_tz::Tz> {
    name.parse::<chrono_tz::Tz>().map_err(|_| {
        anyhow::anyhow!("unknown time zone {name:?}: use an IANA name such as \"Europe/Berlin\" or \"Asia/Kolkata\"")
    })
}

impl Config {
    /// Build the settings: defaults, then the TOML file at `file` (if given), then `overrides`.
    ///
    /// Errors: the file cannot be read or parsed (unknown keys are errors, so typos do not pass silently), an
    /// address or zone is invalid.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let file_config: FileConfig = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let listen = overrides
            .listen
            .clone()
            .or(file_config.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen
            .parse()
            .with_context(|| format!("listen address {listen:?} is not IP:PORT"))?;
        // A flag or variable wins over the file; in the file a `database_url` wins over `database`.
        let database = overrides
            .database
            .clone()
            .or(file_config.database_url)
            .or(file_config.database)
            .unwrap_or_else(|| DEFAULT_DATABASE.into());
        let (database, database_url) = if crate::store::postgres::is_postgres_url(&database) {
            (PathBuf::from(DEFAULT_DATABASE), Some(DatabaseUrl(database)))
        } else {
            (PathBuf::from(database), None)
        };
        let default_time_zone = match overrides
            .default_time_zone
            .clone()
            .or(file_config.default_time_zone)
        {
            Some(name) => parse_time_zone(&name)?,
            None => system_time_zone(),
        };
        let mut approval = file_config.approval;
        if let Some(mode) = overrides.approval_mode {
            approval.mode = mode;
        }
        let mut limits = file_config.limits;
        if let Some(n) = overrides.max_connections {
            limits.max_connections = n;
        }
        if let Some(n) = overrides.max_pending_devices {
            limits.max_pending_devices = n;
        }
        if let Some(n) = overrides.new_sns_per_address_per_minute {
            limits.new_sns_per_address_per_minute = n;
        }
        Ok(Config {
            listen,
            database,
            database_url,
            default_time_zone,
            durability: overrides
                .durability
                .or(file_config.durability)
                .unwrap_or_default(),
            max_body_bytes: file_config.max_body_bytes.unwrap_or(16 * 1024 * 1024),
            command_timeout: Duration::from_secs(file_config.command_timeout_secs.unwrap_or(120)),
            command_max_attempts: file_config.command_max_attempts.unwrap_or(3),
            lease_ttl: Duration::from_secs(file_config.lease_secs.unwrap_or(30).max(2)),
            command_expiry: Duration::from_secs(
                u64::from(file_config.command_expiry_days.unwrap_or(7)) * 86_400,
            ),
            approval,
            push: file_config.push,
            devices: file_config.devices,
            sinks: file_config.sinks,
            outbox_retention: match file_config.outbox_retention_days.unwrap_or(90) {
                0 => None,
                days => Some(Duration::from_secs(u64::from(days) * 86_400)),
            },
            delivery_nice: match file_config.delivery_nice.unwrap_or(DEFAULT_DELIVERY_NICE) {
                n @ 0..=19 => n,
                n => anyhow::bail!("delivery_nice = {n}: give 0 (same priority) to 19 (lowest)"),
            },
            delivery_wait: Duration::from_secs(
                file_config
                    .delivery_wait_secs
                    .unwrap_or(DEFAULT_DELIVERY_WAIT_SECS),
            ),
            limits,
            ui: file_config.ui,
        })
    }
}

impl Config {
    /// The database as people should read it: the SQLite path, or the PostgreSQL URL without its password.
    pub fn database_label(&self) -> String {
        match &self.database_url {
            Some(url) => url.to_string(),
            None => self.database.display().to_string(),
        }
    }
}

impl std::str::FromStr for ApprovalMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(ApprovalMode::Auto),
            "manual" => Ok(ApprovalMode::Manual),
            other => Err(format!("approval mode {other:?} is not auto or manual")),
        }
    }
}

#[cfg(test)]
mod database_tests {
    use super::*;

    fn load(database: Option<&str>, file: Option<&str>) -> Config {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("punchd.toml");
        if let Some(text) = file {
            std::fs::write(&path, text).expect("write");
        }
        let overrides = Overrides {
            database: database.map(str::to_owned),
            default_time_zone: Some("UTC".into()),
            ..Overrides::default()
        };
        Config::load(file.map(|_| path.as_path()), &overrides).expect("load")
    }

    #[test]
    fn a_postgres_url_selects_postgres_and_never_prints_its_password() {
        let config = load(Some("postgres://punchd:s3cret@db.internal/punchd"), None);
        let url = config.database_url.clone().expect("postgres selected");
        assert_eq!(url.expose(), "postgres://punchd:s3cret@db.internal/punchd");
        assert_eq!(
            config.database_label(),
            "postgres://punchd:***@db.internal/punchd"
        );
        assert!(!format!("{config:?}").contains("s3cret"));

        let config = load(None, Some("database_url = \"postgresql://u@h/d\"\n"));
        assert_eq!(
            config.database_url.map(|u| u.expose().to_owned()),
            Some("postgresql://u@h/d".to_owned())
        );
        // A flag or variable wins over the file: a path given there means SQLite.
        let config = load(
            Some("/tmp/x.db"),
            Some("database_url = \"postgres://u@h/d\"\n"),
        );
        assert_eq!(config.database_url, None);
        assert_eq!(config.database, PathBuf::from("/tmp/x.db"));
        let config = load(None, None);
        assert_eq!(
            (config.database_url, config.database),
            (None, PathBuf::from(DEFAULT_DATABASE))
        );
    }

    #[test]
    fn delivery_nice_defaults_to_the_lowest_priority_and_refuses_what_nice_cannot_be() {
        assert_eq!(load(None, None).delivery_nice, 19);
        assert_eq!(load(None, Some("delivery_nice = 0\n")).delivery_nice, 0);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("punchd.toml");
        std::fs::write(&path, "delivery_nice = 20\n").expect("write");
        let err = Config::load(Some(&path), &Overrides::default()).expect_err("20 refused");
        assert!(format!("{err:#}").contains("delivery_nice = 20"), "{err:#}");
    }

    #[test]
    fn delivery_wait_defaults_to_30_seconds_and_0_turns_it_off() {
        assert_eq!(load(None, None).delivery_wait, Duration::from_secs(30));
        assert_eq!(
            load(None, Some("delivery_wait_secs = 0\n")).delivery_wait,
            Duration::ZERO
        );
        assert_eq!(
            load(None, Some("delivery_wait_secs = 5\n")).delivery_wait,
            Duration::from_secs(5)
        );
    }
}
