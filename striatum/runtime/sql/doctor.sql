-- The queries of `striatum doctor`, each under a "-- name: what it does --" header.
-- Parameters are bound (%(name)s); nothing here is ever formatted into.
--
-- Doctor verifies in the server so that, when the record is intact, no payload
-- crosses to Python: each query returns only the rows that are wrong (none on
-- the happy path), plus counts and heads. Problems are named by code; doctor.py
-- words them and picks, per chain, the first by (seq, the code's rank).

-- doctor_snapshot: every doctor query reads one snapshot, so a writer appending between two of them cannot look like a removed or extra row --
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;

-- doctor_no_jit: for doctor's transaction only: compiling its one-pass queries costs seconds and saves less --
SELECT set_config('jit', 'off', true);

-- doctor_leader_merges: for doctor's transaction only: the parallel workers parse and hash the payloads while the leader only merges their sorted rows (taking a share too made it the bottleneck: 17 s against 11 s for a million events on two cores); with no worker to be had, the leader still runs the plan itself --
SELECT set_config('parallel_leader_participation', 'off', true);

-- doctor_catalog_path: for doctor's transaction only: the catalogs print every name qualified (events_columns_hashed's definition is compared as printed), whatever the role's or the session's search path --
SELECT set_config('search_path', 'pg_catalog', true);

-- doctor_event_tail: how many rows a repository chain has, its lowest seq, and its last row --
SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0),
       (SELECT row_hash FROM striatum.events
         WHERE repo_id = %(repo)s ORDER BY seq DESC LIMIT 1)
FROM striatum.events WHERE repo_id = %(repo)s;

-- doctor_event_links: the first row of a repository chain whose seq or previous_hash does not follow the row before, or (hashes on) whose row_hash is not the hash of its bytes; the payload is read only for that --
SELECT seq, expected, linked
FROM (SELECT seq, lag(seq, 1, 0::bigint) OVER chain + 1 AS expected,
             previous_hash = lag(row_hash, 1, %(genesis)s::text) OVER chain AS linked,
             CASE WHEN %(hashes)s THEN encode(sha256(convert_to(previous_hash || payload,
                                                                'UTF8')), 'hex') = row_hash
             END AS hashed
      FROM striatum.events WHERE repo_id = %(repo)s
      WINDOW chain AS (ORDER BY seq)) rows
WHERE seq <> expected OR NOT linked OR NOT hashed
ORDER BY seq LIMIT 1;

