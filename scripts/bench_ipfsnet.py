#!/usr/bin/env python3
"""FungiStor in the IPFS network, beside Kubo, in one run on this machine.

FungiStor: a 6-node testnet (`fungi testnet up -n 6 --no-store 6`; node 6
holds no fragment). Kubo: server A and ingester B, daemons on loopback
(`--profile test`, `Routing.Type none`: no DHT, blocks move by bitswap
between connected peers only). Each round writes a fresh random file and
`ipfs add`s it on A with Kubo's defaults (CIDv0, 256 KiB chunks, dag-pb
leaves), then:

  ingest  `fungi pin add CID` on the raft leader, A `ipfs swarm connect`ed
          to it (the cluster fetches the DAG from A over bitswap and stores
          it erasure-coded through the leader), vs `ipfs pin add CID` on B,
          connected to A only; MB/s of file bytes
  fetch   a fresh Kubo daemon (new repo, nothing in it) connected only to
          node 6 runs `ipfs cat CID > FILE`, vs another fresh Kubo daemon
          connected only to A doing the same; MB/s, FILE's sha256 checked
  fetch in fungi's profile (unless --no-native)
          the same, of the same file as `fungi add` on the leader stores it
          (unixfs-v1-2025: CIDv1, 1 MiB raw leaves), against A serving the
          same DAG (`ipfs add --cid-version 1 --raw-leaves --chunker
          size-1048576 --max-file-links 1024`; both CIDs are recorded)

The cluster holds Kubo's own DAG (pin add ingests Kubo's CID), so both
fetches of the headline move the same blocks under the same CID. The two
sides alternate which goes first from round to round. Core-seconds per GiB
of each process are read from /proc/PID/stat around every measure.

    scripts/bench_ipfsnet.py [--size 1G] [--rounds 3] [--json] [--quiet]
                             [--work DIR] [--keep] [--fungi BIN] [--ipfs BIN]
                             [--no-native] [--pprof DIR]
    scripts/bench_ipfsnet.py --from-json FILE|-   (render a saved --json run)

IPFSNET_SIZE and ROUNDS set the defaults of --size (1G) and --rounds (3);
figures are the median over the rounds, with the range. Without --fungi it
builds cmd/fungi into WORK; without --ipfs it runs scripts/kubo.sh and uses
.tools/ipfs. --pprof DIR starts the testnet with FUNGI_DEBUG_API=1 and saves
CPU profiles of node 6 (fetch) and the leader (ingest) of the first round
into DIR. MB = 10^6 bytes. Everything it started is stopped on exit, Ctrl-C
included; WORK is removed unless --keep. Python 3 standard library only.
"""
import argparse, json, os, shutil, signal, statistics, subprocess, sys, threading, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no scripts/__pycache__
import bench_content as bc  # noqa: E402  (helpers: run, Watch, builds, ...)
from bench_content import Failure, human, parse_size, run  # noqa: E402

MiB = 1 << 20
TARGETS = {"fetch": ">= 1.0", "ingest": ">= 1.0"}
# fungi's default import profile (unixfs-v1-2025) with Kubo's flags: the
# same DAG, so the same CID, as `fungi add`
KUBO_NATIVE_ADD = ["add", "-Q", "--cid-version", "1", "--raw-leaves", "--chunker", "size-1048576", "--max-file-links", "1024"]

quiet = False


def say(msg):
    if not quiet:
        print("bench_ipfsnet: " + msg, file=sys.stderr, flush=True)


bc.say = say  # bench_content's builders report as this script


