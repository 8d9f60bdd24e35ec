//! The device model: what a terminal stores (users, attendance log, fingerprint templates, options, clock
//! offset, enabled flag) and the datasets it serves, encoded with `zk_pull::records`.
//!
//! Pure: the current time is passed in, nothing here touches sockets. Must not depend on the transports.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDateTime, Timelike};
use zk_pull::records::{
    decode_user_28, decode_user_72, encode_attendance_dataset, encode_template, encode_user_28,
    encode_user_72, encode_users_dataset, Attendance, FreeSizes, Template, User, UserLayout,
    PRIVILEGE_DISABLED,
};

use super::generate::{self, SplitMix64};
use super::{Counters, Profile, PullSimConfig};

/// User capacity reported in free sizes (a typical TFT terminal).
const USER_CAPACITY: u32 = 10_000;
/// Fingerprint template capacity.
const FINGER_CAPACITY: u32 = 10_000;
/// Face capacity (face block of the free-sizes reply).
const FACE_CAPACITY: u32 = 3_000;

/// A terminal's stored data and state.
#[derive(Debug, Clone)]
pub(crate) struct DeviceModel {
    pub(crate) profile: Profile,
    /// Users by uid (the device's internal index), so writes replace and reads come out in uid order.
    pub(crate) users: BTreeMap<u16, User>,
    /// The attendance log, oldest first, as the device stores it.
    pub(crate) attendance: Vec<Attendance>,
    pub(crate) templates: Vec<Template>,
    /// Option name → value, as `CMD_OPTIONS_RRQ` serves them (pull.md §6.1).
    pub(crate) options: BTreeMap<String, String>,
    pub(crate) firmware: String,
    /// Attendance capacity: the larger of 100 000 and twice the generated log, so "records available" stays
    /// positive.
    pub(crate) record_capacity: u32,
    /// Device wall-clock time minus the host's UTC time.
    pub(crate) clock_offset: Duration,
    /// `CMD_DISABLEDEVICE` clears it, `CMD_ENABLEDEVICE` sets it.
    pub(crate) enabled: bool,
    pub(crate) counters: Counters,
}

/// Which part of the data `CMD_CLEAR_DATA` clears (pull.md §4: optional 1-byte type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClearKind {
    Everything,
    Attendance,
    Templates,
    OperationLog,
    Users,
}

fn seconds_only(t: NaiveDateTime) -> NaiveDateTime {
    t.with_nanosecond(0).unwrap_or(t)
}

impl DeviceModel {
    /// Build the model `config` describes, with data generated from `config.seed`. `utc_now` places the log
    /// when `config.punches_until` is not set.
    pub(crate) fn generate(config: &PullSimConfig, utc_now: NaiveDateTime) -> DeviceModel {
        let mut rng = SplitMix64::new(config.seed);
        let user_count = u16::try_from(config.users.min(usize::from(u16::MAX - 1))).unwrap_or(0);
        let users = generate::users(user_count, &mut rng);
        let until = seconds_only(
            config
                .punches_until
                .unwrap_or(utc_now + config.clock_offset),
        );
        let attendance = generate::attendance(config.punches, &users, until, &mut rng);
        let templates = generate::templates(config.templates, &users, &mut rng);
        let record_capacity =
            u32::try_from(config.punches.saturating_mul(2).max(100_000)).unwrap_or(u32::MAX);
        let mut model = DeviceModel {
            profile: config.profile,
            users: BTreeMap::new(),
            attendance: Vec::with_capacity(attendance.len()),
            templates,
            options: BTreeMap::new(),
            firmware: config.firmware.clone(),
            record_capacity,
            clock_offset: config.clock_offset,
            enabled: true,
            counters: Counters::default(),
        };
        for user in users {
            model.put_user(user);
        }
        for punch in attendance {
            model.add_punch(punch);
        }
        model.options = default_options(config);
        model
    }

    /// The device's wall-clock time now.
    pub(crate) fn device_time(&self, utc_now: NaiveDateTime) -> NaiveDateTime {
        seconds_only(utc_now + self.clock_offset)
    }

    /// Set the device clock (`CMD_SET_TIME`): later reads return `t` plus the time elapsed since.
    pub(crate) fn set_device_time(&mut self, t: NaiveDateTime, utc_now: NaiveDateTime) {
        self.clock_offset = t - seconds_only(utc_now);
    }

