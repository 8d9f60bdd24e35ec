-- The raw journal's bodies compressed with lz4 instead of pglz where the server has it (PostgreSQL 14 and later
-- built with lz4, as Debian's packages and the official images are): pglz took about 3 % of the server's CPU at
-- 100 punches per upload (BENCHMARKS.md, "PostgreSQL: group commit"). Only rows written from now on; older ones
-- stay as they are and read the same. A server without lz4 (or older than 14) keeps pglz, with a notice.
DO $$
BEGIN
    ALTER TABLE journal ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'journal bodies stay compressed with pglz: %', SQLERRM;
END $$;
