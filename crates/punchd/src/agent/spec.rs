//! `--device SN@host[:port][,comm_key=K][,interval=N][,udp][,tz=ZONE]`: a pull terminal of the agent given on
//! the command line, read into the same [`DeviceConfig`] a `[[devices]]` entry of the settings file gives. Pure.

use crate::config::DeviceConfig;

/// Why a `--device` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--device {spec:?}: {reason} (expected SN@host[:port][,comm_key=K][,interval=SECS][,udp][,tz=ZONE])")]
pub struct InvalidDeviceSpec {
    /// The value as given.
    pub spec: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Parse one `--device` value. Defaults: TCP, comm key 0, a pull every 60 s (an agent is there to be close to
/// its terminals), the agent's default zone.
///
/// Errors: no `@`, an empty SN or address, an unknown option or a value that is not a number.
pub fn parse_device_spec(spec: &str) -> Result<DeviceConfig, InvalidDeviceSpec> {
    let bad = |reason: &str| InvalidDeviceSpec {
        spec: spec.to_owned(),
        reason: reason.to_owned(),
    };
    let (sn, rest) = spec
        .trim()
        .split_once('@')
        .ok_or_else(|| bad("no @ between the SN and the address"))?;
    let mut parts = rest.split(',');
    let address = parts.next().unwrap_or("").trim();
    if sn.trim().is_empty() {
        return Err(bad("the SN is empty"));
    }
    if address.is_empty() {
        return Err(bad("the address is empty"));
    }
    let mut device = DeviceConfig {
        sn: sn.trim().to_owned(),
        address: address.to_owned(),
        transport: None,
        comm_key: 0,
        interval_secs: Some(60),
        clear_after_pull: false,
        time_zone: None,
        alias: None,
        site: None,
    };
    for option in parts {
        let option = option.trim();
        let (key, value) = option.split_once('=').unwrap_or((option, ""));
        match key {
            "comm_key" => {
                device.comm_key = value
                    .parse()
                    .map_err(|_| bad(&format!("comm_key {value:?} is not a number")))?
            }
            "interval" => {
                device.interval_secs =
                    Some(value.parse().map_err(|_| {
                        bad(&format!("interval {value:?} is not a number of seconds"))
                    })?)
            }
            "udp" if value.is_empty() => device.transport = Some("udp".into()),
            "tcp" if value.is_empty() => device.transport = Some("tcp".into()),
            "tz" if !value.is_empty() => device.time_zone = Some(value.to_owned()),
            "" => {}
            other => return Err(bad(&format!("unknown option {other:?}"))),
        }
    }
    Ok(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_spec_gives_address_and_options() {
        let d = parse_device_spec(
            "CQZ7224460025@192.168.1.201:4370,comm_key=123,interval=5,tz=Africa/Lagos",
        )
        .unwrap();
        assert_eq!(d.sn, "CQZ7224460025");
        assert_eq!(d.address, "192.168.1.201:4370");
        assert_eq!(d.comm_key, 123);
        assert_eq!(d.interval_secs, Some(5));
        assert_eq!(d.time_zone.as_deref(), Some("Africa/Lagos"));
        assert_eq!(d.transport, None);
        assert!(!d.clear_after_pull);
        let d = parse_device_spec("TX1@gate.local,udp").unwrap();
        assert_eq!(
            (d.address.as_str(), d.transport.as_deref()),
            ("gate.local", Some("udp"))
        );
        assert_eq!((d.comm_key, d.interval_secs), (0, Some(60)));
    }

    #[test]
    fn a_bad_device_spec_says_what_is_wrong() {
        let reason = |s: &str| parse_device_spec(s).unwrap_err().reason;
        assert_eq!(
            reason("192.168.1.201"),
            "no @ between the SN and the address"
        );
        assert_eq!(reason("@10.0.0.1"), "the SN is empty");
        assert_eq!(reason("TX1@"), "the address is empty");
        assert_eq!(reason("TX1@h,comm_key=x"), "comm_key \"x\" is not a number");
        assert_eq!(reason("TX1@h,clear"), "unknown option \"clear\"");
    }
}
