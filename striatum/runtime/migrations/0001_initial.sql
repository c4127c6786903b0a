-- striatum schema, version 1.
-- A shipped migration is never edited: changes go in a new, higher-numbered file.

CREATE TABLE striatum.repos (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per hash chain: 'repo:<id>' for a repository's events, 'audit' for
-- the global audit log. Appenders lock the row (the UPDATE in append_event),
-- so concurrent appends serialize and a chain cannot fork.
CREATE TABLE striatum.chain_heads (
    chain     text PRIMARY KEY,
    seq       bigint NOT NULL DEFAULT 0,
    hash      text NOT NULL,
    previous  text
);

-- Compiled workflows by digest: a run is pinned to the exact bytes it compiled to.
CREATE TABLE striatum.workflows (
    digest      text PRIMARY KEY,
    name        text NOT NULL,
    compiled    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE striatum.runs (
    id               text PRIMARY KEY,
    repo_id          bigint NOT NULL REFERENCES striatum.repos (id),
    workflow_digest  text NOT NULL REFERENCES striatum.workflows (digest),
    workflow_name    text NOT NULL,
    status           text NOT NULL,
    vars             jsonb NOT NULL DEFAULT '{}',
    artifact_root    text NOT NULL,
    base_commit      text,  -- the repository's HEAD at prepare (worktrees start here)
    worst_case       integer NOT NULL,
    blocked_on       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX runs_by_repo ON striatum.runs (repo_id, created_at);

-- The projection of each job's current state; the events are the record.
CREATE TABLE striatum.jobs (
    run_id            text NOT NULL REFERENCES striatum.runs (id),
    job_id            text NOT NULL,
    position          integer NOT NULL,
    kind              text NOT NULL,
    lane              text NOT NULL,
    lane_kind         text NOT NULL,
    status            text NOT NULL,
    iteration         integer NOT NULL DEFAULT 0,
    attempt           integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL,
    -- Passes started (pending -> ready); the run's total never exceeds worst_case.
    executions        integer NOT NULL DEFAULT 0,
    revisions_used    integer NOT NULL DEFAULT 0,
    -- The lease epoch: every claim takes the next one. Together with the
    -- secret token it fences out a holder whose lease has moved on.
    fence             bigint NOT NULL DEFAULT 0,
    lease_token       text,
    lease_owner       text,
    lease_expires_at  timestamptz,
    heartbeat_at      timestamptz,
    chosen            text,
    verdict           text,
    reason            text,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, job_id)
);
CREATE INDEX jobs_ready ON striatum.jobs (run_id, position) WHERE status = 'ready';
CREATE INDEX jobs_leased ON striatum.jobs (lease_expires_at) WHERE status = 'leased';

-- Every lease ever granted, with how it ended.
CREATE TABLE striatum.leases (
    run_id       text NOT NULL,
    job_id       text NOT NULL,
    fence        bigint NOT NULL,
    owner        text NOT NULL,
    iteration    integer NOT NULL,
    attempt      integer NOT NULL,
    acquired_at  timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz,
    outcome      text,
    PRIMARY KEY (run_id, job_id, fence),
    FOREIGN KEY (run_id, job_id) REFERENCES striatum.jobs (run_id, job_id)
);

CREATE TABLE striatum.artifacts (
    run_id      text NOT NULL,
    job_id      text NOT NULL,
    iteration   integer NOT NULL,
    path        text NOT NULL,
    stored_at   text NOT NULL,
    sha256      text NOT NULL,
    bytes       bigint NOT NULL,
    fence       bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, job_id, iteration, path),
    FOREIGN KEY (run_id, job_id) REFERENCES striatum.jobs (run_id, job_id)
);

CREATE TABLE striatum.verdicts (
    run_id      text NOT NULL,
    job_id      text NOT NULL,
    iteration   integer NOT NULL,
    verdict     text NOT NULL,
    reason      text NOT NULL,
    fence       bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, job_id, iteration),
    FOREIGN KEY (run_id, job_id) REFERENCES striatum.jobs (run_id, job_id)
);

-- The record. row_hash = sha256(previous_hash || payload), payload being the
-- canonical JSON text exactly as hashed (so no re-serialisation can change it).
CREATE TABLE striatum.events (
    repo_id        bigint NOT NULL REFERENCES striatum.repos (id),
    seq            bigint NOT NULL,
    run_id         text,
    job_id         text,
    type           text NOT NULL,
    payload        text NOT NULL,
    previous_hash  text NOT NULL,
    row_hash       text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repo_id, seq)
);
CREATE INDEX events_by_run ON striatum.events (run_id, seq);

-- One row per mutating command, chained globally.
CREATE TABLE striatum.audit_log (
    seq            bigint PRIMARY KEY,
    actor          text NOT NULL,
    verb           text NOT NULL,
    args_digest    text NOT NULL,
    outcome        text NOT NULL,
    payload        text NOT NULL,
    previous_hash  text NOT NULL,
    row_hash       text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Append-only, for everyone: the triggers refuse UPDATE, DELETE and TRUNCATE
-- even for the owner (who can still drop the triggers: doctor checks they are there).
CREATE FUNCTION striatum.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'striatum: % is append-only; % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON striatum.events
    FOR EACH ROW EXECUTE FUNCTION striatum.refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON striatum.events
    FOR EACH STATEMENT EXECUTE FUNCTION striatum.refuse_change();
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON striatum.audit_log
    FOR EACH ROW EXECUTE FUNCTION striatum.refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON striatum.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION striatum.refuse_change();

INSERT INTO striatum.chain_heads (chain, seq, hash)
VALUES ('audit', 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- The runtime role: what striatum's own connections run as (SET ROLE). It may
-- read and append the record, never change or remove it. Roles belong to the
-- whole server, so a second database on the same server reuses it; a server
-- where we may not create roles gets the triggers alone, and doctor says so.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'striatum_runtime') THEN
        CREATE ROLE striatum_runtime NOLOGIN;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
    WHEN insufficient_privilege THEN
        RAISE NOTICE 'striatum: cannot create role striatum_runtime; append-only is enforced by triggers only';
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'striatum_runtime') THEN
        GRANT USAGE ON SCHEMA striatum TO striatum_runtime;
        GRANT SELECT, INSERT, UPDATE, DELETE ON striatum.repos, striatum.workflows,
            striatum.runs, striatum.jobs, striatum.leases, striatum.artifacts,
            striatum.verdicts, striatum.chain_heads TO striatum_runtime;
        GRANT SELECT, INSERT ON striatum.events, striatum.audit_log TO striatum_runtime;
        GRANT SELECT ON striatum.migrations TO striatum_runtime;
        GRANT USAGE ON ALL SEQUENCES IN SCHEMA striatum TO striatum_runtime;
        GRANT striatum_runtime TO CURRENT_USER;
    END IF;
EXCEPTION
    WHEN insufficient_privilege OR invalid_grant_operation THEN
        RAISE NOTICE 'striatum: could not grant striatum_runtime; append-only is enforced by triggers only';
END
$$;
