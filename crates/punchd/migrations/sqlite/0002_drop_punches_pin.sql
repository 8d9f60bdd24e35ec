-- The (pin, punched_at) index put every new punch at a random leaf (terminals' PINs interleave), which made it
-- the largest share of the pages a group commit writes (BENCHMARKS.md, "Where the time goes"). Queries name a
-- device and a time range (the identity index, time-first within a device, serves them) and filter the PIN
-- there; a query by PIN alone across every device scans the table.
DROP INDEX IF EXISTS punches_pin;
