-- The raw journal's index by device (0001_init.sql) is dropped (issue 6). No query used it: the listing
-- (store/sqlite/operations.rs) walks the journal in id order, and device filters compare on the way. Ordered by
-- device first, it cost every upload a write to that terminal's own leaf — with 50 terminals a different page
-- almost every request: a WAL frame and a later checkpoint copy per request, 17 % of the server's CPU at one punch
-- per upload (BENCHMARKS.md, "The raw journal's device index"). `journal_received` stays: its new entries
-- append at the right edge, and the listing starts a time range from it.
DROP INDEX IF EXISTS journal_device;
