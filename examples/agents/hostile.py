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

A lane is handed its worker's lane socket and its lease, no database login: what it
finds beyond that, it finds as the OS user it runs as (the other lanes' and the
worker's environments in /proc, the files of the striatum home they name).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OWNER = "postgres"
WAIT_FOR_TARGETS = 60.0
NO_LOGIN = "no database login: the lane was handed none"


@dataclass(frozen=True)
class Target:
    """Another lane's job, as its environment in /proc shows it."""

    run: str
    job: str
    token: str
    kind: str
    produces: tuple[str, ...]
    socket: str  # that lane's worker's socket


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


def _cli(report: Report, attack: str, target: str, *args: str,
         env: dict[str, str] | None = None) -> bool:
    done = subprocess.run([_striatum(), *args, "--json"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})
    detail = (done.stdout if done.returncode == 0 else done.stderr).strip()
    return report.add(attack, done.returncode == 0,
                      f"exit {done.returncode}: {detail.splitlines()[0] if detail else ''}",
                      target)


# -- what it can find ----------------------------------------------------------------------


def _environ(pid: str) -> dict[str, str]:
    try:
        data = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.decode(errors="replace").split("=", 1)
                for item in data.split(b"\0") if b"=" in item)


def _ancestors() -> list[str]:
    """The pids above this lane (its worker among them), nearest first."""
    found, pid = [], os.getppid()
    while pid > 1 and len(found) < 10:
        found.append(str(pid))
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return found


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def discover(report: Report) -> tuple[str | None, Path | None, str | None]:
    """(the DSN the lane was handed, the striatum home it found, the pgpass it read)."""
    dsn = os.environ.get("STRIATUM_DSN")
    report.add("env.dsn", bool(dsn), "STRIATUM_DSN is set" if dsn else "no STRIATUM_DSN")
    given = os.environ.get("STRIATUM_HOME")
    report.add("env.home", bool(given), "STRIATUM_HOME is set" if given
               else "no STRIATUM_HOME")
    # The worker's environment, which the same OS user reads in /proc: the home (and
    # a DSN) it was started with.
    worker: dict[str, str] = {}
    for pid in _ancestors():
        for key, value in _environ(pid).items():
            if key in ("STRIATUM_HOME", "STRIATUM_DSN"):
                worker.setdefault(key, value)
    report.add("proc.worker_env", bool(worker),
               f"read {sorted(worker)} from the worker's /proc/<pid>/environ" if worker
               else "nothing of striatum's in the environments above the lane")
    home_text = given or worker.get("STRIATUM_HOME")
    home = Path(home_text) if home_text else None
    passfile = home / "pgpass" if home else None
    text = _read(passfile) if passfile else None
    report.add("file.pgpass", text is not None,
               f"read {passfile}" if text is not None else f"cannot read {passfile}",
               str(passfile or ""))
    users = {line.split(":")[3] for line in (text or "").splitlines()
             if line.count(":") >= 4 and not line.startswith("#")}
    report.add("file.owner_password", OWNER in users,
               f"passwords for {sorted(users)}" if users else "no password found")
    token = _read(home / "run" / "client-token") if home else None
    report.add("file.principal_token", bool(token and token.strip()),
               "read the daemon's client-token" if token else "no client-token readable",
               str(home / "run" / "client-token") if home else "")
    return dsn, home, text


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


def other_lanes(report: Report) -> list[Target]:
    """Every process of the same user shows its environment in /proc: the other lanes
    running on this machine, each with its lease token and its worker's socket, without
    any database. Waits a little for lanes of this run and of another one."""
    me = os.environ["STRIATUM_RUN"]
    deadline = time.monotonic() + WAIT_FOR_TARGETS
    while True:
        found: dict[str, Target] = {}
        for environ in Path("/proc").glob("[0-9]*/environ"):
            env = _environ(environ.parent.name)
            token = env.get("STRIATUM_LEASE")
            if token and token != os.environ.get("STRIATUM_LEASE") and \
                    env.get("STRIATUM_RUN") and env.get("STRIATUM_JOB"):
                found[token] = Target(env["STRIATUM_RUN"], env["STRIATUM_JOB"], token,
                                      env.get("STRIATUM_KIND", "task"),
                                      tuple(n for n in env.get("STRIATUM_PRODUCES", "")
                                            .splitlines() if n),
                                      env.get("STRIATUM_SOCKET", ""))
        runs = {t.run for t in found.values()}
        if (me in runs and len(runs) > 1) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    targets = sorted(found.values(), key=lambda t: (t.run, t.job))
    report.add("proc.read_lease_tokens", bool(targets),
               f"read {len(targets)} other lease token(s) from /proc/*/environ",
               ", ".join(f"{t.run}/{t.job}" for t in targets))
    return targets


# -- the database ----------------------------------------------------------------------------


