-- The workers running now: each worker says it is alive, and what it serves, every
-- third of its lease, and removes its row when it stops. `why` and the inbox read it to
-- tell a ready job that a worker will take from one that nobody serves. It is presence,
-- not record: no event or audit row is written for it, and a worker killed outright
-- leaves a row that counts for nothing once its expires_at has passed.
CREATE TABLE striatum.workers (
    name        text PRIMARY KEY,
    actor       text NOT NULL,
    run_id      text,  -- NULL: it serves every run
    lanes       text[],  -- NULL: every command lane
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

CREATE INDEX workers_expires_at ON striatum.workers (expires_at);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'striatum_runtime') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON striatum.workers TO striatum_runtime;
    END IF;
EXCEPTION
    WHEN insufficient_privilege OR invalid_grant_operation THEN
        RAISE NOTICE 'striatum: could not grant striatum_runtime the workers table';
END
$$;
