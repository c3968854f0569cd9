"""``python -m vaelib``: the same as the ``vaelib`` console script (see :mod:`vaelib.cli`)."""

import sys

from .cli import main

sys.exit(main())
