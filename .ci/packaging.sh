#!/usr/bin/env bash
# What a user installs and a packager ships, built and checked the way they will meet it:
#   1. the sdist; from it (unpacked afresh each time) the binary wheel, which `auditwheel
#      repair --strip` turns into a manylinux wheel with a stripped .so, and the pure-Python
#      wheel (SSE_CORE_BUILD_PURE_PYTHON=1 gives py3-none-any);
#   2. their contents: LICENSE in all three, no C source in a wheel, the .so stripped (no
#      .symtab, no .debug_* section), the tags, everything the tests read in the sdist, and
#      `twine check --strict` on the metadata;
#   3. each wheel alone in a clean venv: it imports, sse_core.ACCELERATED is True for the
#      manylinux wheel and False for the pure one, and `python -m sse_core` says so;
#   4. each extra alone (the manylinux wheel plus that one extra) in a clean venv: the modules
#      it promises import;
#   5. the `test` extra alone, from the unpacked sdist with its sse_core/ source removed (so the
#      installed wheel is what runs): the whole suite collects without an error, and a quick
#      subset runs, tests needing absent peers skipping with their reason.
# Everything lands in build/packaging/ (git-ignored): the artifacts in build/packaging/dist.
# The tools (build, auditwheel, twine) live in .venv-packaging. The clean venvs have no pip of
# their own (the tools' pip installs into them with --python) and install from a local
# wheelhouse filled once, so each takes seconds. Needs patchelf (a Debian package;
# .ci/peers.sh installs it). About 80 s on 2 cores with a warm pip cache.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
tools=.venv-packaging
out=$PWD/build/packaging
started=$SECONDS
quiet=(-q --disable-pip-version-check)