    /// Store `user` (replacing the user with the same uid) as the device would store it: through the record
    /// layout of the profile, so the model holds exactly what a client will read back (names cut to the field,
    /// PINs as numbers on 28-byte firmware, …).
    pub(crate) fn put_user(&mut self, user: User) {
        let stored = match self.profile.user_layout() {
            UserLayout::Size28 => decode_user_28(&encode_user_28(&user)),
            UserLayout::Size72 => decode_user_72(&encode_user_72(&user)),
        };
        // Decoding our own encoding cannot fail; keep the given user if it somehow did.
        let stored = stored.unwrap_or(user);
        self.users.insert(stored.uid, stored);
    }

    /// Delete a user and their templates; false when no user has this uid.
    pub(crate) fn delete_user(&mut self, uid: u16) -> bool {
        let existed = self.users.remove(&uid).is_some();
        if existed {
            self.templates.retain(|t| t.uid != uid);
        }
        existed
    }

    /// Append a punch to the attendance log (time cut to whole seconds, as the packed format stores it).
    pub(crate) fn add_punch(&mut self, mut punch: Attendance) {
        punch.time = seconds_only(punch.time);
        self.attendance.push(punch);
    }

    /// The uid of the user with this PIN, if any.
    pub(crate) fn uid_of(&self, user_id: &str) -> Option<u16> {
        self.users
            .values()
            .find(|u| u.user_id == user_id)
            .map(|u| u.uid)
    }

    pub(crate) fn clear(&mut self, kind: ClearKind) {
        match kind {
            ClearKind::Everything => {
                self.users.clear();
                self.attendance.clear();
                self.templates.clear();
            }
            ClearKind::Attendance => self.attendance.clear(),
            ClearKind::Templates => self.templates.clear(),
            ClearKind::OperationLog => {}
            ClearKind::Users => {
                self.users.clear();
                self.templates.clear();
            }
        }
    }

    /// `CMD_CLEAR_ADMIN`: every user becomes a normal user (the disabled bit is kept).
    pub(crate) fn clear_admins(&mut self) {
        for user in self.users.values_mut() {
            user.privilege &= PRIVILEGE_DISABLED;
        }
    }

    /// The users dataset (u32 total + records, pull.md §7.5) in the profile's layout.
    pub(crate) fn users_dataset(&self) -> Vec<u8> {
        let users: Vec<User> = self.users.values().cloned().collect();
        encode_users_dataset(&users, self.profile.user_layout())
    }

    /// The attendance dataset in the profile's layout.
    pub(crate) fn attendance_dataset(&self) -> Vec<u8> {
        encode_attendance_dataset(&self.attendance, self.profile.attendance_layout())
    }

