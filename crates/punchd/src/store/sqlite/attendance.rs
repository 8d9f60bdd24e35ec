//! [`AttendanceStore`] for SQLite (tables of `0006_attendance.sql`, with `0017_review_pages.sql` and
//! `0018_pin_summary.sql`).

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::{backend, from_ms, local_text, ms, parse_local, punch_from_row, SqliteStore};
use crate::domain::{DeviceSn, Punch};
use crate::store::attendance::{
    AttendancePunch, AttendanceStore, AuditEntry, AuditRecord, Correction, CorrectionKind,
    CorrectionRecord, Employee, EmployeeStatus, ExceptionReview, Holiday, PinMapping, PinSeen,
    PolicySetting, ReviewState, Revocation, RosterEntry, RosterPage, Scope, ShiftDef, SignOff,
    Site,
};
use crate::store::{Result, StoreError};

fn audit_on(conn: &Connection, audit: &AuditRecord) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, author, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut st| {
        st.execute(params![
            ms(Utc::now()),
            audit.author,
            audit.action,
            audit.subject,
            audit.detail.to_string()
        ])
    })
    .map_err(backend)?;
    Ok(())
}

fn date(s: &str) -> rusqlite::Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn opt_date(s: Option<String>) -> rusqlite::Result<Option<NaiveDate>> {
    s.as_deref().map(date).transpose()
}

fn exists(conn: &Connection, sql: &str, key: &str) -> Result<bool> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.query_row([key], |_| Ok(())).optional())
        .map(|o| o.is_some())
        .map_err(backend)
}

/// A correction from the columns `id, employee_code, day, kind, punched_at, punch_state, punch_id, status, minutes,
/// author, reason, created_at` (in that order).
fn correction_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Correction> {
    let kind: String = r.get(3)?;
    let at: Option<String> = r.get(4)?;
    Ok(Correction {
        id: r.get(0)?,
        employee_code: r.get(1)?,
        day: date(&r.get::<_, String>(2)?)?,
        kind: CorrectionKind::parse(&kind)
            .ok_or_else(|| super::conversion(format!("correction kind {kind:?}")))?,
        punched_at: at.as_deref().map(parse_local).transpose()?,
        punch_state: r.get(5)?,
        punch_id: r.get(6)?,
        status: r.get(7)?,
        minutes: r.get(8)?,
        author: r.get(9)?,
        reason: r.get(10)?,
        created_at: from_ms(r.get(11)?),
    })
}

fn employee_exists(conn: &Connection, code: &str) -> Result<bool> {
    exists(conn, "SELECT 1 FROM employees WHERE code = ?1", code)
}

/// How much of the database file a month read maps into memory (`PRAGMA mmap_size`), at most: address space,
/// not resident memory; pages are only touched as rows are read.
const MONTH_READ_MMAP_BYTES: i64 = 1 << 30;

/// A month's rows lie densely in the table when they span at most this many times their number of ids: then one
/// pass over that id range reads them in table order, instead of a B-tree descent per row from the identity
/// index (a quarter of the month's time in the profile of issue 7's benchmark, whose rows arrived in employee
/// order). Punches that arrive in time order, a site's own month, are dense; a month whose rows are scattered among
/// many other sites' or months' rows is read through the index.
const DENSE_SPAN_FACTOR: i64 = 4;

