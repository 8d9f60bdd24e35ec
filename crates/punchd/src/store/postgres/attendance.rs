//! [`AttendanceStore`] on PostgreSQL: sites, employees, mappings, shifts, roster, policies, corrections, reviews,
//! sign-offs and the audit log.
//!
//! PLACEHOLDER until the attendance area is ported (helper pgatt): every method answers a `Backend` error.
//! Port `sqlite/attendance.rs` (tables in migration 0003).

use chrono::{DateTime, NaiveDate, Utc};

use super::{unported, PgStore};
use crate::domain::{DeviceSn, Punch};
use crate::store::attendance::{
    AttendanceStore, AuditEntry, AuditRecord, Correction, Employee, ExceptionReview, PinMapping,
    PinSeen, PolicySetting, RosterEntry, Scope, ShiftDef, SignOff, Site,
};
use crate::store::Result;

#[async_trait::async_trait]
impl AttendanceStore for PgStore {
    async fn put_site(&self, _site: Site, _audit: AuditRecord) -> Result<()> {
        Err(unported("attendance"))
    }

    async fn list_sites(&self) -> Result<Vec<Site>> {
        Err(unported("attendance"))
    }

    async fn put_employees(&self, _employees: Vec<Employee>, _audit: AuditRecord) -> Result<()> {
        Err(unported("attendance"))
    }

    async fn list_employees(&self) -> Result<Vec<Employee>> {
        Err(unported("attendance"))
    }

    async fn add_mapping(&self, _mapping: PinMapping, _audit: AuditRecord) -> Result<()> {
        Err(unported("attendance"))
    }

    async fn remove_mapping(
        &self,
        _scope: Scope,
        _scope_key: &str,
        _pin: &str,
        _audit: AuditRecord,
    ) -> Result<()> {
        Err(unported("attendance"))
    }

    async fn list_mappings(&self) -> Result<Vec<PinMapping>> {
        Err(unported("attendance"))
    }

    async fn pins_seen(&self) -> Result<Vec<PinSeen>> {
        Err(unported("attendance"))
    }

    async fn put_shift(&self, _shift: ShiftDef, _replace: bool, _audit: AuditRecord) -> Result<()> {
        Err(unported("attendance"))
    }

    async fn list_shifts(&self) -> Result<Vec<ShiftDef>> {
        Err(unported("attendance"))
    }

    async fn put_roster(&self, _entries: Vec<RosterEntry>, _audit: AuditRecord) -> Result<()> {
        Err(unported("attendance"))
    }

    async fn list_roster(&self, _from: NaiveDate, _to: NaiveDate) -> Result<Vec<RosterEntry>> {
        Err(unported("attendance"))
    }

    async fn put_policy(&self, _policy: PolicySetting, _audit: AuditRecord) -> Result<()> {
        Err(unported("attendance"))
    }

    async fn list_policies(&self) -> Result<Vec<PolicySetting>> {
        Err(unported("attendance"))
    }

    async fn add_correction(
        &self,
        _correction: Correction,
        _audit: AuditRecord,
    ) -> Result<Correction> {
        Err(unported("attendance"))
    }

    async fn list_corrections(&self, _from: NaiveDate, _to: NaiveDate) -> Result<Vec<Correction>> {
        Err(unported("attendance"))
    }

    async fn put_review(&self, _review: ExceptionReview, _audit: AuditRecord) -> Result<()> {
        Err(unported("attendance"))
    }

    async fn list_reviews(&self, _from: NaiveDate, _to: NaiveDate) -> Result<Vec<ExceptionReview>> {
        Err(unported("attendance"))
    }

    async fn sign_off(&self, _signoff: SignOff, _audit: AuditRecord) -> Result<()> {
        Err(unported("attendance"))
    }

    async fn get_signoff(&self, _site: &str, _month: &str) -> Result<Option<SignOff>> {
        Err(unported("attendance"))
    }

    async fn reopen(&self, _site: &str, _month: &str, _audit: AuditRecord) -> Result<()> {
        Err(unported("attendance"))
    }

    async fn list_audit(&self, _limit: usize) -> Result<Vec<AuditEntry>> {
        Err(unported("attendance"))
    }

    async fn punches_between(
        &self,
        _devices: Vec<DeviceSn>,
        _from: DateTime<Utc>,
        _to: DateTime<Utc>,
    ) -> Result<Vec<Punch>> {
        Err(unported("attendance"))
    }

    async fn max_punch_id(&self) -> Result<i64> {
        Err(unported("attendance"))
    }
}
