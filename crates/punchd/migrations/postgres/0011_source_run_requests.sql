-- "Read now" for BioTime sources (issue 11): when someone last asked for a source to be read at once. The instance
-- holding the source's lease reads it within a second of seeing a request newer than its last start, even inside
-- the interval or the pause after a rejected password.
ALTER TABLE sources ADD COLUMN run_requested_at timestamptz;
