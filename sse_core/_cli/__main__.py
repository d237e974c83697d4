"""``python -m sse_core._cli``: the ``sse-core`` command line (edge)."""

import sys

from . import main

raise SystemExit(main(sys.argv[1:]))
