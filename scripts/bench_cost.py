#!/usr/bin/env python3
"""Cost per byte (issue 15): throughput and core-seconds per GiB of every
process, FungiStor beside Kubo, in one run on this machine.

Each measure records the wall time (MB/s, MB = 10^6 bytes), and for every
process taking part its utime+stime and minor page faults: the daemons from
/proc/PID/stat before and after, the commands this script runs (fungi,
ipfs, sha256sum) from their rusage (os.wait4), this script's own CPU from
os.times; beside them the machine's busy time (/proc/stat user, nice,
system, irq, softirq), the CPU of kernel threads, and that of every other
process (the rest of the machine: others' tests and daemons), with the
load average. A measure where others took more than a quarter of a core is
marked busy. Core-seconds per GiB are per GiB of content (2^30 bytes of the
file, or of all the small files), whatever the process did with it.
Before each measure the script waits (up to --quiet-wait seconds) until
the rest of the machine takes less than a quarter of a core.

Parts (--parts, default all; one after the other, each on its own setup,
torn down before the next):

  newcomer  the headline: a default `fungi testnet up -n 5`. Publish: `fungi
            add -q FILE` with FUNGI_PATH=DIR/node1 (what the README has a
            newcomer export after `make testnet`; node 1 is the raft leader
            of a fresh testnet). Then the testnet is stopped and started
            (`fungi testnet stop`/`start`, data kept) and the reader, a node
            that stores and is not the leader (the highest such index),
            runs `fungi cat CID | sha256sum` three times: the first read
            after the daemons start, then the 2nd and 3rd; stopped and
            started again, the same into a file on the work directory's
            disk (`fungi cat CID > FILE`; size and sha256 checked after).
  tuned     beside it, labelled tuned: `fungi testnet up -n 6 --no-store
            6`, the same add on node 1, a restart, then `fungi cat CID >
            /dev/null` on node 6 (stores nothing): first read, later read.
  kubo      two Kubo daemons on loopback (`--profile test`, Routing none),
            B connected to A; `ipfs add` (bench_content.py's KUBO_ADD) on A;
            both daemons restarted, then `ipfs cat CID | sha256sum` on B:
            the first read (cold: over bitswap from A), the 2nd and 3rd
            (warm: B holds the blocks then), and once more after `ipfs repo
            gc` on B (over bitswap again, same process); then gc, restart
            and the same into a file, and to /dev/null (first, later).
  single    one node with `make run`'s defaults (`fungi init` in a fresh
            FUNGI_PATH, `fungi daemon`; loopback and free ports, as the
            machine is shared): `fungi add -q`, then `fungi cat | sha256sum`
            and `fungi cat > FILE`; against one Kubo daemon's `ipfs add`
            and `ipfs cat`.
  assets    web assets: --files (default 10,000) files of 1-20 KiB (random
            sizes and bytes from a fixed seed) in 100-file directories, on
            the 5-node testnet (`fungi add -r -Q DIR` on node 1) and Kubo's
            A (`ipfs add -r` with KUBO_ADD); then every file read back on
            the reader (fungi: the storing non-leader node's gateway; Kubo:
            B's gateway, over bitswap) as GET /ipfs/ROOT/dNN/fNNN.bin over
            one keep-alive HTTP connection, every file's bytes checked.
            Stored: ZDB data and fragment bytes gained on all nodes
            (/api/v0/repo/stat), the raft directories' growth (allocated
            blocks, all nodes), against A's RepoSize growth. Tiny objects:
            the same for one 6-byte and one 1 KiB file. Latency: 50 random
            1 KiB objects, each read once on a fresh connection through the
            reader's /api/v0/cat (fungi GET, Kubo POST), request to last
            byte, p50/p99.

    scripts/bench_cost.py [--size 1G] [--parts newcomer,tuned,kubo,single,assets]
                          [--files 10000] [--json] [--quiet] [--work DIR] [--keep]
                          [--fungi BIN] [--ipfs BIN] [--quiet-wait 120] [--before FILE]
    scripts/bench_cost.py --from-json FILE|- [--before FILE]   (render saved runs)

Without --fungi it builds cmd/fungi into WORK; without --ipfs it runs
scripts/kubo.sh and uses .tools/ipfs. --before FILE renders a saved run
next to this one (before and after). Everything it started is stopped on
exit, Ctrl-C included (testnets with `fungi testnet down`, daemons by the
pids it started); WORK is removed unless --keep. Python 3 standard library
only.
"""
import argparse, hashlib, http.client, json, os, random, signal, socket, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_content as bc  # noqa: E402
from bench_content import (Failure, KUBO_ADD, human, parse_size, file_sha256, write_random,  # noqa: E402
                           free_ports, get_json, percentile, machine, build_fungi, build_kubo)

PARTS = ("newcomer", "tuned", "kubo", "single", "assets")
HZ = os.sysconf("SC_CLK_TCK")
GiB = 1 << 30
MiB = 1 << 20
BUSY = 0.25  # others above this share of one core mark a measure busy
SEED = 15    # the web assets' sizes and bytes
MEASURE_TIMEOUT = 1800  # s: a measure taking longer fails the run (a hung daemon)

quiet = False