-- doctor_event_contents: what is wrong with a repository's events and the jobs and runs they replay to; no row when nothing is --
-- One pass over the payloads (parsed once, by jsonb): each row's hash, its
-- columns against the hashed payload, then the replay: every step of a run or
-- a job must be a transition the machines allow (the legal (type, from, to)
-- triples are bound arrays generated from machine.py), and the jobs and runs
-- tables must hold the state of each one's last event. The cut is NULL unless
-- a payload at that seq does not parse: it and the rows after it are then
-- reported as unparsable (the first) or left out (the rest), as rows after a
-- broken link always were.
WITH observed AS (
    SELECT e.seq, e.run_id, e.type, k.problem, k.granted, o.entity, o.job_key, o.state,
           o.status, o.own
    FROM striatum.events e
    LEFT JOIN LATERAL jsonb_to_record(
            CASE WHEN e.seq < %(cut)s::bigint OR %(cut)s::bigint IS NULL
                 THEN e.payload::jsonb END)
         AS x(at text, run text, job text, type text, state jsonb, data jsonb) ON true
    LEFT JOIN LATERAL jsonb_to_record(CASE WHEN x.state <> 'null' THEN x.state END)
         AS s(status text, iteration integer, attempt integer, executions integer,
              revisions_used integer, fence bigint, lease_owner text, chosen text,
              verdict text, blocked_on text) ON true
    -- A lateral join, not plain expressions: the planner then computes these
    -- here, in the (possibly parallel) scan, instead of carrying payload and
    -- data through the window's sort to compute them above it.
    LEFT JOIN LATERAL (
        SELECT CASE WHEN encode(sha256(convert_to(e.previous_hash || e.payload, 'UTF8')), 'hex')
                         <> e.row_hash THEN 'hash'
                    WHEN e.seq >= %(cut)s::bigint
                    THEN CASE WHEN e.seq = %(cut)s::bigint THEN 'json' END
                    WHEN x.run IS DISTINCT FROM e.run_id OR x.job IS DISTINCT FROM e.job_id
                      OR x.type IS DISTINCT FROM e.type
                      -- The state columns the default replay reads (migration 0013).
                      OR (s.status, s.iteration, s.attempt, s.executions, s.revisions_used,
                          s.fence, s.lease_owner, s.chosen, s.verdict, s.blocked_on)
                         IS DISTINCT FROM
                         (e.status, e.iteration, e.attempt, e.executions, e.revisions_used,
                          e.fence, e.lease_owner, e.chosen, e.verdict, e.blocked_on)
                      THEN 'columns'
                    -- The hashed time is the row's own instant, whatever zone either
                    -- was written in.
                    WHEN NOT striatum.names_instant(x.at, e.created_at) THEN 'time'
               END AS problem,
               CASE WHEN e.run_id IS NULL OR e.seq >= %(cut)s::bigint THEN NULL
                    WHEN starts_with(e.type, 'run.') THEN 'run'
                    WHEN starts_with(e.type, 'job.') AND e.job_id IS NOT NULL THEN 'job'
               END AS entity,
               -- A pass a human granted beyond the plan (Python's truthiness).
               e.type = 'job.reset' AND e.run_id IS NOT NULL AND e.job_id IS NOT NULL
                 AND coalesce(x.data->'granted', 'null')
                     NOT IN ('null', 'false', '0', '""', '[]', '{}') AS granted
    ) k ON true
    -- The event itself, and for run.prepare one more row per job: the state
    -- each job starts from.
    CROSS JOIN LATERAL (
        SELECT k.entity, CASE WHEN k.entity = 'job' THEN e.job_id END AS job_key,
               CASE WHEN k.entity IS NOT NULL THEN x.state END AS state,
               CASE WHEN k.entity IS NOT NULL THEN x.state->>'status' END AS status, true AS own
        UNION ALL
        SELECT 'job', key, value, value->>'status', false
        FROM jsonb_each(CASE WHEN e.type = 'run.prepare' AND k.entity = 'run'
                                  AND jsonb_typeof(x.data->'jobs') = 'object'
                             THEN x.data->'jobs' END)
    ) o
    WHERE e.repo_id = %(repo)s
), stepped AS (
    SELECT *,
           own AND entity IS NOT NULL AND type <> 'run.prepare'
             AND NOT (known AND coalesce((type, before, status) IN (
                 SELECT * FROM unnest(%(legal_types)s::text[], %(legal_from)s::text[],
                                      %(legal_to)s::text[])), false)) AS illegal
    FROM (SELECT *, lag(status) OVER steps AS before,
                 coalesce(lag(true) OVER steps, false) AS known,
                 lead(seq) OVER steps IS NULL AS last
          FROM observed
          WINDOW steps AS (PARTITION BY run_id, entity, job_key ORDER BY seq)) windowed
), found AS MATERIALIZED (
    SELECT seq, run_id, type, problem, granted, entity, job_key, state, before, status,
           known, last, illegal
    FROM stepped
    WHERE problem IS NOT NULL OR granted OR illegal OR (last AND entity IS NOT NULL)
), jobs AS (
    SELECT j.run_id, j.job_id, j.position, f.state AS replayed,
           jsonb_build_object('status', j.status, 'iteration', j.iteration,
                              'attempt', j.attempt, 'executions', j.executions,
                              'revisions_used', j.revisions_used, 'fence', j.fence,
                              'lease_owner', j.lease_owner, 'chosen', j.chosen,
                              'verdict', j.verdict) AS actual,
           f.state IS NOT NULL
             AND coalesce(f.state->'status', 'null') = to_jsonb(j.status)
             AND coalesce(f.state->'iteration', 'null') = to_jsonb(j.iteration)
             AND coalesce(f.state->'attempt', 'null') = to_jsonb(j.attempt)
             AND coalesce(f.state->'executions', 'null') = to_jsonb(j.executions)
             AND coalesce(f.state->'revisions_used', 'null') = to_jsonb(j.revisions_used)
             AND coalesce(f.state->'fence', 'null') = to_jsonb(j.fence)
             AND coalesce(f.state->'lease_owner', 'null')
                 = coalesce(to_jsonb(j.lease_owner), 'null')
             AND coalesce(f.state->'chosen', 'null') = coalesce(to_jsonb(j.chosen), 'null')
             AND coalesce(f.state->'verdict', 'null') = coalesce(to_jsonb(j.verdict), 'null')
             AS matches
    FROM striatum.jobs j JOIN striatum.runs r ON r.id = j.run_id
    LEFT JOIN found f
           ON f.entity = 'job' AND f.last AND f.run_id = j.run_id AND f.job_key = j.job_id
    WHERE r.repo_id = %(repo)s
), runs AS (
    SELECT r.id, f.state AS replayed,
           jsonb_build_object('status', r.status, 'blocked_on', r.blocked_on) AS actual,
           f.state IS NOT NULL
             AND coalesce(f.state->'status', 'null') = to_jsonb(r.status)
             AND coalesce(f.state->'blocked_on', 'null')
                 = coalesce(to_jsonb(r.blocked_on), 'null') AS matches,
           r.worst_case, coalesce(g.granted, 0) AS granted,
           e.executions, r.unsettled, e.unsettled AS counted
    FROM striatum.runs r
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(j.executions), 0) AS executions,
               count(*) FILTER (WHERE j.status NOT IN ('succeeded', 'skipped')) AS unsettled
        FROM striatum.jobs j WHERE j.run_id = r.id) e
    LEFT JOIN found f ON f.entity = 'run' AND f.last AND f.run_id = r.id
    LEFT JOIN (SELECT run_id, count(*) AS granted FROM found WHERE granted GROUP BY run_id) g
           ON g.run_id = r.id
    WHERE r.repo_id = %(repo)s
)
(SELECT 'payload' AS kind, seq, run_id, NULL AS job_id,
        jsonb_build_object('problem', problem) AS facts
 FROM found WHERE problem IS NOT NULL ORDER BY seq LIMIT 1)
