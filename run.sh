#!/usr/bin/env bash
# The project's entry point on a fresh machine: makes .venv on first use, then
#   ./run.sh demo    a demo of the library doing its work
#   ./run.sh test    the test suite (the command CI runs)
#   ./run.sh check   mypy --strict, ruff, the Sphinx docs (warnings are errors), a short fuzz run
#                    (FUZZ_SECONDS each harness, default 60; 0 skips it)
#   ./run.sh bench   the protocol benchmark against the Python peers
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
# Reinstall (and rebuild the optional C accelerator) only when the build inputs changed.
stamp=.venv/.sse-core-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
        || [ sse_core/_speedups.c -nt "$stamp" ]; then
    echo "installing sse_core and its tools into .venv (once) ..." >&2
    if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,bench]' \
            > .venv/pip.log 2>&1; then
        cat .venv/pip.log >&2
        exit 1
    fi
    touch "$stamp"
fi

case "${1:-}" in
    demo)
        shift
        exec .venv/bin/python -m sse_core demo "$@"
        ;;
    test)
        shift
        exec .venv/bin/python -m pytest -n 2 -q "$@"
        ;;
    check)
        .venv/bin/python -m mypy --strict sse_core
        .venv/bin/python -m ruff check .
        .venv/bin/python -m sphinx -q -W --keep-going -b html docs docs/_build/html
        # A short plain fuzz run (Python edges only; .ci/fuzz.sh fuzzes the C code with clang
        # and the sanitizers, and the pure-Python path). FUZZ_SECONDS=0 skips it.
        if [ "${FUZZ_SECONDS:-60}" != 0 ]; then
            if ! .venv/bin/python -c "import atheris" 2>/dev/null; then
                .venv/bin/python -m pip install -q --disable-pip-version-check 'atheris>=2.3' \
                    2>&1 | grep -v "is ignored" || true
            fi
            bash fuzz/run.sh "${FUZZ_SECONDS:-60}"
        fi
        ;;
    bench)
        shift
        exec .venv/bin/python -m benchmarks.bench_protocol "$@"
        ;;
    *)
        echo "usage: ./run.sh demo|test|check|bench" >&2
        exit 2
        ;;
esac
