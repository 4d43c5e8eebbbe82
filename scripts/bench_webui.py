#!/usr/bin/env python3
"""The web console (issue 14): what its API calls and its open pages cost,
with thousands of objects and with one big object.

Every part runs on a fresh `FUNGI_DEBUG_API=1 fungi testnet up -n NODES --ec
EC` (default 5 nodes, 16/4); the console is node 1's
(`http://<node 1 api>/webui/`), driven by Debian's Chromium headless
(`--headless=new --no-sandbox --disable-gpu --window-size=1280,800`, a
fresh profile per part) through its DevTools protocol over a pipe
(`--remote-debugging-pipe`; no package beyond the standard library). A page
is ready when it sets `#page[data-ready="1"]` (its first data rendered);
the time to ready is `performance.now()` at that mutation, i.e. from the
start of the navigation, recorded by a script installed in every new
document (Page.addScriptToEvaluateOnNewDocument). Each page polls the API
every 2 s while open.

  objects  --objects N (default 5000) distinct random objects of 1-20 KiB,
           POSTed as multipart to node 1's /api/v0/add from --threads
           (default 8) threads; until the leader counts them all full
           (/api/v0/repair/status). GET /api/v0/objects on node 1: the first
           call after the last add (fresh connection), then --calls
           (default 50) warm calls on one keep-alive connection, p50/p95,
           for the default page (limit 50), q=<8 characters of one CID>,
           health=full and offset=N-50; the response's bytes; the answering
           daemon's CPU per call from /proc/PID/stat (utime+stime) around a
           batch of --cpu-calls (default 200) calls, its idle rate
           (measured before) taken off. The same default page on a
           non-leader node, and /api/v0/cluster/status (what the
           overview polls). Browser: time to ready of #/objects (the first load of
           the browser, then the median of --loads more, each from
           about:blank), time from a search typed into #search
           (Input.insertText of 8 characters of one CID) to rows that all
           match (200 ms of it is the page's debounce). Steady cost: the
           CPU of every daemon and of Chromium's processes over --window
           seconds (default 60) with the browser on about:blank (idle),
           then with #/objects open, then with the overview (#/) open, then
           on about:blank again (the baseline is both idle windows; their
           difference is the noise), each from --settle seconds (default
           4) after ready.
  object   one random object of --size (default 1G; a list such as 1G,4G
           runs one fresh testnet per size) added on node 1 with `fungi add
           -q`; until the leader counts it full. GET /api/v0/stat?arg=CID on
           node 1: the first call, --calls warm, p50/p95, bytes, CPU per
           call of node 1 and of the other daemons (the holders; their idle
           rate taken off); then verify=true once. Browser: #/object/CID,
           time to ready (first load, then --loads more), and the CPU of
           every daemon and of Chromium over --window seconds on
           about:blank, with the object page open, and on about:blank
           again.

Core-% = CPU seconds / wall seconds * 100 (100 = one core; the machine's
count is in the run); "less idle" is a window less the baseline, and per
poll, that over the polls the page made in the window. Before each part it waits (up to --quiet-wait seconds)
while processes that look like another engineer's tests (`go test`,
`fungi.test`, or fungi daemons not of this run) run or other processes take
more than a quarter of a core, and records the CPU the rest of the machine
took during every window.

    scripts/bench_webui.py [--objects 5000] [--size 1G[,4G]] [--nodes 5]
                           [--ec 16/4] [--threads 8] [--calls 50]
                           [--cpu-calls 200] [--loads 3] [--window 60]
                           [--settle 4] [--parts objects,object]
                           [--quiet-wait 1200] [--json] [--quiet]
                           [--work DIR] [--keep] [--fungi BIN]
                           [--chromium BIN]
    scripts/bench_webui.py --from-json FILE|-   (render a saved --json run)

WEBUI_OBJECTS and WEBUI_SIZE set the defaults. Without --fungi it builds
cmd/fungi into WORK. Every testnet and the browser are stopped on exit,
Ctrl-C included; WORK is removed unless --keep. Python 3 standard library
only.
"""
import argparse, fcntl, http.client, json, os, queue, random, shutil, signal, statistics, subprocess, sys
import threading, time, uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no scripts/__pycache__
import bench_content as bc  # noqa: E402  (helpers: run, drive, build_fungi, ...)
import bench_repair as br  # noqa: E402  (Testnet, wait_quiet)
from bench_content import Failure, human, parse_size  # noqa: E402

MiB = 1 << 20
HZ = os.sysconf("SC_CLK_TCK")
# what is slow enough to call out (the brief's thresholds)
TARGETS = {"objects_ms": 100.0, "object_page_core_pct": 10.0}

quiet = False


def say(msg):
    if not quiet:
        print("bench_webui: " + msg, file=sys.stderr, flush=True)


bc.say = br.say = say  # the helpers report as this script


def pct(xs, p):
    return bc.percentile(xs, p) if xs else None


# --- CPU ------------------------------------------------------------------------

def cpu_us(pid):
    """(utime, stime) of pid, seconds (None: gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            v = f.read().rsplit(")", 1)[1].split()
        return int(v[11]) / HZ, int(v[12]) / HZ
    except (OSError, IndexError, ValueError):
        return None


def descendants(root):
    """root and every process below it."""
    kids = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(p))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def all_procs():
    """Every process now: pid -> (start time, own utime+stime, that of its
    reaped children, name)."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                raw = f.read()
            name, v = raw[raw.index("(") + 1:raw.rindex(")")], raw.rsplit(")", 1)[1].split()
            out[int(p)] = (int(v[19]), (int(v[11]) + int(v[12])) / HZ, (int(v[13]) + int(v[14])) / HZ, name)
        except (OSError, IndexError, ValueError):
            continue
    return out