say() { echo "packaging: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }
# pip's harmless "Location ... is ignored" lines (the machine's pip.conf) are dropped.
pip_tools() { "$tools/bin/pip" "${quiet[@]}" "$@" 2>&1 | { grep -v "is ignored" || true; }; }
# A tool's output is shown only when it fails.
logged() {
    local log=$1
    shift
    if ! "$@" > "$log" 2>&1; then
        cat "$log" >&2
        fail "$*"
    fi
}

command -v patchelf > /dev/null \
    || fail "patchelf is missing (apt-get install -y patchelf; .ci/peers.sh installs it)"
# auditwheel 6.8 asks for patchelf >= 0.14.5; Debian 12 has 0.14.3, which 6.1-6.7 take.
tool_specs=('build>=1.2' 'auditwheel>=6.1,<6.8' 'twine>=5')
if [ "$(cat "$tools/.specs" 2> /dev/null)" != "${tool_specs[*]}" ]; then
    [ -x "$tools/bin/python" ] || "$python" -m venv "$tools"
    pip_tools install "${tool_specs[@]}"
    echo "${tool_specs[*]}" > "$tools/.specs"
fi
rm -rf "$out"
mkdir -p "$out/dist" "$out/raw" "$out/deps" "$out/venvs"

# --- 1. build: the sdist, and both wheels from it ----------------------------------------------
logged "$out/build-sdist.log" "$tools/bin/python" -m build --sdist -o "$out/dist" .
sdist=$(ls "$out"/dist/sse_core-*.tar.gz)
unpack() {  # a fresh copy of the unpacked sdist in $out/$1; prints its path
    mkdir -p "$out/$1"
    tar -xzf "$sdist" -C "$out/$1"
    ls -d "$out/$1"/sse_core-*
}
logged "$out/build-binary.log" env -u SSE_CORE_BUILD_PURE_PYTHON \
    "$tools/bin/python" -m build --wheel -o "$out/raw" "$(unpack from-sdist-binary)"
logged "$out/build-pure.log" env SSE_CORE_BUILD_PURE_PYTHON=1 \
    "$tools/bin/python" -m build --wheel -o "$out/dist" "$(unpack from-sdist-pure)"
logged "$out/auditwheel.log" "$tools/bin/auditwheel" repair --strip -w "$out/dist" \
    "$out"/raw/sse_core-*.whl
binary=$(ls "$out"/dist/sse_core-*manylinux*.whl 2> /dev/null) \
    || fail "auditwheel gave no manylinux wheel: $(ls "$out/dist")"
pure=$(ls "$out"/dist/sse_core-*-py3-none-any.whl 2> /dev/null) \
    || fail "no py3-none-any wheel: $(ls "$out/dist")"
say "built $(cd "$out/dist" && ls | tr '\n' ' ')"

# --- 2. contents ------------------------------------------------------------------------------
logged "$out/twine.log" "$tools/bin/twine" check --strict "$sdist" "$binary" "$pure"
"$tools/bin/python" - "$sdist" "$binary" "$pure" "$out/so" << 'EOF' || fail "contents"
"""Check what the sdist and the two wheels hold; extract the wheel's .so to argv[4]."""
import sys
import tarfile
import zipfile
from pathlib import Path

sdist, binary, pure, so_dir = sys.argv[1:]
problems = []
for wheel, is_binary in ((binary, True), (pure, False)):
    names = zipfile.ZipFile(wheel).namelist()
    name = Path(wheel).name
    sos = [n for n in names if n.endswith(".so")]
    if any(n.endswith((".c", ".h")) for n in names):
        problems.append(f"{name}: carries C source")
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        problems.append(f"{name}: no LICENSE")
    if "sse_core/py.typed" not in names:
        problems.append(f"{name}: no py.typed")
    if is_binary and len(sos) != 1:
        problems.append(f"{name}: {len(sos)} shared objects, expected the accelerator alone")
    if not is_binary and sos:
        problems.append(f"{name}: a pure wheel with {sos}")
    if is_binary and sos:
        Path(so_dir).mkdir()
        Path(so_dir, "speedups.so").write_bytes(zipfile.ZipFile(wheel).read(sos[0]))
names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
for needed in ("LICENSE", "README.md", "sse_core/_speedups.c", "tests/conftest.py",
               "tests/peers/node/package-lock.json", "docs/index.rst", "docs/conf.py",
               "fuzz/corpus/parser/simple", "benchmarks/__init__.py"):
    if needed not in names:
        problems.append(f"sdist: no {needed}")
for name in names:
    if name.endswith((".so", ".pyc")) or "node_modules" in name or "_build" in name:
        problems.append(f"sdist: carries {name}")
for problem in problems:
    print(f"packaging: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
so=$out/so/speedups.so
[[ $(file "$so") == *", stripped"* ]] || fail "the .so is not stripped: $(file "$so")"
if readelf -S -W "$so" | grep -E '\.symtab|\.debug_'; then
    fail "the .so keeps a symbol table or debug sections (above)"
fi
say "contents: LICENSE in all, no C source in the wheels, .so stripped ($(stat -c %s "$so") B)"

# --- 3 and 4. clean venvs ---------------------------------------------------------------------
# One wheelhouse with every dependency of every extra, so each venv installs offline in seconds.
logged "$out/deps.log" "$tools/bin/pip" "${quiet[@]}" wheel -w "$out/deps" \
    "$binary[http,asgi,trio,test,dev,peers,bench,fuzz]"
rm -f "$out"/deps/sse_core-*.whl
venv_with() {  # venv_with NAME REQUIREMENT: a new venv holding just that; prints its path
    local venv=$out/venvs/$1
    "$python" -m venv --without-pip "$venv"
    logged "$out/venvs/$1.log" "$tools/bin/pip" "${quiet[@]}" --python "$venv/bin/python" \
        install --no-index --find-links "$out/deps" "$2"
    echo "$venv"
}
in_venv() {  # in_venv VENV ARGS...: its python, away from the source tree and CI's switches
    local venv=$1
    shift
    (cd "$out/venvs" && env -u SSE_CORE_PURE_PYTHON -u SSE_CORE_REQUIRE_PEERS \
        "$venv/bin/python" "$@")
}
imports() {  # imports VENV MODULE...: each module imports, sse_core from the venv
    in_venv "$1" -c '
import importlib, sys
from pathlib import Path
for module in sys.argv[1:]:
    importlib.import_module(module)
import sse_core
assert Path(sse_core.__file__).is_relative_to(Path(sys.prefix)), sse_core.__file__
' "${@:2}" || fail "$(basename "$1"): cannot import all of: ${*:2}"
}

venv=$(venv_with binary "$binary")
imports "$venv" sse_core sse_core.testing
in_venv "$venv" -c 'import sse_core; assert sse_core.ACCELERATED is True' \
    || fail "the manylinux wheel runs without its accelerator"
report=$(in_venv "$venv" -m sse_core)
grep -q "C accelerator: in use" <<< "$report" || fail "python -m sse_core (binary): $report"
# Without the http extra the demo (its live part runs the asyncio adapter) names the extra.
if report=$(in_venv "$venv" -m sse_core demo 2>&1) \
        || ! grep -q "needs the http extra" <<< "$report"; then
    fail "python -m sse_core demo without h11: $report"
fi
venv=$(venv_with pure "$pure")
imports "$venv" sse_core sse_core.testing
in_venv "$venv" -c 'import sse_core; assert sse_core.ACCELERATED is False' \
    || fail "the pure wheel claims an accelerator"
report=$(in_venv "$venv" -m sse_core)
grep -q "C accelerator: not installed" <<< "$report" \
    || fail "python -m sse_core (pure) does not say the accelerator is missing: $report"
say "wheels: manylinux imports with ACCELERATED=True, py3-none-any with ACCELERATED=False"

# Each extra and what it promises (pyproject.toml says the same in its comments).
declare -A promises=(
    [http]="sse_core.adapters sse_core.adapters.asyncio sse_core.adapters.sync
            sse_core.adapters.wsgi"
    [asgi]="sse_core.adapters.asgi"
    [trio]="sse_core.adapters.trio"
    [httpx]="sse_core.adapters.httpx"
    [aiohttp]="sse_core.adapters.aiohttp"
    [redis]="sse_core.adapters.redis"
    [prometheus]="sse_core.adapters.prometheus"
    [otel]="sse_core.adapters.otel"
    [test]="pytest hypothesis xdist sse_core.testing.strategies sse_core.adapters.asyncio
            sse_core.adapters.sync sse_core.adapters.trio sse_core.adapters.asgi"
    [peers]="httpx httpx_sse sseclient sse_starlette starlette uvicorn aiohttp aiohttp_sse
             trustme ld_eventsource fastapi hypercorn h2 gunicorn flask django redis
             prometheus_client opentelemetry.metrics opentelemetry.sdk.metrics"
    [bench]="httpx httpx_sse sseclient ld_eventsource sse_starlette"
    [fuzz]="atheris"
    [dev]="pytest hypothesis mypy ruff sphinx sse_core.adapters.asgi sse_core.adapters.trio
           httpx trustme uvicorn"
)
for extra in http asgi trio httpx aiohttp redis prometheus otel test peers bench fuzz dev; do
    venv=$(venv_with "$extra" "$binary[$extra]")
    # shellcheck disable=SC2086  # the module list splits on purpose
    imports "$venv" ${promises[$extra]}
done
say "extras: $(echo "${!promises[@]}" | tr ' ' '\n' | sort | tr '\n' ' ')each import what they promise"

# --- 5. the suite from the unpacked sdist, with the test extra alone ---------------------------
tree=$(unpack from-sdist-tests)
rm -r "$tree/sse_core"  # the installed wheel runs, not the source next to the tests
venv=$out/venvs/test
suite() {
    (cd "$tree" && env -u SSE_CORE_PURE_PYTHON -u SSE_CORE_REQUIRE_PEERS HYPOTHESIS_PROFILE=dev \
        "$venv/bin/python" -m pytest -p no:cacheprovider "$@")
}
suite --collect-only -q > "$out/collect.log" 2>&1 || { cat "$out/collect.log" >&2; fail "collect"; }
tail -n 1 "$out/collect.log" | grep -qi "error" && { cat "$out/collect.log" >&2; fail "collect"; }
say "test extra: $(tail -n 1 "$out/collect.log")"
logged "$out/subset.log" suite -q -rs -x tests/test_parser.py tests/test_architecture.py \
    tests/test_docs_examples.py tests/test_readme.py tests/test_fuzz_seeds.py \
    tests/test_accelerator.py tests/adapters/test_asgi.py
say "test extra, from the sdist: $(tail -n 1 "$out/subset.log")"
grep "^SKIPPED" "$out/subset.log" | sed 's/^/    /' >&2 || true

say "passed in $((SECONDS - started)) s"
