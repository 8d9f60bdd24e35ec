//! zk-push: the ZKTeco PUSH ("ADMS" / "iclock") HTTP protocol, sans-IO.
//!
//! Modules in reading order: [`query`] (the raw query string), [`request`] (which endpoint a device called,
//! push.md §1.1), [`text`] (device text decoding), the body parsers [`attlog`], [`operlog`], [`photo`],
//! [`options`], [`info`], [`devicecmd`], then the server side [`command`] (commands to devices) and [`reply`]
//! (handshake block, `OK:<n>`, time), and finally [`sample`] (captured request files, used by tests and
//! `punchd replay`). Nothing here opens a socket, touches a database or reads the clock: time is passed in.
//! No module depends on punchd or on any async runtime.

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
