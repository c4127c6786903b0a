-- The two helpers claim_job builds its event's text with are what their bodies
-- are: STABLE, as to_json and to_char are (their output may depend on the
-- session's settings, though not for these arguments). Declared IMMUTABLE, the
-- planner would not inline a body holding a STABLE call, so each use ran as a
-- SQL function of its own, eight times a claim (auto_explain listed each).
-- `python -m bench transitions` measures the claim statement alone (pgbench
-- calling claim_job). Neither is used where IMMUTABLE is required (an index, a
-- generated column).
ALTER FUNCTION striatum.json_text(text) STABLE;
ALTER FUNCTION striatum.event_time(timestamptz) STABLE;
