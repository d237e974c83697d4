#!/usr/bin/env bash
# Coverage-guided fuzzing of both implementations, for a bounded time (idempotent; root for apt):
#   1. the C accelerator built with clang -fsanitize=fuzzer-no-link,address,undefined into its
#      own venv (.venv-fuzz, git-ignored), run with atheris' ASan+libFuzzer runtime preloaded,
#      so libFuzzer sees the C code's edges and ASan/UBSan stop on any memory error or UB;
#   2. pure Python (SSE_CORE_PURE_PYTHON=1), the Python code instrumented by atheris.
# (.ci/sanitize.sh builds the accelerator with gcc ASan/UBSan too and runs its tests; the
# fuzzing is done here only.)
# Both harnesses (fuzz/fuzz_parser.py, fuzz/fuzz_roundtrip.py) run FUZZ_SECONDS each (default
# 75) in each configuration: about 6 minutes on a 2-core machine, the build included.
# Exits non-zero when any run crashes; reproducers land in fuzz/corpus-work/<c|pure>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-75}
venv=.venv-fuzz

# clang and the compiler-rt that matches it (libclang-rt-dev follows Debian's default clang:
# clang 14 and libclang-rt-14-dev on Debian 12); linking the sanitizers needs the latter.
if ! command -v clang > /dev/null \
        || [ ! -e "$(clang -print-file-name="libclang_rt.asan_static-$(uname -m).a")" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends clang libclang-rt-dev
fi
clang --version | head -n 1

if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
py=$venv/bin/python
"$py" -m pip install -q --disable-pip-version-check 'atheris>=2.3' 'attrs>=23.1' 2>&1 \
    | { grep -v "is ignored" || true; }
# A non-editable install, rebuilt every time: the instrumented .so lives only in this venv
# (the harnesses prefer the installed sse_core over the source tree). build/ is cleared before
# and after so neither this build nor a later gcc one reuses the other's objects.
. .ci/sanitized_build.sh
sanitized_build "$py" clang "-O1 -g -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
    -fsanitize=fuzzer-no-link,address,undefined fuzz.sh __asan_ __ubsan_handle_ __sanitizer_cov_
# Atheris' ASan runtime with libFuzzer linked in: with clang's plain libclang_rt.asan
# preloaded instead, the coverage callbacks land in ASan's weak stubs and libFuzzer sees no
# edges at all (atheris: native_extension_fuzzing.md, "Option A").
preload=$site/asan_with_fuzzer.so
[ -e "$preload" ] || { echo "fuzz.sh: $preload missing (atheris wheel)" >&2; exit 1; }

# detect_leaks=0: CPython "leaks" at exit. A 64 MiB quarantine (default 256) still catches
# use-after-free of recent frees but keeps RSS flat (the default grew it past 900 MiB in 20 s).
export ASAN_OPTIONS=detect_leaks=0:quarantine_size_mb=64
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
LD_PRELOAD=$preload "$py" -I -c "
import sse_core, sse_core._speedups as s
assert sse_core.ACCELERATED and s.__file__ == '$so', (sse_core.ACCELERATED, s.__file__)"
# PYTHONMALLOC=malloc: every Python object through malloc, so ASan guards the buffers the C
# code writes (pymalloc's arenas hide small overflows: a planted 8-byte overrun of the
# decoder's buffer went unseen for 60 s with pymalloc and was caught in 4 s without it).
PYTHONMALLOC=malloc PYTHON=$py FUZZ_LABEL=c FUZZ_PRELOAD=$preload FUZZ_RSS_MB=2048 \
    sh fuzz/run.sh "$seconds" || status=1

SSE_CORE_PURE_PYTHON=1 "$py" -I -c "
import sys, sse_core
assert not sse_core.ACCELERATED and 'sse_core._speedups' not in sys.modules"
SSE_CORE_PURE_PYTHON=1 PYTHON=$py FUZZ_LABEL=pure sh fuzz/run.sh "$seconds" || status=1

if [ "$status" -ne 0 ]; then
    echo "fuzz.sh: a fuzzer found a crash (see above)" >&2
fi
exit $status
