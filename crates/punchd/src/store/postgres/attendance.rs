//! [`AttendanceStore`] for PostgreSQL (tables of `migrations/postgres/0003_attendance.sql`,
//! `0012_review_pages.sql` and `0013_pin_summary.sql`), with the semantics of `store/sqlite/attendance.rs`: every change and its audit record
//! in one transaction, refused writes leave nothing behind. Changes whose checks read other rows (mappings, roster
//! lines, sign-offs) take a transaction-level advisory lock per table, so two instances cannot both pass a check
//! and then both write.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use tokio_postgres::{Row, Transaction};

use super::{backend, col, commit, PgStore};
use crate::domain::{DeviceSn, Punch};
use crate::store::attendance::{
    AttendancePunch, AttendanceStore, AuditEntry, AuditRecord, Correction, CorrectionKind,
    CorrectionRecord, Employee, EmployeeStatus, ExceptionReview, Holiday, PinMapping, PinSeen,
    PolicySetting, ReviewState, Revocation, RosterEntry, RosterPage, Scope, ShiftDef, SignOff,
    Site,
};
use crate::store::{Result, StoreError};

/// Advisory lock keys (transaction scope) serialising the check-then-write changes across instances. The values
/// are arbitrary but fixed: `'attn'` in ASCII, then a table number.
const LOCK_MAPPINGS: i64 = 0x6174_746e_0001;
const LOCK_SIGNOFFS: i64 = 0x6174_746e_0002;
const LOCK_PIN_SUMMARY: i64 = 0x6174_746e_0003;

async fn audit_on(client: &Transaction<'_>, audit: &AuditRecord) -> Result<()> {
    client
        .execute(
            "INSERT INTO audit_log (at, author, action, subject, detail) VALUES (now(), $1, $2, $3, $4)",
            &[&audit.author, &audit.action, &audit.subject, &audit.detail],
        )
        .await
        .map_err(backend)?;
    Ok(())
}

async fn lock(client: &Transaction<'_>, key: i64) -> Result<()> {
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&key])
        .await
        .map_err(backend)?;
    Ok(())
}

async fn employee_exists(client: &Transaction<'_>, code: &str) -> Result<bool> {
    let row = client
        .query_opt("SELECT 1 FROM employees WHERE code = $1", &[&code])
        .await
        .map_err(backend)?;
    Ok(row.is_some())
}

/// The last of each key wins, as when the rows are written one after the other (a multi-row `ON CONFLICT DO
/// UPDATE` refuses to touch one row twice).
fn last_per_key<T, K: std::hash::Hash + Eq>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut last: HashMap<K, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        last.insert(key(item), i);
    }
    items
        .into_iter()
        .enumerate()
        .filter(|(i, item)| last.get(&key(item)) == Some(i))
        .map(|(_, item)| item)
        .collect()
}

fn scope_of(s: &str, default: Scope) -> Scope {
    Scope::parse(s).unwrap_or(default)
}

fn correction_from_row(r: &Row) -> Result<Correction> {
    let kind: String = col(r, 3)?;
    Ok(Correction {
        id: col(r, 0)?,
        employee_code: col(r, 1)?,
        day: col(r, 2)?,
        kind: CorrectionKind::parse(&kind)
            .ok_or_else(|| StoreError::Backend(format!("stored correction kind {kind:?}")))?,
        punched_at: col::<Option<NaiveDateTime>>(r, 4)?,
        punch_state: r
            .get::<_, Option<i32>>(5)
            .map(|v| u16::try_from(v).unwrap_or(u16::MAX)),
        punch_id: col(r, 6)?,
        status: col(r, 7)?,
        minutes: r
            .get::<_, Option<i64>>(8)
            .map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
        author: col(r, 9)?,
        reason: col(r, 10)?,
        created_at: col(r, 11)?,
    })
}

