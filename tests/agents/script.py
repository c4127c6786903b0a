"""What a fake model says, turn by turn: a test's script, as data that crosses into the
sandbox as JSON.

A script holds, for each job (and pass), the turns of one conversation. A turn is
either tool calls, named by what they do (``Read``, ``Write``, ``Edit``,
``Shell``, ``Verdict``), which each fake turns into its CLI's own tool, or the final text
(``Say``). Paths and commands may name facts of the job's contract, the lines
every striatum prompt ends with, which the fake reads from the request:

    {paths[0]}  the first path the contract says to write (``{paths[1]}``, ...)
    {out}       the attempt's artifact directory
    {repo}      the repository the job runs in
    {job} {run} {pass} {attempt}

``Verdict(outcome, reason)`` runs the contract's own verdict command for that
outcome (the line it prints, with the reason in place of ``"..."``).

An operator session has no contract: its prompt holds the line ``Operator session
NAME.``, and the script's turns for ``NAME`` drive it. ``Mcp(tool, arguments)``
calls a tool of the striatum MCP server by the verb's tool name (``job_claim``),
which each fake turns into the name its CLI offers it under; its arguments may name
what earlier tool results said: every key of every JSON object a tool returned,
the latest value winning (``{run_id}`` after ``run_prepare``, ``{lease}``,
``{job}`` and ``{artifact_dir}`` after ``job_claim``).

A job the script does not name is answered ``ByContract`` when the script says so:
from the contract alone, as an agent that does what its prompt asks (write each
file at the path given, then, for a review, run one of the verdict commands
offered), with no answer written for any workflow in particular.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any


class ScriptError(Exception):
    """The script cannot be followed for this request (a fact it names is missing)."""


@dataclass(frozen=True)
class Read:
    """Read a file with the CLI's own reading tool (codex has none: it runs ``cat``)."""

    path: str


@dataclass(frozen=True)
class Write:
    """Create a file with the CLI's own file tool."""

    path: str
    content: str


@dataclass(frozen=True)
class Edit:
    """Replace ``old`` by ``new`` in a file with the CLI's own edit tool."""

    path: str
    old: str
    new: str


@dataclass(frozen=True)
class Shell:
    """Run a command with the CLI's shell tool."""

    command: str


@dataclass(frozen=True)
class Verdict:
    """Run the contract's verdict command for ``outcome`` with the CLI's shell tool."""

    outcome: str
    reason: str


@dataclass(frozen=True)
class Mcp:
    """Call the striatum MCP server's tool ``name`` (the verb's tool name, ``job_claim``)
    with ``arguments``, by the name the CLI offers it under."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Skill:
    """Use the skill ``name`` as the CLI offers it: Claude Code's Skill tool, Gemini CLI's
    activate_skill; codex lists each skill's file, which the model reads."""

    name: str


Call = Read | Write | Edit | Shell | Verdict | Mcp | Skill
CALLS: dict[str, type[Call]] = {"read": Read, "write": Write, "edit": Edit, "shell": Shell,
                                "verdict": Verdict, "mcp": Mcp, "skill": Skill}
# The server's name in each CLI's configuration (``striatum adopt`` writes it so).
SERVER = "striatum"


def mcp_tool(offered: list[str], name: str) -> str:
    """The name under which a CLI offers the striatum server's tool ``name``: the offered
    name that ends with it after the server's name (``mcp__striatum__job_claim``,
    ``mcp_striatum_job_claim``), else the bare name when offered, else Claude Code's
    form (the CLI will then say it has no such tool)."""
    for candidate in offered:
        if candidate.endswith(name) and SERVER in candidate[:-len(name)]:
            return candidate
    return name if name in offered else f"mcp__{SERVER}__{name}"


@dataclass(frozen=True)
class Turn:
    """One answer of the model: tool calls, or (with none) the final text."""

    calls: tuple[Call, ...] = ()
    text: str = ""

    @property
    def final(self) -> bool:
        return not self.calls

    def to_json(self) -> dict[str, Any]:
        return {"calls": [{"tool": _tool_name(c), **vars(c)} for c in self.calls],
                "text": self.text}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Turn:
        calls = tuple(CALLS[c["tool"]](**{k: v for k, v in c.items() if k != "tool"})
                      for c in doc["calls"])
        return cls(calls, doc["text"])


def _tool_name(call: Call) -> str:
    return next(name for name, kind in CALLS.items() if isinstance(call, kind))


def calls(*made: Call) -> Turn:
    return Turn(tuple(made))


def say(text: str) -> Turn:
    return Turn((), text)


