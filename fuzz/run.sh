#!/bin/sh
# Run both fuzz harnesses for SECONDS each (default 60), one after the other.
#
# Usage: fuzz/run.sh [SECONDS]    (from anywhere; uses the project venv if there is one)
#
# The committed seeds in fuzz/corpus/ are copied to fuzz/corpus-work/ (git-ignored), so the
# fuzzer's new inputs never pollute the committed corpus. Crash reproducers are written to
# fuzz/corpus-work/crash-<harness>-*. Exits non-zero when either harness finds a crash.
set -u
SECONDS_EACH=${1:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
WORK=$HERE/corpus-work
status=0
for harness in parser roundtrip; do
    mkdir -p "$WORK/$harness"
    cp "$HERE/corpus/$harness"/* "$WORK/$harness"/
    echo "== fuzz_$harness: $SECONDS_EACH s"
    # The dictionary's tokens (field names, line endings, BOM) also help the round trip,
    # whose strings become field values.
    "$PYTHON" "$HERE/fuzz_$harness.py" "$WORK/$harness" -dict="$HERE/sse.dict" \
        -max_total_time="$SECONDS_EACH" -max_len=4096 -rss_limit_mb=1024 \
        -timeout=10 -print_final_stats=1 -artifact_prefix="$WORK/crash-$harness-"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "== fuzz_$harness FAILED (exit $rc); reproducers: $WORK/crash-$harness-*" >&2
        status=1
    fi
done
exit $status
