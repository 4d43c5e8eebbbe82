#!/usr/bin/env python3
"""Content delivery, FungiStor beside Kubo, in one run on this machine.

FungiStor: a 6-node testnet (`fungi testnet up -n 6 --no-store 6`; node 6
holds no fragment: a reader). Kubo: two daemons on loopback (`--profile
test`, no bootstrap, no DHT), B connected to A. The same random file and the
same 1 MiB objects go to both sides:

  publish     `fungi add -q` on the raft leader vs `ipfs add` on A, MB/s
  read        cold `fungi cat` on node 6 vs cold `ipfs cat` on B, MB/s
              (then the bytes are checked once per side, sha256)
  first byte  GET of a cold 1 MiB object: node 6's /api/v0/cat vs B's
              gateway /ipfs/CID, request to first body byte, p50/p99 ms
  storage     bytes the fungi nodes' ZDBs gained per byte published
              (/api/v0/repo/stat, all nodes) vs A's `ipfs repo stat`

    scripts/bench_content.py [--size 1G] [--objects 100] [--json] [--quiet]
                             [--work DIR] [--keep] [--fungi BIN] [--ipfs BIN]
    scripts/bench_content.py --from-json FILE|-   (render a saved --json run)

Without --fungi it builds cmd/fungi into WORK; without --ipfs it runs
scripts/kubo.sh and uses .tools/ipfs. MB = 10^6 bytes. Everything it
started is stopped on exit, Ctrl-C included; WORK is removed unless --keep.
Python 3 standard library only.
"""
import argparse, hashlib, http.client, json, math, os, platform, shutil, signal
import socket, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1 << 20
# Kubo's import for both the big file and the objects (the brief's command)
KUBO_ADD = ["add", "--cid-version", "1", "--chunker", "size-1048576", "--raw-leaves", "-Q"]
TARGETS = {"publish": ">= 0.6", "read": ">= 2", "first_byte": "<= 0.2", "overhead": "1.25 in theory (16/4)"}

quiet = False


def say(msg):
    if not quiet:
        print("bench_content: " + msg, file=sys.stderr, flush=True)


def parse_size(s):
    s = s.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1:], 1)
    return int(float(s.rstrip("KMG")) * mult)


