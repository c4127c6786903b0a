"""Whether a change to the compiler kept its answers: the same bytes before and after.

    python bench/compile_same.py [--base main] [--sizes 100,1000,10000] [--shapes ...]

For every example (examples/*/workflow.json and .stm) and every shape of
``compile_scaling.py`` at each size, this checkout and the base revision (taken
with ``git archive`` into a temporary folder, run in its own Python) each print
the sha256 of three answers: the compiled document's digest, the lint findings
(every field, located) and the plan document. The two lists must be equal; the
script prints what differs and exits 1 when anything does. The workflows are
written once, by this checkout's generators, and read by both sides.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def answers(paths: list[str]) -> dict[str, dict[str, str]]:
    """path -> the sha256 of each answer, computed by the ``striatum`` on ``sys.path``."""
    from striatum.compiler.compile import check, compile_bytes
    from striatum.compiler.lint import lint
    from striatum.compiler.plan import plan_document

    def sha(value: Any) -> str:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    out: dict[str, dict[str, str]] = {}
    for path in paths:
        comp = check(path)
        if not comp.ok or comp.graph is None:
            out[path] = {"check": sha([d.to_json() for d in comp.diagnostics])}
            continue
        _, digest = compile_bytes(comp)
        comp.add(lint(comp))
        out[path] = {"digest": digest,
                     "lint": sha([d.to_json() for d in comp.diagnostics]),
                     "plan": sha(plan_document(comp.graph))}
    return out


def inputs(directory: Path, sizes: list[int], shapes: list[str] | None = None) -> list[str]:
    sys.path.insert(0, str(ROOT / "bench"))
    import compile_scaling as cs

    shapes = list(cs.SHAPES) if shapes is None else shapes
    found = sorted(str(p) for p in ROOT.glob("examples/*/workflow.*"))
    found += [str(cs.write_workflow(directory, shape, n)) for shape in shapes for n in sizes]
    for n in sizes if "writes" in shapes else ():
        # Parallel writers that overlap (STR305 findings, past its 50 listed), and the
        # same jobs listed out of dependency order.
        jobs = cs.writes(n, shared=3)
        found.append(_write(directory / f"overlap-{n}", jobs))
        random.Random(n).shuffle(jobs)
        found.append(_write(directory / f"shuffled-{n}", jobs))
    return found


def _write(folder: Path, jobs: list[dict[str, Any]]) -> str:
    import compile_scaling as cs

    folder.mkdir(parents=True)
    path = folder / "workflow.json"
    path.write_text(json.dumps({"name": folder.name, "lanes": cs._lanes(), "jobs": jobs}))
    return str(path)


def _run(tree: Path, paths: list[str]) -> dict[str, dict[str, str]]:
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]);"
            "import compile_same; print(json.dumps(compile_same.answers(sys.argv[3:])))")
    done = subprocess.run([sys.executable, "-c", code, str(tree), str(ROOT / "bench"), *paths],
                          check=True, capture_output=True, text=True, cwd=tree)
    found: dict[str, dict[str, str]] = json.loads(done.stdout)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="main", help="the git revision to compare with")
    parser.add_argument("--sizes", default="100,1000,10000",
                        help="comma-separated job counts of the generated shapes")
    parser.add_argument("--shapes", default="chain,fanout,nested,writes",
                        help="the generated shapes (writes adds two variants of its own)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="striatum-same-") as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base, "striatum",
                                  "schemas", "grammar"], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
        paths = inputs(Path(tmp) / "workflows", sizes, args.shapes.split(","))
        before, after = _run(base, paths), _run(ROOT, paths)
    differ = 0
    for path in paths:
        name = Path(path).parent.name + "/" + Path(path).name
        same = before[path] == after[path]
        differ += not same
        print(f"{'same' if same else 'DIFFERS':<8} {name}"
              + ("" if same else f"  before {before[path]}  after {after[path]}"))
    print(f"{len(paths) - differ} of {len(paths)} inputs give the same answers as {args.base}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
