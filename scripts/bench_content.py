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

and through the IPFS gateways (node 6's `gateway.listen` vs B's gateway,
each measure on content neither reader has seen: fresh random files and
objects, added to both sides first):

  gateway first byte  GET /ipfs/CID of other cold 1 MiB objects, p50/p99 ms
  gateway file        GET /ipfs/CID of a fresh 1 GiB file (--size), MB/s:
                      `curl | sha256sum` (the hash checked), and a tuned
                      client discarding the body (another fresh file)
  gateway CAR         GET /ipfs/CID?format=car (Accept application/
                      vnd.ipld.car) of a third fresh file, MB/s of CAR
                      bytes (then a warm second GET checks every block's
                      hash and the file's sha256 from the raw leaves)

    scripts/bench_content.py [--size 1G] [--objects 100] [--json] [--quiet]
                             [--work DIR] [--keep] [--fungi BIN] [--ipfs BIN]
    scripts/bench_content.py --from-json FILE|-   (render a saved --json run)

Without --fungi it builds cmd/fungi into WORK; without --ipfs it runs
scripts/kubo.sh and uses .tools/ipfs. The sha256 pipe runs curl and
sha256sum when both are on PATH (else a Python client hashing inline). MB = 10^6 bytes. Everything it
started is stopped on exit, Ctrl-C included; WORK is removed unless --keep.
Python 3 standard library only.
"""
import argparse, base64, hashlib, http.client, json, math, os, platform, shutil, signal
import socket, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1 << 20
# Kubo's import for both the big file and the objects (the brief's command)
KUBO_ADD = ["add", "--cid-version", "1", "--chunker", "size-1048576", "--raw-leaves", "-Q"]
TARGETS = {"publish": ">= 0.6", "read": ">= 2", "first_byte": "<= 0.2", "overhead": "1.25 in theory (16/4)",
           # issue 10: the gateway on a non-holder vs Kubo's gateway on B
           "gateway_first_byte": "<= 0.2", "gateway_file": ">= 2", "gateway_car": ">= 2"}
CAR = "application/vnd.ipld.car"

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


class Watch:
    """CPU time the rest of the machine takes while a measure runs: the
    machine's user+system time (/proc/stat) less that of this script, its
    waited-for children (curl, sha256sum, fungi and ipfs commands), the
    daemons of both sides and the kernel's threads (kept apart: mostly the
    writeback of what the daemons wrote). Interrupt time is left out, and
    steal time (the hypervisor's) kept apart."""

    def __init__(self):
        self.pids, self.seen = [], {}
        # daemons by side, for the cost of each measure: core-seconds of
        # each side's daemons, and of the client (this script and what it
        # waited for: fungi/ipfs commands, curl, sha256sum)
        self.groups = {}
        self.hz = os.sysconf("SC_CLK_TCK")

    def snap(self):
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        busy, steal = (v[0] + v[1] + v[2]) / self.hz, (v[7] if len(v) > 7 else 0) / self.hz
        ours, kernel = sum(os.times()[:4]), {}
        client = ours
        mine = set(self.pids)
        side = {pid: g for g, pids in self.groups.items() for pid in pids}
        groups = dict.fromkeys(self.groups, 0.0)
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone: its last figures are lost, counted as others'
            cpu = (int(fields[11]) + int(fields[12])) / self.hz
            if int(pid) in side:
                groups[side[int(pid)]] += cpu
            if int(pid) in mine:
                ours += cpu
            elif fields[1] == "2" or pid == "2":  # kthreadd's children
                kernel[pid] = cpu
        groups["client"] = client
        return time.perf_counter(), busy, steal, ours, kernel, groups

    def __call__(self, name):
        watch = self

        class span:
            def __enter__(self):
                self.t = watch.snap()

            def __exit__(self, *exc):
                t1, b1, s1, o1, k1, g1 = watch.snap()
                t0, b0, s0, o0, k0, g0 = self.t
                # kernel threads come and go: those that ended are lost
                kernel = sum(v - k0.get(pid, 0) for pid, v in k1.items())
                watch.seen[name] = {"wall_s": round(t1 - t0, 3),
                                    "others_cpu_s": round(max(0.0, (b1 - b0) - (o1 - o0) - kernel), 2),
                                    "kernel_threads_cpu_s": round(kernel, 2), "steal_s": round(s1 - s0, 2),
                                    "cpu_s": {g: round(g1[g] - g0.get(g, 0), 3) for g in g1}}
        return span()


watch = Watch()


def open_get(addr, path, headers=None):
    """GETs http://addr/path on a fresh connection; returns the connection
    and the response, after checking for 200."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    if resp.status != 200:
        body = resp.read(300)
        conn.close()
        raise Failure("GET http://%s%s: %d\n%s" % (addr, path, resp.status, body.decode(errors="replace")))
    return conn, resp


def get_discard(addr, path, headers=None):
    """The tuned client: GETs http://addr/path, reading the body into one
    reused 1 MiB buffer and keeping nothing. Returns (seconds from connect
    to last byte, body bytes, Content-Type)."""
    buf = memoryview(bytearray(MiB))
    n = 0
    os.sync()
    t0 = time.perf_counter()
    conn, resp = open_get(addr, path, headers)
    try:
        while True:
            k = resp.readinto(buf)
            if not k:
                break
            n += k
        return time.perf_counter() - t0, n, resp.getheader("Content-Type", "")
    finally:
        conn.close()


def sha_pipe(url):
    """What a newcomer does: `curl -sS --fail URL | sha256sum`. Returns
    (seconds, sha256 hex, consumer). Without curl or sha256sum, a Python
    client hashes the body as it reads it."""
    os.sync()
    if shutil.which("curl") and shutil.which("sha256sum"):
        t0 = time.perf_counter()
        curl = subprocess.Popen(["curl", "-sS", "--fail", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        summer = subprocess.Popen(["sha256sum"], stdin=curl.stdout, stdout=subprocess.PIPE)
        curl.stdout.close()  # sha256sum holds the pipe; curl sees EPIPE if it exits
        out = summer.communicate()[0]
        err = curl.stderr.read()
        curl.wait()
        took = time.perf_counter() - t0
        if curl.returncode != 0 or summer.returncode != 0:
            raise Failure("curl %s | sha256sum: exit %d, %d\n%s" % (url, curl.returncode, summer.returncode,
                                                                  err.decode(errors="replace").strip()))
        return took, out.split()[0].decode(), "curl | sha256sum"
    addr, path = url.removeprefix("http://").split("/", 1)
    h = hashlib.sha256()
    t0 = time.perf_counter()
    conn, resp = open_get(addr, "/" + path)
    try:
        for chunk in iter(lambda: resp.read(MiB), b""):
            h.update(chunk)
        return time.perf_counter() - t0, h.hexdigest(), "python http.client + hashlib"
    finally:
        conn.close()


def consumer_ceiling(path):
    """MB/s of the sha256 consumer alone, on a file in the page cache."""
    size = os.path.getsize(path)
    cmd = ["sha256sum", path] if shutil.which("sha256sum") else None
    t0 = time.perf_counter()
    if cmd:
        run(cmd)
    else:
        file_sha256(path)
    return size / 1e6 / (time.perf_counter() - t0)


def cid_bytes(c):
    """The binary form of a CIDv1 in base32 ('b...') or a CIDv0 ('Qm...')."""
    if c.startswith("b"):
        b = c[1:].upper()
        return base64.b32decode(b + "=" * (-len(b) % 8))
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    n = 0
    for ch in c:
        n = n * 58 + alphabet.index(ch)
    return n.to_bytes(34, "big")


class CarStream:
    """Walks a CARv1 as it arrives. Without verify it reads only the
    section headers and CIDs and skips block data into a reused buffer
    (the tuned client); with verify it checks every sha2-256 block against
    its CID and hashes the raw blocks in order (depth-first, so for a
    UnixFS file with raw leaves: the file's bytes)."""

    def __init__(self, resp, verify=False):
        self.resp, self.verify = resp, verify
        self.scratch = memoryview(bytearray(MiB))
        self.car_bytes = self.blocks = self.raw_bytes = 0
        self.file_hash = hashlib.sha256()
        self.bad = []

    def read(self, n):
        b = self.resp.read(n)
        if len(b) != n:
            raise Failure("CAR cut off after %d bytes" % (self.car_bytes + len(b)))
        self.car_bytes += n
        return b

    def skip(self, n):
        while n:
            k = self.resp.readinto(self.scratch[:min(n, MiB)])
            if not k:
                raise Failure("CAR cut off after %d bytes" % self.car_bytes)
            self.car_bytes += k
            n -= k

    def varint(self, first=None):
        x, shift = 0, 0
        while True:
            b = first if first is not None else self.read(1)[0]
            first = None
            x |= (b & 0x7F) << shift
            if b < 0x80:
                return x
            shift += 7

    def run(self, root):
        hdr = self.read(self.varint())
        if b"\x00" + cid_bytes(root) not in hdr or b"gversion\x01" not in hdr:
            raise Failure("CAR header %r: not a CARv1 with root %s" % (hdr[:120], root))
        while True:
            b = self.resp.read(1)
            if not b:
                return self
            self.car_bytes += 1
            length = self.varint(b[0])
            start = self.car_bytes
            v = self.read(1)[0]
            if v == 0x12:  # CIDv0: sha2-256, 32 bytes, dag-pb
                codec, code, digest = 0x70, 0x12, self.read(self.read(1)[0])
            else:
                self.varint(v)
                codec, code = self.varint(), self.varint()
                digest = self.read(self.varint())
            n = length - (self.car_bytes - start)
            self.blocks += 1
            if codec == 0x55:
                self.raw_bytes += n
            if not self.verify:
                self.skip(n)
                continue
            data = self.read(n)
            if code == 0x12 and hashlib.sha256(data).digest() != digest:
                self.bad.append(self.blocks)
            if codec == 0x55:
                self.file_hash.update(data)


class Fungi:
    """The FungiStor side: a testnet of 6 nodes, node 6 storing nothing."""

    def __init__(self, bin_, work):
        self.bin, self.dir, self.up = bin_, os.path.join(work, "tn"), False

    def fungi(self, *args, path=None):
        env = dict(os.environ, FUNGI_PATH=path) if path else None
        return run([self.bin, *args], env=env)

    def start(self):
        self.up = True  # down runs even if up fails half-way
        up = ["testnet", "up", "-n", "6", "--dir", self.dir, "--no-store", "6"]
        # a gateway port of its own per node, whatever testnet up picks
        # (the real address is read back from /api/v0/id)
        usage = subprocess.run([self.bin, "testnet", "up", "--help"], capture_output=True, text=True)
        can_set = "-set" in usage.stdout + usage.stderr
        if can_set:
            up += ["--set", "gateway.listen=127.0.0.1:0"]
        self.fungi(*up)
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
        gw = get_json("http://%s/api/v0/id" % self.reader["api"]).get("gateway", "")
        if not can_set and (not gw or sum(n.get("gateway") == gw for n in nodes) > 1):
            # no --set, and no gateway of its own: restart node 6 on a free port
            cfg_path = os.path.join(self.reader["path"], "config.json")
            self.fungi("testnet", "stop", "--dir", self.dir, "6")
            with open(cfg_path) as f:
                cfg = json.load(f)
            cfg.setdefault("gateway", {})["listen"] = "127.0.0.1:0"
            with open(cfg_path, "w") as f:
                json.dump(cfg, f, indent=2)
            self.fungi("testnet", "start", "--dir", self.dir, "6")
            with open(os.path.join(self.reader["path"], "api")) as f:
                self.reader["api"] = f.read().strip()
            gw = get_json("http://%s/api/v0/id" % self.reader["api"]).get("gateway", "")
        if not gw:
            raise Failure("fungi: node 6 serves no gateway (/api/v0/id has no gateway)")
        self.gateway = gw

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
           "size": args.size, "objects": args.objects, "load": {"start": os.getloadavg()}}
    fungi, kubo = Fungi(fungi_bin, work), Kubo(ipfs_bin, work)
    try:
        say("fungi: testnet up -n 6 --no-store 6")
        fungi.start()
        say("fungi: leader is node %d; reader is node 6" % fungi.leader["index"])
        say("kubo: daemons A and B (profile test, routing none), B connected to A")
        kubo.start()
        watch.groups = {"fungi": [n["pid"] for n in fungi.nodes.values() if n.get("pid")],
                        "kubo": [p.pid for p in kubo.procs.values()]}
        watch.pids = watch.groups["fungi"] + watch.groups["kubo"]

        big = os.path.join(work, "content")
        say("writing %s of random data" % human(args.size))
        write_random(big, args.size)
        want = file_sha256(big)

        # a. publish (b's cold read and d's storage delta use the same add)
        before, _ = fungi.repo_stat()
        ka0 = kubo.repo_size("a")
        say("publish: fungi add on node %d" % fungi.leader["index"])
        os.sync()
        with watch("publish fungi"):
            t0 = time.perf_counter()
            fcid = fungi.add(big)
            f_add = time.perf_counter() - t0
        say("publish: ipfs add on A")
        os.sync()
        with watch("publish kubo"):
            t0 = time.perf_counter()
            kcid = kubo.add(big)
            k_add = time.perf_counter() - t0
        after, per_node = fungi.repo_stat()
        ka1 = kubo.repo_size("a")

        # b. cold read on a node holding none of it
        reader = fungi.env(fungi.reader)
        kb0 = kubo.repo_size("b")
        say("read: fungi cat on node 6 (cold)")
        with watch("read fungi"):
            f_cat = timed([fungi_bin, "cat", fcid], reader)
        say("read: ipfs cat on B (cold)")
        with watch("read kubo"):
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
        with watch("first byte (both sides)"):
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

        # d. the gateways: first byte of other cold 1 MiB objects
        gw_f, gw_k = fungi.gateway, kubo.gateway["b"]
        say("gateway: node 6's gateway is %s, B's %s" % (gw_f, gw_k))
        say("gateway first byte: adding %d other random 1 MiB objects on each side" % args.objects)
        gobjs = []
        for i in range(args.objects):
            p = os.path.join(work, "gobj%d" % i)
            write_random(p, MiB)
            gobjs.append((file_sha256(p), fungi.add(p), kubo.add(p)))
            os.remove(p)
        say("gateway first byte: GET /ipfs/CID of each once on node 6's gateway and on B's")
        os.sync()
        f_ms, k_ms = [], []
        with watch("gateway first byte (both sides)"):
            for i, (sha, fc, kc) in enumerate(gobjs):
                sides = [("f", fc), ("k", kc)] if i % 2 == 0 else [("k", kc), ("f", fc)]
                for side, c in sides:
                    ms, got = first_byte_ms(gw_f if side == "f" else gw_k, "/ipfs/" + c, MiB)
                    (f_ms if side == "f" else k_ms).append(ms)
                    if got != sha:
                        raise Failure("gateway first byte: %s %s returned other bytes (sha256 %s, want %s)" % (side, c, got, sha))
        out["gateway_first_byte"] = {
            "fungi_p50_ms": percentile(f_ms, 50), "fungi_p99_ms": percentile(f_ms, 99),
            "kubo_p50_ms": percentile(k_ms, 50), "kubo_p99_ms": percentile(k_ms, 99),
            "ratio": percentile(f_ms, 50) / percentile(k_ms, 50),
            "same_cids": all(fc == kc for _, fc, kc in gobjs), "fungi_ms": [round(x, 3) for x in f_ms],
            "kubo_ms": [round(x, 3) for x in k_ms]}

        # e, f. the gateways: a fresh file per measure, added to both sides
        # first, so each GET is the first read of that content on its reader
        fresh = {}
        for name in ("sha256", "discard", "car"):
            p = os.path.join(work, "gw-" + name)
            say("gateway: writing and adding a fresh %s file (%s)" % (human(args.size), name))
            write_random(p, args.size)
            if name == "sha256":
                ceiling = consumer_ceiling(p)  # also reads it into the page cache
            fresh[name] = {"sha256": file_sha256(p), "fungi_cid": fungi.add(p), "kubo_cid": kubo.add(p)}
            os.remove(p)
        gfile = {"consumer_ceiling_mb_s": ceiling}

        fr = fresh["sha256"]
        say("gateway file: curl | sha256sum from node 6's gateway (cold)")
        with watch("gateway file sha256 fungi"):
            f_s, fsum, consumer = sha_pipe("http://%s/ipfs/%s" % (gw_f, fr["fungi_cid"]))
        say("gateway file: curl | sha256sum from B's gateway (cold)")
        with watch("gateway file sha256 kubo"):
            k_s, ksum, _ = sha_pipe("http://%s/ipfs/%s" % (gw_k, fr["kubo_cid"]))
        for side, got in (("node 6's gateway", fsum), ("B's gateway", ksum)):
            if got != fr["sha256"]:
                raise Failure("gateway file: %s | sha256sum on %s: %s, the file's sha256 is %s" % (consumer, side, got, fr["sha256"]))
        gfile["sha256"] = {"fungi_mb_s": mb / f_s, "kubo_mb_s": mb / k_s, "fungi_s": f_s, "kubo_s": k_s,
                           "ratio": k_s / f_s, "consumer": consumer, "sha256_ok": True,
                           "fungi_cid": fr["fungi_cid"], "kubo_cid": fr["kubo_cid"]}

        fr = fresh["discard"]
        say("gateway file: tuned client, body discarded, from B's gateway (cold)")
        with watch("gateway file discard kubo"):
            k_s, kn, _ = get_discard(gw_k, "/ipfs/" + fr["kubo_cid"])
        say("gateway file: tuned client, body discarded, from node 6's gateway (cold)")
        with watch("gateway file discard fungi"):
            f_s, fn, _ = get_discard(gw_f, "/ipfs/" + fr["fungi_cid"])
        for side, n in (("node 6's gateway", fn), ("B's gateway", kn)):
            if n != args.size:
                raise Failure("gateway file: %s sent %d bytes, the file has %d" % (side, n, args.size))
        gfile["discard"] = {"fungi_mb_s": mb / f_s, "kubo_mb_s": mb / k_s, "fungi_s": f_s, "kubo_s": k_s,
                            "ratio": k_s / f_s, "consumer": "python http.client, readinto a 1 MiB buffer",
                            "fungi_cid": fr["fungi_cid"], "kubo_cid": fr["kubo_cid"]}
        out["gateway_file"] = gfile

        fr = fresh["car"]
        car = {}
        for side, addr, c in (("fungi", gw_f, fr["fungi_cid"]), ("kubo", gw_k, fr["kubo_cid"])):
            say("gateway CAR: ?format=car from %s (cold)" % ("node 6's gateway" if side == "fungi" else "B's gateway"))
            path = "/ipfs/%s?format=car" % c
            os.sync()
            with watch("gateway car " + side):
                t0 = time.perf_counter()
                conn, resp = open_get(addr, path, {"Accept": CAR})
                try:
                    cs = CarStream(resp).run(c)
                    took = time.perf_counter() - t0
                    ctype = resp.getheader("Content-Type", "")
                finally:
                    conn.close()
            if cs.raw_bytes != args.size:
                raise Failure("gateway CAR from %s: %d bytes of raw blocks, the file has %d" % (side, cs.raw_bytes, args.size))
            say("gateway CAR: checking every block of %s's CAR (a second, warm GET)" % side)
            conn, resp = open_get(addr, path, {"Accept": CAR})
            try:
                check = CarStream(resp, verify=True).run(c)
            finally:
                conn.close()
            if check.bad or check.file_hash.hexdigest() != fr["sha256"] or check.car_bytes != cs.car_bytes:
                raise Failure("gateway CAR from %s: %d blocks whose bytes do not hash to their CID (first #%s); "
                              "raw blocks sha256 %s, the file's %s; %d CAR bytes, first GET %d"
                              % (side, len(check.bad), check.bad[:1], check.file_hash.hexdigest(), fr["sha256"],
                                 check.car_bytes, cs.car_bytes))
            car[side] = {"s": took, "car_bytes": cs.car_bytes, "blocks": cs.blocks, "content_type": ctype, "cid": c}
        out["gateway_car"] = {
            "fungi_mb_s": car["fungi"]["car_bytes"] / 1e6 / car["fungi"]["s"],
            "kubo_mb_s": car["kubo"]["car_bytes"] / 1e6 / car["kubo"]["s"],
            "fungi_s": car["fungi"]["s"], "kubo_s": car["kubo"]["s"],
            "fungi_car_bytes": car["fungi"]["car_bytes"], "kubo_car_bytes": car["kubo"]["car_bytes"],
            "fungi_blocks": car["fungi"]["blocks"], "kubo_blocks": car["kubo"]["blocks"],
            "fungi_content_type": car["fungi"]["content_type"], "kubo_content_type": car["kubo"]["content_type"],
            "fungi_cid": car["fungi"]["cid"], "kubo_cid": car["kubo"]["cid"], "verified": True}
        out["gateway_car"]["ratio"] = out["gateway_car"]["fungi_mb_s"] / out["gateway_car"]["kubo_mb_s"]
        out["load"]["end"] = os.getloadavg()
        out["others_cpu"] = watch.seen
        return out
    finally:
        # a second Ctrl-C must not cut the cleanup short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("cleaning up (testnet down, kubo daemons)")
        kubo.stop()
        fungi.stop()


# the data paths whose cost is reported: (label, fungi's measure, kubo's)
COSTS = (("publish", "publish fungi", "publish kubo"), ("cold read", "read fungi", "read kubo"),
         ("gateway file piped into sha256", "gateway file sha256 fungi", "gateway file sha256 kubo"),
         ("gateway file discarded", "gateway file discard fungi", "gateway file discard kubo"),
         ("gateway CAR", "gateway car fungi", "gateway car kubo"))


def cost_line(d):
    """Core-seconds per GiB of content of each side's daemons and of the
    client, for each data path (runs without the figures give none)."""
    seen, gib = d.get("others_cpu") or {}, d["size"] / (1 << 30)
    parts = []
    for label, fk, kk in COSTS:
        f, k = seen.get(fk, {}).get("cpu_s"), seen.get(kk, {}).get("cpu_s")
        if not f or not k:
            continue
        parts.append("%s: fungi %.2f + client %.2f, kubo %.2f + client %.2f" % (
            label, f["fungi"] / gib, f["client"] / gib, k["kubo"] / gib, k["client"] / gib))
    if not parts:
        return ""
    return "- core-seconds per GiB (each side's daemons: fungi's six, Kubo's two; client: the command, curl and sha256sum or the script): " + "; ".join(parts)


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
        "| first byte of a cold 1 MiB object (fungi: node 6's /api/v0/cat; kubo: B's gateway), p50 ms | %.1f | %.1f | **%.2f** | %s |" % (f["fungi_p50_ms"], f["kubo_p50_ms"], f["ratio"], TARGETS["first_byte"]),
        "| first byte of a cold 1 MiB object, p99 ms | %.1f | %.1f | %.2f | |" % (f["fungi_p99_ms"], f["kubo_p99_ms"], f["fungi_p99_ms"] / f["kubo_p99_ms"]),
        "| bytes stored per byte published (fungi: fragments on all nodes; kubo: repo of A) | **%.3f** | %.3f | | %s |" % (s["fungi_fragment_bytes_per_byte"], s["kubo_a_repo_bytes_per_byte"], TARGETS["overhead"]),
        "| ZDB data files per byte published, all nodes (fragments, metadata, record headers) | %.3f | | | |" % s["fungi_data_bytes_per_byte"],
        "| bytes kept by the reader per byte read | %.3f | %.3f | | |" % (s["fungi_reader_bytes_per_byte"], s["kubo_b_repo_bytes_per_byte"]),
    ]
    if "gateway_first_byte" in d:
        g, gf, gc = d["gateway_first_byte"], d["gateway_file"], d["gateway_car"]
        size = human(d["size"])
        lines += [
            "| **gateway** (node 6's vs B's): first byte of a cold 1 MiB object, p50 ms | %.1f | %.1f | **%.2f** | %s |" % (
                g["fungi_p50_ms"], g["kubo_p50_ms"], g["ratio"], TARGETS["gateway_first_byte"]),
            "| gateway: first byte of a cold 1 MiB object, p99 ms | %.1f | %.1f | %.2f | |" % (
                g["fungi_p99_ms"], g["kubo_p99_ms"], g["fungi_p99_ms"] / g["kubo_p99_ms"]),
            "| gateway: %s file, cold, piped into sha256 (`%s`, hash checked), MB/s | %.0f | %.0f | **%.2f** | %s |" % (
                size, gf["sha256"]["consumer"].replace("|", "\\|"), gf["sha256"]["fungi_mb_s"], gf["sha256"]["kubo_mb_s"],
                gf["sha256"]["ratio"], TARGETS["gateway_file"]),
            "| gateway: %s file, cold, discarded (tuned client), MB/s | %.0f | %.0f | **%.2f** | %s |" % (
                size, gf["discard"]["fungi_mb_s"], gf["discard"]["kubo_mb_s"], gf["discard"]["ratio"], TARGETS["gateway_file"]),
            "| gateway: %s file as a CAR (`?format=car`), cold, MB/s of CAR bytes | %.0f | %.0f | **%.2f** | %s |" % (
                size, gc["fungi_mb_s"], gc["kubo_mb_s"], gc["ratio"], TARGETS["gateway_car"]),
        ]
        lines.insert(3, "- gateway: %s alone hashes %.0f MB/s here (the pipe's ceiling); CARs: fungi %d blocks, %d bytes; kubo %d blocks, %d bytes" % (
            gf["sha256"]["consumer"].split(" | ")[-1], gf["consumer_ceiling_mb_s"], gc["fungi_blocks"], gc["fungi_car_bytes"],
            gc["kubo_blocks"], gc["kubo_car_bytes"]))
    verdicts = []
    for key, label, ratio in (("publish", "publish", p["ratio"]), ("read", "cold read", r["ratio"]),
                              ("first_byte", "first byte p50", f["ratio"])) + ((
            ("gateway_first_byte", "gateway first byte p50", d["gateway_first_byte"]["ratio"]),
            ("gateway_file", "gateway file piped into sha256", d["gateway_file"]["sha256"]["ratio"]),
            ("gateway_file", "gateway file discarded", d["gateway_file"]["discard"]["ratio"]),
            ("gateway_car", "gateway CAR", d["gateway_car"]["ratio"])) if "gateway_first_byte" in d else ()):
        op, want = TARGETS[key].split()
        met = ratio >= float(want) if op == ">=" else ratio <= float(want)
        verdicts.append("%s %.2f (%s %s): %s" % (label, ratio, op, want, "met" if met else "**missed**"))
    lines += ["", "Targets, fungi/kubo: " + "; ".join(verdicts) + "."]
    if d.get("others_cpu"):
        ncpu = d["machine"]["nproc"] or 1
        share = sorted(((v["others_cpu_s"] / (v["wall_s"] * ncpu) if v["wall_s"] else 0, k, v) for k, v in d["others_cpu"].items()), reverse=True)
        busy = ["%s %.0f%%" % (k, 100 * x) for x, k, _ in share if x >= 0.05]
        lines.insert(3, "- CPU taken by other processes during the timed measures (share of the %d cores): %s; kernel threads %.1f s, steal %.2f s in all" % (
            ncpu, "under 1% in every one" if share and share[0][0] < 0.01 else
            "at most %.0f%% (%s)%s" % (100 * share[0][0], share[0][1], "; over 5%: " + ", ".join(busy) if busy else "") if share else "?",
            sum(v.get("kernel_threads_cpu_s", 0) for v in d["others_cpu"].values()), sum(v["steal_s"] for v in d["others_cpu"].values())))
    cost = cost_line(d)
    if cost:
        lines.insert(3, cost)
    if "load" in d and "end" in d["load"]:
        lines.insert(3, "- load average (1, 5, 15 min): %s at the start, %s at the end" % (
            ", ".join("%.2f" % x for x in d["load"]["start"]), ", ".join("%.2f" % x for x in d["load"]["end"])))
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
    return drive("bench_content", ap, args, bench, render)


def drive(name, ap, args, bench, render):
    """Runs bench(args, work) in --work or a fresh directory, removed after
    unless --keep; prints the run as JSON (--json) or render's table.
    Returns the exit status."""
    if args.work:
        work = os.path.abspath(args.work)
        if os.path.exists(work) and os.listdir(work):
            ap.error("--work %s is not empty" % work)
        os.makedirs(work, exist_ok=True)
    else:
        work = tempfile.mkdtemp(prefix=name.replace("_", "-") + "-")
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    try:
        out = bench(args, work)
    except Failure as e:
        print("%s: %s" % (name, e), file=sys.stderr)
        if not args.keep:
            print("%s: (rerun with --keep to keep the repos and logs in WORK)" % name, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("%s: interrupted" % name, file=sys.stderr)
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
