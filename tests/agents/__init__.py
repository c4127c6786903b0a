"""Conformance: the real ``claude``, ``codex`` and ``gemini`` as the lanes of real striatum
runs, each talking to a scripted fake of its model API."""
