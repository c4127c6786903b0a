"""The peers (DBOS, procrastinate), kept out of the project: their own venv, run as subprocesses.

``bench/.peers-venv`` is created with ``python -m venv`` and filled with
``pip install -r bench/requirements.txt``; it is rebuilt when requirements.txt
changes. striatum never imports a peer and a peer's script never imports
striatum. Each peer gets a database of its own on the same server. When a peer
cannot be installed or run, its rows say why and carry no number.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from typing import Any

from .common import BENCH, Context, fresh_database, sqlalchemy_url, summary

VENV = BENCH / ".peers-venv"
REQUIREMENTS = BENCH / "requirements.txt"
SCRIPTS = BENCH / "peers"
MARKER = ".requirements.sha256"


def ensure_venv(ctx: Context) -> None:
    """Create or refresh bench/.peers-venv; on failure record why in ``ctx``."""
    python = VENV / "bin" / "python"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    marker = VENV / MARKER
    if python.exists() and marker.exists() and marker.read_text().strip() == wanted:
        ctx.peers_python = python
        return
    ctx.say(f"peers: creating {VENV.relative_to(BENCH.parent)} "
            f"(pip install -r {REQUIREMENTS.relative_to(BENCH.parent)}) ...")
    steps = [[sys.executable, "-m", "venv", str(VENV)],
             [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              "-r", str(REQUIREMENTS)]]
    for argv in steps:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.SubprocessError) as exc:
            ctx.peers_why = f"{' '.join(argv[:3])} failed: {exc}"
            return
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            ctx.peers_why = f"{' '.join(argv[:4])} exited {done.returncode}: {' | '.join(tail)}"
            return
    marker.write_text(wanted + "\n")
    ctx.peers_python = python


def run_peer(ctx: Context, script: str, args: list[str], timeout: float = 1800
             ) -> dict[str, Any]:
    """Run bench/peers/<script> in the peers' venv; its last stdout line is JSON."""
    if ctx.peers_python is None:
        raise RuntimeError(ctx.peers_why or "peers' venv not available")
    done = subprocess.run([str(ctx.peers_python), str(SCRIPTS / script), *args],
                          capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-4:])
        raise RuntimeError(f"{script} exited {done.returncode}: {tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _row(name: str, unit: str, samples: list[float], key: str, version: str,
         higher_is_better: bool = True) -> dict[str, Any]:
    return {"name": name, "unit": unit, "who": "peer", "samples": samples, "key": key,
            "summary": summary(samples), "higher_is_better": higher_is_better,
            "version": version}


def _na(name: str, unit: str, key: str, why: str) -> dict[str, Any]:
    return {"name": name, "unit": unit, "who": "peer", "key": key, "na": why}


# Each peer's work: the same as a striatum job (the process `true`), then a no-op.
WORKS = (("true", "same work (`true`)", ""), ("noop", "no-op", "_noop"))


def e2e_rows(ctx: Context, n: int) -> list[dict[str, Any]]:
    """The peers' jobs/s: each job runs `true` as a subprocess (the same work as a
    striatum job), and, a second labelled line, each job is an in-process no-op."""
    rows: list[dict[str, Any]] = []
    try:
        with fresh_database(ctx, "_procrastinate", migrate=False) as dsn:
            got = run_peer(ctx, "procrastinate_peer.py", [
                "--dsn", dsn, "--jobs", str(n), "--concurrency", "4",
                "--repeat", str(ctx.repeat), "--dispatch", "0", "--work", "true,noop"])
        for work, what, suffix in WORKS:
            rows.append(_row(f"procrastinate {got['version']}, concurrency 4: {what}",
                             "jobs/s", got["jobs_per_s"][work], "procrastinate" + suffix,
                             got["version"]))
            ctx.say(f"  procrastinate ({work}): "
                    + ", ".join(f"{x:.0f}" for x in got["jobs_per_s"][work]) + " jobs/s")
    except Exception as exc:  # noqa: BLE001 - a peer that fails is reported, never faked
        ctx.say(f"  procrastinate: n/a ({exc})")
        rows.append(_na(f"procrastinate: {n} jobs, concurrency 4", "jobs/s",
                        "procrastinate", str(exc)))
    try:
        with fresh_database(ctx, "_dbos", migrate=False) as dsn:
            got = run_peer(ctx, "dbos_peer.py", ["--url", sqlalchemy_url(dsn), "--workflows",
                                                 str(n), "--repeat", str(ctx.repeat),
                                                 "--work", "true,noop"])
        rates = got["workflows_per_s"]
        for work, what, suffix in WORKS:
            for mode, key, how in (("start_workflow", "dbos", "start_workflow"),
                                   ("queue4", "dbos_queue4", "queue of 4")):
                rows.append(_row(f"DBOS {got['version']}, {how}: {what}",
                                 "workflows/s", rates[f"{mode}:{work}"],
                                 key + suffix, got["version"]))
                ctx.say(f"  DBOS {mode} ({work}): "
                        + ", ".join(f"{x:.0f}" for x in rates[f"{mode}:{work}"]) + " /s")
    except Exception as exc:  # noqa: BLE001 - a peer that fails is reported, never faked
        ctx.say(f"  DBOS: n/a ({exc})")
        rows.append(_na(f"DBOS: {n} one-step workflows", "workflows/s", "dbos", str(exc)))
    return rows


def dispatch_rows(ctx: Context, n: int) -> list[dict[str, Any]]:
    try:
        with fresh_database(ctx, "_procrastinate", migrate=False) as dsn:
            got = run_peer(ctx, "procrastinate_peer.py", [
                "--dsn", dsn, "--jobs", "0", "--repeat", "0", "--dispatch", str(n),
                "--work", ""])
        lat = got["dispatch_ms"]
        ctx.say(f"  procrastinate dispatch: p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms")
        return [_row(f"procrastinate {got['version']}: defer -> task started, p50", "ms",
                     [lat["p50"]], "procrastinate_p50", got["version"], False),
                _row(f"procrastinate {got['version']}: defer -> task started, p99", "ms",
                     [lat["p99"]], "procrastinate_p99", got["version"], False)]
    except Exception as exc:  # noqa: BLE001 - a peer that fails is reported, never faked
        ctx.say(f"  procrastinate dispatch: n/a ({exc})")
        return [_na("procrastinate: defer -> task started", "ms", "procrastinate_p50",
                    str(exc))]


def versions(ctx: Context) -> dict[str, str]:
    if ctx.peers_python is None:
        return {}
    done = subprocess.run([str(ctx.peers_python), "-c",
                           "from importlib.metadata import version as v; "
                           "print(v('dbos'), v('procrastinate'))"],
                          capture_output=True, text=True, check=False)
    parts = done.stdout.split()
    return dict(zip(("dbos", "procrastinate"), parts, strict=False))


__all__ = ["VENV", "dispatch_rows", "e2e_rows", "ensure_venv", "versions"]
