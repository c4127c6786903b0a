"""The web UI in a real browser: Playwright drives Debian's Chromium against
``striatum serve --web`` while a worker runs an example on the fake agents. The run page
redraws itself as jobs finish (no reload), a click decides the checkpoint, the run
completes; every page passes axe-core with no critical violation. The browser reaches
127.0.0.1 alone. Skipped only where /usr/bin/chromium is absent (.ci/run installs it).

axe.min.js is axe-core 4.14.1 from the npm registry, vendored (MPL-2.0, its licence
beside it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from striatum.runtime import runs
from striatum.runtime.store import Store

from ..integration.helpers import example
from ..integration.worker_helpers import fake

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).with_name("axe.min.js")
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="no /usr/bin/chromium (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def started(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child holds its own copy of the descriptor
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=REPO, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(20)


def wait_until_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"striatum serve exited {proc.returncode}:\n"
                                 f"{log.read_text(errors='replace')}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"striatum serve did not listen in 60 s:\n{log.read_text()}")


@pytest.fixture
def served(dsn: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIATUM_")}
    env.update(STRIATUM_DSN=dsn, STRIATUM_HOME=str(tmp_path / "home"))
    log = tmp_path / "serve.log"
    server = started([sys.executable, "-m", "striatum", "serve", "--web", "--port", str(port),
                      "--allow-mutations"], env, log)
    try:
        wait_until_listening(port, server, log)
        assert (tmp_path / "home" / "run" / "web-token").is_file()
        yield f"http://127.0.0.1:{port}", env
    finally:
        stop(server)
    # SIGTERM is a clean stop: the secret the server made is gone with it.
    assert server.returncode == 0, log.read_text(errors="replace")
    assert not (tmp_path / "home" / "run" / "web-token").exists()


def axe_critical(page: Any) -> list[dict[str, Any]]:
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    found = page.evaluate("async () => (await axe.run(document)).violations")
    return [{"id": v["id"], "help": v["help"], "nodes": [n["html"] for n in v["nodes"]][:3]}
            for v in found if v.get("impact") == "critical"]


def test_a_run_watched_live_decided_by_a_click_and_every_page_accessible(
        served: tuple[str, dict[str, str]], store: Store, repo: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    base, env = served
    lanes = {"analyst": {"command": fake("slow", "--seconds", "3"), "timeout": 60},
             "reviewer": {"command": fake("review"), "timeout": 60}}
    run_id = runs.prepare(store, example("human-checkpoint"), str(repo), overrides={},
                          lanes=lanes)
    runs.start(store, run_id)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    worker = started([sys.executable, "-m", "striatum", "--repo", str(repo), "worker",
                      "--run", run_id, "--poll-seconds", "0.2", "--concurrency", "2"],
                     env, tmp_path / "worker.log")
    asked: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                      "--no-proxy-server"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            def only_loopback(route: Any) -> None:
                asked.append(route.request.url)
                if route.request.url.startswith(base + "/"):
                    route.continue_()
                else:
                    route.abort()

            page.route("**/*", only_loopback)
            inbox = browser.new_page()
            inbox.route("**/*", only_loopback)
            inbox.goto(f"{base}/inbox")
            assert "Nothing waits for you" in inbox.content()
            inbox.evaluate("window.__notReloaded = true")
            page.goto(f"{base}/runs/{run_id}")
            page.evaluate("window.__notReloaded = true")
            first = page.get_attribute("#job-analysis", "class") or ""
            assert "s-succeeded" not in first and "s-" in first, first
            page.screenshot(path=str(shots / "run-start.png"), full_page=True)
            # The analysis finishes in the worker; the page redraws it, no reload.
            page.wait_for_selector("#job-analysis.s-succeeded, "
                                   "g[id='job-analysis'][class*='s-succeeded']",
                                   timeout=60_000)
            page.wait_for_selector("button[name=choice][value=continue]", timeout=60_000)
            assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
            assert "s-succeeded" in (page.get_attribute("#job-review", "class") or "")
            page.screenshot(path=str(shots / "run-checkpoint.png"), full_page=True)
            # The inbox open in another tab shows the checkpoint as it arrives.
            inbox.wait_for_selector(f"a[href='/runs/{run_id}']", timeout=30_000)
            assert inbox.evaluate("window.__notReloaded === true")
            shown = {"run": f"{base}/runs/{run_id}"}
            page.goto(f"{base}/inbox")  # the checkpoint waits there too, with its command
            assert page.locator(f"a[href='/runs/{run_id}']").count() == 1
            page.screenshot(path=str(shots / "inbox-waiting.png"), full_page=True)
            problems = {"inbox-waiting": critical} if (critical := axe_critical(page)) else {}
            page.goto(f"{base}/runs/{run_id}")

            page.click("button[name=choice][value=continue]")
            page.wait_for_selector("#run-status.s-completed", timeout=60_000)
            assert "s-succeeded" in (page.get_attribute("#job-implement", "class") or "")
            page.screenshot(path=str(shots / "run-completed.png"), full_page=True)

            shown |= {"runs": f"{base}/", "inbox": f"{base}/inbox",
                      "job": f"{base}/runs/{run_id}/jobs/analysis",
                      "events": f"{base}/runs/{run_id}/events",
                      "artifact": f"{base}/runs/{run_id}/artifact?path=analysis.md"}
            shown["error"] = f"{base}/runs/no-such-run"
            for name, url in shown.items():
                response = page.goto(url)
                assert response is not None, name
                assert response.status == (404 if name == "error" else 200), name
                page.screenshot(path=str(shots / f"page-{name}.png"), full_page=True)
                critical = axe_critical(page)
                if critical:
                    problems[name] = critical
            assert problems == {}, json.dumps(problems, indent=1)
            browser.close()
    except Exception as exc:
        # What the browser saw is in the screenshots; what the processes said, here.
        logs = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}"
                         for log in (tmp_path / "worker.log", tmp_path / "serve.log"))
        raise AssertionError(f"{exc}\nscreenshots: {shots}\n{logs}") from exc
    finally:
        stop(worker)
    assert runs.status(store, run_id).run.status == "completed"
    assert asked and all(url.startswith(base + "/") for url in asked), \
        [url for url in asked if not url.startswith(base + "/")]
    assert {"run-start.png", "run-checkpoint.png", "run-completed.png"} <= \
        {p.name for p in shots.iterdir()}
