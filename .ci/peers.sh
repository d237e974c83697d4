#!/usr/bin/env bash
# Install the non-Python peers that tests/peers/ runs against (idempotent, needs root for apt):
#   - Debian's chromium (a real browser EventSource), only if /usr/bin/chromium is missing;
#   - the npm packages `eventsource` (client) and `better-sse` (server) into
#     tests/peers/node/node_modules (git-ignored), from the committed package-lock.json.
#   - node/npm (if missing), nftables and iproute2 for tests/netns;
#   - patchelf, which auditwheel needs to give .ci/packaging.sh its manylinux wheel;
#   - tinyproxy, the HTTP proxy the httpx driver's tests go through (they start their own);
#   - redis-server, the Redis the shared log's contract tests start on a free port;
#   - nginx, the reverse proxy the long-poll proof starts (its own prefix, config and port).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node > /dev/null || missing+=(nodejs)
command -v npm > /dev/null || missing+=(npm)
command -v nft > /dev/null || missing+=(nftables)  # tests/netns: faults on real kernel TCP
command -v ip > /dev/null || missing+=(iproute2)
command -v patchelf > /dev/null || missing+=(patchelf)  # .ci/packaging.sh: auditwheel repair
[ -x /usr/bin/tinyproxy ] || missing+=(tinyproxy)  # tests/adapters/test_httpx_driver.py
command -v redis-server > /dev/null || missing+=(redis-server)  # test_shared_log_contract.py
[ -x /usr/sbin/nginx ] || missing+=(nginx)  # tests/adapters/test_longpoll_servers.py
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

node_dir=tests/peers/node
# Reinstall only when the installed versions are not the locked ones.
if ! (cd "$node_dir" && node -e '
    const lock = require("./package-lock.json").packages;
    for (const name of ["eventsource", "better-sse"]) {
        const want = lock["node_modules/" + name].version;
        const have = require("./node_modules/" + name + "/package.json").version;
        if (want !== have) process.exit(1);
    }' 2> /dev/null); then
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "peers.sh: chromium $(/usr/bin/chromium --version 2> /dev/null | tr -d '\n'), node $(node --version)"
