-- budget_events: what a run's budget is read from, oldest first: its lifecycle (the clock runs while it is running), the limits a human raised, and the cost its lanes reported --
SELECT type, created_at, payload::jsonb -> 'data' FROM striatum.events
WHERE run_id = %(run)s AND (starts_with(type, 'run.') OR type = 'budget.usage')
ORDER BY seq;

-- budget_job_runs: the passes started by a run's jobs other than those named (a transition holds those in memory) --
SELECT coalesce(sum(executions), 0) FROM striatum.jobs
WHERE run_id = %(run)s AND NOT (job_id = ANY (%(loaded)s::text[]));

-- budget_running_runs: the running runs (of one run when named) and the workflow each is pinned to --
SELECT id, workflow_digest FROM striatum.runs
WHERE status = 'running' AND (%(run)s::text IS NULL OR id = %(run)s)
ORDER BY created_at, id;

-- budget_stop: why a run was last stopped by its budget --
SELECT payload::jsonb -> 'data' FROM striatum.events
WHERE run_id = %(run)s AND type = 'run.block'
ORDER BY seq DESC LIMIT 1;

-- inbox_over_budget: the runs a budget stopped, waiting for a human (of one repository when named) --
SELECT * FROM striatum.run_records r
WHERE r.status = 'blocked' AND starts_with(r.blocked_on, 'budget:')
  AND (%(repo)s::text IS NULL OR r.repo_path = %(repo)s)
ORDER BY r.updated_at, r.id;
