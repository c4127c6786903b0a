"""``python -m striatum``: the same as the ``striatum`` command."""

from striatum.cli.main import main

main()
