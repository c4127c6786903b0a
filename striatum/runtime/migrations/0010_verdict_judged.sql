-- What a verdict judged: the sha256 of each artifact its reviewer consumed and, for
-- work that changes the repository, the git tree it ran against. NULL for the verdicts
-- recorded before this migration: they are checked by nothing, as before.
ALTER TABLE striatum.verdicts ADD COLUMN judged jsonb;
