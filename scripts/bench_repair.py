#!/usr/bin/env python3
"""Self-healing (issue 13): repair after node loss, its rate cap, its cost to
foreground reads, the scrubber, and the metadata a node loss costs.

Every part runs on a fresh testnet of --nodes daemons (default 20) at --ec
(default 16/4), started with FUNGI_DEBUG_API=1 and `--set repair.grace=5s`
(--grace) so the wait after a loss is short; everything else is the
daemons' default unless said. Content is random data added on node 1 with
`fungi add -q` (--size, default 1 GiB per object). The killed nodes are
--kill (default 4) raft non-voters, never the leader, each holding
fragments (`/api/v0/repo/stat`), killed at once: the script sends SIGKILL
to their pids itself, then runs `fungi testnet stop --kill` for the
testnet's bookkeeping (that command alone kills one node at a time and
waits for each to be reaped, ~1.9 s apart on this VM, whose init reaps
orphans every ~2 s: the losses would spread over 6 s and be seen as two
events). The leader's repair state is polled every 0.25 s
(`GET /api/v0/repair/status` on the leader: the "repair" object of `fungi
cluster status --json`).

  restore   (--set repair.rate=0: no cap) one object; kill; time until the
            repair is done: no pending epoch, no backlog, no stranded
            fragment, no member lost and not replaced, no object at risk or
            lost. (a) from the kill, (b) from the first repair epoch (the
            leader's "repair: members replaced" log line); throughput = the
            leader's done.fetched delta (content bytes decoded) / (b). When
            (if ever) objects.full reaches the total is reported apart: with
            N fragments per block and fewer than N live members, some member
            must hold two fragments of a block, which the health model counts
            as degraded. Then `fungi check --all --json` on a live node.
  metadata  the same run: the leader's raft snapshot (POST
            /api/v0/debug/snapshot; the size of state.bin, and of each of its
            sections, parsed as consensus/snapshot.go writes them) before the
            kill and after the repair, and metadata.ops of `cluster status`
            before and after.
  cap       a fresh testnet with --set repair.rate=CAP (--cap, default 40MB);
            the same kill; achieved = (done.bytes + done.fetched delta on the
            leader: what its limiter charges) / (b), and over the span in
            which the counters moved.
  read      (no cap; grace --read-grace, default 60s, so there is room for a
            read between the kill and the repair) --read-fill objects
            (default 2, so that the repair outlasts the read), then another;
            `fungi cat CID | sha256sum` of it on four live non-leader nodes
            that never read it: all members up; right after the kill (members
            down, no repair yet); once the first epoch has begun (during the
            repair); after the repair. Ratio = MB/s during / MB/s before.
  scrub     a fresh testnet with repair.scrub_rate=0 on every node and two
            objects; on one non-leader node S, `fungi config
            repair.scrub_rate R` and a restart (which also empties its block
            cache) for R = 0 and each --scrub-rates (default 20MB,200MB): the
            scrub rate from `/api/v0/repo/stat` (scrub.bytes_verified sampled
            every 0.25 s for --scrub-window seconds: the long-run average,
            and the rate inside a pass: bytes per pass / last_duration_s),
            then `fungi cat` of the first object on S into sha256sum.

Before each part it waits (up to --quiet-wait seconds) while processes that
look like another engineer's tests (`go test`, `fungi.test`, or fungi
daemons not of this run) run or other processes take more than a quarter of
a core, and records it. CPU of the daemons and of the rest of the machine
is recorded around every timed measure (bench_content.Watch).

    scripts/bench_repair.py [--nodes 20] [--ec 16/4] [--kill 4] [--size 1G]
                            [--rounds 3] [--grace 5s] [--cap 40MB]
                            [--read-grace 60s] [--read-fill 2]
                            [--scrub-rates 20MB,200MB]
                            [--scrub-window 12] [--parts restore,cap,read,scrub]
                            [--quiet-wait 1200] [--json] [--quiet]
                            [--work DIR] [--keep] [--fungi BIN]
    scripts/bench_repair.py --from-json FILE|-   (render a saved --json run)

REPAIR_SIZE, ROUNDS and REPAIR_QUIET_WAIT set the defaults. Figures are
medians over the rounds (min-max). MB = 10^6 bytes. Without --fungi it
builds cmd/fungi into WORK. Every testnet is taken down on exit, Ctrl-C
included; WORK is removed unless --keep. Python 3 standard library only.
"""
import argparse, datetime, json, os, re, signal, statistics, subprocess, sys, time, urllib.error, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no scripts/__pycache__
import bench_content as bc  # noqa: E402  (helpers: run, Watch, builds, ...)
from bench_content import Failure, human, parse_size, run  # noqa: E402

MiB = 1 << 20
TARGETS = {"restore_s": 30.0, "cap_within": 0.10, "read_ratio": 0.7}
BUSY = r"fungi\.test|go test|fungi daemon"
POLL = 0.25

quiet = False
tty = sys.stderr.isatty()


def say(msg):
    if not quiet:
        print("bench_repair: " + msg, file=sys.stderr, flush=True)


bc.say = say  # bench_content's builders report as this script


def progress(msg):
    """A line that replaces itself, on a terminal only."""
    if not quiet and tty:
        print("\r\033[K  " + msg, end="", file=sys.stderr, flush=True)


def progress_end():
    if not quiet and tty:
        print("\r\033[K", end="", file=sys.stderr, flush=True)


def http_json(url, method="GET", timeout=60):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raise Failure("%s %s: %d %s" % (method, url, e.code, e.read()[:300].decode(errors="replace")))


def median_range(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "all": xs}


