-- The review pages (issue 11): who revoked a correction and why (also in the audit log; kept on the row so a day's
-- page shows it without searching the log), and the roster paged in byte order of the employee code (as SQLite
-- and the UI sort), which the primary key's collation cannot serve.
ALTER TABLE corrections ADD COLUMN revoked_by text;
ALTER TABLE corrections ADD COLUMN revoke_reason text;
CREATE INDEX roster_code_day ON roster (employee_code COLLATE "C", day);
