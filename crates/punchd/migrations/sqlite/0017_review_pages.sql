-- The review pages (issue 11): who revoked a correction and why (also in the audit log; kept on the row so a day's
-- page shows it without searching the log), and the roster read a page at a time by day range.
ALTER TABLE corrections ADD COLUMN revoked_by TEXT;
ALTER TABLE corrections ADD COLUMN revoke_reason TEXT;
CREATE INDEX roster_day ON roster (day, employee_code);