DB_ATTACKS = ("db.connect", "db.superuser", "db.reset_role_gains", "db.update_events",
              "db.delete_events", "db.update_audit", "db.delete_audit", "db.truncate_events",
              "db.truncate_audit", "db.disable_triggers", "db.insert_event",
              "db.read_lease_tokens", "db.update_projection")


def as_runtime(report: Report, dsn: str | None) -> Any:
    """A connection with the DSN the lane was handed; with none, every attack that needs
    one is reported as failed for that reason."""
    if not dsn:
        for attack in DB_ATTACKS:
            report.add(attack, False, NO_LOGIN)
        for role in (OWNER, "pg_write_server_files", "pg_read_server_files"):
            report.add("db.set_role", False, NO_LOGIN, role)
        return None
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


def log_in_as_owner(report: Report, dsn: str | None, home: Path | None,
                    pgpass: str | None) -> Any:
    """As the owner: with the DSN handed to the lane, its user changed; else over the
    socket folder the password file names, with the password it holds."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    if not dsn:
        line = next((each for each in (pgpass or "").splitlines()
                     if each.count(":") >= 4 and each.split(":")[3] == OWNER), None)
        if line is None or home is None:
            report.add("db.owner_login", False, "no DSN and no owner's password found", OWNER)
            return None
        dsn = make_conninfo(host=line.split(":")[0].replace("\\:", ":"), user=OWNER,
                            dbname="striatum", passfile=str(home / "pgpass"))
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


def read_lease_tokens(report: Report, conn: Any) -> None:
    """Other jobs' live lease tokens, from the jobs table."""
    if conn is None:
        return
    me = (os.environ["STRIATUM_RUN"], os.environ["STRIATUM_JOB"])
    rows = [tuple(r) for r in conn.execute(
        "SELECT run_id, job_id FROM striatum.jobs WHERE status = 'leased' "
        "AND lease_token IS NOT NULL AND lease_expires_at > now()").fetchall()
        if tuple(r) != me]
    report.add("db.read_lease_tokens", bool(rows),
               f"read {len(rows)} live lease token(s) of other jobs",
               ", ".join(f"{r}/{j}" for r, j in rows))


def forged(token: str) -> str:
    fence = token.split("-", 1)[0]
    return f"{fence}-{secrets.token_hex(16)}"


def attack_leases(report: Report, targets: list[Target], out: Path) -> None:
    """With the tokens read in /proc, through each target's own worker's socket (its
    STRIATUM_SOCKET, read there too)."""
    me = os.environ["STRIATUM_RUN"]
    for target in targets:
        where = "this_run" if target.run == me else "other_run"
        name = f"{target.run}/{target.job}"
        env = {"STRIATUM_SOCKET": target.socket} if target.socket else {}
        ends = ("job", "verdict", "accept", "--reason", "hostile: my own work is fine") \
            if target.kind == "review" else ("job", "complete")
        lease = ("--run", target.run, "--job", target.job, "--lease")
        _cli(report, f"{where}.end_forged_token", name, *ends, *lease, forged(target.token),
             env=env)
        for produced in target.produces:
            fake = out / f"forged-{target.job}-{produced.replace('/', '_')}"
            fake.write_text(f"# {produced}\n\nWritten by the hostile agent.\n",
                            encoding="utf-8")
            _cli(report, f"{where}.publish_stolen_token", name, "job", "publish",
                 *lease, target.token, "--artifact", str(fake), "--as", produced, env=env)
        _cli(report, f"{where}.end_stolen_token", name, *ends, *lease, target.token,
             env=env)


def rewrite_projection(report: Report, conn: Any, targets: list[Target]) -> None:
    """The jobs table is the runtime role's to write (every transition writes it): change
    a job of another run that has ended, behind the state machines' back."""
    if conn is None:
        return
    me = os.environ["STRIATUM_RUN"]
    for target in targets:
        run, job = target.run, target.job
        if run != me:
            report.sql("db.update_projection", conn,
                       "UPDATE striatum.jobs SET revisions_used = revisions_used + 7 "
                       "WHERE run_id = %s AND job_id = %s AND status = 'succeeded'",
                       (run, job), target=f"{run}/{job}")
            return
    report.add("db.update_projection", False, "no job of another run to change")


def replay(report: Report, earlier: str | None) -> None:
    run, job = os.environ["STRIATUM_RUN"], os.environ["STRIATUM_JOB"]
    if earlier is None:
        report.add("replay.earlier_attempt", False, "no token of an earlier attempt was kept")
        return
    _cli(report, "replay.earlier_attempt", f"{run}/{job}", "job", "heartbeat",
         "--run", run, "--job", job, "--lease", earlier)


