#!/usr/bin/env bash
# The C accelerator built a third way: gcc with AddressSanitizer and UndefinedBehaviorSanitizer,
# running the tests that drive it (parser, serializer, events, speedups). Any sanitizer report
# fails the run: ASan stops at its first error, UBSan is compiled with -fno-sanitize-recover
# and runs with halt_on_error. (.ci/fuzz.sh covers the other half: coverage-guided atheris runs
# against a clang ASan/UBSan build, so this script only runs the tests.)
#
# Into its own venv (.venv-asan, git-ignored): a non-editable install rebuilt every time, so
# the sanitized .so lives only there; the tests run from a copy of tests/ so that the source
# tree (with its own, plain .so) is not on sys.path. About 30-60 s on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-asan
started=$(date +%s)

if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
py=$PWD/$venv/bin/python
"$py" -m pip install -q --disable-pip-version-check 'pytest>=8' 'pytest-timeout>=2.2' 'hypothesis>=6.100' \
    'attrs>=23.1' 2>&1 | { grep -v "is ignored" || true; }

. .ci/sanitized_build.sh
sanitized_build "$py" gcc "-O1 -g -fno-omit-frame-pointer -fno-sanitize-recover=all" \
    -fsanitize=address,undefined sanitize.sh __asan_ __ubsan_handle_

# The tests, copied next to nothing else: `import sse_core` is the sanitized install.
work=$venv/run
rm -rf "$work"
mkdir -p "$work"
cp -r tests "$work/tests"

# LD_PRELOAD: the sanitizer runtimes must come first in a python that was not built with
# them. detect_leaks=0: CPython "leaks" at exit. PYTHONMALLOC=malloc: every Python object
# through malloc, so ASan guards the buffers the C code writes (pymalloc's arenas hide small
# overflows; see .ci/fuzz.sh).
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONMALLOC=malloc
unset SSE_CORE_PURE_PYTHON
# The default hypothesis profile: the main run already spends the CI profile on these tests;
# here the point is the sanitizers, and the dev profile keeps the run about 30 s.
export HYPOTHESIS_PROFILE=dev
(
    cd "$work"
    "$py" -c "
import sse_core, sse_core._speedups as s
assert sse_core.ACCELERATED and s.__file__ == '$so', (sse_core.ACCELERATED, s.__file__)"
    # --capture=sys: a sanitizer report (written to fd 2) reaches the log even as it aborts.
    "$py" -m pytest -q -p no:cacheprovider --capture=sys tests/test_parser.py \
        tests/test_serializer.py tests/test_events.py tests/test_speedups.py
)
echo "sanitize.sh: passed in $(( $(date +%s) - started )) s"
