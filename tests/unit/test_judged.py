"""doctor's verdicts check over event rows, without a database: which job starts ran on
the digests their accepts name."""

from __future__ import annotations

import json
from typing import Any

from striatum.runtime.judged import USED, digest, misbound

JUDGED = {"artifacts": {"draft.md": "a" * 64}}
NEEDS = {"apply": ["check"], "check": ["draft"], "draft": []}


def row(job: str, kind: str, seq: int, data: dict[str, Any] | None = None, fence: int = 1
        ) -> tuple[Any, ...]:
    return ("r1", job, kind, seq, json.dumps(data or {}), fence)


def check(rows: list[tuple[Any, ...]]) -> tuple[int, list[str]]:
    return misbound(rows, lambda _run, job: NEEDS[job])


def accept(seq: int, **extra: Any) -> tuple[Any, ...]:
    return row("check", "job.complete", seq, {"verdict": "accept", "reason": "ok",
                                              "judged": JUDGED, **extra})


def test_a_start_on_the_accepts_digest_is_bound() -> None:
    assert check([accept(1), row("apply", "job.claim", 2),
                  row("apply", USED, 3, {"review": "check", "judged": digest(JUDGED)}),
                  row("apply", "job.complete", 4)]) == (1, [])


def test_a_start_on_another_digest_is_named() -> None:
    bound, problems = check([accept(1), row("apply", "job.claim", 2, fence=3),
                             row("apply", USED, 3, {"review": "check", "judged": "f" * 64},
                                 fence=3)])
    assert bound == 0
    assert problems == [f"run r1: event seq 3: apply (fence 3) ran on digest ffffffffffff..., "
                        f"but the accept of check names {digest(JUDGED)[:12]}..."]


def test_a_completion_without_the_check_is_named_and_a_lapse_is_not() -> None:
    unchecked = check([accept(1), row("apply", "job.claim", 2), row("apply", "job.complete", 3)])
    assert unchecked[1] == ["run r1: event seq 3: apply (fence 1) ran on the accept of check "
                            "without checking its digests"]
    lapsed = check([accept(1), row("apply", "job.claim", 2),
                    row("apply", "job.reset", 3, {"lapsed": ["check"]}),
                    row("check", "job.reset", 4, {"lapsed": "draft.md was republished"})])
    assert lapsed == (0, [])


def test_an_accept_without_digests_binds_nothing() -> None:
    old = row("check", "job.complete", 1, {"verdict": "accept", "reason": "ok"})
    assert check([old, row("apply", "job.claim", 2), row("apply", "job.complete", 3)]) == (0, [])


def test_a_needs_revision_accepted_at_exhaustion_binds_as_an_accept() -> None:
    exhausted = accept(1, verdict="needs_revision", exhausted=True)
    assert check([exhausted, row("apply", "job.claim", 2),
                  row("apply", USED, 3, {"review": "check", "judged": digest(JUDGED)}),
                  row("apply", "job.complete", 4)]) == (1, [])
    unchecked = check([exhausted, row("apply", "job.claim", 2),
                       row("apply", "job.complete", 3)])
    assert unchecked[1] == ["run r1: event seq 3: apply (fence 1) ran on the accept of check "
                            "without checking its digests"]


def test_the_tree_a_reviewer_left_is_not_part_of_what_it_judged() -> None:
    assert digest({**JUDGED, "tree": "t" * 40, "tree_at_verdict": "u" * 40}) == \
        digest({**JUDGED, "tree": "t" * 40})


def test_a_use_no_accept_stood_for_is_named() -> None:
    bound, problems = check([row("apply", "job.claim", 1),
                             row("apply", USED, 2, {"review": "check", "judged": "0" * 64})])
    assert bound == 0 and "which no accept with digests stood for" in problems[0]
