//! Deterministic sample data for the simulated terminal: users 1..N with names, an attendance log spread over
//! recent working days with realistic punch states and verify modes, and fingerprint templates.
//!
//! Everything is a pure function of the seed and the requested sizes (a small SplitMix64 generator, no `rand`
//! dependency), so a test can rebuild the exact model the simulator serves. Must not depend on the transport.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Weekday};
use zk_pull::records::{Attendance, Template, User, PRIVILEGE_ADMIN, PRIVILEGE_USER};

/// SplitMix64: tiny, fast, and good enough for sample data (not for anything secret).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (0 when `bound` is 0). The modulo bias is irrelevant for sample data.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    /// True with probability `percent` / 100.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let len = u64::try_from(items.len()).unwrap_or(u64::MAX);
        let index = usize::try_from(self.below(len)).unwrap_or(0);
        items.get(index).copied().unwrap_or("")
    }
}

const FIRST_NAMES: &[&str] = &[
    "Amina", "Bruno", "Chen", "Dara", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemi",
    "Luis", "Maya", "Nikos", "Olga", "Pavel", "Rosa", "Sami", "Tariq", "Uma", "Vera", "Wanda",
    "Yusuf", "Zoe",
];

const LAST_NAMES: &[&str] = &[
    "Okafor", "Silva", "Nguyen", "Kowalski", "Haddad", "Moreau", "Tanaka", "Novak", "Ibrahim",
    "Larsen", "Costa", "Petrov", "Mensah", "Garcia", "Fischer", "Rossi", "Kaya", "Dubois",
];

/// Users 1..=`count`: uid = n, PIN = n as decimal text (what pyzk assigns by default), a name from a fixed list,
/// uid 1 a super administrator, every tenth user a password, every third a card.
pub(crate) fn users(count: u16, rng: &mut SplitMix64) -> Vec<User> {
    (1..=count)
        .map(|uid| {
            let name = format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES));
            let password = if uid % 10 == 0 {
                format!("{:04}", rng.below(10_000))
            } else {
                String::new()
            };
            let card = if uid % 3 == 0 {
                // Eight-digit EM card numbers.
                u32::try_from(10_000_000 + rng.below(89_999_999)).unwrap_or(0)
            } else {
                0
            };
            User {
                uid,
                user_id: uid.to_string(),
                name,
                privilege: if uid == 1 {
                    PRIVILEGE_ADMIN
                } else {
                    PRIVILEGE_USER
                },
                password,
                group_id: String::new(),
                card,
            }
        })
        .collect()
}

/// Verify modes with weights: fingerprint 1, face 15, card 2, password 0 (pull.md §8.5).
fn verify_mode(rng: &mut SplitMix64) -> u8 {
    match rng.below(100) {
        0..=59 => 1,
        60..=84 => 15,
        85..=94 => 2,
        _ => 0,
    }
}

fn at(day: NaiveDate, minutes_after_midnight: u64, second: u64) -> Option<NaiveDateTime> {
    let hour = u32::try_from(minutes_after_midnight / 60).ok()?;
    let minute = u32::try_from(minutes_after_midnight % 60).ok()?;
    day.and_hms_opt(hour.min(23), minute, u32::try_from(second % 60).ok()?)
}

/// One working day of punches for `users` (sorted by time): most people check in around 8:00 and out around
/// 17:00; some take a lunch break (break-out 2 / break-in 3); a few do overtime (4 / 5).
fn day_punches(day: NaiveDate, users: &[User], rng: &mut SplitMix64) -> Vec<Attendance> {
    let mut punches = Vec::new();
    for user in users {
        if !rng.chance(85) {
            continue;
        }
        let mut push = |minutes: u64, punch: u8, rng: &mut SplitMix64| {
            let second = rng.below(60);
            if let Some(time) = at(day, minutes, second) {
                punches.push(Attendance {
                    uid: user.uid,
                    user_id: user.user_id.clone(),
                    time,
                    status: verify_mode(rng),
                    punch,
                });
            }
        };
        let check_in = 7 * 60 + 15 + rng.below(120);
        push(check_in, 0, rng);
        if rng.chance(40) {
            let break_out = 12 * 60 + rng.below(45);
            push(break_out, 2, rng);
            push(break_out + 25 + rng.below(35), 3, rng);
        }
        let check_out = 16 * 60 + 15 + rng.below(120);
        push(check_out, 1, rng);
        if rng.chance(5) {
            let overtime_in = 18 * 60 + 30 + rng.below(30);
            push(overtime_in, 4, rng);
            push(overtime_in + 60 + rng.below(120), 5, rng);
        }
    }
    punches.sort_by_key(|a| a.time);
    punches
}

