-- Every query striatum runs, each under a "-- name: what it does --" header.
-- Parameters are bound (%(name)s); nothing here is ever formatted into.

-- runtime_role_usable: can this session SET ROLE to the runtime role --
SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'striatum_runtime')
   AND pg_has_role(current_user, 'striatum_runtime', 'MEMBER');

-- set_runtime_role: this session acts as the runtime role from now on --
SET ROLE striatum_runtime;

-- migrate_lock: serialize migrators on this database (session advisory lock) --
SELECT pg_advisory_lock(7270746911);

-- migrate_unlock: release the migrators' lock --
SELECT pg_advisory_unlock(7270746911);

-- create_migrations_table: the record of applied migrations --
CREATE SCHEMA IF NOT EXISTS striatum;
CREATE TABLE IF NOT EXISTS striatum.migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- schema_version: the highest applied migration --
SELECT max(version) FROM striatum.migrations;

-- applied_migrations: version and checksum of each applied migration --
SELECT version, checksum FROM striatum.migrations ORDER BY version;

-- record_migration: note that a migration was applied --
INSERT INTO striatum.migrations (version, name, checksum)
VALUES (%(version)s, %(name)s, %(checksum)s);

-- now: the database clock (lease arithmetic never uses the client's) --
SELECT now();

-- ensure_repo: the repository's row, created on first use (no row lock on an existing one: every event insert takes KEY SHARE on it) --
WITH found AS (SELECT id FROM striatum.repos WHERE path = %(path)s),
     made AS (INSERT INTO striatum.repos (path)
              SELECT %(path)s WHERE NOT EXISTS (SELECT 1 FROM found)
              ON CONFLICT (path) DO NOTHING
              RETURNING id)
SELECT id FROM found UNION ALL SELECT id FROM made;

-- repo_id: the repository's row, when another transaction created it first --
SELECT id FROM striatum.repos WHERE path = %(path)s;

-- ensure_chain: the repository chain's head, created at genesis --
INSERT INTO striatum.chain_heads (chain, seq, hash)
VALUES (%(chain)s, 0, '0000000000000000000000000000000000000000000000000000000000000000')
ON CONFLICT (chain) DO NOTHING;

-- store_workflow: pin a compiled workflow by its digest --
INSERT INTO striatum.workflows (digest, name, compiled)
VALUES (%(digest)s, %(name)s, %(compiled)s)
ON CONFLICT (digest) DO NOTHING;

-- load_workflow: the compiled workflow a run is pinned to --
SELECT compiled FROM striatum.workflows WHERE digest = %(digest)s;

-- insert_run: a new run, prepared --
INSERT INTO striatum.runs (id, repo_id, workflow_digest, workflow_name, status, vars,
                           artifact_root, base_commit, worst_case, unsettled)
VALUES (%(id)s, %(repo)s, %(digest)s, %(name)s, 'prepared', %(vars)s, %(artifact_root)s,
        %(base_commit)s, %(worst_case)s, %(unsettled)s);

-- insert_jobs: a batch of a new run's jobs, pending, in one statement --
INSERT INTO striatum.jobs (run_id, job_id, position, kind, lane, lane_kind, status,
                           max_attempts)
SELECT %(run)s, j.job_id, j.position, j.kind, j.lane, j.lane_kind, 'pending', j.max_attempts
FROM unnest(%(job)b::text[], %(position)b::integer[], %(kind)b::text[], %(lane)b::text[],
            %(lane_kind)b::text[], %(max_attempts)b::integer[])
     AS j(job_id, position, kind, lane, lane_kind, max_attempts);

-- lock_run: lock a run's row for a transition (always before its jobs); the clock --
SELECT now() FROM striatum.runs WHERE id = %(run)s FOR UPDATE;

-- run_record: a run, unlocked (read after lock_run in a transition, it sees what committed before the lock was granted) --
SELECT * FROM striatum.run_records WHERE id = %(run)s;

-- begin: open a pipelined transaction --
BEGIN;

-- commit: end a pipelined transaction --
COMMIT;

-- any_unsettled: is one of these jobs neither succeeded nor skipped --
SELECT 1 FROM striatum.jobs
WHERE run_id = %(run)s AND job_id = ANY(%(jobs)s) AND status NOT IN ('succeeded', 'skipped')
LIMIT 1;

-- count_unsettled: how many of these jobs are neither succeeded nor skipped --
SELECT count(*) FROM striatum.jobs
WHERE run_id = %(run)s AND job_id = ANY(%(jobs)s) AND status NOT IN ('succeeded', 'skipped');

-- lock_some_jobs: the named jobs of a run, locked, in file order --
-- One primary-key probe per name, locked as it is found: the locking subquery is
-- never merged into a join, which on a young table's statistics can become a scan
-- of the whole run on every transition. Lock order does not matter here: every
-- transition holds its run's row lock before it locks any of the run's jobs.
SELECT j.*
FROM (SELECT DISTINCT unnest(%(jobs)s::text[]) AS job_id) w
CROSS JOIN LATERAL (SELECT * FROM striatum.job_records
                    WHERE run_id = %(run)s AND job_id = w.job_id
                    FOR UPDATE) j
ORDER BY j.position;

-- lock_jobs: every job of a run, locked, in file order --
SELECT * FROM striatum.job_records WHERE run_id = %(run)s ORDER BY position FOR UPDATE;

-- awaiting_decision: the jobs of a run that wait for a human (checkpoints, escalated reviews) and their pass, in file order --
SELECT job_id, iteration FROM striatum.jobs
WHERE run_id = %(run)s AND status = 'awaiting_decision'
ORDER BY position;

-- get_jobs: every job of a run, unlocked, in file order --
SELECT * FROM striatum.job_records WHERE run_id = %(run)s ORDER BY position;

-- update_job: write a job's projection after a transition --
UPDATE striatum.jobs
   SET status = %(status)s, iteration = %(iteration)s, attempt = %(attempt)s,
       executions = %(executions)s, revisions_used = %(revisions_used)s, fence = %(fence)s,
       lease_token = %(lease_token)s, lease_owner = %(lease_owner)s,
       lease_expires_at = CASE WHEN %(lease_token)s::text IS NULL THEN NULL
                               WHEN %(lease_seconds)s::integer IS NULL THEN lease_expires_at
                               ELSE now() + make_interval(secs => %(lease_seconds)s) END,
       heartbeat_at = CASE WHEN %(lease_token)s::text IS NULL THEN NULL
                           WHEN %(lease_seconds)s::integer IS NULL THEN heartbeat_at
                           ELSE now() END,
       chosen = %(chosen)s, verdict = %(verdict)s, reason = %(reason)s, updated_at = now()
 WHERE run_id = %(run)s AND job_id = %(job)s;

-- update_jobs: write a batch of jobs' projections after a transition (update_job's columns as arrays; no lease starts here, so a kept lease keeps its clock) --
UPDATE striatum.jobs AS j
   SET status = u.status, iteration = u.iteration, attempt = u.attempt,
       executions = u.executions, revisions_used = u.revisions_used, fence = u.fence,
       lease_token = u.lease_token, lease_owner = u.lease_owner,
       lease_expires_at = CASE WHEN u.lease_token IS NULL THEN NULL ELSE j.lease_expires_at END,
       heartbeat_at = CASE WHEN u.lease_token IS NULL THEN NULL ELSE j.heartbeat_at END,
       chosen = u.chosen, verdict = u.verdict, reason = u.reason, updated_at = now()
  FROM unnest(%(job)b::text[], %(status)b::text[], %(iteration)b::integer[],
              %(attempt)b::integer[], %(executions)b::integer[],
              %(revisions_used)b::integer[], %(fence)b::bigint[], %(lease_token)b::text[],
              %(lease_owner)b::text[], %(chosen)b::text[], %(verdict)b::text[],
              %(reason)b::text[])
       AS u(job_id, status, iteration, attempt, executions, revisions_used, fence,
            lease_token, lease_owner, chosen, verdict, reason)
 WHERE j.run_id = %(run)s AND j.job_id = u.job_id;

