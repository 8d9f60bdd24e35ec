//! What a terminal accepts in a user command, checked when the command is queued (so a bad field is a clear
//! `400`/CLI error at once, not a terminal refusing it minutes later or, worse, storing something else).
//!
//! Sources, per field:
//! - PIN: push firmware keeps it as a string of up to 24 characters (push.md §7.2 `PIN`, "digits on most
//!   firmware; StringPin firmware allows letters"; the 24-byte `user_id` field of the user record, pull.md §8.2).
//!   Pull terminals store it as a u32 number on ZK6 firmware and node-zklib/zkteco-js read only 9 characters on
//!   ZK8 firmware (pull.md §8.1, §8.2): 1–9 digits.
//! - Name: 24 bytes with a NUL terminator in the user record (pull.md §8.2): at most 23 bytes of UTF-8 on pull; 24
//!   characters on push (same firmware record; INFER). No TAB, CR, LF or NUL: they would split the
//!   `DATA UPDATE USERINFO` line (push.md §8.2).
//! - Privilege: 0 user, 2 enroller, 6 admin, 10 custom, 14 super admin on push (push.md §8.2 `Pri` 0/2/6/10/14);
//!   0, 2, 6, 14 on pull (pull.md §8.4, the level in bits 1–3).
//! - Password: 8 bytes in the user record (pull.md §8.2): at most 8 characters.
//! - Card: a pull terminal stores a u32 (pull.md §8.1, §8.2): empty or a decimal number up to 4294967295. Push
//!   firmware takes a decimal string or `[XXXXXXXX]` (4 bytes hex, push.md §7.2 `USER`).
//! - Group: a 7-character string on pull (pull.md §8.2 `group_id 7s`); on push any text without control
//!   characters.

use crate::domain::{CommandKind, Transport};

/// Longest PIN a push terminal takes (characters).
pub const PUSH_PIN_MAX: usize = 24;
/// Longest PIN a pull terminal takes (digits).
pub const PULL_PIN_MAX: usize = 9;

fn no_control(field: &str, value: &str) -> Result<(), String> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "{field} {value:?} contains the control character {c:?}; terminals cannot store it"
        )),
        None => Ok(()),
    }
}

/// The refusal for a terminal read through a BioTime source: it is BioTime's terminal, not ours to command.
pub fn read_through_biotime() -> String {
    "this device is read through BioTime (a terminal of a BioTime source): punchd does not send it commands; \
     manage it in BioTime"
        .into()
}

/// Check a PIN for a terminal of this transport.
///
/// # Errors
/// A readable reason naming the rule (empty, too long, not digits on pull, control characters).
pub fn check_pin(pin: &str, transport: Transport) -> Result<(), String> {
    if pin.trim().is_empty() {
        return Err("PIN is empty; a terminal needs a user id".into());
    }
    if pin.trim() != pin {
        return Err(format!("PIN {pin:?} has leading or trailing white space"));
    }
    no_control("PIN", pin)?;
    match transport {
        Transport::Push => {
            let n = pin.chars().count();
            if n > PUSH_PIN_MAX || pin.contains(['=', ' ']) {
                return Err(format!(
                    "PIN {pin:?} is not 1–{PUSH_PIN_MAX} characters without spaces or '=' (push.md §7.2)"
                ));
            }
        }
        Transport::Biotime => return Err(read_through_biotime()),
        Transport::Tcp | Transport::Udp => {
            if pin.len() > PULL_PIN_MAX || !pin.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "PIN {pin:?} is not 1–{PULL_PIN_MAX} digits, which is what a pull terminal stores (pull.md §8.1, §8.2)"
                ));
            }
        }
    }
    Ok(())
}