class KuboDaemon:
    """One Kubo daemon with a repo of its own in WORK/kubo-NAME."""

    def __init__(self, bin_, work, name):
        self.bin, self.name = bin_, name
        self.repo = os.path.join(work, "kubo-" + name)
        self.log = os.path.join(work, "kubo-%s.log" % name)
        self.proc = None

    def env(self):
        return dict(os.environ, IPFS_PATH=self.repo, IPFS_TELEMETRY="off")

    def ipfs(self, *args):
        return run([self.bin, *args], env=self.env())

    def start(self):
        sw, api, gw = bc.free_ports(3)
        self.ipfs("init", "--profile", "test", "--empty-repo")
        # test profile: loopback only, no bootstrap, no MDNS; routing none:
        # no DHT, so blocks come by bitswap from connected peers only
        for k, v in {"Addresses.Swarm": ["/ip4/127.0.0.1/tcp/%d" % sw],
                     "Addresses.API": "/ip4/127.0.0.1/tcp/%d" % api,
                     "Addresses.Gateway": "/ip4/127.0.0.1/tcp/%d" % gw,
                     "Routing.Type": "none"}.items():
            self.ipfs("config", "--json", k, json.dumps(v))
        self.api = "127.0.0.1:%d" % api
        with open(self.log, "wb") as log:
            # own session: a Ctrl-C reaches us, and we stop the daemon
            self.proc = subprocess.Popen([self.bin, "daemon"], env=self.env(), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise Failure("ipfs daemon %s exited %d (see %s)" % (self.name, self.proc.returncode, self.log))
            try:
                idj = bc.get_json("http://%s/api/v0/id" % self.api, "POST")
                break
            except OSError:
                pass
            if time.time() > deadline:
                raise Failure("ipfs daemon %s not ready after 60 s" % self.name)
            time.sleep(0.1)
        self.id = idj["ID"]
        self.swarm = "/ip4/127.0.0.1/tcp/%d/p2p/%s" % (sw, self.id)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def connect(self, addr):
        self.ipfs("swarm", "connect", addr)

    def peers(self):
        return [l.rsplit("/p2p/", 1)[-1] for l in self.ipfs("swarm", "peers").split()]

    def flatfs_sync(self):
        spec = json.loads(self.ipfs("config", "--json", "Datastore.Spec"))

        def find(s):
            if s.get("type") == "flatfs":
                return s.get("sync")
            for m in s.get("mounts", []) + ([s["child"]] if "child" in s else []):
                v = find(m)
                if v is not None:
                    return v
            return None
        return find(spec)

    def stop(self, remove=False):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if remove:
            shutil.rmtree(self.repo, ignore_errors=True)


class Fungi:
    """The testnet: 6 nodes, node 6 storing nothing."""

    def __init__(self, bin_, work, debug):
        self.bin, self.dir, self.debug, self.up = bin_, os.path.join(work, "tn"), debug, False

    def fungi(self, *args, node=None):
        env = dict(os.environ)
        if node:
            env["FUNGI_PATH"] = node["path"]
        if self.debug:
            env["FUNGI_DEBUG_API"] = "1"
        return run([self.bin, *args], env=env)

    def start(self):
        self.up = True  # down runs even if up fails half-way
        self.fungi("testnet", "up", "-n", "6", "--dir", self.dir, "--no-store", "6")
        deadline = time.time() + 60
        while True:
            nodes = json.loads(self.fungi("testnet", "status", "--dir", self.dir, "--json"))
            leaders = [n for n in nodes if n.get("role") == "leader"]
            if leaders and all(n.get("alive") and n.get("swarm") for n in nodes):
                break
            if time.time() > deadline:
                raise Failure("fungi: no raft leader after 60 s (fungi testnet status)")
            time.sleep(0.2)
        self.nodes = {n["index"]: n for n in nodes}
        self.server, self.leader = self.nodes[6], leaders[0]
        if self.leader["index"] == 6:
            raise Failure("fungi: node 6 (no-store) is the leader")

    def pids(self, which):
        return [n["pid"] for i, n in self.nodes.items() if which(i, n)]

    def repo_stat(self):
        tot = {"fragment_bytes": 0, "data_bytes": 0}
        for n in self.nodes.values():
            st = bc.get_json("http://%s/api/v0/repo/stat" % n["api"])
            for k in tot:
                tot[k] += st[k]
        return tot

    def stop(self):
        if self.up:
            subprocess.run([self.bin, "testnet", "down", "--dir", self.dir], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            self.up = False


class Profiler:
    """Saves a CPU profile of a fungi daemon while a measure runs (--pprof),
    and a dump of its goroutines half-way through (PATH.goroutines.txt:
    where a daemon that is not busy waits)."""

    def __init__(self, api, path, seconds):
        self.api, self.path, self.seconds, self.errs = api, path, seconds, []
        self.ts = [threading.Thread(target=self.get, args=a, daemon=True) for a in (
            ("profile?seconds=%d" % seconds, path, 0), ("goroutine?debug=1", path + ".goroutines.txt", seconds / 2))]
        for t in self.ts:
            t.start()

    def get(self, what, path, delay):
        time.sleep(delay)
        url = "http://%s/debug/pprof/%s" % (self.api, what)
        try:
            with urllib.request.urlopen(url, timeout=600) as r, open(path, "wb") as f:
                shutil.copyfileobj(r, f)
        except OSError as e:
            self.errs.append("%s: %s" % (url, e))

    def wait(self):
        for t in self.ts:
            t.join()
        for e in self.errs:
            say("pprof " + e)


def timed(cmd, env, stdout=subprocess.DEVNULL):
    """Wall-clock seconds of cmd."""
    os.sync()  # earlier writes are not flushed on this run's clock
    t0 = time.perf_counter()
    run(cmd, env=env, stdout=stdout)
    return time.perf_counter() - t0


def median_range(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "all": xs}


def bench(args, work):
    fungi_bin = os.path.abspath(args.fungi) if args.fungi else bc.build_fungi(work)
    ipfs_bin = os.path.abspath(args.ipfs) if args.ipfs else bc.build_kubo()
    out = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "machine": bc.machine(),
           "versions": {"fungi": run([fungi_bin, "version"]).strip(),
                        "ipfs": run([ipfs_bin, "version"], env=dict(os.environ, IPFS_TELEMETRY="off")).strip()},
           "size": args.size, "rounds": args.rounds, "load": {"start": os.getloadavg()},
           "fetch_output": "ipfs cat CID > FILE (FILE on the work directory's disk, its sha256 checked after)"}
    fungi = Fungi(fungi_bin, work, bool(args.pprof))
    kubos = []  # every Kubo daemon started, stopped in the finally

    def kubo(name):
        k = KuboDaemon(ipfs_bin, work, name)
        kubos.append(k)
        return k.start()

    watch = bc.Watch()
    try:
        say("fungi: testnet up -n 6 --no-store 6")
        fungi.start()
        lead = fungi.leader
        say("fungi: leader is node %d (runs pin add); node 6 serves the fetch" % lead["index"])
        say("kubo: server A and ingester B (profile test, routing none)")
        a, b = kubo("a"), kubo("b")
        out["kubo_flatfs_sync"] = a.flatfs_sync()
        holders = fungi.pids(lambda i, n: i != 6)
        all_fungi = fungi.pids(lambda i, n: True)
        path = os.path.join(work, "content")
        got = os.path.join(work, "fetched")
        rounds = []
        for r in range(args.rounds):
            rr = {}
            say("round %d/%d: writing %s of random data, ipfs add on A (Kubo defaults)" % (r + 1, args.rounds, human(args.size)))
            bc.write_random(path, args.size)
            want = bc.file_sha256(path)
            os.sync()
            t0 = time.perf_counter()
            c = a.ipfs("add", "-Q", path).strip()
            rr["kubo_add_s"] = time.perf_counter() - t0
            rr["cid"] = c
            if args.native:
                # the same file in fungi's own import profile: `fungi add` on
                # the leader, and the same DAG on A (checked: same CID)
                say("round %d: the same file in fungi's profile: fungi add on node %d, %s on A" % (
                    r + 1, lead["index"], " ".join(["ipfs"] + KUBO_NATIVE_ADD)))
                os.sync()
                t0 = time.perf_counter()
                nc = run([fungi_bin, "add", "-q", path], env=dict(os.environ, FUNGI_PATH=lead["path"])).strip()
                rr["fungi_add_s"] = time.perf_counter() - t0
                kc = a.ipfs(*KUBO_NATIVE_ADD, path).strip()
                rr["native_fungi_cid"], rr["native_kubo_cid"] = nc, kc
            os.remove(path)
            # each side's ingester is connected to A only (A may see both)
            a.connect(lead["swarm"])
            b.connect(a.swarm)
            if a.id not in b.peers():
                raise Failure("B is not connected to A")
            before = fungi.repo_stat()

            def ingest_fungi():
                say("round %d: ingest: fungi pin add on node %d from A" % (r + 1, lead["index"]))
                watch.groups = {"ingester": [lead["pid"]], "other_fungi": [p for p in all_fungi if p != lead["pid"]],
                                "kubo_server": [a.pid]}
                watch.pids = all_fungi + [a.pid, b.pid]
                prof = Profiler(lead["api"], os.path.join(args.pprof, "ingest-leader.pprof"), args.pprof_s) if args.pprof and r == 0 else None
                with watch("ingest fungi %d" % r):
                    rr["ingest_fungi_s"] = timed([fungi_bin, "pin", "add", "-q", c], dict(os.environ, FUNGI_PATH=lead["path"]))
                if prof:
                    prof.wait()

            def ingest_kubo():
                say("round %d: ingest: ipfs pin add on B from A" % (r + 1))
                watch.groups = {"ingester": [b.pid], "kubo_server": [a.pid]}
                watch.pids = all_fungi + [a.pid, b.pid]
                with watch("ingest kubo %d" % r):
                    rr["ingest_kubo_s"] = timed([ipfs_bin, "pin", "add", "--progress=false", c], b.env())

            for f in ((ingest_fungi, ingest_kubo) if r % 2 == 0 else (ingest_kubo, ingest_fungi)):
                f()
            after = fungi.repo_stat()
            rr["fungi_fragment_bytes_per_byte"] = (after["fragment_bytes"] - before["fragment_bytes"]) / args.size

            def fetch(side, m="fetch", c=c):
                srv = fungi.server["swarm"] if side == "fungi" else a.swarm
                say("round %d: %s: fresh Kubo client, connected only to %s, ipfs cat %s > FILE" % (
                    r + 1, m, "node 6" if side == "fungi" else "A", c))
                cl = kubo("client-%s-%s-%d" % (m, side, r))
                try:
                    cl.connect(srv)
                    peers = cl.peers()
                    if peers != [srv.rsplit("/p2p/", 1)[1]]:
                        raise Failure("fresh client is connected to %s, want only %s" % (peers, srv))
                    if side == "fungi":
                        watch.groups = {"server": [fungi.server["pid"]], "holders": holders, "kubo_client": [cl.pid]}
                    else:
                        watch.groups = {"server": [a.pid], "kubo_client": [cl.pid]}
                    watch.pids = all_fungi + [a.pid, b.pid, cl.pid]
                    prof = Profiler(fungi.server["api"], os.path.join(args.pprof, m + "-node6.pprof"), args.pprof_s) \
                        if args.pprof and r == 0 and side == "fungi" else None
                    with open(got, "wb") as f, watch("%s %s %d" % (m, side, r)):
                        rr["%s_%s_s" % (m, side)] = timed([ipfs_bin, "cat", c], cl.env(), stdout=f)
                    if prof:
                        prof.wait()
                    n, h = os.path.getsize(got), bc.file_sha256(got)
                    os.remove(got)
                    if n != args.size or h != want:
                        raise Failure("%s from %s: %d bytes, sha256 %s; the file has %d bytes, sha256 %s"
                                      % (m, side, n, h, args.size, want))
                    rr["%s_%s_client_repo" % (m, side)] = int(json.loads(cl.ipfs("repo", "stat", "--size-only", "--enc", "json"))["RepoSize"])
                finally:
                    cl.stop(remove=True)

            for side in (("fungi", "kubo") if r % 2 == 0 else ("kubo", "fungi")):
                fetch(side)
            if args.native:
                # fungi's own profile: fungi serves the CID `fungi add` gave,
                # A the CID of the same DAG (the same one unless they differ)
                for side in (("kubo", "fungi") if r % 2 == 0 else ("fungi", "kubo")):
                    fetch(side, "fetch_native", rr["native_%s_cid" % side])
            rounds.append(rr)
            mb = args.size / 1e6
            say("round %d: ingest fungi %.0f MB/s, kubo %.0f MB/s; fetch from fungi %.0f MB/s, from kubo %.0f MB/s%s" % (
                r + 1, mb / rr["ingest_fungi_s"], mb / rr["ingest_kubo_s"], mb / rr["fetch_fungi_s"], mb / rr["fetch_kubo_s"],
                "; fungi's profile: from fungi %.0f MB/s, from kubo %.0f MB/s" % (
                    mb / rr["fetch_native_fungi_s"], mb / rr["fetch_native_kubo_s"]) if args.native else ""))
            # A, B and the cluster keep the file: the next round's is another

        mb = args.size / 1e6
        for m in ("ingest", "fetch") + (("fetch_native",) if args.native else ()):
            out[m] = {"fungi_mb_s": median_range([mb / rr[m + "_fungi_s"] for rr in rounds]),
                      "kubo_mb_s": median_range([mb / rr[m + "_kubo_s"] for rr in rounds]),
                      "ratio": median_range([rr[m + "_kubo_s"] / rr[m + "_fungi_s"] for rr in rounds])}
        out["rounds_detail"] = rounds
        out["cids"] = [rr["cid"] for rr in rounds]
        out["load"]["end"] = os.getloadavg()
        out["others_cpu"] = watch.seen
        return out
    finally:
        # a second Ctrl-C must not cut the cleanup short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("cleaning up (testnet down, kubo daemons)")
        for k in kubos:
            k.stop()
        fungi.stop()


# core-seconds per GiB: (measure, side, [(label, group)])
COSTS = (("fetch", "fungi", (("fungi node 6 (serving)", "server"), ("fungi nodes 1-5 (holders)", "holders"),
                             ("Kubo client daemon", "kubo_client"), ("ipfs cat", "client"))),
         ("fetch", "kubo", (("Kubo A (serving)", "server"), ("Kubo client daemon", "kubo_client"), ("ipfs cat", "client"))),
         ("fetch_native", "fungi", (("fungi node 6 (serving)", "server"), ("fungi nodes 1-5 (holders)", "holders"),
                                    ("Kubo client daemon", "kubo_client"), ("ipfs cat", "client"))),
         ("fetch_native", "kubo", (("Kubo A (serving)", "server"), ("Kubo client daemon", "kubo_client"), ("ipfs cat", "client"))),
         ("ingest", "fungi", (("fungi leader (pin add)", "ingester"), ("other fungi nodes", "other_fungi"),
                              ("Kubo A (serving)", "kubo_server"), ("fungi pin add", "client"))),
         ("ingest", "kubo", (("Kubo B (pin add)", "ingester"), ("Kubo A (serving)", "kubo_server"), ("ipfs pin add", "client"))))


def costs(d):
    """Median core-seconds per GiB of each process group, per measure."""
    seen, gib = d.get("others_cpu") or {}, d["size"] / (1 << 30)
    res = {}
    for m, side, groups in COSTS:
        spans = [v["cpu_s"] for k, v in seen.items() if k.startswith("%s %s " % (m, side))]
        if spans:
            res[(m, side)] = [(label, statistics.median(s[g] for s in spans) / gib) for label, g in groups]
    return res


def render(d):
    """The run as text: facts, then a markdown table."""
    m, v, n = d["machine"], d["versions"], d["rounds"]
    f, i = d["fetch"], d["ingest"]

    def mr(x, fmt="%.0f"):
        return (fmt + " (" + fmt + "-" + fmt + ")") % (x["median"], x["min"], x["max"]) if n > 1 else fmt % x["median"]

    lines = [
        "- machine: %s, nproc %d, kernel %s" % (m["cpu"] or "?", m["nproc"], m["kernel"]),
        "- versions: %s; ipfs %s" % (v["fungi"], v["ipfs"].removeprefix("ipfs version ")),
        "- content: a fresh %s random file per round, `ipfs add` on A with Kubo's defaults (CIDv0, 256 KiB chunks); "
        "the cluster ingests that CID, so both sides serve the same DAG; %d round%s, median (min-max)%s" % (
            human(d["size"]), n, "s" if n != 1 else "", "; CIDs " + ", ".join(d["cids"]) if d.get("cids") else ""),
        "- Kubo's flatfs sync: %s; the testnet's ZDBs do not fsync (`zdb_sync` false)" % json.dumps(d.get("kubo_flatfs_sync")),
        "",
        "| measure | FungiStor, MB/s | Kubo, MB/s | fungi/kubo | target |",
        "|---|---|---|---|---|",
        "| Kubo fetches the file (`ipfs cat CID > FILE`, fresh client): from node 6 (holds no fragment) vs from Kubo A | %s | %s | **%s** | %s |" % (
            mr(f["fungi_mb_s"]), mr(f["kubo_mb_s"]), mr(f["ratio"], "%.2f"), TARGETS["fetch"]),
        "| ingest from Kubo A over bitswap: `fungi pin add` on the leader vs `ipfs pin add` on B | %s | %s | **%s** | %s |" % (
            mr(i["fungi_mb_s"]), mr(i["kubo_mb_s"]), mr(i["ratio"], "%.2f"), TARGETS["ingest"]),
    ]
    if "fetch_native" in d:
        fn, rd = d["fetch_native"], d.get("rounds_detail", [])
        same = all(rr["native_fungi_cid"] == rr["native_kubo_cid"] for rr in rd)
        lines.insert(-1, "| the same, of the file in fungi's own profile (`fungi add` on the leader: CIDv1, 1 MiB raw leaves; "
                         "A: `%s`%s) | %s | %s | %s | |" % (
                             " ".join(["ipfs"] + KUBO_NATIVE_ADD[:1] + KUBO_NATIVE_ADD[2:]) + " FILE",
                             ", the same CID" if same else ", other CIDs", mr(fn["fungi_mb_s"]), mr(fn["kubo_mb_s"]), mr(fn["ratio"], "%.2f")))
        lines.insert(3, "- fungi's profile: %s" % ", ".join(
            rr["native_fungi_cid"] + ("" if rr["native_fungi_cid"] == rr["native_kubo_cid"] else " (A: %s)" % rr["native_kubo_cid"])
            for rr in rd))
    fr = [rr.get("fungi_fragment_bytes_per_byte") for rr in d.get("rounds_detail", [])]
    if fr and all(x is not None for x in fr):
        lines.insert(4, "- fragment bytes the cluster stored per byte ingested (16/4): %s" % ", ".join("%.3f" % x for x in fr))
    verdicts = []
    for key, label, x in (("fetch", "Kubo fetching from fungi", f["ratio"]["median"]), ("ingest", "ingest", i["ratio"]["median"])):
        op, want = TARGETS[key].split()
        verdicts.append("%s %.2f (%s %s): %s" % (label, x, op, want, "met" if x >= float(want) else "**missed**"))
    lines += ["", "Targets, fungi/kubo (median): " + "; ".join(verdicts) + "."]
    c = costs(d)
    if c:
        lines += ["", "Core-seconds per GiB of content (median over the rounds):", ""]
        for (mm, side), parts in c.items():
            lines.append("- %s, %s side: %s" % (mm.replace("fetch_native", "fetch in fungi's profile"), "FungiStor" if side == "fungi" else "Kubo",
                                                 ", ".join("%s %.2f" % (label, x) for label, x in parts)))
    if d.get("others_cpu"):
        ncpu = m["nproc"] or 1
        share = max((w["others_cpu_s"] / (w["wall_s"] * ncpu) if w["wall_s"] else 0, k) for k, w in d["others_cpu"].items())
        lines.insert(3, "- CPU taken by other processes during the timed measures: at most %.0f%% of the %d cores (%s)" % (
            100 * share[0], ncpu, share[1]))
    if "end" in d.get("load", {}):
        lines.insert(3, "- load average (1, 5, 15 min): %s at the start, %s at the end" % (
            ", ".join("%.2f" % x for x in d["load"]["start"]), ", ".join("%.2f" % x for x in d["load"]["end"])))
    return "\n".join(lines)


def main():
    global quiet
    ap = argparse.ArgumentParser(description="FungiStor in the IPFS network beside Kubo: Kubo fetching from fungi, and ingest.")
    ap.add_argument("--size", default=os.environ.get("IPFSNET_SIZE", "1G"), help="file size (e.g. 64M, 1G; default $IPFSNET_SIZE or 1G)")
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", "3")), help="rounds, each on a fresh file (default $ROUNDS or 3)")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--work", help="working directory (must not exist or be empty; default a new one in $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the working directory (repos, logs)")
    ap.add_argument("--fungi", help="fungi binary to use (default: go build ./cmd/fungi into WORK)")
    ap.add_argument("--ipfs", help="ipfs binary to use (default: scripts/kubo.sh, .tools/ipfs)")
    ap.add_argument("--no-native", dest="native", action="store_false",
                    help="skip the second fetch pair, of the file in fungi's own profile (fungi add: CIDv1, 1 MiB raw leaves)")
    ap.add_argument("--pprof", metavar="DIR", help="save CPU profiles of node 6 (fetch) and the leader (ingest), first round")
    ap.add_argument("--pprof-seconds", dest="pprof_s", type=int, default=5, help="length of those profiles (default 5)")
    ap.add_argument("--from-json", metavar="FILE", help="print the table of a saved --json run (- for stdin) and exit")
    args = ap.parse_args()
    quiet = bc.quiet = args.quiet
    if args.from_json:
        print(render(json.load(sys.stdin if args.from_json == "-" else open(args.from_json))))
        return 0
    args.size = parse_size(args.size)
    if args.size < MiB or args.rounds < 1:
        ap.error("--size must be at least 1M and --rounds at least 1")
    if args.pprof:
        args.pprof = os.path.abspath(args.pprof)
        os.makedirs(args.pprof, exist_ok=True)
    return bc.drive("bench_ipfsnet", ap, args, bench, render)

if __name__ == "__main__":
    sys.exit(main())
