-- What a run's lanes reported spending (the sum of the cost of its budget.usage events),
-- kept on the run's row in the transaction that records each report, so that checking a
-- budget reads one row instead of every event of the run. Doctor checks it against the
-- events; the runs recorded before this migration are summed here from theirs.
ALTER TABLE striatum.runs ADD COLUMN spent_cost bigint NOT NULL DEFAULT 0;

UPDATE striatum.runs r SET spent_cost = u.cost
FROM (SELECT run_id, sum(((payload::jsonb -> 'data') ->> 'cost')::bigint) AS cost
      FROM striatum.events WHERE type = 'budget.usage' GROUP BY run_id) u
WHERE u.run_id = r.id;

-- A budget's clock runs between the run's lifecycle events (and a human's raise is one):
-- read through an index of their own, they are a few rows however many events the run has.
CREATE INDEX events_lifecycle ON striatum.events (run_id, seq) WHERE starts_with(type, 'run.');