class Meter:
    """CPU seconds of named groups of processes over a span: groups maps a
    name to a function returning its pids now (a process born during the
    span counts whole). The rest of the machine (others) is every other
    process's utime+stime and that of the children it reaped meanwhile
    (so short-lived commands, such as a compiler's, count), less what the
    processes that ended during the span had used before it (a reaped
    child's whole life lands in its reaper's figures), kernel threads
    included; /proc/stat's tick-sampled totals undercount on this VM."""

    def __init__(self, groups):
        self.groups = groups

    def snap(self):
        per = {g: {p: cpu_us(p) for p in f()} for g, f in self.groups.items()}
        return time.perf_counter(), per, all_procs(), sum(os.times()[:2])

    def start(self):
        self.t0 = self.snap()

    def stop(self):
        t1, per1, all1, me1 = self.snap()
        t0, per0, all0, me0 = self.t0
        wall = t1 - t0
        out = {"wall_s": round(wall, 3), "cpu_s": {}, "sys_s": {}}
        for g, pids in per1.items():
            was = {p: c or (0, 0) for p, c in per0[g].items()}
            out["cpu_s"][g] = round(sum(c[0] + c[1] - sum(was.get(p, (0, 0))) for p, c in pids.items() if c), 3)
            out["sys_s"][g] = round(sum(c[1] - was.get(p, (0, 0))[1] for p, c in pids.items() if c), 3)
        out["client_cpu_s"] = round(me1 - me0, 3)
        ours = {os.getpid()} | {p for per in (per0, per1) for pids in per.values() for p in pids}
        others, top = 0.0, {}
        for p, (st, own, kids, name) in all1.items():
            if p in ours:
                continue
            b = all0.get(p)
            d = own + kids - (b[1] + b[2] if b and b[0] == st else 0)
            others += d
            top[name] = top.get(name, 0) + d
        for p, (st, own, kids, name) in all0.items():
            if p in ours or (p in all1 and all1[p][0] == st):
                continue
            others -= own + kids  # ended during the span: its earlier CPU is not the span's
            top[name] = top.get(name, 0) - (own + kids)
        others = max(0.0, others)
        out["others_cpu_s"] = round(others, 3)
        out["others_top"] = [[n, round(c, 2)] for n, c in sorted(top.items(), key=lambda x: -x[1])[:4] if c > 0]
        return out


def core_pct(span, group):
    return 100.0 * span["cpu_s"][group] / span["wall_s"]


# --- HTTP -----------------------------------------------------------------------

class Client:
    """One keep-alive HTTP/1.1 connection to an API (a browser's way)."""

    def __init__(self, addr, timeout=600):
        host, port = addr.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)

    def get(self, path):
        """(seconds to the last byte, status, body)."""
        t0 = time.perf_counter()
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        body = r.read()
        took = time.perf_counter() - t0
        if r.status != 200:
            raise Failure("GET %s: %d %s" % (path, r.status, body[:300].decode(errors="replace")))
        return took, body

    def close(self):
        self.conn.close()


