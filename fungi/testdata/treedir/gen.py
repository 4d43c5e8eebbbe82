#!/usr/bin/env python3
"""Regenerates kubo-vectors.json: directories built by Kubo's MFS.

For each profile, a fresh offline Kubo repo (the pinned .tools/ipfs) builds
directories with `ipfs files mkdir` and `ipfs files cp /ipfs/<cid> /dir/name`
and reports them with `ipfs files stat --hash` (and `ipfs dag get`, for the
links' Tsize and the directory's kind). fungi.BuildDir must reproduce every
root CID and Tsize (TestBuildDirKuboVectors).

  * "mixed": real children of every kind (small, empty, multi-block, CIDv0,
    symlink, sub-directory, a HAMT-sharded directory), listed in full.
  * "generated": entries 0..n-1 of the generator below, recorded at the
    last basic size, the first sharded size and at 5000 entries.

Generator: entry i is named name_prefix + decimal(i) and links to the raw
block content(seed + "-" + decimal(i), (i*37) % 300), where content(s, n)
is the first n bytes of SHA256(s || uint64_be(0)) || SHA256(s || uint64_be(1))...
(the content() of unixfs_test.go); its Tsize is its length.

Run from the repository root: python3 fungi/testdata/treedir/gen.py
"""
import base64, hashlib, json, os, struct, subprocess, sys, tempfile, time
import urllib.parse, urllib.request

IPFS = os.path.abspath(".tools/ipfs")
OUT = "fungi/testdata/treedir/kubo-vectors.json"
PREFIX, SEED, N = "treedir-entry-", "treedir", 5000

PROFILES = {
    # Import.* of the unixfs-v1-2025 profile: CIDv1, 256 KiB threshold
    # estimated on the block size, fanout 256, no max links.
    "unixfs-v1-2025": (["init", "--profile=test,unixfs-v1-2025"], []),
    # Kubo's defaults (256 KiB threshold estimated on names + CIDs, fanout
    # 256, no max links) with Import.CidVersion = 1.
    "kubo-v1-default": (["init", "--profile=test"], [["config", "--json", "Import.CidVersion", "1"]]),
}


def content(seed, n):
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(seed.encode() + struct.pack(">Q", i)).digest()
        i += 1
    return out[:n]


def uv(v):  # protobuf varint length
    n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


def estimate(mode, entries):
    """boxo's estimate of a basic directory's size (uio.SizeEstimation*)."""
    if mode == "links":
        return sum(len(name.encode()) + cidlen for name, cidlen, _ in entries)
    total = 4  # the Data field: Type=Directory
    for name, cidlen, tsize in entries:
        nl = len(name.encode())
        l = 1 + uv(cidlen) + cidlen + 1 + uv(nl) + nl + 1 + uv(tsize)
        total += 1 + uv(l) + l
    return total


