"""``python -m bench``: see bench/harness.py and bench/README.md."""

import sys

if sys.argv[1:2] == ["redaction"]:  # no database, none of the harness's table
    from .redaction import main as redaction

    sys.exit(redaction(sys.argv[2:]))
if sys.argv[1:2] == ["report"]:  # a saved result as Markdown: no database, no timing
    from .report import main as report

    sys.exit(report(sys.argv[2:]))
if sys.argv[1:2] == ["corpus"]:
    from .corpus_export import main as corpus

    sys.exit(corpus(sys.argv[2:]))

from .harness import main

sys.exit(main())
