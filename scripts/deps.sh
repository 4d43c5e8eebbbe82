#!/usr/bin/env bash
# Installs what the tests and benchmarks need beyond Go, from Debian's
# packages: redis-tools (redis-cli, redis-benchmark), fuse3 (fusermount3,
# for the QSFS mount), fio (the mount's random-read benchmark) and
# chromium (the web console's browser tests drive it headless).
# Idempotent; quiet when everything is already there. Needs root (or sudo)
# the first time.
set -euo pipefail
need=()
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
command -v fio >/dev/null 2>&1 || need+=(fio)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "deps: installing ${need[*]} (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
