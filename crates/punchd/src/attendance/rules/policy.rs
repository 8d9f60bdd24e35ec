//! Punch-state policy: how a punch becomes IN, OUT, break-out or break-in (issue 7, step 4).

use serde::{Deserialize, Serialize};

use crate::domain::DeviceSn;

/// How punches are classified into IN and OUT. Chosen per site, with per-device overrides ([`PolicyChoice`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PunchStatePolicy {
    /// The terminal's state key: 0 and 4 (overtime-in) IN, 1 and 5 (overtime-out) OUT, 2 break-out, 3 break-in.
    /// A pair opened by an overtime-in counts as overtime as a whole (rules/day.rs, "Overtime").
    /// A punch without a known state alternates with the one before it (IN after an OUT or at the start).
    Device,
    /// The first punch of the working day is IN, the last OUT; punches between are kept and not counted (except
    /// break punches, when the shift takes breaks from punches). A single punch is IN, or OUT when it is nearer
    /// the shift's end than its start.
    FirstLast,
    /// Punches alternate IN, OUT, IN, OUT… in time order within the working day.
    Alternating,
    /// Classified by the shift: a punch nearer the start is an IN, nearer the end an OUT; of several INs the
    /// first counts, of several OUTs the last. Without a shift, as `first-last`.
    Schedule,
}

impl PunchStatePolicy {
    /// The name used in the CLI, the API and the store: `device`, `first-last`, `alternating`, `schedule`.
    pub fn as_str(self) -> &'static str {
        match self {
            PunchStatePolicy::Device => "device",
            PunchStatePolicy::FirstLast => "first-last",
            PunchStatePolicy::Alternating => "alternating",
            PunchStatePolicy::Schedule => "schedule",
        }
    }

    /// Parse a name written by [`PunchStatePolicy::as_str`].
    pub fn parse(s: &str) -> Option<PunchStatePolicy> {
        Some(match s {
            "device" => PunchStatePolicy::Device,
            "first-last" => PunchStatePolicy::FirstLast,
            "alternating" => PunchStatePolicy::Alternating,
            "schedule" => PunchStatePolicy::Schedule,
            _ => return None,
        })
    }
}

/// The policy of a site with per-device overrides. A working day is classified with one policy: the one of the
/// device that recorded the day's first counted punch (its override, else the site's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyChoice {
    /// The site's policy.
    pub site: PunchStatePolicy,
    /// Devices that use another policy.
    pub devices: Vec<(DeviceSn, PunchStatePolicy)>,
}

impl PolicyChoice {
    /// One policy for every device.
    pub fn site(policy: PunchStatePolicy) -> PolicyChoice {
        PolicyChoice {
            site: policy,
            devices: Vec::new(),
        }
    }

    /// The policy for punches of this device.
    pub fn for_device(&self, device_sn: &DeviceSn) -> PunchStatePolicy {
        self.devices
            .iter()
            .find(|(sn, _)| sn == device_sn)
            .map(|(_, policy)| *policy)
            .unwrap_or(self.site)
    }
}
