"""The human's web UI (``striatum serve --web``): pages and actions over the registry's
verbs, through the daemon's gate; loopback only (docs/HOW_TO_HUMAN.md)."""