/// Check the fields of a user command for a terminal of this transport; other commands pass.
///
/// # Errors
/// A readable reason for the first field a terminal would not accept.
pub fn check_command(kind: &CommandKind, transport: Transport) -> Result<(), String> {
    if transport == Transport::Biotime {
        return Err(read_through_biotime());
    }
    let pull = transport != Transport::Push;
    match kind {
        CommandKind::UpsertUser {
            pin,
            name,
            privilege,
            password,
            card,
            group,
        } => {
            check_pin(pin, transport)?;
            no_control("name", name)?;
            if pull && name.len() > 23 {
                return Err(format!(
                    "name {name:?} is {} bytes; a pull terminal keeps 23 (pull.md §8.2)",
                    name.len()
                ));
            }
            if !pull && name.chars().count() > 24 {
                return Err(format!(
                    "name {name:?} is {} characters; a terminal keeps 24",
                    name.chars().count()
                ));
            }
            let privileges: &[u16] = if pull {
                &[0, 2, 6, 14]
            } else {
                &[0, 2, 6, 10, 14]
            };
            if !privileges.contains(privilege) {
                return Err(format!(
                    "privilege {privilege} is not one of {privileges:?} (0 user, 2 enroller, 6 admin{}, 14 super admin)",
                    if pull { "" } else { ", 10 custom" }
                ));
            }
            no_control("password", password)?;
            if password.chars().count() > 8 {
                return Err("password is longer than the 8 characters a terminal keeps".into());
            }
            no_control("card", card)?;
            let card = card.trim();
            if pull {
                if !card.is_empty() && card.parse::<u32>().is_err() {
                    return Err(format!(
                        "card {card:?} is not a number up to 4294967295, which is all a pull terminal stores (pull.md §8.2)"
                    ));
                }
            } else {
                let hex = card.len() == 10
                    && card.starts_with('[')
                    && card.ends_with(']')
                    && card[1..9].bytes().all(|b| b.is_ascii_hexdigit());
                if !card.is_empty() && !hex && !card.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!(
                        "card {card:?} is neither a decimal number nor [XXXXXXXX] hex (push.md §7.2)"
                    ));
                }
            }
            no_control("group", group)?;
            if pull && group.chars().count() > 7 {
                return Err(format!(
                    "group {group:?} is longer than the 7 characters a pull terminal keeps (pull.md §8.2)"
                ));
            }
            Ok(())
        }
        CommandKind::DeleteUser { pin }
        | CommandKind::EnableUser { pin }
        | CommandKind::DisableUser { pin } => check_pin(pin, transport),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(pin: &str, privilege: u16, card: &str) -> CommandKind {
        CommandKind::UpsertUser {
            pin: pin.into(),
            name: "Ann Lee".into(),
            privilege,
            password: String::new(),
            card: card.into(),
            group: "1".into(),
        }
    }

    #[test]
    fn pins_per_transport() {
        assert!(check_pin("", Transport::Push)
            .unwrap_err()
            .contains("empty"));
        assert!(check_pin(" ", Transport::Tcp)
            .unwrap_err()
            .contains("empty"));
        assert!(check_pin("A1\t", Transport::Push).is_err());
        assert!(check_pin("EMP-000123", Transport::Push).is_ok());
        assert!(check_pin(&"1".repeat(24), Transport::Push).is_ok());
        assert!(check_pin(&"1".repeat(25), Transport::Push).is_err());
        assert!(check_pin("123456789", Transport::Udp).is_ok());
        assert!(check_pin("1234567890", Transport::Tcp).is_err());
        assert!(check_pin("A1", Transport::Tcp)
            .unwrap_err()
            .contains("digits"));
    }

    #[test]
    fn user_fields() {
        assert!(check_command(&upsert("42", 0, "12345"), Transport::Tcp).is_ok());
        assert!(check_command(&upsert("42", 0, "[0A0B0C00]"), Transport::Push).is_ok());
        assert!(check_command(&upsert("42", 0, "[0A0B0C00]"), Transport::Tcp).is_err());
        assert!(check_command(&upsert("42", 0, "4294967296"), Transport::Tcp).is_err());
        assert!(check_command(&upsert("42", 10, ""), Transport::Push).is_ok());
        assert!(check_command(&upsert("42", 10, ""), Transport::Tcp).is_err());
        assert!(check_command(&upsert("42", 3, ""), Transport::Push).is_err());
        assert!(check_command(
            &CommandKind::DeleteUser { pin: String::new() },
            Transport::Push
        )
        .is_err());
        assert!(check_command(&CommandKind::Reboot, Transport::Push).is_ok());
    }
}
