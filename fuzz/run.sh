#!/bin/sh
# Run both fuzz harnesses for SECONDS each (default 60), one after the other.
#
# Usage: fuzz/run.sh [SECONDS]    (from anywhere; uses the project venv if there is one)
#
# The committed seeds in fuzz/corpus/ are copied to fuzz/corpus-work/ (git-ignored), so the
# fuzzer's new inputs never pollute the committed corpus. Crash reproducers are written to
# fuzz/corpus-work/crash-<harness>-*. Exits non-zero when either harness finds a crash.
#
# Environment (all optional; .ci/fuzz.sh sets them for the sanitizer build):
#   PYTHON         the interpreter (default: .venv/bin/python, else python3)
#   FUZZ_LABEL     a name for this configuration: work in fuzz/corpus-work/<label>/ instead
#   FUZZ_PRELOAD   a library to LD_PRELOAD into the fuzzer process only (the sanitizer runtime)
#   FUZZ_RSS_MB    libFuzzer's -rss_limit_mb (default 1024)
# Each harness's output goes to <work>/<harness>.log; the first and last coverage lines
# (libFuzzer's "cov:" edges and "ft:" features) are printed, and the log's tail on failure.
set -u
SECONDS_EACH=${1:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
WORK=$HERE/corpus-work${FUZZ_LABEL:+/$FUZZ_LABEL}
status=0
for harness in parser roundtrip; do
    mkdir -p "$WORK/$harness"
    cp "$HERE/corpus/$harness"/* "$WORK/$harness"/
    log=$WORK/$harness.log
    echo "== fuzz_$harness${FUZZ_LABEL:+ ($FUZZ_LABEL)}: $SECONDS_EACH s, log $log"
    # The dictionary's tokens (field names, line endings, BOM) also help the round trip,
    # whose strings become field values.
    LD_PRELOAD=${FUZZ_PRELOAD:-${LD_PRELOAD:-}} "$PYTHON" "$HERE/fuzz_$harness.py" \
        "$WORK/$harness" -dict="$HERE/sse.dict" \
        -max_total_time="$SECONDS_EACH" -max_len=4096 -rss_limit_mb="${FUZZ_RSS_MB:-1024}" \
        -timeout=10 -print_final_stats=1 -artifact_prefix="$WORK/crash-$harness-" \
        > "$log" 2>&1
    rc=$?
    grep -m 1 "^fuzz_$harness:" "$log"
    grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)" "$log"
    if [ "$rc" -ne 0 ]; then
        tail -n 80 "$log" >&2
        echo "== fuzz_$harness FAILED (exit $rc); reproducers: $WORK/crash-$harness-*" >&2
        status=1
    fi
done
exit $status
