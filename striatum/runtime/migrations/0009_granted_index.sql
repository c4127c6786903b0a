-- The passes a human granted beyond a run's plan are counted from its events of two
-- types (`run status`, `why`, the web UI's run page, doctor's bound). Without an index
-- of their own, that count reads every event of the run: ~50 ms at 100,000 events,
-- on every status read. The rows are few, so the index is small.
CREATE INDEX events_granted ON striatum.events (run_id)
    WHERE type IN ('job.reset', 'job.rerun');
