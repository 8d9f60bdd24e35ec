//! Pure bytes <-> packets for the ZK binary protocol (pull.md §1, §2, §4).
//!
//! A [`Packet`] is the 8-byte header (command, checksum, session id, reply id; all u16 LE) plus a payload.
//! On UDP one datagram is one packet; on TCP each packet is preceded by an 8-byte frame header
//! ([`TCP_MAGIC`] + u32 LE length). [`decode_tcp_frame`] cuts frames out of a stream buffer with
//! tokio-util `Decoder` semantics (`Ok(None)` = need more bytes).
//!
//! This module does no IO and must not depend on `records`, `session` or `client`.

use bytes::{Buf, BytesMut};

/// The four bytes that open every TCP frame (pull.md §1.1): `50 50 82 7D`.
pub const TCP_MAGIC: [u8; 4] = [0x50, 0x50, 0x82, 0x7D];
/// Length in bytes of the packet header: command, checksum, session id, reply id (pull.md §1.2).
pub const HEADER_LEN: usize = 8;
/// Length in bytes of the TCP frame header: magic + u32 LE length (pull.md §1.1).
pub const TCP_HEADER_LEN: usize = 8;
/// Largest packet (header + payload, in bytes) [`decode_tcp_frame`] accepts before reporting
/// [`DecodeError::TooLarge`]. Real chunks are at most 65 536 bytes of data (pull.md §7.4); 1 MiB leaves room
/// for unusual firmware while stopping a garbage length from making us wait for gigabytes.
pub const MAX_PACKET_LEN: usize = 1 << 20;

/// One protocol packet (pull.md §1.2).
///
/// `session_id` also carries event codes (real-time events), the device state (`CMD_STATE_RRQ` reply) and
/// data-packet counters (multi-packet replies) where pull.md §1.2 says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Command code of a request, or reply code of a reply (see [`cmd`]).
    pub command: u16,
    /// Session id assigned by the device at connect (or an event code / state / counter, see above).
    pub session_id: u16,
    /// The client's sequence number, echoed by the device in its reply (0 in real-time events).
    pub reply_id: u16,
    /// Command-specific payload bytes after the 8-byte header.
    pub payload: Vec<u8>,
}

impl Packet {
    /// A packet with the given header fields and payload.
    pub fn new(command: u16, session_id: u16, reply_id: u16, payload: Vec<u8>) -> Packet {
        Packet {
            command,
            session_id,
            reply_id,
            payload,
        }
    }

    /// The 8-byte header with a correct checksum (pull.md §2), then the payload: one UDP datagram.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        self.write_into(&mut out);
        out
    }

    /// The TCP frame header (magic + u32 LE length of header + payload), then [`Packet::encode`].
    pub fn encode_tcp(&self) -> Vec<u8> {
        let inner_len = HEADER_LEN + self.payload.len();
        let mut out = Vec::with_capacity(TCP_HEADER_LEN + inner_len);
        out.extend_from_slice(&TCP_MAGIC);
        // A payload above 4 GiB cannot be built in practice; saturate rather than wrap.
        out.extend_from_slice(&u32::try_from(inner_len).unwrap_or(u32::MAX).to_le_bytes());
        self.write_into(&mut out);
        out
    }

    fn write_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.command.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.session_id.to_le_bytes());
        out.extend_from_slice(&self.reply_id.to_le_bytes());
        out.extend_from_slice(&self.payload);
        let sum = checksum(&out[start..]);
        out[start + 2..start + 4].copy_from_slice(&sum.to_le_bytes());
    }

    /// Decode one UDP datagram, or the inside of a TCP frame (without the frame header).
    ///
    /// The checksum is not enforced: no real client validates reply checksums (pull.md §2). Use
    /// [`decode_checked`] to learn whether it verified.
    ///
    /// # Errors
    /// [`DecodeError::Short`] when fewer than 8 bytes are given.
    pub fn decode(bytes: &[u8]) -> Result<Packet, DecodeError> {
        decode_checked(bytes).map(|(packet, _)| packet)
    }

    /// The payload as text up to the first NUL (lossy UTF-8), for logs and option replies.
    pub fn payload_text(&self) -> String {
        let end = self
            .payload
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.payload.len());
        String::from_utf8_lossy(&self.payload[..end]).into_owned()
    }
}

