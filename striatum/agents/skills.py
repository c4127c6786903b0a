"""The striatum skill: the operator's playbook (docs/HOW_TO_AGENT.md, shipped in the
wheel) installed where each agent CLI reads a project's skills, stamped with the
striatum version and the bundle's digest so ``doctor`` can tell a current copy from an
outdated or edited one."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import UsageError
from ..resources import playbook_path
from .files import FileChange, change, read

SKILL = "striatum"
# Where each CLI reads a project's skills (Claude Code wants a real copy, not a link).
PROFILES: dict[str, tuple[str, ...]] = {
    "claude_code": (f".claude/skills/{SKILL}/SKILL.md",),
    "codex": (f".agents/skills/{SKILL}/SKILL.md",),
    "gemini": (f".agents/skills/{SKILL}/SKILL.md",),
}
ALL = "all"
_STAMP = re.compile(r"\n<!-- striatum skill (\S+) sha256:([0-9a-f]{64}) -->\n\Z")


def profiles(profile: str) -> list[str]:
    if profile == ALL:
        return list(PROFILES)
    if profile not in PROFILES:
        raise UsageError(f"no profile {profile!r}",
                         hint="profiles: " + ", ".join([*PROFILES, ALL]))
    return [profile]


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def bundle() -> str:
    """The skill as installed: the playbook, then its stamp."""
    body = playbook_path().read_text(encoding="utf-8")
    return f"{body}\n<!-- striatum skill {__version__} sha256:{_digest(body)} -->\n"


def targets(profile: str) -> list[str]:
    return list(dict.fromkeys(p for name in profiles(profile) for p in PROFILES[name]))


def install(repo: Path, profile: str) -> list[FileChange]:
    """The skill written where ``profile``'s CLIs read it (planned, not yet applied)."""
    text = bundle()
    return [change(repo / target, text) for target in targets(profile)]


@dataclass(frozen=True)
class Installed:
    path: Path
    profile: str
    state: str  # current | outdated | edited

    def fix(self, repo: Path) -> str:
        return f"striatum --repo {repo} skills install --profile {self.profile}"


def check(repo: Path) -> list[Installed]:
    """Every striatum skill installed in ``repo``, and whether it is the current bundle."""
    current = bundle()
    found: list[Installed] = []
    for target in dict.fromkeys(p for paths in PROFILES.values() for p in paths):
        text = read(repo / target)
        if text is None:
            continue
        profile = next(name for name, paths in PROFILES.items() if target in paths)
        stamp = _STAMP.search(text)
        if stamp is None or _digest(text[:stamp.start()]) != stamp.group(2):
            state = "edited"
        elif text != current:
            state = "outdated"
        else:
            state = "current"
        found.append(Installed(repo / target, profile, state))
    return found