def parse_duration(s):
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|h)?\s*", s)
    if not m:
        raise ValueError("not a duration: %r" % s)
    return float(m.group(1)) * {"ms": 1e-3, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def parse_rate(s):
    """As node.ParseRate: MB = 10^6, MiB = 2^20; bytes per second."""
    t = s.strip().removesuffix("/s")
    for suf, mul in (("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("kB", 1e3), ("KB", 1e3), ("MB", 1e6),
                     ("GB", 1e9), ("B", 1)):
        if t.endswith(suf):
            return int(float(t[:-len(suf)]) * mul)
    return int(float(t))


# --- processes ---------------------------------------------------------------

children = []


def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    children.append(p)
    return p


def kill_children():
    for p in children:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
    children.clear()


class Pipe:
    """`cmd | sha256sum`, running in the background."""

    def __init__(self, cmd, env):
        self.cmd = cmd
        self.t0 = time.perf_counter()
        self.src = spawn(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.summer = spawn(["sha256sum"], stdin=self.src.stdout, stdout=subprocess.PIPE)
        self.src.stdout.close()  # sha256sum holds the pipe
        self.took = None

    def done(self):
        if self.took is None and self.summer.poll() is not None and self.src.poll() is not None:
            self.took = time.perf_counter() - self.t0
        return self.took is not None

    def result(self):
        out = self.summer.communicate()[0]
        err = self.src.stderr.read()
        self.src.wait()
        if self.took is None:
            self.took = time.perf_counter() - self.t0
        if self.src.returncode != 0 or self.summer.returncode != 0:
            raise Failure("%s | sha256sum: exit %d, %d\n%s" % (" ".join(self.cmd), self.src.returncode, self.summer.returncode,
                                                             err.decode(errors="replace").strip()[-2000:]))
        return self.took, out.split()[0].decode()


def cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


# --- the machine --------------------------------------------------------------

def others(mine):
    """Processes like another engineer's tests (or daemons) not of this run:
    lines of `pgrep -af` without any of the strings in mine."""
    p = subprocess.run(["pgrep", "-af", BUSY], capture_output=True, text=True)
    return [l.strip() for l in p.stdout.splitlines()
            if l.strip() and not any(m in l for m in mine) and "pgrep" not in l]


def others_cpu(watch, seconds=3.0):
    """Cores the rest of the machine used over a few seconds."""
    with watch("quiet probe"):
        time.sleep(seconds)
    w = watch.seen.pop("quiet probe")
    return w["others_cpu_s"] / max(w["wall_s"], 1e-9)


def wait_quiet(mine, watch, limit, what):
    t0 = time.time()
    while True:
        seen, cores = others(mine), others_cpu(watch)
        if (not seen and cores < 0.25) or time.time() - t0 >= limit:
            break
        say("%s: machine not quiet (%.2f cores taken by others; %d processes: %s); waiting (%.0f of %d s)" % (
            what, cores, len(seen), "; ".join(s[:70] for s in seen[:3]), time.time() - t0, limit))
        time.sleep(min(30, max(1, limit - (time.time() - t0))))
    return {"waited_s": round(time.time() - t0), "quiet": not seen and cores < 0.25, "others": seen,
            "others_cores": round(cores, 2)}


# --- the testnet ---------------------------------------------------------------

LOG_TIME = re.compile(r"^time=(\S+) ")


def log_time(line):
    m = LOG_TIME.match(line)
    if not m:
        return None
    return datetime.datetime.strptime(m.group(1).replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


class Testnet:
    def __init__(self, bin_, dir_, n, ec, sets):
        self.bin, self.dir, self.n, self.ec, self.sets = bin_, dir_, n, ec, sets
        self.env = dict(os.environ, FUNGI_DEBUG_API="1")
        self.upped = False
        self.nodes = {}
        self.dead = set()

    def fungi(self, *args, node=None, stdout=subprocess.PIPE):
        env = dict(self.env, FUNGI_PATH=self.path(node)) if node else self.env
        return run([self.bin, *args], env=env, stdout=stdout)

    def path(self, i):
        return os.path.join(self.dir, "node%d" % i)

    def node_env(self, i):
        return dict(self.env, FUNGI_PATH=self.path(i))

    def refresh(self):
        nodes = json.loads(self.fungi("testnet", "status", "--dir", self.dir, "--json"))
        self.nodes = {n["index"]: n for n in nodes}
        return nodes

    def up(self):
        self.upped = True  # down runs even if up fails half-way
        args = ["testnet", "up", "-n", str(self.n), "--dir", self.dir, "--ec", self.ec]
        for s in self.sets:
            args += ["--set", s]
        self.fungi(*args)
        self.wait_leader()

    def wait_leader(self, timeout=90):
        deadline = time.time() + timeout
        while True:
            nodes = self.refresh()
            leaders = [n for n in nodes if n.get("role") == "leader"]
            if leaders and all(n.get("alive") and n.get("api") for n in nodes if n["index"] not in self.dead):
                self.leader = leaders[0]["index"]
                return self.leader
            if time.time() > deadline:
                raise Failure("testnet %s: no raft leader with every node up after %d s" % (self.dir, timeout))
            time.sleep(0.2)

    def api(self, i):
        return self.nodes[i]["api"]

    def pid(self, i):
        return self.nodes[i]["pid"]

    def live(self):
        return [i for i in sorted(self.nodes) if i not in self.dead]

    def repair(self, i=None):
        return http_json("http://%s/api/v0/repair/status" % self.api(i or self.leader))

    def cluster(self, i=None):
        return http_json("http://%s/api/v0/cluster/status" % self.api(i or self.leader))

    def repo_stat(self, i):
        return http_json("http://%s/api/v0/repo/stat" % self.api(i))

    def add(self, work, name, size):
        """A fresh random file added on node 1: (CID, sha256, seconds)."""
        path = os.path.join(work, "file-" + name)
        bc.write_random(path, size)
        want = bc.file_sha256(path)
        os.sync()
        t0 = time.perf_counter()
        c = self.fungi("add", "-q", path, node=1).strip()
        took = time.perf_counter() - t0
        os.remove(path)
        return c, want, took

    def wait_whole(self, objects, timeout=300):
        """Until the leader counts `objects` objects, all full, nothing to do."""
        deadline = time.time() + timeout
        while True:
            st = self.repair()
            o = st["objects"]
            if (o["full"] == objects and sum(o.values()) == objects and st["backlog_fragments"] == 0
                    and st["pending_epochs"] == 0 and not st.get("down")):
                return st
            if time.time() > deadline:
                raise Failure("the leader does not count %d full objects after %d s: %s" % (objects, timeout, json.dumps(st)[:600]))
            time.sleep(0.5)

    def victims(self, k, keep=()):
        """k non-voters, not the leader, holding fragments: the highest
        indices (the lowest are left for readers)."""
        out = []
        for i in sorted(self.nodes, reverse=True):
            n = self.nodes[i]
            if i == self.leader or n.get("role") != "nonvoter" or i in keep or i in self.dead:
                continue
            if self.repo_stat(i)["fragments"] > 0:
                out.append(i)
            if len(out) == k:
                return sorted(out)
        raise Failure("fewer than %d non-voters other than the leader hold fragments" % k)

    def readers(self, k, exclude):
        out = [i for i in sorted(self.nodes) if i != self.leader and i not in exclude and i not in self.dead
               and self.nodes[i].get("role") == "nonvoter"]
        if len(out) < k:
            raise Failure("not %d live non-voters left to read on" % k)
        return out[:k]

    def kill(self, idx):
        """SIGKILLs the nodes at once (`fungi testnet stop --kill I J...`
        kills one node at a time and waits until each is reaped, ~1.9 s
        apart on this VM, whose init reaps orphans every ~2 s); then runs
        that command in the background for the testnet's bookkeeping.
        Returns the spread of the signals, in seconds, and the command."""
        pids = [self.pid(i) for i in idx]
        t0 = time.perf_counter()
        for p in pids:
            os.kill(p, signal.SIGKILL)
        spread = time.perf_counter() - t0
        self.dead |= set(idx)
        cmd = spawn([self.bin, "testnet", "stop", "--dir", self.dir, "--kill", *map(str, idx)], env=self.env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return spread, cmd

    def restart(self, i):
        """SIGTERM and start again (a changed config, an empty block cache)."""
        self.fungi("testnet", "stop", "--dir", self.dir, str(i))
        self.fungi("testnet", "start", "--dir", self.dir, str(i))
        self.refresh()

    def log_lines(self, i, since):
        """Lines of node i's daemon.log logged at or after `since` (epoch s)."""
        out = []
        with open(os.path.join(self.path(i), "daemon.log"), errors="replace") as f:
            for line in f:
                t = log_time(line)
                if t is not None and t >= since:
                    out.append((t, line.rstrip("\n")))
        return out

    def snapshot(self, i):
        """Forces a raft snapshot on node i: (applied index, bytes of the
        newest snapshot's state.bin, bytes of the raft directory)."""
        res = http_json("http://%s/api/v0/debug/snapshot" % self.api(i), method="POST", timeout=300)
        d = os.path.join(self.path(i), "raft", "snapshots")
        snaps = sorted((os.path.getmtime(os.path.join(d, s)), s) for s in os.listdir(d)
                       if os.path.exists(os.path.join(d, s, "state.bin")))
        state = os.path.getsize(os.path.join(d, snaps[-1][1], "state.bin"))
        try:
            sections = snapshot_sections(os.path.join(d, snaps[-1][1], "state.bin"))
        except (IndexError, ValueError):
            sections = None
        return {"applied_index": res["applied_index"], "state_bytes": state, "snapshot": snaps[-1][1], "sections": sections,
                "raft_dir_bytes": dir_bytes(os.path.join(self.path(i), "raft")),
                "raft_db_bytes": os.path.getsize(os.path.join(self.path(i), "raft", "raft.db"))}

    def down(self):
        if self.upped:
            subprocess.run([self.bin, "testnet", "down", "--dir", self.dir], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=self.env)
            self.upped = False


class SnapReader:
    def __init__(self, b):
        self.b, self.i = b, 0

    def uvarint(self):
        x = s = 0
        while True:
            c = self.b[self.i]
            self.i += 1
            x |= (c & 0x7F) << s
            if c < 0x80:
                return x
            s += 7

    def varint(self):
        u = self.uvarint()
        return (u >> 1) ^ -(u & 1)

    def skip(self, n):
        self.i += n

    def str(self):
        n = self.uvarint()
        self.i += n
        return n


def snapshot_sections(path):
    """Bytes per section of a FUNGISNP version 5 snapshot (the format in
    consensus/snapshot.go): header, members, manifests, pins, tree, ipns,
    epochs, damages, dedup, crc."""
    with open(path, "rb") as f:
        b = f.read()
    r = SnapReader(b)
    if b[:8] != b"FUNGISNP" or b[8] != 5:
        return None
    r.i = 9
    applied, commands, dups, mbytes, members, manifests, pins, tree, dedup = [r.uvarint() for _ in range(9)]
    for _ in range(r.uvarint()):
        r.uvarint()
    ipns, _rev, epochs, done, damages = [r.uvarint() for _ in range(5)]
    r.skip(4)
    out = {"header": r.i}

    def section(name, fn, n):
        i0 = r.i
        for _ in range(n):
            fn()
        out[name] = r.i - i0

    def member():
        r.str()
        for _ in range(r.uvarint()):
            r.str()
        r.uvarint(), r.uvarint(), r.str(), r.skip(1), r.varint()

    def manifest():
        r.str(), r.uvarint(), r.uvarint(), r.str()

    def directory():
        r.uvarint()  # at
        for _ in range(r.uvarint()):
            r.str(), r.uvarint()
            kind = r.b[r.i]
            r.skip(1)
            if kind == 0:
                r.str(), r.uvarint(), r.uvarint()
            else:
                directory()

    def root():
        r.uvarint()
        r.skip(1)
        directory()

    def record_ipns():
        r.str(), r.uvarint(), r.varint(), r.uvarint(), r.str()

    def epoch():
        r.str(), r.varint()
        for _ in range(r.uvarint()):
            r.str()
        for _ in range(r.uvarint()):
            r.str(), r.str(), r.uvarint()

    def damage():
        r.str(), r.str(), r.str(), r.str(), r.uvarint()

    def dedup_rec():
        r.skip(16)
        r.uvarint()

    section("members", member, members)
    section("manifests", manifest, manifests)
    section("pins", lambda: r.str(), pins)
    section("tree", root, 1)
    section("ipns", record_ipns, ipns)
    section("epochs", epoch, epochs)
    section("damages", damage, damages)
    section("dedup", dedup_rec, dedup)
    out["crc"] = len(b) - r.i
    if out["crc"] != 4:
        return None  # not understood: the format moved on
    out["counts"] = {"epochs": epochs, "epochs_done": done, "damages": damages, "dedup": dedup, "commands": commands}
    return out


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


# --- one node loss --------------------------------------------------------------

DONE_KEYS = ("blocks", "fragments", "bytes", "fetched", "failed")


def finished(st, epochs0):
    o = st["objects"]
    return (st["epochs"] > epochs0 and st["pending_epochs"] == 0 and st["backlog_fragments"] == 0
            and st["stranded_fragments"] == 0 and not st.get("lost") and not st.get("down")
            and o["at_risk"] == 0 and o["lost"] == 0)


def loss(tn, k, objects, watch, timeout, keep=(), during=None):
    """Kills k fragment holders and follows the leader's repair to its end.
    during(t, st, began): called at every poll (t: seconds since the kill;
    began: seconds since the kill when the first epoch showed, or None)."""
    leader = tn.leader
    victims = tn.victims(k, keep)
    before = tn.repair()
    epochs0 = before["epochs"]
    watch.groups = {"leader": [tn.pid(leader)], "daemons": [tn.pid(i) for i in tn.live() if i != leader]}
    watch.pids = [tn.pid(i) for i in tn.live()]
    say("killing nodes %s at once (SIGKILL; leader node %d); polling the leader every %.2f s" % (
        ", ".join(map(str, victims)), leader, POLL))
    res = {"killed": victims, "leader": leader, "objects": objects, "before": before}
    wall0 = time.time()
    trace, began, end, full_at, moved_at = [], None, None, None, None
    last_done = None
    name = "loss %s %d" % (tn.dir, len(watch.seen))
    with watch(name):
        p0 = time.perf_counter()
        res["kill_spread_s"], stopper = tn.kill(victims)
        next_poll = time.perf_counter()
        while True:
            st = tn.repair()
            t = time.perf_counter() - p0
            d = st["done"]
            cur = tuple(d[x] for x in DONE_KEYS)
            if cur != last_done:
                if last_done is not None:
                    moved_at = t
                last_done = cur
            trace.append({"t": round(t, 3), "done": {x: d[x] for x in DONE_KEYS}, "backlog": st["backlog_fragments"],
                          "stranded": st["stranded_fragments"], "pending": st["pending_epochs"], "epochs": st["epochs"],
                          "objects": st["objects"], "lost": len(st.get("lost") or []), "down": len(st.get("down") or [])})
            if began is None and st["epochs"] > epochs0:
                began = t
            o = st["objects"]
            if full_at is None and began is not None and o["full"] == objects and sum(o.values()) == objects \
                    and st["backlog_fragments"] == 0 and st["pending_epochs"] == 0:
                full_at = t
            if during:
                during(t, st, began)
            progress("%5.1f s: epochs %d (pending %d), backlog %d, stranded %d, objects %s, fetched %.0f MB, written %.0f MB" % (
                t, st["epochs"] - epochs0, st["pending_epochs"], st["backlog_fragments"], st["stranded_fragments"],
                "/".join(str(o[x]) for x in ("full", "degraded", "at_risk", "lost")),
                (d["fetched"] - before["done"]["fetched"]) / 1e6, (d["bytes"] - before["done"]["bytes"]) / 1e6))
            if began is not None and finished(st, epochs0):
                end = t
                break
            if t > timeout:
                break
            next_poll += POLL
            time.sleep(max(0.0, next_poll - time.perf_counter()))
    progress_end()
    stopper.wait()
    after = st
    res["after"] = slim(after)
    res["before"] = slim(before)
    res["trace_full"] = trace  # for the caller; dropped from the output
    res["trace"] = thin(trace)
    res["cpu"] = watch.seen[name]
    res["timeout"] = end is None
    res["kill_to_epoch_poll_s"] = began
    res["kill_to_done_s"] = end
    res["kill_to_full_s"] = full_at
    res["last_progress_s"] = moved_at
    delta = {x: after["done"][x] - before["done"][x] for x in DONE_KEYS}
    res["delta"] = delta
    # the leader's log: epochs begun and ended, blocks not repaired
    epochs, ends, failures = [], [], {}
    for t, line in tn.log_lines(leader, wall0 - 1):
        if 'msg="repair: members replaced' in line:
            m = re.search(r'lost="?\[([^\]]*)\]', line)
            pool = re.search(r"pool=(\d+)", line)
            epochs.append({"t": t - wall0, "lost": len(m.group(1).split()) if m else None,
                           "pool": int(pool.group(1)) if pool else None,
                           "reason": (re.search(r"reason=(\S+)", line) or [None, None])[1]})
        elif 'msg="repair: epochs done' in line:
            ends.append(t - wall0)
        elif 'msg="repair: block not repaired' in line:
            m = re.search(r'err="(ask|write to) (\S+?):', line)
            key = "%s %s" % (m.group(1), m.group(2)[:20]) if m else "other"
            failures[key] = failures.get(key, 0) + 1
    res["log"] = {"epochs": epochs, "ends": ends, "failed_blocks": failures}
    if epochs and end is not None:
        res["epoch_to_done_s"] = end - epochs[0]["t"]
        res["kill_to_epoch_log_s"] = epochs[0]["t"]
    elif began is not None and end is not None:
        res["epoch_to_done_s"] = end - began
    return res


def slim(st):
    """The parts of a repair status worth keeping in the output."""
    return {k: st[k] for k in ("objects", "blocks", "backlog_fragments", "stranded_fragments", "epochs", "pending_epochs",
                               "done", "rate", "lost", "replaced") if k in st}


def thin(trace):
    """One poll a second (and the last) as rows: t, fetched, bytes,
    fragments, backlog, stranded, pending, full objects."""
    out = []
    for i, x in enumerate(trace):
        if i % 4 == 0 or i == len(trace) - 1:
            out.append([x["t"], x["done"]["fetched"], x["done"]["bytes"], x["done"]["fragments"], x["backlog"],
                        x["stranded"], x["pending"], x["objects"]["full"]])
    return out


def describe(r):
    ep = r["log"]["epochs"]
    return "kill -> done %s, epoch -> done %s; %d epoch%s (lost %s); fetched %.0f MB, written %.0f MB, %d blocks, %d failed" % (
        "%.1f s" % r["kill_to_done_s"] if r["kill_to_done_s"] is not None else "NOT DONE",
        "%.1f s" % r["epoch_to_done_s"] if r.get("epoch_to_done_s") is not None else "-",
        len(ep), "" if len(ep) == 1 else "s", "+".join(str(e["lost"]) for e in ep),
        r["delta"]["fetched"] / 1e6, r["delta"]["bytes"] / 1e6, r["delta"]["blocks"], r["delta"]["failed"])


def settle(tn, objects, watch):
    """After the adds: all objects full, then the idle cost of the testnet."""
    tn.wait_whole(objects)
    time.sleep(3)
    watch.pids = [tn.pid(i) for i in tn.live()]
    watch.groups = {"daemons": list(watch.pids)}
    name = "idle %s" % tn.dir
    with watch(name):
        time.sleep(5)
    w = watch.seen.pop(name)
    return {"daemons_cores": round(w["cpu_s"]["daemons"] / w["wall_s"], 2), "others_cores": round(w["others_cpu_s"] / w["wall_s"], 2)}


# --- the parts -------------------------------------------------------------------

def part_restore(args, work, fungi_bin, watch, r):
    tn = Testnet(fungi_bin, os.path.join(work, "restore-%d" % r), args.nodes, args.ec,
                 ["repair.grace=%s" % args.grace, "repair.rate=0"])
    try:
        say("restore %d: testnet up -n %d --ec %s --set repair.grace=%s --set repair.rate=0" % (r, args.nodes, args.ec, args.grace))
        tn.up()
        c, _, add_s = tn.add(work, "restore-%d" % r, args.size)
        say("added %s (%.1f s); leader node %d" % (c, add_s, tn.leader))
        idle = settle(tn, 1, watch)
        meta0 = tn.cluster()["metadata"]
        snap0 = tn.snapshot(tn.leader)
        res = loss(tn, args.kill, 1, watch, args.timeout)
        res.pop("trace_full")
        res["idle"], res["add_s"], res["cid"] = idle, add_s, c
        say("restore %d: %s" % (r, describe(res)))
        # check from a live node that is not the leader
        checker = tn.readers(1, ())[0]
        t0 = time.perf_counter()
        p = subprocess.run([fungi_bin, "check", "--all", "--json"], env=tn.node_env(checker), capture_output=True, text=True)
        chk = {"node": checker, "exit": p.returncode, "seconds": time.perf_counter() - t0, "stderr": p.stderr.strip()[-500:]}
        try:
            j = json.loads(p.stdout)
            chk["health"], chk["objects"], chk["reported"] = j.get("health"), j.get("objects"), j.get("reported")
        except ValueError:
            chk["stdout"] = p.stdout[-500:]
        res["check"] = chk
        say("fungi check --all on node %d: exit %d (%s)" % (checker, p.returncode, chk.get("health") or chk["stderr"]))
        # metadata
        meta1 = tn.cluster()["metadata"]
        snap1 = tn.snapshot(tn.leader)
        ops = {k: meta1["ops"].get(k, 0) - meta0["ops"].get(k, 0) for k in set(meta0["ops"]) | set(meta1["ops"])}
        res["metadata"] = {"before": snap0, "after": snap1, "ops": {k: v for k, v in ops.items() if v},
                           "commands": meta1.get("commands", 0) - meta0.get("commands", 0),
                           "members": meta1.get("members"), "domain": ""}
        say("metadata: leader snapshot %d -> %d bytes, ops %s" % (snap0["state_bytes"], snap1["state_bytes"],
                                                                 json.dumps(res["metadata"]["ops"], sort_keys=True)))
        return res
    finally:
        tn.down()


def part_cap(args, work, fungi_bin, watch, r):
    tn = Testnet(fungi_bin, os.path.join(work, "cap-%d" % r), args.nodes, args.ec,
                 ["repair.grace=%s" % args.grace, "repair.rate=%s" % args.cap])
    try:
        say("cap %d: testnet up -n %d --ec %s --set repair.grace=%s --set repair.rate=%s" % (r, args.nodes, args.ec, args.grace, args.cap))
        tn.up()
        c, _, add_s = tn.add(work, "cap-%d" % r, args.size)
        say("added %s (%.1f s); leader node %d" % (c, add_s, tn.leader))
        settle(tn, 1, watch)
        cap = tn.repair()["rate"]
        res = loss(tn, args.kill, 1, watch, args.timeout)
        res["cap"] = cap
        d = res["delta"]
        charged = d["bytes"] + d["fetched"]
        res["charged"] = charged
        if res.get("epoch_to_done_s"):
            res["rate"] = charged / res["epoch_to_done_s"]
        # the span in which the counters moved: first to last change
        tr = res.pop("trace_full")
        first = next((x["t"] for x in tr if x["done"]["fetched"] != tr[0]["done"]["fetched"]), None)
        if first is not None and res["last_progress_s"]:
            prev = max((x["t"] for x in tr if x["t"] < first), default=0)
            res["active_s"] = res["last_progress_s"] - prev
            res["active_rate"] = charged / res["active_s"] if res["active_s"] > 0 else None
        # while repairing: the polls at which the counters moved; and the
        # busiest 5 s
        pts = [(x["t"], x["done"]["bytes"] + x["done"]["fetched"]) for x in tr]
        mv = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(pts, pts[1:]) if b[1] > a[1]]
        if mv:
            res["moving_rate"] = sum(x[1] for x in mv) / sum(x[0] for x in mv)
        peak = None
        for i, a in enumerate(pts):
            b = next((q for q in pts[i:] if q[0] >= a[0] + 5), None)
            if b is None:
                break
            peak = max(peak or 0, (b[1] - a[1]) / (b[0] - a[0]))
        res["peak5_rate"] = peak
        say("cap %d (leader's cap %.0f MB/s): %s; charged %.0f MB: %s MB/s over the repair" % (
            r, cap / 1e6, describe(res), charged / 1e6, "%.1f" % (res["rate"] / 1e6) if res.get("rate") else "-"))
        return res
    finally:
        tn.down()


def part_read(args, work, fungi_bin, watch, r):
    tn = Testnet(fungi_bin, os.path.join(work, "read-%d" % r), args.nodes, args.ec,
                 ["repair.grace=%s" % args.read_grace, "repair.rate=0"])
    try:
        say("read %d: testnet up -n %d --ec %s --set repair.grace=%s --set repair.rate=0" % (r, args.nodes, args.ec, args.read_grace))
        tn.up()
        fill = [tn.add(work, "read-fill-%d-%d" % (r, j), args.size)[0] for j in range(args.read_fill)]
        c2, want, _ = tn.add(work, "read-%d" % r, args.size)
        say("added %s and %s (the one read); leader node %d" % (", ".join(fill), c2, tn.leader))
        settle(tn, args.read_fill + 1, watch)
        victims = tn.victims(args.kill)
        readers = tn.readers(4, victims)
        res = {"cid": c2, "readers": dict(zip(("before", "down", "during", "after"), readers))}
        reads = res["reads"] = {}

        def read(which, node):
            watch.pids = [tn.pid(i) for i in tn.live()]
            watch.groups = {"reader": [tn.pid(node)], "leader": [tn.pid(tn.leader)]}
            name = "read %s %d" % (which, r)
            with watch(name):
                took, h = Pipe([fungi_bin, "cat", c2], tn.node_env(node)).result()
            if h != want:
                raise Failure("fungi cat %s on node %d: sha256 %s, the file's is %s" % (c2, node, h, want))
            reads[which] = {"node": node, "seconds": took, "mb_s": args.size / 1e6 / took, "cpu": watch.seen[name]}
            say("read %s (node %d): %.1f s, %.0f MB/s" % (which, node, took, args.size / 1e6 / took))

        read("before", readers[0])
        # kill, read while the members are down but the grace holds the
        # repair back, then read again once the repair has begun
        state = {"pipe": None, "down": None}
        grace = parse_duration(args.read_grace)

        def during(t, st, began):
            if state["down"] is None:
                state["down"] = Pipe([fungi_bin, "cat", c2], tn.node_env(readers[1]))
                state["down_t0"] = t
            elif state["down"] is not None and "down_t1" not in state and state["down"].done():
                state["down_t1"] = t
            if began is not None and state["pipe"] is None:
                state["pipe"] = Pipe([fungi_bin, "cat", c2], tn.node_env(readers[2]))
                state["t0"], state["d0"] = t, st["done"]
            elif state["pipe"] is not None and "t1" not in state and state["pipe"].done():
                state["t1"], state["d1"], state["running_at_end"] = t, st["done"], not finished(st, res["epochs0"])

        res["epochs0"] = tn.repair()["epochs"]
        # the loss picks the same victims (highest non-voters holding fragments)
        lr = loss(tn, args.kill, args.read_fill + 1, watch, args.timeout, keep=readers, during=during)
        res["loss"] = {k: v for k, v in lr.items() if k not in ("trace", "trace_full")}
        say("read %d repair: %s" % (r, describe(lr)))
        for key, pipe, node in (("down", state["down"], readers[1]), ("during", state["pipe"], readers[2])):
            if pipe is None:
                raise Failure("the %s read never started" % key)
            took, h = pipe.result()
            if h != want:
                raise Failure("fungi cat %s on node %d (%s): sha256 %s, the file's is %s" % (c2, node, key, h, want))
            reads[key] = {"node": node, "seconds": took, "mb_s": args.size / 1e6 / took}
        dn = reads["down"]
        dn["ended_s"] = state.get("down_t1")
        dn["before_epoch"] = dn["ended_s"] is not None and lr.get("kill_to_epoch_poll_s") is not None and dn["ended_s"] <= lr["kill_to_epoch_poll_s"]
        du = reads["during"]
        du["started_s"], du["ended_s"] = state.get("t0"), state.get("t1")
        du["repair_running_at_end"] = state.get("running_at_end", False)
        if state.get("d1"):
            du["repair_fetched_during"] = state["d1"]["fetched"] - state["d0"]["fetched"]
        if du["ended_s"] and lr["kill_to_done_s"]:
            du["overlap"] = max(0.0, min(du["ended_s"], lr["kill_to_done_s"]) - du["started_s"]) / (du["ended_s"] - du["started_s"])
        say("read down (node %d, epoch not begun%s): %.0f MB/s; during (node %d, from %.1f s after the kill, repair still running "
            "at its end: %s): %.0f MB/s" % (readers[1], "" if dn["before_epoch"] else ", BUT the epoch began before it ended",
                                            dn["mb_s"], readers[2], du["started_s"], du["repair_running_at_end"], du["mb_s"]))
        read("after", readers[3])
        res["ratio"] = du["mb_s"] / reads["before"]["mb_s"]
        res["ratio_down"] = du["mb_s"] / dn["mb_s"]
        return res
    finally:
        tn.down()


def part_scrub(args, work, fungi_bin, watch):
    tn = Testnet(fungi_bin, os.path.join(work, "scrub"), args.nodes, args.ec,
                 ["repair.grace=%s" % args.grace, "repair.scrub_rate=0"])
    rates = ["0"] + args.scrub_rates
    try:
        say("scrub: testnet up -n %d --ec %s --set repair.scrub_rate=0 (every node); one node's rate changed and restarted" % (
            args.nodes, args.ec))
        tn.up()
        c1, want, _ = tn.add(work, "scrub-a", args.size)
        c2, _, _ = tn.add(work, "scrub-b", args.size)
        settle(tn, 2, watch)
        node = tn.readers(1, ())[0]
        st = tn.repo_stat(node)
        out = {"node": node, "cid": c1, "fragments": st["fragments"], "fragment_bytes": st["fragment_bytes"],
               "rates": rates, "rounds": []}
        say("scrub: node %d holds %d fragments, %.0f MB; it reads %s" % (node, st["fragments"], st["fragment_bytes"] / 1e6, c1))
        for r in range(args.rounds):
            rr = {}
            for rate in rates:
                wait_quiet([fungi_bin, work], watch, args.quiet_wait, "scrub")
                tn.fungi("config", "repair.scrub_rate", rate, node=node)
                tn.restart(node)
                pid = tn.pid(node)
                time.sleep(2)  # the first pass under way
                x = rr[rate] = {}
                # the achieved rate: bytes_verified over a window
                samples, cpu0 = [], cpu_seconds(pid)
                t0 = time.perf_counter()
                while time.perf_counter() - t0 < args.scrub_window:
                    s = tn.repo_stat(node)["scrub"]
                    samples.append((time.perf_counter() - t0, s["bytes_verified"], s["passes"], s["running"], s["last_duration_s"], s["bytes"]))
                    time.sleep(POLL)
                cpu1 = cpu_seconds(pid)
                span = samples[-1][0] - samples[0][0]
                x["window_s"] = span
                x["avg_rate"] = (samples[-1][1] - samples[0][1]) / span if span else 0
                x["cpu_cores"] = (cpu1 - cpu0) / span if span and cpu0 is not None and cpu1 is not None else None
                passes = samples[-1][2] - samples[0][2]
                x["passes"] = passes
                # inside passes: intervals running at both ends, same pass
                inb = int_t = 0
                for a, b in zip(samples, samples[1:]):
                    if a[3] and b[3] and a[2] == b[2] and b[5] >= a[5]:
                        inb += b[1] - a[1]
                        int_t += b[0] - a[0]
                x["in_pass_rate"] = inb / int_t if int_t > 1 else None
                last = samples[-1]
                if passes and last[4]:  # a whole pass: every fragment held, over its duration
                    x["pass_s"] = last[4]
                    x["pass_rate"] = out["fragment_bytes"] / last[4]
                # the foreground read on the node
                vb0 = tn.repo_stat(node)["scrub"]["bytes_verified"]
                watch.pids = [tn.pid(i) for i in tn.live()]
                watch.groups = {"reader": [pid]}
                name = "scrub read %s %d" % (rate, r)
                with watch(name):
                    took, h = Pipe([fungi_bin, "cat", c1], tn.node_env(node)).result()
                if h != want:
                    raise Failure("fungi cat %s on node %d: sha256 %s, the file's is %s" % (c1, node, h, want))
                vb1 = tn.repo_stat(node)["scrub"]["bytes_verified"]
                x["read_s"], x["read_mb_s"], x["verified_during_read"] = took, args.size / 1e6 / took, vb1 - vb0
                x["read_cpu"] = watch.seen[name]
                say("scrub %d, rate %s on node %d: %.1f MB/s over %.0f s (%d passes; in a pass %s MB/s); fungi cat %.0f MB/s (%.0f MB scrubbed meanwhile)" % (
                    r + 1, rate, node, x["avg_rate"] / 1e6, span, passes,
                    "%.1f" % (x["in_pass_rate"] / 1e6) if x["in_pass_rate"] else "-", x["read_mb_s"], x["verified_during_read"] / 1e6))
            out["rounds"].append(rr)
        return out
    finally:
        tn.down()


# --- the run ---------------------------------------------------------------------

def bench(args, work):
    fungi_bin = os.path.abspath(args.fungi) if args.fungi else bc.build_fungi(work)
    out = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "machine": bc.machine(),
           "versions": {"fungi": run([fungi_bin, "version"]).strip()},
           "nodes": args.nodes, "ec": args.ec, "kill": args.kill, "size": args.size, "rounds": args.rounds,
           "grace": args.grace, "read_grace": args.read_grace, "cap_setting": args.cap, "scrub_rates": args.scrub_rates,
           "parts": args.parts, "read_fill": args.read_fill, "poll_s": POLL, "quiet": {}, "load": {"start": os.getloadavg()}}
    rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=bc.ROOT, capture_output=True, text=True).stdout.strip()
    out["versions"]["tree"] = rev
    watch = bc.Watch()
    mine = [fungi_bin, work]
    try:
        for r in range(args.rounds):
            for part, fn in (("restore", part_restore), ("cap", part_cap), ("read", part_read)):
                if part not in args.parts:
                    continue
                out["quiet"]["%s %d" % (part, r + 1)] = wait_quiet(mine, watch, args.quiet_wait, "%s %d" % (part, r + 1))
                out.setdefault(part, []).append(fn(args, work, fungi_bin, watch, r + 1))
        if "scrub" in args.parts:
            out["quiet"]["scrub"] = wait_quiet(mine, watch, args.quiet_wait, "scrub")
            out["scrub"] = part_scrub(args, work, fungi_bin, watch)
        out["load"]["end"] = os.getloadavg()
        return out
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kill_children()
        # every testnet this run made, in case a part died half-way
        for d in sorted(os.listdir(work)) if os.path.isdir(work) else []:
            p = os.path.join(work, d)
            if os.path.exists(os.path.join(p, "testnet.json")) or os.path.isdir(os.path.join(p, "node1")):
                subprocess.run([fungi_bin, "testnet", "down", "--dir", p], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- the write-up ------------------------------------------------------------------

def verdict(ok):
    return "met" if ok else "**MISSED**"


def render(d):
    n = d["rounds"]
    size = d["size"]
    lines = []

    def mr(xs, fmt="%.1f", scale=1.0):
        m = median_range(xs)
        if m is None:
            return "-"
        if len(m["all"]) == 1:
            return fmt % (m["median"] * scale)
        return (fmt + " (" + fmt + "-" + fmt + ")") % (m["median"] * scale, m["min"] * scale, m["max"] * scale)

    def med(xs):
        m = median_range(xs)
        return m["median"] if m else None

    m = d["machine"]
    lines.append("- machine: %s, nproc %d, kernel %s; `fungi version`: %s (tree %s)" % (
        m["cpu"] or "?", m["nproc"], m["kernel"], d["versions"]["fungi"], d["versions"].get("tree", "?")))
    lines.append("- load average (1, 5, 15 min): %s at the start, %s at the end" % (
        ", ".join("%.2f" % x for x in d["load"]["start"]), ", ".join("%.2f" % x for x in d["load"].get("end", d["load"]["start"]))))
    noisy = {k: v for k, v in d["quiet"].items() if not v["quiet"]}
    waited = sum(v["waited_s"] for v in d["quiet"].values())
    if noisy:
        lines.append("- **machine not quiet** at the start of: %s (others took %s cores; %s)" % (
            ", ".join(noisy), ", ".join("%.2f" % v["others_cores"] for v in noisy.values()),
            "; ".join(sorted({s.split(" ", 1)[1][:60] for v in noisy.values() for s in v["others"]})[:4]) or "no test process"))
    else:
        lines.append("- quiet machine at the start of every part (waited %d s in all for other tests to end)" % waited)
    spans = []  # (label, cores others took)
    for part in ("restore", "cap"):
        for i, x in enumerate(d.get(part) or []):
            spans.append(("%s %d, the repair" % (part, i + 1), x["cpu"]))
    for i, x in enumerate(d.get("read") or []):
        spans.append(("read %d, the repair and the reads during it" % (i + 1), x["loss"]["cpu"]))
        for k in ("before", "after"):
            if x["reads"][k].get("cpu"):
                spans.append(("read %d, the read %s" % (i + 1, k), x["reads"][k]["cpu"]))
    for i, x in enumerate((d.get("scrub") or {}).get("rounds", [])):
        for rate, y in x.items():
            spans.append(("scrub %d, the read at %s" % (i + 1, rate), y["read_cpu"]))
    busy = [(w["others_cpu_s"] / w["wall_s"], k) for k, w in spans if w["wall_s"]]
    if busy:
        loud = sorted((b for b in busy if b[0] >= 0.1), reverse=True)
        lines.append("- CPU other processes took during the timed measures: %s" % (
            "under 0.1 core in every one" if not loud else "; ".join("%.2f cores in %s" % b for b in loud) +
            "; under 0.1 core in the %d others" % (len(busy) - len(loud))))
    rows = []
    rs = d.get("restore") or []
    if rs:
        a = [x["kill_to_done_s"] for x in rs]
        b = [x.get("epoch_to_done_s") for x in rs]
        det = [x.get("kill_to_epoch_log_s") for x in rs]
        thr = [x["delta"]["fetched"] / x["epoch_to_done_s"] for x in rs if x.get("epoch_to_done_s")]
        eff = [size / x["epoch_to_done_s"] for x in rs if x.get("epoch_to_done_s")]
        amp = [x["delta"]["fetched"] / size for x in rs]
        full = [x["kill_to_full_s"] for x in rs]
        ok_b = all(x is not None for x in b) and med(b) is not None and med(b) <= TARGETS["restore_s"]
        ok_a = all(x is not None for x in a) and med(a) <= TARGETS["restore_s"]
        nepochs = [len(x["log"]["epochs"]) for x in rs]
        lines.append("- restore: %d round%s; killed nodes %s" % (len(rs), "s" if len(rs) != 1 else "", "; ".join(
            ",".join(map(str, x["killed"])) for x in rs)))
        rows += [
            ("(a) kill to repair done (no backlog, no pending epoch, nothing stranded, no object at risk), s",
             "**%s**" % mr(a), "<= 30 s: %s" % verdict(ok_a)),
            ("(b) first repair epoch to done (the figure without the grace), s", "**%s**" % mr(b),
             "<= 30 s: %s" % verdict(ok_b)),
            ("kill to the first epoch (grace %s + the monitor's 2 s tick), s" % d["grace"], mr(det), ""),
            ("repair epochs per loss of %d nodes (members per epoch)" % d["kill"],
             "%s (%s)" % (mr(nepochs, "%.0f"), "; ".join("+".join(str(e["lost"]) for e in x["log"]["epochs"]) for x in rs)), ""),
            ("repair throughput: done.fetched / (b), MB/s of content decoded", "**%s**" % mr(thr, "%.0f", 1e-6), ""),
            ("content made whole / (b), MB/s (%s of content)" % human(size), mr(eff, "%.0f", 1e-6), ""),
            ("content decoded per content byte (done.fetched / %s)" % human(size), mr(amp, "%.2f"), "1.0 ideally"),
            ("fragments written (done.fragments), MB written (done.bytes)", "%s, %s" % (
                mr([x["delta"]["fragments"] for x in rs], "%.0f"), mr([x["delta"]["bytes"] for x in rs], "%.0f", 1e-6)), ""),
            ("blocks a pass failed (done.failed; retried)", mr([x["delta"]["failed"] for x in rs], "%.0f"), ""),
            ("kill to objects.full == objects (all N fragments, one per member)",
             mr(full) if all(x is not None for x in full) else "never (%d of %d rounds)" % (sum(x is None for x in full), len(full)),
             "**MISSED**" if any(x is None for x in full) else "met"),
        ]
        chk = [x["check"] for x in rs]
        rows.append(("`fungi check --all` on a live node after the repair: exit code (health)", "; ".join(
            "%d (%s)" % (c["exit"], ", ".join("%s %d" % (k, v) for k, v in (c.get("health") or {}).items() if v)) for c in chk),
            "exit 0: %s" % verdict(all(c["exit"] == 0 for c in chk))))
        cpu = [x["cpu"] for x in rs]
        idle = [x["idle"]["daemons_cores"] for x in rs]
        rows.append(("cores busy during the repair: leader, other daemons, rest of the machine",
                     "%s, %s, %s" % (mr([c["cpu_s"]["leader"] / c["wall_s"] for c in cpu], "%.2f"),
                                     mr([c["cpu_s"]["daemons"] / c["wall_s"] for c in cpu], "%.2f"),
                                     mr([c["others_cpu_s"] / c["wall_s"] for c in cpu], "%.2f")), ""))
        rows.append(("cores the idle testnet takes before the kill (%d daemons, default scrubbers)" % d["nodes"], mr(idle, "%.2f"), ""))
    cs = d.get("cap") or []
    if cs:
        cap = cs[0]["cap"]
        rate = [x.get("rate") for x in cs]
        act = [x.get("active_rate") for x in cs]
        within = med(rate) is not None and abs(med(rate) - cap) <= TARGETS["cap_within"] * cap
        rows += [
            ("cap: leader's repair.rate %s: (done.bytes + done.fetched) / (b), MB/s" % d["cap_setting"], "**%s**" % mr(rate, "%.1f", 1e-6),
             "within 10%% of %.0f: %s%s" % (cap / 1e6, verdict(within),
                                            " (%+.0f%%)" % (100 * (med(rate) / cap - 1)) if med(rate) else "")),
            ("cap: the same from the first to the last move of the counters, MB/s", mr(act, "%.1f", 1e-6), ""),
            ("cap: while repairing (over the 0.25 s polls at which the counters moved), MB/s",
             mr([x.get("moving_rate") for x in cs], "%.1f", 1e-6), ""),
            ("cap: busiest 5 s, MB/s", mr([x.get("peak5_rate") for x in cs], "%.1f", 1e-6), ""),
            ("cap: (a) kill to done, (b) epoch to done, s", "%s, %s" % (mr([x["kill_to_done_s"] for x in cs]),
                                                                       mr([x.get("epoch_to_done_s") for x in cs])), ""),
            ("cap: bytes charged (decoded + written), MB; epochs", "%s; %s" % (
                mr([x["charged"] for x in cs], "%.0f", 1e-6), "; ".join("+".join(str(e["lost"]) for e in x["log"]["epochs"]) for x in cs)), ""),
        ]
    rd = d.get("read") or []
    if rd:
        ratio = [x["ratio"] for x in rd]
        ok = med(ratio) >= TARGETS["read_ratio"]
        rows += [
            ("read: `fungi cat \\| sha256sum` of %s, all members up, no repair, MB/s" % human(size),
             mr([x["reads"]["before"]["mb_s"] for x in rd], "%.0f"), ""),
            ("read: %d members down, within the grace (%s), no repair yet, MB/s" % (d["kill"], d["read_grace"]),
             mr([x["reads"]["down"]["mb_s"] for x in rd], "%.0f"), ""),
            ("read: during the repair (no cap), MB/s", mr([x["reads"]["during"]["mb_s"] for x in rd], "%.0f"), ""),
            ("read: after the repair, MB/s", mr([x["reads"]["after"]["mb_s"] for x in rd], "%.0f"), ""),
            ("read during repair / all up, no repair", "**%s**" % mr(ratio, "%.2f"), ">= 0.7x: %s" % verdict(ok)),
            ("read during repair / members down, no repair", mr([x["ratio_down"] for x in rd], "%.2f"), ""),
            ("share of the read that overlapped the repair; repair still running at its end",
             "%s; %s" % (mr([x["reads"]["during"].get("overlap") for x in rd], "%.2f"),
                         ", ".join("yes" if x["reads"]["during"]["repair_running_at_end"] else "no" for x in rd)), ""),
            ("repair (%d objects) with the reads: epoch to done, s; content decoded, MB" % (d.get("read_fill", 1) + 1),
             "%s; %s" % (mr([x["loss"].get("epoch_to_done_s") for x in rd]), mr([x["loss"]["delta"]["fetched"] for x in rd], "%.0f", 1e-6)), ""),
        ]
    lines += ["", "| measure | figure | target |", "|---|---|---|"]
    lines += ["| %s | %s | %s |" % row for row in rows]
    if rs:
        md = [x["metadata"] for x in rs]
        grow = [x["after"]["state_bytes"] - x["before"]["state_bytes"] for x in md]
        frags = [x["delta"]["fragments"] for x in rs]
        ops = {}
        for x in md:
            for k, v in x["ops"].items():
                ops.setdefault(k, []).append(v)
        k = d["kill"]

        def sec(x, name):
            a, b = x["after"].get("sections"), x["before"].get("sections")
            return a[name] - b[name] if a and b else None
        ep = [sec(x, "epochs") for x in md]
        nep = [len(x["log"]["epochs"]) for x in rs]
        per_epoch = [e / n for e, n in zip(ep, nep) if e is not None and n]
        lines += ["", "| metadata of a loss of %d nodes (the leader's raft snapshot, restore runs) | figure |" % k, "|---|---|",
                  "| snapshot (state.bin) before the kill -> after the repair, bytes | %s -> %s |" % (
                      mr([x["before"]["state_bytes"] for x in md], "%.0f"), mr([x["after"]["state_bytes"] for x in md], "%.0f")),
                  "| growth, bytes | %s |" % mr(grow, "%.0f"),
                  "| of it, the repair epochs' records (%s epoch%s), bytes | **%s** |" % (
                      mr(nep, "%.0f"), "" if set(nep) == {1} else "s", mr(ep, "%.0f")),
                  "| the same per epoch, bytes | %s |" % mr(per_epoch, "%.0f"),
                  "| the same per lost node, bytes | **%s** |" % mr([e / k for e in ep if e is not None], "%.0f"),
                  "| the same per fragment moved (%s fragments written), bytes | %s |" % (mr(frags, "%.0f"), mr(
                      [e / f for e, f in zip(ep, frags) if f and e is not None], "%.3f")),
                  "| of it, the request-id records that deduplicate commands (16 bytes + index each), bytes | %s |" % mr(
                      [sec(x, "dedup") for x in md], "%.0f"),
                  "| of it, members (used-bytes counters), damage reports, bytes | %s, %s |" % (
                      mr([sec(x, "members") for x in md], "%.0f"), mr([sec(x, "damages") for x in md], "%.0f")),
                  "| raft commands committed from the kill to the end of the repair (metadata.ops delta) | %s |" % ", ".join(
                      "%s %s" % (kk, mr(v, "%.0f")) for kk, v in sorted(ops.items())),
                  "| raft.db (bolt, grows by whole pages) before -> after, bytes | %s -> %s |" % (
                      mr([x["before"]["raft_db_bytes"] for x in md], "%.0f"), mr([x["after"]["raft_db_bytes"] for x in md], "%.0f"))]
    sc = d.get("scrub")
    if sc:
        lines += ["", "| scrub on node %d (%d fragments, %.0f MB; every other node's scrubber off) | achieved, MB/s (long-run) | in a pass (sampled), MB/s | daemon cores | `fungi cat` of %s on the node, MB/s | vs scrub off | MB scrubbed during the read |" % (
            sc["node"], sc["fragments"], sc["fragment_bytes"] / 1e6, human(size)), "|---|---|---|---|---|---|---|"]
        base = [x["0"]["read_mb_s"] for x in sc["rounds"]]
        for rate in sc["rates"]:
            xs = [x[rate] for x in sc["rounds"]]
            cap = parse_rate(rate)
            ach = mr([x["avg_rate"] for x in xs], "%.1f", 1e-6) if cap else "0"
            inp = mr([x.get("in_pass_rate") or x.get("pass_rate") for x in xs], "%.1f", 1e-6) if cap else "-"
            within = ""
            if cap:
                pr = med([x.get("in_pass_rate") or x.get("pass_rate") for x in xs])
                if pr:
                    within = " (%+.0f%% of the cap)" % (100 * (pr / cap - 1))
            lines.append("| repair.scrub_rate %s | %s | %s%s | %s | %s | %s | %s |" % (
                rate, ach, inp, within, mr([x.get("cpu_cores") for x in xs], "%.2f"), mr([x["read_mb_s"] for x in xs], "%.0f"),
                mr([a["read_mb_s"] / b for a, b in zip(xs, base)], "%.2f"), mr([x["verified_during_read"] for x in xs], "%.0f", 1e-6)))
    return "\n".join(lines)


def main():
    global quiet
    ap = argparse.ArgumentParser(description="Self-healing: repair after node loss, rate cap, reads during repair, scrub, metadata.")
    env = os.environ.get
    ap.add_argument("--nodes", type=int, default=20, help="testnet size (default 20)")
    ap.add_argument("--ec", default="16/4", help="erasure coding K/M (default 16/4)")
    ap.add_argument("--kill", type=int, default=4, help="nodes killed at once (default 4)")
    ap.add_argument("--size", default=env("REPAIR_SIZE", "1G"), help="size of each object (default $REPAIR_SIZE or 1G)")
    ap.add_argument("--rounds", type=int, default=int(env("ROUNDS", "3")), help="rounds (default $ROUNDS or 3)")
    ap.add_argument("--grace", default="5s", help="repair.grace of the restore, cap and scrub testnets (default 5s)")
    ap.add_argument("--read-grace", dest="read_grace", default="60s",
                    help="repair.grace of the read testnet: room for the read with members down before the repair (default 60s)")
    ap.add_argument("--read-fill", dest="read_fill", type=int, default=2,
                    help="objects added besides the one read in the read part, so that the repair outlasts the read (default 2)")
    ap.add_argument("--cap", default="40MB", help="repair.rate of the cap testnet (default 40MB)")
    ap.add_argument("--scrub-rates", dest="scrub_rates", default="20MB,200MB", help="scrub rates tried besides 0 (default 20MB,200MB)")
    ap.add_argument("--scrub-window", dest="scrub_window", type=float, default=12, help="seconds the scrub rate is sampled (default 12)")
    ap.add_argument("--parts", default="restore,cap,read,scrub", help="parts to run (default restore,cap,read,scrub)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds a repair may take before it counts as not done (default 900)")
    ap.add_argument("--quiet-wait", dest="quiet_wait", type=int, default=int(env("REPAIR_QUIET_WAIT", "1200")),
                    help="seconds to wait for other tests to end before each part (default $REPAIR_QUIET_WAIT or 1200)")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--work", help="working directory (must not exist or be empty; default a new one in $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the working directory (repos, logs)")
    ap.add_argument("--fungi", help="fungi binary to use (default: go build ./cmd/fungi into WORK)")
    ap.add_argument("--from-json", metavar="FILE", help="print the tables of a saved --json run (- for stdin) and exit")
    args = ap.parse_args()
    quiet = bc.quiet = args.quiet
    if args.from_json:
        print(render(json.load(sys.stdin if args.from_json == "-" else open(args.from_json))))
        return 0
    args.size = parse_size(args.size)
    args.parts = [p for p in args.parts.split(",") if p]
    args.scrub_rates = [r for r in args.scrub_rates.split(",") if r]
    bad = [p for p in args.parts if p not in ("restore", "cap", "read", "scrub")]
    if bad:
        ap.error("unknown part(s) %s" % ", ".join(bad))
    if args.size < MiB or args.rounds < 1 or args.kill < 1 or args.nodes < args.kill + 6:
        ap.error("--size must be at least 1M, --rounds and --kill at least 1, --nodes at least --kill + 6")
    try:
        parse_duration(args.grace), parse_duration(args.read_grace), parse_rate(args.cap)
        [parse_rate(r) for r in args.scrub_rates]
    except ValueError as e:
        ap.error(str(e))
    return bc.drive("bench_repair", ap, args, bench, render)


if __name__ == "__main__":
    sys.exit(main())
