#!/usr/bin/env bash
# Installs what the tests and benchmarks need beyond Go, from Debian's
# packages: redis-tools (redis-cli, redis-benchmark). Idempotent; quiet when
# everything is already there. Needs root (or sudo) the first time.
set -euo pipefail
need=()
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "deps: installing ${need[*]} (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends redis-tools >/dev/null
