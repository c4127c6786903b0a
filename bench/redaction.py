"""Redaction's recall and false-positive rate (no database).

    python -m bench redaction [--per-kind N] [--seeds N] [--show]

- recall: the share of the generated secrets (tests/secret_samples.py, every kind,
  ``--per-kind`` each for each of ``--seeds`` seeds) that redaction replaced;
- false positives on look-alikes: the share of generated non-secrets (digests, ids,
  placeholders, code naming a password) that redaction changed;
- false positives on real text: the share of the lines of this project's own source
  and docs (which hold no secret) that redaction changed, with each one shown under
  ``--show`` so that a reader can judge them;
- throughput: MB/s of that text through every rule.

Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT))
    from striatum.corpus.redact import Redactor
    from striatum.corpus.rules import RULES
    from tests.secret_samples import KINDS, look_alikes, secrets

    parser = argparse.ArgumentParser(prog="python -m bench redaction")
    parser.add_argument("--per-kind", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--show", action="store_true", help="print each false positive")
    args = parser.parse_args(argv)

    redactor = Redactor()
    found = total = 0
    missed: dict[str, int] = {}
    for seed in range(args.seeds):
        for kind, text, secret in secrets(seed, args.per_kind):
            total += 1
            redacted, rules = redactor.text(text)
            if rules and secret not in redacted:
                found += 1
            else:
                missed[kind] = missed.get(kind, 0) + 1

    alikes = [t for seed in range(args.seeds) for t in look_alikes(seed, args.per_kind)]
    alike_hits = [t for t in alikes if redactor.text(t)[1]]

    files = sorted([*ROOT.glob("striatum/**/*.py"), *ROOT.glob("docs/*.md"),
                    *ROOT.glob("examples/**/*.md"), *ROOT.glob("examples/**/*.json")])
    lines = [line for path in files for line in path.read_text(encoding="utf-8").splitlines()
             if line.strip() and "corpus/rules.py" not in str(path)]
    text_bytes = sum(len(line.encode()) + 1 for line in lines)
    started = time.perf_counter()
    line_hits = []
    for line in lines:
        redacted, rules = Redactor(str(ROOT), paths=False).text(line)
        if rules:
            line_hits.append((rules, line))
    seconds = time.perf_counter() - started

    print(f"rules: {len(RULES)}; fixture kinds: {len(KINDS)}")
    print(f"recall: {found}/{total} = {100 * found / total:.2f} % "
          f"({args.per_kind} per kind x {args.seeds} seeds)"
          + (f"; missed: {missed}" if missed else ""))
    print(f"false positives on look-alikes: {len(alike_hits)}/{len(alikes)} = "
          f"{100 * len(alike_hits) / len(alikes):.2f} %")
    print(f"false positives on the project's own source and docs: {len(line_hits)}/"
          f"{len(lines)} lines = {100 * len(line_hits) / len(lines):.3f} %")
    print(f"throughput: {text_bytes / seconds / 1e6:.2f} MB/s ({text_bytes / 1e6:.2f} MB of "
          f"lines in {seconds:.2f} s, every rule)")
    if args.show:
        for text in sorted(set(alike_hits)):
            print(f"  look-alike: {text[:120]}")
        for rules, line in line_hits:
            print(f"  {','.join(rules)}: {line.strip()[:120]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
