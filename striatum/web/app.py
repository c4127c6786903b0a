"""The web face: server-rendered pages over the registry's verbs (docs/HOW_TO_HUMAN.md).

Every page is one or more viewer calls and every action one principal call, each made
through ``server.gate.Gate`` exactly as the daemon makes it: the capability checked, the
parameters bound, the audit row written (a refused action too). Nothing here reads the
database or decides anything about a run; it arranges what the verbs return.

A page view holds the viewer token; an action holds the principal's only when the server
was started with ``--allow-mutations`` and the form carries this browser session's CSRF
token (``guard.csrf_token``). Otherwise the action is still sent, with no credential, so
the gate refuses it and audits the refusal.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ..runtime.machine import JOB_TERMINAL, RUN_STATES, RUN_TERMINAL
from ..server.gate import Gate, Peer
from . import graph, text
from .guard import csrf_ok, csrf_token

SESSION_COOKIE = "striatum_session"
RUNS_SHOWN = 200  # the newest, on the runs page
LIVE_SECONDS = 1.0  # how often a live page asks whether its run moved
KEEPALIVE_SECONDS = 15.0
ENDED = RUN_TERMINAL
JOB_ENDED = frozenset({"succeeded", "skipped"}) | JOB_TERMINAL
HTTP_STATUS = {"not_found": 404, "usage": 400, "forbidden": 403, "conflict": 409,
               "lease_lost": 409, "invalid": 422, "store_unavailable": 503}


# What a live page's look returns: where its subject stands, how to render its live
# part, and whether the subject is done (no more updates).
Look = tuple[str, Callable[[], str], bool]


def run_mark(view: dict[str, Any]) -> str:
    """A run page's mark: every change of the run appends an event to its chain."""
    head = view["chain_head"]["seq"] if view["chain_head"] else 0
    return f"{head}:{view['status']}"


def job_mark(shown: dict[str, Any]) -> str:
    """A job page's mark: its state, pass, attempt and how much log it has."""
    job = shown["job"]
    log = hashlib.sha256((shown["log_tail"] or "").encode()).hexdigest()[:16]
    return f"{job['status']}:{job['iteration']}:{job['attempt']}:{log}"


def inbox_mark(found: dict[str, Any]) -> str:
    """The inbox page's mark: which items wait (their ages grow every second; the page
    shows them as of its last change)."""
    items = ",".join(f"{i['kind']}:{i['run']}:{i['job']}" for i in found["items"])
    return hashlib.sha256(items.encode()).hexdigest()[:16]


class Failed(Exception):
    """A verb's error document, shown as a page with the matching HTTP status."""

    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__(document.get("message", "failed"))
        self.document = document


@dataclass
class Face:
    """What the pages call: the gate, the credentials this server holds, who it acts as."""

    gate: Gate
    viewer: str
    principal: str
    secret: str  # the CSRF tokens' key
    mutations: bool
    actor: str = ""

    def __post_init__(self) -> None:
        if not self.actor:
            self.actor = f"web:{os.environ.get('USER', 'user')}@{socket.gethostname()}"

    def call(self, verb: str, params: dict[str, Any], token: str | None,
             repo: str | None = None) -> tuple[int | None, dict[str, Any]]:
        envelope = {"token": token, "actor": self.actor, "cwd": os.getcwd(),
                    "repo": repo or os.getcwd()}
        return self.gate.call(verb, params, envelope, Peer(os.getpid(), os.geteuid()))

    def read(self, verb: str, params: dict[str, Any], repo: str | None = None
             ) -> dict[str, Any]:
        code, document = self.call(verb, params, self.viewer, repo)
        if code is not None:
            raise Failed(document)
        return document