/// Decode one UDP datagram / the inside of a TCP frame, returning the packet and whether its checksum verified
/// (pull.md §2). A bad checksum is reported, not fatal.
///
/// # Errors
/// [`DecodeError::Short`] when fewer than 8 bytes are given.
pub fn decode_checked(bytes: &[u8]) -> Result<(Packet, bool), DecodeError> {
    let Some((header, payload)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(DecodeError::Short {
            what: "packet header",
            len: bytes.len(),
        });
    };
    let word = |i: usize| u16::from_le_bytes([header[i], header[i + 1]]);
    let packet = Packet {
        command: word(0),
        session_id: word(4),
        reply_id: word(6),
        payload: payload.to_vec(),
    };
    let got = word(2);
    let expected = checksum_parts(&[&header[..2], &[0, 0], &header[4..], payload]);
    Ok((packet, got == expected))
}

/// The 16-bit ones'-complement checksum of pull.md §2, over a packet whose checksum field (bytes 2..4) is
/// already zero: sum of LE u16 words (odd last byte as a low byte), carries folded, complemented.
pub fn checksum(packet_with_zeroed_checksum_field: &[u8]) -> u16 {
    checksum_parts(&[packet_with_zeroed_checksum_field])
}

fn checksum_parts(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    let mut pending: Option<u8> = None;
    for part in parts {
        for &byte in *part {
            match pending.take() {
                Some(low) => sum += u64::from(u16::from_le_bytes([low, byte])),
                None => pending = Some(byte),
            }
        }
    }
    if let Some(low) = pending {
        sum += u64::from(low);
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    // After folding, sum fits in 16 bits.
    !(sum as u16)
}

/// Cut one TCP frame out of a stream buffer (tokio-util `Decoder` semantics, pull.md §1.1).
///
/// Returns `Ok(None)` when more bytes are needed (nothing is consumed), `Ok(Some(packet))` after consuming
/// exactly one frame. Checksums are not enforced (see [`Packet::decode`]).
///
/// # Errors
/// [`DecodeError::BadMagic`] when the buffer does not start with [`TCP_MAGIC`] (checked as soon as the first
/// bytes arrive; the stream cannot be resynchronised, close it), [`DecodeError::BadLength`] when the declared
/// length is below 8, [`DecodeError::TooLarge`] above [`MAX_PACKET_LEN`].
pub fn decode_tcp_frame(buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
    let magic_seen = buf.len().min(TCP_MAGIC.len());
    if buf[..magic_seen] != TCP_MAGIC[..magic_seen] {
        let mut found = [0u8; 4];
        found[..magic_seen].copy_from_slice(&buf[..magic_seen]);
        return Err(DecodeError::BadMagic { found });
    }
    let Some(header) = buf.first_chunk::<TCP_HEADER_LEN>() else {
        return Ok(None);
    };
    let declared = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let len = usize::try_from(declared).unwrap_or(usize::MAX);
    if len < HEADER_LEN {
        return Err(DecodeError::BadLength { len: declared });
    }
    if len > MAX_PACKET_LEN {
        return Err(DecodeError::TooLarge {
            len,
            max: MAX_PACKET_LEN,
        });
    }
    if buf.len() < TCP_HEADER_LEN + len {
        // Reserve for the rest of this frame only; the length is bounded above.
        buf.reserve(TCP_HEADER_LEN + len - buf.len());
        return Ok(None);
    }
    buf.advance(TCP_HEADER_LEN);
    let frame = buf.split_to(len);
    Packet::decode(&frame).map(Some)
}

/// Why bytes could not be decoded as a packet or frame. "Need more bytes" is not an error (`Ok(None)`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the structure needs.
    #[error("too short for {what}: {len} bytes")]
    Short {
        /// What was being decoded.
        what: &'static str,
        /// How many bytes there were.
        len: usize,
    },
    /// A TCP frame did not start with `50 50 82 7D` (pull.md §1.1); bytes not yet received are shown as 0.
    #[error("bad tcp frame magic {found:02x?}, expected 50 50 82 7d")]
    BadMagic {
        /// The first (up to) four bytes seen.
        found: [u8; 4],
    },
    /// A TCP frame declared a length smaller than the 8-byte packet header.
    #[error("tcp frame declares {len} bytes, less than the 8-byte packet header")]
    BadLength {
        /// The declared length.
        len: u32,
    },
    /// A TCP frame declared a length above [`MAX_PACKET_LEN`].
    #[error("tcp frame declares {len} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// The declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Command and reply codes (pull.md §4), real-time event flags (pull.md §9.1) and buffered-read constants
/// (pull.md §7.2).
pub mod cmd {
    /// Read database (templates) via `DATA_WRRQ` with fct 2.
    pub const DB_RRQ: u16 = 7;
    /// Write one user record (28 or 72 bytes).
    pub const USER_WRQ: u16 = 8;
    /// Read users (via `DATA_WRRQ`, fct 5) or one template (legacy).
    pub const USERTEMP_RRQ: u16 = 9;
    /// Upload a template (old firmware).
    pub const USERTEMP_WRQ: u16 = 10;
    /// Read an option: payload `name\0`, reply `name=value\0`.
    pub const OPTIONS_RRQ: u16 = 11;
    /// Write an option: payload `name=value\0`.
    pub const OPTIONS_WRQ: u16 = 12;
    /// Read the attendance log (via `DATA_WRRQ`, fct 0; legacy: directly).
    pub const ATTLOG_RRQ: u16 = 13;
    /// Clear data; empty payload = everything, or one type byte.
    pub const CLEAR_DATA: u16 = 14;
    /// Clear the attendance log.
    pub const CLEAR_ATTLOG: u16 = 15;
    /// Delete a user: payload u16 uid.
    pub const DELETE_USER: u16 = 18;
    /// Delete a user's template: u16 uid + u8 finger.
    pub const DELETE_USERTEMP: u16 = 19;
    /// Clear administrator privileges.
    pub const CLEAR_ADMIN: u16 = 20;
    /// Read user groups (access control).
    pub const USERGRP_RRQ: u16 = 21;
    /// Write user groups (access control).
    pub const USERGRP_WRQ: u16 = 22;
    /// Read user time zones (access control).
    pub const USERTZ_RRQ: u16 = 23;
    /// Write user time zones (access control).
    pub const USERTZ_WRQ: u16 = 24;
    /// Read group time zones (access control).
    pub const GRPTZ_RRQ: u16 = 25;
    /// Write group time zones (access control).
    pub const GRPTZ_WRQ: u16 = 26;
    /// Read a time zone (access control).
    pub const TZ_RRQ: u16 = 27;
    /// Write a time zone (access control).
    pub const TZ_WRQ: u16 = 28;
    /// Read unlock combinations (access control).
    pub const ULG_RRQ: u16 = 29;
    /// Write unlock combinations (access control).
    pub const ULG_WRQ: u16 = 30;
    /// Open the door: u32 duration (pyzk: seconds × 10).
    pub const UNLOCK: u16 = 31;
    /// Clear access-control data.
    pub const CLEAR_ACC: u16 = 32;
    /// Clear the operation log.
    pub const CLEAR_OPLOG: u16 = 33;
    /// Read the operation log (via `DATA_WRRQ`).
    pub const OPLOG_RRQ: u16 = 34;
    /// Read counts and capacities (reply: 80 or 92 bytes).
    pub const GET_FREE_SIZES: u16 = 50;
    /// Clock colon on/off.
    pub const ENABLE_CLOCK: u16 = 57;
    /// Start verification mode.
    pub const STARTVERIFY: u16 = 60;
    /// Start enrolment.
    pub const STARTENROLL: u16 = 61;
    /// Cancel capture.
    pub const CANCELCAPTURE: u16 = 62;
    /// Read the device state (reply carries it in the session field).
    pub const STATE_RRQ: u16 = 64;
    /// Write a line on the LCD.
    pub const WRITE_LCD: u16 = 66;
    /// Clear the LCD.
    pub const CLEAR_LCD: u16 = 67;
    /// Read the PIN width.
    pub const GET_PINWIDTH: u16 = 69;
    /// SMS write.
    pub const SMS_WRQ: u16 = 70;
    /// SMS read.
    pub const SMS_RRQ: u16 = 71;
    /// Delete SMS.
    pub const DELETE_SMS: u16 = 72;
    /// User data write.
    pub const UDATA_WRQ: u16 = 73;
    /// Delete user data.
    pub const DELETE_UDATA: u16 = 74;
    /// Read the door state.
    pub const DOORSTATE_RRQ: u16 = 75;
    /// Write Mifare card data.
    pub const WRITE_MIFARE: u16 = 76;
    /// Empty Mifare card.
    pub const EMPTY_MIFARE: u16 = 78;
    /// Write a user's verify style.
    pub const VERIFY_WRQ: u16 = 79;
    /// Read a user's verify style.
    pub const VERIFY_RRQ: u16 = 80;
    /// Write a template from the upload buffer.
    pub const TMP_WRITE: u16 = 87;
    /// Read one user template (undocumented).
    pub const GET_USERTEMP: u16 = 88;
    /// Save uploaded users and templates (undocumented).
    pub const SAVE_USERTEMPS: u16 = 110;
    /// Checksum of the upload buffer.
    pub const CHECKSUM_BUFFER: u16 = 119;
    /// Delete a fingerprint template by user id string.
    pub const DEL_FPTMP: u16 = 134;
    /// Read the device time (reply: u32 packed time).
    pub const GET_TIME: u16 = 201;
    /// Set the device time (payload: u32 packed time).
    pub const SET_TIME: u16 = 202;
    /// Register for real-time events (payload: u32 mask); also the command of event packets.
    pub const REG_EVENT: u16 = 500;
    /// Open a session.
    pub const CONNECT: u16 = 1000;
    /// Close the session.
    pub const EXIT: u16 = 1001;
    /// Enable the keypad and sensor.
    pub const ENABLEDEVICE: u16 = 1002;
    /// Disable the keypad and sensor ("Working…").
    pub const DISABLEDEVICE: u16 = 1003;
    /// Reboot.
    pub const RESTART: u16 = 1004;
    /// Power off.
    pub const POWEROFF: u16 = 1005;
    /// Sleep.
    pub const SLEEP: u16 = 1006;
    /// Resume.
    pub const RESUME: u16 = 1007;
    /// Capture a finger.
    pub const CAPTUREFINGER: u16 = 1009;
    /// Test a template.
    pub const TEST_TEMP: u16 = 1011;
    /// Capture an image.
    pub const CAPTUREIMAGE: u16 = 1012;
    /// Commit user/template/time changes.
    pub const REFRESHDATA: u16 = 1013;
    /// Commit option writes.
    pub const REFRESHOPTION: u16 = 1014;
    /// Play a voice prompt.
    pub const TESTVOICE: u16 = 1017;
    /// Read the firmware version string.
    pub const GET_VERSION: u16 = 1100;
    /// Change speed.
    pub const CHANGE_SPEED: u16 = 1101;
    /// Authenticate with the scrambled comm key (pull.md §5).
    pub const AUTH: u16 = 1102;
    /// Announce a data transfer (u32 size [+ u32 max packet size]).
    pub const PREPARE_DATA: u16 = 1500;
    /// One data packet.
    pub const DATA: u16 = 1501;
    /// Free the device's transfer buffer.
    pub const FREE_DATA: u16 = 1502;
    /// Ask the device to prepare a dataset in its buffer (11-byte payload, pull.md §7.2).
    pub const DATA_WRRQ: u16 = 1503;
    /// Read a chunk of the prepared buffer (i32 offset, i32 size).
    pub const DATA_RDY: u16 = 1504;

    /// Reply: success.
    pub const ACK_OK: u16 = 2000;
    /// Reply: failure.
    pub const ACK_ERROR: u16 = 2001;
    /// Reply: data.
    pub const ACK_DATA: u16 = 2002;
    /// Reply: retry.
    pub const ACK_RETRY: u16 = 2003;
    /// Reply: repeat.
    pub const ACK_REPEAT: u16 = 2004;
    /// Reply: not authenticated (comm key needed or wrong).
    pub const ACK_UNAUTH: u16 = 2005;
    /// Reply: unknown command.
    pub const ACK_UNKNOWN: u16 = 0xFFFF;
    /// Reply: command error.
    pub const ACK_ERROR_CMD: u16 = 0xFFFD;
    /// Reply: initialisation error.
    pub const ACK_ERROR_INIT: u16 = 0xFFFC;
    /// Reply: data error.
    pub const ACK_ERROR_DATA: u16 = 0xFFFB;

    /// Event flag: attendance transaction (pull.md §9.1).
    pub const EF_ATTLOG: u32 = 1;
    /// Event flag: finger on sensor.
    pub const EF_FINGER: u32 = 2;
    /// Event flag: user enrolled.
    pub const EF_ENROLLUSER: u32 = 4;
    /// Event flag: finger enrolled.
    pub const EF_ENROLLFINGER: u32 = 8;
    /// Event flag: key press.
    pub const EF_BUTTON: u32 = 16;
    /// Event flag: door unlocked.
    pub const EF_UNLOCK: u32 = 32;
    /// Event flag: user verified.
    pub const EF_VERIFY: u32 = 128;
    /// Event flag: fingerprint feature score.
    pub const EF_FPFTR: u32 = 256;
    /// Event flag: alarm.
    pub const EF_ALARM: u32 = 512;

    /// `DATA_WRRQ` "fct" for users (pull.md §7.2).
    pub const FCT_USER: u32 = 5;
    /// `DATA_WRRQ` "fct" for the attendance log (0, not 1: pull.md §7.2).
    pub const FCT_ATTLOG: u32 = 0;
    /// `DATA_WRRQ` "fct" for fingerprint templates.
    pub const FCT_FINGERTMP: u32 = 2;
    /// `DATA_WRRQ` "fct" for the operation log.
    pub const FCT_OPLOG: u32 = 0;

    /// The protocol name of a command or reply code, for logs; `None` for codes pull.md §4 does not name.
    pub fn name(code: u16) -> Option<&'static str> {
        Some(match code {
            DB_RRQ => "CMD_DB_RRQ",
            USER_WRQ => "CMD_USER_WRQ",
            USERTEMP_RRQ => "CMD_USERTEMP_RRQ",
            USERTEMP_WRQ => "CMD_USERTEMP_WRQ",
            OPTIONS_RRQ => "CMD_OPTIONS_RRQ",
            OPTIONS_WRQ => "CMD_OPTIONS_WRQ",
            ATTLOG_RRQ => "CMD_ATTLOG_RRQ",
            CLEAR_DATA => "CMD_CLEAR_DATA",
            CLEAR_ATTLOG => "CMD_CLEAR_ATTLOG",
            DELETE_USER => "CMD_DELETE_USER",
            DELETE_USERTEMP => "CMD_DELETE_USERTEMP",
            CLEAR_ADMIN => "CMD_CLEAR_ADMIN",
            USERGRP_RRQ => "CMD_USERGRP_RRQ",
            USERGRP_WRQ => "CMD_USERGRP_WRQ",
            USERTZ_RRQ => "CMD_USERTZ_RRQ",
            USERTZ_WRQ => "CMD_USERTZ_WRQ",
            GRPTZ_RRQ => "CMD_GRPTZ_RRQ",
            GRPTZ_WRQ => "CMD_GRPTZ_WRQ",
            TZ_RRQ => "CMD_TZ_RRQ",
            TZ_WRQ => "CMD_TZ_WRQ",
            ULG_RRQ => "CMD_ULG_RRQ",
            ULG_WRQ => "CMD_ULG_WRQ",
            UNLOCK => "CMD_UNLOCK",
            CLEAR_ACC => "CMD_CLEAR_ACC",
            CLEAR_OPLOG => "CMD_CLEAR_OPLOG",
            OPLOG_RRQ => "CMD_OPLOG_RRQ",
            GET_FREE_SIZES => "CMD_GET_FREE_SIZES",
            ENABLE_CLOCK => "CMD_ENABLE_CLOCK",
            STARTVERIFY => "CMD_STARTVERIFY",
            STARTENROLL => "CMD_STARTENROLL",
            CANCELCAPTURE => "CMD_CANCELCAPTURE",
            STATE_RRQ => "CMD_STATE_RRQ",
            WRITE_LCD => "CMD_WRITE_LCD",
            CLEAR_LCD => "CMD_CLEAR_LCD",
            GET_PINWIDTH => "CMD_GET_PINWIDTH",
            SMS_WRQ => "CMD_SMS_WRQ",
            SMS_RRQ => "CMD_SMS_RRQ",
            DELETE_SMS => "CMD_DELETE_SMS",
            UDATA_WRQ => "CMD_UDATA_WRQ",
            DELETE_UDATA => "CMD_DELETE_UDATA",
            DOORSTATE_RRQ => "CMD_DOORSTATE_RRQ",
            WRITE_MIFARE => "CMD_WRITE_MIFARE",
            EMPTY_MIFARE => "CMD_EMPTY_MIFARE",
            VERIFY_WRQ => "CMD_VERIFY_WRQ",
            VERIFY_RRQ => "CMD_VERIFY_RRQ",
            TMP_WRITE => "CMD_TMP_WRITE",
            GET_USERTEMP => "CMD_GET_USERTEMP",
            SAVE_USERTEMPS => "CMD_SAVE_USERTEMPS",
            CHECKSUM_BUFFER => "CMD_CHECKSUM_BUFFER",
            DEL_FPTMP => "CMD_DEL_FPTMP",
            GET_TIME => "CMD_GET_TIME",
            SET_TIME => "CMD_SET_TIME",
            REG_EVENT => "CMD_REG_EVENT",
            CONNECT => "CMD_CONNECT",
            EXIT => "CMD_EXIT",
            ENABLEDEVICE => "CMD_ENABLEDEVICE",
            DISABLEDEVICE => "CMD_DISABLEDEVICE",
            RESTART => "CMD_RESTART",
            POWEROFF => "CMD_POWEROFF",
            SLEEP => "CMD_SLEEP",
            RESUME => "CMD_RESUME",
            CAPTUREFINGER => "CMD_CAPTUREFINGER",
            TEST_TEMP => "CMD_TEST_TEMP",
            CAPTUREIMAGE => "CMD_CAPTUREIMAGE",
            REFRESHDATA => "CMD_REFRESHDATA",
            REFRESHOPTION => "CMD_REFRESHOPTION",
            TESTVOICE => "CMD_TESTVOICE",
            GET_VERSION => "CMD_GET_VERSION",
            CHANGE_SPEED => "CMD_CHANGE_SPEED",
            AUTH => "CMD_AUTH",
            PREPARE_DATA => "CMD_PREPARE_DATA",
            DATA => "CMD_DATA",
            FREE_DATA => "CMD_FREE_DATA",
            DATA_WRRQ => "CMD_DATA_WRRQ",
            DATA_RDY => "CMD_DATA_RDY",
            ACK_OK => "CMD_ACK_OK",
            ACK_ERROR => "CMD_ACK_ERROR",
            ACK_DATA => "CMD_ACK_DATA",
            ACK_RETRY => "CMD_ACK_RETRY",
            ACK_REPEAT => "CMD_ACK_REPEAT",
            ACK_UNAUTH => "CMD_ACK_UNAUTH",
            ACK_UNKNOWN => "CMD_ACK_UNKNOWN",
            ACK_ERROR_CMD => "CMD_ACK_ERROR_CMD",
            ACK_ERROR_INIT => "CMD_ACK_ERROR_INIT",
            ACK_ERROR_DATA => "CMD_ACK_ERROR_DATA",
            _ => return None,
        })
    }

    /// The 11-byte `DATA_WRRQ` payload asking for the dataset of `command` with `fct` (pull.md §7.2):
    /// `01`, u16 command, i32 fct, i32 0.
    pub fn data_wrrq_payload(command: u16, fct: u32) -> Vec<u8> {
        let mut payload = Vec::with_capacity(11);
        payload.push(1);
        payload.extend_from_slice(&command.to_le_bytes());
        payload.extend_from_slice(&fct.to_le_bytes());
        payload.extend_from_slice(&0u32.to_le_bytes());
        payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn checksum_vectors_from_pull_md() {
        // ZKFaceVersion option read: checksum field 5a17 (LE) = 0x175a.
        let mut bytes = hex("0b005a17f38d03005a4b4661636556657273696f6e00");
        bytes[2] = 0;
        bytes[3] = 0;
        assert_eq!(checksum(&bytes), 0x175a);
        // Odd length: the last byte is a low byte.
        let mut bytes = hex("d007296af38d0a0009");
        bytes[2] = 0;
        bytes[3] = 0;
        assert_eq!(checksum(&bytes), 0x6a29);
        assert_eq!(checksum(&hex("e803000000000000")), 0xfc17);
    }

    #[test]
    fn connect_encodes_like_pyzk() {
        let packet = Packet::new(cmd::CONNECT, 0, 0, vec![]);
        assert_eq!(packet.encode(), hex("e80317fc00000000"));
        assert_eq!(packet.encode_tcp(), hex("5050827d08000000e80317fc00000000"));
    }

    #[test]
    fn decode_reports_bad_checksum_without_failing() {
        let (packet, ok) = decode_checked(&hex("e80318fc00000000")).unwrap();
        assert!(!ok);
        assert_eq!(packet, Packet::new(cmd::CONNECT, 0, 0, vec![]));
        assert_eq!(
            Packet::decode(&hex("e803")),
            Err(DecodeError::Short {
                what: "packet header",
                len: 2
            })
        );
    }

    #[test]
    fn tcp_frames_split_and_coalesced() {
        let a = Packet::new(cmd::ACK_OK, 0x5a01, 7, b"hello".to_vec());
        let b = Packet::new(cmd::DATA, 3, 7, vec![9; 300]);
        let mut stream = a.encode_tcp();
        stream.extend(b.encode_tcp());
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for byte in stream {
            buf.extend_from_slice(&[byte]);
            while let Some(p) = decode_tcp_frame(&mut buf).unwrap() {
                out.push(p);
            }
        }
        assert_eq!(out, vec![a, b]);
        assert!(buf.is_empty());
    }

    #[test]
    fn tcp_frame_errors() {
        let mut buf = BytesMut::from(&b"GET "[..]);
        assert_eq!(
            decode_tcp_frame(&mut buf),
            Err(DecodeError::BadMagic { found: *b"GET " })
        );
        let mut buf = BytesMut::from(&hex("5050827d04000000")[..]);
        assert_eq!(
            decode_tcp_frame(&mut buf),
            Err(DecodeError::BadLength { len: 4 })
        );
        let mut buf = BytesMut::from(&hex("5050827dffffffff")[..]);
        assert!(matches!(
            decode_tcp_frame(&mut buf),
            Err(DecodeError::TooLarge { .. })
        ));
        let mut buf = BytesMut::from(&hex("5050")[..]);
        assert_eq!(decode_tcp_frame(&mut buf), Ok(None));
    }

    #[test]
    fn data_wrrq_payloads_match_pull_md() {
        assert_eq!(
            cmd::data_wrrq_payload(cmd::USERTEMP_RRQ, cmd::FCT_USER),
            hex("0109000500000000000000")
        );
        assert_eq!(
            cmd::data_wrrq_payload(cmd::ATTLOG_RRQ, cmd::FCT_ATTLOG),
            hex("010d000000000000000000")
        );
        assert_eq!(cmd::name(1503), Some("CMD_DATA_WRRQ"));
        assert_eq!(cmd::name(4242), None);
    }
}
