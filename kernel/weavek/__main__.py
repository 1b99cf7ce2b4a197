"""``python -m weavek``: the same as the ``weavek`` command."""

from weavek.cli import main

main()