class Kubo:
    def __init__(self, init, config):
        self.path = tempfile.mkdtemp(prefix="treedir-kubo-")
        self.env = dict(os.environ, IPFS_PATH=self.path)
        self.cli(*init)
        for c in config:
            self.cli(*c)
        self.daemon = subprocess.Popen([IPFS, "daemon", "--offline"], env=self.env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                addr = open(os.path.join(self.path, "api")).read().split("/")
                self.api = "http://%s:%s/api/v0/" % (addr[2], addr[4])
                self.rpc("id")
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError("kubo daemon did not start")

    def cli(self, *args):
        return subprocess.run([IPFS, *args], env=self.env, check=True,
                              capture_output=True, text=True).stdout

    def rpc(self, cmd, *args, **opts):
        q = [("arg", a) for a in args] + list(opts.items())
        req = urllib.request.Request(self.api + cmd + "?" + urllib.parse.urlencode(q), method="POST")
        with urllib.request.urlopen(req) as r:
            body = r.read()
        return json.loads(body) if body.strip() else None

    def add(self, path, *flags):
        """ipfs add -r; returns {relative path: cid}."""
        out = {}
        for line in self.cli("add", "-r", *flags, path).splitlines():
            _, c, name = line.split(" ", 2)
            out[name] = c
        return out

    def stat(self, path):
        st = self.rpc("files/stat", path)
        node = self.rpc("dag/get", st["Hash"])
        data = base64.b64decode(node["Data"]["/"]["bytes"] + "==")
        kind = {b"\x08\x01": "basic", b"\x08\x05": "hamt"}[data[:2]]
        links = [{"name": l["Name"], "cid": l["Hash"]["/"], "tsize": l["Tsize"]} for l in node["Links"]]
        return st["Hash"], st["CumulativeSize"], kind, links

    def close(self):
        self.daemon.terminate()
        self.daemon.wait()
        subprocess.run(["rm", "-rf", self.path])


def mixed_children(k, tmp):
    """Children of every kind, added to Kubo; returns [(name, cid)]."""
    src = os.path.join(tmp, "mixed")
    os.makedirs(os.path.join(src, "sub"))
    files = {"hello.txt": b"hello, fungi\n", "empty": b"",
             "big.bin": content("treedir-big", 3 << 20 | 5),
             "sub/a.txt": content("treedir-a", 1000), "sub/b.txt": content("treedir-b", 70000)}
    for name, data in files.items():
        with open(os.path.join(src, name), "wb") as f:
            f.write(data)
    os.symlink("../hello.txt", os.path.join(src, "sub", "link"))
    added = k.add(src)
    v0 = os.path.join(tmp, "legacy.txt")
    with open(v0, "wb") as f:
        f.write(b"a CIDv0 file\n")
    legacy = k.cli("add", "-Q", "--cid-version=0", v0).strip()
    # A sub-directory built by MFS from some of them.
    k.rpc("files/mkdir", "/mixed-sub", parents="true")
    for name in ["a.txt", "b.txt"]:  # MFS cannot cp a symlink ("not yet supported")
        k.rpc("files/cp", "/ipfs/" + added["mixed/sub/" + name], "/mixed-sub/" + name)
    sub = k.rpc("files/stat", "/mixed-sub")["Hash"]
    return [
        ("hello.txt", added["mixed/hello.txt"]),
        ("empty", added["mixed/empty"]),
        ("big.bin", added["mixed/big.bin"]),
        ("legacy-v0.txt", legacy),
        ("added-dir", added["mixed/sub"]),  # by `ipfs add`, holds a symlink
        ("sub", sub),
        ("ünïcødé ✓ name", added["mixed/sub/a.txt"]),
        ("sharded", k.rpc("files/stat", "/gen")["Hash"]),
    ]


def run_profile(profile, init, config, tmp):
    k = Kubo(init, config)
    mode = "block" if profile == "unixfs-v1-2025" else "links"
    vectors = []
    try:
        # An empty directory.
        k.rpc("files/mkdir", "/empty")
        root, tsize, kind, _ = k.stat("/empty")
        vectors.append({"profile": profile, "links": [], "want_root": root, "want_tsize": tsize, "want_kind": kind})

        # The generated directory, built entry by entry.
        gdir = os.path.join(tmp, "gen-" + profile)
        os.makedirs(gdir)
        sizes = [(i * 37) % 300 for i in range(N)]
        for i in range(N):
            with open(os.path.join(gdir, str(i)), "wb") as f:
                f.write(content("%s-%d" % (SEED, i), sizes[i]))
        cids = k.add(gdir, "--cid-version=1", "--raw-leaves")
        entries = [(PREFIX + str(i), 36, sizes[i]) for i in range(N)]
        last_basic = max(n for n in range(N + 1) if estimate(mode, entries[:n]) <= 256 << 10)
        checkpoints = {last_basic, last_basic + 1, N}
        k.rpc("files/mkdir", "/gen")
        for i in range(N):
            c = cids["gen-%s/%d" % (profile, i)]
            assert c.startswith("bafkrei"), c
            k.rpc("files/cp", "/ipfs/" + c, "/gen/" + PREFIX + str(i))
            if i + 1 in checkpoints:
                root, tsize, kind, _ = k.stat("/gen")
                print(profile, i + 1, root, kind, file=sys.stderr)
                vectors.append({"profile": profile,
                                "generated": {"name_prefix": PREFIX, "seed": SEED, "n": i + 1},
                                "want_root": root, "want_tsize": tsize, "want_kind": kind})
        assert [v["want_kind"] for v in vectors[1:]] == ["basic", "hamt", "hamt"], vectors

        # Children of every kind, listed as Kubo linked them.
        k.rpc("files/mkdir", "/mixed")
        for name, c in mixed_children(k, tmp):
            k.rpc("files/cp", "/ipfs/" + c, "/mixed/" + name)
        root, tsize, kind, links = k.stat("/mixed")
        vectors.append({"profile": profile, "links": links, "want_root": root, "want_tsize": tsize, "want_kind": kind})
    finally:
        k.close()
    return vectors


def main():
    version = subprocess.run([IPFS, "version", "--number"], check=True, capture_output=True, text=True).stdout.strip()
    out = {"kubo": version,
           "generator": "entry i: name name_prefix+decimal(i), a raw block of content(seed+\"-\"+decimal(i), (i*37)%300); see gen.py",
           "vectors": []}
    for profile, (init, config) in PROFILES.items():
        with tempfile.TemporaryDirectory() as tmp:
            out["vectors"] += run_profile(profile, init, config, tmp)
    with open(OUT, "w") as f:
        f.write("{\"kubo\": %s, \"generator\": %s, \"vectors\": [\n" % (json.dumps(out["kubo"]), json.dumps(out["generator"])))
        f.write(",\n".join(json.dumps(v, ensure_ascii=False) for v in out["vectors"]))
        f.write("\n]}\n")


if __name__ == "__main__":
    main()
