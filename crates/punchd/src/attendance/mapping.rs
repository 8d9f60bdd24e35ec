//! PIN → employee: explicit mappings per device or site, and the self-mapping convention (PIN = employee code,
//! Frappe HR's `attendance_device_id`).
//!
//! A punch's employee is resolved at read time, every time, from the mappings as they are now: mapping a PIN makes
//! its stored punches count at once (nothing is marked or copied), and removing a mapping puts them back into the
//! unmapped queue. Order: a device mapping, then a mapping of the device's site, then an employee whose code is the
//! PIN and whose site is the device's site (or who has no site). A PIN that resolves to nobody is **unmapped**.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use rustc_hash::FxHashMap as HashMap;

use crate::domain::Device;
use crate::store::attendance::{Employee, PinMapping, PinSeen, Scope};

/// The resolver: built once per computation from the store's mappings, employees and devices. Its maps hash with
/// FxHash, not SipHash: a month resolves about a million punches, and the keys (SNs, PINs, codes) come from the
/// operator's own data, so lookups by a terminal's PIN cannot grow them.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    /// device SN → PIN → employee (nested, so a lookup allocates nothing).
    by_device: HashMap<String, HashMap<String, String>>,
    /// site → PIN → employee.
    by_site: HashMap<String, HashMap<String, String>>,
    employee_site: HashMap<String, Option<String>>,
    device_site: HashMap<String, Option<String>>,
}

impl Resolver {
    /// Build from the current facts.
    pub fn new(mappings: &[PinMapping], employees: &[Employee], devices: &[Device]) -> Resolver {
        let mut r = Resolver::default();
        for m in mappings {
            let map = match m.scope {
                Scope::Device => &mut r.by_device,
                Scope::Site => &mut r.by_site,
            };
            map.entry(m.scope_key.clone())
                .or_default()
                .insert(m.pin.clone(), m.employee_code.clone());
        }
        for e in employees {
            r.employee_site.insert(e.code.clone(), e.site.clone());
        }
        for d in devices {
            r.device_site
                .insert(d.sn.as_str().to_owned(), d.site.clone());
        }
        r
    }

    /// The employee a PIN on a device means, if any.
    pub fn resolve(&self, device_sn: &str, pin: &str) -> Option<&str> {
        if let Some(e) = self.by_device.get(device_sn).and_then(|m| m.get(pin)) {
            return Some(e);
        }
        let site = self.device_site.get(device_sn).and_then(Option::as_ref);
        if let Some(e) = site
            .and_then(|s| self.by_site.get(s))
            .and_then(|m| m.get(pin))
        {
            return Some(e);
        }
        match self.employee_site.get_key_value(pin) {
            Some((code, None)) => Some(code),
            Some((code, Some(esite))) if Some(esite) == site => Some(code),
            _ => None,
        }
    }
}

/// One line of the unmapped queue: a PIN on a device that means nobody yet. Its punches are kept and count as soon
/// as it is mapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Unmapped {
    /// The device SN.
    pub device_sn: String,
    /// The device's site, if it has one.
    pub site: Option<String>,
    /// The PIN.
    pub pin: String,
    /// How many punches wait.
    pub count: u64,
    /// First punch (UTC).
    pub first_seen: DateTime<Utc>,
    /// Last punch (UTC).
    pub last_seen: DateTime<Utc>,
}

/// The unmapped queue from the punches held per (device, PIN).
pub fn unmapped(resolver: &Resolver, seen: &[PinSeen]) -> Vec<Unmapped> {
    seen.iter()
        .filter(|s| resolver.resolve(s.device_sn.as_str(), &s.pin).is_none())
        .map(|s| Unmapped {
            device_sn: s.device_sn.as_str().to_owned(),
            site: resolver
                .device_site
                .get(s.device_sn.as_str())
                .cloned()
                .flatten(),
            pin: s.pin.clone(),
            count: s.count,
            first_seen: s.first_seen,
            last_seen: s.last_seen,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Approval, DeviceSn, Transport};
    use crate::store::attendance::EmployeeStatus;

    fn device(sn: &str, site: Option<&str>) -> Device {
        Device {
            sn: DeviceSn::parse(sn).unwrap(),
            approval: Approval::Approved,
            transport: Transport::Push,
            alias: None,
            site: site.map(str::to_owned),
            time_zone: None,
            address: None,
            comm_key: None,
            pull_interval_secs: None,
            clear_after_pull: false,
            first_seen: Utc::now(),
            last_seen: None,
            last_ip: None,
            firmware: None,
            push_version: None,
            language: None,
            device_type: None,
            poll_delay_secs: 10,
            info: Default::default(),
            last_error: None,
            clock_drift_secs: None,
            safe_clear: true,
        }
    }

    fn employee(code: &str, site: Option<&str>) -> Employee {
        Employee {
            code: code.into(),
            name: code.into(),
            status: EmployeeStatus::Active,
            joined_on: None,
            left_on: None,
            site: site.map(str::to_owned),
            department: None,
            default_shift: None,
        }
    }

    #[test]
    fn device_mapping_beats_site_mapping_beats_the_pin_as_code_on_its_own_site() {
        let map = |scope, key: &str, pin: &str, e: &str| PinMapping {
            scope,
            scope_key: key.into(),
            pin: pin.into(),
            employee_code: e.into(),
        };
        let r = Resolver::new(
            &[
                map(Scope::Site, "BR", "7", "B7"),
                map(Scope::Device, "BR2", "7", "X7"),
            ],
            &[
                employee("7", Some("HQ")),
                employee("B7", Some("BR")),
                employee("X7", Some("BR")),
                employee("9", None),
            ],
            &[
                device("HQ1", Some("HQ")),
                device("BR1", Some("BR")),
                device("BR2", Some("BR")),
                device("LOOSE", None),
            ],
        );
        assert_eq!(r.resolve("HQ1", "7"), Some("7"));
        assert_eq!(r.resolve("BR1", "7"), Some("B7"));
        assert_eq!(r.resolve("BR2", "7"), Some("X7"));
        // PIN 7 = employee 7 only on 7's site; an employee without a site maps itself anywhere.
        assert_eq!(r.resolve("LOOSE", "7"), None);
        assert_eq!(r.resolve("BR1", "9"), Some("9"));
        assert_eq!(r.resolve("HQ1", "B7"), None);
        assert_eq!(r.resolve("UNKNOWN", "8"), None);
    }
}
