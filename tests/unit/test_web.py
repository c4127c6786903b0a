"""The web face's pure parts: the loopback refusal at start, the Host names it answers
to, the CSRF tokens, the graph's layouts, and how an artifact's text becomes HTML."""

from __future__ import annotations

import re
import shutil
import socket

import pytest

from striatum.errors import UsageError
from striatum.web import graph
from striatum.web.guard import allowed_hosts, check_loopback, csrf_ok, csrf_token
from striatum.web.text import diff, markdown, pretty_json

from .test_cli import invoke

GRAPH = {"run": "r1", "waves": [["draft"], ["check"], ["ship<&>"]], "jobs": [
    {"job": "draft", "kind": "task", "lane": "a", "status": "succeeded", "iteration": 1,
     "attempt": 1},
    {"job": "check", "kind": "review", "lane": "b", "status": "leased", "iteration": 1,
     "attempt": 1},
    {"job": "ship<&>", "kind": "task", "lane": "a", "status": "pending", "iteration": 0,
     "attempt": 0}],
    "edges": [{"from": "draft", "to": "check"}, {"from": "check", "to": "ship<&>"}],
    "revisions": [{"from": "check", "to": "draft", "max": 2, "left": 1}]}


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.com", "10.0.0.1"])
def test_a_non_loopback_host_is_refused_at_start_with_exit_1(host: str) -> None:
    with pytest.raises(UsageError, match="loopback address only"):
        check_loopback(host)
    result = invoke("serve", "--web", "--host", host)
    assert result.code == 1
    assert "loopback address only" in result.err and "ssh -L" in result.err


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    check_loopback(host)


def test_serve_names_the_face_it_serves() -> None:
    result = invoke("serve")
    assert result.code == 1 and "serve --web" in result.err


def test_a_port_in_use_is_refused_at_start_with_exit_1() -> None:
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        result = invoke("serve", "--web", "--port", str(port))
    assert result.code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.err and "--port" in result.err


def test_the_host_header_must_name_this_server() -> None:
    names = allowed_hosts("127.0.0.1", 8766)
    assert {"127.0.0.1:8766", "localhost:8766"} <= names
    assert not {"127.0.0.1", "evil.example:8766", "127.0.0.1:8767"} & names
    assert allowed_hosts("::1", 9000) == {"[::1]:9000", "localhost:9000"}


def test_a_csrf_token_belongs_to_one_session_and_one_secret() -> None:
    token = csrf_token("s" * 64, "session-a")
    assert csrf_ok("s" * 64, "session-a", token)
    assert not csrf_ok("s" * 64, "session-b", token)
    assert not csrf_ok("t" * 64, "session-a", token)
    assert not csrf_ok("s" * 64, None, token) and not csrf_ok("s" * 64, "session-a", None)
    assert not csrf_ok("s" * 64, "session-a", "é")


def test_the_layered_layout_places_waves_in_columns_and_escapes_names() -> None:
    svg = graph.layered(GRAPH)
    xs = {job: int(x) for job, x in re.findall(
        r'<g id="job-([^"]+)"[^>]*>.*?<rect x="(\d+)"', svg)}
    assert xs["draft"] < xs["check"] < xs["ship&lt;&amp;&gt;"]
    assert 'class="node s-leased"' in svg and "ship<&>" not in svg
    assert 'class="edge revision"' in svg and "1 of 2 revisions left" in svg
    assert "draft · pass 2" in svg  # the iteration on a revised node


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_graphviz_lays_it_out_when_dot_is_on_path() -> None:
    svg = graph.render(GRAPH)
    assert svg.startswith("<svg") and "<?xml" not in svg
    assert re.search(r'id="job(-|&#45;)check" class="node node s(-|&#45;)leased"', svg)
    assert "1 of 2 revisions left" in svg and "stroke-dasharray" in svg


def test_markdown_is_escaped_before_it_is_drawn() -> None:
    html = str(markdown("# Head\n\nText with **bold**, *em* and `<code>`.\n\n- one\n- "
                        "<b>two</b>\n\n```\n<script>x()</script>\n```\n<img src=x onerror=y>"))
    assert "<h2>Head</h2>" in html and "<strong>bold</strong>" in html
    assert "<em>em</em>" in html and "<code>&lt;code&gt;</code>" in html
    assert "<li>&lt;b&gt;two&lt;/b&gt;</li>" in html
    assert "&lt;script&gt;x()&lt;/script&gt;" in html
    assert "<img" not in html and "<script" not in html and "<b>" not in html


def test_json_is_indented_and_a_diff_marked_line_by_line() -> None:
    assert pretty_json('{"a": [1, 2]}') == '{\n  "a": [\n    1,\n    2\n  ]\n}'
    assert pretty_json("not json") == "not json"
    drawn = str(diff("--- a\n+++ b\n@@ -1 +1 @@\n-old <x>\n+new\n same"))
    assert '<span class="d-del">-old &lt;x&gt;</span>' in drawn
    assert '<span class="d-add">+new</span>' in drawn
    assert '<span class="d-ctx">--- a</span>' in drawn