-- update_run: write a run's projection after a transition --
UPDATE striatum.runs SET status = %(status)s, blocked_on = %(blocked_on)s,
                         unsettled = %(unsettled)s, updated_at = now()
WHERE id = %(run)s;

-- claim_job: lease the first ready job of a running run (any run when none is named), record the lease, append its event and its audit row, in one statement; the job's and its run's records as JSON, or no row --
SELECT job, run
FROM striatum.claim_job(%(run)s, %(lanes)s, %(lane_kinds)s, %(owner)s, %(secret)s,
                        %(lease_seconds)s, %(actor)s, %(verb)s, %(args_digest)s);

-- claim_job_started: claim_job, and the leased job's attempt.start chained right after the claim's event, in the same statement and transaction, when its data is known: a worker's when the job's lane is a key of %(starts)s (a lane's name -> the canonical JSON of its attempt.start data, resolved by the worker before the claim), an operator's own when %(operator)s (starts.operator_start_data: the lease's owner, the model %(model)s as stated, else null); the job's and its run's records as JSON and how many starts were chained (0 or 1), or no row --
WITH claimed AS MATERIALIZED (
    SELECT job, run
    FROM striatum.claim_job(%(run)s, %(lanes)s, %(lane_kinds)s, %(owner)s, %(secret)s,
                            %(lease_seconds)s, %(actor)s, %(verb)s, %(args_digest)s)
), started AS MATERIALIZED (
    -- The payload as striatum.audit.Event.payload writes it (keys sorted), at the claim's
    -- time and in the state the claim left the job in.
    SELECT striatum.append_event(
        'repo:' || (c.run ->> 'repo_id'), (c.run ->> 'repo_id')::bigint,
        c.job ->> 'run_id', c.job ->> 'job_id', 'attempt.start',
        '{"at":"' || striatum.event_time(now())
        || '","data":' || d.data
        || ',"job":' || striatum.json_text(c.job ->> 'job_id')
        || ',"run":' || striatum.json_text(c.job ->> 'run_id')
        || ',"state":{"attempt":' || (c.job ->> 'attempt')
        || ',"chosen":' || striatum.json_text(c.job ->> 'chosen')
        || ',"executions":' || (c.job ->> 'executions')
        || ',"fence":' || (c.job ->> 'fence')
        || ',"iteration":' || (c.job ->> 'iteration')
        || ',"lease_owner":' || striatum.json_text(c.job ->> 'lease_owner')
        || ',"revisions_used":' || (c.job ->> 'revisions_used')
        || ',"status":' || striatum.json_text(c.job ->> 'status')
        || ',"verdict":' || striatum.json_text(c.job ->> 'verdict')
        || '},"type":"attempt.start"}') AS appended
    FROM claimed c
    CROSS JOIN LATERAL (
        SELECT coalesce(%(starts)s::jsonb ->> (c.job ->> 'lane'),
                        CASE WHEN %(operator)s::boolean THEN
                            '{"by":"operator","executable":null,"lane":'
                            || striatum.json_text(c.job ->> 'lane')
                            || ',"model":' || striatum.json_text(%(model)s::text)
                            || ',"owner":' || striatum.json_text(c.job ->> 'lease_owner')
                            || '}' END) AS data) d
    WHERE d.data IS NOT NULL
)
SELECT c.job, c.run, (SELECT count(*) FROM started) AS started FROM claimed c;

-- complete_job: complete a leased task, ready the jobs waiting only for it, append the events and the audit row, in one statement; the job's and its run's records as JSON, or no row (nothing changed) when the change is not that common case --
SELECT job, run
FROM striatum.complete_job(%(run)s, %(job)s, %(token)s, %(data)s, %(produces)s,
                           %(dependents)s::jsonb, %(actor)s, %(verb)s, %(args_digest)s);

-- lock_job: one job, locked (the lease verbs lock no run row) --
SELECT * FROM striatum.job_records WHERE run_id = %(run)s AND job_id = %(job)s FOR UPDATE;

-- end_lease: how a lease ended --
UPDATE striatum.leases SET ended_at = now(), outcome = %(outcome)s
WHERE run_id = %(run)s AND job_id = %(job)s AND fence = %(fence)s AND ended_at IS NULL;

-- heartbeat: extend a live lease held with this token; no row when it is not --
UPDATE striatum.jobs
   SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
       heartbeat_at = now()
 WHERE run_id = %(run)s AND job_id = %(job)s AND status = 'leased'
   AND lease_token = %(token)s AND lease_expires_at > now()
RETURNING lease_expires_at;

-- expired_runs: runs holding a lease past its expiry (database clock) --
SELECT DISTINCT run_id FROM striatum.jobs
WHERE status = 'leased' AND lease_expires_at <= now()
  AND (%(run)s::text IS NULL OR run_id = %(run)s);

-- lease_of_token: the lease of a job that this token was given for, ended or not --
SELECT fence, iteration, ended_at IS NOT NULL, outcome FROM striatum.leases
WHERE run_id = %(run)s AND job_id = %(job)s AND token_digest = %(digest)s;

-- artifact_fence: the fence of the attempt that published an artifact of a pass, if any --
SELECT fence FROM striatum.artifacts
WHERE run_id = %(run)s AND job_id = %(job)s AND iteration = %(iteration)s AND path = %(path)s;

-- upsert_artifact: record a published artifact (a republish replaces it) --
INSERT INTO striatum.artifacts (run_id, job_id, iteration, path, stored_at, sha256, bytes, fence)
VALUES (%(run)s, %(job)s, %(iteration)s, %(path)s, %(stored_at)s, %(sha256)s, %(bytes)s,
        %(fence)s)
ON CONFLICT (run_id, job_id, iteration, path) DO UPDATE
   SET stored_at = EXCLUDED.stored_at, sha256 = EXCLUDED.sha256, bytes = EXCLUDED.bytes,
       fence = EXCLUDED.fence, created_at = now();

-- job_artifacts: artifacts a job published in one iteration --
SELECT path, stored_at, sha256, bytes FROM striatum.artifacts
WHERE run_id = %(run)s AND job_id = %(job)s AND iteration = %(iteration)s
ORDER BY path;

-- latest_artifacts: the newest iteration of every artifact of a run --
SELECT DISTINCT ON (path) job_id, iteration, path, stored_at, sha256, bytes
FROM striatum.artifacts WHERE run_id = %(run)s
ORDER BY path, iteration DESC;

-- insert_verdict: a reviewer's verdict for one iteration, with the digests of what it judged --
INSERT INTO striatum.verdicts (run_id, job_id, iteration, verdict, reason, fence, judged)
VALUES (%(run)s, %(job)s, %(iteration)s, %(verdict)s, %(reason)s, %(fence)s,
        %(judged)s::jsonb);

-- accepted_judged: the standing accepts (with digests) of some reviews, as the jobs that need them find them: the reviewer's accept, or its needs_revision accepted by on_exhausted (its pass ended by job.complete, not by a human's job.decide) --
SELECT v.job_id, v.iteration, v.judged::text FROM striatum.verdicts v
JOIN striatum.jobs j ON j.run_id = v.run_id AND j.job_id = v.job_id
    AND j.iteration = v.iteration
WHERE v.run_id = %(run)s AND v.job_id = ANY(%(jobs)s) AND j.verdict = 'accept'
  AND v.judged IS NOT NULL AND j.status = 'succeeded'
  AND (v.verdict = 'accept' OR (SELECT e.type FROM striatum.events e
                                WHERE e.run_id = v.run_id AND e.job_id = v.job_id
                                  AND e.type IN ('job.complete', 'job.decide')
                                ORDER BY e.seq DESC LIMIT 1) = 'job.complete')
ORDER BY v.job_id;

-- last_verdict: the reviewer's reason from its latest needs_revision --
SELECT reason FROM striatum.verdicts
WHERE run_id = %(run)s AND verdict = 'needs_revision' AND job_id = ANY(%(jobs)s)
ORDER BY created_at DESC LIMIT 1;

-- append_event: add one event to a chain (the function holds the chain rule); the new head --
SELECT seq, row_hash
FROM striatum.append_event(%(chain)s, %(repo)s, %(run)s, %(job)s, %(type)s, %(payload)s);

-- lock_chain_head: a chain's head, locked to the end of the transaction (a batch of events is hashed under it) --
SELECT seq, hash FROM striatum.chain_heads WHERE chain = %(chain)s FOR UPDATE;

-- insert_events: a batch of events hashed under the chain head's lock, in chain order, with the state columns read from each payload (as append_event reads them) --
INSERT INTO striatum.events (repo_id, seq, run_id, job_id, type, payload, previous_hash,
                             row_hash, status, iteration, attempt, executions,
                             revisions_used, fence, lease_owner, chosen, verdict, blocked_on)
SELECT %(repo)s, e.seq, e.run_id, e.job_id, e.type, e.payload, e.previous_hash, e.row_hash,
       s.status, s.iteration, s.attempt, s.executions, s.revisions_used, s.fence,
       s.lease_owner, s.chosen, s.verdict, s.blocked_on
FROM unnest(%(seq)b::bigint[], %(run)b::text[], %(job)b::text[], %(type)b::text[],
            %(payload)b::text[], %(previous_hash)b::text[], %(row_hash)b::text[])
     AS e(seq, run_id, job_id, type, payload, previous_hash, row_hash)
CROSS JOIN LATERAL (SELECT e.payload::jsonb -> 'state' AS state) p
LEFT JOIN LATERAL jsonb_to_record(CASE WHEN p.state <> 'null' THEN p.state END)
     AS s(status text, iteration integer, attempt integer, executions integer,
          revisions_used integer, fence bigint, lease_owner text, chosen text,
          verdict text, blocked_on text) ON true;

-- move_chain_head: a chain's head after a batch of events (its lock is held); the new head --
UPDATE striatum.chain_heads SET seq = %(seq)s, hash = %(hash)s, previous = %(previous)s
WHERE chain = %(chain)s
RETURNING seq, hash;

-- append_audit: add one row to the global audit chain (the function builds its payload); the new head --
SELECT seq, row_hash
FROM striatum.append_audit(%(actor)s, %(verb)s, %(args_digest)s, %(outcome)s);

-- commit_unflushed: this transaction's commit does not wait for its WAL to reach the disk (a server crash may lose it, never half of it) --
SET LOCAL synchronous_commit = off;

-- chain_head: a chain's current head --
SELECT seq, hash FROM striatum.chain_heads WHERE chain = %(chain)s;

-- runs_matching: runs whose id begins or ends with a reference, newest first --
SELECT id FROM striatum.runs
WHERE left(id, length(%(ref)s)) = %(ref)s OR right(id, length(%(ref)s)) = %(ref)s
ORDER BY created_at DESC, id DESC LIMIT 6;

-- latest_run: the newest run of a repository --
SELECT r.id FROM striatum.runs r JOIN striatum.repos p ON p.id = r.repo_id
WHERE p.path = %(repo)s ORDER BY r.created_at DESC, r.id DESC LIMIT 1;

-- list_runs: the newest runs of a repository --
SELECT r.id, r.workflow_name, r.status, r.created_at, r.updated_at,
       (SELECT coalesce(sum(executions), 0) FROM striatum.jobs j WHERE j.run_id = r.id),
       r.worst_case, p.path
FROM striatum.runs r JOIN striatum.repos p ON p.id = r.repo_id
WHERE (%(repo)s::text IS NULL OR p.path = %(repo)s)
  AND (%(status)s::text IS NULL OR r.status = %(status)s)
ORDER BY r.created_at DESC, r.id DESC
LIMIT %(limit)s;

-- run_events: a run's events after a sequence number --
SELECT seq, type, job_id, payload, row_hash, created_at FROM striatum.events
WHERE run_id = %(run)s AND seq > %(after)s
ORDER BY seq
LIMIT %(limit)s;

-- run_last_event: the newest event of a run --
SELECT seq, row_hash FROM striatum.events WHERE run_id = %(run)s ORDER BY seq DESC LIMIT 1;

-- job_record: one job, unlocked (to explain a refusal) --
SELECT * FROM striatum.job_records WHERE run_id = %(run)s AND job_id = %(job)s;

-- audit_at: one row of the audit chain --
SELECT row_hash FROM striatum.audit_log WHERE seq = %(seq)s;

-- all_repos: every repository --
SELECT id, path FROM striatum.repos ORDER BY id;

-- guards: the append-only triggers and what the runtime role may do --
SELECT
  (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'striatum' AND c.relname IN ('events', 'audit_log')
      AND t.tgname IN ('events_append_only', 'events_no_truncate', 'audit_log_append_only',
                       'audit_log_no_truncate')
      AND t.tgenabled = 'O'),
  EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'striatum_runtime'),
  (SELECT coalesce(bool_or(has_table_privilege('striatum_runtime', 'striatum.' || t,
                                               'UPDATE, DELETE, TRUNCATE')), false)
     FROM unnest(ARRAY['events', 'audit_log']) AS t
    WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'striatum_runtime'));

