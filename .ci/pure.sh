#!/usr/bin/env bash
# The core test suite in pure Python: SSE_CORE_PURE_PYTHON=1 keeps the C accelerator out, so
# the specification the C code is compared with is itself tested as users without a compiler
# run it. The core tests are tests/*.py and tests/state (the adapters, peers and network
# namespaces exercise nothing the accelerator changes). Uses .venv (./run.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
export SSE_CORE_PURE_PYTHON=1
.venv/bin/python -c "
import sys, sse_core
assert not sse_core.ACCELERATED and 'sse_core._speedups' not in sys.modules, 'not pure Python'"
.venv/bin/python -m pytest -n 2 -q -p no:cacheprovider tests/*.py tests/state
echo "pure.sh: passed in $(( $(date +%s) - started )) s"
