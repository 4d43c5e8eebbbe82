#!/usr/bin/env python3
"""QSFS (issue 12): the shared tree through a FUSE mount, on a default testnet.

A 6-node testnet (`fungi testnet up -n 6 --no-store 6`, FUNGI_DEBUG_API=1);
node 6 holds no fragment and mounts the shared tree (`fungi mount MNT`).

  sequential  each round a fresh random file (--size) is added on node 1
              with `fungi add --to-files /bench/`, then read on node 6, each
              read cold (`sync; echo 3 > /proc/sys/vm/drop_caches` first):
              `cat MNT/bench/FILE > /dev/null` and `| sha256sum` against
              `fungi cat CID` into the same sinks, the two sides alternating
              which goes first; a second `cat` right after the first is the
              warm read (page cache). MB/s, core-seconds per GiB.
  random      fio 4 KiB randread (psync, iodepth 1, numjobs 1 and 4) through
              the mount: cold (drop caches, a fresh file each) and warm
              (after a full read): IOPS, p50/p99 completion latency.
  metadata    /debug/tree-fill links one small file under --files names in
              --files/100 directories (/meta) and in one directory (/flat);
              `find MNT/meta | wc -l`, `ls -lR MNT/meta`, `ls -l` of the flat
              directory, cold (fresh mount: unmount, mount, drop caches) and
              warm (right after), beside the same commands on empty files of
              the same shape on the work directory's disk (ext4 here).
  visibility  `fungi files mv` on node 2, until os.path.exists sees the new
              name in node 6's mount (polled every 5 ms), --moves times.
  million     (unless --million 0) tree-fill of --million entries in 1,000
              directories (/million): fill rate, `find` cold and warm.
  memory      VmRSS and live heap (after a GC, /debug/pprof/heap) of node 6
              and of the leader before the first fill and after filling to
              --entries (/more makes up the rest); /debug/snapshot on both;
              node 6 stopped and started: time until its API answers
              /api/v0/files/stat?arg=/, and until it holds the whole tree.

Before it starts, it waits (up to --quiet-wait seconds, polling every 30 s)
while `pgrep -f 'fungi.test|go test|fungi daemon'` shows processes it did
not start, and records whether the machine was quiet.

    scripts/bench_qsfs.py [--size 1G] [--rounds 3] [--files 100000]
                          [--million 1000000] [--entries 2000000] [--moves 20]
                          [--fio-runtime 20] [--quiet-wait 1200] [--json]
                          [--quiet] [--work DIR] [--keep] [--fungi BIN]
    scripts/bench_qsfs.py --from-json FILE|-   (render a saved --json run)

QSFS_SIZE, ROUNDS, QSFS_FILES, QSFS_MILLION (0 skips the 1M and 2M parts),
QSFS_ENTRIES and QSFS_QUIET_WAIT set the defaults. Figures are medians over
the rounds, with the range. Below ~512 MiB, node 6's 128 MiB decoded-block
cache serves part of a round's later sequential reads: keep --size large. Needs root (FUSE mounts, drop_caches), /dev/fuse,
fuse3 and fio (scripts/deps.sh installs them). Without --fungi it builds
cmd/fungi into WORK. MB = 10^6 bytes. Everything it started is stopped and
everything it mounted unmounted on exit, Ctrl-C included; WORK is removed
unless --keep. Python 3 standard library only.
"""
import argparse, json, os, shutil, signal, statistics, subprocess, sys, time, urllib.error, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no scripts/__pycache__
import bench_content as bc  # noqa: E402  (helpers: run, Watch, builds, ...)
from bench_content import Failure, human, parse_size, run  # noqa: E402

MiB = 1 << 20
TARGETS = {"seq_ratio": 0.9, "seq_mb_s": 250, "lsr_cold_s": 2.0, "visible_s": 2.0}
BUSY = "fungi.test|go test|fungi daemon"  # what another engineer's tests look like

quiet = False


def say(msg):
    if not quiet:
        print("bench_qsfs: " + msg, file=sys.stderr, flush=True)


bc.say = say  # bench_content's builders report as this script