def add_many(addr, n, threads, lo=1024, hi=20 * 1024):
    """n distinct random objects of lo..hi bytes POSTed to /api/v0/add as
    multipart (one part: name="file", filename="x") from `threads`
    threads; returns (CIDs, seconds)."""
    lock = threading.Lock()
    todo = iter(range(n))
    cids, errs = [], []
    host, port = addr.rsplit(":", 1)

    def worker():
        conn = http.client.HTTPConnection(host, int(port), timeout=300)
        rng = random.Random()
        try:
            while True:
                with lock:
                    i = next(todo, None)
                    if i is None or errs:
                        return
                data = os.urandom(rng.randint(lo, hi))
                b = uuid.uuid4().hex.encode()
                body = (b"--" + b + b'\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n'
                        b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--" + b + b"--\r\n")
                conn.request("POST", "/api/v0/add", body, {"Content-Type": "multipart/form-data; boundary=" + b.decode()})
                r = conn.getresponse()
                lines = r.read().decode(errors="replace").strip().splitlines()
                last = json.loads(lines[-1]) if lines else {}
                with lock:
                    if r.status != 200 or "root" not in last:
                        errs.append("POST /api/v0/add: %d %s" % (r.status, (lines[-1] if lines else "")[:300]))
                        return
                    cids.append(last["root"])
                    if len(cids) % 500 == 0:
                        say("  added %d of %d" % (len(cids), n))
        except (OSError, http.client.HTTPException, ValueError) as e:
            with lock:
                errs.append("POST /api/v0/add: %s" % e)
        finally:
            conn.close()

    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.perf_counter() - t0
    if errs:
        raise Failure(errs[0])
    return cids, took


# --- the browser ----------------------------------------------------------------

# Installed in every new document before the page's own scripts: the time
# #page gets data-ready="1" (performance.now(): from the navigation's
# start), long tasks, and room for every resource timing entry.
INIT_JS = r"""
(() => {
  try { performance.setResourceTimingBufferSize(1000000); } catch (_) {}
  const b = window.__bench = { readyAt: null, long: { n: 0, ms: 0 } };
  try {
    new PerformanceObserver((l) => { for (const e of l.getEntries()) { b.long.n++; b.long.ms += e.duration; } })
      .observe({ type: "longtask", buffered: true });
  } catch (_) {}
  const check = () => {
    const p = document.getElementById("page");
    if (b.readyAt == null && p && p.dataset.ready === "1") b.readyAt = performance.now();
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-ready"] });
})();
"""

# The API requests the page made (resource timing): count, and the first's
# duration and body size.
API_JS = r"""
((part) => {
  const es = performance.getEntriesByType("resource").filter((e) => e.name.includes(part));
  const f = es[0];
  return { n: es.length, first_ms: f ? f.responseEnd - f.startTime : null, first_bytes: f ? f.decodedBodySize : null,
           last_ms: es.length ? es[es.length - 1].responseEnd - es[es.length - 1].startTime : null,
           long: window.__bench ? window.__bench.long : null };
})
"""


class Browser:
    """Chromium headless, driven over --remote-debugging-pipe (fd 3: its
    commands, fd 4: its answers, NUL-terminated JSON)."""

    def __init__(self, binary, profile, width=1280, height=800):
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        # fds 10 and up, so the dups onto 3 and 4 below cannot clobber them
        a, b = fcntl.fcntl(r1, fcntl.F_DUPFD, 10), fcntl.fcntl(w2, fcntl.F_DUPFD, 10)
        os.close(r1)
        os.close(w2)
        self.profile = profile
        args = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                "--user-data-dir=" + profile, "--no-first-run", "--no-default-browser-check",
                "--window-size=%d,%d" % (width, height), "about:blank"]
        self.log = open(profile + ".log", "w")
        self.proc = subprocess.Popen(["bash", "-c", 'exec "$@" 3<&%d 4>&%d %d<&- %d>&-' % (a, b, a, b), "bash"] + args,
                                     pass_fds=(a, b), stdout=self.log, stderr=self.log, start_new_session=True)
        os.close(a)
        os.close(b)
        self.w = os.fdopen(w1, "wb", buffering=0)
        self.r = os.fdopen(r2, "rb", buffering=0)
        self.lock = threading.Lock()
        self.next_id = 0
        self.waiting = {}
        self.errors = []
        threading.Thread(target=self._read, daemon=True).start()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for m in ("Page.enable", "Runtime.enable"):
            self.cmd(m)
        self.cmd("Page.addScriptToEvaluateOnNewDocument", {"source": INIT_JS})

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = self.r.read(1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                m = json.loads(raw)
                if "id" in m:
                    q = self.waiting.pop(m["id"], None)
                    if q:
                        q.put(m)
                elif m.get("method") == "Runtime.exceptionThrown":
                    d = m["params"]["exceptionDetails"]
                    self.errors.append("exception: %s %s" % (d.get("text"), (d.get("exception") or {}).get("description", "")))
                elif m.get("method") == "Runtime.consoleAPICalled" and m["params"].get("type") in ("error", "assert"):
                    self.errors.append("console.error: " + " ".join(
                        str(a.get("value", a.get("description", ""))) for a in m["params"].get("args", [])))
        for q in list(self.waiting.values()):
            q.put({"error": {"message": "the browser closed its pipe"}})

    def send(self, method, params=None, session=None, timeout=120):
        with self.lock:
            self.next_id += 1
            i = self.next_id
            q = queue.Queue()
            self.waiting[i] = q
            m = {"id": i, "method": method, "params": params or {}}
            if session:
                m["sessionId"] = session
            try:
                self.w.write(json.dumps(m).encode() + b"\0")
            except OSError as e:
                raise Failure("chromium: %s: %s" % (method, e))
        try:
            r = q.get(timeout=timeout)
        except queue.Empty:
            raise Failure("chromium: %s: no answer in %d s" % (method, timeout))
        if "error" in r:
            raise Failure("chromium: %s: %s" % (method, r["error"].get("message")))
        return r["result"]

    def cmd(self, method, params=None, timeout=120):
        return self.send(method, params, self.session, timeout)

    def eval(self, js, timeout=120):
        r = self.cmd("Runtime.evaluate", {"expression": js, "returnByValue": True, "awaitPromise": True}, timeout)
        if "exceptionDetails" in r:
            raise Failure("chromium: evaluating %s: %s" % (js[:60], r["exceptionDetails"].get("text")))
        return r["result"].get("value")

    def pids(self):
        return descendants(self.proc.pid) if self.proc.poll() is None else []

    def blank(self):
        self.cmd("Page.navigate", {"url": "about:blank"})
        self.wait_js("location.href === 'about:blank' && document.readyState === 'complete'", 30)

    def wait_js(self, js, timeout):
        deadline = time.time() + timeout
        while True:
            try:
                v = self.eval(js, timeout=30)
            except Failure:
                v = None  # the context went with a navigation: ask again
            if v:
                return v
            if time.time() > deadline:
                raise Failure("chromium: %s not true after %d s (errors: %s)" % (js[:80], timeout, self.errors[-3:]))
            time.sleep(0.02)

    def load(self, url, timeout=300):
        """Navigates (from about:blank) to url; returns ms from the start of
        the navigation to #page[data-ready="1"]."""
        self.blank()
        self.cmd("Page.navigate", {"url": url})
        return self.wait_js("location.href === %s && window.__bench && window.__bench.readyAt" % json.dumps(url), timeout)

    def api_requests(self, part):
        return self.eval(API_JS + "(%s)" % json.dumps(part))

    def search(self, q, timeout=60):
        """Types q into #search (empty first); ms from the keystrokes to rows
        of #objects-body that all contain q (the page's 200 ms debounce
        included)."""
        self.eval("""new Promise((res) => {
          const s = document.querySelector('#search'); s.focus(); s.select();
          const q = %s;
          const ok = () => { const rows = [...document.querySelectorAll('#objects-body tr[data-cid]')];
            return rows.length > 0 && rows.every((r) => r.dataset.cid.toLowerCase().includes(q.toLowerCase())); };
          window.__search = new Promise((done) => {
            const mo = new MutationObserver(() => { if (ok()) { mo.disconnect(); done(performance.now()); } });
            mo.observe(document.querySelector('#objects-body'), { childList: true, subtree: true });
          });
          window.__searchT0 = performance.now();
          res(true);
        })""" % json.dumps(q))
        self.cmd("Input.insertText", {"text": q})
        return self.eval("window.__search.then((t) => t - window.__searchT0)", timeout)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send("Browser.close", timeout=10)
            except Failure:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only its processes
            except OSError:
                pass
            self.proc.wait()
        self.log.close()


# --- the parts ----------------------------------------------------------------------

def start_testnet(args, work, fungi_bin, name):
    tn = br.Testnet(fungi_bin, os.path.join(work, name), args.nodes, args.ec, [])
    say("%s: fungi testnet up -n %d --ec %s" % (name, args.nodes, args.ec))
    tn.up()
    return tn


def leader_now(tn):
    """The index of the node that is raft leader now (None: none)."""
    ls = [n["index"] for n in tn.refresh() if n.get("role") == "leader"]
    return ls[0] if ls else None


def daemon_groups(tn):
    return {"node%d" % i: (lambda i=i: [tn.pid(i)]) for i in tn.live()}


def idle_rates(tn, seconds):
    """Each daemon's idle CPU, seconds per second."""
    m = Meter(daemon_groups(tn))
    m.start()
    time.sleep(seconds)
    s = m.stop()
    return {g: c / s["wall_s"] for g, c in s["cpu_s"].items()}, s


def batch(addr, path, calls, groups, idle):
    """calls GETs of path back to back on one connection: latencies (ms),
    body bytes, and per group the CPU ms per call (idle rate taken off) and
    raw."""
    c = Client(addr)
    try:
        c.get(path)  # the connection made
        m = Meter(groups)
        m.start()
        lat, size, body = [], 0, b""
        for _ in range(calls):
            t, body = c.get(path)
            lat.append(t * 1000)
            size = len(body)
        s = m.stop()
    finally:
        c.close()
    per = {g: 1000 * max(0.0, v - idle.get(g, 0) * s["wall_s"]) / calls for g, v in s["cpu_s"].items()}
    raw = {g: 1000 * v / calls for g, v in s["cpu_s"].items()}
    return {"ms": lat, "p50_ms": statistics.median(lat), "p95_ms": pct(lat, 95), "bytes": size,
            "cpu_ms_per_call": per, "cpu_ms_per_call_raw": raw, "span": s, "body": body}


def first_call(addr, path):
    c = Client(addr)
    try:
        t, body = c.get(path)
    finally:
        c.close()
    return {"ms": t * 1000, "bytes": len(body), "body": body}


def window(tn, browser, seconds, endpoint=None):
    """CPU of every daemon and of the browser over `seconds`, and the page's
    API requests meanwhile."""
    groups = daemon_groups(tn)
    groups["chromium"] = browser.pids
    m = Meter(groups)
    before = browser.api_requests(endpoint) if endpoint else None
    m.start()
    time.sleep(seconds)
    s = m.stop()
    if endpoint:
        after = browser.api_requests(endpoint)
        s["polls"] = after["n"] - before["n"]
        s["poll_ms_last"] = after["last_ms"]
        if before["long"] and after["long"]:
            s["long_tasks"] = {"n": after["long"]["n"] - before["long"]["n"], "ms": round(after["long"]["ms"] - before["long"]["ms"], 1)}
    s["core_pct"] = {g: round(core_pct(s, g), 2) for g in s["cpu_s"]}
    s["others_core_pct"] = round(100 * s["others_cpu_s"] / s["wall_s"], 2)
    return s


def open_page(tn, browser, url, endpoint, args, loads):
    """Loads url `loads`+1 times (ready ms each), leaves it open: settle, then
    the steady window."""
    ready = []
    for i in range(loads + 1):
        ready.append(browser.load(url))
    api = browser.api_requests(endpoint)
    time.sleep(args.settle)
    w = window(tn, browser, args.window, endpoint)
    return {"url": url, "ready_ms": ready, "first_ready_ms": ready[0], "warm_ready_ms": statistics.median(ready[1:]) if loads else None,
            "first_api": {"ms": api["first_ms"], "bytes": api["first_bytes"]}, "window": w}


def part_objects(args, work, fungi_bin):
    tn = start_testnet(args, work, fungi_bin, "objects")
    browser = None
    try:
        a1 = tn.api(1)
        out = {"leader": tn.leader, "n": args.objects}
        say("objects: adding %d objects of 1-20 KiB to node 1 from %d threads" % (args.objects, args.threads))
        cids, took = add_many(a1, args.objects, args.threads)
        out["add_s"] = round(took, 2)
        out["first"] = {k: v for k, v in first_call(a1, "/api/v0/objects").items() if k != "body"}
        say("objects: first GET /api/v0/objects after the last add: %.1f ms" % out["first"]["ms"])
        tn.wait_whole(args.objects, timeout=600)
        out["leader"] = leader_now(tn) or tn.leader
        idle, span = idle_rates(tn, 10)
        out["idle_core_pct"] = {g: round(100 * v, 2) for g, v in idle.items()}
        cid = random.Random(14).choice(cids)
        q = cid[-12:-4]  # 8 characters of one CID, not its common prefix
        out["q"] = q
        paths = [("default page (limit 50)", "/api/v0/objects"), ("q=%s" % q, "/api/v0/objects?q=" + q),
                 ("health=full", "/api/v0/objects?health=full"), ("offset=%d" % max(0, args.objects - 50),
                                                                 "/api/v0/objects?offset=%d" % max(0, args.objects - 50))]
        other = next(i for i in tn.live() if i != tn.leader and i != 1)
        out["other_node"] = other
        groups = daemon_groups(tn)
        calls = []
        for label, path in paths:
            lat = batch(a1, path, args.calls, groups, idle)
            cpu = batch(a1, path, args.cpu_calls, groups, idle)
            calls.append({"label": label, "path": path, "node": 1, "p50_ms": lat["p50_ms"], "p95_ms": lat["p95_ms"],
                          "ms": lat["ms"], "bytes": lat["bytes"], "cpu_ms_per_call": cpu["cpu_ms_per_call"]["node1"],
                          "cpu_ms_per_call_raw": cpu["cpu_ms_per_call_raw"]["node1"],
                          "cpu_p50_ms": cpu["p50_ms"], "cpu_calls": args.cpu_calls})
            say("objects: %s: p50 %.1f ms, p95 %.1f ms, %d bytes, node 1 %.2f ms CPU per call" % (
                label, lat["p50_ms"], lat["p95_ms"], lat["bytes"], cpu["cpu_ms_per_call"]["node1"]))
        ao = tn.api(other)
        fo = first_call(ao, "/api/v0/objects")
        lat = batch(ao, "/api/v0/objects", args.calls, groups, idle)
        cpu = batch(ao, "/api/v0/objects", args.cpu_calls, groups, idle)
        say("objects: default page on node %d: first %.1f ms, p50 %.1f ms, p95 %.1f ms" % (other, fo["ms"], lat["p50_ms"], lat["p95_ms"]))
        calls.append({"label": "default page, on node %d (not the leader)" % other, "path": "/api/v0/objects", "node": other,
                      "first_ms": fo["ms"], "p50_ms": lat["p50_ms"], "p95_ms": lat["p95_ms"], "ms": lat["ms"], "bytes": lat["bytes"],
                      "cpu_ms_per_call": cpu["cpu_ms_per_call"]["node%d" % other],
                      "cpu_ms_per_call_raw": cpu["cpu_ms_per_call_raw"]["node%d" % other], "cpu_calls": args.cpu_calls})
        for label, path in (("cluster/status (what the overview polls)", "/api/v0/cluster/status"),):
            lat = batch(a1, path, args.calls, groups, idle)
            cpu = batch(a1, path, args.cpu_calls, groups, idle)
            calls.append({"label": label, "path": path, "node": 1, "p50_ms": lat["p50_ms"], "p95_ms": lat["p95_ms"], "ms": lat["ms"],
                          "bytes": lat["bytes"], "cpu_ms_per_call": cpu["cpu_ms_per_call"]["node1"],
                          "cpu_ms_per_call_raw": cpu["cpu_ms_per_call_raw"]["node1"], "cpu_calls": args.cpu_calls})
        out["calls"] = calls

        say("objects: chromium on node 1's console")
        browser = Browser(args.chromium, os.path.join(work, "chromium-objects"))
        base = "http://%s/webui/" % a1
        browser.blank()
        time.sleep(args.settle)
        out["idle_window"] = window(tn, browser, args.window)
        say("objects: idle testnet, browser on about:blank: daemons %.1f%%, chromium %.1f%% of a core" % (
            sum(v for g, v in out["idle_window"]["core_pct"].items() if g != "chromium"), out["idle_window"]["core_pct"]["chromium"]))
        # the searches: a fresh page each, 8 characters of a CID typed at once
        rng = random.Random(15)
        searches = []
        for c in rng.sample(cids, min(len(cids), args.loads + 2)):
            browser.load(base + "#/objects")
            s = c[-12:-4]
            searches.append({"q": s, "ms": browser.search(s)})
        out["search"] = searches
        say("objects: search to rows: %s ms" % ", ".join("%.0f" % s["ms"] for s in searches))
        out["objects_page"] = open_page(tn, browser, base + "#/objects", "/api/v0/objects", args, args.loads)
        say("objects: #/objects ready in %.0f ms (first), %.0f ms (warm); open: node 1 %.1f%%, chromium %.1f%% of a core, %d polls" % (
            out["objects_page"]["first_ready_ms"], out["objects_page"]["warm_ready_ms"] or 0,
            out["objects_page"]["window"]["core_pct"]["node1"], out["objects_page"]["window"]["core_pct"]["chromium"],
            out["objects_page"]["window"]["polls"]))
        out["overview_page"] = open_page(tn, browser, base + "#/", "/api/v0/cluster/status", args, args.loads)
        say("objects: #/ ready in %.0f ms; open: node 1 %.1f%%, chromium %.1f%% of a core, %d polls" % (
            out["overview_page"]["first_ready_ms"], out["overview_page"]["window"]["core_pct"]["node1"],
            out["overview_page"]["window"]["core_pct"]["chromium"], out["overview_page"]["window"]["polls"]))
        browser.blank()
        time.sleep(args.settle)
        out["idle_after"] = window(tn, browser, args.window)
        out["leader_end"] = leader_now(tn)
        out["browser_errors"] = browser.errors[:20]
        return out
    finally:
        if browser:
            browser.close()
        tn.down()


def part_object(args, work, fungi_bin, size):
    name = "object-%s" % human(size).replace(" ", "")
    tn = start_testnet(args, work, fungi_bin, name)
    browser = None
    try:
        a1 = tn.api(1)
        out = {"size": size, "leader": tn.leader}
        say("%s: fungi add -q of %s of random data on node 1" % (name, human(size)))
        cid, _, took = tn.add(work, name, size)
        out["cid"], out["add_s"] = cid, round(took, 2)
        tn.wait_whole(1, timeout=600)
        out["leader"] = leader_now(tn) or tn.leader
        idle, _ = idle_rates(tn, 10)
        out["idle_core_pct"] = {g: round(100 * v, 2) for g, v in idle.items()}
        groups = daemon_groups(tn)
        path = "/api/v0/stat?arg=" + cid
        first = first_call(a1, path)
        st = json.loads(first["body"])
        out["leader_after_add"] = out["leader"]
        out["stat"] = {"first_ms": first["ms"], "blocks": st["blocks"], "layout": len(st["layout"]), "holders": len(st["holders"]),
                       "health": st["health"]}
        lat = batch(a1, path, args.calls, groups, idle)
        holders = [g for g in groups if g != "node1"]
        out["stat"].update({"p50_ms": lat["p50_ms"], "p95_ms": lat["p95_ms"], "ms": lat["ms"], "bytes": lat["bytes"],
                            "cpu_ms_per_call": {"node1": lat["cpu_ms_per_call"]["node1"],
                                                "holders": sum(lat["cpu_ms_per_call"][g] for g in holders)},
                            "cpu_ms_per_call_raw": {"node1": lat["cpu_ms_per_call_raw"]["node1"],
                                                    "holders": sum(lat["cpu_ms_per_call_raw"][g] for g in holders)},
                            "cpu_per_daemon": lat["cpu_ms_per_call"]})
        say("%s: stat p50 %.0f ms, p95 %.0f ms, %d bytes; CPU per call: node 1 %.1f ms, holders %.1f ms" % (
            name, lat["p50_ms"], lat["p95_ms"], lat["bytes"], out["stat"]["cpu_ms_per_call"]["node1"],
            out["stat"]["cpu_ms_per_call"]["holders"]))
        v = batch(a1, path + "&verify=true", 1, groups, idle)
        vs = json.loads(v["body"])
        out["verify"] = {"ms": v["ms"][0], "bytes": v["bytes"], "cpu_s": {"node1": v["cpu_ms_per_call"]["node1"] / 1000,
                                                                          "holders": sum(v["cpu_ms_per_call"][g] for g in holders) / 1000},
                         "health": vs.get("health"), "unreachable": vs.get("unreachable") or [],
                         "damaged_blocks": len(vs.get("damaged") or []), "spare_fragments": vs.get("spare_fragments"),
                         "missing": sum(h.get("missing", 0) for h in vs.get("holders") or []),
                         "corrupt": sum(h.get("corrupt", 0) for h in vs.get("holders") or [])}
        say("%s: stat verify=true: %.1f s, health %s, %d unreachable holders, %d fragments missing" % (
            name, v["ms"][0] / 1000, vs.get("health"), len(out["verify"]["unreachable"]), out["verify"]["missing"]))

        browser = Browser(args.chromium, os.path.join(work, "chromium-" + name))
        browser.blank()
        time.sleep(args.settle)
        out["idle_window"] = window(tn, browser, args.window)
        out["object_page"] = open_page(tn, browser, "http://%s/webui/#/object/%s" % (a1, cid), "/api/v0/stat", args, args.loads)
        w = out["object_page"]["window"]
        say("%s: #/object ready in %.0f ms (first), %.0f ms (warm); open: node 1 %.1f%%, holders %.1f%%, chromium %.1f%% of a core, %d polls" % (
            name, out["object_page"]["first_ready_ms"], out["object_page"]["warm_ready_ms"] or 0, w["core_pct"]["node1"],
            sum(w["core_pct"][g] for g in holders), w["core_pct"]["chromium"], w["polls"]))
        browser.blank()
        time.sleep(args.settle)
        out["idle_after"] = window(tn, browser, args.window)
        out["leader_end"] = leader_now(tn)
        out["browser_errors"] = browser.errors[:20]
        return out
    finally:
        if browser:
            browser.close()
        tn.down()


def bench(args, work):
    fungi_bin = os.path.abspath(args.fungi) if args.fungi else bc.build_fungi(work)
    chrome = subprocess.run([args.chromium, "--version"], capture_output=True, text=True).stdout.strip()
    rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=bc.ROOT, capture_output=True, text=True).stdout.strip()
    out = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "machine": bc.machine(),
           "versions": {"fungi": bc.run([fungi_bin, "version"]).strip(), "tree": rev, "chromium": chrome},
           "nodes": args.nodes, "ec": args.ec, "objects": args.objects, "threads": args.threads, "size": args.sizes[0],
           "sizes": args.sizes, "calls": args.calls, "cpu_calls": args.cpu_calls, "loads": args.loads,
           "window_s": args.window, "settle_s": args.settle, "parts": args.parts, "quiet": {},
           "load": {"start": os.getloadavg()}}
    watch = bc.Watch()
    mine = [fungi_bin, work]
    try:
        if "objects" in args.parts:
            out["quiet"]["objects"] = br.wait_quiet(mine, watch, args.quiet_wait, "objects")
            out["objects_part"] = part_objects(args, work, fungi_bin)
        if "object" in args.parts:
            out["object_part"] = []
            for size in args.sizes:
                out["quiet"]["object %s" % human(size)] = br.wait_quiet(mine, watch, args.quiet_wait, "object " + human(size))
                out["object_part"].append(part_object(args, work, fungi_bin, size))
        out["load"]["end"] = os.getloadavg()
        return out
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for d in sorted(os.listdir(work)) if os.path.isdir(work) else []:
            p = os.path.join(work, d)
            if os.path.isdir(os.path.join(p, "node1")):
                subprocess.run([fungi_bin, "testnet", "down", "--dir", p], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- the write-up -----------------------------------------------------------------

def f1(x, fmt="%.1f"):
    return "-" if x is None else fmt % x


def render(d):
    lines = []
    m = d["machine"]
    lines.append("- %s; %d cores; `fungi version`: %s (the checkout running the script: %s); %s; %d nodes, coding %s" % (
        m.get("cpu", ""), m.get("nproc", 0), d["versions"]["fungi"], d["versions"]["tree"], d["versions"]["chromium"],
        d["nodes"], d["ec"]))
    for k, q in d.get("quiet", {}).items():
        lines.append("- before %s: waited %d s; %s (%.2f cores taken by other processes%s)" % (
            k, q["waited_s"], "quiet" if q["quiet"] else "**not quiet**", q["others_cores"],
            "; " + "; ".join(s[:60] for s in q["others"][:2]) if q["others"] else ""))
    la = d.get("load", {})
    if la.get("start") and la.get("end"):
        lines.append("- load average (1, 5, 15 min) at the start %s, at the end %s" % (
            ", ".join("%.2f" % x for x in la["start"]), ", ".join("%.2f" % x for x in la["end"])))
    ws = windows(d)
    if ws:
        worst = max(ws, key=lambda w: w["others_cpu_s"] / w["wall_s"])
        lines.append("- the rest of the machine during the %d measured windows: %.1f%% of a core on average, at most %.1f%% (%s)" % (
            len(ws), 100 * sum(w["others_cpu_s"] / w["wall_s"] for w in ws) / len(ws), 100 * worst["others_cpu_s"] / worst["wall_s"],
            ", ".join("%s %.2f s" % (n, c) for n, c in worst.get("others_top", [])) or "nothing"))
    win = d["window_s"]
    o = d.get("objects_part")
    if o:
        n = o["n"]
        lines += ["", "**%s objects** (1-20 KiB each; added in %.1f s from %d threads, %.0f/s; node 1 is %s):" % (
            format(n, ","), o["add_s"], d["threads"], n / o["add_s"], leader_words(o)),
            "", "| request (node 1 unless said) | first call, ms | warm p50, ms | warm p95, ms | response, bytes | answering daemon's CPU per call, ms |",
            "|---|---|---|---|---|---|"]
        lines.append("| `GET /api/v0/objects` first call after the last add | **%.1f** | | | %s | |" % (o["first"]["ms"], format(o["first"]["bytes"], ",")))
        for c in o["calls"]:
            slow = " (> %.0f ms)" % TARGETS["objects_ms"] if "objects" in c["path"] and c["p95_ms"] > TARGETS["objects_ms"] else ""
            lines.append("| `GET %s`: %s | %s | **%.1f** | %.1f%s | %s | **%.2f** |" % (
                c["path"], c["label"], f1(c.get("first_ms")), c["p50_ms"], c["p95_ms"], slow, format(c["bytes"], ","),
                c["cpu_ms_per_call"]))
        op, ov, iw = o["objects_page"], o["overview_page"], baseline(o)
        lines += ["", "Console of node 1 in Chromium (headless), %d objects:" % n, "",
                  "| page | ready, first load, ms | ready, warm (median of %d), ms | its first API answer in the page, ms |" % d["loads"],
                  "|---|---|---|---|",
                  "| `#/objects` | **%.0f** | **%.0f** | %s |" % (op["first_ready_ms"], op["warm_ready_ms"] or 0, f1(op["first_api"]["ms"])),
                  "| `#/` (overview) | %.0f | %.0f | %s |" % (ov["first_ready_ms"], ov["warm_ready_ms"] or 0, f1(ov["first_api"]["ms"])),
                  "| search: 8 characters of a CID typed into `#search` to the matching rows (200 ms debounce included), ms | %s | median **%.0f** | |" % (
                      ", ".join("%.0f" % s["ms"] for s in o["search"]), statistics.median(s["ms"] for s in o["search"]))]
        lines += ["", "Steady cost over %d s windows, %% of one core (100 = a core; idle: the browser on about:blank):" % win, "",
                  "| window | polls | node 1 | %sother daemons (sum) | all daemons | Chromium (all its processes) | rest of the machine |" % (
                      "leader (node %d) | " % o["leader"] if o["leader"] != 1 else ""),
                  "|---|---|---|---|---|---|---|" + ("---|" if o["leader"] != 1 else "")]
        rows = [("idle testnet, browser on about:blank (before)", o["idle_window"]), ("`#/objects` open", op["window"]),
                ("`#/` overview open", ov["window"])]
        if o.get("idle_after"):
            rows += [("idle again (after)", o["idle_after"]), ("idle, both windows (the baseline)", iw)]
        for label, w in rows:
            lines.append(window_row(label, w, o["leader"]))
        lines.append("| **`#/objects` open, less idle** | | **%s** | %s%s | %s | **%s** | |" % (
            delta(op["window"], iw, ["node1"]), ("%s | " % delta(op["window"], iw, ["node%d" % o["leader"]])) if o["leader"] != 1 else "",
            delta(op["window"], iw, others(op["window"], o["leader"])), delta(op["window"], iw, daemons(op["window"])),
            delta(op["window"], iw, ["chromium"])))
        lines.append("| **`#/` overview open, less idle** | | **%s** | %s%s | %s | **%s** | |" % (
            delta(ov["window"], iw, ["node1"]), ("%s | " % delta(ov["window"], iw, ["node%d" % o["leader"]])) if o["leader"] != 1 else "",
            delta(ov["window"], iw, others(ov["window"], o["leader"])), delta(ov["window"], iw, daemons(ov["window"])),
            delta(ov["window"], iw, ["chromium"])))
        lines += ["", "Per poll (the window's CPU less the idle rate, over its polls): `#/objects` node 1 %s ms, Chromium %s ms; `#/` node 1 %s ms, Chromium %s ms." % (
            f1(per_poll_ms(op["window"], iw, ["node1"])), f1(per_poll_ms(op["window"], iw, ["chromium"])),
            f1(per_poll_ms(ov["window"], iw, ["node1"])), f1(per_poll_ms(ov["window"], iw, ["chromium"])))]
        if o.get("browser_errors"):
            lines.append("\nBrowser errors: " + "; ".join(o["browser_errors"][:5]))
    for b in d.get("object_part") or []:
        s, v, op, iw = b["stat"], b["verify"], b["object_page"], baseline(b)
        w = op["window"]
        lines += ["", "**One %s object** (%s blocks, %d holders; `fungi add -q` took %.1f s; node 1 is %s):" % (
            human(b["size"]), format(s["blocks"], ","), s["holders"], b["add_s"],
            leader_words(b)), "",
            "| measure | figure |", "|---|---|",
            "| `GET /api/v0/stat?arg=CID` on node 1: first call, ms | %.0f |" % s["first_ms"],
            "| the same, warm p50 / p95 over %d calls, ms | **%.0f** / %.0f |" % (d["calls"], s["p50_ms"], s["p95_ms"]),
            "| response, bytes | **%s** |" % format(s["bytes"], ","),
            "| CPU per call: node 1 (answering), the other %d daemons (holders, sum), ms | **%.1f**, **%.1f** |" % (
                s["holders"] - 1, s["cpu_ms_per_call"]["node1"], s["cpu_ms_per_call"]["holders"]),
            "| `stat ... &verify=true` once: s; response bytes; CPU node 1, holders, s | %.1f; %s; %.1f, %.1f |" % (
                v["ms"] / 1000, format(v["bytes"], ","), v["cpu_s"]["node1"], v["cpu_s"]["holders"]),
            "| what that verify reported: health; holders unreachable; fragments missing, corrupt | %s; %s; %s, %s |" % (
                v.get("health", "-"), len(v.get("unreachable", [])) if "unreachable" in v else "-", v.get("missing", "-"), v.get("corrupt", "-")),
            "| `#/object/CID` ready, first load / warm (median of %d), ms | **%.0f** / %.0f |" % (
                d["loads"], op["first_ready_ms"], op["warm_ready_ms"] or 0),
            "| polls of `stat` in %d s open; last poll in the page, ms | %d; %s |" % (win, w["polls"], f1(w.get("poll_ms_last"), "%.0f")),
            "| renderer long tasks (> 50 ms) while open: count, total ms | %s |" % (
                "%d, %.0f" % (w["long_tasks"]["n"], w["long_tasks"]["ms"]) if w.get("long_tasks") else "-"),
            "| CPU per poll while open (window less idle, over the polls): node 1, the holders, Chromium, ms | **%s**, %s, %s |" % (
                f1(per_poll_ms(w, iw, ["node1"]), "%.0f"), f1(per_poll_ms(w, iw, [g for g in daemons(w) if g != "node1"]), "%.0f"),
                f1(per_poll_ms(w, iw, ["chromium"]), "%.0f"))]
        if w.get("sys_s") and iw.get("sys_s"):
            lines.append("| node 1's kernel (system) time: open, idle, %% of a core | %.1f, %.1f |" % (
                100 * w["sys_s"]["node1"] / w["wall_s"], 100 * iw["sys_s"]["node1"] / iw["wall_s"]))
        lines += ["", "| %d s window, %% of one core | %s | all daemons | Chromium | rest of the machine |" % (
            win, " | ".join("node %s%s" % (g[4:], " (leader)" if int(g[4:]) == b["leader"] else "") for g in daemons(w))),
            "|---|" + "---|" * (len(daemons(w)) + 3)]
        rows = [("idle, browser on about:blank (before)", b["idle_window"]), ("`#/object/CID` open", w)]
        if b.get("idle_after"):
            rows += [("idle again (after)", b["idle_after"]), ("idle, both windows (the baseline)", iw)]
        for label, x in rows:
            lines.append("| %s%s | %s | %.1f | %.1f | %.1f |" % (label, busy_mark(x), " | ".join("%.1f" % x["core_pct"][g] for g in daemons(x)),
                                                              sum(x["core_pct"][g] for g in daemons(x)), x["core_pct"]["chromium"],
                                                              x["others_core_pct"]))
        flag = ""
        dd = sum(w["core_pct"][g] - iw["core_pct"][g] for g in daemons(w))
        if dd > TARGETS["object_page_core_pct"]:
            flag = " (> %.0f%% of a core)" % TARGETS["object_page_core_pct"]
        lines.append("| **open, less idle** | %s | **%.1f**%s | **%s** | |" % (
            " | ".join(delta(w, iw, [g]) for g in daemons(w)), dd, flag, delta(w, iw, ["chromium"])))
        if b.get("browser_errors"):
            lines.append("\nBrowser errors: " + "; ".join(b["browser_errors"][:5]))
    return "\n".join(lines)


def leader_words(part):
    """'the leader' or who is, after the add and at the end of the part."""
    a, z = part["leader"], part.get("leader_end")
    words = "the leader" if a == 1 else "not the leader (node %d is)" % a
    if z is not None and z != a:
        words += "; by the end of the part node %d was" % z
    return words


def daemons(w):
    return sorted((g for g in w["core_pct"] if g.startswith("node")), key=lambda g: int(g[4:]))


def others(w, leader):
    return [g for g in daemons(w) if g not in ("node1", "node%d" % leader)]


BUSY_PCT = 25.0  # the rest of the machine above this (% of a core) marks a window


def busy_mark(w):
    return " (**busy machine**)" if w.get("others_core_pct", 0) > BUSY_PCT else ""


def window_row(label, w, leader):
    ds = daemons(w)
    cells = ["%.1f" % w["core_pct"]["node1"]]
    if leader != 1:
        cells.append("%.1f" % w["core_pct"]["node%d" % leader])
    cells.append("%.1f" % sum(w["core_pct"][g] for g in others(w, leader)))
    cells.append("%.1f" % sum(w["core_pct"][g] for g in ds))
    cells.append("%.1f" % w["core_pct"]["chromium"])
    cells.append("%.1f" % w["others_core_pct"])
    return "| %s%s | %s | %s |" % (label, busy_mark(w), w.get("polls", "-"), " | ".join(cells))


def baseline(part):
    """The idle windows before and after the pages, as one."""
    a, b = part["idle_window"], part.get("idle_after")
    if not b:
        return a
    wall = a["wall_s"] + b["wall_s"]
    cpu = {g: a["cpu_s"][g] + b["cpu_s"].get(g, 0) for g in a["cpu_s"]}
    sys_ = {g: a.get("sys_s", {}).get(g, 0) + b.get("sys_s", {}).get(g, 0) for g in a["cpu_s"]}
    return {"wall_s": wall, "cpu_s": cpu, "sys_s": sys_, "core_pct": {g: 100 * c / wall for g, c in cpu.items()},
            "others_cpu_s": a["others_cpu_s"] + b["others_cpu_s"], "others_core_pct": 100 * (a["others_cpu_s"] + b["others_cpu_s"]) / wall}


def per_poll_ms(w, base, groups):
    """CPU ms per poll of the page: the groups' CPU over the window less
    their idle rate, over the polls."""
    if not w.get("polls"):
        return None
    extra = sum(w["cpu_s"][g] - base["cpu_s"].get(g, 0) * w["wall_s"] / base["wall_s"] for g in groups)
    return 1000 * extra / w["polls"]


def windows(d):
    o = d.get("objects_part") or {}
    out = [o[k]["window"] for k in ("objects_page", "overview_page") if k in o] + [o[k] for k in ("idle_window", "idle_after") if k in o]
    for b in d.get("object_part") or []:
        out += [b[k] for k in ("idle_window", "idle_after") if k in b] + [b["object_page"]["window"]]
    return out


def delta(w, base, groups):
    return "%+.1f" % sum(w["core_pct"][g] - base["core_pct"].get(g, 0) for g in groups)


def main():
    global quiet
    ap = argparse.ArgumentParser(description="The web console: its API calls and its open pages, with many objects and a big one.")
    env = os.environ.get
    ap.add_argument("--objects", type=int, default=int(env("WEBUI_OBJECTS", "5000")), help="small objects added (default $WEBUI_OBJECTS or 5000)")
    ap.add_argument("--size", default=env("WEBUI_SIZE", "1G"), help="size of the big object; a list (1G,4G) runs one testnet each (default $WEBUI_SIZE or 1G)")
    ap.add_argument("--nodes", type=int, default=5, help="testnet size (default 5)")
    ap.add_argument("--ec", default="16/4", help="erasure coding K/M (default 16/4)")
    ap.add_argument("--threads", type=int, default=8, help="threads adding the small objects (default 8)")
    ap.add_argument("--calls", type=int, default=50, help="warm calls timed per request (default 50)")
    ap.add_argument("--cpu-calls", dest="cpu_calls", type=int, default=200, help="calls per CPU batch of the objects part (default 200)")
    ap.add_argument("--loads", type=int, default=3, help="page loads after the first, for the warm time to ready (default 3)")
    ap.add_argument("--window", type=float, default=60, help="seconds a page stays open while its CPU is measured (default 60)")
    ap.add_argument("--settle", type=float, default=4, help="seconds after ready before a window starts (default 4)")
    ap.add_argument("--parts", default="objects,object", help="parts to run (default objects,object)")
    ap.add_argument("--quiet-wait", dest="quiet_wait", type=int, default=int(env("WEBUI_QUIET_WAIT", "1200")),
                    help="seconds to wait for other tests to end before each part (default $WEBUI_QUIET_WAIT or 1200)")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--work", help="working directory (must not exist or be empty; default a new one in $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the working directory (repos, logs)")
    ap.add_argument("--fungi", help="fungi binary to use (default: go build ./cmd/fungi into WORK)")
    ap.add_argument("--chromium", default=env("CHROMIUM", "/usr/bin/chromium"), help="browser (default $CHROMIUM or /usr/bin/chromium)")
    ap.add_argument("--from-json", metavar="FILE", help="print the tables of a saved --json run (- for stdin) and exit")
    args = ap.parse_args()
    quiet = bc.quiet = args.quiet
    if args.from_json:
        print(render(json.load(sys.stdin if args.from_json == "-" else open(args.from_json))))
        return 0
    try:
        args.sizes = [parse_size(s) for s in args.size.split(",") if s.strip()]
    except ValueError as e:
        ap.error("--size: %s" % e)
    args.parts = [p for p in args.parts.split(",") if p]
    bad = [p for p in args.parts if p not in ("objects", "object")]
    if bad:
        ap.error("unknown part(s) %s" % ", ".join(bad))
    if not args.sizes or min(args.sizes) < MiB or args.objects < 50 or args.nodes < 3 or args.calls < 1 or args.threads < 1:
        ap.error("--size must be at least 1M, --objects at least 50, --nodes at least 3, --calls and --threads at least 1")
    if not shutil.which(args.chromium):
        ap.error("no browser at %s (apt-get install chromium, or --chromium BIN)" % args.chromium)
    return bc.drive("bench_webui", ap, args, bench, render)


if __name__ == "__main__":
    sys.exit(main())
