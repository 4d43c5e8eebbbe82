#!/usr/bin/env bash
# Runs FungiStor's benchmarks and writes docs/benchmarks.md.
#
#   scripts/bench.sh [--quiet] [--json] [zdb] [codec] [cluster] [testnet] [content] [cost] [ipfsnet] [qsfs] [repair] [webui]
#
# With no section named, runs them all; each section replaces only its own
# part of docs/benchmarks.md. CONTENT_SIZE (default 1G) and
# CONTENT_OBJECTS (default 100) size the content section; CONTENT_JSON=FILE
# writes it from a saved `scripts/bench_content.py --json` run instead.
# COST_SIZE (default 1G) sizes the cost section and COST_PARTS (default all)
# picks its parts; COST_JSON=FILE writes it from a saved `scripts/bench_cost.py
# --json` run; COST_BEFORE=FILE (default docs/bench/cost-4f78bd2.json, the
# run before issue 15's changes) is shown beside it as "before". `content`
# runs `cost` too.
# IPFSNET_SIZE (default 1G) and ROUNDS (default 3) size the ipfsnet section;
# IPFSNET_JSON=FILE writes it from a saved `scripts/bench_ipfsnet.py --json`.
# QSFS_SIZE (default 1G), ROUNDS, QSFS_FILES (default 100000) and
# QSFS_MILLION (default 1000000; 0 skips the 1M find and the 2M memory fill)
# size the qsfs section; QSFS_JSON=FILE writes it from a saved
# `scripts/bench_qsfs.py --json`. REPAIR_SIZE (default 1G) and ROUNDS size
# the repair section; REPAIR_JSON=FILE writes it from a saved
# `scripts/bench_repair.py --json`. WEBUI_OBJECTS (default 5000) and
# WEBUI_SIZE (default 1G; a list like 1G,4G adds one object of each, each
# on its own testnet) size the webui section; WEBUI_JSON=FILE writes it
# from a saved `scripts/bench_webui.py --json`.
#
# ZDB: redis-benchmark against `fungi zdb` (the issue's exact command line,
# unpipelined and with -P 16), side by side in the same run with Debian's
# redis-server as the ceiling of this client on this machine; RSS of the
# index for 1,000,000 keys of 32 bytes; Go micro-benchmarks of the engine.
# The 0-db figures are the design brief's anchors, measured on this kind of
# machine (0-db itself is not packaged for this machine's registries).
#
# Content: FungiStor beside Kubo (scripts/bench_content.py): publish, cold
# read and first byte on a reader, bytes stored per byte published; then
# through the IPFS gateways (node 6's vs Kubo B's): first byte of cold
# objects, a cold file piped into sha256sum and discarded, a cold CAR.
#
# Cost (scripts/bench_cost.py, issue 15): throughput and core-seconds per GiB
# of every process (leader, holders, reader, CLI, sha256sum) beside Kubo in
# one run: publish and reads on a default 5-node testnet (first read after
# the daemons start apart from later ones, piped into sha256sum and into a
# file), a tuned no-store reader, a single node, and 10,000 web assets.
#
# IPFS network (scripts/bench_ipfsnet.py): a fresh Kubo daemon `ipfs cat`s
# a file from a fungi node holding none of its fragments vs from another
# Kubo node; `fungi pin add` of a Kubo node's CID vs `ipfs pin add` on a
# second Kubo node.
#
# QSFS (scripts/bench_qsfs.py, issue 12; root, FUSE and fio): the shared
# tree through node 6's mount on `fungi testnet up -n 6 --no-store 6`: cold
# sequential reads against `fungi cat`, fio random 4 KiB reads, find/ls over
# 100k and 1M entries beside ext4, daemon memory at 2M entries, snapshot
# and restart, and how soon a `fungi files mv` on node 2 shows in the mount.
#
# Repair (scripts/bench_repair.py, issue 13): 4 of 20 testnet nodes killed
# holding 1 GiB: time to restore redundancy and repair throughput, the
# repair rate cap, a foreground read during a repair, the scrubber's rate
# and its cost to reads, and the replicated metadata a node loss costs.
#
# Web console (scripts/bench_webui.py, issue 14): on a 5-node testnet, the
# console's API with 5,000 objects (/api/v0/objects: latency, bytes, CPU
# per call) and its pages in headless Chromium (time to ready, a search,
# the CPU of the daemons and of the browser while a page sits open and
# polls); then the stat of one 1 GiB object and its fragment grid's page.
set -euo pipefail
cd "$(dirname "$0")/.."
quiet=0; json=0; sections=()
for a in "$@"; do
  case "$a" in
    --quiet) quiet=1 ;;
    --json) json=1; quiet=1 ;;
    zdb|codec|cluster|testnet|content|cost|ipfsnet|qsfs|repair|webui) sections+=("$a") ;;
    *) echo "usage: scripts/bench.sh [--quiet] [--json] [zdb] [codec] [cluster] [testnet] [content] [cost] [ipfsnet] [qsfs] [repair] [webui]" >&2; exit 2 ;;
  esac