-- event_at: one event of a repository's chain --
SELECT row_hash FROM striatum.events WHERE repo_id = %(repo)s AND seq = %(seq)s;

-- recently_ended_runs: runs that ended lately (their manifests may be missing), or the one named --
SELECT r.id, r.artifact_root, p.path FROM striatum.runs r
JOIN striatum.repos p ON p.id = r.repo_id
WHERE r.status IN ('completed', 'failed', 'cancelled')
  AND (%(run)s::text IS NULL OR r.id = %(run)s)
  AND r.updated_at > now() - make_interval(secs => %(seconds)s);

-- runs_of_repo: the runs of a repository with their artifact roots --
SELECT r.id, r.status, r.artifact_root FROM striatum.runs r
JOIN striatum.repos p ON p.id = r.repo_id WHERE p.path = %(path)s ORDER BY r.id;

-- cancelled_as: what each job of a run was when the run's failure cancelled it, oldest first --
SELECT job_id, payload::jsonb -> 'data' ->> 'was'
FROM striatum.events
WHERE run_id = %(run)s AND type = 'job.cancel'
ORDER BY seq;

-- run_granted: how many passes humans granted a run beyond its plan (doctor counts them alike) --
SELECT count(*) FROM striatum.events
WHERE run_id = %(run)s AND type IN ('job.reset', 'job.rerun')
  AND (payload::jsonb -> 'data' -> 'granted') = 'true'::jsonb;