class HostCheck:
    """Refuse (421) a request whose Host header is not this server's own loopback name:
    a page of another site, its name rebound to 127.0.0.1, sends its own."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
            if host not in self.allowed:
                response = Response(
                    f"421 Misdirected Request: this striatum web UI answers only to "
                    f"{', '.join(sorted(self.allowed))}, not to Host {host!r}\n",
                    status_code=421, media_type="text/plain")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def templates() -> Environment:
    env = Environment(loader=FileSystemLoader(str(files("striatum.web") / "templates")),
                      autoescape=select_autoescape(default=True), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["markdown"] = text.markdown
    env.filters["diff"] = text.diff
    env.filters["pretty_json"] = text.pretty_json
    env.filters["q"] = lambda value: quote(str(value), safe="")
    return env


def create_app(face: Face, allowed_hosts: frozenset[str]) -> ASGIApp:
    env = templates()

    def session_of(request: Request) -> str:
        return request.cookies.get(SESSION_COOKIE) or ""

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        session = session_of(request)
        fresh = not session
        if fresh:
            session = secrets.token_urlsafe(24)
        body = env.get_template(name).render(
            mutations=face.mutations, csrf=csrf_token(face.secret, session), **context)
        response = HTMLResponse(body, status_code=status)
        if fresh:
            response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict")
        return response

    def failed(request: Request, exc: Failed) -> Response:
        document = exc.document
        return page(request, "error.html", HTTP_STATUS.get(document.get("error", ""), 500),
                    error=document)

    def viewing(render: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                return render(request)
            except Failed as exc:
                return failed(request, exc)
        return endpoint

    @viewing
    def runs(request: Request) -> Response:
        state = request.query_params.get("state", "")
        repo = request.query_params.get("repo", "")
        params: dict[str, Any] = {"all": not repo, "limit": RUNS_SHOWN}
        if state in RUN_STATES:
            params["status"] = state
        shown = face.read("run.list", params, repo or None)["runs"]
        return page(request, "runs.html", runs=shown, state=state, repo=repo,
                    states=RUN_STATES)

    def live_context(run_id: str, view: dict[str, Any] | None = None) -> dict[str, Any]:
        # run.graph is run.status, the drawing's data and run.why's document: one read of
        # the run's status, not two (``view``: that read, made already).
        if view is None:
            view = face.read("run.graph", {"run": run_id, "why": True})
        return {"run": view, "graph": view, "svg": graph.render(view), "why": view["why"],
                "waiting": [j for j in view["jobs"] if j["status"] == "awaiting_decision"],
                "leased": [j for j in view["jobs"] if j["status"] == "leased"]}

    @viewing
    def run_page(request: Request) -> Response:
        context = live_context(request.path_params["run"])
        return page(request, "run.html", ended=ENDED, since=run_mark(context["run"]),
                    **context)

    @viewing
    def job_page(request: Request) -> Response:
        shown = face.read("job.show", {"run": request.path_params["run"],
                                       "job": request.path_params["job"]})
        return page(request, "job.html", shown=shown, since=job_mark(shown),
                    done=shown["job"]["status"] in JOB_ENDED)

    @viewing
    def artifact_page(request: Request) -> Response:
        shown = face.read("run.artifact", {"run": request.path_params["run"],
                                           "path": request.query_params.get("path", "")})
        return page(request, "artifact.html", shown=shown)

    @viewing
    def events_page(request: Request) -> Response:
        before = request.query_params.get("before", "")
        params: dict[str, Any] = {"run": request.path_params["run"], "limit": 50}
        if before.isdigit():
            params["before"] = int(before)
        return page(request, "events.html", history=face.read("run.history", params))

    @viewing
    def inbox_page(request: Request) -> Response:
        found = face.read("inbox", {"here": False})
        return page(request, "inbox.html", inbox=found, since=inbox_mark(found))

    def stream(request: Request, look: Callable[[], Look]) -> Response:
        """Server-sent events: ``look`` says where the page's subject stands (a mark)
        and how to render its live part; a new mark sends the part anew, until the
        subject is done or the page goes. A verb's error ends the stream, said."""
        seen = request.query_params.get("since", "")  # what the page was rendered from

        async def events() -> AsyncIterator[str]:
            nonlocal seen
            quiet = 0.0
            while not await request.is_disconnected():
                try:
                    mark, render, done = await run_in_threadpool(look)
                    html = await run_in_threadpool(render) if mark != seen else None
                except Failed as exc:
                    yield f"event: failed\ndata: {json.dumps(exc.document)}\n\n"
                    return
                if html is not None:
                    seen = mark
                    update = {"html": html, "since": mark, "done": done}
                    yield f"event: update\ndata: {json.dumps(update)}\n\n"
                    quiet = 0.0
                    if done:
                        return
                elif quiet >= KEEPALIVE_SECONDS:
                    yield ": still here\n\n"
                    quiet = 0.0
                await asyncio.sleep(LIVE_SECONDS)
                quiet += LIVE_SECONDS

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    def run_live(request: Request) -> Response:
        run_id = request.path_params["run"]
        csrf = csrf_token(face.secret, session_of(request))

        def look() -> Look:
            # The read that marks where the run stands is the one the update is drawn from.
            view = face.read("run.graph", {"run": run_id, "why": True})

            def render() -> str:
                return env.get_template("_live.html").render(
                    mutations=face.mutations, csrf=csrf, ended=ENDED,
                    **live_context(run_id, view))
            return run_mark(view), render, view["status"] in ENDED

        return stream(request, look)

    def job_live(request: Request) -> Response:
        params = {"run": request.path_params["run"], "job": request.path_params["job"]}

        def look() -> Look:
            shown = face.read("job.show", params)

            def render() -> str:
                return env.get_template("_job_live.html").render(shown=shown)
            return job_mark(shown), render, shown["job"]["status"] in JOB_ENDED

        return stream(request, look)

    def inbox_live(request: Request) -> Response:
        def look() -> Look:
            found = face.read("inbox", {"here": False})

            def render() -> str:
                return env.get_template("_inbox_live.html").render(inbox=found)
            return inbox_mark(found), render, False

        return stream(request, look)

    async def act(request: Request, verb: str, params: dict[str, Any], back: str) -> Response:
        form = await request.form()
        presented = form.get("csrf") or request.headers.get("x-csrf-token")
        for key in ("choice", "decision", "reason", "job"):
            # The path names the job a decide or unlease acts on: a form field cannot.
            if key in form and key not in params and (form[key] or key != "reason"):
                params[key] = str(form[key])
        allowed = face.mutations and csrf_ok(face.secret, session_of(request),
                                             presented if isinstance(presented, str) else None)
        code, document = await run_in_threadpool(
            face.call, verb, params, face.principal if allowed else None)
        if code is None:
            return RedirectResponse(back, status_code=303)
        if not allowed:
            why = ("this server was started without --allow-mutations: it only shows"
                   if not face.mutations else
                   "the form's CSRF token is missing or is not this browser session's: "
                   "reload the page and try again")
            document = {**document, "message": f"{verb} refused: {why}",
                        "hint": "restart with `striatum serve --web --allow-mutations` to act "
                                "from the browser, or use the CLI command the page shows"}
        return failed(request, Failed(document))

    def run_of(request: Request) -> str:
        return str(request.path_params["run"])

    async def cancel(request: Request) -> Response:
        run_id = run_of(request)
        return await act(request, "run.cancel", {"run": run_id}, f"/runs/{quote(run_id)}")

    async def resume(request: Request) -> Response:
        run_id = run_of(request)
        return await act(request, "run.resume", {"run": run_id}, f"/runs/{quote(run_id)}")

    async def decide(request: Request) -> Response:
        run_id = run_of(request)
        return await act(request, "checkpoint.decide",
                         {"run": run_id, "job": request.path_params["job"]},
                         f"/runs/{quote(run_id)}")

    async def unlease(request: Request) -> Response:
        run_id = run_of(request)
        return await act(request, "job.unlease",
                         {"run": run_id, "job": request.path_params["job"]},
                         f"/runs/{quote(run_id)}")

    static = str(files("striatum.web") / "static")
    app = Starlette(routes=[
        Route("/", runs),
        Route("/inbox", inbox_page),
        Route("/inbox/live", inbox_live),
        Route("/runs/{run}", run_page),
        Route("/runs/{run}/live", run_live),
        Route("/runs/{run}/jobs/{job}/live", job_live),
        Route("/runs/{run}/events", events_page),
        Route("/runs/{run}/artifact", artifact_page),
        Route("/runs/{run}/jobs/{job}", job_page),
        Route("/runs/{run}/cancel", cancel, methods=["POST"]),
        Route("/runs/{run}/resume", resume, methods=["POST"]),
        Route("/runs/{run}/jobs/{job}/decide", decide, methods=["POST"]),
        Route("/runs/{run}/jobs/{job}/unlease", unlease, methods=["POST"]),
        Mount("/static", StaticFiles(directory=static), name="static"),
    ])
    return HostCheck(app, allowed_hosts)
