-- The state each event leaves its run or job in, as typed columns beside the payload
-- that is hashed: doctor's replay reads these instead of parsing every payload.
--
-- They are proven where they are written: the CHECK below parses the payload of every
-- row inserted (or changed) and refuses the row unless its columns (run, job, type, the
-- state, and created_at against the payload's time) say what the hashed payload says.
-- A validated CHECK holds for every row of the table, so doctor need not parse the
-- payloads again: it verifies that the constraint is in place, validated, and calls this
-- function unchanged; when it is not (dropped, added back NOT VALID, the function
-- replaced), doctor checks every row itself. `doctor --strict` always does.
--
-- On a large record this migration takes a while, in one transaction: every payload is
-- parsed twice (to fill the columns, then to validate the constraint), and the table is
-- locked meanwhile. docs/runtime.md ("Upgrading") says how to run it.
ALTER TABLE striatum.events
    ADD COLUMN status text, ADD COLUMN iteration integer, ADD COLUMN attempt integer,
    ADD COLUMN executions integer, ADD COLUMN revisions_used integer,
    ADD COLUMN fence bigint, ADD COLUMN lease_owner text, ADD COLUMN chosen text,
    ADD COLUMN verdict text, ADD COLUMN blocked_on text;

-- Does a row's every column agree with its payload? An error (not false) when the
-- payload is not a JSON object whose state is an object or null: the row is refused
-- either way (the constraint reads NULL as a refusal too, so that the function made STRICT
-- would not pass every row with a NULL column). PL/pgSQL for its cached plan; the search
-- path pinned, pg_temp last, so neither a function nor a type of the same name elsewhere
-- can stand in for a built-in.
CREATE FUNCTION striatum.event_agrees(payload text, p_run text, p_job text, p_type text,
                                      p_at timestamptz, p_status text, p_iteration integer,
                                      p_attempt integer, p_executions integer,
                                      p_revisions_used integer, p_fence bigint,
                                      p_lease_owner text, p_chosen text, p_verdict text,
                                      p_blocked_on text)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT coalesce(
            x.run IS NOT DISTINCT FROM p_run AND x.job IS NOT DISTINCT FROM p_job
            AND x.type IS NOT DISTINCT FROM p_type
            AND (x.at = to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US+00:00')
                 OR (x.at ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d$'
                     AND x.at::timestamptz = p_at))
            AND (s.status, s.iteration, s.attempt, s.executions, s.revisions_used, s.fence,
                 s.lease_owner, s.chosen, s.verdict, s.blocked_on)
                IS NOT DISTINCT FROM
                (p_status, p_iteration, p_attempt, p_executions, p_revisions_used, p_fence,
                 p_lease_owner, p_chosen, p_verdict, p_blocked_on), false)
        FROM jsonb_to_record(payload::jsonb) AS x(at text, run text, job text, type text,
                                                  state jsonb)
        LEFT JOIN LATERAL jsonb_to_record(CASE WHEN x.state <> 'null' THEN x.state END)
             AS s(status text, iteration integer, attempt integer, executions integer,
                  revisions_used integer, fence bigint, lease_owner text, chosen text,
                  verdict text, blocked_on text) ON true);
END
$$;

-- The chain rule as before (0003); the typed columns read from the payload it appends.
CREATE OR REPLACE FUNCTION striatum.append_event(p_chain text, p_repo bigint, p_run text,
                                                 p_job text, p_type text, p_payload text,
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
                                 row_hash, status, iteration, attempt, executions,
                                 revisions_used, fence, lease_owner, chosen, verdict,
                                 blocked_on)
    SELECT p_repo, seq, p_run, p_job, p_type, p_payload, before, row_hash, s.status,
           s.iteration, s.attempt, s.executions, s.revisions_used, s.fence, s.lease_owner,
           s.chosen, s.verdict, s.blocked_on
    FROM (SELECT p_payload::jsonb -> 'state' AS state) p
    LEFT JOIN LATERAL jsonb_to_record(CASE WHEN p.state <> 'null' THEN p.state END)
         AS s(status text, iteration integer, attempt integer, executions integer,
              revisions_used integer, fence bigint, lease_owner text, chosen text,
              verdict text, blocked_on text) ON true;
END
$$;

-- The rows recorded before: their columns read from their payloads. A payload that does
-- not parse (a record tampered with) leaves its row's columns empty, and the constraint
-- unvalidated: doctor then checks every row itself, and names that one. The helper lives
-- in the schema (dropped below), not in pg_temp: a database may deny its owner TEMP.
CREATE FUNCTION striatum.state_of_payload(payload text)
RETURNS TABLE (status text, iteration integer, attempt integer, executions integer,
               revisions_used integer, fence bigint, lease_owner text, chosen text,
               verdict text, blocked_on text)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT s.* FROM jsonb_to_record(payload::jsonb -> 'state')
        AS s(status text, iteration integer, attempt integer, executions integer,
             revisions_used integer, fence bigint, lease_owner text, chosen text,
             verdict text, blocked_on text);
EXCEPTION WHEN data_exception THEN
    RETURN;
END
$$;

ALTER TABLE striatum.events DISABLE TRIGGER events_append_only;
UPDATE striatum.events e
   SET status = s.status, iteration = s.iteration, attempt = s.attempt,
       executions = s.executions, revisions_used = s.revisions_used, fence = s.fence,
       lease_owner = s.lease_owner, chosen = s.chosen, verdict = s.verdict,
       blocked_on = s.blocked_on
  FROM striatum.events o CROSS JOIN LATERAL striatum.state_of_payload(o.payload) s
 WHERE o.repo_id = e.repo_id AND o.seq = e.seq;
ALTER TABLE striatum.events ENABLE TRIGGER events_append_only;
DROP FUNCTION striatum.state_of_payload(text);

ALTER TABLE striatum.events ADD CONSTRAINT events_columns_hashed CHECK (
    coalesce(striatum.event_agrees(payload, run_id, job_id, type, created_at, status,
                                   iteration, attempt, executions, revisions_used, fence,
                                   lease_owner, chosen, verdict, blocked_on), false)) NOT VALID;

DO $$
BEGIN
    ALTER TABLE striatum.events VALIDATE CONSTRAINT events_columns_hashed;
EXCEPTION
    WHEN check_violation OR data_exception OR invalid_parameter_value THEN
        RAISE NOTICE 'striatum: some events disagree with their payloads; doctor names them';
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'striatum_runtime') THEN
        GRANT EXECUTE ON FUNCTION striatum.event_agrees(text, text, text, text, timestamptz,
            text, integer, integer, integer, integer, bigint, text, text, text, text)
            TO striatum_runtime;
    END IF;
EXCEPTION
    WHEN insufficient_privilege OR invalid_grant_operation THEN
        RAISE NOTICE 'striatum: could not grant striatum_runtime the runtime functions';
END
$$;
