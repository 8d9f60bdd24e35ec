//! zk-push: the ZKTeco PUSH ("ADMS" / "iclock") HTTP protocol, sans-IO (protocol reference: push.md).
//!
//! Modules in reading order:
//! - [`query`]: the raw query string, where devices put `SN`, `table`, `Stamp`, `INFO` (depends on nothing);
//! - [`request`]: which endpoint a device called, push.md §1.1 (depends on `query`, `info`);
//! - [`text`]: device text decoding, UTF-8 → GB18030 → Latin-1 (depends on nothing);
//! - body parsers, each depending only on `text` (and `attlog` for its `LineError`): [`attlog`] (punches, §7.1),
//!   [`operlog`] (operation log, users, templates, photos, §7.2–§7.5), [`photo`] (capture photos, §7.3),
//!   [`options`] (device options and 3.x registry lists, §7.5), [`info`] (the `INFO=` status, §6),
//!   [`devicecmd`] (command results, §9);
//! - the server side: [`command`] (commands to devices, §8) and [`reply`] (handshake block, `OK:<n>`, time,
//!   §3.2, §5), which depend on nothing;
//! - [`sample`]: captured request files, used by tests and `punchd replay` (depends on nothing).
//!
//! Nothing here opens a socket, touches a database, reads the clock or spawns a task: time is passed in. No
//! module may depend on punchd, on an async runtime, or on HTTP types. Parsers take untrusted bytes and never
//! panic; upload parsers return one `Result` per line so one bad line never loses a batch.

pub mod attlog;
pub mod command;
pub mod devicecmd;
pub mod info;
pub mod operlog;
pub mod options;
pub mod photo;
pub mod query;
pub mod reply;
pub mod request;
pub mod sample;
pub mod text;
