-- Password logins for the embedded server, whose owner gives itself and the runtime
-- role secrets of its own (docs/runtime.md): ALTER ROLE takes no bound parameters, so a
-- function quotes the name and the verifier, and the caller binds both. Only a SCRAM
-- verifier computed by the client reaches the server (never the password): what the
-- server logs or keeps cannot be replayed as a login.
CREATE FUNCTION striatum.set_role_password(p_role name, p_verifier text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF p_verifier NOT LIKE 'SCRAM-SHA-256$%' THEN
        RAISE EXCEPTION 'striatum: a role password must be a SCRAM-SHA-256 verifier';
    END IF;
    EXECUTE format('ALTER ROLE %I LOGIN PASSWORD %L', p_role, p_verifier);
END
$$;

REVOKE ALL ON FUNCTION striatum.set_role_password(name, text) FROM PUBLIC;
