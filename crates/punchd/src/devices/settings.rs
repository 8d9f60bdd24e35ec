//! Checks of the settings an operator gives a device (CLI `devices add`/`devices set`, API `POST`/`PATCH
//! /api/v1/devices`), so a typo is refused with a clear message instead of stored and failing later.

use crate::domain::{Device, Transport};
use crate::store::DevicePatch;

/// Shortest and longest push poll delay (`Delay`, seconds) a terminal is given. 0 would make a terminal poll
/// in a tight loop; more than an hour leaves commands waiting for hours.
pub const POLL_DELAY_SECS: std::ops::RangeInclusive<u32> = 1..=3600;
/// Longest pull interval (seconds): one week. 0 means a live connection.
pub const MAX_PULL_INTERVAL_SECS: u32 = 7 * 24 * 3600;

/// A pull terminal's address: `host` or `host:port` (`[v6]:port` for IPv6), port 1–65535 (4370 when
/// omitted). Returns it trimmed.
pub fn check_address(address: &str) -> Result<String, String> {
    let a = address.trim();
    let bad = |why: &str| {
        Err(format!(
            "address {address:?} {why}; give host or host:port, e.g. 192.168.1.201:4370"
        ))
    };
    if a.is_empty() {
        return bad("is empty");
    }
    if a.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return bad("contains spaces, control characters or '/'");
    }
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, port)) => match port.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return bad("has text after the IPv6 address"),
            },
            None => return bad("has no closing ']'"),
        }
    } else if a.matches(':').count() > 1 {
        return bad("looks like an IPv6 address without brackets");
    } else {
        match a.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (a, None),
        }
    };
    if host.is_empty() {
        return bad("has no host");
    }
    if let Some(port) = port {
        match port.parse::<u32>() {
            Ok(p) if (1..=65535).contains(&p) => {}
            _ => return bad(&format!("has port {port:?}, not 1–65535")),
        }
    }
    Ok(a.to_owned())
}

/// A poll delay within [`POLL_DELAY_SECS`].
pub fn check_poll_delay(secs: u32) -> Result<u32, String> {
    if POLL_DELAY_SECS.contains(&secs) {
        Ok(secs)
    } else {
        Err(format!(
            "poll delay {secs} s is outside {}–{} s",
            POLL_DELAY_SECS.start(),
            POLL_DELAY_SECS.end()
        ))
    }
}

/// A pull interval: 0 (live) up to [`MAX_PULL_INTERVAL_SECS`].
pub fn check_pull_interval(secs: u32) -> Result<u32, String> {
    if secs <= MAX_PULL_INTERVAL_SECS {
        Ok(secs)
    } else {
        Err(format!(
            "pull interval {secs} s is over the maximum of {MAX_PULL_INTERVAL_SECS} s (one week); 0 keeps a live connection"
        ))
    }
}

/// An IANA time zone name.
pub fn check_time_zone(zone: &str) -> Result<(), String> {
    crate::config::parse_time_zone(zone)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Check a change to `device` before it is stored: each value on its own, and that pull settings (address,
/// interval, comm key, transport, clear after pull) are only given to pull terminals (push terminals register
/// themselves and cannot be turned into pull terminals or back).
pub fn check_patch(device: &Device, patch: &DevicePatch) -> Result<(), String> {
    if let Some(Some(zone)) = &patch.time_zone {
        check_time_zone(zone)?;
    }
    if let Some(secs) = patch.poll_delay_secs {
        check_poll_delay(secs)?;
    }
    if let Some(secs) = patch.pull_interval_secs {
        check_pull_interval(secs)?;
    }
    match &patch.address {
        Some(Some(address)) => {
            check_address(address)?;
        }
        Some(None) if device.transport != Transport::Push => {
            return Err(format!(
                "a pull terminal needs an address; remove {} instead (`punchd devices delete`)",
                device.sn
            ))
        }
        _ => {}
    }
    if patch.transport == Some(Transport::Push) && device.transport != Transport::Push {
        return Err(
            "a pull terminal cannot become a push terminal: push terminals register themselves"
                .into(),
        );
    }
    let pull_setting = patch.address.is_some()
        || patch.comm_key.is_some()
        || patch.pull_interval_secs.is_some()
        || patch.clear_after_pull.is_some()
        || patch.transport.is_some_and(|t| t != Transport::Push);
    if device.transport == Transport::Push && pull_setting {
        return Err(format!(
            "{} is a push terminal: address, interval, comm key, transport and clear-after-pull apply to pull \
             terminals only (register one with `punchd devices add`)",
            device.sn
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        assert_eq!(check_address(" 10.0.0.5:4370 ").unwrap(), "10.0.0.5:4370");
        assert_eq!(check_address("gate.local").unwrap(), "gate.local");
        assert_eq!(check_address("[::1]:4370").unwrap(), "[::1]:4370");
        let e = check_address("127.0.0.1:99999").unwrap_err();
        assert!(e.contains("port \"99999\", not 1–65535"), "{e}");
        assert!(check_address("127.0.0.1:0").is_err());
        assert!(check_address("127.0.0.1:").is_err());
        assert!(check_address(":4370").is_err());
        assert!(check_address("").is_err());
        assert!(check_address("a b").is_err());
        assert!(check_address("::1").is_err());
    }

    #[test]
    fn poll_delays_and_intervals_are_bounded() {
        assert!(check_poll_delay(0).is_err());
        assert_eq!(check_poll_delay(10), Ok(10));
        assert!(check_poll_delay(3601).is_err());
        assert_eq!(check_pull_interval(0), Ok(0));
        assert!(check_pull_interval(MAX_PULL_INTERVAL_SECS + 1).is_err());
    }
}