def human(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return "%d %s" % (n // size, unit)
    return "%d bytes" % n


def run(cmd, env=None, stdout=subprocess.PIPE):
    """Runs cmd and returns its stdout as text; a failure shows the command
    and its output."""
    p = subprocess.run(cmd, env=env, stdout=stdout, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise Failure("%s: exit %d\n%s" % (" ".join(cmd), p.returncode, p.stderr.decode(errors="replace").strip()))
    return p.stdout.decode() if p.stdout is not None else ""


class Failure(Exception):
    pass


def timed(cmd, env):
    """Wall-clock seconds of cmd with its stdout to /dev/null."""
    os.sync()  # earlier writes are not flushed on this run's clock
    t0 = time.perf_counter()
    run(cmd, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def sha256_of(cmd, env):
    h = hashlib.sha256()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    n = 0
    for chunk in iter(lambda: p.stdout.read(MiB), b""):
        h.update(chunk)
        n += len(chunk)
    err = p.stderr.read()
    if p.wait() != 0:
        raise Failure("%s: exit %d\n%s" % (" ".join(cmd), p.returncode, err.decode(errors="replace").strip()))
    return h.hexdigest(), n


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def write_random(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(os.urandom(n))
            left -= n


def free_ports(n):
    """n distinct free loopback TCP ports (held until all are picked)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def first_byte_ms(addr, path, want):
    """GETs http://addr/path on a fresh connection; returns the ms from
    sending the request to the first body byte, after checking the status
    and that the body is `want` bytes long."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        conn.connect()
        t0 = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        first = resp.read(1)
        t1 = time.perf_counter()
        rest = resp.read()
        if resp.status != 200 or len(first) + len(rest) != want:
            raise Failure("GET http://%s%s: %d, %d bytes (want 200, %d bytes)\n%s"
                          % (addr, path, resp.status, len(first) + len(rest), want, (first + rest)[:300].decode(errors="replace")))
        return (t1 - t0) * 1000, hashlib.sha256(first + rest).hexdigest()
    finally:
        conn.close()


def percentile(xs, p):
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def get_json(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


class Fungi:
    """The FungiStor side: a testnet of 6 nodes, node 6 storing nothing."""

    def __init__(self, bin_, work):
        self.bin, self.dir, self.up = bin_, os.path.join(work, "tn"), False

    def fungi(self, *args, path=None):
        env = dict(os.environ, FUNGI_PATH=path) if path else None
        return run([self.bin, *args], env=env)

    def start(self):
        self.up = True  # down runs even if up fails half-way
        self.fungi("testnet", "up", "-n", "6", "--dir", self.dir, "--no-store", "6")
        nodes = json.loads(self.fungi("testnet", "status", "--dir", self.dir, "--json"))
        self.nodes = {n["index"]: n for n in nodes}
        self.reader = self.nodes[6]
        deadline = time.time() + 60
        while True:
            leader = json.loads(self.fungi("cluster", "status", "--json", path=self.reader["path"]))["leader"]
            match = [n for n in nodes if leader and leader in (n.get("peer"), n.get("peer_id"))]
            if match:
                self.leader = match[0]
                break
            if time.time() > deadline:
                raise Failure("fungi: no raft leader after 60 s (fungi cluster status on node 6)")
            time.sleep(0.2)
        for n in nodes:
            with open(os.path.join(n["path"], "api")) as f:
                n["api"] = f.read().strip()

    def env(self, node):
        return dict(os.environ, FUNGI_PATH=node["path"])

    def add(self, path):
        return self.fungi("add", "-q", path, path=self.leader["path"]).strip()

    def repo_stat(self):
        tot = {"fragments": 0, "fragment_bytes": 0, "data_bytes": 0}
        per = {}
        for i, n in sorted(self.nodes.items()):
            st = get_json("http://%s/api/v0/repo/stat" % n["api"])
            per[i] = st
            for k in tot:
                tot[k] += st[k]
        return tot, per

    def stop(self):
        if self.up:
            subprocess.run([self.bin, "testnet", "down", "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.up = False


class Kubo:
    """The Kubo side: daemons A and B on loopback, B connected to A."""

    def __init__(self, bin_, work):
        self.bin, self.work, self.procs = bin_, work, {}

    def env(self, name):
        return dict(os.environ, IPFS_PATH=os.path.join(self.work, "kubo-" + name), IPFS_TELEMETRY="off")

    def ipfs(self, name, *args):
        return run([self.bin, *args], env=self.env(name))

    def start(self):
        ports = free_ports(6)
        self.api, self.gateway, self.swarm = {}, {}, {}
        for name, (sw, api, gw) in (("a", ports[0:3]), ("b", ports[3:6])):
            self.ipfs(name, "init", "--profile", "test", "--empty-repo")
            # test profile: loopback only, no bootstrap, no MDNS. Routing
            # none: no DHT, so blocks travel by bitswap between the two
            # connected peers only, with no provide or lookup work beside
            cfg = {"Addresses.Swarm": ["/ip4/127.0.0.1/tcp/%d" % sw],
                   "Addresses.API": "/ip4/127.0.0.1/tcp/%d" % api,
                   "Addresses.Gateway": "/ip4/127.0.0.1/tcp/%d" % gw,
                   "Routing.Type": "none"}
            for k, v in cfg.items():
                self.ipfs(name, "config", "--json", k, json.dumps(v))
            self.api[name], self.gateway[name], self.swarm[name] = "127.0.0.1:%d" % api, "127.0.0.1:%d" % gw, sw
            log = open(os.path.join(self.work, "kubo-%s.log" % name), "wb")
            # own session: a Ctrl-C reaches us, and we stop the daemons
            self.procs[name] = subprocess.Popen([self.bin, "daemon"], env=self.env(name), stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)
        for name in ("a", "b"):
            self.wait_ready(name)
        a_id = json.loads(self.ipfs("a", "id"))["ID"]
        self.ipfs("b", "swarm", "connect", "/ip4/127.0.0.1/tcp/%d/p2p/%s" % (self.swarm["a"], a_id))

    def wait_ready(self, name):
        deadline = time.time() + 60
        while True:
            if self.procs[name].poll() is not None:
                raise Failure("ipfs daemon %s exited %d (see %s)" % (name.upper(), self.procs[name].returncode,
                                                                     os.path.join(self.work, "kubo-%s.log" % name)))
            try:
                get_json("http://%s/api/v0/id" % self.api[name], "POST")
                socket.create_connection(self.gateway[name].split(":"), timeout=1).close()
                return
            except OSError:
                pass
            if time.time() > deadline:
                raise Failure("ipfs daemon %s not ready after 60 s" % name.upper())
            time.sleep(0.1)

    def add(self, path):
        return self.ipfs("a", *KUBO_ADD, path).strip()

    def repo_size(self, name):
        return json.loads(self.ipfs(name, "repo", "stat", "--size-only", "--enc", "json"))["RepoSize"]

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = {}


def build_fungi(work):
    out = os.path.join(work, "bin", "fungi")
    say("building fungi (go build ./cmd/fungi)")
    v = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True).stdout.strip() or "dev"
    p = subprocess.run(["go", "build", "-ldflags", "-X main.version=" + v, "-o", out, "./cmd/fungi"], cwd=ROOT,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise Failure("go build ./cmd/fungi failed:\n" + p.stderr)
    return out


def build_kubo():
    say("locating Kubo (scripts/kubo.sh)")
    p = subprocess.run([os.path.join(ROOT, "scripts", "kubo.sh")], capture_output=True, text=True)
    if p.returncode != 0:
        raise Failure("scripts/kubo.sh failed:\n" + p.stderr)
    return os.path.join(ROOT, ".tools", "ipfs")


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "kernel": platform.release(), "cpu": cpu}


def bench(args, work):
    fungi_bin = os.path.abspath(args.fungi) if args.fungi else build_fungi(work)
    ipfs_bin = os.path.abspath(args.ipfs) if args.ipfs else build_kubo()
    out = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "machine": machine(),
           "versions": {"fungi": run([fungi_bin, "version"]).strip(),
                        "ipfs": run([ipfs_bin, "version"], env=dict(os.environ, IPFS_TELEMETRY="off")).strip()},
           "size": args.size, "objects": args.objects}
    fungi, kubo = Fungi(fungi_bin, work), Kubo(ipfs_bin, work)
    try:
        say("fungi: testnet up -n 6 --no-store 6")
        fungi.start()
        say("fungi: leader is node %d; reader is node 6" % fungi.leader["index"])
        say("kubo: daemons A and B (profile test, routing none), B connected to A")
        kubo.start()

        big = os.path.join(work, "content")
        say("writing %s of random data" % human(args.size))
        write_random(big, args.size)
        want = file_sha256(big)

        # a. publish (b's cold read and d's storage delta use the same add)
        before, _ = fungi.repo_stat()
        ka0 = kubo.repo_size("a")
        say("publish: fungi add on node %d" % fungi.leader["index"])
        os.sync()
        t0 = time.perf_counter()
        fcid = fungi.add(big)
        f_add = time.perf_counter() - t0
        say("publish: ipfs add on A")
        os.sync()
        t0 = time.perf_counter()
        kcid = kubo.add(big)
        k_add = time.perf_counter() - t0
        after, per_node = fungi.repo_stat()
        ka1 = kubo.repo_size("a")

        # b. cold read on a node holding none of it
        reader = fungi.env(fungi.reader)
        kb0 = kubo.repo_size("b")
        say("read: fungi cat on node 6 (cold)")
        f_cat = timed([fungi_bin, "cat", fcid], reader)
        say("read: ipfs cat on B (cold)")
        k_cat = timed([ipfs_bin, "cat", kcid], kubo.env("b"))
        kb1 = kubo.repo_size("b")
        r6 = get_json("http://%s/api/v0/repo/stat" % fungi.reader["api"])["data_bytes"] - per_node[6]["data_bytes"]
        say("read: checking bytes (sha256, once per side)")
        fsum, fn = sha256_of([fungi_bin, "cat", fcid], reader)
        ksum, kn = sha256_of([ipfs_bin, "cat", kcid], kubo.env("b"))
        for side, got, n in (("fungi cat %s on node 6" % fcid, fsum, fn), ("ipfs cat %s on B" % kcid, ksum, kn)):
            if got != want or n != args.size:
                raise Failure("%s: %d bytes, sha256 %s; the file has %d bytes, sha256 %s" % (side, n, got, args.size, want))

        mb = args.size / 1e6
        out["publish"] = {"fungi_mb_s": mb / f_add, "kubo_mb_s": mb / k_add, "fungi_s": f_add, "kubo_s": k_add,
                          "ratio": k_add / f_add, "fungi_cid": fcid, "kubo_cid": kcid}
        out["read"] = {"fungi_mb_s": mb / f_cat, "kubo_mb_s": mb / k_cat, "fungi_s": f_cat, "kubo_s": k_cat,
                       "ratio": k_cat / f_cat, "sha256_ok": True}
        out["storage"] = {
            "fungi_fragment_bytes_per_byte": (after["fragment_bytes"] - before["fragment_bytes"]) / args.size,
            "fungi_data_bytes_per_byte": (after["data_bytes"] - before["data_bytes"]) / args.size,
            "fungi_fragments": after["fragments"] - before["fragments"],
            "fungi_nodes": {str(i): s for i, s in per_node.items()},
            "kubo_a_repo_bytes_per_byte": (ka1 - ka0) / args.size,
            # what reading left on the reader: fungi's node 6 keeps nothing,
            # Kubo's B keeps the blocks it fetched
            "fungi_reader_bytes_per_byte": r6 / args.size,
            "kubo_b_repo_bytes_per_byte": (kb1 - kb0) / args.size,
        }

        # c. first byte of cold 1 MiB objects, the two sides interleaved
        say("first byte: adding %d random 1 MiB objects on each side" % args.objects)
        objs = []
        for i in range(args.objects):
            p = os.path.join(work, "obj%d" % i)
            write_random(p, MiB)
            objs.append((file_sha256(p), fungi.add(p), kubo.add(p)))
            os.remove(p)
        say("first byte: GET each once on node 6's API and on B's gateway")
        os.sync()
        f_ms, k_ms = [], []
        for i, (sha, fc, kc) in enumerate(objs):
            sides = [("f", fc), ("k", kc)] if i % 2 == 0 else [("k", kc), ("f", fc)]
            for side, c in sides:
                if side == "f":
                    ms, got = first_byte_ms(fungi.reader["api"], "/api/v0/cat?arg=" + c, MiB)
                    f_ms.append(ms)
                else:
                    ms, got = first_byte_ms(kubo.gateway["b"], "/ipfs/" + c, MiB)
                    k_ms.append(ms)
                if got != sha:
                    raise Failure("first byte: %s %s returned other bytes (sha256 %s, want %s)" % (side, c, got, sha))
        out["first_byte"] = {
            "fungi_p50_ms": percentile(f_ms, 50), "fungi_p99_ms": percentile(f_ms, 99),
            "kubo_p50_ms": percentile(k_ms, 50), "kubo_p99_ms": percentile(k_ms, 99),
            "ratio": percentile(f_ms, 50) / percentile(k_ms, 50),
            "same_cids": all(fc == kc for _, fc, kc in objs), "fungi_ms": [round(x, 3) for x in f_ms],
            "kubo_ms": [round(x, 3) for x in k_ms]}
        return out
    finally:
        # a second Ctrl-C must not cut the cleanup short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("cleaning up (testnet down, kubo daemons)")
        kubo.stop()
        fungi.stop()


def render(d):
    """The run as text: facts, then a markdown table."""
    p, r, f, s = d["publish"], d["read"], d["first_byte"], d["storage"]
    m, v = d["machine"], d["versions"]
    lines = [
        "- machine: %s, nproc %d, kernel %s" % (m["cpu"] or "?", m["nproc"], m["kernel"]),
        "- versions: %s; ipfs %s" % (v["fungi"], v["ipfs"].removeprefix("ipfs version ")),
        "- content: %s of random data; %d random 1 MiB objects; %s" % (
            human(d["size"]), d["objects"],
            "same CID on both sides" if p["fungi_cid"] == p["kubo_cid"] else "CIDs: fungi %s, kubo %s" % (p["fungi_cid"], p["kubo_cid"])),
        "",
        "| measure | FungiStor | Kubo | fungi/kubo | target |",
        "|---|---|---|---|---|",
        "| publish (add), MB/s | %.0f | %.0f | **%.2f** | %s |" % (p["fungi_mb_s"], p["kubo_mb_s"], p["ratio"], TARGETS["publish"]),
        "| cold read of the file on a node holding none of it, MB/s | %.0f | %.0f | **%.2f** | %s |" % (r["fungi_mb_s"], r["kubo_mb_s"], r["ratio"], TARGETS["read"]),
        "| first byte of a cold 1 MiB object, p50 ms | %.1f | %.1f | **%.2f** | %s |" % (f["fungi_p50_ms"], f["kubo_p50_ms"], f["ratio"], TARGETS["first_byte"]),
        "| first byte of a cold 1 MiB object, p99 ms | %.1f | %.1f | %.2f | |" % (f["fungi_p99_ms"], f["kubo_p99_ms"], f["fungi_p99_ms"] / f["kubo_p99_ms"]),
        "| bytes stored per byte published (fungi: fragments on all nodes; kubo: repo of A) | **%.3f** | %.3f | | %s |" % (s["fungi_fragment_bytes_per_byte"], s["kubo_a_repo_bytes_per_byte"], TARGETS["overhead"]),
        "| ZDB data files per byte published, all nodes (fragments, metadata, record headers) | %.3f | | | |" % s["fungi_data_bytes_per_byte"],
        "| bytes kept by the reader per byte read | %.3f | %.3f | | |" % (s["fungi_reader_bytes_per_byte"], s["kubo_b_repo_bytes_per_byte"]),
    ]
    return "\n".join(lines)


def interrupted(*_):
    # SIGINT (even when started with it ignored, as a background job) and
    # SIGTERM unwind, so the finally blocks stop the daemons
    raise KeyboardInterrupt


def main():
    global quiet
    ap = argparse.ArgumentParser(description="FungiStor vs Kubo content delivery, side by side.")
    ap.add_argument("--size", default="1G", help="size of the published file (e.g. 64M, 1G; default 1G)")
    ap.add_argument("--objects", type=int, default=100, help="cold 1 MiB objects timed to first byte (default 100)")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--work", help="working directory (must not exist or be empty; default a new one in $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the working directory (repos, logs)")
    ap.add_argument("--fungi", help="fungi binary to use (default: go build ./cmd/fungi into WORK)")
    ap.add_argument("--ipfs", help="ipfs binary to use (default: scripts/kubo.sh, .tools/ipfs)")
    ap.add_argument("--from-json", metavar="FILE", help="print the table of a saved --json run (- for stdin) and exit")
    args = ap.parse_args()
    quiet = args.quiet
    if args.from_json:
        print(render(json.load(sys.stdin if args.from_json == "-" else open(args.from_json))))
        return 0
    args.size = parse_size(args.size)
    if args.size < MiB or args.objects < 1:
        ap.error("--size must be at least 1M and --objects at least 1")
    if args.work:
        work = os.path.abspath(args.work)
        if os.path.exists(work) and os.listdir(work):
            ap.error("--work %s is not empty" % work)
        os.makedirs(work, exist_ok=True)
    else:
        work = tempfile.mkdtemp(prefix="bench-content-")
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    try:
        out = bench(args, work)
    except Failure as e:
        print("bench_content: %s" % e, file=sys.stderr)
        if not args.keep:
            print("bench_content: (rerun with --keep to keep the repos and logs in WORK)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench_content: interrupted", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            say("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out) if args.json else render(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
