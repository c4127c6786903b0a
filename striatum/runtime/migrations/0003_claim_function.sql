-- A claim as one statement: find, lock and lease the job, record the lease and
-- append the chained event in one call, so a claim is one round trip and one
-- commit. The event's payload is built here, byte for byte the canonical JSON
-- that striatum.audit.Event.payload builds (a test holds the two together).

-- A string as canonical JSON (keys aside, the text form json.dumps gives with
-- ensure_ascii=False: the same escapes for quote, backslash and control characters).
CREATE FUNCTION striatum.json_text(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT coalesce(to_json(value)::text, 'null') $$;

-- The one place a chain grows: the head's row lock serializes appenders, and the
-- new hash is sha256(previous hash || payload) over UTF-8 text. PL/pgSQL, not SQL:
-- its statements' plans are kept for the session instead of made on every call.
CREATE FUNCTION striatum.append_event(p_chain text, p_repo bigint, p_run text, p_job text,
                                      p_type text, p_payload text,
                                      OUT seq bigint, OUT row_hash text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    before text;
BEGIN
    UPDATE striatum.chain_heads
       SET seq = chain_heads.seq + 1, previous = chain_heads.hash,
           hash = encode(sha256(convert_to(chain_heads.hash || p_payload, 'UTF8')), 'hex')
     WHERE chain_heads.chain = p_chain
    RETURNING chain_heads.seq, chain_heads.previous, chain_heads.hash
         INTO seq, before, row_hash;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'striatum: no chain %', p_chain USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO striatum.events (repo_id, seq, run_id, job_id, type, payload, previous_hash,
                                 row_hash)
    VALUES (p_repo, seq, p_run, p_job, p_type, p_payload, before, row_hash);
END
$$;

-- The event time as striatum.audit.iso writes it: UTC, microseconds, "+00:00".
CREATE FUNCTION striatum.event_time(at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00' $$;

-- Does the text of an event's (or audit row's) hashed time name the instant the
-- row was stored at, whatever zone either was written in? Text in UTC, as every
-- event is now written, is compared as text; other text is cast, and only once
-- it is well formed (so a forged time is a finding, never an error). Inlined.
CREATE FUNCTION striatum.names_instant(at text, moment timestamptz) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
SELECT CASE WHEN at = to_char(moment AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US+00:00')
            THEN true
            WHEN at ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d$'
            THEN at::timestamptz = moment
            ELSE false END
$$;

-- Lease the first ready job of a running run (any run when p_run is null; the
-- oldest run first), skipping rows others hold. Returns the job's new row, its
-- run's row and the clock, or no row when nothing is ready.
CREATE FUNCTION striatum.claim_job(p_run text, p_lanes text[], p_lane_kinds text[],
                                   p_owner text, p_secret text, p_lease_seconds integer)
RETURNS TABLE (job_id text, "position" integer, kind text, lane text, lane_kind text,
               status text, iteration integer, attempt integer, max_attempts integer,
               executions integer, revisions_used integer, fence bigint, lease_token text,
               lease_owner text, lease_expires_at timestamptz, chosen text, verdict text,
               reason text, expired boolean,
               run_id text, repo_id bigint, workflow_digest text, workflow_name text,
               run_status text, vars jsonb, artifact_root text, worst_case integer,
               blocked_on text, repo_path text, base_commit text, at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    found_run text;
    found_job text;
    j striatum.jobs;
    r striatum.runs;
    path text;
    payload text;
BEGIN
    -- Run by run, oldest first, each probed through its ready index in file order
    -- and stopped at the first free job: a claim costs the same whether a run has
    -- one ready job or thousands. A loop, so the order and the single lock taken do
    -- not depend on the plan a join would get.
    FOR found_run IN
        SELECT runs.id FROM striatum.runs
         WHERE runs.status = 'running' AND (p_run IS NULL OR runs.id = p_run)
         ORDER BY runs.created_at, runs.id
    LOOP
        SELECT jobs.job_id INTO found_job FROM striatum.jobs
         WHERE jobs.run_id = found_run AND jobs.status = 'ready' AND jobs.kind <> 'checkpoint'
           AND (p_lanes IS NULL OR jobs.lane = ANY(p_lanes))
           AND (p_lane_kinds IS NULL OR jobs.lane_kind = ANY(p_lane_kinds))
         ORDER BY jobs.position
         LIMIT 1
         FOR UPDATE SKIP LOCKED;
        EXIT WHEN found_job IS NOT NULL;
    END LOOP;
    IF found_job IS NULL THEN
        RETURN;
    END IF;

    UPDATE striatum.jobs
       SET status = 'leased', fence = jobs.fence + 1,
           lease_token = (jobs.fence + 1)::text || '-' || p_secret,
           lease_owner = p_owner,
           lease_expires_at = now() + make_interval(secs => p_lease_seconds),
           heartbeat_at = now(), updated_at = now()
     WHERE jobs.run_id = found_run AND jobs.job_id = found_job
    RETURNING * INTO j;
    SELECT * INTO r FROM striatum.runs WHERE runs.id = found_run;
    SELECT repos.path INTO path FROM striatum.repos WHERE repos.id = r.repo_id;

    INSERT INTO striatum.leases (run_id, job_id, fence, owner, iteration, attempt)
    VALUES (j.run_id, j.job_id, j.fence, p_owner, j.iteration, j.attempt);

    payload := '{"at":"' || striatum.event_time(now())
        || '","data":{"lease_seconds":' || p_lease_seconds
        || ',"owner":' || striatum.json_text(p_owner)
        || '},"job":' || striatum.json_text(j.job_id)
        || ',"run":' || striatum.json_text(j.run_id)
        || ',"state":{"attempt":' || j.attempt
        || ',"chosen":' || striatum.json_text(j.chosen)
        || ',"executions":' || j.executions
        || ',"fence":' || j.fence
        || ',"iteration":' || j.iteration
        || ',"lease_owner":' || striatum.json_text(j.lease_owner)
        || ',"revisions_used":' || j.revisions_used
        || ',"status":' || striatum.json_text(j.status)
        || ',"verdict":' || striatum.json_text(j.verdict)
        || '},"type":"job.claim"}';
    PERFORM striatum.append_event('repo:' || r.repo_id, r.repo_id, j.run_id, j.job_id,
                                  'job.claim', payload);

    RETURN QUERY SELECT j.job_id, j.position, j.kind, j.lane, j.lane_kind, j.status,
        j.iteration, j.attempt, j.max_attempts, j.executions, j.revisions_used, j.fence,
        j.lease_token, j.lease_owner, j.lease_expires_at, j.chosen, j.verdict, j.reason,
        false, r.id, r.repo_id, r.workflow_digest, r.workflow_name, r.status, r.vars,
        r.artifact_root, r.worst_case, r.blocked_on, path, r.base_commit, now();
END
$$;

-- The runtime role runs these (as itself: they are SECURITY INVOKER), also where
-- functions are not executable by PUBLIC by default.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'striatum_runtime') THEN
        GRANT EXECUTE ON FUNCTION striatum.json_text(text), striatum.event_time(timestamptz),
            striatum.names_instant(text, timestamptz),
            striatum.append_event(text, bigint, text, text, text, text),
            striatum.claim_job(text, text[], text[], text, text, integer)
            TO striatum_runtime;
    END IF;
EXCEPTION
    WHEN insufficient_privilege OR invalid_grant_operation THEN
        RAISE NOTICE 'striatum: could not grant striatum_runtime the runtime functions';
END
$$;