/// [`AttendanceStore::attendance_punches_between`] on one connection: the rows of `devices` whose terminal local
/// time is in `[lo, hi)` (text, as stored) and whose UTC instant is in `[from, to)` (unix seconds), by id.
fn month_rows(
    conn: &Connection,
    devices: &[DeviceSn],
    lo: &str,
    hi: &str,
    from: i64,
    to: i64,
) -> Result<Vec<AttendancePunch>> {
    // Where the rows lie: count, lowest and highest id from the identity index alone (it holds the rowid).
    let mut span = conn
        .prepare_cached(
            "SELECT COUNT(*), MIN(id), MAX(id) FROM punches
             WHERE device_sn = ?1 AND punched_at >= ?2 AND punched_at < ?3",
        )
        .map_err(backend)?;
    let (mut count, mut first, mut last) = (0i64, i64::MAX, i64::MIN);
    for sn in devices {
        let (n, min, max): (i64, Option<i64>, Option<i64>) = span
            .query_row(params![sn.as_str(), lo, hi], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(backend)?;
        count += n;
        first = first.min(min.unwrap_or(i64::MAX));
        last = last.max(max.unwrap_or(i64::MIN));
    }
    if count == 0 {
        return Ok(Vec::new());
    }
    let state = |v: i64| u16::try_from(v).ok();
    // Each PIN once: a month reads every employee's PIN about a hundred times.
    let mut pins: HashMap<String, std::sync::Arc<str>> = HashMap::new();
    let mut pin_of = |text: &str| -> std::sync::Arc<str> {
        match pins.get(text) {
            Some(pin) => pin.clone(),
            None => {
                let pin: std::sync::Arc<str> = text.into();
                pins.insert(text.to_owned(), pin.clone());
                pin
            }
        }
    };
    let instant = |secs: i64| DateTime::from_timestamp(secs, 0).unwrap_or_default();
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    if last - first < DENSE_SPAN_FACTOR * count {
        // One pass over the id range, in id order; the same conditions as the index path, the device checked here.
        let by_sn: HashMap<&str, &DeviceSn> = devices.iter().map(|d| (d.as_str(), d)).collect();
        let mut st = conn
            .prepare_cached(
                "SELECT id, device_sn, pin, punched_at_utc, punch_state FROM punches
                 WHERE id >= ?1 AND id <= ?2 AND punched_at >= ?3 AND punched_at < ?4
                 AND punched_at_utc >= ?5 AND punched_at_utc < ?6",
            )
            .map_err(backend)?;
        let mut rows = st
            .query(params![first, last, lo, hi, from, to])
            .map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            let sn = row
                .get_ref(1)
                .and_then(|v| Ok(v.as_str()?))
                .map_err(backend)?;
            let Some(device_sn) = by_sn.get(sn) else {
                continue;
            };
            out.push(AttendancePunch {
                id: row.get(0).map_err(backend)?,
                device_sn: (*device_sn).clone(),
                pin: pin_of(
                    row.get_ref(2)
                        .and_then(|v| Ok(v.as_str()?))
                        .map_err(backend)?,
                ),
                punched_at_utc: instant(row.get(3).map_err(backend)?),
                punch_state: state(row.get(4).map_err(backend)?),
            });
        }
        return Ok(out);
    }
    let mut st = conn
        .prepare_cached(
            "SELECT id, pin, punched_at_utc, punch_state FROM punches
             WHERE device_sn = ?1 AND punched_at >= ?2 AND punched_at < ?3
             AND punched_at_utc >= ?4 AND punched_at_utc < ?5",
        )
        .map_err(backend)?;
    for sn in devices {
        let mut rows = st
            .query(params![sn.as_str(), lo, hi, from, to])
            .map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            out.push(AttendancePunch {
                id: row.get(0).map_err(backend)?,
                device_sn: sn.clone(),
                pin: pin_of(
                    row.get_ref(1)
                        .and_then(|v| Ok(v.as_str()?))
                        .map_err(backend)?,
                ),
                punched_at_utc: instant(row.get(2).map_err(backend)?),
                punch_state: state(row.get(3).map_err(backend)?),
            });
        }
    }
    out.sort_unstable_by_key(|p| p.id);
    Ok(out)
}