@dataclass(frozen=True)
class ByContract:
    """The answers of an agent that does what its job's contract asks, one tool call a
    turn: write each path the contract names (a ``.json`` one as a JSON object), then, for
    a review, run a verdict command the contract offers, then say it is done. Each file
    and reason names the job, the pass and the vendor (so a test sees who wrote what).

    ``revise``: a review offered ``needs_revision`` sends the work back on its first pass
    (and accepts on the next), so every revision loop is taken once.
    """

    revise: bool = False

    def turns(self, contract: Contract, vendor: str) -> list[Turn]:
        by = f"{contract.job}, pass {contract.on_pass}, by {vendor}"
        out = [calls(Write(path, content(path, contract, vendor))) for path in contract.paths]
        if contract.kind == "review":
            if self.revise and contract.on_pass == 1 and "needs_revision" in contract.verdicts:
                out.append(calls(Verdict("needs_revision", f"{by}: send it back once")))
            else:
                out.append(calls(Verdict("accept", f"{by}: accepted")))
        return [*out, say(f"Done: {by}.")]


def content(path: str, contract: Contract, vendor: str) -> str:
    """What ``ByContract`` writes at ``path``."""
    name = PurePosixPath(path).name
    facts = {"job": contract.job, "pass": contract.on_pass, "by": vendor}
    if name.endswith(".json"):
        return json.dumps({"artifact": name, **facts}, indent=2) + "\n"
    return f"# {name}\n\nWritten by {contract.job}, pass {contract.on_pass}, by {vendor}.\n"


@dataclass
class Script:
    """The turns of each job's conversation, by pass (1 = the first); a pass that is not
    scripted replays the highest scripted pass below it. A job not scripted at all is
    answered ``by_contract``, when set."""

    jobs: dict[str, dict[int, list[Turn]]] = field(default_factory=dict)
    by_contract: ByContract | None = None

    def job(self, job: str, *turns: Turn, on_pass: int = 1) -> Script:
        self.jobs.setdefault(job, {})[on_pass] = list(turns)
        return self

    def turns(self, job: str, on_pass: int) -> list[Turn] | None:
        passes = self.jobs.get(job)
        if not passes:
            return None
        scripted = [p for p in passes if p <= on_pass]
        return passes[max(scripted)] if scripted else None

    def answer(self, contract: Contract, vendor: str) -> list[Turn] | None:
        """The turns of the conversation of ``contract``'s job and pass, on ``vendor``."""
        if contract.job not in self.jobs and self.by_contract is not None:
            return self.by_contract.turns(contract, vendor)
        return self.turns(contract.job, contract.on_pass)

    def to_json(self) -> dict[str, Any]:
        return {"jobs": {job: {str(p): [t.to_json() for t in turns]
                               for p, turns in passes.items()}
                         for job, passes in self.jobs.items()},
                "by_contract": vars(self.by_contract) if self.by_contract else None}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Script:
        by_contract = doc["by_contract"]
        return cls({job: {int(p): [Turn.from_json(t) for t in turns]
                          for p, turns in passes.items()} for job, passes in doc["jobs"].items()},
                   ByContract(**by_contract) if by_contract is not None else None)


# The contract prompts.contract appends, after a "---" rule.
_HEAD = re.compile(r"^striatum: this is job (?P<job>\S+) of run (?P<run>\S+) "
                   r"\((?P<kind>\w+), pass (?P<pass>\d+), attempt (?P<attempt>\d+)\)\.$",
                   re.MULTILINE)
_PATH = re.compile(r"^  (/\S.*)$")
_VERDICT = re.compile(r'^  (striatum job verdict (\w+) --reason )"\.\.\."$')
_VERDICT_FILE = re.compile(r"^or write (/\S+)/verdict\.json holding ")
_SESSION = re.compile(r"^Operator session (?P<name>[\w-]+)\.$", re.MULTILINE)


