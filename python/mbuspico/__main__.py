"""``python -m mbuspico``: the command line."""

from .cli import main

raise SystemExit(main())
