//! Health: online/offline from last seen and the device's own poll delay.

use chrono::{DateTime, Duration, Utc};

use crate::domain::{Device, Transport};

/// A device is online when its last contact is within three poll intervals (at least 60 s) for push devices, or
/// within three pull intervals (at least 5 min) for pull devices. Push terminals poll every `Delay` seconds
/// (push.md §6), so missing three polls in a row means something is wrong.
pub fn online_window(device: &Device) -> Duration {
    match device.transport {
        Transport::Push => Duration::seconds(i64::from(device.poll_delay_secs.max(1)) * 3)
            .max(Duration::seconds(60)),
        Transport::Tcp | Transport::Udp | Transport::Biotime => {
            let interval = i64::from(device.pull_interval_secs.unwrap_or(300));
            Duration::seconds(interval * 3).max(Duration::seconds(300))
        }
    }
}

/// Whether the device counts as online at `now`.
pub fn is_online(device: &Device, now: DateTime<Utc>) -> bool {
    device
        .last_seen
        .is_some_and(|seen| now - seen <= online_window(device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Approval, DeviceSn};

    fn device(last_seen: Option<DateTime<Utc>>, delay: u32) -> Device {
        Device {
            sn: DeviceSn::parse("A1").unwrap(),
            approval: Approval::Approved,
            transport: Transport::Push,
            alias: None,
            site: None,
            time_zone: None,
            address: None,
            comm_key: None,
            pull_interval_secs: None,
            clear_after_pull: false,
            first_seen: Utc::now(),
            last_seen,
            last_ip: None,
            firmware: None,
            push_version: None,
            language: None,
            device_type: None,
            poll_delay_secs: delay,
            info: Default::default(),
            last_error: None,
            clock_drift_secs: None,
            safe_clear: true,
        }
    }

    #[test]
    fn online_follows_the_poll_delay() {
        let now = Utc::now();
        assert!(!is_online(&device(None, 10), now));
        assert!(is_online(
            &device(Some(now - Duration::seconds(59)), 10),
            now
        ));
        assert!(!is_online(
            &device(Some(now - Duration::seconds(61)), 10),
            now
        ));
        // A slow-polling terminal (Delay=60) is allowed three polls.
        assert!(is_online(
            &device(Some(now - Duration::seconds(170)), 60),
            now
        ));
        assert!(!is_online(
            &device(Some(now - Duration::seconds(181)), 60),
            now
        ));
    }
}
