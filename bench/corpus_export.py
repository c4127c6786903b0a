"""``corpus export --all`` and ``corpus verify`` over a generated record: time and peak RSS.

    python -m bench corpus [--dsn DSN] [--events N ...]

For each size, a fresh database gets ``N`` events of completed runs (the record
``python -m bench doctor`` generates: runs of 100 jobs, canonical payloads, the
matching projections, pinned to a workflow whose text hashes to its digest; its
artifacts are not on disk, so the bundle lists them as
missing and carries no file), then both commands run as subprocesses of this
checkout, each's peak RSS measured on its own process. Memory that stays flat
from one size to the next is what the streaming export promises. Prints the
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .common import DEFAULT_DSN, Context, fresh_database, run_with_rss, striatum_argv, striatum_env


def pin_workflow(dsn: str) -> None:
    """The generated runs name a placeholder digest; pin them to a workflow whose text
    hashes to its digest, as the runtime's always does (verify checks it)."""
    import hashlib

    import psycopg

    digest = hashlib.sha256(b"{}").hexdigest()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO striatum.workflows (digest, name, compiled) "
                     "VALUES (%s, 'bench-doctor', '{}')", [digest])
        conn.execute("UPDATE striatum.runs SET workflow_digest = %s", [digest])


def main(argv: list[str] | None = None) -> int:
    from .figures import generate_record

    parser = argparse.ArgumentParser(prog="python -m bench corpus")
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--events", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args(argv)
    print(f"{'events':>9} {'export s':>9} {'export MiB':>11} {'verify s':>9} "
          f"{'verify MiB':>11} {'bundle MB':>10}")
    with tempfile.TemporaryDirectory(prefix="striatum-bench-corpus-") as tmp:
        ctx = Context(dsn=args.dsn, repeat=1, quick=False, tmp=Path(tmp))
        for size in args.events:
            with fresh_database(ctx, f"_corpus{size}") as dsn:
                _, _, events, _ = generate_record(dsn, size)
                pin_workflow(dsn)
                out = ctx.tmp / f"bundle-{size}"
                env = striatum_env(dsn, ctx)
                exported = run_with_rss([*striatum_argv(), "corpus", "export", "--all",
                                         "-o", str(out)], env=env,
                                        stdout_path=ctx.tmp / "export.out")
                verified = run_with_rss([*striatum_argv(), "corpus", "verify", str(out)],
                                        env=env, stdout_path=ctx.tmp / "verify.out")
                for name, (_, status, _) in (("export", exported), ("verify", verified)):
                    if status != 0:
                        text = (ctx.tmp / f"{name}.out").read_text(errors="replace")
                        raise SystemExit(f"corpus {name} exited {status}: {text[-1500:]}")
                size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
                print(f"{events:>9,} {exported[0]:>9.1f} {exported[2] / 1024:>11.0f} "
                      f"{verified[0]:>9.1f} {verified[2] / 1024:>11.0f} {size_mb:>10.1f}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