UNION ALL
(SELECT 'transition', seq, run_id, job_key,
        jsonb_build_object('type', type, 'known', known, 'from', before, 'to', status)
 FROM found WHERE illegal ORDER BY seq LIMIT 1)
UNION ALL
(SELECT 'job', NULL, run_id, job_id,
        jsonb_build_object('table', actual, 'events', replayed, 'count', count(*) OVER ())
 FROM jobs WHERE NOT matches ORDER BY run_id, position LIMIT 1)
UNION ALL
(SELECT 'run', NULL, id, NULL,
        jsonb_build_object('table', actual, 'events', replayed, 'matches', matches,
                           'executions', executions, 'worst_case', worst_case,
                           'granted', granted, 'unsettled', unsettled, 'counted', counted)
 FROM runs WHERE NOT matches OR executions > worst_case + granted OR unsettled <> counted
 ORDER BY id);

-- doctor_event_columns: what is wrong with the steps of a repository's runs and jobs and the table rows they replay to, read from the events' typed columns (a validated events_columns_hashed proves they say what each hashed payload says); no row when nothing is --
-- The same findings as doctor_event_contents but the payload's: the hashes are checked
-- with the links (doctor_event_links, hashes on), and no payload is parsed but those
-- whose data the replay needs: run.prepare (the state each job starts from) and
-- job.reset (a pass a human granted). Only the rows of a run or a job enter the sort.
WITH observed AS (
    SELECT e.seq, e.run_id, e.type, k.entity,
           CASE WHEN k.entity = 'job' THEN e.job_id END AS job_key, k.granted,
           e.status, e.iteration, e.attempt, e.executions, e.revisions_used, e.fence,
           e.lease_owner, e.chosen, e.verdict, e.blocked_on, true AS own
    FROM striatum.events e
    -- A lateral join, so that these are computed in the scan, not above the sort.
    LEFT JOIN LATERAL (
        SELECT CASE WHEN starts_with(e.type, 'run.') THEN 'run'
                    WHEN starts_with(e.type, 'job.') AND e.job_id IS NOT NULL THEN 'job'
               END AS entity,
               e.type = 'job.reset' AND e.job_id IS NOT NULL
                 AND coalesce((CASE WHEN e.type = 'job.reset' THEN e.payload::jsonb END)
                              -> 'data' -> 'granted', 'null')
                     NOT IN ('null', 'false', '0', '""', '[]', '{}') AS granted
    ) k ON true
    WHERE e.repo_id = %(repo)s AND e.run_id IS NOT NULL AND k.entity IS NOT NULL
    UNION ALL
    SELECT e.seq, e.run_id, e.type, 'job', j.key, false, s.status, n.iteration, n.attempt,
           n.executions, n.revisions_used, n.fence, s.lease_owner, s.chosen, s.verdict,
           s.blocked_on, false
    FROM striatum.events e
    -- Parsed once (OFFSET 0 keeps the planner from copying the expression into each use).
    CROSS JOIN LATERAL (SELECT e.payload::jsonb -> 'data' -> 'jobs' AS jobs OFFSET 0) p
    CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(p.jobs) = 'object' THEN p.jobs END) j
    -- The constraint does not cover `data`: the counts are read as text, and one that is
    -- not a whole number in range (an owner's edit) reads as NULL, where a cast in
    -- jsonb_to_record would fail the whole query: the replay then reports the job, and
    -- the hash check the edited row.
    LEFT JOIN LATERAL jsonb_to_record(CASE WHEN jsonb_typeof(j.value) = 'object'
                                           THEN j.value END)
         AS s(status text, iteration text, attempt text, executions text,
              revisions_used text, fence text, lease_owner text, chosen text,
              verdict text, blocked_on text) ON true
    CROSS JOIN LATERAL (
        SELECT CASE WHEN s.iteration ~ '^-?[0-9]{1,9}$' THEN s.iteration::integer END
                 AS iteration,
               CASE WHEN s.attempt ~ '^-?[0-9]{1,9}$' THEN s.attempt::integer END AS attempt,
               CASE WHEN s.executions ~ '^-?[0-9]{1,9}$' THEN s.executions::integer END
                 AS executions,
               CASE WHEN s.revisions_used ~ '^-?[0-9]{1,9}$'
                    THEN s.revisions_used::integer END AS revisions_used,
               CASE WHEN s.fence ~ '^-?[0-9]{1,18}$' THEN s.fence::bigint END AS fence
    ) n
    WHERE e.repo_id = %(repo)s AND e.run_id IS NOT NULL AND starts_with(e.type, 'run.')
      AND e.type = 'run.prepare'
), stepped AS (
    SELECT *,
           own AND type <> 'run.prepare'
             AND NOT (known AND coalesce((type, before, status) IN (
                 SELECT * FROM unnest(%(legal_types)s::text[], %(legal_from)s::text[],
                                      %(legal_to)s::text[])), false)) AS illegal
    FROM (SELECT *, lag(status) OVER steps AS before,
                 coalesce(lag(true) OVER steps, false) AS known,
                 lead(seq) OVER steps IS NULL AS last
          FROM observed
          -- A run's own steps have no job_key: the runs and each of their jobs apart.
          -- Bytewise order is enough to group them, and cheaper to sort by.
          WINDOW steps AS (PARTITION BY run_id COLLATE "C", job_key COLLATE "C"
                           ORDER BY seq)) windowed
), found AS MATERIALIZED (
    SELECT * FROM stepped WHERE granted OR illegal OR last
), jobs AS (
    SELECT j.run_id, j.job_id, j.position,
           CASE WHEN f.run_id IS NOT NULL THEN jsonb_build_object(
               'status', f.status, 'iteration', f.iteration, 'attempt', f.attempt,
               'executions', f.executions, 'revisions_used', f.revisions_used,
               'fence', f.fence, 'lease_owner', f.lease_owner, 'chosen', f.chosen,
               'verdict', f.verdict) END AS replayed,
           jsonb_build_object('status', j.status, 'iteration', j.iteration,
                              'attempt', j.attempt, 'executions', j.executions,
                              'revisions_used', j.revisions_used, 'fence', j.fence,
                              'lease_owner', j.lease_owner, 'chosen', j.chosen,
                              'verdict', j.verdict) AS actual,
           f.run_id IS NOT NULL
             AND (f.status, f.iteration, f.attempt, f.executions, f.revisions_used, f.fence,
                  f.lease_owner, f.chosen, f.verdict)
                 IS NOT DISTINCT FROM
                 (j.status, j.iteration, j.attempt, j.executions, j.revisions_used, j.fence,
                  j.lease_owner, j.chosen, j.verdict) AS matches
    FROM striatum.jobs j JOIN striatum.runs r ON r.id = j.run_id
    -- The job_key itself says a row is a job's (no guess of how many rows entity = 'job'
    -- keeps leads the planner to a nested loop over every job and every found row).
    LEFT JOIN found f ON f.last AND f.run_id = j.run_id AND f.job_key = j.job_id
    WHERE r.repo_id = %(repo)s
), runs AS (
    SELECT r.id,
           CASE WHEN f.run_id IS NOT NULL
                THEN jsonb_build_object('status', f.status, 'blocked_on', f.blocked_on)
           END AS replayed,
           jsonb_build_object('status', r.status, 'blocked_on', r.blocked_on) AS actual,
           f.run_id IS NOT NULL
             AND (f.status, f.blocked_on) IS NOT DISTINCT FROM (r.status, r.blocked_on)
             AS matches,
           r.worst_case, coalesce(g.granted, 0) AS granted,
           e.executions, r.unsettled, e.unsettled AS counted
    FROM striatum.runs r
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(j.executions), 0) AS executions,
               count(*) FILTER (WHERE j.status NOT IN ('succeeded', 'skipped')) AS unsettled
        FROM striatum.jobs j WHERE j.run_id = r.id) e
    LEFT JOIN found f ON f.last AND f.run_id = r.id AND f.job_key IS NULL
    LEFT JOIN (SELECT run_id, count(*) AS granted FROM found WHERE granted GROUP BY run_id) g
           ON g.run_id = r.id
    WHERE r.repo_id = %(repo)s
)
(SELECT 'transition' AS kind, seq, run_id, job_key AS job_id,
        jsonb_build_object('type', type, 'known', known, 'from', before, 'to', status)
        AS facts
 FROM found WHERE illegal ORDER BY seq LIMIT 1)