/// `count` punches by `users`, on working days (Monday to Friday) ending with the day of `until`, oldest first,
/// none later than `until`. Empty when there are no users.
pub(crate) fn attendance(
    count: usize,
    users: &[User],
    until: NaiveDateTime,
    rng: &mut SplitMix64,
) -> Vec<Attendance> {
    if users.is_empty() || count == 0 {
        return Vec::new();
    }
    // Walk back day by day from `until`, newest day first, until enough punches exist.
    let mut days: Vec<Vec<Attendance>> = Vec::new();
    let mut total = 0;
    let mut day = until.date();
    while total < count {
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            let mut punches = day_punches(day, users, rng);
            punches.retain(|a| a.time <= until);
            total += punches.len();
            days.push(punches);
        }
        match day.checked_sub_signed(Duration::days(1)) {
            Some(previous) => day = previous,
            None => break,
        }
    }
    let mut log: Vec<Attendance> = days.into_iter().rev().flatten().collect();
    // The oldest day is only partly needed: drop its earliest punches.
    let excess = log.len().saturating_sub(count);
    log.drain(..excess);
    log
}

/// `count` fingerprint templates spread over `users` round-robin (user k gets fingers 0, 1, … as the count
/// wraps). Blobs are 400–1199 bytes of noise with the ZKFinger v10 magic `SS21` at byte 2 (pull.md §8.6) and a
/// non-zero last byte (pyzk strips trailing zeros from single-template reads).
pub(crate) fn templates(count: usize, users: &[User], rng: &mut SplitMix64) -> Vec<Template> {
    if users.is_empty() {
        return Vec::new();
    }
    let count = count.min(users.len() * 10);
    (0..count)
        .filter_map(|index| {
            let user = users.get(index % users.len())?;
            let finger = u8::try_from(index / users.len()).ok()?;
            let len = usize::try_from(400 + rng.below(800)).ok()?;
            let mut data: Vec<u8> = (0..len).map(|_| rng.next_u64().to_le_bytes()[0]).collect();
            data.get_mut(2..6)?.copy_from_slice(b"SS21");
            *data.last_mut()? = 0x5A;
            Some(Template {
                uid: user.uid,
                finger,
                flag: 1,
                data,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn until() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 3, 6)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .unwrap()
    }

    #[test]
    fn splitmix_matches_reference_vector() {
        // Reference output of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn users_are_numbered_from_one_with_pins_as_text() {
        let users = users(12, &mut SplitMix64::new(7));
        assert_eq!(users.len(), 12);
        assert_eq!(users[0].uid, 1);
        assert_eq!(users[0].user_id, "1");
        assert_eq!(users[0].privilege, PRIVILEGE_ADMIN);
        assert_eq!(users[1].privilege, PRIVILEGE_USER);
        assert_eq!(users[11].user_id, "12");
        assert!(users[9].password.len() == 4 && users[8].password.is_empty());
        assert!(users[2].card >= 10_000_000 && users[3].card == 0);
    }

    #[test]
    fn attendance_has_exact_count_sorted_and_not_after_until() {
        let mut rng = SplitMix64::new(42);
        let users = users(50, &mut rng);
        let log = attendance(10_000, &users, until(), &mut rng);
        assert_eq!(log.len(), 10_000);
        assert!(log.windows(2).all(|w| w[0].time <= w[1].time));
        assert!(log.iter().all(|a| a.time <= until()));
        assert!(log
            .iter()
            .all(|a| !matches!(a.time.weekday(), Weekday::Sat | Weekday::Sun)));
        let states: std::collections::BTreeSet<u8> = log.iter().map(|a| a.punch).collect();
        assert!(states.is_superset(&[0, 1, 2, 3].into_iter().collect()));
        let modes: std::collections::BTreeSet<u8> = log.iter().map(|a| a.status).collect();
        assert_eq!(modes, [0, 1, 2, 15].into_iter().collect());
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let build = |seed| {
            let mut rng = SplitMix64::new(seed);
            let users = users(20, &mut rng);
            let log = attendance(500, &users, until(), &mut rng);
            (users, log)
        };
        assert_eq!(build(1), build(1));
        assert_ne!(build(1).1, build(2).1);
    }

    #[test]
    fn no_users_means_no_punches_or_templates() {
        let mut rng = SplitMix64::new(1);
        assert!(attendance(100, &[], until(), &mut rng).is_empty());
        assert!(templates(5, &[], &mut rng).is_empty());
    }

    #[test]
    fn templates_round_robin_with_magic() {
        let mut rng = SplitMix64::new(3);
        let users = users(3, &mut rng);
        let templates = templates(5, &users, &mut rng);
        let keys: Vec<(u16, u8)> = templates.iter().map(|t| (t.uid, t.finger)).collect();
        assert_eq!(keys, vec![(1, 0), (2, 0), (3, 0), (1, 1), (2, 1)]);
        assert!(templates
            .iter()
            .all(|t| &t.data[2..6] == b"SS21" && (400..1200).contains(&t.data.len())));
    }
}
