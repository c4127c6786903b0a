-- Which database holds a record: a run's manifest names it, so that doctor, run on
-- another database (a teammate's, after cloning a repository with its manifests, or a
-- new embedded server), can say once that those runs were recorded elsewhere instead of
-- calling each manifest a lost run. It travels with the data (a dump and restore keeps
-- it), as the record it names does.
CREATE TABLE striatum.identity (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO striatum.identity DEFAULT VALUES;

CREATE TRIGGER identity_fixed BEFORE UPDATE OR DELETE ON striatum.identity
    FOR EACH ROW EXECUTE FUNCTION striatum.refuse_change();

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'striatum_runtime') THEN
        GRANT SELECT ON striatum.identity TO striatum_runtime;
    END IF;
EXCEPTION
    WHEN insufficient_privilege OR invalid_grant_operation THEN
        RAISE NOTICE 'striatum: could not grant striatum_runtime the database identity';
END
$$;
