-- The queries of `striatum corpus export`, each under a "-- name: what it does --" header.
-- They run in one REPEATABLE READ, READ ONLY transaction, with times written in UTC, so
-- an export reads one snapshot and two exports of the same history read the same text.

-- corpus_snapshot: the export reads one snapshot and changes nothing --
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;

-- corpus_utc: for the export's transaction only: times as UTC text, whatever the session's zone --
SELECT set_config('TimeZone', 'UTC', true);

-- corpus_all_runs: every run of every repository (or of one), oldest first --
SELECT r.id, r.repo_id FROM striatum.runs r
WHERE %(repo)s::bigint IS NULL OR r.repo_id = %(repo)s::bigint
ORDER BY r.repo_id, r.created_at, r.id;

-- corpus_run: one run by its id --
SELECT r.id, r.repo_id FROM striatum.runs r WHERE r.id = %(run)s;

-- corpus_repos: the repositories of the exported runs --
SELECT id, path FROM striatum.repos WHERE id = ANY(%(repos)s) ORDER BY id;

-- corpus_workflows: the compiled workflows the exported runs are pinned to --
SELECT digest, name, compiled FROM striatum.workflows WHERE digest IN (
    SELECT workflow_digest FROM striatum.runs WHERE id = ANY(%(runs)s))
ORDER BY digest;

-- corpus_runs: the exported runs as JSON rows --
SELECT row_to_json(r)::text FROM striatum.runs r WHERE r.id = ANY(%(runs)s)
ORDER BY r.repo_id, r.created_at, r.id;

-- corpus_jobs: the exported runs' jobs as JSON rows (never a lease's secret token) --
SELECT (to_jsonb(j) - 'lease_token')::text FROM striatum.jobs j WHERE j.run_id = ANY(%(runs)s)
ORDER BY j.run_id, j.position;

-- corpus_event_spans: per repository chain, the first and last seq and time of the exported runs' events --
SELECT repo_id, min(seq), max(seq), min(created_at), max(created_at) FROM striatum.events
WHERE run_id = ANY(%(runs)s) GROUP BY repo_id ORDER BY repo_id;

-- corpus_events: a segment of a repository chain; whether each event is of an exported run --
SELECT seq, run_id, job_id, type, payload, previous_hash, row_hash,
       run_id = ANY(%(runs)s) AS included
FROM striatum.events WHERE repo_id = %(repo)s AND seq BETWEEN %(first)s AND %(last)s
ORDER BY seq;

-- corpus_audit_span: the audit rows written while the exported events were (all of them when no bound is given) --
SELECT min(seq), max(seq) FROM striatum.audit_log
WHERE (%(since)s::timestamptz IS NULL OR created_at >= %(since)s::timestamptz)
  AND (%(until)s::timestamptz IS NULL OR created_at <= %(until)s::timestamptz);

-- corpus_audit: a segment of the audit chain --
SELECT seq, payload, previous_hash, row_hash FROM striatum.audit_log
WHERE seq BETWEEN %(first)s AND %(last)s ORDER BY seq;

-- corpus_verdicts: the exported runs' verdicts --
SELECT run_id, job_id, iteration, verdict, reason, fence, judged::text FROM striatum.verdicts
WHERE run_id = ANY(%(runs)s) ORDER BY run_id, job_id, iteration;

-- corpus_artifacts: the exported runs' artifacts, every iteration, with the repository each is in --
SELECT a.run_id, a.job_id, a.iteration, a.path, a.stored_at, a.sha256, a.bytes, a.fence,
       p.path
FROM striatum.artifacts a JOIN striatum.runs r ON r.id = a.run_id
JOIN striatum.repos p ON p.id = r.repo_id
WHERE a.run_id = ANY(%(runs)s) ORDER BY a.run_id, a.job_id, a.iteration, a.path;
