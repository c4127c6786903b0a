"""What striatum writes into a repository for the agent CLIs that work it: the skill that
teaches an agent to drive a run (``skills``), and ``adopt``, which wires a repository
up for Claude Code, Codex or Gemini CLI (instructions, skill, MCP server)."""