-- run_ending: why a run last failed or was cancelled --
SELECT type, payload::jsonb -> 'data' ->> 'reason' FROM striatum.events
WHERE run_id = %(run)s AND type IN ('run.fail', 'run.cancel')
ORDER BY seq DESC LIMIT 1;

-- run_logs: the newest published lane log of each job of a run --
SELECT DISTINCT ON (job_id) job_id, stored_at FROM striatum.artifacts
WHERE run_id = %(run)s AND path = 'logs/' || job_id || '.log'
ORDER BY job_id, iteration DESC;

-- database_identity: the id of the database that holds this record --
SELECT id::text FROM striatum.identity;

-- repo_artifacts: every artifact a repository's runs published, each iteration --
SELECT a.run_id, a.job_id, a.iteration, a.path, a.stored_at, a.sha256
FROM striatum.artifacts a
JOIN striatum.runs r ON r.id = a.run_id
JOIN striatum.repos p ON p.id = r.repo_id
WHERE p.path = %(path)s
ORDER BY a.run_id, a.job_id, a.iteration, a.path;

-- notify_ready: wake the workers listening for ready jobs (delivered at commit) --
SELECT pg_notify('striatum_ready', %(run)s);

-- listen_ready: a worker's connection listens for ready jobs --
LISTEN striatum_ready;