def _json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (a tool's output may wrap it: codex's code-mode
    tool prints its program's output after a header), or None."""
    decoder = json.JSONDecoder()
    at = text.find("{")
    while at != -1:
        try:
            found, _ = decoder.raw_decode(text, at)
        except ValueError:
            at = text.find("{", at + 1)
            continue
        if isinstance(found, dict):
            return found
        at = text.find("{", at + 1)
    return None


@dataclass(frozen=True)
class Contract:
    """The facts of a job's contract, as the prompt states them."""

    job: str
    run: str
    kind: str
    on_pass: int
    attempt: int
    paths: tuple[str, ...]
    verdicts: dict[str, str]  # outcome -> the command, without its reason
    out: str | None
    # What earlier tool results said, for an operator session (see ``learn``).
    learned: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def operator(cls, text: str) -> Contract | None:
        """An operator session's stand-in for a contract, from its prompt's ``Operator
        session NAME.`` line: the script's turns for NAME drive it, as for a job's pass 1."""
        found = _SESSION.search(text)
        if found is None:
            return None
        return cls(found["name"], "", "operator", 1, 0, (), {}, None)

    def learn(self, outputs: list[str]) -> Contract:
        """This contract knowing every scalar of every JSON object the outputs hold, the
        latest winning (an operator session's facts come from its tools' results)."""
        learned: dict[str, Any] = {}
        for output in outputs:
            found = _json_object(output)
            if found is not None and isinstance(found.get("structuredContent"), dict):
                found = found["structuredContent"]  # codex's code mode: the whole result
            if found is not None:
                learned.update({k: v for k, v in found.items()
                                if isinstance(v, str | int | float | bool)})
        return replace(self, learned=learned)

    @classmethod
    def find(cls, text: str) -> Contract | None:
        """The contract at the end of a prompt (the last one, should an artifact quoted in
        the prompt hold something like it), or None."""
        heads = list(_HEAD.finditer(text))
        if not heads:
            return None
        head = heads[-1]
        paths: list[str] = []
        verdicts: dict[str, str] = {}
        out = None
        section = None
        for line in text[head.end():].splitlines()[1:]:
            if line.startswith("Write each file"):
                section = "paths"
            elif line.startswith("Record your verdict"):
                section = "verdicts"
            elif (found := _PATH.match(line)) and section == "paths":
                paths.append(found.group(1).rstrip())
            elif (found := _VERDICT.match(line)) and section == "verdicts":
                verdicts[found.group(2)] = found.group(1)
            elif found := _VERDICT_FILE.match(line):
                out = found.group(1)
            elif not line.startswith("  "):
                section = None
        if out is None and paths:
            out = str(PurePosixPath(paths[0]).parent)
        return cls(head["job"], head["run"], head["kind"], int(head["pass"]),
                   int(head["attempt"]), tuple(paths), verdicts, out)

    @property
    def repo(self) -> str | None:
        if self.out is None or "/.striatum/runs/" not in self.out:
            return None
        return self.out.split("/.striatum/runs/")[0]

    def fill(self, text: str) -> str:
        """``text`` with the contract's facts in place of their names."""
        facts: dict[str, Any] = {"paths": list(self.paths), "out": self.out, "repo": self.repo,
                                 "job": self.job, "run": self.run, "pass": self.on_pass,
                                 "attempt": self.attempt, **self.learned}

        def value(match: re.Match[str]) -> str:
            name, index = match.group(1), match.group(2)
            if name not in facts:
                return match.group(0)
            found = facts[name]
            if index is not None:
                if int(index) >= len(found):
                    raise ScriptError(f"the contract of {self.job} names no {name}[{index}]")
                found = found[int(index)]
            if found is None:
                raise ScriptError(f"the contract of {self.job} states no {name}")
            return str(found)

        return re.sub(r"\{(\w+)(?:\[(\d+)\])?\}", value, text)

    def fill_all(self, value: Any) -> Any:
        """``fill`` on every string of a JSON value."""
        if isinstance(value, str):
            return self.fill(value)
        if isinstance(value, dict):
            return {k: self.fill_all(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill_all(v) for v in value]
        return value

    def command(self, call: Shell | Verdict) -> str:
        """The command line a shell call runs."""
        if isinstance(call, Shell):
            return self.fill(call.command)
        if call.outcome not in self.verdicts:
            raise ScriptError(f"the contract of {self.job} offers no verdict {call.outcome!r} "
                              f"(it offers {sorted(self.verdicts)})")
        return self.verdicts[call.outcome] + shlex.quote(call.reason)

    def resolve(self, call: Call) -> Call:
        """The call with every fact filled in (a Verdict becomes the Shell it runs)."""
        if isinstance(call, Read):
            return Read(self.fill(call.path))
        if isinstance(call, Write):
            return Write(self.fill(call.path), self.fill(call.content))
        if isinstance(call, Edit):
            return Edit(self.fill(call.path), call.old, call.new)
        if isinstance(call, Mcp):
            return Mcp(call.name, self.fill_all(call.arguments))
        if isinstance(call, Skill):
            return call
        return Shell(self.command(call))


def strings(document: Any) -> list[str]:
    """Every string of a JSON document, in document order."""
    found: list[str] = []
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found


def find_prompt(document: Any) -> tuple[str, Contract] | None:
    """The first string of a request that holds a contract (or an operator session's
    line), and the contract: the prompt comes before anything the conversation added
    to it."""
    for text in strings(document):
        found = None
        if "striatum: this is job " in text:
            found = Contract.find(text)
        if found is None and "Operator session " in text:
            found = Contract.operator(text)
        if found is not None:
            return text, found
    return None


def find_contract(document: Any) -> Contract | None:
    found = find_prompt(document)
    return found[1] if found else None
