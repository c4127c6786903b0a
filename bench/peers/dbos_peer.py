"""DBOS Transact, measured for striatum's side-by-side figures (run in bench/.peers-venv).

    python dbos_peer.py --url postgresql://USER@HOST:PORT/DB --workflows 1000 --repeat 3 \
        [--work noop,true]

It never imports striatum: the harness runs it as a subprocess of the peers'
own venv against a database of its own on the same server, and reads the one
JSON document it prints on stdout.

A workflow of one step. ``--work noop,true``: the step returns its argument
(noop), or first runs the process ``true`` with ``subprocess.run`` (the same
work as a striatum job whose lane is ``true``). DBOS is launched once, untimed;
each timed pass starts N workflows of each kind and waits for every result:

* ``start_workflow``: ``DBOS.start_workflow`` for each (DBOS runs them on its
  own thread pool, as many at once as it likes) -- DBOS's fastest path;
* ``queue4``: ``enqueue`` on a queue with ``worker_concurrency=4`` polled every
  10 ms -- the closest analogue of "4 workers".
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from importlib.metadata import version


def main(args: argparse.Namespace) -> dict[str, object]:
    from dbos import DBOS

    logging.disable(logging.WARNING)
    DBOS(config={"name": "striatum-bench", "system_database_url": args.url,
                 "log_level": "ERROR"})

    @DBOS.step()
    def noop_step(i: int) -> int:
        return i

    @DBOS.step()
    def true_step(i: int) -> int:
        subprocess.run(["true"], check=True)
        return i

    @DBOS.workflow()
    def one_step(i: int) -> int:
        return noop_step(i)

    @DBOS.workflow()
    def one_true_step(i: int) -> int:
        return true_step(i)

    workflows = {"noop": one_step, "true": one_true_step}

    DBOS.launch()
    queue = DBOS.register_queue("striatum_bench4", worker_concurrency=4,
                                polling_interval_sec=0.01)
    works = [work for work in args.work.split(",") if work]
    results: dict[str, list[float]] = {f"{mode}:{work}": [] for work in works
                                       for mode in ("start_workflow", "queue4")}
    n = args.workflows
    for _ in range(args.repeat):
        for mode in results:  # interleaved: drifting load hits every kind alike
            how, work = mode.split(":")
            start = time.perf_counter()
            if how == "start_workflow":
                handles = [DBOS.start_workflow(workflows[work], i) for i in range(n)]
            else:
                handles = [queue.enqueue(workflows[work], i) for i in range(n)]
            total = sum(h.get_result() for h in handles)
            results[mode].append(time.perf_counter() - start)
            if total != n * (n - 1) // 2:
                raise SystemExit(f"DBOS returned wrong results in {mode}")
    DBOS.destroy()
    return {"peer": "dbos", "version": version("dbos"), "workflows": n,
            "seconds": results,
            "workflows_per_s": {m: [n / s for s in v] for m, v in results.items()}}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of an empty database")
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", default="noop,true",
                        help="what each step does: noop, true (a subprocess), or both")
    json.dump(main(parser.parse_args()), sys.stdout)
    print()