UNION ALL
(SELECT 'job', NULL, run_id, job_id,
        jsonb_build_object('table', actual, 'events', replayed, 'count', count(*) OVER ())
 FROM jobs WHERE NOT matches ORDER BY run_id, position LIMIT 1)
UNION ALL
(SELECT 'run', NULL, id, NULL,
        jsonb_build_object('table', actual, 'events', replayed, 'matches', matches,
                           'executions', executions, 'worst_case', worst_case,
                           'granted', granted, 'unsettled', unsettled, 'counted', counted)
 FROM runs WHERE NOT matches OR executions > worst_case + granted OR unsettled <> counted
 ORDER BY id);

-- doctor_columns_proven: what proves that events_columns_hashed holds for every row: one row when the constraint is there: validated, printed as expected, and what the functions it calls are (found through pg_depend, not by name: an overload must not stand in), each checked against striatum.event_agrees as migration 0013 wrote it (its source's md5 is bound: a replaced function proves nothing) --
SELECT c.convalidated AS validated,
       pg_get_constraintdef(c.oid) = %(definition)s AS written,
       (SELECT count(*) FROM pg_proc q JOIN pg_namespace qn ON qn.oid = q.pronamespace
         WHERE qn.nspname = 'striatum' AND q.proname = 'event_agrees') AS namesakes,
       f.called, f.named, f.not_strict, f.plpgsql, f.boolean, f.source, f.path, f.invoker
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
CROSS JOIN LATERAL (
    SELECT count(*) AS called,
           coalesce(bool_and(pn.nspname = 'striatum' AND p.proname = 'event_agrees'), false)
             AS named,
           coalesce(bool_and(NOT p.proisstrict), false) AS not_strict,
           coalesce(bool_and(l.lanname = 'plpgsql'), false) AS plpgsql,
           coalesce(bool_and(p.prorettype = 'bool'::regtype AND NOT p.proretset), false)
             AS boolean,
           coalesce(bool_and(md5(p.prosrc) = %(source_md5)s), false) AS source,
           coalesce(bool_and(p.proconfig IS NOT DISTINCT FROM %(config)s::text[]), false)
             AS path,
           coalesce(bool_and(NOT p.prosecdef), false) AS invoker
    FROM pg_depend d
    JOIN pg_proc p ON p.oid = d.refobjid
    JOIN pg_namespace pn ON pn.oid = p.pronamespace
    JOIN pg_language l ON l.oid = p.prolang
    WHERE d.classid = 'pg_constraint'::regclass AND d.objid = c.oid
      AND d.refclassid = 'pg_proc'::regclass) f
WHERE n.nspname = 'striatum' AND t.relname = 'events'
  AND c.conname = 'events_columns_hashed' AND c.contype = 'c';

-- doctor_event_parses: count the payloads in a seq range that parse as JSON objects; an error when one does not (to find the first) --
SELECT count(x.at)
FROM striatum.events e
CROSS JOIN LATERAL jsonb_to_record(e.payload::jsonb) AS x(at jsonb)
WHERE e.repo_id = %(repo)s AND e.seq BETWEEN %(low)s AND %(high)s;

-- doctor_event_payloads: a repository chain's payloads in order (doctor --strict re-encodes each) --
SELECT seq, payload FROM striatum.events WHERE repo_id = %(repo)s ORDER BY seq;

-- doctor_audit_tail: how many rows the audit chain has, its lowest seq, and its last row --
SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0),
       (SELECT row_hash FROM striatum.audit_log ORDER BY seq DESC LIMIT 1)
