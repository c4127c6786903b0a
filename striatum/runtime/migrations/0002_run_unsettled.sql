-- A run's count of jobs neither succeeded nor skipped, kept by every transition
-- under the run's row lock. A completion reads it with the lock instead of
-- counting the run's jobs (a scan of the whole run on every completion).
ALTER TABLE striatum.runs ADD COLUMN unsettled integer;
UPDATE striatum.runs r
   SET unsettled = (SELECT count(*) FROM striatum.jobs j
                     WHERE j.run_id = r.id AND j.status NOT IN ('succeeded', 'skipped'));
ALTER TABLE striatum.runs ALTER COLUMN unsettled SET NOT NULL;
