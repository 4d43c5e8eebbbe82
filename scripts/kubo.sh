#!/usr/bin/env bash
# Builds Kubo (pinned in scripts/kubo/go.mod) into .tools/ipfs for the
# interoperability tests and side-by-side benchmarks. Idempotent: does
# nothing when .tools/ipfs is already that version.
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(awk '/github.com\/ipfs\/kubo /{print $NF}' scripts/kubo/go.mod)
if [ -x .tools/ipfs ] && .tools/ipfs version 2>/dev/null | grep -q "${want#v}"; then
  exit 0
fi
echo "kubo: building ipfs $want into .tools/ (first time: a few minutes)" >&2
mkdir -p .tools
(cd scripts/kubo && go build -o ../../.tools/ipfs github.com/ipfs/kubo/cmd/ipfs)
