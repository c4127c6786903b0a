-- A completion as one statement, as the claim is: a task's completion locks the run
-- and the job, checks the lease, ends it, readies the jobs that were waiting only
-- for this one, appends the events and the audit row, in one call: one round trip
-- and one commit. The job's event payload is built here
-- byte for byte as striatum.audit.Event.payload builds it (a test holds the two
-- together); its "data" arrives from Python as canonical JSON text, so what the
-- data holds is decided in one place, the Python that builds it.
--
-- The function handles the common case and nothing else: whenever the change is
-- not that case (the lease is not live, an artifact is missing, the run would end,
-- the run is not running) it changes nothing and returns no row, and the caller
-- makes the change the general way, which also words every refusal.

-- A job's replayed state as the canonical JSON of striatum.records.JobRow.state.
CREATE FUNCTION striatum.job_state_text(j striatum.jobs) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
SELECT '{"attempt":' || j.attempt
    || ',"chosen":' || striatum.json_text(j.chosen)
    || ',"executions":' || j.executions
    || ',"fence":' || j.fence
    || ',"iteration":' || j.iteration
    || ',"lease_owner":' || striatum.json_text(j.lease_owner)
    || ',"revisions_used":' || j.revisions_used
    || ',"status":' || striatum.json_text(j.status)
    || ',"verdict":' || striatum.json_text(j.verdict) || '}'
$$;

-- A job event's payload, keys in canonical order; p_data is canonical JSON text.
CREATE FUNCTION striatum.job_event_text(p_type text, j striatum.jobs, p_data text)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
SELECT '{"at":"' || striatum.event_time(now()) || '","data":' || p_data
    || ',"job":' || striatum.json_text(j.job_id)
    || ',"run":' || striatum.json_text(j.run_id)
    || ',"state":' || striatum.job_state_text(j)
    || ',"type":' || striatum.json_text(p_type) || '}'
$$;

