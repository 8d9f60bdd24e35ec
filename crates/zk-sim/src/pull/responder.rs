//! The terminal's answers, sans-IO: one request packet in, the reply packets out (pull.md §3–§7,
//! pull-simulator.md §3). A [`Session`] holds what a device keeps per client (session id, comm-key state,
//! the prepared transfer buffer, an upload in progress, the event mask); the [`DeviceModel`] holds the data.
//!
//! No sockets, no sleeps, no clock: the transports in `tcp` and `udp` pass the time in and write the packets
//! (after `wire` has applied the configured faults). Must not depend on `tcp`, `udp` or tokio.

use chrono::NaiveDateTime;
use zk_pull::codec::{cmd, Packet};
use zk_pull::records::{
    check_comm_key, decode_text, decode_time, decode_user_28, decode_user_72,
    encode_attendance_event, encode_time, AttendanceEvent, Template, User,
};

use super::model::{ClearKind, DeviceModel};
use super::PullSimConfig;

/// The largest direct `CMD_DATA` payload on UDP: pyzk reads the 1503 reply with `recv(1024)` and silently
/// truncates bigger datagrams (pull-simulator.md rule R2).
pub(crate) const UDP_DIRECT_MAX: usize = 1016;
/// Data bytes per `CMD_DATA` datagram on UDP (pull-simulator.md rule R4).
pub(crate) const UDP_DATA_MAX: usize = 1024;
/// The "maximum data-packet size" announced in `PREPARE_DATA` on TCP when chunks go out whole (pull.md §7.4).
const TCP_ANNOUNCED_PACKET: u32 = 0x1_0000;
/// An upload (`PREPARE_DATA` from the client) larger than this is refused: real terminals have a few MB.
const MAX_UPLOAD: usize = 16 << 20;
/// The PIN width `CMD_GET_PINWIDTH` reports.
const PIN_WIDTH: u8 = 9;

/// Which transport a session runs on: it decides frame sizes and the event payload size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP, every packet behind the 8-byte frame header.
    Tcp,
    /// UDP, one packet per datagram.
    Udp,
}

/// What the device keeps for one client: a TCP connection, or a UDP session id.
#[derive(Debug)]
pub(crate) struct Session {
    /// The session id assigned at connect (pull.md §3).
    pub(crate) id: u16,
    /// False until CONNECT (no comm key) or a correct CMD_AUTH.
    pub(crate) authenticated: bool,
    /// `CMD_REG_EVENT` mask (pull.md §9.1); live punches go to sessions with `EF_ATTLOG` set.
    pub(crate) event_mask: u32,
    /// The dataset prepared by `CMD_DATA_WRRQ` (1503), read by `CMD_DATA_RDY` (1504), freed by FREE_DATA.
    buffer: Option<Vec<u8>>,
    /// An upload announced by the client's `PREPARE_DATA` and filled by its `CMD_DATA` packets (pull.md §7.6).
    upload: Option<Upload>,
}

#[derive(Debug)]
struct Upload {
    expected: usize,
    data: Vec<u8>,
}

impl Session {
    pub(crate) fn new(id: u16) -> Session {
        Session {
            id,
            authenticated: false,
            event_mask: 0,
            buffer: None,
            upload: None,
        }
    }

    /// Whether live attendance events should be sent to this session.
    pub(crate) fn wants_attendance_events(&self) -> bool {
        self.event_mask & cmd::EF_ATTLOG != 0
    }
}

/// What happens to the connection after the reply is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    Continue,
    /// `CMD_EXIT` / `CMD_POWEROFF`: close this connection (UDP: forget the session).
    Close,
    /// `CMD_RESTART`: close every connection and forget every subscription.
    Restart,
}

/// The device's answer to one request.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Packets in order; empty when the request gets no answer (a client's ACK of an event).
    pub(crate) packets: Vec<Packet>,
    /// A multi-packet transfer (PREPARE_DATA, CMD_DATA…, ACK_OK): frame gaps and the mid-transfer
    /// disconnect fault apply to it.
    pub(crate) bulk: bool,
    pub(crate) after: After,
    /// The request was the client's `CMD_ACK_OK` for a live event.
    pub(crate) event_ack: bool,
}

impl Reply {
    fn one(packet: Packet) -> Reply {
        Reply {
            packets: vec![packet],
            bulk: false,
            after: After::Continue,
            event_ack: false,
        }
    }

    fn then(mut self, after: After) -> Reply {
        self.after = after;
        self
    }
}

/// Everything `handle_request` reads besides the session and the model.
pub(crate) struct Context<'a> {
    pub(crate) config: &'a PullSimConfig,
    pub(crate) transport: Transport,
    /// The host's UTC time now; the device clock is this plus the model's offset.
    pub(crate) utc_now: NaiveDateTime,
}

fn reply(session: &Session, request: &Packet, code: u16, payload: Vec<u8>) -> Reply {
    Reply::one(Packet::new(code, session.id, request.reply_id, payload))
}

fn ok(session: &Session, request: &Packet) -> Reply {
    reply(session, request, cmd::ACK_OK, Vec::new())
}

fn error(session: &Session, request: &Packet) -> Reply {
    reply(session, request, cmd::ACK_ERROR, Vec::new())
}

