"""Which agent a command lane runs (program and model), for the co-blindness rule STR304."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Agent:
    """Who a command lane runs, as far as its argv tells: a program and maybe a model."""

    program: str
    model: str | None


_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_LAUNCHERS = ("env", "npx")
_INTERPRETER = re.compile(r"(python|pypy)[0-9.]*|node|deno|bun|ruby|perl|bash|sh|zsh")
# npm packages whose executable has another name: `npx @google/gemini-cli` runs `gemini`
_PACKAGE_PROGRAMS = {"claude-code": "claude", "gemini-cli": "gemini"}


def _program_name(token: str) -> str:
    name = re.split(r"[\\/]", token)[-1].lower()
    name = name.split("@")[0] if not name.startswith("@") else name  # pkg@latest
    for suffix in (".exe", ".cmd", ".bat"):
        name = name.removesuffix(suffix)
    return _PACKAGE_PROGRAMS.get(name, name)


def program_and_args(command: tuple[str, ...]) -> tuple[str, list[str]] | None:
    """The program a lane's argv runs (skipping `env`, VAR=value and `npx`), and the
    arguments it gets."""
    rest = list(command)
    while rest and (_ASSIGNMENT.match(rest[0]) or rest[0].startswith("-")
                    or _program_name(rest[0]) in _LAUNCHERS):
        rest.pop(0)
    if not rest:
        return None
    return _program_name(rest[0]), rest[1:]


@lru_cache(maxsize=1024)  # asked once per review and reviewed job; lanes are few
def agent_of(command: tuple[str, ...]) -> Agent | None:
    """The program a lane's argv runs and its model."""
    found = program_and_args(command)
    if found is None:
        return None
    program, args = found
    if _INTERPRETER.fullmatch(program):
        # `python reviewer.py` and `python coder.py` are different agents.
        script = next((i for i, arg in enumerate(args) if not arg.startswith("-")), None)
        if script is not None:
            program = f"{program} {_program_name(args[script])}"
            args = args[script + 1:]
    return Agent(program, _model(args))


def _model(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg in ("--model", "-m") and i + 1 < len(args):
            return args[i + 1].lower()
        if arg.startswith("--model="):
            return arg.partition("=")[2].lower()
    return None
