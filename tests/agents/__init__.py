"""Conformance: the real ``claude``, ``codex`` and ``gemini`` as the lanes of real striatum
runs, each talking to a scripted fake of its model API, with nothing able to leave the
machine.

The CLIs are the ones tests/agents/package.json pins, installed by ``make agent-clis``
into .agent-clis/ (with Node 22, first on the lanes' PATH). Every test prepares a run
whose lanes are real CLIs (``lanes.py``, one table by vendor and role), works it to its
end with striatum's own worker, and asserts on what striatum recorded (the run's and
jobs' status, the artifacts published with their content and hash, the events, the
verdicts, the lane logs) and on what the fakes received (which tools the CLI ran, what
each returned, the prompt it sent).

The sandbox
    ``Bench.work`` (``harness.py``) runs ``unshare -n -m python -m tests.agents.sandbox
    SPEC``: a new network namespace, empty but for ``lo``, and a private mount
    namespace. Inside, ``sandbox.py`` brings ``lo`` up, starts the three fakes on
    127.0.0.1, binds a resolv.conf over /etc/resolv.conf that names a resolver of its
    own on 127.0.0.1:53 (it answers every name "no such host" and records it), writes
    the CLIs' configuration into a fresh HOME, and runs ``striatum run start RUN
    --wait``. The worker and every process below it (the lane guardian, the CLIs,
    the commands their shell tools run) share the namespace with the fakes, so
    127.0.0.1 is theirs alone; the CLIs find their fake through
    ``ANTHROPIC_BASE_URL`` / ``GOOGLE_GEMINI_BASE_URL`` (passed through by the lanes'
    ``"${NAME}"`` env) and codex through ``openai_base_url`` in its CODEX_HOME. The
    worker, and an agent's ``striatum job verdict``, reach PostgreSQL through its
    UNIX socket, a file, which no network namespace hides. Nothing else is reachable:
    ``test_sandbox`` shows a lane there reaching its fake and nothing else (not the
    host's own addresses, not the host's loopback), and every CLI test asserts that no
    host name was even looked up.

The database
    The embedded server, which listens on a UNIX socket only (a migrated template,
    copied for each test: the integration suite's fixtures), or STRIATUM_TEST_DSN when
    it names a UNIX socket; with a DSN over TCP the tests skip, saying why.

The fakes (``fakes/``, standard library only)
    One per API: Anthropic Messages (``anthropic.py``), OpenAI Responses over
    WebSocket and HTTP (``openai.py``), Gemini ``streamGenerateContent``
    (``gemini.py``), on one threading HTTP server (``server.py``). Each follows a
    ``Script`` (``script.py``): for each job and pass, the turns of its conversation,
    each tool calls named by what they do (read, write, edit, run a command, record
    a verdict) or final text. A fake reads which job a request belongs to from the
    contract every striatum prompt ends with (job, run, pass, the paths to write, the
    verdict commands), and which turn it is from how often the model already spoke in
    the conversation the request carries; a script's paths and commands name the
    contract's facts (``{paths[0]}``, ``{repo}``, the verdict command). So the fakes
    keep no state per conversation, but for codex's WebSocket, whose messages
    continue an earlier response by id, as the real server's do. Every request is
    recorded as a JSON line (as received, what the fake made of it, what it
    answered), and ``Record`` reads them back. A request the script does not cover
    is answered with final text and recorded as an error, which every test checks.

The tests
    ``test_task``: a task's agent writes its artifact at the contract's path with its
    CLI's file tool; the worker publishes it. ``test_review``: a review's agent runs
    ``striatum job verdict accept`` with its CLI's shell tool; the verdict is
    recorded. ``test_code_change``: examples/code-change end to end, one revision,
    on one vendor's CLIs and on mixed ones. ``test_examples``: every example and
    every starter, relaned to each vendor's presets (and to mixed ones), worked to
    its end by agents that do what their contract asks (``ByContract``), the test
    deciding checkpoints and working operator jobs as a human would, through the
    CLI; the matrix is in README.md. ``test_sandbox``: nothing leaves.
    ``test_refusals``: the controls, the same CLIs without the flags that permit
    writing, refused. ``test_mcp_agents``: the CLI itself is the operator, in a
    repository ``striatum adopt`` wired up, and drives a run through the striatum MCP
    server's tools (``Mcp`` calls, whose arguments name what earlier results said).
    ``test_adopt_agents``: after ``adopt``, each CLI lists the skill and the server's
    tools to its model, and examples/code-change runs on its presets there.
    ``test_adopt_boundary``: after ``adopt``, each CLI may call the agent's tools and
    not the human's, and the refused call leaves the record as it was. Each
    skips, with one line saying why, when its CLIs are not installed or the sandbox
    cannot be made; each has its own timeout.

What each CLI does on the wire, as far as these tests found: README.md.
"""