-- notify_cancel: tell the workers a run's leases were cancelled, so its lanes stop now (delivered at commit) --
SELECT pg_notify('striatum_cancel', %(run)s);

-- listen_cancel: a worker's connection listens for cancelled runs --
LISTEN striatum_cancel;

-- set_role_password: give a role a login with this SCRAM verifier (the owner only) --
SELECT striatum.set_role_password(%(role)s, %(verifier)s);

-- reload_configuration: the server rereads pg_hba.conf --
SELECT pg_reload_conf();

-- inbox_jobs: the jobs of live runs that wait for a human, or whose lease went quiet (a heartbeat older than a third of the lease) or expired, oldest first --
SELECT * FROM striatum.job_records j
WHERE j.status IN ('awaiting_decision', 'leased')
  AND (j.status = 'awaiting_decision' OR j.lease_expired
       OR now() - j.heartbeat_at > (j.lease_expires_at - j.heartbeat_at) / 3)
  AND EXISTS (SELECT 1 FROM striatum.run_records r
              WHERE r.id = j.run_id AND r.status IN ('running', 'blocked')
                AND (%(repo)s::text IS NULL OR r.repo_path = %(repo)s))
ORDER BY j.updated_at, j.run_id, j.position;

-- worker_seen: a worker is alive and serves this run (any when NULL) and these lanes (any when NULL), until expires_at unless it says so again --
INSERT INTO striatum.workers (name, actor, run_id, lanes, expires_at)
VALUES (%(name)s, %(actor)s, %(run)s, %(lanes)s,
        now() + make_interval(secs => %(seconds)s))