FROM striatum.audit_log;

-- doctor_audit_links: the first row of the audit chain whose seq or previous_hash does not follow the row before --
SELECT seq, expected, linked
FROM (SELECT seq, lag(seq, 1, 0::bigint) OVER chain + 1 AS expected,
             previous_hash = lag(row_hash, 1, %(genesis)s::text) OVER chain AS linked
      FROM striatum.audit_log
      WINDOW chain AS (ORDER BY seq)) rows
WHERE seq <> expected OR NOT linked
ORDER BY seq LIMIT 1;

-- doctor_audit_contents: the first audit row whose hash, or whose columns against its hashed payload, are wrong (cut: as in doctor_event_contents) --
SELECT seq, problem
FROM (SELECT a.seq,
             CASE WHEN encode(sha256(convert_to(a.previous_hash || a.payload, 'UTF8')), 'hex')
                       <> a.row_hash THEN 'hash'
                  WHEN a.seq >= %(cut)s::bigint
                  THEN CASE WHEN a.seq = %(cut)s::bigint THEN 'json' END
                  WHEN x.actor IS DISTINCT FROM a.actor OR x.verb IS DISTINCT FROM a.verb
                    OR x.args_digest IS DISTINCT FROM a.args_digest
                    OR x.outcome IS DISTINCT FROM a.outcome THEN 'columns'
                  WHEN NOT striatum.names_instant(x.at, a.created_at) THEN 'time'
             END AS problem
      FROM striatum.audit_log a
      LEFT JOIN LATERAL jsonb_to_record(
              CASE WHEN a.seq < %(cut)s::bigint OR %(cut)s::bigint IS NULL
                   THEN a.payload::jsonb END)
           AS x(at text, actor text, verb text, args_digest text, outcome text) ON true
     ) rows
