"""Provenance to hand over: the record of runs exported as a bundle, redacted, and
verified with no database (docs/provenance.md)."""
