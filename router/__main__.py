"""``python -m router``: the same CLI as the ``router`` console script."""

from router.cli import main

main()
