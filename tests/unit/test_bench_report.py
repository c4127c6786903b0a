"""The benchmark harness's targets and its Markdown report, on small saved results: the
docs' figures are rendered from these, so a target judged the wrong way round, a ratio
against the wrong row or a lost load average would print a page that lies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.harness import evaluate_targets
from bench.report import by_how_much, main, render

TITLES = {"transitions": "1. transition throughput", "doctor": "4. chain verification",
          "mcp": "12. MCP tool calls", "startup": "13. start-up", "web": "10. web UI"}


def measured_row(key: str, name: str, unit: str, samples: list[float],
                 who: str = "striatum") -> dict[str, Any]:
    ordered = sorted(samples)
    return {"key": key, "name": name, "unit": unit, "who": who, "samples": samples,
            "summary": {"median": ordered[len(ordered) // 2], "min": ordered[0],
                        "max": ordered[-1], "n": len(ordered)}}


def saved_run() -> dict[str, Any]:
    return {
        "command": "python -m bench all --quick", "started": "2026-12-05T12:00:00+00:00",
        "finished": "2026-12-05T12:04:00+00:00", "repeat": 2, "quick": True,
        "machine": {"nproc": 2, "cpu": "Some CPU", "memory": "24 GiB", "python": "3.11.7",
                    "platform": "Linux", "postgres": "PostgreSQL 15.20",
                    "loadavg": [0.5, 0.4, 0.3], "loadavg_end": [2.5, 1.0, 0.6]},
        "peers": {"procrastinate": "3.10.0"}, "peers_unavailable": None,
        "figures": {
            "transitions": {"rows": [
                measured_row("w1", "1 writer", "transitions/s", [700.0, 720.0, 740.0]),
                measured_row("w4", "4 writers", "transitions/s", [1400.0, 1500.0, 1600.0]),
                measured_row("ceiling", "server ceiling", "transitions/s",
                             [900.0, 1000.0, 1100.0], who="reference")],
                "notes": ["a note on the method"], "wall_s": 12.0},
            "doctor": {"rows": [
                measured_row("doctor", "doctor over 1,000 events", "events/s", [32.0]),
                measured_row("in_sql", "  the floor", "events/s", [100.0], who="reference"),
                measured_row("rss_big", "RSS big", "MiB", [40.0]),
                measured_row("rss_small", "RSS small", "MiB", [40.0], who="reference")]},
            "mcp": {"rows": [
                measured_row("mcp job.claim", "MCP job_claim", "ms", [38.0, 90.0, 40.0]),
                {"key": "mcp run.status", "name": "MCP run_status", "unit": "ms",
                 "who": "striatum", "na": "the server | did not start"}]},
            "startup": {"rows": [
                measured_row("help", "striatum --help", "ms", [36.0]),
                measured_row("click", "import click", "ms", [30.0], who="reference"),
                measured_row("heavy", "heavy modules", "modules", [0.0])]},
            "web": {"error": "RuntimeError: no server", "rows": []}}}


def by_target(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["target"]: t for t in evaluate_targets(results)}


def test_ratio_targets_are_judged_from_the_medians_in_their_direction() -> None:
    found = by_target(saved_run())
    ceiling = found["1. one writer's transitions/s >= 0.7 x the server ceiling "
                    "(pgbench replay)"]
    assert (ceiling["value"], ceiling["met"], ceiling["at_least"]) == (0.72, True, True)
    writers = found["1. 4 writers on 4 repositories >= 1.6 x one writer"]
    assert writers["value"] == pytest.approx(1500 / 720) and writers["met"] is True
    doctor = found["4. doctor events/s >= 0.8 x the hash-only SQL pass (same run)"]
    assert (doctor["value"], doctor["met"]) == (0.32, False)
    assert found["4. doctor memory flat: peak RSS(10x events) <= 1.25 x RSS(1x)"]["met"]
    helped = found["13. `striatum --help` <= 1.3 x `python -c \"import click\"` (same rounds)"]
    assert helped["value"] == pytest.approx(1.2) and helped["met"] is True
    assert found["13. `striatum --help` imports none of the heavy modules"]["met"] is True


def test_a_ceiling_is_met_below_it_and_a_figure_not_measured_is_neither() -> None:
    found = by_target(saved_run())
    claim = found["12. MCP tool call job_claim (stdio) median <= 60 ms"]
    assert (claim["value"], claim["met"], claim["at_least"]) == (40.0, True, False)
    status = found["12. MCP tool call run_status (stdio) median <= 60 ms"]
    assert (status["value"], status["met"]) == (None, None)
    # A figure the run left out has no targets at all, rather than ones "not measured".
    assert not [t for t in found if t.startswith(("2.", "3.", "5.", "6."))]


def test_the_doctor_target_is_against_the_hash_only_sql_pass() -> None:
    texts = [t["target"] for t in evaluate_targets(saved_run()) if t["target"].startswith("4.")]
    assert any("hash-only SQL pass" in text for text in texts)
    assert not any("Python" in text for text in texts)


@pytest.mark.parametrize(("target", "said"), [
    ({"target": "x >= 0.8", "value": 0.2, "limit": 0.8, "at_least": True},
     "75 % short (0.25 of the target)"),
    ({"target": "x >= 0.8", "value": 1.0, "limit": 0.8, "at_least": True}, "25 % above"),
    ({"target": "t <= 60 ms", "value": 90.0, "limit": 60.0, "at_least": False},
     "50 % over (1.50x the limit)"),
    ({"target": "t <= 60 ms", "value": 45.0, "limit": 60.0, "at_least": False}, "25 % under"),
    ({"target": "none <= 0", "value": 2.0, "limit": 0.0, "at_least": False, "unit": "modules"},
     "2.00 where none is allowed"),
    # A result saved before the direction was kept: the text says it.
    ({"target": "x >= 0.8", "value": 0.4, "limit": 0.8}, "50 % short (0.50 of the target)"),
])
def test_by_how_much_says_the_margin_or_the_shortfall(target: dict[str, Any],
                                                      said: str) -> None:
    assert by_how_much(target) == said


def rendered() -> str:
    results = saved_run()
    results["targets"] = evaluate_targets(results)
    return render(results, TITLES)


def test_the_report_names_the_run_the_machine_and_the_load_at_both_ends() -> None:
    text = rendered()
    assert "`python -m bench all --quick`, 2026-12-05T12:00:00+00:00 -> " \
           "2026-12-05T12:04:00+00:00 UTC; repeat 2 (--quick)" in text
    assert "- machine: 2 CPUs, Some CPU, 24 GiB, CPython 3.11.7, Linux" in text
    assert "- load average (1, 5, 15 min): start 0.5 0.4 0.3, end 2.5 1.0 0.6" in text
    assert "- peers: procrastinate 3.10.0" in text


def test_the_report_has_every_target_with_its_status_and_margin() -> None:
    lines = rendered().splitlines()
    row = next(line for line in lines if line.startswith("| 4. doctor events/s"))
    assert row.endswith("| 0.32x | MISSED | 60 % short (0.40 of the target) |")
    row = next(line for line in lines if line.startswith("| 12. MCP tool call run_status"))
    assert row.endswith("| not measured | n/a |  |")
    first = next(i for i, line in enumerate(lines) if line.startswith("| target |"))
    targets = lines[first + 2:lines.index("## The table") - 1]
    assert len(targets) == len(evaluate_targets(saved_run()))


def test_the_full_table_has_each_row_its_ratio_and_what_could_not_be_measured() -> None:
    lines = rendered().splitlines()
    assert "| **1. transition throughput** (12 s) | | | | |" in lines
    assert "| server ceiling [reference] | 1,000 | 900-1,000 | transitions/s | 0.720x |" \
        not in lines  # min-max are the samples', not the median's
    assert "| server ceiling [reference] | 1,000 | 900-1,100 | transitions/s | 0.720x |" in lines
    assert "| · the floor [reference] | 100 | 100-100 | events/s | 0.320x |" in lines
    assert "| MCP run_status | n/a | | ms | the server \\| did not start |" in lines
    assert "| n/a: RuntimeError: no server | | | | |" in lines
    assert "- 1. a note on the method" in lines
    results = saved_run()
    assert "a note on the method" not in render(results, TITLES, with_notes=False)


def test_report_renders_a_saved_file_and_refuses_what_is_not_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "run.json"
    results = saved_run()
    results["targets"] = evaluate_targets(results)
    saved.write_text(json.dumps(results), encoding="utf-8")
    out = tmp_path / "run.md"
    assert main([str(saved), "--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8").startswith(
        "## Targets\n\nAll from one run:\n\n- run: `python -m bench all --quick`")
    for content, said in (("{", "is not JSON"), ('{"rows": []}', "is not a result of")):
        saved.write_text(content, encoding="utf-8")
        with pytest.raises(SystemExit) as refused:
            main([str(saved)])
        assert refused.value.code == 2 and said in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing.json")])
    assert "cannot read" in capsys.readouterr().err