fn ok_if(session: &Session, request: &Packet, success: bool) -> Reply {
    if success {
        ok(session, request)
    } else {
        error(session, request)
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|x| u16::from_le_bytes([x[0], x[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
}

fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    u32_at(b, at).map(|v| i32::from_le_bytes(v.to_le_bytes()))
}

/// Answer one request. Never panics on any payload; unknown commands get `CMD_ACK_UNKNOWN` (pull.md §4:
/// pyzk's `_clear_error` sends reply codes as commands and waits for an answer to each).
pub(crate) fn handle_request(
    session: &mut Session,
    model: &mut DeviceModel,
    ctx: &Context<'_>,
    request: &Packet,
) -> Reply {
    model.counters.requests += 1;
    let needs_auth = !matches!(
        request.command,
        cmd::CONNECT | cmd::AUTH | cmd::EXIT | cmd::ACK_OK
    );
    if needs_auth && !session.authenticated {
        return reply(session, request, cmd::ACK_UNAUTH, Vec::new());
    }
    let payload = request.payload.as_slice();
    match request.command {
        cmd::CONNECT => {
            // A second CONNECT on the same connection keeps the session (pull.md §3).
            if ctx.config.comm_key == 0 {
                session.authenticated = true;
                ok(session, request)
            } else {
                session.authenticated = false;
                reply(session, request, cmd::ACK_UNAUTH, Vec::new())
            }
        }
        cmd::AUTH => {
            let key = ctx.config.comm_key;
            if key == 0 || check_comm_key(payload, key, session.id) {
                session.authenticated = true;
                ok(session, request)
            } else {
                model.counters.auth_failures += 1;
                session.authenticated = false;
                reply(session, request, cmd::ACK_UNAUTH, Vec::new())
            }
        }
        cmd::EXIT => {
            session.buffer = None;
            ok(session, request).then(After::Close)
        }
        cmd::ACK_OK => Reply {
            packets: Vec::new(),
            bulk: false,
            after: After::Continue,
            event_ack: true,
        },
        cmd::ENABLEDEVICE => {
            model.enabled = true;
            ok(session, request)
        }
        cmd::DISABLEDEVICE => {
            model.enabled = false;
            ok(session, request)
        }
        cmd::RESTART => {
            model.counters.restarts += 1;
            model.enabled = true;
            ok(session, request).then(After::Restart)
        }
        cmd::POWEROFF => ok(session, request).then(After::Close),
        cmd::GET_VERSION => {
            let mut text = model.firmware.clone().into_bytes();
            text.push(0);
            reply(session, request, cmd::ACK_OK, text)
        }
        cmd::OPTIONS_RRQ => {
            let key = decode_text(payload);
            match model.options.get(&key) {
                Some(value) => {
                    let mut text = format!("{key}={value}").into_bytes();
                    text.push(0);
                    reply(session, request, cmd::ACK_OK, text)
                }
                None => error(session, request),
            }
        }
        cmd::OPTIONS_WRQ => {
            let text = decode_text(payload);
            match text.split_once('=') {
                Some((key, value)) if !key.is_empty() => {
                    model.options.insert(key.to_owned(), value.to_owned());
                    ok(session, request)
                }
                _ => error(session, request),
            }
        }
        cmd::GET_FREE_SIZES => {
            let sizes = model
                .free_sizes()
                .encode(model.profile.free_sizes_face_block());
            reply(session, request, cmd::ACK_OK, sizes)
        }
        cmd::GET_PINWIDTH => reply(session, request, cmd::ACK_OK, vec![PIN_WIDTH]),
        cmd::STATE_RRQ => {
            // The state travels in the session field: 0 = idle (pull.md §4).
            Reply::one(Packet::new(cmd::ACK_OK, 0, request.reply_id, Vec::new()))
        }
        cmd::GET_TIME => {
            let now = model.device_time(ctx.utc_now);
            reply(
                session,
                request,
                cmd::ACK_OK,
                encode_time(now).to_le_bytes().to_vec(),
            )
        }
        cmd::SET_TIME => match u32_at(payload, 0).and_then(decode_time) {
            Some(t) => {
                model.set_device_time(t, ctx.utc_now);
                ok(session, request)
            }
            None => error(session, request),
        },
        cmd::USER_WRQ => match decode_written_user(payload) {
            Some(user) => {
                model.counters.users_written += 1;
                model.put_user(user);
                ok(session, request)
            }
            None => error(session, request),
        },
        cmd::DELETE_USER => {
            let deleted = u16_at(payload, 0).is_some_and(|uid| model.delete_user(uid));
            if deleted {
                model.counters.users_deleted += 1;
            }
            ok_if(session, request, deleted)
        }
        cmd::DELETE_USERTEMP => {
            let removed = match (u16_at(payload, 0), payload.get(2)) {
                (Some(uid), Some(&finger)) => remove_templates(model, uid, Some(finger)),
                (Some(uid), None) => remove_templates(model, uid, None),
                _ => false,
            };
            ok_if(session, request, removed)
        }
        cmd::DEL_FPTMP => {
            let pin = decode_text(payload.get(..24).unwrap_or(payload));
            let removed = match (model.uid_of(&pin), payload.get(24)) {
                (Some(uid), finger) => remove_templates(model, uid, finger.copied()),
                (None, _) => false,
            };
            ok_if(session, request, removed)
        }
        cmd::CLEAR_ATTLOG => {
            model.clear(ClearKind::Attendance);
            ok(session, request)
        }
        cmd::CLEAR_DATA => {
            let kind = match payload.first() {
                None => Some(ClearKind::Everything),
                Some(1) => Some(ClearKind::Attendance),
                Some(2) => Some(ClearKind::Templates),
                Some(4) => Some(ClearKind::OperationLog),
                Some(5) => Some(ClearKind::Users),
                Some(_) => None,
            };
            match kind {
                Some(kind) => {
                    model.clear(kind);
                    ok(session, request)
                }
                None => error(session, request),
            }
        }
        cmd::CLEAR_ADMIN => {
            model.clear_admins();
            ok(session, request)
        }
        cmd::UNLOCK => {
            model.counters.unlocks += 1;
            ok(session, request)
        }
        cmd::REG_EVENT => {
            session.event_mask = u32_at(payload, 0).unwrap_or(0);
            ok(session, request)
        }
        cmd::DATA_WRRQ => prepare_buffer(session, model, ctx, request),
        cmd::DATA_RDY => read_buffer(session, model, ctx, request),
        cmd::FREE_DATA => {
            session.buffer = None;
            session.upload = None;
            ok(session, request)
        }
        // Legacy direct reads (pull.md §7.1): the whole dataset as PREPARE_DATA / CMD_DATA… / ACK_OK.
        cmd::ATTLOG_RRQ if payload.is_empty() => {
            let dataset = model.attendance_dataset();
            transfer(session, model, ctx, request, &dataset)
        }
        cmd::USERTEMP_RRQ if payload.is_empty() => {
            let dataset = model.users_dataset();
            transfer(session, model, ctx, request, &dataset)
        }
        // One template: u16 uid + u8 finger (ADRO for 9; pyzk's undocumented 88).
        cmd::USERTEMP_RRQ | cmd::GET_USERTEMP => {
            let wanted = (u16_at(payload, 0), payload.get(2).copied());
            let found = model
                .templates
                .iter()
                .find(|t| Some(t.uid) == wanted.0 && Some(t.finger) == wanted.1)
                .map(|t| t.data.clone());
            match found {
                Some(mut data) => {
                    // pyzk drops the last byte of a single-template read (pull.md §8.6).
                    data.push(0);
                    transfer(session, model, ctx, request, &data)
                }
                None => error(session, request),
            }
        }
        cmd::PREPARE_DATA => match u32_at(payload, 0).and_then(|n| usize::try_from(n).ok()) {
            Some(expected) if expected <= MAX_UPLOAD => {
                session.upload = Some(Upload {
                    expected,
                    data: Vec::with_capacity(expected.min(1 << 20)),
                });
                ok(session, request)
            }
            _ => error(session, request),
        },
        cmd::DATA => {
            let accepted = match session.upload.as_mut() {
                Some(upload) if upload.data.len() + payload.len() <= upload.expected => {
                    upload.data.extend_from_slice(payload);
                    true
                }
                _ => false,
            };
            ok_if(session, request, accepted)
        }
        cmd::SAVE_USERTEMPS => {
            let saved = match session.upload.take() {
                Some(upload) if upload.data.len() == upload.expected => {
                    save_users_and_templates(model, &upload.data)
                }
                _ => false,
            };
            ok_if(session, request, saved)
        }
        cmd::REFRESHDATA
        | cmd::REFRESHOPTION
        | cmd::TESTVOICE
        | cmd::STARTVERIFY
        | cmd::CANCELCAPTURE
        | cmd::ENABLE_CLOCK
        | cmd::WRITE_LCD
        | cmd::CLEAR_LCD
        | cmd::SLEEP
        | cmd::RESUME => ok(session, request),
        _ => {
            model.counters.unknown_commands += 1;
            reply(session, request, cmd::ACK_UNKNOWN, Vec::new())
        }
    }
}

/// A `CMD_USER_WRQ` payload: 72 bytes (TFT; zkteco-js may send more), 28 bytes (B&W), or those with pyzk's
/// 0x02 prefix (73 / 29, the high-rate layout).
fn decode_written_user(payload: &[u8]) -> Option<User> {
    match payload.len() {
        73 | 29 if payload.first() == Some(&2) => decode_written_user(payload.get(1..)?),
        n if n >= 72 => decode_user_72(payload).ok(),
        n if n >= 28 => decode_user_28(payload).ok(),
        _ => None,
    }
}

fn remove_templates(model: &mut DeviceModel, uid: u16, finger: Option<u8>) -> bool {
    let before = model.templates.len();
    model
        .templates
        .retain(|t| !(t.uid == uid && finger.is_none_or(|f| f == t.finger)));
    model.templates.len() != before
}

/// `_CMD_SAVE_USERTEMPS` (110) after an upload (pull.md §7.6): `u32 users_len, u32 table_len, u32
/// templates_len`, users as 73- or 29-byte records (0x02 + record), table entries `u8 2, u16 uid,
/// u8 0x10+finger, u32 offset`, templates `u16 size, bytes`. False (nothing stored) when anything is off.
fn save_users_and_templates(model: &mut DeviceModel, buffer: &[u8]) -> bool {
    let parse = || -> Option<(Vec<User>, Vec<Template>)> {
        let users_len = usize::try_from(u32_at(buffer, 0)?).ok()?;
        let table_len = usize::try_from(u32_at(buffer, 4)?).ok()?;
        let templates_len = usize::try_from(u32_at(buffer, 8)?).ok()?;
        let users_end = 12usize.checked_add(users_len)?;
        let table_end = users_end.checked_add(table_len)?;
        let templates_end = table_end.checked_add(templates_len)?;
        let users_bytes = buffer.get(12..users_end)?;
        let table = buffer.get(users_end..table_end)?;
        let blobs = buffer.get(table_end..templates_end)?;
        let record_len = if users_len % 73 == 0 { 73 } else { 29 };
        if users_len % record_len != 0 || table_len % 8 != 0 {
            return None;
        }
        let users = users_bytes
            .chunks(record_len)
            .map(decode_written_user)
            .collect::<Option<Vec<User>>>()?;
        let templates = table
            .chunks(8)
            .map(|entry| {
                let uid = u16_at(entry, 1)?;
                let finger = entry.get(3)?.checked_sub(0x10)?;
                let offset = usize::try_from(u32_at(entry, 4)?).ok()?;
                let size = usize::from(u16_at(blobs, offset)?);
                let start = offset.checked_add(2)?;
                let data = blobs.get(start..start.checked_add(size)?)?.to_vec();
                Some(Template {
                    uid,
                    finger,
                    flag: 1,
                    data,
                })
            })
            .collect::<Option<Vec<Template>>>()?;
        Some((users, templates))
    };
    let Some((users, templates)) = parse() else {
        return false;
    };
    for user in users {
        model.put_user(user);
    }
    for template in templates {
        remove_templates(model, template.uid, Some(template.finger));
        model.templates.push(template);
    }
    true
}

/// `CMD_DATA_WRRQ` (1503, pull.md §7.2–§7.3): build the dataset the request names; answer with one direct
/// `CMD_DATA` when it fits the direct threshold, otherwise keep it in the session's buffer and answer ACK_OK
/// with the 13-byte stat (0x00, u32 size, u32 size, u32 0).
fn prepare_buffer(
    session: &mut Session,
    model: &mut DeviceModel,
    ctx: &Context<'_>,
    request: &Packet,
) -> Reply {
    // The device dispatches on the command field (attendance is fct 0, not FCT_ATTLOG).
    let dataset = match u16_at(&request.payload, 1) {
        Some(cmd::USERTEMP_RRQ) => model.users_dataset(),
        Some(cmd::ATTLOG_RRQ) => model.attendance_dataset(),
        Some(cmd::DB_RRQ) => model.templates_dataset(),
        Some(cmd::OPLOG_RRQ) => vec![0; 4],
        _ => return error(session, request),
    };
    let threshold = match ctx.transport {
        Transport::Tcp => ctx.config.direct_threshold,
        Transport::Udp => ctx.config.direct_threshold.min(UDP_DIRECT_MAX),
    };
    if dataset.len() <= threshold {
        model.counters.bulk_bytes_sent += dataset.len() as u64;
        return reply(session, request, cmd::DATA, dataset);
    }
    let size = u32::try_from(dataset.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let mut stat = Vec::with_capacity(13);
    stat.push(0);
    stat.extend_from_slice(&size);
    stat.extend_from_slice(&size);
    stat.extend_from_slice(&[0; 4]);
    session.buffer = Some(dataset);
    reply(session, request, cmd::ACK_OK, stat)
}

/// `CMD_DATA_RDY` (1504, pull.md §7.4): i32 offset, i32 size out of the prepared buffer. Offsets and sizes
/// outside the buffer are clamped to it; without a prepared buffer the answer is ACK_ERROR.
fn read_buffer(
    session: &mut Session,
    model: &mut DeviceModel,
    ctx: &Context<'_>,
    request: &Packet,
) -> Reply {
    let (Some(offset), Some(size)) = (i32_at(&request.payload, 0), i32_at(&request.payload, 4))
    else {
        return error(session, request);
    };
    let Some(buffer) = session.buffer.as_ref() else {
        return error(session, request);
    };
    let start = usize::try_from(offset.max(0))
        .unwrap_or(0)
        .min(buffer.len());
    let end = start
        .saturating_add(usize::try_from(size.max(0)).unwrap_or(0))
        .min(buffer.len());
    let chunk = buffer[start..end].to_vec();
    transfer(session, model, ctx, request, &chunk)
}

/// A multi-packet answer: `PREPARE_DATA` (u32 size, u32 max packet size), the data in `CMD_DATA` packets, then
/// `CMD_ACK_OK`, all with the request's reply id (pull.md §7.4). UDP data packets carry at most 1024 bytes
/// (rule R4). On TCP the data goes in one frame (rule R3) unless `Faults::data_frame_size` splits it; split
/// frames count 0, 1, 2… in the session field as the 1008-byte devices do.
fn transfer(
    session: &Session,
    model: &mut DeviceModel,
    ctx: &Context<'_>,
    request: &Packet,
    data: &[u8],
) -> Reply {
    let (frame_size, counter_in_session) = match (ctx.transport, ctx.config.faults.data_frame_size)
    {
        (Transport::Udp, _) => (UDP_DATA_MAX, false),
        (Transport::Tcp, Some(n)) if n > 0 => (n, true),
        (Transport::Tcp, _) => (data.len().max(1), false),
    };
    let announced = match ctx.transport {
        Transport::Udp => u32::try_from(UDP_DATA_MAX).unwrap_or(u32::MAX),
        Transport::Tcp if counter_in_session => u32::try_from(frame_size).unwrap_or(u32::MAX),
        Transport::Tcp => TCP_ANNOUNCED_PACKET,
    };
    let mut prepare = Vec::with_capacity(8);
    prepare.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
    prepare.extend_from_slice(&announced.to_le_bytes());
    let mut packets = vec![Packet::new(
        cmd::PREPARE_DATA,
        session.id,
        request.reply_id,
        prepare,
    )];
    for (index, piece) in data.chunks(frame_size).enumerate() {
        let session_field = if counter_in_session {
            u16::try_from(index).unwrap_or(u16::MAX)
        } else {
            session.id
        };
        packets.push(Packet::new(
            cmd::DATA,
            session_field,
            request.reply_id,
            piece.to_vec(),
        ));
    }
    packets.push(Packet::new(
        cmd::ACK_OK,
        session.id,
        request.reply_id,
        Vec::new(),
    ));
    model.counters.bulk_bytes_sent += data.len() as u64;
    Reply {
        packets,
        bulk: true,
        after: After::Continue,
        event_ack: false,
    }
}

/// The unsolicited `CMD_REG_EVENT` packet for a live punch (pull.md §9.2): session field = `EF_ATTLOG`,
/// reply id 0. Payload size: the configured one, else 32 bytes (string PIN) on TCP and 12 bytes (u32 PIN) on
/// UDP — the sizes pyzk 0.9 and master both read (pull-simulator.md §3); 32 on UDP when the PIN is not a
/// number.
pub(crate) fn event_packet(
    config: &PullSimConfig,
    transport: Transport,
    event: &AttendanceEvent,
) -> Packet {
    let numeric_pin = event.user_id.trim().parse::<u32>().is_ok();
    let payload_len = config
        .event_payload_len
        .unwrap_or(match (transport, numeric_pin) {
            (Transport::Udp, true) => 12,
            _ => 32,
        });
    let event_code = u16::try_from(cmd::EF_ATTLOG).unwrap_or(1);
    Packet::new(
        cmd::REG_EVENT,
        event_code,
        0,
        encode_attendance_event(event, payload_len),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pull::{Profile, PullSimConfig};
    use chrono::NaiveDate;
    use zk_pull::records::{decode_attendance_dataset, decode_users_dataset, make_comm_key};

    fn now() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 3, 6)
            .and_then(|d| d.and_hms_opt(18, 0, 0))
            .unwrap()
    }

    fn setup(config: PullSimConfig) -> (Session, DeviceModel, PullSimConfig) {
        let model = DeviceModel::generate(&config, now());
        (Session::new(0x5a01), model, config)
    }

    fn small() -> PullSimConfig {
        PullSimConfig {
            users: 3,
            punches: 5,
            templates: 2,
            punches_until: Some(now()),
            ..PullSimConfig::new(Profile::Zk8)
        }
    }

    struct Device {
        session: Session,
        model: DeviceModel,
        config: PullSimConfig,
        transport: Transport,
        reply_id: u16,
    }

    impl Device {
        fn new(config: PullSimConfig, transport: Transport) -> Device {
            let (session, model, config) = setup(config);
            Device {
                session,
                model,
                config,
                transport,
                reply_id: 0,
            }
        }

        fn send(&mut self, command: u16, payload: &[u8]) -> Reply {
            let request = Packet::new(command, self.session.id, self.reply_id, payload.to_vec());
            self.reply_id += 1;
            let ctx = Context {
                config: &self.config,
                transport: self.transport,
                utc_now: now(),
            };
            handle_request(&mut self.session, &mut self.model, &ctx, &request)
        }

        fn connected(config: PullSimConfig, transport: Transport) -> Device {
            let mut device = Device::new(config, transport);
            let reply = device.send(cmd::CONNECT, &[]);
            assert_eq!(reply.packets[0].command, cmd::ACK_OK);
            device
        }
    }

    fn codes(reply: &Reply) -> Vec<u16> {
        reply.packets.iter().map(|p| p.command).collect()
    }

    #[test]
    fn connect_assigns_session_and_echoes_reply_id() {
        let mut device = Device::new(small(), Transport::Tcp);
        device.reply_id = 0;
        let reply = device.send(cmd::CONNECT, &[]);
        assert_eq!(
            reply.packets,
            vec![Packet::new(cmd::ACK_OK, 0x5a01, 0, vec![])]
        );
        let reply = device.send(cmd::GET_VERSION, &[]);
        assert_eq!(
            reply.packets,
            vec![Packet::new(
                cmd::ACK_OK,
                0x5a01,
                1,
                b"Ver 6.60 Apr 28 2015\0".to_vec()
            )]
        );
    }

    #[test]
    fn comm_key_flow_accepts_right_key_and_refuses_wrong_one() {
        let config = PullSimConfig {
            comm_key: 123_456,
            ..small()
        };
        let mut device = Device::new(config.clone(), Transport::Tcp);
        assert_eq!(
            codes(&device.send(cmd::CONNECT, &[])),
            vec![cmd::ACK_UNAUTH]
        );
        // Anything but AUTH is refused before authentication.
        assert_eq!(
            codes(&device.send(cmd::GET_FREE_SIZES, &[])),
            vec![cmd::ACK_UNAUTH]
        );
        let wrong = make_comm_key(123_457, 0x5a01, 50);
        assert_eq!(
            codes(&device.send(cmd::AUTH, &wrong)),
            vec![cmd::ACK_UNAUTH]
        );
        assert_eq!(device.model.counters.auth_failures, 1);
        let right = make_comm_key(123_456, 0x5a01, 50);
        assert_eq!(codes(&device.send(cmd::AUTH, &right)), vec![cmd::ACK_OK]);
        assert_eq!(
            codes(&device.send(cmd::GET_FREE_SIZES, &[])),
            vec![cmd::ACK_OK]
        );
    }

    #[test]
    fn options_echo_the_key_and_unknown_keys_fail() {
        let mut device = Device::connected(small(), Transport::Tcp);
        let reply = device.send(cmd::OPTIONS_RRQ, b"~SerialNumber\0");
        assert_eq!(reply.packets[0].payload, b"~SerialNumber=SIM0000000001\0");
        let reply = device.send(cmd::OPTIONS_RRQ, b"~IsABCPinEnable\0");
        assert_eq!(codes(&reply), vec![cmd::ACK_ERROR]);
        assert_eq!(
            codes(&device.send(cmd::OPTIONS_WRQ, b"SDKBuild=1")),
            vec![cmd::ACK_OK]
        );
        let reply = device.send(cmd::OPTIONS_RRQ, b"SDKBuild\0");
        assert_eq!(reply.packets[0].payload, b"SDKBuild=1\0");
    }

    #[test]
    fn unknown_codes_and_reply_codes_sent_as_commands_get_ack_unknown() {
        let mut device = Device::connected(small(), Transport::Tcp);
        for code in [cmd::ACK_ERROR, cmd::ACK_UNKNOWN, 4242] {
            assert_eq!(
                codes(&device.send(code, b"~ExtendFmt\0")),
                vec![cmd::ACK_UNKNOWN]
            );
        }
        // A client's ACK of an event gets no answer.
        let reply = device.send(cmd::ACK_OK, &[]);
        assert!(reply.packets.is_empty() && reply.event_ack);
    }

    #[test]
    fn small_users_dataset_goes_direct() {
        let mut device = Device::connected(small(), Transport::Tcp);
        let reply = device.send(cmd::DATA_WRRQ, &[1, 9, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(codes(&reply), vec![cmd::DATA]);
        let users: Vec<User> = decode_users_dataset(&reply.packets[0].payload, Some(3))
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            users,
            device.model.users.values().cloned().collect::<Vec<_>>()
        );
    }

    #[test]
    fn large_attendance_goes_through_the_buffer_in_chunks() {
        let config = PullSimConfig {
            users: 20,
            punches: 2_000,
            ..small()
        };
        let mut device = Device::connected(config, Transport::Tcp);
        let reply = device.send(cmd::DATA_WRRQ, &[1, 13, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let total: u32 = 4 + 2_000 * 40;
        let mut stat = vec![0];
        stat.extend_from_slice(&total.to_le_bytes());
        stat.extend_from_slice(&total.to_le_bytes());
        stat.extend_from_slice(&[0; 4]);
        assert_eq!(
            reply.packets,
            vec![Packet::new(cmd::ACK_OK, 0x5a01, 1, stat)]
        );
        let mut dataset = Vec::new();
        for (start, size) in [(0i32, 65_472i32), (65_472, 14_532)] {
            let mut request = start.to_le_bytes().to_vec();
            request.extend_from_slice(&size.to_le_bytes());
            let reply = device.send(cmd::DATA_RDY, &request);
            assert_eq!(
                codes(&reply),
                vec![cmd::PREPARE_DATA, cmd::DATA, cmd::ACK_OK]
            );
            let mut prepare = u32::try_from(size).unwrap().to_le_bytes().to_vec();
            prepare.extend_from_slice(&0x1_0000u32.to_le_bytes());
            assert_eq!(reply.packets[0].payload, prepare);
            assert!(reply.bulk);
            assert!(reply
                .packets
                .iter()
                .all(|p| p.reply_id == device.reply_id - 1));
            dataset.extend_from_slice(&reply.packets[1].payload);
        }
        assert_eq!(dataset, device.model.attendance_dataset());
        let records = decode_attendance_dataset(&dataset, Some(2_000));
        assert_eq!(records.len(), 2_000);
        assert_eq!(records[0].as_ref().unwrap(), &device.model.attendance[0]);
        assert_eq!(codes(&device.send(cmd::FREE_DATA, &[])), vec![cmd::ACK_OK]);
        let reply = device.send(cmd::DATA_RDY, &[0, 0, 0, 0, 16, 0, 0, 0]);
        assert_eq!(codes(&reply), vec![cmd::ACK_ERROR]);
    }

    #[test]
    fn udp_transfers_use_1024_byte_datagrams() {
        let config = PullSimConfig {
            users: 200,
            punches: 0,
            ..PullSimConfig::new(Profile::Zk6)
        };
        let mut device = Device::connected(config, Transport::Udp);
        let reply = device.send(cmd::DATA_WRRQ, &[1, 9, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(reply.packets[0].payload[1..5], 5_604u32.to_le_bytes());
        let reply = device.send(cmd::DATA_RDY, &[0, 0, 0, 0, 0, 0x40, 0, 0]);
        let sizes: Vec<usize> = reply.packets.iter().map(|p| p.payload.len()).collect();
        assert_eq!(sizes, vec![8, 1024, 1024, 1024, 1024, 1024, 484, 0]);
        assert_eq!(reply.packets[0].payload[4..], 1024u32.to_le_bytes());
    }

    #[test]
    fn split_frames_count_in_the_session_field() {
        let mut config = small();
        config.faults.data_frame_size = Some(1008);
        config.users = 40;
        let mut device = Device::connected(config, Transport::Tcp);
        device.send(cmd::DATA_WRRQ, &[1, 9, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
        let reply = device.send(cmd::DATA_RDY, &[0, 0, 0, 0, 0xc4, 0x0b, 0, 0]);
        let sessions: Vec<u16> = reply.packets.iter().map(|p| p.session_id).collect();
        assert_eq!(sessions, vec![0x5a01, 0, 1, 2, 0x5a01]);
        let sizes: Vec<usize> = reply.packets.iter().map(|p| p.payload.len()).collect();
        assert_eq!(sizes, vec![8, 1008, 1008, 868, 0]);
    }

    #[test]
    fn time_set_then_read_back() {
        let mut device = Device::connected(small(), Transport::Tcp);
        assert_eq!(
            codes(&device.send(cmd::SET_TIME, &[0xa5, 0x3a, 0xe6, 0x2f])),
            vec![cmd::ACK_OK]
        );
        let reply = device.send(cmd::GET_TIME, &[]);
        assert_eq!(reply.packets[0].payload, vec![0xa5, 0x3a, 0xe6, 0x2f]);
        // 31 February 2026 (pull.md §6.5 arithmetic) is refused.
        let february_31: u32 = (26 * 12 * 31 + 31 + 30) * 86_400;
        let reply = device.send(cmd::SET_TIME, &february_31.to_le_bytes());
        assert_eq!(codes(&reply), vec![cmd::ACK_ERROR]);
    }

    #[test]
    fn set_user_72_and_28_then_delete() {
        let mut device = Device::connected(small(), Transport::Tcp);
        let user = User {
            uid: 50,
            user_id: "990001".into(),
            name: "Conform".into(),
            privilege: 0,
            password: String::new(),
            group_id: String::new(),
            card: 12345,
        };
        let record = zk_pull::records::encode_user_72(&user);
        assert_eq!(
            codes(&device.send(cmd::USER_WRQ, &record)),
            vec![cmd::ACK_OK]
        );
        assert_eq!(device.model.users[&50], user);
        let mut short = zk_pull::records::encode_user_28(&User {
            uid: 51,
            ..user.clone()
        })
        .to_vec();
        short.insert(0, 2);
        assert_eq!(
            codes(&device.send(cmd::USER_WRQ, &short)),
            vec![cmd::ACK_OK]
        );
        assert_eq!(device.model.users[&51].user_id, "990001");
        assert_eq!(
            codes(&device.send(cmd::USER_WRQ, &[1, 2, 3])),
            vec![cmd::ACK_ERROR]
        );
        assert_eq!(
            codes(&device.send(cmd::DELETE_USER, &[50, 0])),
            vec![cmd::ACK_OK]
        );
        assert_eq!(
            codes(&device.send(cmd::DELETE_USER, &[50, 0])),
            vec![cmd::ACK_ERROR]
        );
        assert_eq!(
            codes(&device.send(cmd::DELETE_USER, &[])),
            vec![cmd::ACK_ERROR]
        );
        assert_eq!(device.model.users.len(), 4);
    }

    #[test]
    fn upload_then_save_user_and_template() {
        let mut device = Device::connected(small(), Transport::Tcp);
        let user = User {
            uid: 60,
            user_id: "60".into(),
            name: "Upload".into(),
            privilege: 0,
            password: String::new(),
            group_id: "1".into(),
            card: 0,
        };
        let mut record = vec![2];
        record.extend_from_slice(&zk_pull::records::encode_user_72(&user));
        let template = vec![7u8; 10];
        let mut table = vec![2];
        table.extend_from_slice(&60u16.to_le_bytes());
        table.push(0x13);
        table.extend_from_slice(&0u32.to_le_bytes());
        let mut blobs = 10u16.to_le_bytes().to_vec();
        blobs.extend_from_slice(&template);
        let mut buffer = Vec::new();
        for len in [record.len(), table.len(), blobs.len()] {
            buffer.extend_from_slice(&u32::try_from(len).unwrap().to_le_bytes());
        }
        buffer.extend_from_slice(&record);
        buffer.extend_from_slice(&table);
        buffer.extend_from_slice(&blobs);
        let size = u32::try_from(buffer.len()).unwrap().to_le_bytes();
        assert_eq!(
            codes(&device.send(cmd::PREPARE_DATA, &size)),
            vec![cmd::ACK_OK]
        );
        assert_eq!(codes(&device.send(cmd::DATA, &buffer)), vec![cmd::ACK_OK]);
        assert_eq!(
            codes(&device.send(cmd::SAVE_USERTEMPS, &[12, 0, 0, 0, 0, 0, 8, 0])),
            vec![cmd::ACK_OK]
        );
        assert_eq!(device.model.users[&60].name, "Upload");
        let saved = device.model.templates.iter().find(|t| t.uid == 60).unwrap();
        assert_eq!((saved.finger, saved.data.clone()), (3, template));
        // A second save without an upload fails.
        assert_eq!(
            codes(&device.send(cmd::SAVE_USERTEMPS, &[])),
            vec![cmd::ACK_ERROR]
        );
    }

    #[test]
    fn single_template_read_and_missing_one() {
        let mut device = Device::connected(small(), Transport::Tcp);
        let expected = device.model.templates[0].data.clone();
        let reply = device.send(cmd::GET_USERTEMP, &[1, 0, 0]);
        assert_eq!(
            codes(&reply),
            vec![cmd::PREPARE_DATA, cmd::DATA, cmd::ACK_OK]
        );
        assert_eq!(reply.packets[1].payload[..expected.len()], expected[..]);
        assert_eq!(reply.packets[1].payload.len(), expected.len() + 1);
        assert_eq!(
            codes(&device.send(cmd::GET_USERTEMP, &[1, 0, 9])),
            vec![cmd::ACK_ERROR]
        );
    }

    #[test]
    fn restart_and_exit_end_the_connection() {
        let mut device = Device::connected(small(), Transport::Tcp);
        assert_eq!(device.send(cmd::RESTART, &[]).after, After::Restart);
        assert_eq!(device.send(cmd::EXIT, &[]).after, After::Close);
    }

    #[test]
    fn clear_attendance_and_register_events() {
        let mut device = Device::connected(small(), Transport::Tcp);
        device.send(cmd::CLEAR_ATTLOG, &[]);
        assert_eq!(device.model.free_sizes().records, 0);
        assert!(!device.session.wants_attendance_events());
        device.send(cmd::REG_EVENT, &[1, 0, 0, 0]);
        assert!(device.session.wants_attendance_events());
        device.send(cmd::REG_EVENT, &[0, 0, 0, 0]);
        assert!(!device.session.wants_attendance_events());
    }

    #[test]
    fn event_packets_use_32_bytes_on_tcp_and_12_on_udp() {
        let config = small();
        let event = AttendanceEvent {
            user_id: "101".into(),
            time: NaiveDate::from_ymd_opt(2026, 11, 21)
                .and_then(|d| d.and_hms_opt(9, 34, 56))
                .unwrap(),
            status: 1,
            punch: 0,
        };
        // The event pyzk 0.9 accepted over UDP in samples/pull/synthetic/pyzk-0.9_udp_live-capture.hex.
        let udp = event_packet(&config, Transport::Udp, &event);
        assert_eq!(
            hex(&udp.encode()),
            "f40153b1010000006500000001001a0b15092238"
        );
        let tcp = event_packet(&config, Transport::Tcp, &event);
        assert_eq!(tcp.payload.len(), 32);
        assert_eq!(
            zk_pull::records::decode_attendance_event(&tcp.payload).unwrap(),
            event
        );
        let config = PullSimConfig {
            event_payload_len: Some(36),
            ..small()
        };
        assert_eq!(
            event_packet(&config, Transport::Udp, &event).payload.len(),
            36
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn random_requests_never_panic_and_every_reply_echoes_the_reply_id() {
        let mut rng = crate::pull::generate::SplitMix64::new(99);
        for transport in [Transport::Tcp, Transport::Udp] {
            let mut device = Device::connected(small(), transport);
            device.send(cmd::DATA_WRRQ, &[1, 13, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            for _ in 0..20_000 {
                let command = match rng.below(4) {
                    0 => u16::try_from(rng.below(2_100)).unwrap(),
                    1 => [cmd::DATA_RDY, cmd::USER_WRQ, cmd::SAVE_USERTEMPS, cmd::DATA]
                        [usize::try_from(rng.below(4)).unwrap()],
                    2 => u16::try_from(rng.below(0x1_0000)).unwrap(),
                    _ => [
                        cmd::PREPARE_DATA,
                        cmd::SET_TIME,
                        cmd::OPTIONS_WRQ,
                        cmd::GET_USERTEMP,
                    ][usize::try_from(rng.below(4)).unwrap()],
                };
                if [
                    cmd::RESTART,
                    cmd::EXIT,
                    cmd::POWEROFF,
                    cmd::CLEAR_DATA,
                    cmd::CLEAR_ATTLOG,
                ]
                .contains(&command)
                {
                    continue;
                }
                let len = usize::try_from(rng.below(120)).unwrap();
                let payload: Vec<u8> = (0..len).map(|_| rng.next_u64().to_le_bytes()[0]).collect();
                let reply = device.send(command, &payload);
                assert!(reply
                    .packets
                    .iter()
                    .all(|p| p.reply_id == device.reply_id - 1));
                assert_eq!(reply.after, After::Continue);
            }
        }
    }
}
