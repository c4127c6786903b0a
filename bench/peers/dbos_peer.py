"""DBOS Transact, measured for striatum's side-by-side figures (run in bench/.peers-venv).

    python dbos_peer.py --url postgresql://USER@HOST:PORT/DB --workflows 1000 --repeat 3

It never imports striatum: the harness runs it as a subprocess of the peers'
own venv against a database of its own on the same server, and reads the one
JSON document it prints on stdout.

A workflow of one step (the step returns its argument). DBOS is launched once,
untimed; each timed pass starts N workflows and waits for every result:

* ``start_workflow``: ``DBOS.start_workflow`` for each (DBOS runs them on its
  own thread pool, as many at once as it likes) -- DBOS's fastest path;
* ``queue4``: ``enqueue`` on a queue with ``worker_concurrency=4`` polled every
  10 ms -- the closest analogue of "4 workers".
"""

from __future__ import annotations

import argparse
import json
import logging
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

    @DBOS.workflow()
    def one_step(i: int) -> int:
        return noop_step(i)

    DBOS.launch()
    queue = DBOS.register_queue("striatum_bench4", worker_concurrency=4,
                                polling_interval_sec=0.01)
    results: dict[str, list[float]] = {"start_workflow": [], "queue4": []}
    n = args.workflows
    for _ in range(args.repeat):
        for mode in results:
            start = time.perf_counter()
            if mode == "start_workflow":
                handles = [DBOS.start_workflow(one_step, i) for i in range(n)]
            else:
                handles = [queue.enqueue(one_step, i) for i in range(n)]
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
    json.dump(main(parser.parse_args()), sys.stdout)
    print()
