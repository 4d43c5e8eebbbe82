#!/usr/bin/env python3
"""Cluster figures on a real 5-node testnet (separate daemon processes on
loopback): manifest commit throughput through the leader, from the leader
and forwarded from a non-voter, and the time to a new leader after the
leader is SIGKILLed. Prints one JSON object.

    scripts/bench_testnet.py BIN WORKDIR [--kills N] [--commits N]
"""
import json, os, subprocess, sys, time, urllib.request

bin_, work = sys.argv[1], sys.argv[2]
kills = int(sys.argv[sys.argv.index("--kills") + 1]) if "--kills" in sys.argv else 5
commits = int(sys.argv[sys.argv.index("--commits") + 1]) if "--commits" in sys.argv else 100000
tn = os.path.join(work, "tn")
env = dict(os.environ, FUNGI_DEBUG_API="1")


def fungi(*args):
    return subprocess.run([bin_, *args], env=env, check=True, capture_output=True, text=True).stdout


def status():
    return json.loads(fungi("testnet", "status", "--dir", tn, "--json"))


def http(api, path, method="GET"):
    req = urllib.request.Request("http://%s/api/v0/%s" % (api, path), method=method)
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def wait_healthy(n):
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            nodes = status()
            ok = all(x["alive"] and x["role"] for x in nodes)
            if ok:
                cs = http(nodes[0]["api"], "cluster/status")
                if cs["healthy"] and len(cs["servers"]) == n and all(s["healthy"] for s in cs["servers"]) and len(cs["voters"]) == 3:
                    return nodes
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit("testnet not healthy in time")


fungi("testnet", "up", "-n", "5", "--dir", tn)
try:
    nodes = wait_healthy(5)
    out = {"nodes": 5}
    leader = next(x for x in nodes if x["role"] == "leader")
    nonvoter = next(x for x in nodes if x["role"] == "nonvoter")
    for name, node in (("leader", leader), ("nonvoter", nonvoter)):
        r = http(node["api"], "debug/commit-bench?n=%d&concurrency=512" % commits, "POST")
        out["commit_from_" + name] = r
    elections = []
    for _ in range(kills):
        nodes = wait_healthy(5)
        time.sleep(1)
        old = next(x for x in nodes if x["role"] == "leader")
        t0 = time.time()
        fungi("testnet", "stop", "--kill", "--dir", tn, str(old["index"]))
        while True:
            live = [x for x in status() if x["index"] != old["index"]]
            leaders = {x["leader"] for x in live}
            if len(leaders) == 1 and "" not in leaders and old["peer_id"] not in leaders and any(x["role"] == "leader" for x in live):
                break
            time.sleep(0.02)
        elections.append(round((time.time() - t0) * 1000))
        fungi("testnet", "start", "--dir", tn, str(old["index"]))
    out["election_ms"] = elections
    print(json.dumps(out))
finally:
    subprocess.run([bin_, "testnet", "down", "--dir", tn], env=env, capture_output=True)
