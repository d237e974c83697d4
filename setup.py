"""Build hook for the optional C accelerator; all metadata lives in pyproject.toml.

``sse_core._speedups`` speeds up the parser and the serializer. It is optional: without a C
compiler the build skips it and sse_core runs in pure Python, with the same behaviour.

``SSE_CORE_BUILD_PURE_PYTHON=1`` (any value but empty or ``0``) leaves the extension out on
purpose: the build then gives the pure-Python wheel, ``py3-none-any``, published next to the
binary wheels for platforms that have none (docs/install.rst; .ci/packaging.sh builds both).
"""

import os

from setuptools import Extension, setup

is_pure = os.environ.get("SSE_CORE_BUILD_PURE_PYTHON", "") not in ("", "0")
speedups = Extension("sse_core._speedups", ["sse_core/_speedups.c"], optional=True)
setup(ext_modules=[] if is_pure else [speedups])