-- Readiness of successors, the database's side of striatum.runtime.engine's
-- advance: of p_dependents, the pending ones whose other needs are all settled
-- (succeeded or skipped), each locked, in the order given (the engine's). Each
-- dependent comes as [job, "needs", [its other needs]] or, when that list is the
-- longer one, [job, "rest", [the run's jobs that are neither it nor its needs]]:
-- then its unsettled needs are the run's unsettled jobs (p_unsettled, exact under
-- the run's lock, the completed job among them) less the completed job, the
-- dependent itself and the unsettled of the rest. The caller passes only jobs
-- that are no checkpoint and need none: for those, settled needs one of which
-- succeeded make the job ready, nothing else.
CREATE FUNCTION striatum.dependents_ready(p_run text, p_unsettled integer,
                                          p_dependents jsonb) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    dependent jsonb;
    name text;
    state text;
    unsettled integer;
    ready text[] := '{}';
BEGIN
    FOR dependent IN SELECT value FROM jsonb_array_elements(p_dependents) LOOP
        name := dependent->>0;
        SELECT jobs.status INTO state FROM striatum.jobs
         WHERE jobs.run_id = p_run AND jobs.job_id = name FOR UPDATE;
        CONTINUE WHEN state IS DISTINCT FROM 'pending';
        -- Settled jobs stay settled while the run's row lock is held: read unlocked.
        SELECT count(*) INTO unsettled FROM striatum.jobs
         WHERE jobs.run_id = p_run
           AND jobs.job_id IN (SELECT jsonb_array_elements_text(dependent->2))
           AND jobs.status NOT IN ('succeeded', 'skipped');
        IF dependent->>1 = 'rest' THEN
            unsettled := p_unsettled - 2 - unsettled;
        END IF;
        CONTINUE WHEN unsettled <> 0;
        ready := ready || name;
    END LOOP;
    RETURN ready;
END
$$;

-- Complete a leased task, returning the job's and its run's records as JSON; no row,
-- and nothing changed, when the change is not the common case above. (A review's
-- verdict records what its reviewer judged, read from the repository: it takes the
-- general way.)
CREATE FUNCTION striatum.complete_job(p_run text, p_job text, p_token text, p_data text,
                                      p_produces text[], p_dependents jsonb,
                                      p_actor text, p_verb text, p_args_digest text)
RETURNS TABLE (job json, run json)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    r striatum.runs;
    j striatum.jobs;
    d striatum.jobs;
    ready text[];
    name text;
    chain text;
BEGIN
    -- The run's lock first, then its jobs', as every transition takes them.
    SELECT * INTO r FROM striatum.runs WHERE runs.id = p_run FOR UPDATE;
    -- A run whose last unsettled job this is ends with it: its manifest is the
    -- general way's to write.
    IF NOT FOUND OR r.status <> 'running' OR r.unsettled <= 1 THEN
        RETURN;
    END IF;
    SELECT * INTO j FROM striatum.jobs
     WHERE jobs.run_id = p_run AND jobs.job_id = p_job FOR UPDATE;
    IF NOT FOUND OR j.status <> 'leased' OR j.lease_token IS DISTINCT FROM p_token
       OR (j.lease_expires_at IS NOT NULL AND j.lease_expires_at <= now())
       OR j.kind <> 'task' THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_produces) AS wanted(path)
                WHERE NOT EXISTS (SELECT 1 FROM striatum.artifacts a
                                   WHERE a.run_id = p_run AND a.job_id = p_job
                                     AND a.iteration = j.iteration
                                     AND a.path = wanted.path)) THEN
        RETURN;
    END IF;
    ready := striatum.dependents_ready(p_run, r.unsettled, p_dependents);

    UPDATE striatum.jobs
       SET status = 'succeeded', lease_token = NULL, lease_owner = NULL,
           lease_expires_at = NULL, heartbeat_at = NULL, updated_at = now()
     WHERE jobs.run_id = p_run AND jobs.job_id = p_job
    RETURNING * INTO j;
    UPDATE striatum.leases SET ended_at = now(), outcome = 'complete'
     WHERE leases.run_id = p_run AND leases.job_id = p_job AND leases.fence = j.fence
       AND leases.ended_at IS NULL;
    UPDATE striatum.runs SET unsettled = runs.unsettled - 1, updated_at = now()
     WHERE runs.id = p_run;

    chain := 'repo:' || r.repo_id;
    PERFORM striatum.append_event(chain, r.repo_id, p_run, p_job, 'job.complete',
                                  striatum.job_event_text('job.complete', j, p_data));
    FOREACH name IN ARRAY ready LOOP
        -- A pass starts here; retries of the same pass do not count again.
        UPDATE striatum.jobs
           SET status = 'ready', executions = jobs.executions + 1, attempt = 0,
               lease_expires_at = NULL, heartbeat_at = NULL, updated_at = now()
         WHERE jobs.run_id = p_run AND jobs.job_id = name
        RETURNING * INTO d;
        PERFORM striatum.append_event(chain, r.repo_id, p_run, name, 'job.ready',
                                      striatum.job_event_text('job.ready', d, '{}'));
    END LOOP;
    IF cardinality(ready) > 0 THEN
        PERFORM pg_notify('striatum_ready', p_run);
    END IF;
    PERFORM striatum.append_audit(p_actor, p_verb, p_args_digest, 'ok');

    RETURN QUERY SELECT row_to_json(jr), row_to_json(rr)
        FROM striatum.job_records jr, striatum.run_records rr
       WHERE jr.run_id = p_run AND jr.job_id = p_job AND rr.id = p_run;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'striatum_runtime') THEN
        GRANT EXECUTE ON FUNCTION
            striatum.job_state_text(striatum.jobs),
            striatum.job_event_text(text, striatum.jobs, text),
            striatum.dependents_ready(text, integer, jsonb),
            striatum.complete_job(text, text, text, text, text[], jsonb, text, text, text)
            TO striatum_runtime;
    END IF;
EXCEPTION
    WHEN insufficient_privilege OR invalid_grant_operation THEN
        RAISE NOTICE 'striatum: could not grant striatum_runtime the completion function';
END
$$;
