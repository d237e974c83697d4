# Sourced by .ci/fuzz.sh and .ci/sanitize.sh: build the C accelerator with sanitizers into a
# venv of its own and check the build really has them.
#
#   sanitized_build PYTHON CC CFLAGS SANITIZE_FLAGS WHO SYMBOL...
#
# A non-editable install of this checkout, rebuilt every time (build/ is cleared before and
# after so that neither compiler reuses the other's objects); the extension is optional in
# setup.py, so a failed compile still installs, and this fails instead. Each SYMBOL prefix
# (e.g. __asan_) must be imported by the .so. Sets $so (the built .so) and $site.
sanitized_build() {
    local py=$1 cc=$2 cflags=$3 sanitize=$4 who=$5
    shift 5
    local log
    log="$(dirname "$(dirname "$py")")/build.log"
    rm -rf build
    CC=$cc CFLAGS="$cflags $sanitize" LDFLAGS="$sanitize" \
        "$py" -m pip install -v --disable-pip-version-check --force-reinstall --no-deps . \
        > "$log" 2>&1 || { cat "$log" >&2; return 1; }
    rm -rf build
    site=$("$py" -c "import sysconfig; print(sysconfig.get_path('purelib'))")
    so=$(ls "$site"/sse_core/_speedups*.so 2> /dev/null || true)
    if [ -z "$so" ]; then
        grep -E "error:|failed" "$log" >&2 || true
        echo "$who: the accelerator was not built (log: $log)" >&2
        return 1
    fi
    local symbol count counts=""
    for symbol in "$@"; do
        count=$(nm -D --undefined-only "$so" | grep -c " $symbol" || true)
        counts="$counts $count ${symbol}*"
        if [ "$count" -eq 0 ]; then
            echo "$who: $so was not built with the sanitizers (no $symbol* symbol)" >&2
            return 1
        fi
    done
    echo "$who: $so imports$counts symbols"
}
