"""``python -m striatum``: the same as the ``striatum`` command."""

from striatum.cli.entry import main

main()
