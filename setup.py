"""Build hook for the optional C accelerator; all metadata lives in pyproject.toml.

``sse_core._speedups`` speeds up the parser and the serializer. It is optional: without a C
compiler the build skips it and sse_core runs in pure Python, with the same behaviour.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("sse_core._speedups", ["sse_core/_speedups.c"], optional=True)])