ON CONFLICT (name) DO UPDATE
   SET seen_at = now(), expires_at = now() + make_interval(secs => %(seconds)s),
       run_id = EXCLUDED.run_id, lanes = EXCLUDED.lanes;

-- worker_gone: a worker stopped; rows of workers long gone go with it --
DELETE FROM striatum.workers
WHERE name = %(name)s OR expires_at < now() - interval '1 day';

-- inbox_unserved: ready command-lane jobs of running runs that no live worker serves, oldest first --
SELECT * FROM striatum.job_records j
WHERE j.status = 'ready' AND j.lane_kind = 'command'
  AND EXISTS (SELECT 1 FROM striatum.run_records r
              WHERE r.id = j.run_id AND r.status = 'running'
                AND (%(repo)s::text IS NULL OR r.repo_path = %(repo)s))
  AND NOT EXISTS (SELECT 1 FROM striatum.workers w
                  WHERE w.expires_at > now() AND (w.run_id IS NULL OR w.run_id = j.run_id)
                    AND (w.lanes IS NULL OR j.lane = ANY (w.lanes)))
ORDER BY j.updated_at, j.run_id, j.position;

-- serving_workers: the live workers that serve a run, and the lanes each serves (NULL: every command lane) --
SELECT name, lanes FROM striatum.workers
WHERE expires_at > now() AND (run_id IS NULL OR run_id = %(run)s)
ORDER BY started_at;