def claim_and_let_expire(report: Report, targets: list[Target]) -> None:
    """Claim a ready job of another run (`striatum job claim`, as a worker would), let
    the lease lapse, then present the expired token."""
    me = os.environ["STRIATUM_RUN"]
    other = next((t.run for t in targets if t.run != me), None)
    if other is None:
        report.add("other_run.claim", False, "no other run seen to claim a job of")
        report.add("replay.expired_token", False, "nothing claimed, so no token to expire")
        return
    done = subprocess.run([_striatum(), "job", "claim", "--run", other, "--owner", "hostile",
                           "--lease-seconds", "5", "--json"], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))
    claimed = json.loads(done.stdout) if done.returncode == 0 else {}
    job, token = claimed.get("job"), claimed.get("lease") or claimed.get("token")
    if not (job and token):
        said = done.stderr.strip().splitlines()
        report.add("other_run.claim", False,
                   f"exit {done.returncode}: {said[0] if said else done.stdout[:200]}", other)
        report.add("replay.expired_token", False, "nothing claimed, so no token to expire")
        return
    report.add("other_run.claim", True, f"claimed {job}", f"{other}/{job}")
    time.sleep(7)
    _cli(report, "replay.expired_token", f"{other}/{job}", "job", "heartbeat",
         "--run", other, "--job", str(job), "--lease", str(token))


# -- the daemon --------------------------------------------------------------------------------


def _call(report: Report, sock: str, attack: str, method: str, params: dict[str, Any],
          token: str | None, target: str = "") -> None:
    """One request on a socket, as the protocol says (docs/daemon.md)."""
    envelope: dict[str, Any] = {"protocol": 1, "actor": "hostile"}
    if token:
        envelope["token"] = token
    request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params,
               "striatum": envelope}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(sock)
            s.sendall(json.dumps(request).encode() + b"\n")
            answer = json.loads(s.makefile("rb").readline())
    except (OSError, ValueError) as exc:
        report.add(attack, False, _first_line(exc), target)
        return
    error = answer.get("error")
    report.add(attack, error is None,
               "answered" if error is None else f"{error.get('code')}: "
               f"{(error.get('data') or {}).get('code')}: {error.get('message')}", target)


def lane_socket(report: Report, targets: list[Target]) -> None:
    """Its own worker's lane socket, with its own lease: another verb, another job."""
    sock = os.environ.get("STRIATUM_SOCKET")
    run, mine = os.environ["STRIATUM_RUN"], os.environ["STRIATUM_LEASE"]
    if not sock:
        report.add("lane_socket.other_verb", False, "no STRIATUM_SOCKET")
        return
    _call(report, sock, "lane_socket.other_verb", "run.cancel", {"run": run}, None, run)
    _call(report, sock, "lane_socket.other_verb", "run.status", {"run": run}, None, run)
    _call(report, sock, "lane_socket.other_verb", "job.claim", {"run": run}, None, run)
    for target in targets:
        _call(report, sock, "lane_socket.own_lease_on_other_job", "job.complete",
              {"run": target.run, "job": target.job, "lease": mine}, None,
              f"{target.run}/{target.job}")


def daemon(report: Report, home: Path | None, stolen: list[Target]) -> None:
    sock = home / "run" / "daemon.sock" if home else None
    if sock is None or not sock.exists():
        report.add("daemon.reach", False, "no daemon socket found", str(sock or ""))
        return
    report.add("daemon.reach", True, "found the daemon's socket", str(sock))
    run = os.environ["STRIATUM_RUN"]
    _call(report, str(sock), "daemon.no_token", "run.cancel", {"run": run}, None, run)
    mine = os.environ["STRIATUM_LEASE"]
    for target in stolen:
        _call(report, str(sock), "daemon.own_lease_on_other_job", "job.complete",
              {"run": target.run, "job": target.job, "lease": mine}, None,
              f"{target.run}/{target.job}")
    principal = _read(home / "run" / "client-token") if home else None
    if principal:
        _call(report, str(sock), "daemon.principal_token", "run.status", {"run": run},
              principal.strip(), run)


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
    dsn, home, pgpass = discover(report)
    undo_the_sandbox(report, home)
    targets = other_lanes(report)
    conn = as_runtime(report, dsn)
    if conn is not None:
        read_lease_tokens(report, conn)
        rewrite_record(report, conn, "db")
        insert_forged_event(report, conn)
    daemon(report, home, targets)
    lane_socket(report, targets)
    # Before the other run's held job ends (below), while its worker is busy with it and
    # leaves the ready job to be claimed here.
    claim_and_let_expire(report, targets)
    attack_leases(report, targets, out)
    replay(report, earlier)
    rewrite_projection(report, conn, targets)
    owner = log_in_as_owner(report, dsn, home, pgpass)
    if owner is not None:
        _more_than_runtime(report, "owner.superuser", owner)
        edit_behind_the_triggers(report, owner, "owner")
    document = json.dumps({"attempts": report.attempts}, indent=1)
    (out / "hostile.json").write_text(document, encoding="utf-8")
    print(document)
    return True
