"""striatum: coordinate terminal AI coding agents with compiled, bounded workflows."""

__version__ = "0.1.0"
