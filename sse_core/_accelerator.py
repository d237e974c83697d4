"""Whether the optional C accelerator is loaded, decided once at import (floor 1).

``sse_core._speedups`` is built from ``_speedups.c`` when a C compiler is at hand. The
environment variable ``SSE_CORE_PURE_PYTHON`` set to ``1`` (any value but empty or ``0``)
when sse_core is first imported makes it run in pure Python even so, for debugging, for
comparing the two paths and for fuzzing the Python code. The environment is read here, once;
this is the only core module that imports :mod:`os`, and only for that.
"""

from __future__ import annotations

import os

__all__ = ["ACCELERATED", "PURE_PYTHON_ENV", "speedups"]

#: The environment variable that forces pure Python (read once, when sse_core is imported).
PURE_PYTHON_ENV = "SSE_CORE_PURE_PYTHON"

# ``speedups`` is the C accelerator module, or None: pure Python.
if os.environ.get(PURE_PYTHON_ENV, "") in ("", "0"):
    try:
        from . import _speedups as speedups
    except ImportError:  # installed without a C compiler: pure Python
        speedups = None  # type: ignore[assignment]
else:  # pure Python asked for
    speedups = None  # type: ignore[assignment]

#: Whether the C accelerator is in use (False: pure Python, same behaviour, slower parsing and
#: serializing). Public as ``sse_core.ACCELERATED``.
ACCELERATED: bool = speedups is not None