-- job_leases: the newest leases a job was given (holder, pass, attempt, how each ended, the executable and model its attempt's start chained, and who started it: an operator's claim says so, a worker's names no one), with the database clock --
SELECT l.fence, l.owner, l.iteration, l.attempt, l.acquired_at, l.ended_at, l.outcome, now(),
       s.data->>'executable', s.data->>'model',
       CASE WHEN s.data IS NULL THEN NULL ELSE coalesce(s.data->>'by', 'worker') END
FROM striatum.leases l
LEFT JOIN LATERAL (
    SELECT e.payload::jsonb->'data' AS data FROM striatum.events e
    WHERE e.run_id = l.run_id AND e.job_id = l.job_id AND e.type = 'attempt.start'
      AND e.payload::jsonb->'state'->'fence' = to_jsonb(l.fence)
    -- The latest: a worker chains a second start when its lane resolves otherwise at
    -- start time than at the claim, and that one holds.
    ORDER BY e.seq DESC LIMIT 1) s ON true
WHERE l.run_id = %(run)s AND l.job_id = %(job)s
ORDER BY l.fence DESC LIMIT %(limit)s;

-- job_artifacts_every: what a job published, every pass, newest pass first --
SELECT iteration, path, stored_at, sha256, bytes FROM striatum.artifacts
WHERE run_id = %(run)s AND job_id = %(job)s
ORDER BY iteration DESC, path;

-- run_verdicts: every verdict of a run's reviews, oldest first --
SELECT job_id, iteration, verdict, reason, created_at FROM striatum.verdicts
WHERE run_id = %(run)s ORDER BY created_at, job_id;

-- run_events_page: a page of a run's events before a seq (or the newest), newest first, with what checks each row's hash --
SELECT seq, type, job_id, payload, previous_hash, row_hash, created_at FROM striatum.events
WHERE run_id = %(run)s AND (%(before)s::bigint IS NULL OR seq < %(before)s)
ORDER BY seq DESC
LIMIT %(limit)s;
