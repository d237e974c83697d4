#!/usr/bin/env bash
# Install what tests/netns/ needs (idempotent, needs root for apt): iproute2's `ip` (network
# namespaces, veth) and nftables' `nft` (the reset, drop and random-loss faults). Without
# root or `ip netns` those tests skip; set SSE_CORE_REQUIRE_NETNS=1 to make that a failure.
set -euo pipefail

missing=()
command -v ip > /dev/null || missing+=(iproute2)
command -v nft > /dev/null || missing+=(nftables)
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi
echo "netns.sh: $(ip -V), $(nft --version)"
