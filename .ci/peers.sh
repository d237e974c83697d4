#!/usr/bin/env bash
# Install the non-Python peers that tests/peers/ runs against (idempotent, needs root for apt):
#   - Debian's chromium (a real browser EventSource), only if /usr/bin/chromium is missing;
#   - the npm packages `eventsource` (client) and `better-sse` (server) into
#     tests/peers/node/node_modules (git-ignored), from the committed package-lock.json.
#   - node/npm (if missing), nftables and iproute2 for tests/netns;
#   - patchelf, which auditwheel needs to give .ci/packaging.sh its manylinux wheel;
#   - tinyproxy, the HTTP proxy the httpx driver's tests go through (they start their own);
#   - redis-server, the Redis the shared log's contract tests start on a free port;
#   - valkey-server (the fork of Redis the same tests also run on), from bookworm-backports
#     on Debian 12 (added to the apt sources if no source names it yet);
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
backports=()
command -v valkey-server > /dev/null || backports+=(valkey-server)  # redis_support.py
if [ ${#backports[@]} -gt 0 ]; then
    # Debian 12 ships Valkey (8.0) only in bookworm-backports; later releases in main.
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    if [ "$codename" = bookworm ]; then
        if ! grep -qs '^[^#]*bookworm-backports' /etc/apt/sources.list \
                /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; then
            echo "deb http://deb.debian.org/debian bookworm-backports main" \
                > /etc/apt/sources.list.d/bookworm-backports.list
        fi
        backports=(-t bookworm-backports "${backports[@]}")
    fi
fi
if [ ${#missing[@]} -gt 0 ] || [ ${#backports[@]} -gt 0 ]; then
    apt-get update
fi
if [ ${#missing[@]} -gt 0 ]; then
    apt-get install -y --no-install-recommends "${missing[@]}"
fi
if [ ${#backports[@]} -gt 0 ]; then
    # The tests start their own valkey-server; the package's service is not needed, and on
    # a machine whose init runs services it would fight a running redis-server for port
    # 6379 and fail the install: deny service starts during it, unless a policy exists.
    policy=/usr/sbin/policy-rc.d
    if [ -e "$policy" ]; then
        apt-get install -y --no-install-recommends "${backports[@]}"
    else
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod +x "$policy"
        trap 'rm -f "$policy"' EXIT
        apt-get install -y --no-install-recommends "${backports[@]}"
        rm -f "$policy"
        trap - EXIT
    fi
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
echo "peers.sh: chromium $(/usr/bin/chromium --version 2> /dev/null | tr -d '\n'), node $(node --version)," \
    "$(valkey-server --version | cut -d' ' -f1-3)"