WHERE problem IS NOT NULL
ORDER BY seq LIMIT 1;

-- doctor_audit_parses: count the audit payloads in a seq range that parse as JSON objects; an error when one does not --
SELECT count(x.at)
FROM striatum.audit_log a
CROSS JOIN LATERAL jsonb_to_record(a.payload::jsonb) AS x(at jsonb)
WHERE a.seq BETWEEN %(low)s AND %(high)s;

-- doctor_audit_payloads: the audit chain's payloads in order (doctor --strict) --
SELECT seq, payload FROM striatum.audit_log ORDER BY seq;

-- doctor_rpc_rows: the first audit row a face wrote (its actor names `daemon:`) whose actor, verb, outcome or capability is not of a form the daemon writes, and how many are wrong (verbs: the registry's and the core's names; codes: errors.py's; reads, lease_verbs: the registry's verbs a viewer, a lease may call) --
WITH faced AS (
    SELECT seq, actor, verb, outcome,
           substring(actor FROM ' daemon:([a-z]+)$') AS held
    FROM striatum.audit_log
    WHERE actor ~ '(^|\s)daemon:'
), judged AS (
    SELECT seq, actor, verb, outcome,
           CASE WHEN held IS NULL OR held NOT IN ('principal', 'viewer', 'lease', 'none')
                  OR actor !~ '^\S.* daemon:[a-z]+$' THEN 'actor'
                WHEN NOT verb = ANY(%(verbs)s::text[]) AND outcome <> 'usage' THEN 'verb'
                WHEN outcome <> 'ok' AND NOT outcome = ANY(%(codes)s::text[]) THEN 'outcome'
                WHEN outcome = 'ok' AND (
                       held = 'none'
                    OR held = 'viewer' AND NOT verb = ANY(%(reads)s::text[])
                    OR held = 'lease' AND position('.' IN verb) > 0
                       AND NOT verb = ANY(%(lease_verbs)s::text[])) THEN 'capability'
           END AS problem
    FROM faced
)
SELECT (SELECT count(*) FROM faced), (SELECT count(*) FROM judged WHERE problem IS NOT NULL),
       first.seq, first.actor, first.verb, first.outcome, first.problem
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (SELECT * FROM judged WHERE problem IS NOT NULL ORDER BY seq LIMIT 1)
       AS first ON true;

