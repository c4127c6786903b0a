-- One definition of each record the runtime reads, and audit rows written by the
-- transaction that makes the change.
--
-- job_records and run_records are the rows as the runtime holds them: every read
-- of a job or a run selects * from one of them, and the Python records are built
-- from the columns by name. A column added to jobs or runs is added to its view
-- here, in the same migration, and to the record's dataclass: nothing else lists
-- the columns.

-- A lease keeps the sha256 of its token (never the token): after the lease ends, the
-- holder can still be told from a stranger (a refusal says which), and may publish
-- its attempt's log.
ALTER TABLE striatum.leases ADD COLUMN token_digest text;

CREATE VIEW striatum.job_records AS
SELECT j.*,
       j.lease_expires_at IS NOT NULL AND j.lease_expires_at <= now() AS lease_expired
FROM striatum.jobs j;

CREATE VIEW striatum.run_records AS
SELECT r.*, p.path AS repo_path
FROM striatum.runs r JOIN striatum.repos p ON p.id = r.repo_id;

-- One row of the global audit chain, its payload built here byte for byte as
-- canonical JSON (keys sorted), as the events claim_job builds: the caller sends
-- it with the change's other writes and never waits for it.
CREATE FUNCTION striatum.append_audit(p_actor text, p_verb text, p_args_digest text,
                                      p_outcome text, OUT seq bigint, OUT row_hash text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    payload text;
    before text;
BEGIN
    payload := '{"actor":' || striatum.json_text(p_actor)
        || ',"args_digest":' || striatum.json_text(p_args_digest)
        || ',"at":"' || striatum.event_time(now())
        || '","outcome":' || striatum.json_text(p_outcome)
        || ',"verb":' || striatum.json_text(p_verb) || '}';
    UPDATE striatum.chain_heads
       SET seq = chain_heads.seq + 1, previous = chain_heads.hash,
           hash = encode(sha256(convert_to(chain_heads.hash || payload, 'UTF8')), 'hex')
     WHERE chain_heads.chain = 'audit'
    RETURNING chain_heads.seq, chain_heads.previous, chain_heads.hash
         INTO seq, before, row_hash;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'striatum: no audit chain' USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO striatum.audit_log (seq, actor, verb, args_digest, outcome, payload,
                                    previous_hash, row_hash)
    VALUES (seq, p_actor, p_verb, p_args_digest, p_outcome, payload, before, row_hash);
END
$$;

-- The claim, now audited in its own statement (a claim that finds nothing changes
-- nothing and writes no row), returning the job and its run as their records.
DROP FUNCTION striatum.claim_job(text, text[], text[], text, text, integer);

CREATE FUNCTION striatum.claim_job(p_run text, p_lanes text[], p_lane_kinds text[],
                                   p_owner text, p_secret text, p_lease_seconds integer,
                                   p_actor text, p_verb text, p_args_digest text)
RETURNS TABLE (job json, run json)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    found_run text;
    found_job text;
    j striatum.jobs;
    repo bigint;
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
    SELECT runs.repo_id INTO repo FROM striatum.runs WHERE runs.id = found_run;

    INSERT INTO striatum.leases (run_id, job_id, fence, owner, iteration, attempt,
                                 token_digest)
    VALUES (j.run_id, j.job_id, j.fence, p_owner, j.iteration, j.attempt,
            encode(sha256(convert_to(j.lease_token, 'UTF8')), 'hex'));

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
    PERFORM striatum.append_event('repo:' || repo, repo, j.run_id, j.job_id, 'job.claim',
                                  payload);
    PERFORM striatum.append_audit(p_actor, p_verb, p_args_digest, 'ok');

    RETURN QUERY SELECT row_to_json(jr), row_to_json(rr)
        FROM striatum.job_records jr, striatum.run_records rr
       WHERE jr.run_id = j.run_id AND jr.job_id = j.job_id AND rr.id = j.run_id;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'striatum_runtime') THEN
        -- UPDATE on job_records because a transition locks job rows through it (FOR
        -- UPDATE needs it); through it nothing can change that the table's own grant
        -- does not allow. run_records is only read: locking through it would lock the
        -- repository's row, which every event insert takes KEY SHARE on.
        GRANT SELECT, UPDATE ON striatum.job_records TO striatum_runtime;
        GRANT SELECT ON striatum.run_records TO striatum_runtime;
        GRANT EXECUTE ON FUNCTION
            striatum.append_audit(text, text, text, text),
            striatum.claim_job(text, text[], text[], text, text, integer, text, text, text)
            TO striatum_runtime;
    END IF;
EXCEPTION
    WHEN insufficient_privilege OR invalid_grant_operation THEN
        RAISE NOTICE 'striatum: could not grant striatum_runtime the records and the audit';
END
$$;