    /// The templates dataset (pull.md §8.6): u32 total, then entries.
    pub(crate) fn templates_dataset(&self) -> Vec<u8> {
        let entries: Vec<u8> = self.templates.iter().flat_map(encode_template).collect();
        let mut out = Vec::with_capacity(4 + entries.len());
        out.extend_from_slice(
            &u32::try_from(entries.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        out.extend_from_slice(&entries);
        out
    }

    /// The free-sizes reply (pull.md §6.4). Counts equal the dataset record counts (pyzk derives record sizes
    /// from them).
    pub(crate) fn free_sizes(&self) -> FreeSizes {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let users = count(self.users.len());
        let fingers = count(self.templates.len());
        let records = count(self.attendance.len());
        let face_block = self.profile.free_sizes_face_block();
        FreeSizes {
            users,
            fingers,
            records,
            oplogs: 0,
            admins: count(self.users.values().filter(|u| u.privilege > 1).count()),
            passwords: count(
                self.users
                    .values()
                    .filter(|u| !u.password.is_empty())
                    .count(),
            ),
            finger_capacity: FINGER_CAPACITY,
            user_capacity: USER_CAPACITY,
            record_capacity: self.record_capacity,
            fingers_available: FINGER_CAPACITY.saturating_sub(fingers),
            users_available: USER_CAPACITY.saturating_sub(users),
            records_available: self.record_capacity.saturating_sub(records),
            faces: face_block.then_some(0),
            face_capacity: face_block.then_some(FACE_CAPACITY),
        }
    }
}

/// The options a terminal of this profile answers (pull-simulator.md §3: every key pyzk reads, plus a few the
/// vendor SDK and zkteco-js read).
fn default_options(config: &PullSimConfig) -> BTreeMap<String, String> {
    let tft = config.profile.user_layout() == UserLayout::Size72;
    let flag = |on: bool| if on { "1" } else { "0" }.to_owned();
    let mut options = BTreeMap::new();
    let mut set = |key: &str, value: String| {
        options.insert(key.to_owned(), value);
    };
    set("~SerialNumber", config.serial_number.clone());
    set("~Platform", config.platform.clone());
    set("~DeviceName", config.device_name.clone());
    set("MAC", config.mac.clone());
    set("~ZKFPVersion", "10".to_owned());
    set("ZKFaceVersion", "0".to_owned());
    set("FaceFunOn", "0".to_owned());
    set("~ExtendFmt", flag(tft));
    set("~UserExtFmt", flag(tft));
    set("CompatOldFirmware", "0".to_owned());
    set("IPAddress", "127.0.0.1".to_owned());
    set("NetMask", "255.255.255.0".to_owned());
    set("GATEIPAddress", "0.0.0.0".to_owned());
    set("~OS", "1".to_owned());
    set("~SSR", "1".to_owned());
    set("~PIN2Width", "9".to_owned());
    set("~OEMVendor", "punchd simulator".to_owned());
    set("~ProductTime", "2020-01-01 00:00:00".to_owned());
    set("WorkCode", "0".to_owned());
    set("ExtendOPLog", "1".to_owned());
    set("TCPPort", "4370".to_owned());
    set("UDPPort", "4370".to_owned());
    options
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn t(h: u32, m: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 3, 6)
            .and_then(|d| d.and_hms_opt(h, m, s))
            .unwrap()
    }

    fn config(profile: Profile) -> PullSimConfig {
        PullSimConfig {
            users: 5,
            punches: 40,
            templates: 3,
            punches_until: Some(t(18, 0, 0)),
            ..PullSimConfig::new(profile)
        }
    }

    #[test]
    fn free_sizes_counts_match_datasets() {
        let model = DeviceModel::generate(&config(Profile::Zk8), t(18, 0, 0));
        let sizes = model.free_sizes();
        assert_eq!((sizes.users, sizes.records, sizes.fingers), (5, 40, 3));
        assert_eq!(sizes.admins, 1);
        assert_eq!(model.users_dataset().len(), 4 + 5 * 72);
        assert_eq!(model.attendance_dataset().len(), 4 + 40 * 40);
        assert_eq!(sizes.encode(true).len(), 92);
        let zk6 = DeviceModel::generate(&config(Profile::Zk6), t(18, 0, 0));
        assert_eq!(zk6.users_dataset().len(), 4 + 5 * 28);
        assert_eq!(zk6.attendance_dataset().len(), 4 + 40 * 16);
        assert_eq!(zk6.free_sizes().faces, None);
    }

    #[test]
    fn put_user_stores_what_the_layout_keeps() {
        let mut model = DeviceModel::generate(&config(Profile::Zk6), t(18, 0, 0));
        model.put_user(User {
            uid: 9,
            user_id: "000123".to_owned(),
            name: "Maximiliana".to_owned(),
            privilege: 14,
            password: "123456".to_owned(),
            group_id: "2".to_owned(),
            card: 77,
        });
        let stored = &model.users[&9];
        // 28-byte firmware keeps the PIN as a number, 8 bytes of name and 5 of password.
        assert_eq!(stored.user_id, "123");
        assert_eq!(stored.name, "Maximili");
        assert_eq!(stored.password, "12345");
        assert_eq!(stored.group_id, "2");
        assert_eq!(model.uid_of("123"), Some(9));
    }

    #[test]
    fn delete_user_removes_templates_and_reports_missing() {
        let mut model = DeviceModel::generate(&config(Profile::Zk8), t(18, 0, 0));
        assert!(model.templates.iter().any(|t| t.uid == 1));
        assert!(model.delete_user(1));
        assert!(!model.templates.iter().any(|t| t.uid == 1));
        assert!(!model.delete_user(1));
        assert_eq!(model.users.len(), 4);
    }

    #[test]
    fn clock_offset_follows_set_time() {
        let mut model = DeviceModel::generate(&config(Profile::Zk8), t(18, 0, 0));
        assert_eq!(model.device_time(t(10, 0, 0)), t(10, 0, 0));
        model.set_device_time(t(8, 30, 0), t(10, 0, 0));
        assert_eq!(model.device_time(t(10, 0, 5)), t(8, 30, 5));
    }

    #[test]
    fn templates_dataset_is_prefixed_entries() {
        let model = DeviceModel::generate(&config(Profile::Zk8), t(18, 0, 0));
        let dataset = model.templates_dataset();
        let total: usize = model.templates.iter().map(|t| t.data.len() + 6).sum();
        assert_eq!(dataset[..4], u32::try_from(total).unwrap().to_le_bytes());
        assert_eq!(dataset.len(), 4 + total);
        let decoded = zk_pull::records::decode_templates_dataset(&dataset);
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[0].as_ref().unwrap(), &model.templates[0]);
    }
}
