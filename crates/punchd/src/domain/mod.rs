//! Pure types of the field: punch, device, PIN, punch state, verify mode, stamp, command.
//!
//! Nothing here does IO or imports another punchd module; everything else depends on this module. Wire spellings
//! (`ATTLOG`, `Stamp=`, `C:<id>:`) stay in the protocol crates and the `sources` adapters, which convert to these
//! types at the edge.

mod access;
mod command;
mod device;
mod punch;

pub use access::{Role, Scope};
pub use command::{Command, CommandKind, CommandStatus, NewCommand};
pub use device::{Approval, Device, DeviceSn, InvalidSn, Transport, CORRECTION_DEVICE};
pub use punch::{NewPunch, Pin, Punch, PunchState, Source, VerifyMode};
