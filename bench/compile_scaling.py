"""How the compiler scales: each stage timed on generated workflows of 100 to 10,000 jobs.

    python bench/compile_scaling.py [--sizes 100,1000,10000] [--repeat 5] [--json]

Three shapes, all valid and lint-quiet (two lanes of different vendors, every
reviewer on the other lane, every artifact consumed, inline prompts so no
prompt file is read):

* chain   a line of tasks; every 10th job is a review that revises 5 jobs back (max 1)
* fanout  one root, N-2 parallel tasks, one join
* nested  blocks of 20: an outer review revises the block start (max 2), an
          inner review revises a job in the middle of it (max 1)
* writes  every job declares `writes`, in a line of diamonds: a head writing
          ``src/**``, 8 parallel jobs each writing a folder of its own, a join
          writing ``src/**`` (lint STR305 compares every pair of writers)

Stages, in pipeline order (each timed on the previous stage's output):
load (read + JSON parse), validate (schema), check (IR, references, graph,
cycles, structure proofs), compile (compile_bytes), lint, plan (plan_document).
"total" is timed separately, end to end: ``check(path)`` + compile + lint + plan.

This prints figures only; it asserts nothing, so it never fails on a slow machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run from a checkout without installing: the package sits next to bench/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from striatum.compiler.compile import (
    Compilation,
    check,
    compile_bytes,
)
from striatum.compiler.graph import (
    build_graph,
    check_cycles,
    check_references,
    check_structure,
)
from striatum.compiler.ir import normalize
from striatum.compiler.load import read_source
from striatum.compiler.plan import plan_document
from striatum.compiler.schema import validate_document

SHAPES = ("chain", "fanout", "nested", "writes")
STAGES = ("load", "validate", "check", "compile", "lint", "plan")
TARGET_TOTAL_S = 1.0  # 10,000 jobs, whole pipeline
TARGET_RATIO = 12.0  # total(10k) / total(1k): near-linear, with room for n log n
WORKER, REVIEWER = "codex", "claude"


# --------------------------------------------------------------------------- lint

def _load_lint() -> tuple[Callable[[Compilation], list[Any]] | None, str]:
    # lint is written in parallel with this bench; time it when it exists
    # and works, otherwise report "n/a" rather than fail the whole run.
    try:
        from striatum.compiler.lint import lint
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        return None, f"cannot import striatum.compiler.lint: {type(exc).__name__}: {exc}"
    return lint, "timed"


LINT, LINT_STATUS = _load_lint()


def _probe_lint(comp: Compilation) -> None:
    """Drop lint from the run when it fails on a valid workflow (it is still being written)."""
    global LINT, LINT_STATUS
    if LINT is None:
        return
    try:
        LINT(comp)
    except Exception as exc:  # noqa: BLE001 - a broken lint must not stop the other stages
        LINT, LINT_STATUS = None, f"lint raised {type(exc).__name__}: {exc}"


# ---------------------------------------------------------------- workflow shapes

def _lanes() -> dict[str, Any]:
    return {
        WORKER: {"command": ["codex", "exec", "--sandbox", "workspace-write", "-"],
                 "stdin": "{prompt_file}", "timeout": 3600},
        REVIEWER: {"command": ["claude", "-p"], "stdin": "{prompt_file}", "timeout": 1800},
    }


def _job(i: int, lane: str, needs: list[str], **extra: Any) -> dict[str, Any]:
    job: dict[str, Any] = {"id": f"j{i}", "lane": lane,
                           "prompt": {"text": f"Do step {i}; read the inputs you are given."}}
    if needs:
        job["needs"] = needs
    job.update(extra)
    return job


def _review(i: int, target: int, budget: int) -> dict[str, Any]:
    # Reviews run on the other vendor's lane than the tasks they review (no co-blindness).
    return _job(i, REVIEWER, [f"j{i - 1}"], kind="review",
                revise={"target": f"j{target}", "max": budget})


def _link_artifacts(jobs: list[dict[str, Any]]) -> None:
    """In a line, each job publishes one artifact that the next one consumes:
    nothing is produced unread and nothing is consumed from outside the line."""
    for i, job in enumerate(jobs[:-1]):
        job["produces"] = [f"out/{job['id']}.md"]
        jobs[i + 1]["consumes"] = [f"out/{job['id']}.md"]


def chain(n: int) -> list[dict[str, Any]]:
    jobs = []
    for i in range(n):
        if i % 10 == 9:
            jobs.append(_review(i, i - 5, 1))
        else:
            jobs.append(_job(i, WORKER, [f"j{i - 1}"] if i else []))
    _link_artifacts(jobs)
    return jobs


def fanout(n: int) -> list[dict[str, Any]]:
    width = n - 2
    root = _job(0, WORKER, [], produces=["out/brief.md"])
    middle = [_job(i, WORKER if i % 2 else REVIEWER, ["j0"], consumes=["out/brief.md"],
                   produces=[f"out/part{i}.md"]) for i in range(1, width + 1)]
    join = _job(width + 1, WORKER, [f"j{i}" for i in range(1, width + 1)],
                consumes=[f"out/part{i}.md" for i in range(1, width + 1)])
    return [root, *middle, join]


def nested(n: int) -> list[dict[str, Any]]:
    # Within a complete block of 20 starting at b: the inner review at b+14
    # revises b+10 (max 1), the outer review at b+19 revises b (max 2).
    jobs = []
    for i in range(n):
        b, p = i - i % 20, i % 20
        complete = b + 19 < n
        if complete and p == 19:
            jobs.append(_review(i, b, 2))
        elif complete and p == 14:
            jobs.append(_review(i, b + 10, 1))
        else:
            jobs.append(_job(i, WORKER, [f"j{i - 1}"] if i else []))
    _link_artifacts(jobs)
    return jobs


def writes(n: int, *, shared: int = 0) -> list[dict[str, Any]]:
    # Diamonds of 10: head j(b), parallel j(b+1)..j(b+8), join j(b+9); the next head
    # needs the join. ``shared``: that many of each diamond's parallel jobs write
    # ``src/**`` instead of their own folder, so they overlap (compile_same.py).
    jobs = []
    for i in range(n):
        b, p = i - i % 10, i % 10
        if p == 0:
            jobs.append(_job(i, WORKER, [f"j{i - 1}"] if i else [], writes=["src/**"]))
        elif p < 9 and i + 9 - p < n:
            own = "src/**" if p <= shared else f"src/m{i}/**"
            jobs.append(_job(i, WORKER, [f"j{b}"], writes=[own]))
        else:
            jobs.append(_job(i, WORKER, [f"j{k}" for k in range(b + 1, i)] or [f"j{i - 1}"],
                             writes=["src/**"]))
    return jobs


GENERATORS: dict[str, Callable[[int], list[dict[str, Any]]]] = {
    "chain": chain, "fanout": fanout, "nested": nested, "writes": writes}


def write_workflow(directory: Path, shape: str, n: int) -> Path:
    document = {"name": f"bench-{shape}-{n}", "lanes": _lanes(), "jobs": GENERATORS[shape](n)}
    path = directory / f"{shape}-{n}" / "workflow.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


# ------------------------------------------------------------------------- timing

def _clock(times: dict[str, float], stage: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = fn()
    times[stage] = time.perf_counter() - start
    return result


def _check_stage(comp: Compilation) -> None:
    """The body of ``check_source`` after the schema: IR, references, graph, proofs."""
    comp.workflow = normalize(comp.source.document)
    if not comp.add(check_references(comp.workflow)):
        raise SystemExit(f"{comp.source.file}: generated workflow has bad references")
    wg = build_graph(comp.workflow)
    if not (comp.add(check_cycles(wg)) and comp.add(check_structure(wg))):
        raise SystemExit(f"{comp.source.file}: generated workflow failed the proofs")
    comp.graph = wg


def run_stages(path: Path) -> tuple[dict[str, float], int]:
    """One pass, stage by stage; returns the times and the number of lint findings."""
    times: dict[str, float] = {}
    source = _clock(times, "load", lambda: read_source(str(path)))
    comp = Compilation(source)
    if not comp.add(_clock(times, "validate", lambda: validate_document(source.document))):
        raise SystemExit(f"{path}: generated workflow is not schema-valid")
    _clock(times, "check", lambda: _check_stage(comp))
    _clock(times, "compile", lambda: compile_bytes(comp))
    findings = _clock(times, "lint", lambda: LINT(comp)) if LINT else []
    _clock(times, "plan", lambda: plan_document(comp.graph))
    return times, len(findings)


def run_total(path: Path) -> float:
    start = time.perf_counter()
    comp = check(str(path))
    assert comp.ok and comp.graph is not None  # a correctness check, not a timing one
    compile_bytes(comp)
    if LINT:
        LINT(comp)
    plan_document(comp.graph)
    return time.perf_counter() - start


def _summary(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def measure(path: Path, repeat: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "total")}
    findings = 0
    for _ in range(repeat):
        # Collect between runs so one run's garbage is not billed to the next.
        gc.collect()
        times, findings = run_stages(path)
        for stage, seconds in times.items():
            samples[stage].append(seconds)
        gc.collect()
        samples["total"].append(run_total(path))
    return {"bytes": path.stat().st_size, "lint_findings": findings if LINT else None,
            "stages": {stage: _summary(s) for stage, s in samples.items() if s}}


def warm_up(directory: Path) -> None:
    # Imports (networkx, jsonschema-rs) and the cached schema validator are paid
    # once per process; bench/cli_startup.py measures them. Keep them out of here.
    path = write_workflow(directory, "chain", 30)
    _probe_lint(check(str(path)))
    run_stages(path)
    run_total(path)


# ------------------------------------------------------------------------ report

def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            # Other work on the machine skews wall times; show how busy it was.
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _cell(summary: dict[str, float] | None) -> str:
    if summary is None:
        return "n/a"
    return f"{_ms(summary['median'])} [{_ms(summary['min'])}-{_ms(summary['max'])}]"


def ratios(results: dict[str, dict[int, dict[str, Any]]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for shape, by_size in results.items():
        small, big = by_size.get(1000), by_size.get(10000)
        out[shape] = (big["stages"]["total"]["median"] / small["stages"]["total"]["median"]
                      if small and big else None)
    return out


def print_shape(shape: str, by_size: dict[int, dict[str, Any]]) -> None:
    sizes = sorted(by_size)
    width = 26
    print(f"\n{shape}  (ms: median [min-max])")
    print(f"  {'jobs':<10}" + "".join(f"{n:>{width},}" for n in sizes))
    print(f"  {'file KiB':<10}" + "".join(f"{by_size[n]['bytes'] / 1024:>{width},.0f}"
                                          for n in sizes))
    for stage in (*STAGES, "total"):
        cells = [_cell(by_size[n]["stages"].get(stage)) for n in sizes]
        print(f"  {stage:<10}" + "".join(f"{c:>{width}}" for c in cells))
    findings = [by_size[n]["lint_findings"] for n in sizes]
    print(f"  {'lint finds':<10}" + "".join(f"{'n/a' if f is None else f:>{width}}"
                                            for f in findings))


def print_targets(results: dict[str, dict[int, dict[str, Any]]]) -> None:
    print(f"\ntargets: 10,000 jobs total <= {TARGET_TOTAL_S:.0f} s; "
          f"total(10k)/total(1k) <= {TARGET_RATIO:.0f}")
    for shape, ratio in ratios(results).items():
        big = results[shape].get(10000)
        if big is None or ratio is None:
            print(f"  {shape:<8} (needs sizes 1000 and 10000)")
            continue
        total = big["stages"]["total"]["median"]
        print(f"  {shape:<8} total(10k) = {total:.3f} s "
              f"[{'met' if total <= TARGET_TOTAL_S else 'MISSED'}]   "
              f"ratio = {ratio:.1f} [{'met' if ratio <= TARGET_RATIO else 'MISSED'}]")


def print_report(info: dict[str, Any], repeat: int,
                 results: dict[str, dict[int, dict[str, Any]]]) -> None:
    print(f"machine: {info['nproc']} CPUs, {info['cpu']}, "
          f"{info['implementation']} {info['python']}, {info['platform']}")
    print(f"load average at the end: {' '.join(str(x) for x in info['loadavg'])}")
    print(f"repeat: {repeat} (median and min-max); lint: "
          f"{'timed' if LINT else 'n/a (' + LINT_STATUS + ')'}")
    for shape, by_size in results.items():
        print_shape(shape, by_size)
    print_targets(results)


# --------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000",
                        help="comma-separated job counts (default: 100,1000,10000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per size and shape")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="subset of " + ",".join(SHAPES))
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.shapes = [s for s in args.shapes.split(",") if s.strip()]
    if min(args.sizes) < 20 or args.repeat < 1 or not set(args.shapes) <= set(SHAPES):
        parser.error("sizes must be >= 20, --repeat >= 1, shapes among " + ",".join(SHAPES))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, dict[int, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="striatum-bench-") as tmp:
        warm_up(Path(tmp))
        for shape in args.shapes:
            results[shape] = {}
            for n in args.sizes:
                results[shape][n] = measure(write_workflow(Path(tmp), shape, n), args.repeat)
    info = machine()
    if args.json:
        json.dump({"machine": info, "repeat": args.repeat, "lint": LINT_STATUS,
                   "results": results, "ratio_10k_over_1k": ratios(results),
                   "targets": {"total_10k_s": TARGET_TOTAL_S, "ratio": TARGET_RATIO}},
                  sys.stdout, indent=2)
        print()
    else:
        print_report(info, args.repeat, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
