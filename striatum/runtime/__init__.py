"""The runtime: runs as state machines on PostgreSQL with a hash-chained event log."""
