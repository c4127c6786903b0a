-- A what-if for the transitions figure, applied to a bench database only: the audit
-- rows of each backend (each writer has its own) go to a chain of its own, not to
-- the one global chain, so that writers on different repositories share no row
-- whose lock is held to their COMMIT. doctor would not accept this record: it measures what the global
-- audit chain's head costs, nothing more.
ALTER TABLE striatum.audit_log DROP CONSTRAINT audit_log_pkey;

CREATE OR REPLACE FUNCTION striatum.append_audit(p_actor text, p_verb text,
                                                 p_args_digest text, p_outcome text,
                                                 OUT seq bigint, OUT row_hash text)
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
    INSERT INTO striatum.chain_heads (chain, seq, hash)
    VALUES ('audit:' || pg_backend_pid(), 0, repeat('0', 64)) ON CONFLICT DO NOTHING;
    UPDATE striatum.chain_heads
       SET seq = chain_heads.seq + 1, previous = chain_heads.hash,
           hash = encode(sha256(convert_to(chain_heads.hash || payload, 'UTF8')), 'hex')
     WHERE chain_heads.chain = 'audit:' || pg_backend_pid()
    RETURNING chain_heads.seq, chain_heads.previous, chain_heads.hash
         INTO seq, before, row_hash;
    INSERT INTO striatum.audit_log (seq, actor, verb, args_digest, outcome, payload,
                                    previous_hash, row_hash)
    VALUES (seq, p_actor, p_verb, p_args_digest, p_outcome, payload, before, row_hash);
END
$$;