def post_json(url, timeout=60):
    req = urllib.request.Request(url, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raise Failure("POST %s: %d %s" % (url, e.code, e.read()[:300].decode(errors="replace")))


def drop_caches():
    """Cold: the kernel's page, dentry and inode caches emptied (every
    node's ZDB files and the mount's pages)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def vmrss(pid, field="VmRSS"):
    """VmRSS (or VmHWM, the peak) of pid in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise Failure("no %s for pid %d" % (field, pid))


def heap(api):
    """Go's heap after a forced GC: /debug/pprof/heap?debug=1&gc=1."""
    with urllib.request.urlopen("http://%s/debug/pprof/heap?debug=1&gc=1" % api, timeout=120) as r:
        text = r.read().decode(errors="replace")
    out = {}
    for line in text.splitlines():
        for k in ("HeapAlloc", "HeapInuse", "HeapSys", "Sys"):
            if line.startswith("# %s = " % k):
                out[k] = int(line.split("=")[1])
    return out


def mounted(path):
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


def others(work):
    """Processes like another engineer's tests that this run did not start."""
    p = subprocess.run(["pgrep", "-af", BUSY], capture_output=True, text=True)
    return [l.strip() for l in p.stdout.splitlines() if l.strip() and work not in l]


def wait_quiet(work, limit):
    t0 = time.time()
    while True:
        seen = others(work)
        if not seen or time.time() - t0 >= limit:
            break
        say("machine not quiet (%d processes: %s); waiting (%.0f of %d s)" % (
            len(seen), "; ".join(s[:80] for s in seen[:3]), time.time() - t0, limit))
        time.sleep(min(30, max(1, limit - (time.time() - t0))))
    return {"waited_s": round(time.time() - t0), "limit_s": limit, "quiet": not seen, "others": seen}


class Testnet:
    """6 nodes, node 6 storing nothing, with the debug API."""

    def __init__(self, bin_, work):
        self.bin, self.dir, self.up = bin_, os.path.join(work, "tn"), False
        self.env = dict(os.environ, FUNGI_DEBUG_API="1")

    def fungi(self, *args, node=None, stdout=subprocess.PIPE):
        env = dict(self.env, FUNGI_PATH=self.nodes[node]["path"]) if node else self.env
        return run([self.bin, *args], env=env, stdout=stdout)

    def node_env(self, node):
        return dict(self.env, FUNGI_PATH=self.nodes[node]["path"])

    def refresh(self):
        nodes = json.loads(self.fungi("testnet", "status", "--dir", self.dir, "--json"))
        self.nodes = {n["index"]: n for n in nodes}
        return nodes

    def start(self):
        self.up = True  # down runs even if up fails half-way
        self.nodes = {}
        self.fungi("testnet", "up", "-n", "6", "--dir", self.dir, "--no-store", "6")
        deadline = time.time() + 60
        while True:
            nodes = self.refresh()
            leaders = [n for n in nodes if n.get("role") == "leader"]
            if leaders and all(n.get("alive") and n.get("api") for n in nodes):
                break
            if time.time() > deadline:
                raise Failure("fungi: no raft leader after 60 s (fungi testnet status)")
            time.sleep(0.2)
        self.leader = leaders[0]["index"]
        if self.leader == 6:
            raise Failure("fungi: node 6 (no-store) is the leader")

    def api(self, i):
        return self.nodes[i]["api"]

    def pid(self, i):
        return self.nodes[i]["pid"]

    def paths(self, i):
        """Entries of the shared tree node i holds (its own view)."""
        st = bc.get_json("http://%s/api/v0/cluster/status?local=true" % self.api(i))
        return st["metadata"]["paths"]

    def caught_up(self, i, timeout=600):
        """Waits until node i holds as many tree entries as the leader."""
        want = self.paths(self.leader)
        deadline = time.time() + timeout
        while self.paths(i) < want:
            if time.time() > deadline:
                raise Failure("node %d holds %d tree entries after %d s, the leader %d" % (i, self.paths(i), timeout, want))
            time.sleep(0.1)
        return want

    def tree_fill(self, root, n, dirs, cid):
        say("tree-fill %s: %s entries in %s directories (leader, node %d)" % (root, format(n, ","), format(dirs, ","), self.leader))
        return post_json("http://%s/api/v0/debug/tree-fill?arg=%s&n=%d&dirs=%d&cid=%s" % (
            self.api(self.leader), root, n, dirs, cid), timeout=7200)

    def stop(self):
        if self.up:
            subprocess.run([self.bin, "testnet", "down", "--dir", self.dir], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=self.env)
            self.up = False


class Mount:
    """Node 6's daemon's mount of the shared tree at DIR."""

    def __init__(self, tn, node, path):
        self.tn, self.node, self.path = tn, node, path
        os.makedirs(path, exist_ok=True)

    def mount(self):
        self.tn.fungi("mount", self.path, node=self.node)
        if not mounted(self.path):
            raise Failure("fungi mount %s returned, but nothing is mounted there" % self.path)

    def unmount(self):
        if mounted(self.path):
            self.tn.fungi("unmount", self.path, node=self.node)

    def fresh(self):
        """A fresh mount (nothing cached by the kernel or the mount) and cold
        caches."""
        self.unmount()
        self.mount()
        drop_caches()

    def cleanup(self):
        if not mounted(self.path):
            return
        try:
            subprocess.run([self.tn.bin, "unmount", self.path], env=self.tn.node_env(self.node),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        except subprocess.TimeoutExpired:
            pass
        if mounted(self.path):
            subprocess.run(["fusermount3", "-u", "-z", self.path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_exists(path, timeout=30):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > deadline:
            raise Failure("%s did not appear in %d s" % (path, timeout))
        time.sleep(0.005)


def read_null(cmd, env=None):
    """Wall-clock seconds of cmd with its stdout to /dev/null."""
    t0 = time.perf_counter()
    run(cmd, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


# every process spawn started, each in a session of its own (fio's jobs are
# processes of their own, `sh -c` has children): killed as a group on exit
children = []


def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    children.append(p)
    return p


def descendants(pid):
    """pid's children, theirs, ... (fio's job processes start sessions of
    their own, so killing the group misses them)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    kids.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(d))
            except OSError:
                pass
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def kill_children():
    for p in children:
        if p.poll() is None:
            for pid in [p.pid] + descendants(p.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            p.wait()
    children.clear()


def spawn_run(cmd, timeout=None):
    """Like run, in a session of its own: (stdout, stderr) as text."""
    p = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        o, e = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_children()
        raise Failure("%s: no answer after %d s" % (" ".join(cmd), timeout))
    if p.returncode != 0:
        raise Failure("%s: exit %d\n%s" % (" ".join(cmd), p.returncode, e.strip()[-2000:]))
    return o, e


def read_sha(cmd, env=None):
    """cmd | sha256sum: (seconds, hex digest)."""
    t0 = time.perf_counter()
    src = spawn(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    summer = spawn(["sha256sum"], stdin=src.stdout, stdout=subprocess.PIPE)
    src.stdout.close()  # sha256sum holds the pipe
    out = summer.communicate()[0]
    err = src.stderr.read()
    src.wait()
    took = time.perf_counter() - t0
    if src.returncode != 0 or summer.returncode != 0:
        raise Failure("%s | sha256sum: exit %d, %d\n%s" % (" ".join(cmd), src.returncode, summer.returncode,
                                                         err.decode(errors="replace").strip()))
    return took, out.split()[0].decode()


def sh_timed(script, *args, timeout=3600):
    """Wall-clock seconds and stdout of `sh -c script`."""
    t0 = time.perf_counter()
    o, _ = spawn_run(["sh", "-c", script, "sh", *args], timeout=timeout)
    return time.perf_counter() - t0, o


def median_range(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "all": xs}


def fio(path, jobs, runtime):
    cmd = ["fio", "--name=r", "--filename=" + path, "--rw=randread", "--bs=4k", "--runtime=%d" % runtime,
           "--time_based", "--ioengine=psync", "--iodepth=1", "--numjobs=%d" % jobs, "--group_reporting",
           "--invalidate=0", "--output-format=json"]
    d = json.loads(spawn_run(cmd, timeout=runtime + 300)[0])
    j = d["jobs"][0]
    if j.get("error"):
        raise Failure("%s: job error %d" % (" ".join(cmd), j["error"]))
    rd, pct = j["read"], j["read"]["clat_ns"].get("percentile", {})
    return {"iops": rd["iops"], "ios": rd["total_ios"], "p50_ms": pct.get("50.000000", 0) / 1e6,
            "p99_ms": pct.get("99.000000", 0) / 1e6, "mean_ms": rd["clat_ns"]["mean"] / 1e6, "jobs": jobs,
            "cached_after": cached(path)}


def cached(path):
    """Bytes of path in the page cache (util-linux fincore), or None."""
    if not shutil.which("fincore"):
        return None
    p = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", path], capture_output=True, text=True)
    try:
        return int(p.stdout.split()[0])
    except (IndexError, ValueError):
        return None


def make_local_tree(root, n, dirs):
    """Empty files named as tree-fill names them: ROOT/d0000/f0000000 ..."""
    for d in range(dirs):
        os.makedirs(os.path.join(root, "d%04d" % d), exist_ok=True)
    for i in range(n):
        open(os.path.join(root, "d%04d" % (i % dirs), "f%07d" % i), "w").close()


def bench(args, work):
    fungi_bin = os.path.abspath(args.fungi) if args.fungi else bc.build_fungi(work)
    out = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "machine": bc.machine(),
           "versions": {"fungi": run([fungi_bin, "version"]).strip(), "fio": run(["fio", "--version"]).strip()},
           "size": args.size, "rounds": args.rounds, "files": args.files, "million": args.million,
           "entries": args.entries, "fio_runtime": args.fio_runtime, "moves": args.moves}
    fs = subprocess.run(["stat", "-f", "-c", "%T", work], capture_output=True, text=True).stdout.strip()
    out["local_fs"] = "ext4" if fs == "ext2/ext3" else fs
    if args.quiet_wait > 0:
        say("waiting for a quiet machine (no other %r processes; at most %d s)" % (BUSY, args.quiet_wait))
    out["quiet"] = wait_quiet(work, args.quiet_wait)
    out["busy"] = {}
    out["load"] = {"start": os.getloadavg()}
    tn = Testnet(fungi_bin, work)
    mnt = Mount(tn, 6, os.path.join(work, "mnt"))
    watch = bc.Watch()

    def part(name):
        say(name)
        seen = others(work)
        if seen:
            out["busy"][name.split(":")[0]] = seen

    try:
        say("testnet up -n 6 --no-store 6 (FUNGI_DEBUG_API=1)")
        tn.start()
        say("leader is node %d; node 6 (no fragment) mounts the tree at %s" % (tn.leader, mnt.path))
        mnt.mount()
        daemons = [tn.pid(i) for i in tn.nodes]
        holders = [tn.pid(i) for i in tn.nodes if i != 6]
        watch.pids = daemons
        watch.groups = {"node6": [tn.pid(6)], "holders": holders}
        env6 = tn.node_env(6)

        def add_fresh(name):
            """A fresh random file added on node 1 at /bench/NAME: (CID, sha256)."""
            path = os.path.join(work, name)
            bc.write_random(path, args.size)
            want = run(["sha256sum", path]).split()[0]
            os.sync()
            t0 = time.perf_counter()
            c = tn.fungi("add", "-q", "--to-files", "/bench/", path, node=1).strip()
            took = time.perf_counter() - t0
            os.remove(path)
            wait_exists(os.path.join(mnt.path, "bench", name))
            return c, want, took

        # 1. sequential
        seq = []
        for r in range(args.rounds):
            part("sequential: round %d/%d, a fresh %s file added on node 1 with --to-files /bench/" % (r + 1, args.rounds, human(args.size)))
            name = "seq-%d" % (r + 1)
            c, want, add_s = add_fresh(name)
            rr = {"cid": c, "add_s": add_s}
            f = os.path.join(mnt.path, "bench", name)
            cmds = {"mount": ["cat", f], "cat": [fungi_bin, "cat", c]}
            order = ("mount", "cat") if r % 2 == 0 else ("cat", "mount")
            rr["order"] = list(order)
            for sink in ("null", "sha"):
                for side in order:
                    drop_caches()
                    key = "%s_%s" % (side, sink)
                    with watch("seq %s %d" % (key, r)):
                        if sink == "null":
                            rr[key + "_s"] = read_null(cmds[side], env6)
                        else:
                            rr[key + "_s"], h = read_sha(cmds[side], env6)
                    if sink == "sha" and h != want:
                        raise Failure("%s | sha256sum: %s, the file's is %s" % (" ".join(cmds[side]), h, want))
                    if side == "mount" and sink == "null":
                        with watch("seq warm_null %d" % r):
                            rr["warm_null_s"] = read_null(cmds["mount"])
            mb = args.size / 1e6
            say("round %d: mount %.0f MB/s, fungi cat %.0f MB/s (> /dev/null); | sha256sum: mount %.0f, fungi cat %.0f; warm %.0f MB/s" % (
                r + 1, mb / rr["mount_null_s"], mb / rr["cat_null_s"], mb / rr["mount_sha_s"], mb / rr["cat_sha_s"], mb / rr["warm_null_s"]))
            seq.append(rr)
        mb = args.size / 1e6
        out["seq"] = {"rounds_detail": seq}
        for sink in ("null", "sha"):
            out["seq"][sink] = {"mount_mb_s": median_range([mb / rr["mount_%s_s" % sink] for rr in seq]),
                                "cat_mb_s": median_range([mb / rr["cat_%s_s" % sink] for rr in seq]),
                                "ratio": median_range([rr["cat_%s_s" % sink] / rr["mount_%s_s" % sink] for rr in seq])}
        out["seq"]["warm_mb_s"] = median_range([mb / rr["warm_null_s"] for rr in seq])

        # 2. random reads
        out["fio"] = {}
        for jobs in (1, 4):
            part("random: fio randread 4 KiB, %d job%s, cold (a fresh file, caches dropped)" % (jobs, "s" if jobs > 1 else ""))
            name = "fio-cold-%d" % jobs
            add_fresh(name)
            drop_caches()
            out["fio"]["cold_%d" % jobs] = fio(os.path.join(mnt.path, "bench", name), jobs, args.fio_runtime)
        warm = os.path.join(mnt.path, "bench", "fio-cold-4")
        part("random: fio randread 4 KiB, warm (after one full read of the file through the mount)")
        read_null(["cat", warm])
        for jobs in (1, 4):
            out["fio"]["warm_%d" % jobs] = fio(warm, jobs, args.fio_runtime)
        for k, v in out["fio"].items():
            say("fio %s: %.0f IOPS, p50 %.3f ms, p99 %.3f ms" % (k, v["iops"], v["p50_ms"], v["p99_ms"]))

        # 3. metadata (and the memory baseline before any fill)
        mem = out["memory"] = {}

        mem["trace"] = []

        def mem_sample(label):
            """Memory of node 6 and the leader now; kept in the trace too."""
            x = {"label": label, "paths": tn.caught_up(6), "node6_rss": vmrss(tn.pid(6)), "leader_rss": vmrss(tn.pid(tn.leader)),
                 "node6_hwm": vmrss(tn.pid(6), "VmHWM"), "leader_hwm": vmrss(tn.pid(tn.leader), "VmHWM"),
                 "node6_heap": heap(tn.api(6)), "leader_heap": heap(tn.api(tn.leader))}
            mem["trace"].append(x)
            return x

        mem["before"] = mem_sample("before the first fill (after the reads)")
        part("metadata: %s files in %s directories (/meta) and %s in one (/flat), one small file linked" % (
            format(args.files, ","), format(args.dirs, ","), format(args.files, ",")))
        small = os.path.join(work, "small")
        with open(small, "w") as f:
            f.write("hello, qsfs\n")
        small_cid = tn.fungi("add", "-q", small, node=1).strip()
        meta = out["meta"] = {"fill": {}}
        meta["fill"]["meta"] = tn.tree_fill("/meta", args.files, args.dirs, small_cid)
        meta["fill"]["flat"] = tn.tree_fill("/flat", args.files, 1, small_cid)
        mem_sample("after the /meta and /flat fills")
        local = os.path.join(work, "local")
        say("the same shape as empty files on %s (%s)" % (work, out["local_fs"]))
        make_local_tree(os.path.join(local, "meta"), args.files, args.dirs)
        make_local_tree(os.path.join(local, "flat"), args.files, 1)
        want_find = args.files + args.dirs + 1
        cmds = {"find": ("find \"$1\"/meta | wc -l", lambda o: int(o.strip()) == want_find),
                "lsr": ("ls -lR \"$1\"/meta > /dev/null", None),
                "lsflat": ("ls -l \"$1\"/flat/d0000 | wc -l", lambda o: int(o.strip()) == args.files + 1)}
        res = {}
        for r in range(args.rounds):
            part("metadata: round %d/%d, cold (fresh mount, caches dropped) then warm" % (r + 1, args.rounds))
            for side, root in (("qsfs", mnt.path), ("local", local)):
                for k, (script, check) in cmds.items():
                    if side == "qsfs":
                        mnt.fresh()
                    else:
                        drop_caches()
                    for state in ("cold", "warm"):
                        with watch("meta %s %s %s %d" % (side, k, state, r)):
                            took, o = sh_timed(script, root)
                        if check and not check(o):
                            raise Failure("%s on %s: %r" % (script, root, o.strip()))
                        res.setdefault("%s_%s_%s" % (side, k, state), []).append(took)
            say("round %d: ls -lR cold %.2f s (local %.2f s), find cold %.2f s, ls -l of %s entries cold %.2f s" % (
                r + 1, res["qsfs_lsr_cold"][-1], res["local_lsr_cold"][-1], res["qsfs_find_cold"][-1],
                format(args.files, ","), res["qsfs_lsflat_cold"][-1]))
        meta["times"] = {k: median_range(v) for k, v in res.items()}
        mem_sample("after the metadata rounds")
        shutil.rmtree(local)

        # 5. visibility of a change made elsewhere
        part("visibility: fungi files mv on node 2, until node 6's mount shows it (%d moves)" % args.moves)
        tn.tree_fill("/vis", args.moves, 1, small_cid)
        tn.fungi("files", "mkdir", "-p", "/vis/moved", node=2)
        tn.caught_up(6)
        wait_exists(os.path.join(mnt.path, "vis", "moved"))
        vis, cmd_s = [], []
        env2 = tn.node_env(2)
        for i in range(args.moves):
            src, dst = "/vis/d0000/f%07d" % i, "/vis/moved/m%03d" % i
            os.listdir(os.path.join(mnt.path, "vis", "moved"))  # the kernel knows the directory
            os.stat(mnt.path + src)
            if os.path.exists(mnt.path + dst):  # and that dst is not there
                raise Failure("%s exists before the move" % dst)
            t0 = time.perf_counter()
            p = spawn([fungi_bin, "files", "mv", src, dst], env=env2, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            done = None
            while not os.path.exists(mnt.path + dst):
                if done is None and p.poll() is not None:
                    done = time.perf_counter() - t0
                if time.perf_counter() - t0 > 60:
                    p.kill()
                    raise Failure("%s not in node 6's mount 60 s after fungi files mv" % dst)
                time.sleep(0.005)
            vis.append(time.perf_counter() - t0)
            err = p.stderr.read()
            p.wait()
            if p.returncode != 0:
                raise Failure("fungi files mv %s %s (node 2): exit %d\n%s" % (src, dst, p.returncode, err.decode(errors="replace")))
            cmd_s.append(done if done is not None else time.perf_counter() - t0)
        out["visibility"] = {"seconds": median_range(vis), "cmd_seconds": median_range(cmd_s),
                             "tree_entries": tn.paths(tn.leader)}
        say("visibility: median %.0f ms (max %.0f ms); fungi files mv itself %.0f ms" % (
            1000 * statistics.median(vis), 1000 * max(vis), 1000 * statistics.median(cmd_s)))

        # million
        if args.million:
            part("million: %s entries in 1,000 directories (/million)" % format(args.million, ","))
            dirs = min(1000, args.million)
            m = out["million_find"] = {"fill": tn.tree_fill("/million", args.million, dirs, small_cid)}
            mem_sample("after the /million fill")
            for state in ("cold", "warm"):
                if state == "cold":
                    mnt.fresh()
                took, o = sh_timed("find \"$1\"/million | wc -l", mnt.path)
                if int(o.strip()) != args.million + dirs + 1:
                    raise Failure("find over /million: %s entries, want %d" % (o.strip(), args.million + dirs + 1))
                m[state + "_s"], m["count"] = took, int(o.strip())
            say("million: fill %.0f/s, find cold %.1f s, warm %.1f s (%s entries)" % (
                m["fill"]["per_second"], m["cold_s"], m["warm_s"], format(m["count"], ",")))
            mem_sample("after find over /million")
            have = tn.paths(tn.leader)
            if args.entries > have:
                n = args.entries - have
                part("memory: filling to %s tree entries (%s more under /more)" % (format(args.entries, ","), format(n, ",")))
                mem["fill_more"] = tn.tree_fill("/more", n, max(1, min(1000, n // 1000)), small_cid)

        # 4. memory, snapshot, restore
        part("memory: RSS and live heap at %s entries, snapshot, node 6 restart" % format(tn.paths(tn.leader), ","))
        mem["after"] = mem_sample("the full tree")
        for who, i in (("leader", tn.leader), ("node6", 6)):
            t0 = time.perf_counter()
            post_json("http://%s/api/v0/debug/snapshot" % tn.api(i), timeout=600)
            mem["snapshot_%s_s" % who] = time.perf_counter() - t0
        want = mem["after"]["paths"]
        mnt.unmount()
        mem["unmounted"] = mem_sample("node 6 unmounted, after the snapshots")
        tn.fungi("testnet", "stop", "--dir", tn.dir, "6")
        t0 = time.perf_counter()
        tn.fungi("testnet", "start", "--dir", tn.dir, "6")
        rs = mem["restart"] = {"start_cmd_s": time.perf_counter() - t0}
        tn.refresh()
        api6 = tn.api(6)
        while "api_s" not in rs or "full_s" not in rs:
            if time.perf_counter() - t0 > 600:
                raise Failure("node 6 restarted: no whole tree after 600 s (%s)" % rs)
            try:
                if "api_s" not in rs:
                    bc.get_json("http://%s/api/v0/files/stat?arg=/" % api6)
                    rs["api_s"] = time.perf_counter() - t0
                if tn.paths(6) >= want:
                    rs["full_s"] = time.perf_counter() - t0
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.01)
        rs["node6_rss"], rs["node6_hwm"] = vmrss(tn.pid(6)), vmrss(tn.pid(6), "VmHWM")
        rs["node6_heap"] = heap(api6)
        say("memory: node 6 RSS %.0f -> %.0f MB, leader %.0f -> %.0f MB; restart: API %.2f s, whole tree %.2f s" % (
            mem["before"]["node6_rss"] / 1e6, mem["after"]["node6_rss"] / 1e6, mem["before"]["leader_rss"] / 1e6,
            mem["after"]["leader_rss"] / 1e6, rs["api_s"], rs["full_s"]))
        out["load"]["end"] = os.getloadavg()
        out["others_cpu"] = watch.seen
        return out
    finally:
        # a second Ctrl-C must not cut the cleanup short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("cleaning up (unmount, testnet down)")
        kill_children()
        mnt.cleanup()
        tn.stop()
        if mounted(mnt.path):  # the daemon is gone; its mount must be too
            subprocess.run(["fusermount3", "-u", "-z", mnt.path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def verdict(ok):
    return "met" if ok else "**MISSED**"


def render(d):
    """The run as text: facts, then markdown tables."""
    m, n = d["machine"], d["rounds"]
    gib = d["size"] / (1 << 30)

    def mr(x, fmt="%.0f", scale=1):
        v = [x["median"] * scale, x["min"] * scale, x["max"] * scale]
        return (fmt + " (" + fmt + "-" + fmt + ")") % tuple(v) if n > 1 else fmt % v[0]

    def num(x):
        return format(x, ",")

    q = d["quiet"]
    lines = ["- machine: %s, nproc %d, kernel %s; %s" % (m["cpu"] or "?", m["nproc"], m["kernel"], d["versions"]["fungi"]),
             "- load average (1, 5, 15 min): %s at the start, %s at the end" % (
                 ", ".join("%.2f" % x for x in d["load"]["start"]), ", ".join("%.2f" % x for x in d["load"].get("end", d["load"]["start"])))]
    if q["quiet"] and not d.get("busy"):
        lines.append("- quiet machine: no other `%s` process when it started (waited %d s) nor at any part's start" % (BUSY, q["waited_s"]))
    else:
        seen = sorted({s.split(" ", 1)[1][:70] for v in [q["others"]] + list(d.get("busy", {}).values()) for s in v})
        lines.append("- **machine not quiet**: %s (waited %d of %d s at the start%s): %s" % (
            "other processes ran" if q["quiet"] else "other processes still ran after waiting", q["waited_s"], q["limit_s"],
            "; seen again during: " + ", ".join(d["busy"]) if d.get("busy") else "", "; ".join("`%s`" % s for s in seen[:6])))
    if d.get("others_cpu"):
        share = max((w["others_cpu_s"] / (w["wall_s"] * (m["nproc"] or 1)) if w["wall_s"] else 0, k) for k, w in d["others_cpu"].items())
        lines.append("- CPU taken by other processes during the timed measures: at most %.0f%% of the %d cores (%s)" % (
            100 * share[0], m["nproc"], share[1]))
    s = d["seq"]
    cids = ", ".join(rr["cid"] for rr in s["rounds_detail"])
    lines += ["- sequential: a fresh %s random file per round, %d round%s, median (min-max); CIDs %s" % (
        human(d["size"]), n, "s" if n != 1 else "", cids), ""]
    nul, sha = s["null"], s["sha"]
    seq_ok = nul["ratio"]["median"] >= TARGETS["seq_ratio"] and nul["mount_mb_s"]["median"] >= TARGETS["seq_mb_s"]
    lines += [
        "| cold sequential read on node 6, MB/s | through the mount (`cat MNT/bench/FILE`) | `fungi cat CID` | mount/cat | target |",
        "|---|---|---|---|---|",
        "| `> /dev/null` | **%s** | %s | **%s** | >= 0.9x and >= 250 MB/s: %s |" % (
            mr(nul["mount_mb_s"]), mr(nul["cat_mb_s"]), mr(nul["ratio"], "%.2f"), verdict(seq_ok)),
        "| `\\| sha256sum` | %s | %s | %s | |" % (mr(sha["mount_mb_s"]), mr(sha["cat_mb_s"]), mr(sha["ratio"], "%.2f")),
        "| warm: a second `cat > /dev/null` right after (page cache) | %s | | | |" % mr(s["warm_mb_s"]),
    ]
    seen = d.get("others_cpu") or {}
    cost = []
    for key, label in (("mount_null", "mount > /dev/null"), ("cat_null", "fungi cat > /dev/null"),
                       ("mount_sha", "mount | sha256sum"), ("cat_sha", "fungi cat | sha256sum")):
        spans = [v["cpu_s"] for k, v in seen.items() if k.startswith("seq %s " % key)]
        if spans:
            cost.append("%s: node 6 %.2f, holders %.2f, reader %.2f" % (label, statistics.median(x["node6"] for x in spans) / gib,
                                                                      statistics.median(x["holders"] for x in spans) / gib,
                                                                      statistics.median(x["client"] for x in spans) / gib))
    if cost:
        lines += ["", "Core-seconds per GiB (median; reader = `cat` or `fungi cat`, `sha256sum` and this script): " + "; ".join(cost) + "."]
    f = d["fio"]
    lines += ["", "| fio randread 4 KiB through the mount, psync, %d s | IOPS | p50 ms | p99 ms | file in the page cache after |" % d["fio_runtime"],
              "|---|---|---|---|---|"]
    for k, label in (("cold_1", "cold (fresh file, caches dropped), 1 job"), ("cold_4", "cold (another fresh file), 4 jobs"),
                     ("warm_1", "warm (after a full read), 1 job"), ("warm_4", "warm, 4 jobs")):
        if k in f:
            c = f[k].get("cached_after")
            lines.append("| %s | %s | %.3f | %.3f | %s |" % (label, num(round(f[k]["iops"])), f[k]["p50_ms"], f[k]["p99_ms"],
                                                           "" if c is None else "%.0f%%" % (100 * c / d["size"])))
    t, mf = d["meta"]["times"], d["meta"]["fill"]
    files, dirs = d["files"], d["files"] // 100 or 1
    lsr_ok = t["qsfs_lsr_cold"]["median"] <= TARGETS["lsr_cold_s"]
    lines += ["", "| seconds | QSFS cold (fresh mount) | QSFS warm | %s cold | %s warm | target |" % (d["local_fs"], d["local_fs"]),
              "|---|---|---|---|---|---|"]
    for k, label, target in (("find", "`find MNT/meta \\| wc -l` (%s entries)" % num(files + dirs + 1), ""),
                             ("lsr", "`ls -lR MNT/meta > /dev/null` (%s files in %s directories)" % (num(files), num(dirs)),
                              "cold <= 2 s: %s" % verdict(lsr_ok)),
                             ("lsflat", "`ls -l` of one %s-entry directory" % num(files), "")):
        cold = mr(t["qsfs_%s_cold" % k], "%.2f")
        lines.append("| %s | %s | %s | %s | %s | %s |" % (label, "**%s**" % cold if target else cold, mr(t["qsfs_%s_warm" % k], "%.2f"),
                                                        mr(t["local_%s_cold" % k], "%.2f"), mr(t["local_%s_warm" % k], "%.2f"), target))
    mil = d.get("million_find")
    if mil:
        lines.append("| `find` over %s entries in 1,000 directories (one run) | %.1f | %.1f | | | works, no timeout: met |" % (
            num(mil["count"]), mil["cold_s"], mil["warm_s"]))
    fills = ["%s %s entries at %s/s" % (k if k.startswith("/") else "/" + k, num(v["entries"]), num(round(v["per_second"])))
             for k, v in list(mf.items()) + ([("million", mil["fill"])] if mil else []) + (
                 [("more", d["memory"]["fill_more"])] if "fill_more" in d["memory"] else [])]
    lines += ["", "Tree fill (`/debug/tree-fill` on the leader, one raft write per entry, 64 writers): " + "; ".join(fills) + "."]
    v = d["visibility"]
    vis_ok = v["seconds"]["median"] <= TARGETS["visible_s"]
    lines += ["", "Visibility: `fungi files mv` on node 2 until the new name exists in node 6's mount (polled every 5 ms), "
              "%d moves in a tree of %s entries: median **%.0f ms** (%.0f-%.0f ms), target <= 2 s: %s; the `fungi files mv` "
              "command itself returns after %.0f ms (median)." % (
                  d["moves"], num(v["tree_entries"]), 1000 * v["seconds"]["median"], 1000 * v["seconds"]["min"],
                  1000 * v["seconds"]["max"], verdict(vis_ok), 1000 * v["cmd_seconds"]["median"])]
    mem = d["memory"]
    b, a, rs = mem["before"], mem["after"], mem["restart"]
    grown = a["paths"] - b["paths"]

    def per(k, sub=None):
        x0, x1 = (b[k][sub], a[k][sub]) if sub else (b[k], a[k])
        return "%.0f" % ((x1 - x0) / grown) if grown else "-"
    lines += ["", "| memory, tree of %s -> %s entries | node 6 (mounted, no fragment) | leader |" % (num(b["paths"]), num(a["paths"])),
              "|---|---|---|",
              "| VmRSS before -> after, MB | %.0f -> %.0f | %.0f -> %.0f |" % (b["node6_rss"] / 1e6, a["node6_rss"] / 1e6,
                                                                         b["leader_rss"] / 1e6, a["leader_rss"] / 1e6),
              "| VmRSS growth per entry, bytes | **%s** | **%s** |" % (per("node6_rss"), per("leader_rss")),
              "| live heap after a GC (HeapAlloc) before -> after, MB | %.0f -> %.0f | %.0f -> %.0f |" % (
                  b["node6_heap"]["HeapAlloc"] / 1e6, a["node6_heap"]["HeapAlloc"] / 1e6,
                  b["leader_heap"]["HeapAlloc"] / 1e6, a["leader_heap"]["HeapAlloc"] / 1e6),
              "| live heap growth per entry, bytes | %s | %s |" % (per("node6_heap", "HeapAlloc"), per("leader_heap", "HeapAlloc")),
              "| `POST /api/v0/debug/snapshot` at %s entries, s | %.2f | %.2f |" % (num(a["paths"]), mem["snapshot_node6_s"], mem["snapshot_leader_s"])]
    if mem.get("trace"):
        lines += ["", "| through the run, MB | entries | node 6 VmRSS | node 6 VmHWM (peak) | node 6 live heap | node 6 HeapSys | "
                  "leader VmRSS | leader live heap |", "|---|---|---|---|---|---|---|---|"]
        for x in mem["trace"] + [dict(rs, label="node 6 restarted", paths=a["paths"])]:
            lines.append("| %s | %s | %.0f | %s | %.0f | %.0f | %s | %s |" % (
                x["label"], num(x["paths"]), x["node6_rss"] / 1e6, "%.0f" % (x["node6_hwm"] / 1e6) if "node6_hwm" in x else "",
                x["node6_heap"]["HeapAlloc"] / 1e6, x["node6_heap"]["HeapSys"] / 1e6,
                "%.0f" % (x["leader_rss"] / 1e6) if "leader_rss" in x else "",
                "%.0f" % (x["leader_heap"]["HeapAlloc"] / 1e6) if "leader_heap" in x else ""))
    lines += ["", "Restart of node 6 at %s entries (`fungi testnet stop --dir D 6`, then `fungi testnet start --dir D 6`, "
              "which returned after %.2f s): its API answers `/api/v0/files/stat?arg=/` %.2f s after the start command, and it "
              "holds the whole tree (`/api/v0/cluster/status?local=true` counts %s entries) %.2f s after; VmRSS then %.0f MB, "
              "live heap %.0f MB." % (num(a["paths"]), rs["start_cmd_s"], rs["api_s"], num(a["paths"]), rs["full_s"],
                                      rs["node6_rss"] / 1e6, rs["node6_heap"]["HeapAlloc"] / 1e6)]
    lines += ["", "Targets: sequential mount >= 0.9x `fungi cat` and >= 250 MB/s: %s (%.2fx, %.0f MB/s); cold `ls -lR` of the "
              "%s-file tree <= 2 s: %s (%.2f s); visibility <= 2 s: %s (%.0f ms)%s." % (
                  verdict(seq_ok), nul["ratio"]["median"], nul["mount_mb_s"]["median"], num(files), verdict(lsr_ok),
                  t["qsfs_lsr_cold"]["median"], verdict(vis_ok), 1000 * v["seconds"]["median"],
                  "; find over %s entries without a timeout: met" % num(mil["count"]) if mil else "")]
    return "\n".join(lines)


def main():
    global quiet
    ap = argparse.ArgumentParser(description="QSFS: the shared tree through node 6's FUSE mount on a 6-node testnet.")
    env = os.environ.get
    ap.add_argument("--size", default=env("QSFS_SIZE", "1G"), help="file size (e.g. 256M, 1G; default $QSFS_SIZE or 1G)")
    ap.add_argument("--rounds", type=int, default=int(env("ROUNDS", "3")), help="rounds (default $ROUNDS or 3)")
    ap.add_argument("--files", type=int, default=int(env("QSFS_FILES", "100000")),
                    help="files of the metadata tree, in files/100 directories, and of the flat directory (default $QSFS_FILES or 100000)")
    ap.add_argument("--million", type=int, default=int(env("QSFS_MILLION", "1000000")),
                    help="entries of the find test in 1,000 directories; 0 skips it and the fill to --entries (default $QSFS_MILLION or 1000000)")
    ap.add_argument("--entries", type=int, default=int(env("QSFS_ENTRIES", "2000000")),
                    help="tree entries for the memory figures (default $QSFS_ENTRIES or 2000000)")
    ap.add_argument("--moves", type=int, default=20, help="moves timed for visibility (default 20)")
    ap.add_argument("--fio-runtime", dest="fio_runtime", type=int, default=20, help="seconds per fio run (default 20)")
    ap.add_argument("--quiet-wait", dest="quiet_wait", type=int, default=int(env("QSFS_QUIET_WAIT", "1200")),
                    help="seconds to wait for other tests to end before measuring (default $QSFS_QUIET_WAIT or 1200)")
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
    if args.size < MiB or args.rounds < 1 or args.files < 1 or args.moves < 1 or args.million < 0:
        ap.error("--size must be at least 1M, --rounds, --files and --moves at least 1, --million at least 0")
    args.dirs = max(1, args.files // 100)
    if os.geteuid() != 0:
        ap.error("needs root: FUSE mounts and /proc/sys/vm/drop_caches")
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        ap.error("needs /dev/fuse and fuse3 (fusermount3): run scripts/deps.sh")
    if not shutil.which("fio"):
        ap.error("fio is not installed: run scripts/deps.sh (it installs fio and fuse3)")
    if args.million and args.million < 1000:
        ap.error("--million must be 0 or at least 1000")
    return bc.drive("bench_qsfs", ap, args, bench, render)


if __name__ == "__main__":
    sys.exit(main())