done
[ ${#sections[@]} -eq 0 ] && sections=(zdb codec cluster testnet content cost ipfsnet qsfs repair webui)
want() { local s; for s in "${sections[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
# issue 15: the content section comes with its cost model
if want content && ! want cost; then sections+=(cost); fi
say() { [ $quiet -eq 1 ] || echo "bench: $*" >&2; }

[ -x bin/fungi ] || make -s build

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

port_zdb=19901; port_redis=19902
start_zdb() { # extra flags...
  rm -rf "$work/zdb"; mkdir -p "$work/zdb"
  bin/fungi zdb --listen 127.0.0.1 --port $port_zdb --data "$work/zdb/data" --index "$work/zdb/index" "$@" 2>"$work/zdb.log" &
  zdb_pid=$!; pids+=($zdb_pid)
  for _ in $(seq 100); do redis-cli -p $port_zdb PING >/dev/null 2>&1 && return; sleep 0.05; done
  echo "fungi zdb did not start" >&2; cat "$work/zdb.log" >&2; exit 1
}
stop_zdb() { kill -TERM "$zdb_pid"; wait "$zdb_pid" 2>/dev/null || true; }

# CPU accounting for the zdb runs, in clock ticks (USER_HZ) from /proc.
hz=$(getconf CLK_TCK); ncpu=$(nproc)
# proc_ticks PID -> utime+stime of PID (fields after the ")" of the name)
proc_ticks() { local s; read -r s < "/proc/$1/stat"; s=${s##*) }; set -- $s; echo $(( ${12} + ${13} )); }
# machine_ticks -> "BUSY STEAL TOTAL" over all CPUs from /proc/stat; busy
# counts every tick some process or interrupt ran (this kernel charges
# softirq ticks to the process they interrupt as well, not on top of it)
machine_ticks() {
  local _ us ni sy id io irq sirq st
  read -r _ us ni sy id io irq sirq st _ < /proc/stat
  echo "$((us + ni + sy + irq + sirq)) $st $((us + ni + sy + irq + sirq + id + io + st))"
}
ZDB_N=200000
# bench_one PORT SERVER_PID TEST EXTRA... -> "RPS SRV_US CLI_US REST_US BUSY
# STEAL LOAD": one redis-benchmark run of TEST (set or get), with the CPU of
# the server and of redis-benchmark per request (µs), the rest of the
# machine's busy CPU per request (other processes, interrupts on idle
# CPUs), the machine's busy and stolen cores during the run, and the
# 1-minute load average just before it.
bench_one() {
  local port=$1 spid=$2 t=$3; shift 3
  local load s0 s1 m0 m1 out
  load=$(cut -d' ' -f1 /proc/loadavg)
  s0=$(proc_ticks "$spid"); m0=$(machine_ticks)
  # the subshell waits for redis-benchmark, so its cutime+cstime are the
  # client's CPU
  out=$(redis-benchmark -p "$port" -t "$t" -n $ZDB_N -d 4096 -c 50 -r 100000 "$@" --csv 2>/dev/null
        read -r s < "/proc/$BASHPID/stat"; s=${s##*) }; set -- $s; echo "cpu $(( ${14} + ${15} ))")
  s1=$(proc_ticks "$spid"); m1=$(machine_ticks)
  awk -F'","' -v s="$((s1 - s0))" -v m0="$m0" -v m1="$m1" -v hz="$hz" -v n=$ZDB_N -v ncpu="$ncpu" -v load="$load" '
    /^"(SET|GET)"/ { r = $2 + 0 }
    /^cpu / { split($0, c, " "); cl = c[2] }
    END {
      split(m0, a, " "); split(m1, b, " ")
      busy = b[1] - a[1]; steal = b[2] - a[2]; tot = b[3] - a[3]; if (tot <= 0) tot = 1
      us = 1e6 / hz / n
      printf "%d %.1f %.1f %.1f %.2f %.2f %s\n", r, s * us, cl * us, (busy - s - cl) * us, busy / tot * ncpu, steal / tot * ncpu, load
    }' <<<"$out"
}

ROUNDS=${ROUNDS:-3}
# best_zdb "ZDB FLAGS" BENCH-ARGS...: best of ROUNDS, each on a fresh, empty
# server, so SETs really write (a repeated SET of an equal value is answered
# "unchanged" without writing, by 0-db and by us). SET then GET, each its
# own redis-benchmark run so that each has its own CPU figures. Prints two
# lines, "set FIGURES" and "get FIGURES", of the round with the most
# requests per second for each (FIGURES as bench_one's).
best_zdb() {
  local flags=$1; shift
  for _ in $(seq "$ROUNDS"); do
    # shellcheck disable=SC2086
    start_zdb $flags
    echo "set $(bench_one $port_zdb "$zdb_pid" set "$@")"
    echo "get $(bench_one $port_zdb "$zdb_pid" get "$@")"
    stop_zdb
  done | best_of
}
best_redis() {
  for _ in $(seq "$ROUNDS"); do
    redis-cli -p $port_redis FLUSHALL >/dev/null
    echo "set $(bench_one $port_redis "$redis_pid" set "$@")"
    echo "get $(bench_one $port_redis "$redis_pid" get "$@")"
  done | best_of
}
best_of() { awk '$2 > best[$1] { best[$1] = $2; line[$1] = $0 } END { print line["set"]; print line["get"] }'; }

# write_section NAME TEXT: replaces <!-- NAME:start ... NAME:end --> in
# docs/benchmarks.md, or appends it.
write_section() {
  local out=docs/benchmarks.md
  if [ ! -f $out ]; then
    printf '# Benchmarks\n\nFigures are measured, never asserted in tests. Each section says the command\nthat reproduces it; `make bench` regenerates them all.\n\n' > $out
  fi
  python3 - "$out" "$1" "$2" <<'PY'
import re, sys
path, name, section = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
pat = re.compile(r'<!-- %s:start.*?<!-- %s:end -->' % (name, name), re.S)
text = pat.sub(lambda m: section, text) if pat.search(text) else text.rstrip('\n') + '\n\n' + section + '\n'
open(path, 'w').write(text)
PY
  say "wrote $out ($1)"
}

bench_zdb() {
command -v redis-server >/dev/null 2>&1 || {
  say "installing redis-server (Debian) for the side-by-side ceiling"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server >/dev/null
}
load0=$(cut -d' ' -f1-3 /proc/loadavg)
# F[RUN.TEST] = bench_one's figures of the best round
declare -A F
collect() { local t rest; while read -r t rest; do F[$1.$t]=$rest; done; }
fig() { local a; read -r -a a <<<"${F[$1]}"; echo "${a[$2]}"; }
say "fungi zdb: redis-benchmark unpipelined and -P 16 (best of $ROUNDS, fresh server each; load $load0)"
collect zdb < <(best_zdb "")
collect zdbp < <(best_zdb "" -P 16)
collect zdbs < <(best_zdb "--sync")

say "redis-server (ceiling of the client on this machine)"
redis-server --port $port_redis --save "" --appendonly no --daemonize no >/dev/null 2>&1 &
redis_pid=$!; pids+=($redis_pid)
for _ in $(seq 100); do redis-cli -p $port_redis PING >/dev/null 2>&1 && break; sleep 0.05; done
collect redis < <(best_redis)
collect redisp < <(best_redis -P 16)
z_set=$(fig zdb.set 0); z_get=$(fig zdb.get 0); z_pset=$(fig zdbp.set 0); z_pget=$(fig zdbp.get 0)
zs_set=$(fig zdbs.set 0); zs_get=$(fig zdbs.get 0)
r_set=$(fig redis.set 0); r_get=$(fig redis.get 0); r_pset=$(fig redisp.set 0); r_pget=$(fig redisp.get 0)
kill "$redis_pid"

say "RSS for 1,000,000 keys of 32 bytes"
start_zdb
rss0=$(awk '/VmRSS/{print $2}' /proc/$zdb_pid/status)
# 20 + ':' + 12 random digits = 33; 19 + ':' + 12 = 32 bytes per key
# (redis-benchmark reads -r as a C int: 1e9 random ids, ~0.05% collisions)
n=0
for _ in 1 2 3 4 5; do
  redis-benchmark -p $port_zdb -n $((1000000 - n + 1000)) -r 1000000000 -P 64 -c 8 -q \
    SET kkkkkkkkkkkkkkkkkkk:__rand_int__ v >/dev/null 2>&1
  n=$(redis-cli -p $port_zdb DBSIZE)
  [ "$n" -ge 1000000 ] && break
done
[ "$n" -ge 1000000 ] || { echo "bench: could not load 1,000,000 keys (have $n)" >&2; exit 1; }
keylen=$(redis-cli -p $port_zdb --raw SCAN | sed -n 2p | tr -d '\n' | wc -c)
rss1=$(awk '/VmRSS/{print $2}' /proc/$zdb_pid/status)
stop_zdb
rss_mb=$(awk -v a="$rss1" 'BEGIN{printf "%.1f", a/1024}')
idx_b=$(awk -v a="$rss0" -v b="$rss1" -v n="$n" 'BEGIN{printf "%.0f", (b-a)*1024/n}')

say "Go micro-benchmarks (store/zdb)"
gobench=$(go test -run '^$' -bench 'Set|Get' -benchmem -count 1 ./store/zdb/ 2>&1 | grep -E '^Benchmark' || true)

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
date=$(date -u +%Y-%m-%d)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1fx", a/b}'; }

# the CPU table, one row per run; and the runs others disturbed (the rest of
# the machine took over a quarter core beside the server and the client)
cpu_rows=""; disturbed=""
for k in "zdb.set fungi zdb SET" "zdb.get fungi zdb GET" "zdbp.set fungi zdb SET -P 16" "zdbp.get fungi zdb GET -P 16" \
         "zdbs.set fungi zdb --sync SET" "zdbs.get fungi zdb --sync GET" \
         "redis.set redis-server SET" "redis.get redis-server GET" "redisp.set redis-server SET -P 16" "redisp.get redis-server GET -P 16"; do
  key=${k%% *}; label=${k#* }
  read -r f_rps f_srv f_cli f_rest f_busy f_steal f_load <<<"${F[$key]}"
  cpu_rows+="| $label | $f_rps | $f_srv | $f_cli | $f_rest | $f_busy | $f_steal | $f_load |"$'\n'
  awk -v r="$f_rest" -v n="$f_rps" 'BEGIN{exit !(r * n / 1e6 > 0.25)}' &&
    disturbed+="${disturbed:+, }$label ($(awk -v r="$f_rest" -v n="$f_rps" 'BEGIN{printf "%.2f", r * n / 1e6}') cores)"
done
cpu_rows=${cpu_rows%$'\n'}
if [ -n "$disturbed" ]; then
  disturbed="Runs where the rest of the machine took over a quarter of a core beside the server and the client (other work on this shared machine, or interrupts): $disturbed; their figures may be low."
else
  disturbed="In no run did the rest of the machine take over a quarter of a core beside the server and the client."
fi

# unpipelined GET against twice 0-db's anchor, and why, from the CPU figures
read -r g_rps g_srv g_cli g_rest g_busy _ <<<"${F[zdb.get]}"
read -r rg_rps rg_srv rg_cli rg_rest rg_busy _ <<<"${F[redis.get]}"
get_note=$(awk -v r="$g_rps" -v s="$g_srv" -v c="$g_cli" -v o="$g_rest" -v b="$g_busy" -v ncpu="$ncpu" \
    -v rr="$rg_rps" -v rs="$rg_srv" -v rc="$rg_cli" -v rb="$rg_busy" 'BEGIN {
  target = 2 * 53000; t = s + c + o
  if (r >= target) printf "Unpipelined GET reaches twice 0-db'"'"'s anchor: %d/s against %d/s.", r, target
  else printf "Unpipelined GET does not reach twice 0-db'"'"'s anchor: %d/s against %d/s (%.1fx 0-db'"'"'s 53,000/s).", r, target, r / 53000
  printf " In its best run the machine was busy %.2f of its %d cores; each GET took %.1f µs of CPU in `fungi zdb`,", b, ncpu, s
  printf " %.1f µs in redis-benchmark and %.1f µs in the rest of the machine, %.1f µs in all: %d cores allow at most %d GET/s at these costs,", c, o, t, ncpu, ncpu * 1e6 / t
  printf " and %d/s would take %.2f cores, %.2f of them for the client alone.", target, t * target / 1e6, c * target / 1e6
  if (b >= 0.9 * ncpu) {
    printf " The %d cores were saturated, so unpipelined GET is bound by CPU here: of the CPU of each GET, the server took %.0f%%, the client %.0f%% and the rest of the machine %.0f%%.", ncpu, 100 * s / t, 100 * c / t, 100 * o / t
  } else {
    printf " The cores were not saturated (%.2f of %d idle on average), so CPU alone does not set the rate: each of the 50 connections has one request in flight, and waits.", ncpu - b, ncpu
  }
  printf " In-memory redis-server reached %d GET/s in the same run, busy %.2f cores, with %.1f µs in the server and %.1f µs in the client per GET.", rr, rb, rs, rc
}')

if [ $json -eq 1 ]; then
  printf '{"zdb":{"set":%d,"get":%d,"set_p16":%d,"get_p16":%d,"set_sync":%d,"get_sync":%d},' "$z_set" "$z_get" "$z_pset" "$z_pget" "$zs_set" "$zs_get"
  printf '"redis":{"set":%d,"get":%d,"set_p16":%d,"get_p16":%d},' "$r_set" "$r_get" "$r_pset" "$r_pget"
  printf '"cpu":{'
  sep=""
  for key in zdb.set zdb.get zdbp.set zdbp.get zdbs.set zdbs.get redis.set redis.get redisp.set redisp.get; do
    read -r f_rps f_srv f_cli f_rest f_busy f_steal f_load <<<"${F[$key]}"
    printf '%s"%s":{"rps":%d,"server_us_per_req":%s,"client_us_per_req":%s,"rest_us_per_req":%s,"busy_cores":%s,"steal_cores":%s,"load1_before":%s}' \
      "$sep" "$key" "$f_rps" "$f_srv" "$f_cli" "$f_rest" "$f_busy" "$f_steal" "$f_load"
    sep=","
  done
  printf '},"load_before":"%s","cores":%d,' "$load0" "$ncpu"
  printf '"rss_1m_keys_mb":%s,"index_bytes_per_key":%d,"keys":%d}\n' "$rss_mb" "$idx_b" "$n"
fi

section=$(cat <<EOF
<!-- zdb:start (generated by scripts/bench.sh; edit the script, not this) -->
## ZDB (issue 2)

Measured $date on this project's machine kind ($cpu, $ncpu cores), in one run:
\`make bench\` (or \`scripts/bench.sh zdb\`); load average before it: $load0. Requests per
second, best of $ROUNDS rounds of \`redis-benchmark -t set -n 200000 -d 4096 -c 50 -r 100000 [-P 16]\`
then the same with \`-t get\`, each round against a fresh, empty server (so SETs write: a
repeated SET of an equal value is answered "unchanged" without writing). The client runs on
the same $ncpu cores as the server; \`fungi zdb\` runs with its defaults (\`--threads 1\` on 2 cores).

| server | SET | GET | SET -P 16 | GET -P 16 |
|---|---|---|---|---|
| **fungi zdb** | **$z_set** | **$z_get** | **$z_pset** | **$z_pget** |
| fungi zdb --sync (fsync before every reply, group commit) | $zs_set | $zs_get | | |
| 0-db v2.0.7 (design brief anchor, same machine kind) | ~36,000 | ~53,000 | ~18,000 | ~18,000 |
| redis-server 7 (Debian, in-memory: the ceiling of this client here) | $r_set | $r_get | $r_pset | $r_pget |

Against 0-db: SET $(ratio "$z_set" 36000), GET $(ratio "$z_get" 53000) unpipelined
(target 2x); SET $(ratio "$z_pset" 18000), GET $(ratio "$z_pget" 18000) with -P 16 (target 10x).
Against redis-server in the same run: SET $(ratio "$z_set" "$r_set"), GET $(ratio "$z_get" "$r_get") unpipelined.

CPU per request in the same runs (the best round of each), from \`/proc\`: the server's and
redis-benchmark's utime+stime over the run, and the machine's busy time from \`/proc/stat\`,
whose remainder is "rest" (other processes, and interrupts that landed on an idle core; the
processes' times are exact, the machine's sampled every tick, so rest is good to about 1 µs);
busy and stolen are cores of the $ncpu, averaged over the run; load is the 1-minute load
average just before it (after the first run it counts this benchmark's own earlier runs).

| run | req/s | server µs/req | client µs/req | rest µs/req | busy cores | stolen cores | load before |
|---|---|---|---|---|---|---|---|
$cpu_rows

$get_note
$disturbed

Memory: RSS of \`fungi zdb\` holding $n keys of $keylen bytes (1-byte values): **$rss_mb MB**
(target < 150 MB); the index costs about $idx_b bytes per key over the empty process.

Go micro-benchmarks of the embedded engine (\`go test -bench 'Set|Get' -benchmem ./store/zdb/\`):

\`\`\`
$gobench
\`\`\`
<!-- zdb:end -->
EOF
)

write_section zdb "$section"
}

bench_codec() {
  say "zstor codec: fungi bench codec, one core"
  local eq sys four big
  eq=$(bin/fungi bench codec --json --ec 16/4 --time 3s)
  sys=$(bin/fungi bench codec --json --ec 16/4:sys --time 3s)
  four=$(bin/fungi bench codec --json --ec 4/2 --time 3s)
  big=$(bin/fungi bench codec --json --ec 32/8 --time 3s)
  j() { python3 -c "import json,sys; print('%.0f' % json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
  o() { python3 -c "import json,sys; print('%.3f' % json.loads(sys.argv[1])['overhead'])" "$1"; }
  say "zstor: Go benchmarks (GOMAXPROCS=1)"
  local gob
  gob=$(GOMAXPROCS=1 go test -run '^$' -bench 'Pipeline' -benchtime 2s -count 1 ./fungi/ 2>&1 | grep -E '^Benchmark' || true)
  say "zstor: bytes on disk per byte of content (256 MiB random file, local repo)"
  local repo=$work/repo
  FUNGI_PATH=$repo bin/fungi init >/dev/null
  head -c $((256<<20)) /dev/urandom > "$work/rand"
  local t0 t1
  t0=$(date +%s.%N)
  FUNGI_PATH=$repo bin/fungi add -q "$work/rand" >/dev/null
  t1=$(date +%s.%N)
  local disk content addrate ratio cpu
  disk=$(du -sb "$repo/zdb/data/fragments" | cut -f1)
  content=$((256<<20))
  addrate=$(awk -v a="$t0" -v b="$t1" -v n="$content" 'BEGIN{printf "%.0f", n/(b-a)/1e6}')
  ratio=$(awk -v d="$disk" -v c="$content" 'BEGIN{printf "%.3f", d/c}')
  rm -f "$work/rand"
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
  local section
  section=$(cat <<EOF
<!-- codec:start (generated by scripts/bench.sh; edit the script, not this) -->
## zstor codec (issue 3)

Measured $(date -u +%Y-%m-%d) on this machine kind ($cpu), with \`make bench\`
(or \`scripts/bench.sh codec\`). Whole per-block pipelines on one core, incompressible
1 MiB blocks, MB = 10^6 bytes of content per second, from \`fungi bench codec --json --ec K/M\`.
Encode = CID hashing (sha2-256), compression check, AES-256-GCM, Reed-Solomon, fragment
tags; decode = fragment verification, rebuild from K fragments (N-K lost), decryption,
CID check.

| coding | encode MB/s | decode MB/s | fragment bytes per content byte |
|---|---|---|---|
| **16/4 equations (default)** | **$(j "$eq" encode_mb_per_s)** | **$(j "$eq" decode_mb_per_s)** | **$(o "$eq")** |
| 16/4 systematic | $(j "$sys" encode_mb_per_s) | $(j "$sys" decode_mb_per_s) | $(o "$sys") |
| 4/2 equations | $(j "$four" encode_mb_per_s) | $(j "$four" decode_mb_per_s) | $(o "$four") |
| 32/8 equations | $(j "$big" encode_mb_per_s) | $(j "$big" decode_mb_per_s) | $(o "$big") |

Targets (16/4 equations, one core): encode >= 800 MB/s, decode >= 700 MB/s, overhead
<= 1.27 (theory 1.25). Ceilings per core here: SHA-256 ~1.8 GB/s, AES-GCM ~5 GB/s,
Reed-Solomon 16+4 ~30 GB/s.

On disk through the embedded ZDB (record headers included), \`fungi add\` of a 256 MiB
random file into a local repo (16/4, all 20 fragments on the one node) wrote **$ratio**
bytes of ZDB data per byte of content, at $addrate MB/s end to end (import, hashing,
coding, ZDB writes, fsync; both cores).

Go benchmarks (\`GOMAXPROCS=1 go test -run '^\$' -bench Pipeline ./fungi/\`):

\`\`\`
$gob
\`\`\`
<!-- codec:end -->
EOF
)
  write_section codec "$section"
}
bench_cluster() {
  say "consensus: commit throughput, election time, snapshot of 10M manifests (go test -bench)"
  local out
  out=$( {
    go test -run '^$' -bench 'Commit' -benchtime 3s -count 1 ./consensus/
    go test -run '^$' -bench 'Election' -benchtime 5x -count 1 ./consensus/
    go test -run '^$' -bench 'Snapshot10M' -benchtime 1x -count 1 -timeout 20m ./consensus/
  } 2>&1 | grep -E '^Benchmark|^\s+[a-z_]+_test.go' || true)
  local section
  section=$(cat <<EOF
<!-- cluster:start (generated by scripts/bench.sh; edit the script, not this) -->
## Cluster metadata, package level (issue 4)

Measured $(date -u +%Y-%m-%d) on this machine kind (2 cores), real raft over real libp2p on
loopback, with \`scripts/bench.sh cluster\`, which runs \`go test -run '^\$' -bench X ./consensus/\` for
X = Commit (-benchtime 3s), Election (5x) and Snapshot10M (1x):
batched commit throughput through a 5-node group (from the leader and forwarded from a
non-voter), time to a new leader after the leader is killed, and persist/restore of an FSM
with 10M manifest entries (the 1M figures are logged by \`go test -v -run Snapshot ./consensus/\`).

\`\`\`
$out
\`\`\`
<!-- cluster:end -->
EOF
)
  write_section cluster "$section"
}

bench_testnet() {
  say "testnet: 5 daemons; commit throughput from the leader and a non-voter, 5 leader kills"
  local out
  out=$(python3 scripts/bench_testnet.py bin/fungi "$work" --kills 5 --commits 100000)
  [ $json -eq 1 ] && echo "$out"
  local table
  table=$(python3 - "$out" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
l, n, e = d["commit_from_leader"], d["commit_from_nonvoter"], d["election_ms"]
print("| | figure | target |")
print("|---|---|---|")
print("| manifest commits/s, from the leader | %s (%d commits in %d log entries) | |" % (format(round(l["per_second"]), ","), l["commits"], l["log_entries"]))
print("| manifest commits/s, forwarded from a non-voter | **%s** (%d commits in %d log entries) | >= 5,000 |" % (format(round(n["per_second"]), ","), n["commits"], n["log_entries"]))
print("| new leader after SIGKILL of the leader | **%d ms** median (%s ms) | < 3 s |" % (sorted(e)[len(e)//2], ", ".join(map(str, e))))
PY
)
  local section
  section=$(cat <<EOF
<!-- testnet:start (generated by scripts/bench.sh; edit the script, not this) -->
## Cluster on a 5-node testnet (issue 4)

Measured $(date -u +%Y-%m-%d) on this machine kind (2 cores, all five daemons on it) with
\`scripts/bench.sh testnet\` (\`scripts/bench_testnet.py\`): \`fungi testnet up -n 5\` with
\`FUNGI_DEBUG_API=1\`; commits are ~200-byte synthetic manifests put by 512 concurrent writers inside
one daemon through the normal write path (\`POST /api/v0/debug/commit-bench\`: on the leader
straight to raft, on a non-voter forwarded to the leader over libp2p), then deleted. The election
time runs from \`fungi testnet stop --kill\` of the leader until every survivor's
\`fungi testnet status\` names the same new leader (polling costs ~20-100 ms of it), five times.

$table
<!-- testnet:end -->
EOF
)
  write_section testnet "$section"
}

# py_run NAME SAVED ARGS...: the --json run of scripts/bench_NAME.py ARGS,
# or the saved run SAVED, written up, not rerun.
py_run() {
  local name=$1 saved=$2 out q=()
  shift 2
  [ $quiet -eq 1 ] && q=(--quiet)
  if [ -n "$saved" ]; then
    out=$(cat "$saved")
  else
    out=$(python3 scripts/bench_$name.py --json "${q[@]}" "$@" --work "$work/$name")
  fi
  printf '%s' "$out"
}

# py_meta JSON FIELD: prints a run's date, its size for humans and FIELD,
# one per line.
py_meta() {
  python3 -B -c '
import json, sys
sys.path.insert(0, "scripts")
from bench_content import human
d = json.loads(sys.argv[1])
print(d["date"]); print(human(d["size"])); print(d[sys.argv[2]])' "$1" "$2"
}

bench_content() {
  local size=${CONTENT_SIZE:-1G} objects=${CONTENT_OBJECTS:-100}
  say "content: fungi (6-node testnet) beside Kubo (2 daemons), $size file, $objects objects of 1 MiB"
  local out table date human objs
  out=$(py_run content "${CONTENT_JSON:-}" --size "$size" --objects "$objects")
  [ $json -eq 1 ] && echo "$out"
  table=$(printf '%s' "$out" | python3 scripts/bench_content.py --from-json -)
  { read -r date; read -r human; read -r objs; } < <(py_meta "$out" objects)
  local section
  section=$(cat <<EOF
<!-- content:start (generated by scripts/bench.sh; edit the script, not this) -->
## Content delivery beside Kubo

Measured $date on this machine kind (every daemon of both sides on it, over loopback) with
\`scripts/bench.sh content\` (\`scripts/bench_content.py\`; \`CONTENT_SIZE\` and \`CONTENT_OBJECTS\`
size it). FungiStor: \`fungi testnet up -n 6 --no-store 6\`, default coding 16/4, encryption on;
node 6 stores nothing, a reader holding no fragment. Kubo: two daemons, \`ipfs init --profile test\`
(loopback, no bootstrap) with \`Routing.Type none\` (no DHT: blocks move by bitswap between the two
peers only, with no provide or lookup work beside), B \`ipfs swarm connect\`ed to A. Kubo's default
flatfs does not fsync; FungiStor's ZDB does.

The same $human file of random data is published with \`fungi add -q\` on the raft leader and
\`ipfs add --cid-version 1 --chunker size-1048576 --raw-leaves\` on A, then read once, cold, with
\`fungi cat\` on node 6 and \`ipfs cat\` on B (to /dev/null; a second read checks the bytes, sha256).
First byte: $objs distinct random 1 MiB objects, added to both sides, are each fetched once on a
fresh connection, timed from sending the request to the first body byte: \`GET /api/v0/cat?arg=CID\`
on node 6's API and \`GET /ipfs/CID\` on B's gateway, the two sides interleaved. Storage: growth of
\`fragment_bytes\` and \`data_bytes\` (\`/api/v0/repo/stat\`, summed over the six nodes) and of A's
\`RepoSize\` (\`ipfs repo stat\`) per byte of the file.

Gateways (issue 10): node 6's gateway (\`gateway.listen\`, address from \`/api/v0/id\`) against B's
Kubo gateway fetching from A over bitswap. Every gateway measure reads content its reader has never
seen (node 6 keeps a 128 MiB decoded-block cache; B keeps what it fetched): $objs other random 1 MiB
objects, and three fresh $human files, each added to both sides before any is read. First byte:
\`GET /ipfs/CID\` of each object once, fresh connection, request to first body byte, interleaved.
File, piped into sha256 (the headline, what a newcomer does): \`curl -sS --fail URL | sha256sum\`,
the hash checked against the file's, timed from start to the hash; file, discarded (tuned client):
one GET of the second file read into a reused 1 MiB buffer. CAR: \`GET /ipfs/CID?format=car\` with
\`Accept: application/vnd.ipld.car\` (boxo's defaults on both sides: CARv1, dag-scope all, DFS) of
the third file, walked section by section as it arrives, MB/s of CAR bytes; a second, warm GET
then checks every block against its CID and the file's sha256 over the raw leaves. MB = 10^6
bytes; a ratio is FungiStor's figure over Kubo's (MB/s for throughput, ms for first byte).

$table
<!-- content:end -->
EOF
)
  write_section content "$section"
}

bench_cost() {
  local size=${COST_SIZE:-1G} before=${COST_BEFORE:-docs/bench/cost-4f78bd2.json}
  say "cost: core-seconds per GiB of every process, fungi beside Kubo, $size (waits before each measure for a quieter machine)"
  local out table date human b=()
  out=$(py_run cost "${COST_JSON:-}" --size "$size" --parts "${COST_PARTS:-newcomer,tuned,kubo,single,assets}")
  [ -n "$out" ] || { echo "bench: cost: scripts/bench_cost.py failed; docs/benchmarks.md left as it was" >&2; exit 1; }
  [ $json -eq 1 ] && echo "$out"
  [ -f "$before" ] && b=(--before "$before")
  table=$(printf '%s' "$out" | python3 scripts/bench_cost.py --from-json - "${b[@]}")
  { read -r date; read -r human; } < <(py_meta "$out" size)
  local section
  section=$(cat <<EOF
<!-- cost:start (generated by scripts/bench.sh; edit the script, not this) -->
## Cost per byte: every process's CPU beside Kubo's (issue 15)

Measured $date on this machine kind (every daemon of both sides and every command on its 2 cores,
over loopback) with \`scripts/bench.sh cost\` (also run by \`scripts/bench.sh content\` and \`make
bench\`; \`scripts/bench_cost.py\`; \`COST_SIZE\` and \`COST_PARTS\` size it, \`COST_JSON=FILE\` writes
a saved run, \`COST_BEFORE=FILE\` the run shown as before). File: $human of random data.
Each part runs on its own setup, torn down before the next. MB = 10^6 bytes; core-seconds per GiB
are per GiB (2^30 bytes) of content, whatever the process did with it.

Setups. **Newcomer** (the headline): a default \`fungi testnet up -n 5\` (16/4, encryption on);
\`fungi add -q FILE\` with \`FUNGI_PATH=DIR/node1\`, as the README has a newcomer export after \`make
testnet\` (node 1 founds the cluster and is its raft leader; the CLI streams the file to node 1's
API). Then \`fungi testnet stop\` and \`start\` of every node (data kept): every daemon is a fresh
process (the script waits until they agree on a leader and every node's scrubber has ended the pass
it begins at start); the reader is the highest-index node that stores and is not the leader. It runs
\`fungi cat CID | sha256sum\` (hash checked) three times: the first read after the daemons start,
then the 2nd and 3rd; then stop and start again, and the same into a file on the work directory's
disk (\`fungi cat CID > FILE\`, size and sha256 checked after the timing). A daemon keeps a 128 MiB
block cache, far smaller than the file. **Tuned** (labelled so): \`fungi testnet up -n 6 --no-store
6\`, the same add, a restart, then \`fungi cat CID > /dev/null\` on node 6 (stores nothing): first
and second read. **Kubo**: two daemons, \`ipfs init --profile test\` (loopback, no bootstrap) with
\`Routing.Type none\` (no DHT), B \`ipfs swarm connect\`ed to A; \`ipfs add --cid-version 1 --chunker
size-1048576 --raw-leaves -Q\` on A (the same CID as fungi's); both daemons restarted, then \`ipfs cat
CID | sha256sum\` on B: the first read (cold: over bitswap from A), the 2nd and 3rd (warm: B holds
the blocks then), and one more after \`ipfs repo gc\` on B (over bitswap again, same process); then
gc, restart, the same into a file, and to /dev/null. **Single node**: \`fungi init\` in a fresh
\`FUNGI_PATH\` and \`fungi daemon\` (\`make run\`'s defaults, but loopback and free ports, as the
machine is shared): \`fungi add -q\`, then \`fungi cat | sha256sum\` and \`fungi cat > FILE\` in the
same daemon, against one Kubo daemon's \`ipfs add\` and \`ipfs cat\`. **Web assets**: 10,000 files of
1-20 KiB (random sizes and bytes, fixed seed) in 100 directories, \`fungi add -r -Q DIR\` on node 1 of
the 5-node testnet against \`ipfs add -r\` (same flags) on A; every file then read back once as \`GET
/ipfs/ROOT/dNN/fNNN.bin\` over one keep-alive HTTP connection from the reader's gateway (fungi: the
storing non-leader node; Kubo: B, over bitswap), every file's bytes checked. Stored: the growth of
\`data_bytes\` and \`fragment_bytes\` (\`/api/v0/repo/stat\`, all nodes) and of the raft directories'
allocated blocks (all nodes: the replicated metadata; bolt writes whole pages, so small objects
show as steps) against A's \`RepoSize\`. Tiny objects: 50 objects of 6 bytes and 50 of 1 KiB added one
by one, stored bytes per object; each 1 KiB object then read once, cold, through the reader's
\`/api/v0/cat\` (fungi GET, Kubo POST, which its RPC API requires) on a fresh connection.

Accounting. Daemons: utime+stime and minor page faults from \`/proc/PID/stat\` before and after each
measure; their idle rate over 5 s before each group of measures is shown as "daemons' idle in it"
(included in their figures, not taken off). Commands (\`fungi\`, \`ipfs\`, \`sha256sum\`): their
rusage (\`wait4\`). "Kernel time in it": the share of system time in all listed processes; on this
kernel (tick accounting, no IRQ time accounting) the loopback network stack's softirq work is
charged to the process it interrupts, so it shows there, not apart. Machine busy: \`/proc/stat\`
(user, nice, system, irq, softirq), whose tick-sampled totals run a little under the processes'
precise figures on this VM, so "rest" (busy less every process, plus kernel threads) is about 0 or
slightly negative. Others: every other process's CPU (with the children it reaped), the rest of the
machine, shared with other engineers' tests; before each part the script waits up to 15 minutes,
and before each measure up to 120 s, until it takes under a quarter of a core and no test binary
(\`*.test\`) runs; a measure where it took more is marked **busy**, and its part is run again
(twice at most; the run says which parts were).

$table
<!-- cost:end -->
EOF
)
  write_section cost "$section"
}

bench_ipfsnet() {
  local size=${IPFSNET_SIZE:-1G}
  say "ipfsnet: Kubo fetching from fungi node 6 vs from Kubo, fungi pin add vs ipfs pin add, $size, $ROUNDS rounds"
  local out table date human rounds
  out=$(py_run ipfsnet "${IPFSNET_JSON:-}" --size "$size" --rounds "$ROUNDS")
  [ $json -eq 1 ] && echo "$out"
  table=$(printf '%s' "$out" | python3 scripts/bench_ipfsnet.py --from-json -)
  { read -r date; read -r human; read -r rounds; } < <(py_meta "$out" rounds)
  local section
  section=$(cat <<EOF
<!-- ipfsnet:start (generated by scripts/bench.sh; edit the script, not this) -->
## IPFS network: Kubo fetching from fungi, and ingest

Measured $date on this machine kind (every daemon of both sides on it, over loopback) with
\`scripts/bench.sh ipfsnet\` (\`scripts/bench_ipfsnet.py\`; \`IPFSNET_SIZE\` and \`ROUNDS\` size it).
FungiStor: \`fungi testnet up -n 6 --no-store 6\`, default coding 16/4, encryption on; every node
serves the cluster's blocks over bitswap. Kubo: \`ipfs init --profile test\` (loopback, no bootstrap)
with \`Routing.Type none\` (no DHT: blocks move by bitswap between connected peers only): server A,
ingester B. Each of $rounds rounds writes a fresh $human random file and \`ipfs add\`s it on A with
Kubo's defaults (CIDv0, 256 KiB chunks, dag-pb leaves). Ingest: A \`ipfs swarm connect\`s to the
raft leader, which runs \`fungi pin add CID\` (the DAG fetched from A over bitswap, stored
erasure-coded through the leader, pinned), against \`ipfs pin add CID\` on B, connected to A. Fetch:
a fresh Kubo daemon (new repo, nothing in it), \`ipfs swarm connect\`ed only to node 6, which holds
no fragment, runs \`ipfs cat CID > FILE\`, against another fresh Kubo daemon connected only to A;
FILE's sha256 is checked after. The cluster ingested Kubo's CID, so both sides serve the very same
DAG. A second fetch pair does the same with the file in fungi's own import profile (\`fungi add\` on
the leader: unixfs-v1-2025, CIDv1, 1 MiB raw leaves) against A holding the same DAG (\`ipfs add
--cid-version 1 --raw-leaves --chunker size-1048576 --max-file-links 1024\`, same CID); it has no
target. The sides swap order every round; figures are medians over the rounds (range in brackets).
MB = 10^6 bytes of the file per second; a ratio is FungiStor's MB/s over Kubo's. Core-seconds come
from /proc/PID/stat of each process around each measure.

$table
<!-- ipfsnet:end -->
EOF
)
  write_section ipfsnet "$section"
}

bench_qsfs() {
  local size=${QSFS_SIZE:-1G}
  say "qsfs: the shared tree through node 6's FUSE mount, $size files, $ROUNDS rounds (waits first for a quiet machine)"
  local out table date human rounds
  out=$(py_run qsfs "${QSFS_JSON:-}" --size "$size" --rounds "$ROUNDS")
  [ -n "$out" ] || { echo "bench: qsfs: scripts/bench_qsfs.py failed; docs/benchmarks.md left as it was" >&2; exit 1; }
  [ $json -eq 1 ] && echo "$out"
  table=$(printf '%s' "$out" | python3 scripts/bench_qsfs.py --from-json -)
  { read -r date; read -r human; read -r rounds; } < <(py_meta "$out" rounds)
  local section
  section=$(cat <<EOF
<!-- qsfs:start (generated by scripts/bench.sh; edit the script, not this) -->
## QSFS: the shared tree through a FUSE mount (issue 12)

Measured $date on this machine kind (all six daemons, the mount and the readers on its 2 cores)
with \`scripts/bench.sh qsfs\` (\`scripts/bench_qsfs.py\`, as root; \`QSFS_SIZE\`, \`ROUNDS\`,
\`QSFS_FILES\` and \`QSFS_MILLION\` size it). A newcomer's setup: \`FUNGI_DEBUG_API=1 fungi testnet up
-n 6 --no-store 6\` (default coding 16/4, encryption on); node 6 holds no fragment and runs
\`FUNGI_PATH=DIR/node6 fungi mount MNT\` (read-only, served by its daemon). Before measuring, the
script waits up to 20 minutes while \`pgrep -f 'fungi.test|go test|fungi daemon'\` shows processes
it did not start (another engineer's tests on the same 2 cores).

Sequential: each of $rounds rounds adds a fresh $human random file on node 1 (\`fungi add -q
--to-files /bench/ FILE\`) and reads it on node 6 four times, each cold (\`sync; echo 3 >
/proc/sys/vm/drop_caches\` first: every node's page cache, the mount's included): \`cat MNT/bench/FILE
> /dev/null\` and \`fungi cat CID > /dev/null\`, then both piped into \`sha256sum\` (checked against
the file's), the two sides alternating which goes first; right after the cold \`cat > /dev/null\`, a
second one is the warm read. Node 6 keeps a 128 MiB decoded-block cache and each open file a 32 MiB
leaf cache, both far smaller than the file, so a sequential reader after another finds nothing of
it there. Random: \`fio --name=r --filename=MNT/bench/FILE --rw=randread --bs=4k --runtime=20
--time_based --ioengine=psync --iodepth=1 --numjobs=1|4 --group_reporting --invalidate=0
--output-format=json\` (\`--invalidate=0\`: fio would otherwise drop the warm file's pages itself),
cold on a fresh file each (caches dropped) and warm after one full \`cat\` of the file; latencies
are fio's completion-latency percentiles. The mount's 16 MiB readahead means a random reader that
lands on a readahead mark pulls 16 MiB in; the last column says how much of the file that left in
the page cache.

Metadata: \`POST /api/v0/debug/tree-fill?arg=/meta&n=100000&dirs=1000&cid=CID\` on the leader links
one small file under /meta/d0000/f0000000 ...; \`dirs=1\` under /flat makes one 100,000-entry
directory. Each round runs every command cold (QSFS: \`fungi unmount MNT; fungi mount MNT\` and
caches dropped; ext4: caches dropped) and again right after (warm), beside the same shape of empty
files on the work directory's disk. Visibility: \`fungi files mv /vis/d0000/fN /vis/moved/mN\` on
node 2, timed from starting the command until \`os.path.exists(MNT/vis/moved/mN)\` is true on node 6
(polled every 5 ms; the kernel has listed the directory and missed the name first). Memory: VmRSS
(/proc/PID/status) and the live heap after a forced GC (\`GET /debug/pprof/heap?debug=1&gc=1\`,
HeapAlloc) of node 6 and of the leader just before the first tree-fill and once the tree holds
2,000,000 entries (/meta, /flat, /vis, /million and /more; directories count); VmRSS also holds
what the earlier reads allocated and Go has not returned yet, so the heap is the cleaner per-entry
figure. Snapshot: \`POST /api/v0/debug/snapshot\` on each, timed. Restart: node 6, just
snapshotted, is stopped (\`fungi testnet stop --dir D 6\`) and started (\`fungi testnet start --dir
D 6\`), and timed until its API answers and until it holds the whole tree. The FSM alone
(\`go test -run '^\$' -bench Tree2M -benchtime 1x ./consensus/\`): 175 B/entry of heap at 2,000,000
links, snapshot persist ~0.19 s, restore ~0.28 s. MB = 10^6 bytes; figures are medians over the
rounds, (min-max).

$table
<!-- qsfs:end -->
EOF
)
  write_section qsfs "$section"
}

bench_repair() {
  local size=${REPAIR_SIZE:-1G}
  say "repair: 4 of 20 testnet nodes killed holding $size; cap, reads during repair, scrub, metadata; $ROUNDS rounds (waits first for a quiet machine)"
  local out table date human rounds
  out=$(py_run repair "${REPAIR_JSON:-}" --size "$size" --rounds "$ROUNDS")
  [ -n "$out" ] || { echo "bench: repair: scripts/bench_repair.py failed; docs/benchmarks.md left as it was" >&2; exit 1; }
  [ $json -eq 1 ] && echo "$out"
  table=$(printf '%s' "$out" | python3 scripts/bench_repair.py --from-json -)
  { read -r date; read -r human; read -r rounds; } < <(py_meta "$out" rounds)
  local section
  section=$(cat <<EOF
<!-- repair:start (generated by scripts/bench.sh; edit the script, not this) -->
## Self-healing: repair after node loss (issue 13)

Measured $date on this machine kind (all twenty daemons on its 2 cores, over loopback) with
\`scripts/bench.sh repair\` (\`scripts/bench_repair.py\`; \`REPAIR_SIZE\` and \`ROUNDS\` size it),
$rounds rounds, objects of $human. Every part runs on a fresh \`FUNGI_DEBUG_API=1 fungi testnet up -n 20
--ec 16/4 --set repair.grace=5s\`, every other setting at its default unless said (so every node's
scrubber runs at its default 16 MB/s), random data added on node 1 with \`fungi add -q\`. A loss is
SIGKILL of four raft non-voters at once, never the leader, each holding fragments (with 20 nodes at
16/4 each holds one fragment of every block): the script signals their pids itself, then runs
\`fungi testnet stop --dir D --kill I...\` for the testnet's bookkeeping (that command alone kills
one node at a time and waits until each is reaped, ~1.9 s apart on this VM, whose init reaps
orphans every ~2 s; the four deaths would spread over ~7 s). The leader's repair state
(\`GET /api/v0/repair/status\` on the leader: the \`repair\` object of \`fungi cluster status --json\`)
is polled every 0.25 s.

Restore (\`--set repair.rate=0\`, one object): **done** is the first poll with no pending epoch, no
backlog, no stranded fragment, no member lost and not yet replaced, no object at risk or lost;
(a) counts from the kill, (b) from the first repair epoch (the time stamp of the leader's \`repair:
members replaced\` log line), i.e. without the grace and the monitor's tick. Throughput is the
leader's \`done.fetched\` delta (content bytes decoded) over (b). Then \`fungi check --all --json\` on a
live non-leader node. Metadata, same runs: \`POST /api/v0/debug/snapshot\` on the leader before the
kill and after the repair, the size of the newest \`raft/snapshots/*/state.bin\` each time and of each
of its sections (parsed as \`consensus/snapshot.go\` writes them), and the \`metadata.ops\` counts of
\`fungi cluster status\` before and after. Cap: the same on a fresh testnet with \`--set
repair.rate=40MB\` (the leader's cap is the one that acts); achieved = (\`done.bytes\` +
\`done.fetched\` delta: what the leader's limiter charges) over (b). Read: \`--set
repair.grace=60s\` so that a read fits between the kill and the repair, three objects (so that the
repair outlasts the read), \`fungi cat CID | sha256sum\` of the third (hash checked) on four live
non-leader nodes that never read it (a daemon keeps a 128 MiB decoded-block cache): all members up;
right after the kill (members down, no repair yet); started as soon as the first epoch shows in the
leader's status (repair running, no cap); after the repair.
Scrub: a fresh testnet with \`--set repair.scrub_rate=0\` on every node and two objects; one
non-leader node gets \`fungi config repair.scrub_rate R\` and a restart (\`fungi testnet stop\` and
\`start\`, which also empties its block cache) for each R; its \`scrub.bytes_verified\`
(\`/api/v0/repo/stat\`) is sampled every 0.25 s for 12 s (the long-run average, and the rate inside
passes), then it runs \`fungi cat\` of the first object into sha256sum. Before every part the script
waits until no other test runs on the machine. MB = 10^6 bytes; figures are medians over the rounds
(min-max).

$table
<!-- repair:end -->
EOF
)
  write_section repair "$section"
}

bench_webui() {
  local objects=${WEBUI_OBJECTS:-5000} size=${WEBUI_SIZE:-1G}
  say "webui: the console's API and pages in headless Chromium: $objects objects, then one object of $size, 5-node testnet (waits first for a quiet machine)"
  local out table date human objs sizes window
  out=$(py_run webui "${WEBUI_JSON:-}" --objects "$objects" --size "$size")
  [ -n "$out" ] || { echo "bench: webui: scripts/bench_webui.py failed; docs/benchmarks.md left as it was" >&2; exit 1; }
  [ $json -eq 1 ] && echo "$out"
  table=$(printf '%s' "$out" | python3 scripts/bench_webui.py --from-json -)
  { read -r date; read -r human; read -r objs; } < <(py_meta "$out" objects)
  { read -r window; read -r sizes; } < <(printf '%s' "$out" | python3 -B -c '
import json, sys
sys.path.insert(0, "scripts")
from bench_content import human
d = json.load(sys.stdin)
print("%g" % d["window_s"]); print(" and ".join("one of " + human(s) for s in d["sizes"]))')
  local section
  section=$(cat <<EOF
<!-- webui:start (generated by scripts/bench.sh; edit the script, not this) -->
## Web console (issue 14)

Measured $date on this machine kind (all five daemons and the browser on its 2 cores, over
loopback) with \`scripts/bench.sh webui\` (\`scripts/bench_webui.py\`; \`WEBUI_OBJECTS\` and
\`WEBUI_SIZE\` size it). Each part runs on a fresh \`FUNGI_DEBUG_API=1 fungi testnet up -n 5 --ec
16/4\`; the console is node 1's (\`http://<node 1 api>/webui/\`); node 1 is the raft leader unless a
table says otherwise.

Objects: $objs distinct random objects of 1-20 KiB (one block each), POSTed as multipart to node
1's \`/api/v0/add\` from 8 threads, until the leader counts them all full. API: the first \`GET
/api/v0/objects\` right after the last add (fresh connection), then 50 calls of each request on
one keep-alive connection (p50/p95, to the last byte); the answering daemon's CPU per call is its
utime+stime (/proc/PID/stat) around a further 200 calls, less its idle rate (measured over 10 s
before). Browser: Debian's Chromium headless (\`--headless=new --no-sandbox --disable-gpu
--window-size=1280,800\`, a fresh profile per part), driven from Python over
\`--remote-debugging-pipe\`. Time to ready: from the start of the navigation (from about:blank) to
the mutation that sets \`#page[data-ready="1"]\` (the page's first data rendered), taken by a script
installed in every new document; the browser's first load (nothing cached), then the median of
three more. Search: 8 characters from the middle of a CID typed at once into \`#search\`
(\`Input.insertText\`), to rows of \`#objects-body\` that all contain them; the page waits 200 ms
after the last keystroke before it asks. Steady cost: each daemon's CPU and that of all of
Chromium's processes over windows of $window s: with the browser on about:blank (the idle testnet),
with each page open (from 4 s after ready), and on about:blank again, in % of one core; "less idle"
is a page's window less the two idle windows together (the page's own cost; the two idle windows'
difference shows the noise), and per poll, that over the polls the page made in its window.
Each page polls every 2 s: \`#/objects\` \`GET /api/v0/objects?limit=50\`, \`#/\` \`GET
/api/v0/cluster/status\`, \`#/object/CID\` \`GET /api/v0/stat?arg=CID\`.

Big object: $sizes of random data, each on a fresh testnet,
\`fungi add -q\` on node 1; \`GET /api/v0/stat?arg=CID\` on node 1 (which asks every holder whether
it has each of its fragments: 20 per block) 50 times warm, with the CPU of node 1 and of the four
other daemons (the holders) around those calls, less their idle rates; \`verify=true\` (every
fragment fetched and checked) once; then the object page open as above. Before each part the
script waits until no other test runs on the machine.

$table
<!-- webui:end -->
EOF
)
  write_section webui "$section"
}

want zdb && bench_zdb
want codec && bench_codec
want cluster && bench_cluster
want testnet && bench_testnet
want content && bench_content
want cost && bench_cost
want ipfsnet && bench_ipfsnet
want qsfs && bench_qsfs
want repair && bench_repair
want webui && bench_webui
exit 0