-- doctor_rpc_changes: the first event, since the first audit row a face wrote, that shares its transaction with no audit row of outcome ok (the same created_at: now() is the transaction's start, and both tables take it), and how many there are --
SELECT count(*) OVER (), e.repo_id, e.seq, e.run_id, e.job_id, e.type
FROM striatum.events e
WHERE e.created_at >= (SELECT min(created_at) FROM striatum.audit_log
                       WHERE actor ~ '(^|\s)daemon:')
  AND NOT EXISTS (SELECT 1 FROM striatum.audit_log a
                  WHERE a.created_at = e.created_at AND a.outcome = 'ok')
ORDER BY e.created_at, e.repo_id, e.seq LIMIT 1;

-- doctor_verdict_runs: the runs with a verdict that records digests, and their workflows --
SELECT DISTINCT r.id, r.workflow_digest FROM striatum.runs r
JOIN striatum.verdicts v ON v.run_id = r.id WHERE v.judged IS NOT NULL ORDER BY r.id;

-- doctor_verdict_uses: of some runs, the events that tie a job's start to the verdicts it needs (accepts, resets, decisions, claims, uses, completions) --
SELECT e.run_id, e.job_id, e.type, e.seq, (e.payload::jsonb -> 'data')::text,
       (e.payload::jsonb -> 'state' ->> 'fence')::bigint
FROM striatum.events e
WHERE e.run_id = ANY(%(runs)s) AND e.job_id IS NOT NULL
  AND e.type IN ('job.complete', 'job.reset', 'job.decide', 'job.claim', 'verdict.used',
                 'job.escalate')
ORDER BY e.repo_id, e.seq;

-- doctor_spent_cost: the runs whose spent_cost is not the sum of the cost of their budget.usage events (the first few), and how many there are --
SELECT r.id, r.spent_cost, coalesce(u.cost, 0), count(*) OVER ()
FROM striatum.runs r
LEFT JOIN (SELECT run_id, sum(((payload::jsonb -> 'data') ->> 'cost')::bigint) AS cost
           FROM striatum.events WHERE type = 'budget.usage' GROUP BY run_id) u
       ON u.run_id = r.id
WHERE r.spent_cost <> coalesce(u.cost, 0)
ORDER BY r.id LIMIT 10;
