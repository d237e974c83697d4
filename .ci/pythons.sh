#!/usr/bin/env bash
# The supported Pythons besides the main one (3.11, which is .venv and runs the whole suite):
# for each of 3.10, 3.12 and 3.13, a venv of its own (.venv-3.X, git-ignored) from the pyenv
# build, running what differs between versions -- the cancellation regression tests (asyncio
# changed its timeouts in 3.11 and 3.12) -- plus the cheap core tests.
# A version that is not installed is named, and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

versions=(3.10 3.12 3.13)
tests=(
    tests/adapters/test_cancellation.py
    tests/test_parser.py tests/test_serializer.py tests/test_client.py tests/test_server.py
)
builds=${PYENV_ROOT:-$HOME/.pyenv}/versions
# The main run already spends the CI profile's examples on 3.11; here the point is what
# differs between versions, and the default profile keeps the three runs short.
export HYPOTHESIS_PROFILE=dev

missing=()
failed=()
for version in "${versions[@]}"; do
    # The newest patch release of that version that pyenv has built.
    python=$(ls -d "$builds/$version".* 2> /dev/null | sort -V | tail -n 1 || true)
    if [ -z "$python" ] || [ ! -x "$python/bin/python" ]; then
        echo "pythons: Python $version is MISSING (no $builds/$version.*/bin/python)" >&2
        missing+=("$version")
        continue
    fi
    venv=.venv-$version
    if [ ! -x "$venv/bin/python" ]; then
        "$python/bin/python" -m venv "$venv"
    fi
    stamp=$venv/.sse-core-installed
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
            || [ sse_core/_speedups.c -nt "$stamp" ]; then
        echo "pythons: installing sse_core into $venv ($(basename "$python")) ..." >&2
        if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check \
                -e '.[test,http,trio,asgi]' > "$venv/pip.log" 2>&1; then
            cat "$venv/pip.log" >&2
            failed+=("$version (install)")
            continue
        fi
        touch "$stamp"
    fi
    echo "pythons: $("$venv/bin/python" -c 'import sys; print("Python", sys.version.split()[0])')" >&2
    if ! "$venv/bin/python" -m pytest -q -p no:cacheprovider "${tests[@]}"; then
        failed+=("$version")
    fi
done

if [ ${#missing[@]} -gt 0 ] || [ ${#failed[@]} -gt 0 ]; then
    [ ${#missing[@]} -eq 0 ] || echo "pythons: MISSING: ${missing[*]}" >&2
    [ ${#failed[@]} -eq 0 ] || echo "pythons: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "pythons: ${versions[*]} passed" >&2