def say(msg):
    if not quiet:
        print("bench_cost: " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc

def pstat(pid):
    """(starttime, utime s, stime s, minflt, majflt, reaped children's
    utime+stime s, ppid, name) of pid, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            raw = f.read()
    except OSError:
        return None
    try:
        name, v = raw[raw.index("(") + 1:raw.rindex(")")], raw[raw.rindex(")") + 2:].split()
        return (int(v[19]), int(v[11]) / HZ, int(v[12]) / HZ, int(v[7]), int(v[9]),
                (int(v[13]) + int(v[14])) / HZ, int(v[1]), name)
    except (ValueError, IndexError):
        return None


def all_procs():
    out = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            s = pstat(int(p))
            if s:
                out[int(p)] = s
    return out


def cpu_totals():
    """Seconds of (busy: user+nice+system+irq+softirq, irq+softirq, steal)
    from /proc/stat's first line."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    v += [0] * (8 - len(v))
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / HZ, (v[5] + v[6]) / HZ, v[7] / HZ


def hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def others_between(a0, a1, ours):
    """CPU seconds the rest of the machine took between two all_procs()
    snapshots: every process not ours and not a kernel thread, with the
    children it reaped meanwhile, less what processes that ended had used
    before (a reaped child's whole life lands in its reaper's figures).
    Returns (others, kernel threads, top names)."""
    others = kernel = 0.0
    top = {}
    for p, s in a1.items():
        if p in ours or s[6] == os.getpid():
            continue
        b = a0.get(p)
        d = s[1] + s[2] + s[5] - (b[1] + b[2] + b[5] if b and b[0] == s[0] else 0)
        if p == 2 or s[6] == 2:
            kernel += d
            continue
        others += d
        top[s[7]] = top.get(s[7], 0) + d
    for p, s in a0.items():
        if p in ours or s[6] == os.getpid() or p == 2 or s[6] == 2 or (p in a1 and a1[p][0] == s[0]):
            continue
        others -= s[1] + s[2] + s[5]
        top[s[7]] = top.get(s[7], 0) - (s[1] + s[2] + s[5])
    return max(0.0, others), kernel, [[n, round(c, 2)] for n, c in sorted(top.items(), key=lambda x: -x[1])[:3] if c >= 0.05]


# ---------------------------------------------------------------- measures

class Meter:
    """The measures of a run, and what this run started (never counted as
    the rest of the machine)."""

    def __init__(self, work, quiet_wait):
        self.work, self.quiet_wait = work, quiet_wait
        self.ours = {os.getpid()}
        self.live = {}  # pid -> Popen of commands running now
        self.seen = {}
        self.n = 0

    def quiet(self, limit=None):
        """Waits (up to limit s, default quiet_wait) until the rest of the
        machine takes under a quarter of a core over a 2 s sample and runs
        no test binary (a process named *.test: another engineer's `go
        test`); returns the seconds waited."""
        limit = self.quiet_wait if limit is None else limit
        t0 = time.time()
        while True:
            a0 = all_procs()
            time.sleep(2)
            a1 = all_procs()
            o, _, top = others_between(a0, a1, self.ours)
            tests = sorted({s[7] for p, s in a1.items() if s[7].endswith(".test") and p not in self.ours})
            if (o < BUSY and not tests) or time.time() - t0 > limit:
                waited = time.time() - t0 - 2
                if waited > 1:
                    say("  waited %.0f s for a quieter machine (others %.2f cores: %s)" % (
                        waited, o / 2, ", ".join(tests + [n for n, _ in top])))
                return round(max(0.0, waited), 1)
            time.sleep(3)

    def idle(self, daemons, secs=5):
        """Idle CPU rate (cores) of each daemon over secs: [(label, pid, role)]."""
        s0 = {pid: pstat(pid) for _, pid, _ in daemons}
        time.sleep(secs)
        rates = {}
        for label, pid, _ in daemons:
            a, b = s0[pid], pstat(pid)
            rates[str(pid)] = round((b[1] + b[2] - a[1] - a[2]) / secs, 4) if a and b and a[0] == b[0] else 0.0
        return rates

    def spawn(self, cmd, env=None, stdin=None, stdout=subprocess.PIPE):
        self.n += 1
        err = open(os.path.join(self.work, "logs", "cmd%d.err" % self.n), "w+b")
        p = subprocess.Popen(cmd, env=env, stdin=stdin, stdout=stdout, stderr=err)
        p.errfile, p.cmd = err, cmd
        self.ours.add(p.pid)
        self.live[p.pid] = p
        return p

    def reap(self, p):
        """Waits for p; returns its rusage (it and the children it reaped);
        a non-zero exit is a Failure showing its stderr."""
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        self.live.pop(p.pid, None)
        if p.returncode != 0:
            p.errfile.seek(0)
            raise Failure("%s: exit %d\n%s" % (" ".join(p.cmd), p.returncode,
                                                p.errfile.read().decode(errors="replace").strip()[-2000:]))
        p.errfile.close()
        return {"cpu_s": ru.ru_utime + ru.ru_stime, "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
                "minflt": ru.ru_minflt, "majflt": ru.ru_majflt, "maxrss_kb": ru.ru_maxrss}

    def kill_live(self):
        for p in list(self.live.values()):
            try:
                p.kill()
                os.waitpid(p.pid, 0)
            except OSError:
                pass
        self.live = {}

    def measure(self, name, nbytes, daemons, idle=None, **meta):
        """A context manager timing one measure: daemons is [(label, pid,
        role)]; commands run through the returned object's cli/pipe
        helpers are counted as they exit."""
        meter = self

        class M:
            def __init__(self):
                self.kids = []

            def cli(self, label, role, cmd, env=None, stdin=None, stdout=subprocess.PIPE):
                p = meter.spawn(cmd, env, stdin, stdout)
                out = p.stdout.read() if stdout == subprocess.PIPE else b""
                ru = meter.reap(p)
                self.kids.append(dict(ru, label=label, role=role))
                return out

            def pipe_sha(self, label, cmd, env=None):
                """cmd | sha256sum; returns the hex digest."""
                a = meter.spawn(cmd, env, stdout=subprocess.PIPE)
                b = meter.spawn(["sha256sum"], stdin=a.stdout, stdout=subprocess.PIPE)
                a.stdout.close()
                try:
                    ra = meter.reap(a)
                finally:
                    rb = meter.reap(b)
                self.kids.append(dict(ra, label=label, role="cli"))
                self.kids.append(dict(rb, label="sha256sum", role="pipe"))
                return b.stdout.read().split()[0].decode()

            def __enter__(self):
                self.waited = meter.quiet()
                signal.alarm(MEASURE_TIMEOUT)
                os.sync()
                self.load0 = os.getloadavg()[0]
                self.d0 = {pid: pstat(pid) for _, pid, _ in daemons}
                self.a0 = all_procs()
                self.c0 = cpu_totals()
                self.me0 = os.times()
                self.t0 = time.perf_counter()
                return self

            def __exit__(self, exc, *_):
                signal.alarm(0)
                if exc:
                    return False
                t1 = time.perf_counter()
                me1 = os.times()
                c1 = cpu_totals()
                d1 = {pid: pstat(pid) for _, pid, _ in daemons}
                a1 = all_procs()
                wall = t1 - self.t0
                procs = []
                for label, pid, role in daemons:
                    a, b = self.d0[pid], d1[pid]
                    if not a or not b or a[0] != b[0]:
                        raise Failure("%s: %s (pid %d) ended during the measure" % (name, label, pid))
                    rate = (idle or {}).get(str(pid), 0.0)
                    procs.append({"label": label, "role": role, "pid": pid, "cpu_s": round(b[1] + b[2] - a[1] - a[2], 3),
                                  "user_s": round(b[1] - a[1], 3), "sys_s": round(b[2] - a[2], 3),
                                  "minflt": b[3] - a[3], "majflt": b[4] - a[4], "hwm_kb": hwm_kb(pid),
                                  "idle_cpu_s": round(rate * wall, 3)})
                for k in self.kids:
                    procs.append({x: (round(v, 3) if isinstance(v, float) else v) for x, v in k.items()})
                script = (me1[0] + me1[1]) - (self.me0[0] + self.me0[1])
                procs.append({"label": "this script", "role": "script", "cpu_s": round(script, 3),
                              "user_s": round(me1[0] - self.me0[0], 3), "sys_s": round(me1[1] - self.me0[1], 3)})
                listed = {pid for _, pid, _ in daemons}
                unlisted = 0.0
                for pid in meter.ours - listed - {os.getpid()}:
                    a, b = self.a0.get(pid), a1.get(pid)
                    if a and b and a[0] == b[0]:
                        unlisted += b[1] + b[2] - a[1] - a[2]
                others, kernel, top = others_between(self.a0, a1, meter.ours)
                busy = c1[0] - self.c0[0]
                total = sum(p["cpu_s"] for p in procs)
                rec = {"name": name, "bytes": nbytes, "wall_s": round(wall, 3), "mb_s": round(nbytes / 1e6 / wall, 2),
                       "procs": procs, "machine_busy_s": round(busy, 3), "irq_s": round(c1[1] - self.c0[1], 3),
                       "steal_s": round(c1[2] - self.c0[2], 3), "kernel_threads_cpu_s": round(kernel, 3),
                       "others_cpu_s": round(others, 3), "others_top": top, "ours_unlisted_cpu_s": round(unlisted, 3),
                       "rest_s": round(busy - total - others - kernel - unlisted, 3),
                       "load": [round(self.load0, 2), round(os.getloadavg()[0], 2)], "waited_s": self.waited,
                       "busy": others / wall > BUSY if wall else False}
                rec.update(meta)
                meter.seen[name] = rec
                say("  %s: %.1f s, %.0f MB/s%s" % (name, wall, rec["mb_s"], " (busy: others %.2f cores)" % (others / wall) if rec["busy"] else ""))
                return False
        return M()


def read_into(m, label, cmd, env, sink, path, size, want):
    """One timed read of cmd's stdout into sink (sha256sum, file, devnull);
    the file is checked after (outside the caller's measure)."""
    if sink == "sha256sum":
        got = m.pipe_sha(label, cmd, env)
        if got != want:
            raise Failure("%s | sha256sum: %s, the file's sha256 is %s" % (" ".join(cmd), got, want))
    elif sink == "file":
        with open(path, "wb") as f:
            m.cli(label, "cli", cmd, env, stdout=f)
    else:
        with open(os.devnull, "wb") as f:
            m.cli(label, "cli", cmd, env, stdout=f)


def check_file(path, size, want, what):
    n = os.path.getsize(path)
    got = file_sha256(path)
    os.remove(path)
    if n != size or got != want:
        raise Failure("%s > FILE: %d bytes, sha256 %s; the file has %d bytes, sha256 %s" % (what, n, got, size, want))


def fresh_dir(ctx, name):
    """WORK/name, or WORK/name-2, -3 ... when a part runs again."""
    path, n = os.path.join(ctx.work, name), 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(ctx.work, "%s-%d" % (name, n))
    return path


def tree_bytes(path):
    """Allocated bytes (st_blocks) of every file under path."""
    n = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                n += os.lstat(os.path.join(d, f)).st_blocks * 512
            except OSError:
                pass
    return n


# ---------------------------------------------------------------- setups

class Testnet:
    """A fungi testnet in DIR, its daemons' pids registered as ours."""

    def __init__(self, ctx, name, n, no_store=()):
        self.ctx, self.bin, self.n, self.no_store = ctx, ctx.fungi, n, tuple(no_store)
        self.dir = fresh_dir(ctx, name)
        self.up_ = False

    def fungi(self, *args, env=None):
        return bc.run([self.bin, *args], env=env)

    def up(self):
        self.up_ = True  # down runs even if up fails half-way
        cmd = ["testnet", "up", "-n", str(self.n), "--dir", self.dir]
        if self.no_store:
            cmd += ["--no-store", ",".join(map(str, self.no_store))]
        self.fungi(*cmd)
        self.ctx.cleanups.append(self.down)
        self.wait_ready()

    def status(self):
        return {n["index"]: n for n in json.loads(self.fungi("testnet", "status", "--dir", self.dir, "--json"))}

    def wait_ready(self):
        """Until every node is alive and names the same leader, which is
        one of them; then reads each node's API address."""
        deadline = time.time() + 90
        while True:
            nodes = self.status()
            leaders = {n.get("leader") for n in nodes.values()}
            lead = [i for i, n in nodes.items() if n.get("role") == "leader"]
            if all(n.get("alive") for n in nodes.values()) and len(leaders) == 1 and len(lead) == 1 \
                    and nodes[lead[0]]["peer_id"] in leaders:
                break
            if time.time() > deadline:
                raise Failure("testnet %s: no agreed leader after 90 s: %s" % (self.dir, {
                    i: (n.get("alive"), n.get("role")) for i, n in nodes.items()}))
            time.sleep(0.3)
        for n in nodes.values():
            self.ctx.meter.ours.add(n["pid"])
        self.nodes, self.leader = nodes, lead[0]
        for i, n in nodes.items():
            try:
                get_json("http://%s/api/v0/id" % n["api"])
            except OSError as e:
                raise Failure("testnet node %d: API %s does not answer: %s" % (i, n["api"], e))

    def restart(self):
        """`fungi testnet stop` then `start` of every node (data kept), so
        every daemon is a fresh process; waits until they agree on a leader
        and every node's scrubber has finished the pass it begins at start
        (it re-reads and verifies all the node's fragments, at
        repair.scrub_rate, default 16 MB/s), then 3 s more. Returns that
        pass's figures: seconds from ready, bytes verified and the daemons'
        CPU meanwhile (all nodes)."""
        idx = [str(i) for i in sorted(self.nodes)]
        self.fungi("testnet", "stop", "--dir", self.dir, *idx)
        self.fungi("testnet", "start", "--dir", self.dir, *idx)
        self.wait_ready()
        t0, c0 = time.time(), {n["pid"]: pstat(n["pid"]) for n in self.nodes.values()}
        while True:
            sc = [get_json("http://%s/api/v0/repo/stat" % n["api"]).get("scrub") or {}
                  for i, n in self.nodes.items() if i not in self.no_store]
            if all(x.get("passes", 1) >= 1 and not x.get("running") for x in sc):
                break
            if time.time() - t0 > 600:
                raise Failure("testnet %s: the scrubbers' first pass after start did not end in 600 s" % self.dir)
            time.sleep(0.5)
        cpu_ = sum(b[1] + b[2] - a[1] - a[2] for a, b in ((c0[p], pstat(p)) for p in c0) if a and b)
        time.sleep(3)
        return {"seconds": round(time.time() - 3 - t0, 1), "bytes": sum(x.get("bytes_verified", 0) for x in sc),
                "cpu_s": round(cpu_, 2)}

    def reader(self):
        """The highest-index node that stores and is not the leader."""
        return max(i for i in self.nodes if i != self.leader and i not in self.no_store)

    def env(self, i):
        return dict(os.environ, FUNGI_PATH=self.nodes[i]["path"])

    def daemons(self, entry, entry_role):
        """[(label, pid, role)]: entry first, then the other nodes."""
        lab = lambda i: "node %d%s" % (i, " (leader)" if i == self.leader else "")
        return [(lab(entry), self.nodes[entry]["pid"], entry_role)] + [
            (lab(i), self.nodes[i]["pid"], "peer") for i in sorted(self.nodes) if i != entry]

    def repo_stat(self):
        tot = {"fragments": 0, "fragment_bytes": 0, "data_bytes": 0}
        for n in self.nodes.values():
            st = get_json("http://%s/api/v0/repo/stat" % n["api"])
            for k in tot:
                tot[k] += st[k]
        tot["raft_bytes"] = sum(tree_bytes(os.path.join(n["path"], "raft")) for n in self.nodes.values())
        return tot

    def down(self):
        if self.up_:
            subprocess.run([self.bin, "testnet", "down", "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.up_ = False


class Kubo:
    """Kubo daemons on loopback (`--profile test`, no bootstrap, Routing
    none: no DHT; blocks move by bitswap between connected peers only)."""

    def __init__(self, ctx, names):
        self.ctx, self.bin, self.names = ctx, ctx.ipfs, names
        self.procs, self.api, self.gateway, self.swarm = {}, {}, {}, {}
        self.repos = {n: fresh_dir(ctx, "kubo-" + n) for n in names}

    def env(self, name):
        return dict(os.environ, IPFS_PATH=self.repos[name], IPFS_TELEMETRY="off")

    def ipfs(self, name, *args):
        return bc.run([self.bin, *args], env=self.env(name))

    def setup(self):
        self.ctx.cleanups.append(self.stop_all)
        for name in self.names:
            sw, api, gw = free_ports(3)
            self.ipfs(name, "init", "--profile", "test", "--empty-repo")
            cfg = {"Addresses.Swarm": ["/ip4/127.0.0.1/tcp/%d" % sw], "Addresses.API": "/ip4/127.0.0.1/tcp/%d" % api,
                   "Addresses.Gateway": "/ip4/127.0.0.1/tcp/%d" % gw, "Routing.Type": "none"}
            for k, v in cfg.items():
                self.ipfs(name, "config", "--json", k, json.dumps(v))
            self.api[name], self.gateway[name], self.swarm[name] = "127.0.0.1:%d" % api, "127.0.0.1:%d" % gw, sw
        for name in self.names:
            self.start(name)
        self.connect()

    def start(self, name):
        log = open(self.repos[name] + ".log", "ab")
        p = subprocess.Popen([self.bin, "daemon"], env=self.env(name), stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.procs[name] = p
        self.ctx.meter.ours.add(p.pid)
        deadline = time.time() + 60
        while True:
            if p.poll() is not None:
                raise Failure("ipfs daemon %s exited %d (see %s)" % (name.upper(), p.returncode, log.name))
            try:
                get_json("http://%s/api/v0/id" % self.api[name], "POST")
                socket.create_connection(self.gateway[name].split(":"), timeout=1).close()
                return
            except OSError:
                pass
            if time.time() > deadline:
                raise Failure("ipfs daemon %s not ready after 60 s" % name.upper())
            time.sleep(0.1)

    def connect(self):
        if "a" in self.names and "b" in self.names:
            a_id = json.loads(self.ipfs("a", "id"))["ID"]
            self.ipfs("b", "swarm", "connect", "/ip4/127.0.0.1/tcp/%d/p2p/%s" % (self.swarm["a"], a_id))

    def stop(self, name):
        p = self.procs.pop(name, None)
        if p and p.poll() is None:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def restart(self):
        for name in reversed(self.names):
            self.stop(name)
        for name in self.names:
            self.start(name)
        self.connect()
        time.sleep(3)

    def stop_all(self):
        for name in list(self.procs):
            self.stop(name)

    def repo_size(self, name):
        return json.loads(self.ipfs(name, "repo", "stat", "--size-only", "--enc", "json"))["RepoSize"]

    def daemons(self, entry, entry_role):
        return [(entry.upper(), self.procs[entry].pid, entry_role)] + [
            (n.upper(), self.procs[n].pid, "peer") for n in self.names if n != entry]


class SingleFungi:
    """`fungi init` in a fresh FUNGI_PATH, then `fungi daemon` (make run)."""

    def __init__(self, ctx):
        self.ctx, self.path, self.proc = ctx, fresh_dir(ctx, "single"), None

    def start(self):
        env = self.env()
        # make run's defaults, but loopback and free ports: others' daemons
        # may hold 4001, 5980 and 8080 on this shared machine
        bc.run([self.ctx.fungi, "init", "--listen", "/ip4/127.0.0.1/tcp/0", "--gateway", "127.0.0.1:0"], env=env)
        log = open(self.path + ".log", "wb")
        self.ctx.cleanups.append(self.stop)
        self.proc = subprocess.Popen([self.ctx.fungi, "daemon", "--api", "127.0.0.1:0"], env=env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.ctx.meter.ours.add(self.proc.pid)
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise Failure("fungi daemon exited %d (see %s)" % (self.proc.returncode, log.name))
            try:
                with open(os.path.join(self.path, "api")) as f:
                    api = f.read().strip()
                st = json.loads(bc.run([self.ctx.fungi, "cluster", "status", "--json"], env=env))
                if api and st.get("leader"):
                    self.api = api
                    return
            except (OSError, Failure, ValueError):
                pass
            if time.time() > deadline:
                raise Failure("fungi daemon (single node) not ready after 60 s")
            time.sleep(0.2)

    def env(self):
        return dict(os.environ, FUNGI_PATH=self.path)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------- web assets

def make_assets(root, files):
    """files random files of 1-20 KiB (SEED) in directories of 100:
    root/dNN/fNNN.bin. Returns [(relative path, size, sha256)]."""
    rng = random.Random(SEED)
    out = []
    for i in range(files):
        d = os.path.join(root, "d%02d" % (i // 100))
        os.makedirs(d, exist_ok=True)
        rel = "d%02d/f%03d.bin" % (i // 100, i % 100)
        data = rng.randbytes(rng.randint(1024, 20 * 1024))
        with open(os.path.join(root, rel), "wb") as f:
            f.write(data)
        out.append((rel, len(data), hashlib.sha256(data).hexdigest()))
    return out


def fetch_all(addr, root, assets):
    """GET /ipfs/ROOT/REL of every asset over one keep-alive connection
    (http.client reopens it only if the server closes it); checks every
    body. Returns (per-file ms, connections opened)."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    ms, opened, sock = [], 0, None
    for rel, size, sha in assets:
        t0 = time.perf_counter()
        conn.request("GET", "/ipfs/%s/%s" % (root, rel))
        if conn.sock is not sock:
            opened, sock = opened + 1, conn.sock
        r = conn.getresponse()
        body = r.read()
        ms.append((time.perf_counter() - t0) * 1000)
        if r.status != 200 or len(body) != size or hashlib.sha256(body).hexdigest() != sha:
            raise Failure("GET http://%s/ipfs/%s/%s: %d, %d bytes (want 200, %d bytes, sha256 %s)"
                          % (addr, root, rel, r.status, len(body), size, sha))
    conn.close()
    return ms, opened


def cat_ms(addr, cid, method, want):
    """One cold object through /api/v0/cat on a fresh connection: ms from
    sending the request to the last byte."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.connect()
        t0 = time.perf_counter()
        conn.request(method, "/api/v0/cat?arg=" + cid)
        r = conn.getresponse()
        body = r.read()
        took = (time.perf_counter() - t0) * 1000
        if r.status != 200 or hashlib.sha256(body).hexdigest() != want:
            raise Failure("%s http://%s/api/v0/cat?arg=%s: %d, %d bytes, other bytes than added" % (method, addr, cid, r.status, len(body)))
        return took
    finally:
        conn.close()


def tiny_objects(work, n=50):
    """n files of 6 bytes and n of 1 KiB, fresh random bytes each:
    {"6 bytes": [(path, sha256)], "1 KiB": [...]} (1 KiB last)."""
    out = {}
    for name, size in (("6 bytes", 6), ("1 KiB", 1024)):
        out[name] = []
        for i in range(n):
            data = os.urandom(size)
            p = os.path.join(work, "tiny-%d-%02d" % (size, i))
            with open(p, "wb") as f:
                f.write(data)
            out[name].append((p, hashlib.sha256(data).hexdigest()))
    return out


# ---------------------------------------------------------------- parts

class Ctx:
    pass


def cli_name(cmd):
    """'fungi cat' / 'ipfs cat' for a command line."""
    return ("ipfs " if os.path.basename(cmd[0]).startswith("ipfs") else "fungi ") + cmd[1]


def publish(ctx, name, daemons, cmd, env, idle, **meta):
    with ctx.meter.measure(name, ctx.size, daemons, idle=idle, **meta) as m:
        cid = m.cli(meta.get("cli_label", "CLI"), "cli", cmd, env).decode().strip().split()[-1]
    return cid


def reads(ctx, prefix, sinks, restart, reader_of, cmd_of, env_of, daemons_of, labels, count):
    """For each sink: restart (fresh daemons), then count reads (a dict
    sink -> count, or one count for all)."""
    out = {}
    for sink in sinks:
        who = restart(sink)
        idle = ctx.meter.idle(daemons_of(who))
        for k in range(1, (count.get(sink) if isinstance(count, dict) else count) + 1):
            name = "%s read %s %d" % (prefix, sink, k)
            say("%s: %s (%s)" % (name, labels[k], reader_of(who)))
            path = os.path.join(ctx.work, "out.bin")
            with ctx.meter.measure(name, ctx.size, daemons_of(who), idle=idle, sink=sink, nth=k,
                                   reader=reader_of(who), when=labels[k]) as m:
                read_into(m, cli_name(cmd_of(who)), cmd_of(who), env_of(who), sink, path, ctx.size, ctx.sha)
            if sink == "file":
                check_file(path, ctx.size, ctx.sha, " ".join(cmd_of(who)))
            out[name] = True
    return out


def part_fungi5(ctx, out):
    """The newcomer's 5-node testnet: publish and reads (newcomer), and the
    fungi half of the web assets (assets)."""
    tn = Testnet(ctx, "tn5", 5)
    say("newcomer: fungi testnet up -n 5")
    tn.up()
    setup = out.setdefault("setups", {})["newcomer"] = {"cli_node": 1, "leader_at_start": tn.leader, "readers": {}}
    if "newcomer" in ctx.parts:
        if tn.leader != 1:
            say("newcomer: node %d is the leader, not node 1; the CLI still talks to node 1" % tn.leader)
        idle = ctx.meter.idle(tn.daemons(1, "entry"))
        say("newcomer publish: fungi add -q on node 1 (leader: node %d)" % tn.leader)
        s0 = tn.repo_stat()
        cid = publish(ctx, "newcomer publish", tn.daemons(1, "entry"), [ctx.fungi, "add", "-q", ctx.content], tn.env(1), idle,
                      cli_label="fungi add", leader=tn.leader, cli_node=1)
        s1 = tn.repo_stat()
        setup["cid"] = cid
        setup["stored"] = {k: s1[k] - s0[k] for k in s1}

        def restart(sink):
            say("newcomer: fungi testnet stop and start (fresh daemons) before the reads into %s" % sink)
            scrub = tn.restart()
            r = tn.reader()
            setup["readers"][sink] = {"reader": r, "leader": tn.leader, "scrub_after_start": scrub}
            return r
        reads(ctx, "newcomer", ("sha256sum", "file"), restart, lambda r: "node %d" % r,
              lambda r: [ctx.fungi, "cat", cid], tn.env, lambda r: tn.daemons(r, "entry"),
              {1: "first read after start", 2: "2nd read", 3: "3rd read"}, 3)
    if "assets" in ctx.parts:
        assets_fungi(ctx, out, tn)
    say("newcomer: fungi testnet down")
    tn.down()


def part_tuned(ctx, out):
    tn = Testnet(ctx, "tn6", 6, no_store=(6,))
    say("tuned: fungi testnet up -n 6 --no-store 6")
    tn.up()
    setup = out.setdefault("setups", {})["tuned"] = {"leader_at_start": tn.leader}
    idle = ctx.meter.idle(tn.daemons(1, "entry"))
    say("tuned publish: fungi add -q on node 1")
    cid = publish(ctx, "tuned publish", tn.daemons(1, "entry"), [ctx.fungi, "add", "-q", ctx.content], tn.env(1), idle,
                  cli_label="fungi add", leader=tn.leader, cli_node=1)

    def restart(sink):
        say("tuned: fungi testnet stop and start (fresh daemons)")
        setup["scrub_after_start"] = tn.restart()
        setup["leader_at_read"] = tn.leader
        return 6
    reads(ctx, "tuned", ("devnull",), restart, lambda r: "node 6 (stores nothing)",
          lambda r: [ctx.fungi, "cat", cid], tn.env, lambda r: tn.daemons(6, "entry"),
          {1: "first read after start", 2: "2nd read"}, 2)
    say("tuned: fungi testnet down")
    tn.down()


def part_kubo(ctx, out):
    k = Kubo(ctx, ["a", "b"])
    say("kubo: daemons A and B (profile test, routing none), B connected to A")
    k.setup()
    setup = out.setdefault("setups", {})["kubo"] = {}
    if "kubo" in ctx.parts:
        idle = ctx.meter.idle(k.daemons("a", "entry"))
        say("kubo publish: ipfs add on A")
        cid = publish(ctx, "kubo publish", k.daemons("a", "entry"), [ctx.ipfs, *KUBO_ADD, ctx.content], k.env("a"), idle,
                      cli_label="ipfs add")
        setup["cid"] = cid

        def restart(sink):
            if sink != "sha256sum":
                say("kubo: ipfs repo gc on B (so that its first read is cold again)")
                k.ipfs("b", "repo", "gc", "--quiet")
                if k.repo_size("b") > ctx.size // 2:
                    raise Failure("ipfs repo gc on B left %d bytes: B still holds the file" % k.repo_size("b"))
            say("kubo: both daemons restarted (fresh processes) before the reads into %s" % sink)
            k.restart()
            return "b"
        cmd = lambda r: [ctx.ipfs, "cat", cid]
        labels = {1: "first read after start (cold, over bitswap)", 2: "2nd read (warm: B holds the blocks)",
                  3: "3rd read (warm: B holds the blocks)"}
        reads(ctx, "kubo", ("sha256sum",), restart, lambda r: "B", cmd, k.env, lambda r: k.daemons("b", "entry"), labels, 3)
        say("kubo: ipfs repo gc on B, then a read over bitswap again in the same process")
        k.ipfs("b", "repo", "gc", "--quiet")
        idle = ctx.meter.idle(k.daemons("b", "entry"))
        with ctx.meter.measure("kubo read sha256sum gc", ctx.size, k.daemons("b", "entry"), idle=idle, sink="sha256sum",
                               nth=4, reader="B", when="later read over bitswap (repo gc first, same process)") as m:
            read_into(m, "ipfs cat", cmd("b"), k.env("b"), "sha256sum", None, ctx.size, ctx.sha)
        reads(ctx, "kubo", ("file", "devnull"), restart, lambda r: "B", cmd, k.env, lambda r: k.daemons("b", "entry"),
              labels, {"file": 3, "devnull": 2})
    if "assets" in ctx.parts:
        assets_kubo(ctx, out, k)
    say("kubo: daemons stopped")
    k.stop_all()


def part_single(ctx, out):
    f = SingleFungi(ctx)
    say("single: fungi init, fungi daemon")
    f.start()
    dm = [("fungi daemon", f.proc.pid, "entry")]
    idle = ctx.meter.idle(dm)
    say("single: fungi add -q")
    cid = publish(ctx, "single fungi add", dm, [ctx.fungi, "add", "-q", ctx.content], f.env(), idle, cli_label="fungi add")
    for sink in ("sha256sum", "file"):
        say("single: fungi cat into %s" % sink)
        path = os.path.join(ctx.work, "out.bin")
        with ctx.meter.measure("single fungi cat " + sink, ctx.size, dm, idle=idle, sink=sink) as m:
            read_into(m, "fungi cat", [ctx.fungi, "cat", cid], f.env(), sink, path, ctx.size, ctx.sha)
        if sink == "file":
            check_file(path, ctx.size, ctx.sha, "fungi cat")
    f.stop()
    k = Kubo(ctx, ["s"])
    say("single: one Kubo daemon (profile test, routing none)")
    k.setup()
    dm = k.daemons("s", "entry")
    idle = ctx.meter.idle(dm)
    say("single: ipfs add")
    kcid = publish(ctx, "single kubo add", dm, [ctx.ipfs, *KUBO_ADD, ctx.content], k.env("s"), idle, cli_label="ipfs add")
    for sink in ("sha256sum", "file"):
        say("single: ipfs cat into %s" % sink)
        path = os.path.join(ctx.work, "out.bin")
        with ctx.meter.measure("single kubo cat " + sink, ctx.size, dm, idle=idle, sink=sink) as m:
            read_into(m, "ipfs cat", [ctx.ipfs, "cat", kcid], k.env("s"), sink, path, ctx.size, ctx.sha)
        if sink == "file":
            check_file(path, ctx.size, ctx.sha, "ipfs cat")
    k.stop_all()
    out.setdefault("setups", {})["single"] = {"fungi_cid": cid, "kubo_cid": kcid}


def assets_fungi(ctx, out, tn):
    a = out.setdefault("assets", {"files": len(ctx.assets), "content_bytes": sum(s for _, s, _ in ctx.assets)})
    dm = tn.daemons(1, "entry")
    idle = ctx.meter.idle(dm)
    say("assets: fungi add -r -Q of %d files on node 1" % len(ctx.assets))
    s0 = tn.repo_stat()
    with ctx.meter.measure("assets fungi add", a["content_bytes"], dm, idle=idle, files=len(ctx.assets)) as m:
        root = m.cli("fungi add", "cli", [ctx.fungi, "add", "-r", "-Q", ctx.assets_dir], tn.env(1)).decode().strip()
    time.sleep(1)
    s1 = tn.repo_stat()
    r = tn.reader()
    gw = tn.nodes[r]["gateway"]
    dm = tn.daemons(r, "entry")
    idle = ctx.meter.idle(dm)
    say("assets: GET /ipfs/ROOT/PATH of every file from node %d's gateway, one keep-alive connection" % r)
    with ctx.meter.measure("assets fungi read", a["content_bytes"], dm, idle=idle, files=len(ctx.assets), reader="node %d" % r) as m:
        ms, opened = fetch_all(gw, root, ctx.assets)
    a["fungi"] = {"root": root, "reader": r, "stored": {k: s1[k] - s0[k] for k in s1},
                  "read_p50_ms": round(percentile(ms, 50), 3), "read_p99_ms": round(percentile(ms, 99), 3),
                  "connections": opened}
    # tiny objects: 50 of 6 bytes, then 50 of 1 KiB, each added alone
    tiny = {}
    for name, objs in tiny_objects(ctx.work).items():
        s0 = tn.repo_stat()
        cids = [bc.run([ctx.fungi, "add", "-q", p], env=tn.env(1)).strip() for p, _ in objs]
        time.sleep(0.5)
        s1 = tn.repo_stat()
        tiny[name] = {k: (s1[k] - s0[k]) / len(objs) for k in s1}
        tiny[name]["objects"] = len(objs)
    a["fungi"]["tiny"] = tiny
    say("assets: each of the 1 KiB objects read once on node %d's /api/v0/cat" % r)
    lat = [cat_ms(tn.nodes[r]["api"], c, "GET", sha) for c, (_, sha) in zip(cids, objs)]
    a["fungi"]["kib_ms"] = [round(x, 3) for x in lat]


def assets_kubo(ctx, out, k):
    a = out.setdefault("assets", {"files": len(ctx.assets), "content_bytes": sum(s for _, s, _ in ctx.assets)})
    dm = k.daemons("a", "entry")
    idle = ctx.meter.idle(dm)
    say("assets: ipfs add -r of %d files on A" % len(ctx.assets))
    s0 = k.repo_size("a")
    with ctx.meter.measure("assets kubo add", a["content_bytes"], dm, idle=idle, files=len(ctx.assets)) as m:
        root = m.cli("ipfs add", "cli", [ctx.ipfs, *KUBO_ADD, "-r", ctx.assets_dir], k.env("a")).decode().strip()
    s1 = k.repo_size("a")
    dm = k.daemons("b", "entry")
    idle = ctx.meter.idle(dm)
    say("assets: GET /ipfs/ROOT/PATH of every file from B's gateway (over bitswap), one keep-alive connection")
    with ctx.meter.measure("assets kubo read", a["content_bytes"], dm, idle=idle, files=len(ctx.assets), reader="B") as m:
        ms, opened = fetch_all(k.gateway["b"], root, ctx.assets)
    a["kubo"] = {"root": root, "a_repo_growth": s1 - s0, "read_p50_ms": round(percentile(ms, 50), 3),
                 "read_p99_ms": round(percentile(ms, 99), 3), "connections": opened}
    tiny = {}
    for name, objs in tiny_objects(ctx.work).items():
        s0 = k.repo_size("a")
        cids = [k.ipfs("a", *KUBO_ADD, p).strip() for p, _ in objs]
        tiny[name] = {"a_repo_growth": (k.repo_size("a") - s0) / len(objs), "objects": len(objs)}
    a["kubo"]["tiny"] = tiny
    say("assets: each of the 1 KiB objects read once on B's /api/v0/cat")
    lat = [cat_ms(k.api["b"], c, "POST", sha) for c, (_, sha) in zip(cids, objs)]
    a["kubo"]["kib_ms"] = [round(x, 3) for x in lat]


def bench(args, work):
    global quiet
    ctx = Ctx()
    ctx.work, ctx.parts, ctx.size, ctx.cleanups = work, args.parts, args.size, []
    os.makedirs(os.path.join(work, "logs"), exist_ok=True)
    ctx.meter = Meter(work, args.quiet_wait)
    ctx.fungi = os.path.abspath(args.fungi) if args.fungi else build_fungi(work)
    ctx.ipfs = os.path.abspath(args.ipfs) if args.ipfs else build_kubo()
    out = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "machine": machine(),
           "versions": {"fungi": bc.run([ctx.fungi, "version"]).strip(),
                        "ipfs": bc.run([ctx.ipfs, "version"], env=dict(os.environ, IPFS_TELEMETRY="off")).strip()},
           "size": args.size, "parts": list(args.parts), "load": {"start": os.getloadavg()}}
    try:
        if set(args.parts) & {"newcomer", "tuned", "kubo", "single"}:
            ctx.content = os.path.join(work, "content")
            say("writing %s of random data" % human(args.size))
            write_random(ctx.content, args.size)
            ctx.sha = file_sha256(ctx.content)
        if "assets" in args.parts:
            ctx.assets_dir = os.path.join(work, "assets")
            say("assets: writing %d files of 1-20 KiB (seed %d)" % (args.files, SEED))
            ctx.assets = make_assets(ctx.assets_dir, args.files)
        waits, out["retried"] = out["part_waits_s"] = {}, []
        for part, want in ((part_fungi5, {"newcomer", "assets"}), (part_tuned, {"tuned"}),
                           (part_kubo, {"kubo", "assets"}), (part_single, {"single"})):
            if not set(args.parts) & want:
                continue
            name = part.__name__.removeprefix("part_")
            for attempt in range(args.retries + 1):
                say("%s: waiting (up to %d s) for a quiet machine first" % (name, args.quiet_wait_part))
                waits[name] = ctx.meter.quiet(args.quiet_wait_part)
                had = set(ctx.meter.seen)
                part(ctx, out)
                new = [k for k in ctx.meter.seen if k not in had]
                busy = [k for k in new if ctx.meter.seen[k]["busy"]]
                if not busy or attempt == args.retries:
                    break
                # others took over a quarter core in some measure: the
                # whole part again (a first read needs a fresh start)
                say("%s: busy machine during %s: running the part again" % (name, ", ".join(busy)))
                out["retried"].append({"part": name, "busy": busy})
                for k in new:
                    del ctx.meter.seen[k]
        out["load"]["end"] = os.getloadavg()
        out["measures"] = ctx.meter.seen
        return out
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        ctx.meter.kill_live()
        if ctx.cleanups:
            say("cleaning up (testnets down, daemons stopped)")
        for f in reversed(ctx.cleanups):
            try:
                f()
            except Exception as e:  # keep cleaning
                print("bench_cost: cleanup: %s" % e, file=sys.stderr)


# ---------------------------------------------------------------- render

def per_gib(x, nbytes):
    return x / (nbytes / GiB)


def roles(rec, role):
    return [p for p in rec["procs"] if p["role"] == role]


def cpu(rec, role):
    return sum(p["cpu_s"] for p in roles(rec, role))


def fmt_cost(rec, role, each=False):
    ps = roles(rec, role)
    if not ps:
        return "-"
    tot = per_gib(sum(p["cpu_s"] for p in ps), rec["bytes"])
    if each and len(ps) > 1:
        return "%.2f (%s)" % (tot, ", ".join("%.2f" % per_gib(p["cpu_s"], rec["bytes"]) for p in ps))
    return "%.2f" % tot


def fmt_flt(rec, role):
    ps = roles(rec, role)
    if not ps:
        return "-"
    return "%.0fk" % (per_gib(sum(p["minflt"] for p in ps), rec["bytes"]) / 1000)


def machine_cells(rec):
    g = rec["bytes"]
    listed = sum(p["cpu_s"] for p in rec["procs"])
    share = rec["others_cpu_s"] / rec["wall_s"] if rec["wall_s"] else 0
    idle = sum(p.get("idle_cpu_s", 0) for p in rec["procs"])
    sys_ = sum(p.get("sys_s", 0) for p in rec["procs"])
    return ["%.2f (%.0f%%)" % (per_gib(listed, g), 100 * sys_ / listed if listed else 0), "%.2f" % per_gib(idle, g), "%.2f" % per_gib(rec["machine_busy_s"], g),
            "%.2f" % per_gib(rec["rest_s"] + rec["kernel_threads_cpu_s"], g),
            "%.2f%s, load %.1f" % (share, " **busy**" if rec["busy"] else "", max(rec["load"]))]


def m(d, name):
    return d.get("measures", {}).get(name)


PUBLISH_ROWS = (("newcomer publish", "FungiStor, newcomer: `fungi add` on node 1 of `testnet up -n 5`"),
                ("tuned publish", "FungiStor, tuned setup: `fungi add` on node 1 of `testnet up -n 6 --no-store 6`"),
                ("kubo publish", "Kubo: `ipfs add` on A (B idle beside)"),
                ("single fungi add", "single node: `fungi add`"),
                ("single kubo add", "single node: `ipfs add`"))


def read_rows(d):
    rows = []
    for sink, what in (("sha256sum", "piped into sha256sum"), ("file", "into a file"), ("devnull", "to /dev/null")):
        for side, lab in (("newcomer", "FungiStor, newcomer (5 nodes, reader stores)"), ("tuned", "FungiStor, **tuned** (no-store reader)"),
                          ("kubo", "Kubo (B reads, A holds)")):
            for k in ("1", "2", "3", "gc"):
                name = "%s read %s %s" % (side, sink, k)
                r = m(d, name)
                if r:
                    rows.append((name, "%s, %s: %s (%s)" % (lab, what, r.get("when", ""), r.get("reader", ""))))
    for name, lab in (("single fungi cat sha256sum", "single node: `fungi cat \\| sha256sum`"),
                      ("single fungi cat file", "single node: `fungi cat > FILE`"),
                      ("single kubo cat sha256sum", "single node: `ipfs cat \\| sha256sum`"),
                      ("single kubo cat file", "single node: `ipfs cat > FILE`")):
        if m(d, name):
            rows.append((name, lab))
    return rows


def ratio(a, b):
    return a / b if a and b else None


def idle_of(rec, role):
    return sum(p.get("idle_cpu_s", 0) for p in roles(rec, role))


def targets(d):
    """[(target, figure, met)] from the run's own numbers; verdicts on the
    processes' whole CPU, their idle rate's share (background work: audits,
    heartbeats) shown beside."""
    out = []

    def g(name, role):
        r = m(d, name)
        return (per_gib(cpu(r, role), r["bytes"]), per_gib(cpu(r, role) - idle_of(r, role), r["bytes"])) if r else None

    def show(xs):
        return " / ".join("%.2f" % x[0] for x in xs) + " (less idle: %s)" % " / ".join("%.2f" % x[1] for x in xs)
    fl = lambda xs: [x for x in xs if x is not None]
    firsts = fl([g("newcomer read sha256sum 1", "entry"), g("newcomer read file 1", "entry")])
    laters = fl([g("newcomer read %s %d" % (s, k), "entry") for s in ("sha256sum", "file") for k in (2, 3)])
    if firsts:
        out.append(("reader <= 2.5 core-s/GiB, first read after start (newcomer: piped / into a file)",
                    show(firsts), max(x[0] for x in firsts) <= 2.5))
    if laters:
        w = max(laters)
        out.append(("reader <= 2.5 core-s/GiB, later reads (newcomer, 2nd and 3rd, both sinks; worst)", show([w]), w[0] <= 2.5))
    hf = fl([g("newcomer read %s 1" % s, "peer") for s in ("sha256sum", "file")])
    hl = fl([g("newcomer read %s %d" % (s, k), "peer") for s in ("sha256sum", "file") for k in (2, 3)])
    if hf or hl:
        out.append(("holders together <= 2.0 core-s/GiB served (newcomer reads: first piped / into a file / later, worst)",
                    show(hf + ([max(hl)] if hl else [])), max(x[0] for x in hf + hl) <= 2.0))
    f1, k1 = m(d, "newcomer read sha256sum 1"), m(d, "kubo read sha256sum 1")
    if f1 and k1:
        r = f1["mb_s"] / k1["mb_s"]
        out.append(("newcomer's read (first after start, piped into sha256sum) >= 2x Kubo's (first, cold over bitswap, piped)",
                    "%.0f vs %.0f MB/s: %.2fx" % (f1["mb_s"], k1["mb_s"], r), r >= 2))
    later = fl([m(d, "newcomer read sha256sum %d" % k) for k in (2, 3)])
    if f1 and later:
        r = f1["mb_s"] / (sum(x["mb_s"] for x in later) / len(later))
        out.append(("first read as fast as later ones (issue title; met here at >= 0.95x; piped)",
                    "%.0f vs %.0f MB/s: %.2fx" % (f1["mb_s"], sum(x["mb_s"] for x in later) / len(later), r), r >= 0.95))
    p = m(d, "newcomer publish")
    if p:
        lead = g("newcomer publish", "entry")
        out.append(("leader <= 3 core-s/GiB including the import (newcomer publish)",
                    show([lead]) + "; the CLI beside: %.2f" % per_gib(cpu(p, "cli"), p["bytes"]), lead[0] <= 3))
        h = g("newcomer publish", "peer")
        out.append(("holders <= 1.5 core-s/GiB stored (newcomer publish, the four others together, per GiB of content)",
                    show([h]), h[0] <= 1.5))
    for fname, kname, what in (("single fungi add", "single kubo add", "single node add >= 1.0x Kubo"),
                               ("single fungi cat sha256sum", "single kubo cat sha256sum", "single node cat piped into sha256sum >= 1.0x Kubo"),
                               ("single fungi cat file", "single kubo cat file", "single node cat into a file >= 1.0x Kubo")):
        a, b = m(d, fname), m(d, kname)
        if a and b:
            r = a["mb_s"] / b["mb_s"]
            out.append((what, "%.0f vs %.0f MB/s: %.2fx" % (a["mb_s"], b["mb_s"], r), r >= 1.0))
    a = d.get("assets", {})
    if a.get("fungi"):
        st = a["fungi"]["stored"]
        tot = (st["data_bytes"] + st["raft_bytes"]) / a["content_bytes"]
        out.append(("small-file overhead <= 3x (web assets: ZDB data + raft growth, all nodes, per byte of content)", "%.2fx" % tot, tot <= 3))
        t1 = a["fungi"].get("tiny", {}).get("1 KiB")
        if t1:
            x = (t1["data_bytes"] + t1["raft_bytes"]) / 1024
            out.append(("small-file overhead <= 3x, a 1 KiB object alone (ZDB data + raft growth, all nodes)", "%.2fx" % x, x <= 3))
    return out


def render_run(d):
    lines = []
    mc, v = d["machine"], d["versions"]
    gib = human(d["size"])
    lines += ["- machine: %s, nproc %d, kernel %s; load average %s at the start, %s at the end" % (
        mc["cpu"] or "?", mc["nproc"], mc["kernel"], ", ".join("%.2f" % x for x in d["load"]["start"]),
        ", ".join("%.2f" % x for x in d["load"].get("end", []))),
        "- versions: %s; ipfs %s; parts: %s; file: %s of random data" % (
            v["fungi"], v["ipfs"].removeprefix("ipfs version "), ", ".join(d["parts"]), gib)]
    s = d.get("setups", {})
    if "newcomer" in s and "cid" in s["newcomer"]:
        nc = s["newcomer"]
        rd = nc.get("readers", {})
        lines.append("- newcomer: the CLI talks to node %d (leader at the add: node %d); reader after each restart: %s" % (
            nc["cli_node"], nc["leader_at_start"], "; ".join("%s: node %d (leader node %d)" % (k, x["reader"], x["leader"]) for k, x in rd.items())))
        sc = [x["scrub_after_start"] for x in rd.values() if x.get("scrub_after_start")]
        if sc:
            lines.append("- after each start the reads wait for every node's scrubber to end the pass it begins at start: %s" % "; ".join(
                "%.0f s, %.2f GiB verified on all nodes%s" % (x["seconds"], x["bytes"] / GiB, "" if x["bytes"] else
                                                                " (the pass at start verifies nothing; the next begins repair.scrub_interval, 1 h, later)")
                for x in sc))
    seen = d.get("measures", {})
    busy = [k for k, r in seen.items() if r["busy"]]
    if d.get("retried"):
        lines.append("- parts run again because the machine was busy: %s" % "; ".join(
            "%s (%s)" % (x["part"], ", ".join(x["busy"])) for x in d["retried"]))
    if seen:
        worst = max(seen.values(), key=lambda r: r["others_cpu_s"] / r["wall_s"] if r["wall_s"] else 0)
        lines.append("- the rest of the machine (others' processes) took at most %.2f cores during a measure (%s)%s" % (
            worst["others_cpu_s"] / worst["wall_s"], worst["name"],
            "; **busy** (over %.2f cores): %s" % (BUSY, ", ".join(busy)) if busy else "; no measure busy (over %.2f cores)" % BUSY))

    # throughput side by side
    lines += ["", "Throughput, MB/s (MB = 10^6 bytes), %s:" % gib, "",
              "| measure | FungiStor | Kubo | fungi/kubo |", "|---|---|---|---|"]
    n_head = len(lines)

    def pair(label, fn, kn):
        a, b = m(d, fn), m(d, kn)
        if not a and not b:
            return
        r = ratio(a and a["mb_s"], b and b["mb_s"])
        lines.append("| %s | %s | %s | %s |" % (label, "%.0f" % a["mb_s"] if a else "-", "%.0f" % b["mb_s"] if b else "-",
                                                 "**%.2f**" % r if r else "-"))
    pair("publish: newcomer `fungi add` (5 nodes) vs `ipfs add` on A", "newcomer publish", "kubo publish")
    pair("publish, tuned setup (6 nodes, one no-store) vs `ipfs add` on A", "tuned publish", "kubo publish")
    for sink, what in (("sha256sum", "piped into sha256sum"), ("file", "into a file")):
        pair("**first read after start**, %s (Kubo: cold, over bitswap)" % what, "newcomer read %s 1" % sink, "kubo read %s 1" % sink)
        pair("2nd read, %s (Kubo: warm, B holds the blocks)" % what, "newcomer read %s 2" % sink, "kubo read %s 2" % sink)
        pair("3rd read, %s (Kubo: warm)" % what, "newcomer read %s 3" % sink, "kubo read %s 3" % sink)
        if sink == "sha256sum":
            pair("later read, piped (Kubo: over bitswap again, `ipfs repo gc` first, same process)",
                 "newcomer read sha256sum 3", "kubo read sha256sum gc")
    pair("tuned: first read after start, no-store reader, to /dev/null (Kubo: cold)", "tuned read devnull 1", "kubo read devnull 1")
    pair("tuned: later read, no-store reader, to /dev/null (Kubo: warm)", "tuned read devnull 2", "kubo read devnull 2")
    pair("single node: add", "single fungi add", "single kubo add")
    pair("single node: cat piped into sha256sum", "single fungi cat sha256sum", "single kubo cat sha256sum")
    pair("single node: cat into a file", "single fungi cat file", "single kubo cat file")
    if len(lines) == n_head:
        del lines[n_head - 5:]

    # targets
    t = targets(d)
    if t:
        lines += ["", "Targets of issue 15, from this run's own figures:", "", "| target | figure | |", "|---|---|---|"]
        for what, fig, met in t:
            lines.append("| %s | %s | %s |" % (what, fig, "met" if met else "**MISSED**"))

    # per-process costs
    head = ("| measure | MB/s | %s | %s minflt/GiB | %s (each) | %s minflt/GiB | CLI | sha256sum | all listed (kernel time in it) | "
            "daemons' idle in it | machine busy | rest (kernel) | others (cores), load |")
    sep = "|---|" + "---|" * 12
    pub = [(n, lab) for n, lab in PUBLISH_ROWS if m(d, n)]
    if pub:
        lines += ["", "Publish, core-seconds per GiB of content of every process (minor page faults per GiB for the daemons). "
                  "FungiStor: the node the CLI talks to is the leader; the others are the holders (fungi) or Kubo's B:", "",
                  head % ("node the CLI talks to", "its", "other daemons", "their"), sep]
        for n, lab in pub:
            r = m(d, n)
            lines.append("| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |" % (
                lab, r["mb_s"], fmt_cost(r, "entry"), fmt_flt(r, "entry"), fmt_cost(r, "peer", True), fmt_flt(r, "peer"),
                fmt_cost(r, "cli"), fmt_cost(r, "pipe"), " | ".join(machine_cells(r))))
    rr = read_rows(d)
    if rr:
        lines += ["", "Reads, core-seconds per GiB read of every process; the reader is the daemon `cat` talks to, "
                  "the holders every other daemon (Kubo: A):", "",
                  head % ("reader", "reader", "holders together", "holders'"), sep]
        for n, lab in rr:
            r = m(d, n)
            lines.append("| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |" % (
                lab, r["mb_s"], fmt_cost(r, "entry"), fmt_flt(r, "entry"), fmt_cost(r, "peer", True), fmt_flt(r, "peer"),
                fmt_cost(r, "cli"), fmt_cost(r, "pipe"), " | ".join(machine_cells(r))))

    # web assets
    a = d.get("assets")
    if a and (a.get("fungi") or a.get("kubo")):
        f, k = a.get("fungi", {}), a.get("kubo", {})
        c = a["content_bytes"]
        lines += ["", "Web assets: %d files of 1-20 KiB (%.1f MB in all), 5-node testnet vs Kubo A and B:" % (a["files"], c / 1e6), "",
                  "| measure | FungiStor | Kubo | fungi/kubo |", "|---|---|---|---|"]

        def row(label, fv, kv, fmt="%.0f"):
            r = ratio(fv, kv)
            lines.append("| %s | %s | %s | %s |" % (label, fmt % fv if fv is not None else "-", fmt % kv if kv is not None else "-",
                                                     "%.2f" % r if r else "-"))
        fa, ka, fr, kr = m(d, "assets fungi add"), m(d, "assets kubo add"), m(d, "assets fungi read"), m(d, "assets kubo read")
        fps = lambda r: r and r["files"] / r["wall_s"]
        row("add (`fungi add -r` on node 1 / `ipfs add -r` on A), files/s", fps(fa), fps(ka))
        row("add, s", fa and fa["wall_s"], ka and ka["wall_s"], "%.1f")
        cs = lambda r, role: r and cpu(r, role) / r["files"] * 1000
        row("add, core-ms per file: the node the CLI talks to", cs(fa, "entry"), cs(ka, "entry"), "%.2f")
        row("add, core-ms per file: the other daemons together", cs(fa, "peer"), cs(ka, "peer"), "%.2f")
        row("add, core-ms per file: the CLI", cs(fa, "cli"), cs(ka, "cli"), "%.2f")
        row("read every file (GET /ipfs/ROOT/PATH, one keep-alive connection, bytes checked), files/s", fps(fr), fps(kr))
        row("read, p50 ms per file", f.get("read_p50_ms"), k.get("read_p50_ms"), "%.2f")
        row("read, p99 ms per file", f.get("read_p99_ms"), k.get("read_p99_ms"), "%.2f")
        row("read, core-ms per file: the reader", cs(fr, "entry"), cs(kr, "entry"), "%.2f")
        row("read, core-ms per file: the holders together", cs(fr, "peer"), cs(kr, "peer"), "%.2f")
        row("read, core-ms per file: the client (this script: http.client, sha256)", cs(fr, "script"), cs(kr, "script"), "%.2f")
        st = f.get("stored")
        kg = k.get("a_repo_growth")
        if st:
            lines.append("| stored per byte of content: fragments, all nodes | %.3f | | |" % (st["fragment_bytes"] / c))
            lines.append("| stored per byte of content: ZDB data files, all nodes | %.3f | | |" % (st["data_bytes"] / c))
            lines.append("| stored per byte of content: raft directories' growth, all nodes (replicated metadata; bolt grows in steps) | %.3f | | |" % (st["raft_bytes"] / c))
        if st or kg is not None:
            fv = (st["data_bytes"] + st["raft_bytes"]) / c if st else None
            row("**stored per byte of content** (fungi: ZDB data + raft, all nodes; Kubo: A's RepoSize growth)", fv,
                kg / c if kg is not None else None, "%.3f")
        ft, kt = f.get("tiny", {}), k.get("tiny", {})
        for name, size in (("6 bytes", 6), ("1 KiB", 1024)):
            x, y = ft.get(name), kt.get(name)
            if x or y:
                lines.append("| a %s object, added alone: bytes stored per object, mean of %d (fungi: fragments / ZDB data / raft growth, all nodes; "
                             "Kubo: A's RepoSize growth) | %s | %s | |" % (
                                 name, (x or y).get("objects", 1),
                                 "%.0f / %.0f / %.0f" % (x["fragment_bytes"], x["data_bytes"], x["raft_bytes"]) if x else "-",
                                 "%.0f" % y["a_repo_growth"] if y else "-"))
                row("a %s object: stored per byte of content (fungi: ZDB data + raft)" % name,
                    (x["data_bytes"] + x["raft_bytes"]) / size if x else None, y["a_repo_growth"] / size if y else None, "%.1f")
        fl_, kl = f.get("kib_ms"), k.get("kib_ms")
        if fl_ or kl:
            p = lambda xs, q: percentile(xs, q) if xs else None
            row("1 KiB object, cold, the reader's /api/v0/cat on a fresh connection (fungi GET, Kubo POST), p50 ms to last byte",
                p(fl_, 50), p(kl, 50), "%.2f")
            row("1 KiB object, p99 ms", p(fl_, 99), p(kl, 99), "%.2f")
        if f.get("root") and k.get("root"):
            lines.append("")
            lines.append("Roots: fungi %s, kubo %s (%s); connections opened for the reads: fungi %d, kubo %d." % (
                f["root"], k["root"], "the same CID" if f["root"] == k["root"] else "different CIDs",
                f.get("connections", 0), k.get("connections", 0)))
    return lines


KEY = (("newcomer publish", "entry", "publish (newcomer): leader"), ("newcomer publish", "peer", "publish (newcomer): holders"),
       ("newcomer read sha256sum 1", "entry", "first read piped: reader"), ("newcomer read sha256sum 1", "peer", "first read piped: holders"),
       ("newcomer read sha256sum 3", "entry", "3rd read piped: reader"), ("newcomer read sha256sum 3", "peer", "3rd read piped: holders"),
       ("newcomer read file 1", "entry", "first read into a file: reader"), ("tuned read devnull 1", "entry", "tuned first read: reader"),
       ("tuned read devnull 2", "entry", "tuned later read: reader"),
       ("single fungi add", "entry", "single node add: daemon"), ("single fungi cat sha256sum", "entry", "single node cat: daemon"))


def render(d, before=None):
    lines = []
    if before and before.get("versions", {}).get("fungi") != d.get("versions", {}).get("fungi"):
        lines += ["Before (%s, %s) and after (%s, %s), key figures; the full tables of the after run follow:" % (
            before["versions"]["fungi"], before["date"], d["versions"]["fungi"], d["date"]), "",
            "| figure | before | after | after/before |", "|---|---|---|---|"]
        for name in ("newcomer publish", "newcomer read sha256sum 1", "newcomer read sha256sum 3", "newcomer read file 1",
                     "tuned read devnull 1", "single fungi add", "single fungi cat sha256sum", "kubo read sha256sum 1"):
            a, b = m(before, name), m(d, name)
            if a and b:
                lines.append("| %s, MB/s | %.0f | %.0f | %.2f |" % (name, a["mb_s"], b["mb_s"], b["mb_s"] / a["mb_s"]))
        for name, role, lab in KEY:
            a, b = m(before, name), m(d, name)
            if a and b:
                x, y = per_gib(cpu(a, role), a["bytes"]), per_gib(cpu(b, role), b["bytes"])
                lines.append("| %s, core-s/GiB | %.2f | %.2f | %s |" % (lab, x, y, "%.2f" % (y / x) if x else "-"))
        bt, at = dict((t[0], t) for t in targets(before)), targets(d)
        for what, fig, met in at:
            b = bt.get(what)
            lines.append("| target: %s | %s | %s | %s |" % (what, b[1] if b else "-", fig, "met" if met else "**MISSED**"))
        lines.append("")
    elif before and before == d:
        lines += ["**Before the optimisations of issue 15**: the baseline run, %s (%s), saved as docs/bench/cost-baseline.json." % (
            d["versions"]["fungi"], d["date"]), ""]
    elif before:
        lines += ["(The same fungi version as the saved baseline, %s: no before and after.)" % before["versions"]["fungi"], ""]
    lines += render_run(d)
    return "\n".join(lines)


def main():
    global quiet
    ap = argparse.ArgumentParser(description="Cost per byte: FungiStor vs Kubo, throughput and core-seconds per GiB of every process.")
    ap.add_argument("--size", default="1G", help="size of the file (e.g. 64M, 1G; default 1G)")
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of %s (default all)" % ",".join(PARTS))
    ap.add_argument("--files", type=int, default=10000, help="web assets: number of 1-20 KiB files (default 10000)")
    ap.add_argument("--quiet-wait", type=float, default=120, help="seconds to wait before a measure for a quieter machine (default 120)")
    ap.add_argument("--quiet-wait-part", type=float, default=900,
                    help="seconds to wait before each part for a quiet machine: no test binary running, others under a quarter core (default 900)")
    ap.add_argument("--retries", type=int, default=2,
                    help="times a part runs again when others took over a quarter core during one of its measures (default 2)")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--work", help="working directory (must not exist or be empty; default a new one in $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the working directory (repos, logs)")
    ap.add_argument("--fungi", help="fungi binary to use (default: go build ./cmd/fungi into WORK)")
    ap.add_argument("--ipfs", help="ipfs binary to use (default: scripts/kubo.sh, .tools/ipfs)")
    ap.add_argument("--from-json", metavar="FILE", help="print the tables of a saved --json run (- for stdin) and exit")
    ap.add_argument("--before", metavar="FILE", help="a saved --json run to show beside this one (before and after)")
    args = ap.parse_args()
    quiet = bc.quiet = args.quiet
    before = None
    if args.before:
        with open(args.before) as f:
            before = json.load(f)
    if args.from_json:
        d = json.load(sys.stdin if args.from_json == "-" else open(args.from_json))
        print(render(d, before))
        return 0
    args.size = parse_size(args.size)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    bad = [p for p in args.parts if p not in PARTS]
    if bad or not args.parts:
        ap.error("--parts: unknown %s (choose from %s)" % (", ".join(bad) or "(none)", ",".join(PARTS)))
    if args.size < MiB or args.files < 1:
        ap.error("--size must be at least 1M and --files at least 1")
    def timed_out(*_):
        raise Failure("a measure took over %d s (hung?)" % MEASURE_TIMEOUT)
    signal.signal(signal.SIGALRM, timed_out)
    return bc.drive("bench_cost", ap, args, bench, lambda out: render(out, before))


if __name__ == "__main__":
    sys.exit(main())