#[async_trait::async_trait]
impl AttendanceStore for SqliteStore {
    async fn put_site(&self, site: Site, audit: AuditRecord) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO sites (name, time_zone, day_change, weekly_offs, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (name) DO UPDATE SET time_zone = excluded.time_zone, day_change = excluded.day_change,
                 weekly_offs = excluded.weekly_offs, updated_at = excluded.updated_at",
                params![
                    site.name,
                    site.time_zone,
                    site.day_change,
                    serde_json::to_string(&site.weekly_offs).unwrap_or_else(|_| "[]".into()),
                    ms(Utc::now())
                ],
            )
            .map_err(backend)?;
            conn.execute("DELETE FROM site_holidays WHERE site = ?1", [&site.name])
                .map_err(backend)?;
            for h in &site.holidays {
                conn.execute(
                    "INSERT OR REPLACE INTO site_holidays (site, day, name) VALUES (?1, ?2, ?3)",
                    params![site.name, h.day.to_string(), h.name],
                )
                .map_err(backend)?;
            }
            audit_on(conn, &audit)
        })
        .await
    }

    async fn list_sites(&self) -> Result<Vec<Site>> {
        self.read(|conn| {
            let mut sites = conn
                .prepare_cached(
                    "SELECT name, time_zone, day_change, weekly_offs FROM sites ORDER BY name",
                )
                .and_then(|mut st| {
                    st.query_map([], |r| {
                        Ok(Site {
                            name: r.get(0)?,
                            time_zone: r.get(1)?,
                            day_change: r.get(2)?,
                            weekly_offs: serde_json::from_str(&r.get::<_, String>(3)?)
                                .unwrap_or_default(),
                            holidays: Vec::new(),
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(backend)?;
            let holidays = conn
                .prepare_cached("SELECT site, day, name FROM site_holidays ORDER BY site, day")
                .and_then(|mut st| {
                    st.query_map([], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            Holiday {
                                day: date(&r.get::<_, String>(1)?)?,
                                name: r.get(2)?,
                            },
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(backend)?;
            for (site, h) in holidays {
                if let Some(s) = sites.iter_mut().find(|s| s.name == site) {
                    s.holidays.push(h);
                }
            }
            Ok(sites)
        })
        .await
    }

    async fn put_employees(&self, employees: Vec<Employee>, audit: AuditRecord) -> Result<()> {
        self.write(move |conn| {
            let now = ms(Utc::now());
            let mut st = conn
                .prepare_cached(
                    "INSERT INTO employees (code, name, status, joined_on, left_on, site, department, default_shift,
                     updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (code) DO UPDATE SET name = excluded.name, status = excluded.status,
                     joined_on = excluded.joined_on, left_on = excluded.left_on, site = excluded.site,
                     department = excluded.department, default_shift = excluded.default_shift,
                     updated_at = excluded.updated_at",
                )
                .map_err(backend)?;
            for e in &employees {
                st.execute(params![
                    e.code,
                    e.name,
                    e.status.as_str(),
                    e.joined_on.map(|d| d.to_string()),
                    e.left_on.map(|d| d.to_string()),
                    e.site,
                    e.department,
                    e.default_shift,
                    now
                ])
                .map_err(backend)?;
            }
            super::outbox::retry_unmapped_on(conn, ms(Utc::now()))?;
            audit_on(conn, &audit)
        })
        .await
    }

    async fn list_employees(&self) -> Result<Vec<Employee>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT code, name, status, joined_on, left_on, site, department, default_shift FROM employees
                 ORDER BY code",
            )
            .and_then(|mut st| {
                st.query_map([], |r| {
                    let status: String = r.get(2)?;
                    Ok(Employee {
                        code: r.get(0)?,
                        name: r.get(1)?,
                        status: EmployeeStatus::parse(&status).unwrap_or(EmployeeStatus::Active),
                        joined_on: opt_date(r.get(3)?)?,
                        left_on: opt_date(r.get(4)?)?,
                        site: r.get(5)?,
                        department: r.get(6)?,
                        default_shift: r.get(7)?,
                    })
                })?
                .collect()
            })
            .map_err(backend)
        })
        .await
    }

    async fn add_mapping(&self, m: PinMapping, audit: AuditRecord) -> Result<()> {
        self.write(move |conn| {
            if !employee_exists(conn, &m.employee_code)? {
                return Err(StoreError::NotFound(format!("employee {}", m.employee_code)));
            }
            let held: Option<String> = conn
                .query_row(
                    "SELECT employee_code FROM pin_mappings WHERE scope = ?1 AND scope_key = ?2 AND pin = ?3",
                    params![m.scope.as_str(), m.scope_key, m.pin],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if let Some(other) = held {
                return Err(StoreError::Conflict(format!(
                    "PIN {} on {} {} is mapped to employee {other} already; remove that mapping first",
                    m.pin,
                    m.scope.as_str(),
                    m.scope_key
                )));
            }
            // A site mapping and a device mapping on one of the site's devices must agree, or one PIN would mean
            // two employees on that device.
            let clash: Option<(String, String)> = match m.scope {
                Scope::Site => conn
                    .query_row(
                        "SELECT p.scope_key, p.employee_code FROM pin_mappings p JOIN devices d ON d.sn = p.scope_key
                         WHERE p.scope = 'device' AND p.pin = ?1 AND d.site = ?2 AND p.employee_code <> ?3",
                        params![m.pin, m.scope_key, m.employee_code],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(backend)?,
                Scope::Device => conn
                    .query_row(
                        "SELECT p.scope_key, p.employee_code FROM pin_mappings p JOIN devices d ON d.site = p.scope_key
                         WHERE p.scope = 'site' AND p.pin = ?1 AND d.sn = ?2 AND p.employee_code <> ?3",
                        params![m.pin, m.scope_key, m.employee_code],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(backend)?,
            };
            if let Some((key, other)) = clash {
                return Err(StoreError::Conflict(format!(
                    "PIN {} would mean two employees on one device: {} here and {other} through the mapping on {key}",
                    m.pin, m.employee_code
                )));
            }
            conn.execute(
                "INSERT INTO pin_mappings (scope, scope_key, pin, employee_code, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![m.scope.as_str(), m.scope_key, m.pin, m.employee_code, ms(Utc::now())],
            )
            .map_err(backend)?;
            super::outbox::retry_unmapped_on(conn, ms(Utc::now()))?;
            audit_on(conn, &audit)
        })
        .await
    }

    async fn remove_mapping(
        &self,
        scope: Scope,
        scope_key: &str,
        pin: &str,
        audit: AuditRecord,
    ) -> Result<()> {
        let (key, pin) = (scope_key.to_owned(), pin.to_owned());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM pin_mappings WHERE scope = ?1 AND scope_key = ?2 AND pin = ?3",
                    params![scope.as_str(), key, pin],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "mapping of PIN {pin} on {} {key}",
                    scope.as_str()
                )));
            }
            super::outbox::retry_unmapped_on(conn, ms(Utc::now()))?;
            audit_on(conn, &audit)
        })
        .await
    }

    async fn list_mappings(&self) -> Result<Vec<PinMapping>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT scope, scope_key, pin, employee_code FROM pin_mappings ORDER BY scope, scope_key, pin",
            )
            .and_then(|mut st| {
                st.query_map([], |r| {
                    Ok(PinMapping {
                        scope: Scope::parse(&r.get::<_, String>(0)?).unwrap_or(Scope::Device),
                        scope_key: r.get(1)?,
                        pin: r.get(2)?,
                        employee_code: r.get(3)?,
                    })
                })?
                .collect()
            })
            .map_err(backend)
        })
        .await
    }

    async fn pins_seen(&self) -> Result<Vec<PinSeen>> {
        self.pins_seen_between(0, i64::MAX).await
    }

    async fn pins_seen_between(&self, after_id: i64, up_to_id: i64) -> Result<Vec<PinSeen>> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT device_sn, pin, COUNT(*), MIN(punched_at_utc), MAX(punched_at_utc) FROM punches
                 WHERE id > ?1 AND id <= ?2 GROUP BY device_sn, pin ORDER BY device_sn, pin",
            )
            .and_then(|mut st| {
                st.query_map([after_id, up_to_id], |r| {
                    Ok(PinSeen {
                        device_sn: super::sn_from(r.get(0)?)?,
                        pin: r.get(1)?,
                        count: r.get::<_, i64>(2)? as u64,
                        first_seen: from_ms(r.get::<_, i64>(3)? * 1000),
                        last_seen: from_ms(r.get::<_, i64>(4)? * 1000),
                    })
                })?
                .collect()
            })
            .map_err(backend)
        })
        .await
    }

    async fn load_pin_summary(&self) -> Result<Option<(i64, Vec<PinSeen>)>> {
        self.read(|conn| {
            // One read transaction, so the cover and the rows are of the same save.
            let tx = conn.unchecked_transaction().map_err(backend)?;
            let Some(up_to_id) = tx
                .query_row(
                    "SELECT up_to_id FROM pin_summary_cover WHERE id = 1",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
                .map_err(backend)?
            else {
                return Ok(None);
            };
            let pairs = tx
                .prepare_cached(
                    "SELECT device_sn, pin, n_punches, first_seen, last_seen FROM pin_summary
                     ORDER BY device_sn, pin",
                )
                .and_then(|mut st| {
                    st.query_map([], |r| {
                        Ok(PinSeen {
                            device_sn: super::sn_from(r.get(0)?)?,
                            pin: r.get(1)?,
                            count: r.get::<_, i64>(2)?.max(0) as u64,
                            first_seen: from_ms(r.get(3)?),
                            last_seen: from_ms(r.get(4)?),
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(backend)?;
            Ok(Some((up_to_id, pairs)))
        })
        .await
    }

    async fn save_pin_summary(
        &self,
        changed_after: Option<i64>,
        up_to_id: i64,
        pairs: Vec<PinSeen>,
    ) -> Result<bool> {
        self.write(move |conn| {
            match changed_after {
                None => {
                    conn.execute("DELETE FROM pin_summary", [])
                        .map_err(backend)?;
                }
                Some(after_id) => {
                    let saved: Option<i64> = conn
                        .query_row("SELECT up_to_id FROM pin_summary_cover WHERE id = 1", [], |r| {
                            r.get(0)
                        })
                        .optional()
                        .map_err(backend)?;
                    if !saved.is_some_and(|s| after_id <= s && s <= up_to_id) {
                        return Ok(false);
                    }
                }
            }
            let mut st = conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO pin_summary (device_sn, pin, n_punches, first_seen, last_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(backend)?;
            for p in &pairs {
                st.execute(params![
                    p.device_sn.as_str(),
                    p.pin,
                    i64::try_from(p.count).unwrap_or(i64::MAX),
                    ms(p.first_seen),
                    ms(p.last_seen)
                ])
                .map_err(backend)?;
            }
            conn.execute(
                "INSERT OR REPLACE INTO pin_summary_cover (id, up_to_id, saved_at) VALUES (1, ?1, ?2)",
                params![up_to_id, ms(Utc::now())],
            )
            .map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn put_shift(&self, shift: ShiftDef, replace: bool, audit: AuditRecord) -> Result<()> {
        self.write(move |conn| {
            if !replace && exists(conn, "SELECT 1 FROM shifts WHERE name = ?1", &shift.name)? {
                return Err(StoreError::Conflict(format!(
                    "shift {} exists already (use `shifts edit` to change it)",
                    shift.name
                )));
            }
            conn.execute(
                "INSERT OR REPLACE INTO shifts (name, definition, updated_at) VALUES (?1, ?2, ?3)",
                params![shift.name, shift.definition.to_string(), ms(Utc::now())],
            )
            .map_err(backend)?;
            audit_on(conn, &audit)
        })
        .await
    }

    async fn list_shifts(&self) -> Result<Vec<ShiftDef>> {
        self.read(|conn| {
            let defs: Vec<(String, String)> = conn
                .prepare_cached("SELECT name, definition FROM shifts ORDER BY name")
                .and_then(|mut st| st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
                .map_err(backend)?;
            defs.into_iter()
                .map(|(name, d)| {
                    Ok(ShiftDef {
                        name,
                        definition: serde_json::from_str(&d).map_err(|e| {
                            StoreError::Backend(format!("stored shift unreadable: {e}"))
                        })?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn put_roster(&self, entries: Vec<RosterEntry>, audit: AuditRecord) -> Result<()> {
        self.write(move |conn| {
            for e in &entries {
                if !employee_exists(conn, &e.employee_code)? {
                    return Err(StoreError::NotFound(format!(
                        "employee {} (roster line for {})",
                        e.employee_code, e.day
                    )));
                }
                if let Some(shift) = &e.shift {
                    if !exists(conn, "SELECT 1 FROM shifts WHERE name = ?1", shift)? {
                        return Err(StoreError::NotFound(format!(
                            "shift {shift} (roster line for {} on {})",
                            e.employee_code, e.day
                        )));
                    }
                }
                conn.execute(
                    "INSERT OR REPLACE INTO roster (employee_code, day, shift) VALUES (?1, ?2, ?3)",
                    params![e.employee_code, e.day.to_string(), e.shift],
                )
                .map_err(backend)?;
            }
            audit_on(conn, &audit)
        })
        .await
    }

    async fn list_roster(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<RosterEntry>> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT employee_code, day, shift FROM roster WHERE day >= ?1 AND day < ?2 ORDER BY day, employee_code",
            )
            .and_then(|mut st| {
                st.query_map([from.to_string(), to.to_string()], |r| {
                    Ok(RosterEntry {
                        employee_code: r.get(0)?,
                        day: date(&r.get::<_, String>(1)?)?,
                        shift: r.get(2)?,
                    })
                })?
                .collect()
            })
            .map_err(backend)
        })
        .await
    }

    async fn list_roster_page(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        employee: &str,
        limit: usize,
        offset: usize,
    ) -> Result<RosterPage> {
        let employee = employee.to_owned();
        self.read(move |conn| {
            let (from, to) = (from.to_string(), to.to_string());
            // `instr` is case-sensitive and finds '' everywhere, like `str::contains`. The page walks the primary
            // key (employee_code, day) in order; the count reads the (day, employee_code) index only.
            let lines = conn
                .prepare_cached(
                    "SELECT employee_code, day, shift FROM roster INDEXED BY sqlite_autoindex_roster_1
                     WHERE day >= ?1 AND day < ?2 AND instr(employee_code, ?3) > 0
                     ORDER BY employee_code, day LIMIT ?4 OFFSET ?5",
                )
                .and_then(|mut st| {
                    st.query_map(
                        params![
                            from,
                            to,
                            employee,
                            i64::try_from(limit).unwrap_or(i64::MAX),
                            i64::try_from(offset).unwrap_or(i64::MAX)
                        ],
                        |r| {
                            Ok(RosterEntry {
                                employee_code: r.get(0)?,
                                day: date(&r.get::<_, String>(1)?)?,
                                shift: r.get(2)?,
                            })
                        },
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(backend)?;
            let total: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM roster WHERE day >= ?1 AND day < ?2 AND instr(employee_code, ?3) > 0",
                )
                .and_then(|mut st| st.query_row(params![from, to, employee], |r| r.get(0)))
                .map_err(backend)?;
            Ok(RosterPage {
                lines,
                total: u64::try_from(total).unwrap_or(0),
            })
        })
        .await
    }

    async fn put_policy(&self, p: PolicySetting, audit: AuditRecord) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO punch_policies (scope, scope_key, policy, double_tap_secs, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![p.scope.as_str(), p.scope_key, p.policy, p.double_tap_secs, ms(Utc::now())],
            )
            .map_err(backend)?;
            audit_on(conn, &audit)
        })
        .await
    }

    async fn list_policies(&self) -> Result<Vec<PolicySetting>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT scope, scope_key, policy, double_tap_secs FROM punch_policies ORDER BY scope, scope_key",
            )
            .and_then(|mut st| {
                st.query_map([], |r| {
                    Ok(PolicySetting {
                        scope: Scope::parse(&r.get::<_, String>(0)?).unwrap_or(Scope::Site),
                        scope_key: r.get(1)?,
                        policy: r.get(2)?,
                        double_tap_secs: r.get(3)?,
                    })
                })?
                .collect()
            })
            .map_err(backend)
        })
        .await
    }

    async fn add_correction(&self, c: Correction, audit: AuditRecord) -> Result<Correction> {
        self.write(move |conn| {
            if !employee_exists(conn, &c.employee_code)? {
                return Err(StoreError::NotFound(format!("employee {}", c.employee_code)));
            }
            if let Some(id) = c.punch_id {
                if !exists(conn, "SELECT 1 FROM punches WHERE id = ?1", &id.to_string())? {
                    return Err(StoreError::NotFound(format!("punch {id}")));
                }
            }
            conn.execute(
                "INSERT INTO corrections (employee_code, day, kind, punched_at, punch_state, punch_id, status, minutes,
                 author, reason, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    c.employee_code,
                    c.day.to_string(),
                    c.kind.as_str(),
                    c.punched_at.map(local_text),
                    c.punch_state,
                    c.punch_id,
                    c.status,
                    c.minutes,
                    c.author,
                    c.reason,
                    ms(c.created_at)
                ],
            )
            .map_err(backend)?;
            let id = conn.last_insert_rowid();
            let mut audit = audit;
            audit.detail = serde_json::json!({"correction": id, "detail": audit.detail});
            audit_on(conn, &audit)?;
            Ok(Correction { id, ..c })
        })
        .await
    }

    async fn list_corrections(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Correction>> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, employee_code, day, kind, punched_at, punch_state, punch_id, status, minutes, author, reason,
                 created_at FROM corrections WHERE day >= ?1 AND day < ?2 AND revoked_at IS NULL ORDER BY id",
            )
            .and_then(|mut st| {
                st.query_map([from.to_string(), to.to_string()], correction_from_row)?
                    .collect()
            })
            .map_err(backend)
        })
        .await
    }

    async fn corrections_of(
        &self,
        employee_code: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<CorrectionRecord>> {
        let code = employee_code.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, employee_code, day, kind, punched_at, punch_state, punch_id, status, minutes, author, reason,
                 created_at, revoked_at, revoked_by, revoke_reason FROM corrections
                 WHERE day >= ?1 AND day < ?2 AND employee_code = ?3 ORDER BY id",
            )
            .and_then(|mut st| {
                st.query_map(params![from.to_string(), to.to_string(), code], |r| {
                    let revoked = match r.get::<_, Option<i64>>(12)? {
                        Some(at) => Some(Revocation {
                            at: from_ms(at),
                            author: r.get::<_, Option<String>>(13)?.unwrap_or_default(),
                            reason: r.get::<_, Option<String>>(14)?.unwrap_or_default(),
                        }),
                        None => None,
                    };
                    Ok(CorrectionRecord {
                        correction: correction_from_row(r)?,
                        revoked,
                    })
                })?
                .collect()
            })
            .map_err(backend)
        })
        .await
    }

    async fn get_correction(&self, id: i64) -> Result<(Correction, Option<DateTime<Utc>>)> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT id, employee_code, day, kind, punched_at, punch_state, punch_id, status, minutes, author, reason,
                 created_at, revoked_at FROM corrections WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        correction_from_row(r)?,
                        r.get::<_, Option<i64>>(12)?.map(from_ms),
                    ))
                },
            )
            .optional()
            .map_err(backend)?
            .ok_or_else(|| StoreError::NotFound(format!("correction {id}")))
        })
        .await
    }

    async fn revoke_correction(
        &self,
        id: i64,
        at: DateTime<Utc>,
        audit: AuditRecord,
    ) -> Result<()> {
        self.write(move |conn| {
            let revoked: Option<Option<i64>> = conn
                .query_row(
                    "SELECT revoked_at FROM corrections WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            match revoked {
                None => return Err(StoreError::NotFound(format!("correction {id}"))),
                Some(Some(_)) => {
                    return Err(StoreError::Conflict(format!(
                        "correction {id} is revoked already"
                    )))
                }
                Some(None) => {}
            }
            conn.execute(
                "UPDATE corrections SET revoked_at = ?2, revoked_by = ?3, revoke_reason = ?4 WHERE id = ?1",
                params![id, ms(at), audit.author, audit.reason()],
            )
            .map_err(backend)?;
            let mut audit = audit;
            audit.detail = serde_json::json!({"correction": id, "detail": audit.detail});
            audit_on(conn, &audit)?;
            Ok(())
        })
        .await
    }

    async fn put_review(&self, review: ExceptionReview, audit: AuditRecord) -> Result<()> {
        self.write(move |conn| {
            if !employee_exists(conn, &review.employee_code)? {
                return Err(StoreError::NotFound(format!("employee {}", review.employee_code)));
            }
            conn.execute(
                "INSERT OR REPLACE INTO exception_reviews (employee_code, day, kind, state, author, note, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    review.employee_code,
                    review.day.to_string(),
                    review.kind,
                    review.state.as_str(),
                    review.author,
                    review.note,
                    ms(review.updated_at)
                ],
            )
            .map_err(backend)?;
            audit_on(conn, &audit)
        })
        .await
    }

    async fn list_reviews(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<ExceptionReview>> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT employee_code, day, kind, state, author, note, updated_at FROM exception_reviews
                 WHERE day >= ?1 AND day < ?2 ORDER BY day, employee_code, kind",
            )
            .and_then(|mut st| {
                st.query_map([from.to_string(), to.to_string()], |r| {
                    let state: String = r.get(3)?;
                    Ok(ExceptionReview {
                        employee_code: r.get(0)?,
                        day: date(&r.get::<_, String>(1)?)?,
                        kind: r.get(2)?,
                        state: ReviewState::parse(&state).unwrap_or(ReviewState::Open),
                        author: r.get(4)?,
                        note: r.get(5)?,
                        updated_at: from_ms(r.get(6)?),
                    })
                })?
                .collect()
            })
            .map_err(backend)
        })
        .await
    }

    async fn sign_off(&self, s: SignOff, audit: AuditRecord) -> Result<()> {
        self.write(move |conn| {
            let held: Option<String> = conn
                .query_row(
                    "SELECT author FROM signoffs WHERE site = ?1 AND month = ?2",
                    params![s.site, s.month],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if let Some(author) = held {
                return Err(StoreError::Conflict(format!(
                    "{} {} is signed off already (by {author}); reopen it first",
                    s.site, s.month
                )));
            }
            conn.execute(
                "INSERT INTO signoffs (site, month, signed_at, author, forced, max_punch_id, snapshot)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    s.site,
                    s.month,
                    ms(s.signed_at),
                    s.author,
                    s.forced,
                    s.max_punch_id,
                    s.snapshot.to_string()
                ],
            )
            .map_err(backend)?;
            audit_on(conn, &audit)
        })
        .await
    }

    async fn get_signoff(&self, site: &str, month: &str) -> Result<Option<SignOff>> {
        let (site, month) = (site.to_owned(), month.to_owned());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT site, month, signed_at, author, forced, max_punch_id, snapshot FROM signoffs
                 WHERE site = ?1 AND month = ?2",
            )
            .and_then(|mut st| {
                st.query_row([site, month], |r| {
                    Ok(SignOff {
                        site: r.get(0)?,
                        month: r.get(1)?,
                        signed_at: from_ms(r.get(2)?),
                        author: r.get(3)?,
                        forced: r.get(4)?,
                        max_punch_id: r.get(5)?,
                        snapshot: serde_json::from_str(&r.get::<_, String>(6)?)
                            .unwrap_or_default(),
                    })
                })
                .optional()
            })
            .map_err(backend)
        })
        .await
    }

    async fn reopen(&self, site: &str, month: &str, audit: AuditRecord) -> Result<()> {
        let (site, month) = (site.to_owned(), month.to_owned());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM signoffs WHERE site = ?1 AND month = ?2",
                    params![site, month],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("sign-off of {site} {month}")));
            }
            audit_on(conn, &audit)
        })
        .await
    }

    async fn list_audit(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        self.read(move |conn| {
            let limit = if limit == 0 { -1 } else { limit as i64 };
            conn.prepare_cached(
                "SELECT id, at, author, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT ?1",
            )
            .and_then(|mut st| {
                st.query_map([limit], |r| {
                    Ok(AuditEntry {
                        id: r.get(0)?,
                        at: from_ms(r.get(1)?),
                        record: AuditRecord {
                            author: r.get(2)?,
                            action: r.get(3)?,
                            subject: r.get(4)?,
                            detail: serde_json::from_str(&r.get::<_, String>(5)?)
                                .unwrap_or_default(),
                        },
                    })
                })?
                .collect()
            })
            .map_err(backend)
        })
        .await
    }

    async fn punches_between(
        &self,
        devices: Vec<DeviceSn>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Punch>> {
        self.read(move |conn| {
            // The identity index is (device_sn, punched_at, …) in terminal local time; every zone is within
            // ±26 h of UTC, so a local range widened by two days selects a superset served by the index, and the
            // UTC instant decides.
            let lo: NaiveDateTime = (from - Duration::days(2)).naive_utc();
            let hi: NaiveDateTime = (to + Duration::days(2)).naive_utc();
            let mut st = conn
                .prepare_cached(&format!(
                    "SELECT {} FROM punches WHERE device_sn = ?1 AND punched_at >= ?2 AND punched_at < ?3
                     AND punched_at_utc >= ?4 AND punched_at_utc < ?5",
                    super::PUNCH_COLUMNS
                ))
                .map_err(backend)?;
            // A month of a site is about a million rows, each found through the identity index and then looked
            // up in the table: with the connection's small page cache most lookups were a pread(2) of a page
            // read before (half of the month's time, issue 7). Mapped into memory they are memory reads; the
            // map is dropped after this read, so an idle reader holds none.
            let _ = conn.pragma_update(None, "mmap_size", MONTH_READ_MMAP_BYTES);
            let mut read = || -> Result<Vec<Punch>> {
                let mut out = Vec::new();
                for sn in &devices {
                    let rows = st
                        .query_map(
                            params![
                                sn.as_str(),
                                local_text(lo),
                                local_text(hi),
                                from.timestamp(),
                                to.timestamp()
                            ],
                            punch_from_row,
                        )
                        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                        .map_err(backend)?;
                    out.extend(rows);
                }
                // Ids are unique: an unstable sort moves each (large) punch fewer times.
                out.sort_unstable_by_key(|p| p.id);
                Ok(out)
            };
            let out = read();
            let _ = conn.pragma_update(None, "mmap_size", 0);
            out
        })
        .await
    }

    async fn attendance_punches_between(
        &self,
        devices: Vec<DeviceSn>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AttendancePunch>> {
        self.read(move |conn| {
            // As punches_between: the identity index serves a local range widened by two days, the UTC instant
            // decides; only the four columns attendance uses are decoded.
            let lo = local_text((from - Duration::days(2)).naive_utc());
            let hi = local_text((to + Duration::days(2)).naive_utc());
            let _ = conn.pragma_update(None, "mmap_size", MONTH_READ_MMAP_BYTES);
            let out = month_rows(conn, &devices, &lo, &hi, from.timestamp(), to.timestamp());
            let _ = conn.pragma_update(None, "mmap_size", 0);
            out
        })
        .await
    }

    async fn punches_per_hour(
        &self,
        devices: Vec<DeviceSn>,
        from: NaiveDateTime,
        to: NaiveDateTime,
    ) -> Result<Vec<(NaiveDateTime, u64)>> {
        self.read(move |conn| {
            // `punched_at` is stored as `YYYY-MM-DD HH:MM:SS`: its first 13 characters name the hour, and the
            // identity index (device_sn, punched_at, …) answers this without reading the table. The index hands
            // each terminal's times over in order, so they are counted here as they come (a `GROUP BY` in SQL
            // set up a sorter per terminal: most of the dashboard's time with 1,000 terminals).
            let mut st = conn
                .prepare_cached(
                    "SELECT punched_at FROM punches \
                     WHERE device_sn = ?1 AND punched_at >= ?2 AND punched_at < ?3",
                )
                .map_err(backend)?;
            let (from_text, to_text) = (local_text(from), local_text(to));
            let mut by_hour = std::collections::BTreeMap::<[u8; 13], u64>::new();
            for sn in &devices {
                let mut rows = st
                    .query(params![sn.as_str(), from_text, to_text])
                    .map_err(backend)?;
                while let Some(row) = rows.next().map_err(backend)? {
                    let at = row
                        .get_ref(0)
                        .map_err(backend)?
                        .as_bytes()
                        .map_err(|e| StoreError::Backend(format!("stored local time: {e}")))?;
                    let hour: [u8; 13] =
                        at.get(..13)
                            .and_then(|h| h.try_into().ok())
                            .ok_or_else(|| {
                                StoreError::Backend(format!(
                                    "stored local time {:?} is not YYYY-MM-DD HH:MM:SS",
                                    String::from_utf8_lossy(at)
                                ))
                            })?;
                    *by_hour.entry(hour).or_default() += 1;
                }
            }
            by_hour
                .into_iter()
                .map(|(hour, n)| {
                    let text = String::from_utf8_lossy(&hour);
                    NaiveDateTime::parse_from_str(&format!("{text}:00:00"), "%Y-%m-%d %H:%M:%S")
                        .map(|hour| (hour, n))
                        .map_err(|e| StoreError::Backend(format!("stored hour {text:?}: {e}")))
                })
                .collect()
        })
        .await
    }

    async fn max_punch_id(&self) -> Result<i64> {
        self.read(|conn| {
            conn.query_row("SELECT COALESCE(MAX(id), 0) FROM punches", [], |r| r.get(0))
                .map_err(backend)
        })
        .await
    }

    async fn punches_after_id(
        &self,
        devices: Vec<DeviceSn>,
        after_id: i64,
        up_to_id: i64,
        limit: usize,
    ) -> Result<Vec<Punch>> {
        if devices.is_empty() || limit == 0 || up_to_id <= after_id {
            return Ok(Vec::new());
        }
        self.read(move |conn| {
            // The id range is served by the primary key; the devices filter the (few) new rows.
            let marks: Vec<String> = (0..devices.len()).map(|i| format!("?{}", i + 4)).collect();
            let mut st = conn
                .prepare(&format!(
                    "SELECT {} FROM punches WHERE id > ?1 AND id <= ?2 AND device_sn IN ({})
                     ORDER BY id LIMIT ?3",
                    super::PUNCH_COLUMNS,
                    marks.join(", ")
                ))
                .map_err(backend)?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut values: Vec<rusqlite::types::Value> =
                vec![after_id.into(), up_to_id.into(), limit.into()];
            values.extend(devices.iter().map(|d| d.as_str().to_owned().into()));
            st.query_map(rusqlite::params_from_iter(values), punch_from_row)
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(backend)
        })
        .await
    }
}