impl PgStore {
    /// `columns` of the punches of `devices` with `from <= punched_at_utc < to`, by id. The identity index is
    /// (device_sn, punched_at, …) in terminal local time; every zone is within ±26 h of UTC, so a local range
    /// widened by two days selects a superset the index serves, and the UTC instant decides (as on SQLite).
    async fn window_rows(
        &self,
        columns: &str,
        devices: &[DeviceSn],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let sns: Vec<&str> = devices.iter().map(DeviceSn::as_str).collect();
        let lo: NaiveDateTime = (from - chrono::Duration::days(2)).naive_utc();
        let hi: NaiveDateTime = (to + chrono::Duration::days(2)).naive_utc();
        client
            .query(
                &format!(
                    "SELECT {columns} FROM punches WHERE device_sn = ANY($1) AND punched_at >= $2 \
                     AND punched_at < $3 AND punched_at_utc >= $4 AND punched_at_utc < $5 ORDER BY id"
                ),
                &[&sns, &lo, &hi, &from, &to],
            )
            .await
            .map_err(backend)
    }
}

#[async_trait::async_trait]
impl AttendanceStore for PgStore {
    async fn put_site(&self, site: Site, audit: AuditRecord) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let offs =
            serde_json::to_value(&site.weekly_offs).unwrap_or_else(|_| serde_json::json!([]));
        tx.execute(
            "INSERT INTO sites (name, time_zone, day_change, weekly_offs, updated_at) VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (name) DO UPDATE SET time_zone = excluded.time_zone, day_change = excluded.day_change,
             weekly_offs = excluded.weekly_offs, updated_at = excluded.updated_at",
            &[&site.name, &site.time_zone, &site.day_change, &offs],
        )
        .await
        .map_err(backend)?;
        tx.execute("DELETE FROM site_holidays WHERE site = $1", &[&site.name])
            .await
            .map_err(backend)?;
        let holidays = last_per_key(site.holidays, |h| h.day);
        let days: Vec<NaiveDate> = holidays.iter().map(|h| h.day).collect();
        let names: Vec<&str> = holidays.iter().map(|h| h.name.as_str()).collect();
        tx.execute(
            "INSERT INTO site_holidays (site, day, name) SELECT $1, * FROM unnest($2::date[], $3::text[])",
            &[&site.name, &days, &names],
        )
        .await
        .map_err(backend)?;
        audit_on(&tx, &audit).await?;
        commit(tx).await
    }

    async fn list_sites(&self) -> Result<Vec<Site>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, time_zone, day_change, weekly_offs FROM sites ORDER BY name COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(backend)?;
        let mut sites: Vec<Site> = rows
            .iter()
            .map(|r| {
                Ok(Site {
                    name: col(r, 0)?,
                    time_zone: col(r, 1)?,
                    day_change: col(r, 2)?,
                    weekly_offs: serde_json::from_value(col(r, 3)?).unwrap_or_default(),
                    holidays: Vec::new(),
                })
            })
            .collect::<Result<_>>()?;
        let holidays = client
            .query(
                "SELECT site, day, name FROM site_holidays ORDER BY site, day",
                &[],
            )
            .await
            .map_err(backend)?;
        let index: HashMap<String, usize> = sites
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        for r in &holidays {
            if let Some(&i) = index.get(&col::<String>(r, 0)?) {
                sites[i].holidays.push(Holiday {
                    day: col(r, 1)?,
                    name: col(r, 2)?,
                });
            }
        }
        Ok(sites)
    }

    async fn put_employees(&self, employees: Vec<Employee>, audit: AuditRecord) -> Result<()> {
        let employees = last_per_key(employees, |e| e.code.clone());
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let codes: Vec<&str> = employees.iter().map(|e| e.code.as_str()).collect();
        let names: Vec<&str> = employees.iter().map(|e| e.name.as_str()).collect();
        let statuses: Vec<&str> = employees.iter().map(|e| e.status.as_str()).collect();
        let joined: Vec<Option<NaiveDate>> = employees.iter().map(|e| e.joined_on).collect();
        let left: Vec<Option<NaiveDate>> = employees.iter().map(|e| e.left_on).collect();
        let sites: Vec<Option<&str>> = employees.iter().map(|e| e.site.as_deref()).collect();
        let departments: Vec<Option<&str>> =
            employees.iter().map(|e| e.department.as_deref()).collect();
        let shifts: Vec<Option<&str>> = employees
            .iter()
            .map(|e| e.default_shift.as_deref())
            .collect();
        tx.execute(
            "INSERT INTO employees (code, name, status, joined_on, left_on, site, department, default_shift,
             updated_at)
             SELECT *, now() FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::date[], $6::text[],
             $7::text[], $8::text[])
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, status = excluded.status,
             joined_on = excluded.joined_on, left_on = excluded.left_on, site = excluded.site,
             department = excluded.department, default_shift = excluded.default_shift,
             updated_at = excluded.updated_at",
            &[
                &codes,
                &names,
                &statuses,
                &joined,
                &left,
                &sites,
                &departments,
                &shifts,
            ],
        )
        .await
        .map_err(backend)?;
        super::outbox::retry_unmapped_on(&*tx, Utc::now()).await?;
        audit_on(&tx, &audit).await?;
        commit(tx).await
    }

    async fn list_employees(&self) -> Result<Vec<Employee>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT code, name, status, joined_on, left_on, site, department, default_shift FROM employees
                 ORDER BY code COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(Employee {
                    code: col(r, 0)?,
                    name: col(r, 1)?,
                    status: EmployeeStatus::parse(col(r, 2)?).unwrap_or(EmployeeStatus::Active),
                    joined_on: col(r, 3)?,
                    left_on: col(r, 4)?,
                    site: col(r, 5)?,
                    department: col(r, 6)?,
                    default_shift: col(r, 7)?,
                })
            })
            .collect()
    }

    async fn add_mapping(&self, m: PinMapping, audit: AuditRecord) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        lock(&tx, LOCK_MAPPINGS).await?;
        if !employee_exists(&tx, &m.employee_code).await? {
            return Err(StoreError::NotFound(format!(
                "employee {}",
                m.employee_code
            )));
        }
        let held = tx
            .query_opt(
                "SELECT employee_code FROM pin_mappings WHERE scope = $1 AND scope_key = $2 AND pin = $3",
                &[&m.scope.as_str(), &m.scope_key, &m.pin],
            )
            .await
            .map_err(backend)?;
        if let Some(row) = held {
            let other: String = col(&row, 0)?;
            return Err(StoreError::Conflict(format!(
                "PIN {} on {} {} is mapped to employee {other} already; remove that mapping first",
                m.pin,
                m.scope.as_str(),
                m.scope_key
            )));
        }
        // A site mapping and a device mapping on one of the site's devices must agree, or one PIN would mean two
        // employees on that device.
        let clash_sql = match m.scope {
            Scope::Site => {
                "SELECT p.scope_key, p.employee_code FROM pin_mappings p JOIN devices d ON d.sn = p.scope_key
                 WHERE p.scope = 'device' AND p.pin = $1 AND d.site = $2 AND p.employee_code <> $3 LIMIT 1"
            }
            Scope::Device => {
                "SELECT p.scope_key, p.employee_code FROM pin_mappings p JOIN devices d ON d.site = p.scope_key
                 WHERE p.scope = 'site' AND p.pin = $1 AND d.sn = $2 AND p.employee_code <> $3 LIMIT 1"
            }
        };
        let clash = tx
            .query_opt(clash_sql, &[&m.pin, &m.scope_key, &m.employee_code])
            .await
            .map_err(backend)?;
        if let Some(row) = clash {
            let (key, other): (String, String) = (col(&row, 0)?, col(&row, 1)?);
            return Err(StoreError::Conflict(format!(
                "PIN {} would mean two employees on one device: {} here and {other} through the mapping on {key}",
                m.pin, m.employee_code
            )));
        }
        tx.execute(
            "INSERT INTO pin_mappings (scope, scope_key, pin, employee_code, created_at)
             VALUES ($1, $2, $3, $4, now())",
            &[&m.scope.as_str(), &m.scope_key, &m.pin, &m.employee_code],
        )
        .await
        .map_err(backend)?;
        super::outbox::retry_unmapped_on(&*tx, Utc::now()).await?;
        audit_on(&tx, &audit).await?;
        commit(tx).await
    }

    async fn remove_mapping(
        &self,
        scope: Scope,
        scope_key: &str,
        pin: &str,
        audit: AuditRecord,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        lock(&tx, LOCK_MAPPINGS).await?;
        let n = tx
            .execute(
                "DELETE FROM pin_mappings WHERE scope = $1 AND scope_key = $2 AND pin = $3",
                &[&scope.as_str(), &scope_key, &pin],
            )
            .await
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "mapping of PIN {pin} on {} {scope_key}",
                scope.as_str()
            )));
        }
        super::outbox::retry_unmapped_on(&*tx, Utc::now()).await?;
        audit_on(&tx, &audit).await?;
        commit(tx).await
    }

    async fn list_mappings(&self) -> Result<Vec<PinMapping>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT scope, scope_key, pin, employee_code FROM pin_mappings
                 ORDER BY scope COLLATE \"C\", scope_key COLLATE \"C\", pin COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(PinMapping {
                    scope: scope_of(col(r, 0)?, Scope::Device),
                    scope_key: col(r, 1)?,
                    pin: col(r, 2)?,
                    employee_code: col(r, 3)?,
                })
            })
            .collect()
    }

    async fn pins_seen(&self) -> Result<Vec<PinSeen>> {
        self.pins_seen_between(0, i64::MAX).await
    }

    async fn pins_seen_between(&self, after_id: i64, up_to_id: i64) -> Result<Vec<PinSeen>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT device_sn, pin, COUNT(*), MIN(punched_at_utc), MAX(punched_at_utc) FROM punches
                 WHERE id > $1 AND id <= $2
                 GROUP BY device_sn, pin ORDER BY device_sn COLLATE \"C\", pin COLLATE \"C\"",
                &[&after_id, &up_to_id],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(pin_seen_of).collect()
    }

    async fn load_pin_summary(&self) -> Result<Option<(i64, Vec<PinSeen>)>> {
        let mut client = self.client().await?;
        // One snapshot, so the cover and the rows are of the same save.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(backend)?;
        let Some(cover) = tx
            .query_opt("SELECT up_to_id FROM pin_summary_cover WHERE id = 1", &[])
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let up_to_id: i64 = col(&cover, 0)?;
        let rows = tx
            .query(
                "SELECT device_sn, pin, n_punches, first_seen, last_seen FROM pin_summary
                 ORDER BY device_sn COLLATE \"C\", pin COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(backend)?;
        let pairs = rows.iter().map(pin_seen_of).collect::<Result<Vec<_>>>()?;
        Ok(Some((up_to_id, pairs)))
    }

    async fn save_pin_summary(
        &self,
        changed_after: Option<i64>,
        up_to_id: i64,
        pairs: Vec<PinSeen>,
    ) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // Instances saving at once take turns (the check below reads what the other wrote).
        lock(&tx, LOCK_PIN_SUMMARY).await?;
        match changed_after {
            None => {
                tx.execute("DELETE FROM pin_summary", &[])
                    .await
                    .map_err(backend)?;
            }
            Some(after_id) => {
                let saved: Option<i64> = match tx
                    .query_opt("SELECT up_to_id FROM pin_summary_cover WHERE id = 1", &[])
                    .await
                    .map_err(backend)?
                {
                    Some(row) => Some(col(&row, 0)?),
                    None => None,
                };
                if !saved.is_some_and(|s| after_id <= s && s <= up_to_id) {
                    return Ok(false);
                }
            }
        }
        let mut sns = Vec::with_capacity(pairs.len());
        let mut pins = Vec::with_capacity(pairs.len());
        let mut counts = Vec::with_capacity(pairs.len());
        let mut firsts = Vec::with_capacity(pairs.len());
        let mut lasts = Vec::with_capacity(pairs.len());
        for p in last_per_key(pairs, |p| (p.device_sn.clone(), p.pin.clone())) {
            sns.push(p.device_sn.as_str().to_owned());
            pins.push(p.pin);
            counts.push(i64::try_from(p.count).unwrap_or(i64::MAX));
            firsts.push(p.first_seen);
            lasts.push(p.last_seen);
        }
        tx.execute(
            "INSERT INTO pin_summary (device_sn, pin, n_punches, first_seen, last_seen)
             SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::timestamptz[], $5::timestamptz[])
             ON CONFLICT (device_sn, pin) DO UPDATE SET n_punches = excluded.n_punches,
             first_seen = excluded.first_seen, last_seen = excluded.last_seen",
            &[&sns, &pins, &counts, &firsts, &lasts],
        )
        .await
        .map_err(backend)?;
        tx.execute(
            "INSERT INTO pin_summary_cover (id, up_to_id, saved_at) VALUES (1, $1, now())
             ON CONFLICT (id) DO UPDATE SET up_to_id = excluded.up_to_id, saved_at = excluded.saved_at",
            &[&up_to_id],
        )
        .await
        .map_err(backend)?;
        commit(tx).await?;
        Ok(true)
    }

    async fn put_shift(&self, shift: ShiftDef, replace: bool, audit: AuditRecord) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let sql = if replace {
            "INSERT INTO shifts (name, definition, updated_at) VALUES ($1, $2, now())
             ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at"
        } else {
            "INSERT INTO shifts (name, definition, updated_at) VALUES ($1, $2, now()) ON CONFLICT (name) DO NOTHING"
        };
        let n = tx
            .execute(sql, &[&shift.name, &shift.definition])
            .await
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "shift {} exists already (use `shifts edit` to change it)",
                shift.name
            )));
        }
        audit_on(&tx, &audit).await?;
        commit(tx).await
    }

    async fn list_shifts(&self) -> Result<Vec<ShiftDef>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, definition FROM shifts ORDER BY name COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(ShiftDef {
                    name: col(r, 0)?,
                    definition: col(r, 1)?,
                })
            })
            .collect()
    }

    async fn put_roster(&self, entries: Vec<RosterEntry>, audit: AuditRecord) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let codes: Vec<&str> = entries.iter().map(|e| e.employee_code.as_str()).collect();
        let shift_names: Vec<&str> = entries.iter().filter_map(|e| e.shift.as_deref()).collect();
        // FOR SHARE: an employee or shift checked here cannot be removed before this commits.
        let known_employees: HashSet<String> = tx
            .query(
                "SELECT code FROM employees WHERE code = ANY($1) FOR SHARE",
                &[&codes],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|r| col(r, 0))
            .collect::<Result<_>>()?;
        let known_shifts: HashSet<String> = tx
            .query(
                "SELECT name FROM shifts WHERE name = ANY($1) FOR SHARE",
                &[&shift_names],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|r| col(r, 0))
            .collect::<Result<_>>()?;
        for e in &entries {
            if !known_employees.contains(&e.employee_code) {
                return Err(StoreError::NotFound(format!(
                    "employee {} (roster line for {})",
                    e.employee_code, e.day
                )));
            }
            if let Some(shift) = e.shift.as_ref().filter(|s| !known_shifts.contains(*s)) {
                return Err(StoreError::NotFound(format!(
                    "shift {shift} (roster line for {} on {})",
                    e.employee_code, e.day
                )));
            }
        }
        let entries = last_per_key(entries, |e| (e.employee_code.clone(), e.day));
        let codes: Vec<&str> = entries.iter().map(|e| e.employee_code.as_str()).collect();
        let days: Vec<NaiveDate> = entries.iter().map(|e| e.day).collect();
        let shifts: Vec<Option<&str>> = entries.iter().map(|e| e.shift.as_deref()).collect();
        tx.execute(
            "INSERT INTO roster (employee_code, day, shift) SELECT * FROM unnest($1::text[], $2::date[], $3::text[])
             ON CONFLICT (employee_code, day) DO UPDATE SET shift = excluded.shift",
            &[&codes, &days, &shifts],
        )
        .await
        .map_err(backend)?;
        audit_on(&tx, &audit).await?;
        commit(tx).await
    }

    async fn list_roster(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<RosterEntry>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT employee_code, day, shift FROM roster WHERE day >= $1 AND day < $2
                 ORDER BY day, employee_code COLLATE \"C\"",
                &[&from, &to],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(RosterEntry {
                    employee_code: col(r, 0)?,
                    day: col(r, 1)?,
                    shift: col(r, 2)?,
                })
            })
            .collect()
    }

    async fn list_roster_page(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        employee: &str,
        limit: usize,
        offset: usize,
    ) -> Result<RosterPage> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        // `strpos` is case-sensitive and finds '' everywhere, like `str::contains`; byte order (COLLATE "C", the
        // roster_code_day index) as SQLite sorts.
        let rows = client
            .query(
                "SELECT employee_code, day, shift FROM roster
                 WHERE day >= $1 AND day < $2 AND strpos(employee_code, $3) > 0
                 ORDER BY employee_code COLLATE \"C\", day LIMIT $4 OFFSET $5",
                &[&from, &to, &employee, &limit, &offset],
            )
            .await
            .map_err(backend)?;
        let lines = rows
            .iter()
            .map(|r| {
                Ok(RosterEntry {
                    employee_code: col(r, 0)?,
                    day: col(r, 1)?,
                    shift: col(r, 2)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let total: i64 = col(
            &client
                .query_one(
                    "SELECT count(*) FROM roster WHERE day >= $1 AND day < $2 AND strpos(employee_code, $3) > 0",
                    &[&from, &to, &employee],
                )
                .await
                .map_err(backend)?,
            0,
        )?;
        Ok(RosterPage {
            lines,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    async fn put_policy(&self, p: PolicySetting, audit: AuditRecord) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "INSERT INTO punch_policies (scope, scope_key, policy, double_tap_secs, updated_at)
             VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (scope, scope_key) DO UPDATE SET policy = excluded.policy,
             double_tap_secs = excluded.double_tap_secs, updated_at = excluded.updated_at",
            &[
                &p.scope.as_str(),
                &p.scope_key,
                &p.policy,
                &i64::from(p.double_tap_secs),
            ],
        )
        .await
        .map_err(backend)?;
        audit_on(&tx, &audit).await?;
        commit(tx).await
    }

    async fn list_policies(&self) -> Result<Vec<PolicySetting>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT scope, scope_key, policy, double_tap_secs FROM punch_policies
                 ORDER BY scope COLLATE \"C\", scope_key COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(PolicySetting {
                    scope: scope_of(col(r, 0)?, Scope::Site),
                    scope_key: col(r, 1)?,
                    policy: col(r, 2)?,
                    double_tap_secs: u32::try_from(col::<i64>(r, 3)?).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    async fn add_correction(&self, c: Correction, audit: AuditRecord) -> Result<Correction> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        if !employee_exists(&tx, &c.employee_code).await? {
            return Err(StoreError::NotFound(format!(
                "employee {}",
                c.employee_code
            )));
        }
        if let Some(id) = c.punch_id {
            let found = tx
                .query_opt("SELECT 1 FROM punches WHERE id = $1", &[&id])
                .await
                .map_err(backend)?;
            if found.is_none() {
                return Err(StoreError::NotFound(format!("punch {id}")));
            }
        }
        let row = tx
            .query_one(
                "INSERT INTO corrections (employee_code, day, kind, punched_at, punch_state, punch_id, status,
                 minutes, author, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 RETURNING id",
                &[
                    &c.employee_code,
                    &c.day,
                    &c.kind.as_str(),
                    &c.punched_at,
                    &c.punch_state.map(i32::from),
                    &c.punch_id,
                    &c.status,
                    &c.minutes.map(i64::from),
                    &c.author,
                    &c.reason,
                    &c.created_at,
                ],
            )
            .await
            .map_err(backend)?;
        let id: i64 = col(&row, 0)?;
        let mut audit = audit;
        audit.detail = serde_json::json!({"correction": id, "detail": audit.detail});
        audit_on(&tx, &audit).await?;
        commit(tx).await?;
        Ok(Correction { id, ..c })
    }

    async fn list_corrections(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Correction>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, employee_code, day, kind, punched_at, punch_state, punch_id, status, minutes, author,
                 reason, created_at FROM corrections WHERE day >= $1 AND day < $2 AND revoked_at IS NULL
                 ORDER BY id",
                &[&from, &to],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(correction_from_row).collect()
    }

    async fn corrections_of(
        &self,
        employee_code: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<CorrectionRecord>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, employee_code, day, kind, punched_at, punch_state, punch_id, status, minutes, author,
                 reason, created_at, revoked_at, revoked_by, revoke_reason FROM corrections
                 WHERE day >= $1 AND day < $2 AND employee_code = $3 ORDER BY id",
                &[&from, &to, &employee_code],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let revoked = match col::<Option<DateTime<Utc>>>(r, 12)? {
                    Some(at) => Some(Revocation {
                        at,
                        author: col::<Option<String>>(r, 13)?.unwrap_or_default(),
                        reason: col::<Option<String>>(r, 14)?.unwrap_or_default(),
                    }),
                    None => None,
                };
                Ok(CorrectionRecord {
                    correction: correction_from_row(r)?,
                    revoked,
                })
            })
            .collect()
    }

    async fn get_correction(&self, id: i64) -> Result<(Correction, Option<DateTime<Utc>>)> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT id, employee_code, day, kind, punched_at, punch_state, punch_id, status, minutes, author,
                 reason, created_at, revoked_at FROM corrections WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::NotFound(format!("correction {id}")))?;
        Ok((correction_from_row(&row)?, col(&row, 12)?))
    }

    async fn revoke_correction(
        &self,
        id: i64,
        at: DateTime<Utc>,
        audit: AuditRecord,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let row = tx
            .query_opt(
                "SELECT revoked_at FROM corrections WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::NotFound(format!("correction {id}")))?;
        if col::<Option<DateTime<Utc>>>(&row, 0)?.is_some() {
            return Err(StoreError::Conflict(format!(
                "correction {id} is revoked already"
            )));
        }
        tx.execute(
            "UPDATE corrections SET revoked_at = $2, revoked_by = $3, revoke_reason = $4 WHERE id = $1",
            &[&id, &at, &audit.author, &audit.reason()],
        )
        .await
        .map_err(backend)?;
        let mut audit = audit;
        audit.detail = serde_json::json!({"correction": id, "detail": audit.detail});
        audit_on(&tx, &audit).await?;
        commit(tx).await?;
        Ok(())
    }

    async fn put_review(&self, review: ExceptionReview, audit: AuditRecord) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        if !employee_exists(&tx, &review.employee_code).await? {
            return Err(StoreError::NotFound(format!(
                "employee {}",
                review.employee_code
            )));
        }
        tx.execute(
            "INSERT INTO exception_reviews (employee_code, day, kind, state, author, note, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (employee_code, day, kind) DO UPDATE SET state = excluded.state, author = excluded.author,
             note = excluded.note, updated_at = excluded.updated_at",
            &[
                &review.employee_code,
                &review.day,
                &review.kind,
                &review.state.as_str(),
                &review.author,
                &review.note,
                &review.updated_at,
            ],
        )
        .await
        .map_err(backend)?;
        audit_on(&tx, &audit).await?;
        commit(tx).await
    }

    async fn list_reviews(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<ExceptionReview>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT employee_code, day, kind, state, author, note, updated_at FROM exception_reviews
                 WHERE day >= $1 AND day < $2 ORDER BY day, employee_code COLLATE \"C\", kind COLLATE \"C\"",
                &[&from, &to],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(ExceptionReview {
                    employee_code: col(r, 0)?,
                    day: col(r, 1)?,
                    kind: col(r, 2)?,
                    state: ReviewState::parse(col(r, 3)?).unwrap_or(ReviewState::Open),
                    author: col(r, 4)?,
                    note: col(r, 5)?,
                    updated_at: col(r, 6)?,
                })
            })
            .collect()
    }

    async fn sign_off(&self, s: SignOff, audit: AuditRecord) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        lock(&tx, LOCK_SIGNOFFS).await?;
        let held = tx
            .query_opt(
                "SELECT author FROM signoffs WHERE site = $1 AND month = $2",
                &[&s.site, &s.month],
            )
            .await
            .map_err(backend)?;
        if let Some(row) = held {
            let author: String = col(&row, 0)?;
            return Err(StoreError::Conflict(format!(
                "{} {} is signed off already (by {author}); reopen it first",
                s.site, s.month
            )));
        }
        tx.execute(
            "INSERT INTO signoffs (site, month, signed_at, author, forced, max_punch_id, snapshot)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &s.site,
                &s.month,
                &s.signed_at,
                &s.author,
                &s.forced,
                &s.max_punch_id,
                &s.snapshot,
            ],
        )
        .await
        .map_err(backend)?;
        audit_on(&tx, &audit).await?;
        commit(tx).await
    }

    async fn get_signoff(&self, site: &str, month: &str) -> Result<Option<SignOff>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT site, month, signed_at, author, forced, max_punch_id, snapshot FROM signoffs
                 WHERE site = $1 AND month = $2",
                &[&site, &month],
            )
            .await
            .map_err(backend)?;
        row.map(|r| {
            Ok(SignOff {
                site: col(&r, 0)?,
                month: col(&r, 1)?,
                signed_at: col(&r, 2)?,
                author: col(&r, 3)?,
                forced: col(&r, 4)?,
                max_punch_id: col(&r, 5)?,
                snapshot: col(&r, 6)?,
            })
        })
        .transpose()
    }

    async fn reopen(&self, site: &str, month: &str, audit: AuditRecord) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        lock(&tx, LOCK_SIGNOFFS).await?;
        let n = tx
            .execute(
                "DELETE FROM signoffs WHERE site = $1 AND month = $2",
                &[&site, &month],
            )
            .await
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("sign-off of {site} {month}")));
        }
        audit_on(&tx, &audit).await?;
        commit(tx).await
    }

    async fn list_audit(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let client = self.client().await?;
        // LIMIT NULL is no limit.
        let limit = (limit > 0).then(|| i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = client
            .query(
                "SELECT id, at, author, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT $1",
                &[&limit],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: col(r, 0)?,
                    at: col(r, 1)?,
                    record: AuditRecord {
                        author: col(r, 2)?,
                        action: col(r, 3)?,
                        subject: col(r, 4)?,
                        detail: col(r, 5)?,
                    },
                })
            })
            .collect()
    }

    async fn punches_between(
        &self,
        devices: Vec<DeviceSn>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Punch>> {
        let rows = self
            .window_rows(super::PUNCH_COLUMNS, &devices, from, to)
            .await?;
        rows.iter().map(super::punch_from_row).collect()
    }

    async fn attendance_punches_between(
        &self,
        devices: Vec<DeviceSn>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AttendancePunch>> {
        let rows = self
            .window_rows(
                "id, device_sn, pin, punched_at_utc, punch_state",
                &devices,
                from,
                to,
            )
            .await?;
        let by_sn: HashMap<&str, &DeviceSn> = devices.iter().map(|d| (d.as_str(), d)).collect();
        rows.iter()
            .map(|r| {
                let sn: &str = col(r, 1)?;
                let state: i32 = col(r, 4)?;
                Ok(AttendancePunch {
                    id: col(r, 0)?,
                    device_sn: match by_sn.get(sn) {
                        Some(d) => (*d).clone(),
                        None => DeviceSn::parse(sn)
                            .map_err(|e| StoreError::Backend(format!("stored SN {sn:?}: {e}")))?,
                    },
                    pin: col::<&str>(r, 2)?.into(),
                    punched_at_utc: col(r, 3)?,
                    punch_state: u16::try_from(state).ok(),
                })
            })
            .collect()
    }

    async fn punches_per_hour(
        &self,
        devices: Vec<DeviceSn>,
        from: NaiveDateTime,
        to: NaiveDateTime,
    ) -> Result<Vec<(NaiveDateTime, u64)>> {
        let sns: Vec<String> = devices.iter().map(|d| d.as_str().to_owned()).collect();
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT date_trunc('hour', punched_at), COUNT(*) FROM punches \
                 WHERE device_sn = ANY($1) AND punched_at >= $2 AND punched_at < $3 GROUP BY 1 ORDER BY 1",
                &[&sns, &from, &to],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| Ok((col(r, 0)?, col::<i64>(r, 1)?.max(0) as u64)))
            .collect()
    }

    async fn max_punch_id(&self) -> Result<i64> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT COALESCE(MAX(id), 0)::bigint FROM punches", &[])
            .await
            .map_err(backend)?;
        Ok(col(&row, 0)?)
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
        let client = self.client().await?;
        let sns: Vec<&str> = devices.iter().map(DeviceSn::as_str).collect();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &format!(
                    "SELECT {} FROM punches WHERE id > $1 AND id <= $2 AND device_sn = ANY($3)
                     ORDER BY id LIMIT $4",
                    super::PUNCH_COLUMNS
                ),
                &[&after_id, &up_to_id, &sns, &limit],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(super::punch_from_row).collect()
    }
}

/// A [`PinSeen`] from a row of (device_sn, pin, count, first_seen, last_seen).
fn pin_seen_of(r: &Row) -> Result<PinSeen> {
    let sn: String = col(r, 0)?;
    Ok(PinSeen {
        device_sn: DeviceSn::parse(&sn)
            .map_err(|e| StoreError::Backend(format!("stored SN {sn:?}: {e}")))?,
        pin: col(r, 1)?,
        count: col::<i64>(r, 2)?.max(0) as u64,
        first_seen: col(r, 3)?,
        last_seen: col(r, 4)?,
    })
}
