"use strict";

// FungiStor web console: one file, no dependencies, no build step.
//
// A small hash router mounts one page at a time into <main id="page">.
// Each page builds its skeleton once (mount), then polls its data every
// 2 s (load) and re-renders parts of the skeleton in place (render), so
// the search box keeps its focus and the window its scroll position.
// Only the current page polls; a poll still in flight skips the next tick.

// ------------------------------------------------------------ constants

const POLL_MS = 2000;
const OBJECTS_PER_PAGE = 50;
const GRID_ROWS_PER_PAGE = 256;
const SEARCH_DEBOUNCE_MS = 200;
const ACTIVITY_WINDOW_MS = 5 * 60 * 1000;
const STALE = Symbol("stale"); // a load whose answer no longer applies

const HEALTHS = ["full", "degraded", "at_risk", "lost"];
const HEALTH_LABEL = { full: "full", degraded: "degraded", at_risk: "at risk", lost: "lost" };

// Distinct, non-red colours for fragment holders (red means unreachable).
const HOLDER_PALETTE = [
  "#1e88e5", "#43a047", "#fb8c00", "#8e24aa", "#00acc1", "#c0ca33", "#6d4c41",
  "#f06292", "#3949ab", "#fdd835", "#00897b", "#7cb342", "#5e35b1", "#0277bd",
];

// ------------------------------------------------------------ helpers

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// setHTML replaces an element's content only when it changed: a poll that
// brings nothing new leaves the DOM (hover, selection) alone.
function setHTML(target, html) {
  const el = typeof target === "string" ? document.getElementById(target) : target;
  if (el && el._html !== html) {
    el.innerHTML = html;
    el._html = html;
    applyDataStyles(el);
  }
}

// The node's Content-Security-Policy refuses inline style attributes, so
// markup carries bar fills and colours as data attributes, applied here
// through the CSSOM (which the policy allows).
function applyDataStyles(root) {
  for (const el of root.querySelectorAll("[data-fill]")) el.style.width = `${(Number(el.dataset.fill) * 100).toFixed(1)}%`;
  for (const el of root.querySelectorAll("[data-color]")) el.style.background = el.dataset.color;
}

function setText(id, text) {
  const el = document.getElementById(id);
  if (el && el.textContent !== String(text)) el.textContent = String(text);
}

function fmtNum(n) {
  return n == null || !Number.isFinite(Number(n)) ? "—" : Number(n).toLocaleString("en-US");
}

function fmtBytes(n) {
  if (n == null || !Number.isFinite(Number(n))) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = Math.abs(Number(n));
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const s = i === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0);
  return (n < 0 ? "-" : "") + s + " " + units[i];
}

const fmtRate = (n) => (n == null ? "—" : fmtBytes(n) + "/s");
const fmtPct = (x) => (Number.isFinite(x) ? (x * 100).toFixed(x < 0.1 ? 1 : 0) + "%" : "—");
const plural = (n, word) => `${fmtNum(n)} ${word}${n === 1 ? "" : "s"}`;

function fmtDuration(seconds) {
  if (seconds == null || !Number.isFinite(seconds) || seconds < 0) return "—";
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60), r = s % 60;
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${r}s`;
  return `${r}s`;
}

function fmtMillisAgo(ms) {
  if (ms == null || ms < 0) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms ago`;
  return fmtDuration(ms / 1000) + " ago";
}

function fmtWhen(iso) {
  const t = Date.parse(iso || "");
  if (!Number.isFinite(t) || t <= 0) return "—";
  return new Date(t).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "medium" });
}

function sinceIso(iso) {
  const t = Date.parse(iso || "");
  return Number.isFinite(t) && t > 0 ? (Date.now() - t) / 1000 : null;
}

// shortId keeps a peer ID or CID readable: the head and the tail.
function shortId(id, head = 6, tail = 8) {
  id = String(id || "");
  return id.length > head + tail + 1 ? id.slice(0, head) + "…" + id.slice(-tail) : id;
}

function peerHTML(id, { full = false } = {}) {
  return `<span class="mono peer" title="${esc(id)}">${esc(full ? id : shortId(id))}</span>`;
}

function healthBadge(health) {
  const h = HEALTHS.includes(health) ? health : "lost";
  return `<span class="badge h-${h}">${esc(HEALTH_LABEL[h] || health)}</span>`;
}

function bar(fraction, cls = "") {
  const f = Math.max(0, Math.min(1, Number(fraction) || 0));
  return `<span class="bar ${cls}"><span data-fill="${f.toFixed(4)}"></span></span>`;
}

function kv(rows) {
  return `<dl class="kv">${rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join("")}</dl>`;
}

const list = (xs) => (Array.isArray(xs) ? xs : []);

// ------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, message, path) {
    super(message);
    this.status = status;
    this.path = path;
  }
}

async function request(path, params, parse) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  let res, text;
  try {
    res = await fetch(url);
    text = await res.text();
  } catch (e) {
    throw new ApiError(0, `cannot reach the node (${e.message || e})`, path);
  }
  if (!res.ok) {
    let msg = `${res.status} ${res.statusText}`;
    try {
      msg = JSON.parse(text).error || msg;
    } catch (_) { /* not JSON: keep the status line */ }
    throw new ApiError(res.status, msg, path);
  }
  return parse(text, path);
}

function parseJSON(text, path) {
  try {
    return JSON.parse(text);
  } catch (_) {
    throw new ApiError(0, "the node answered something that is not JSON", path);
  }
}

const api = (endpoint, params) => request("/api/v0/" + endpoint, params, parseJSON);
const metricsText = () => request("/metrics", null, (t) => t);

// nodeId is this node's identity (/api/v0/id), asked once and kept.
let idPromise = null;
function nodeId() {
  if (!idPromise) {
    idPromise = api("id").then(showWhoami, (e) => {
      idPromise = null;
      throw e;
    });
  }
  return idPromise;
}

function showWhoami(id) {
  const el = $("#whoami");
  if (el && id) {
    el.innerHTML = `node ${peerHTML(id.peer_id)}${id.version ? ` · ${esc(id.version)}` : ""}`;
  }
  return id;
}

// gatewayURL is the node's IPFS gateway as a URL base ("" when it has
// none); a wildcard listen address becomes the host this page came from.
function gatewayURL(id) {
  const gw = id && id.gateway;
  if (!gw) return "";
  const m = /^(\[[^\]]*\]|[^:]*):(\d+)$/.exec(gw);
  if (!m) return "http://" + gw;
  let host = m[1];
  if (host === "" || host === "0.0.0.0" || host === "[::]") host = location.hostname;
  return `http://${host}:${m[2]}`;
}

// ------------------------------------------------------------ error banner

const errors = new Map(); // source → message

function messageOf(err) {
  if (err instanceof ApiError && err.path) return `${err.path.replace("/api/v0/", "")}: ${err.message}`;
  return String((err && err.message) || err);
}

function showError(source, err) {
  errors.set(source, messageOf(err));
  renderErrors();
}

function clearError(source) {
  if (errors.delete(source)) renderErrors();
}

function renderErrors() {
  const el = $("#error");
  const msgs = [...errors.values()];
  el.hidden = msgs.length === 0;
  el.textContent = msgs.length ? msgs[0] + (msgs.length > 1 ? ` (and ${msgs.length - 1} more)` : "") : "";
}

// Nothing reaches the console: a bug still shows in the banner.
window.addEventListener("error", (e) => {
  e.preventDefault();
  showError("script", e.error || e.message);
});
window.addEventListener("unhandledrejection", (e) => {
  e.preventDefault();
  showError("script", e.reason);
});

// ------------------------------------------------------------ polling

class Poller {
  constructor(fn, ms) {
    this.fn = fn;
    this.ms = ms;
    this.busy = false;
    this.again = false;
    this.timer = null;
  }
  start() {
    this.timer = setInterval(() => this.tick(), this.ms);
    this.tick();
  }
  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }
  async tick() {
    if (this.busy) return; // the last poll is still in flight: skip
    this.busy = true;
    try {
      await this.fn();
    } finally {
      this.busy = false;
    }
    if (this.again && this.timer) {
      this.again = false;
      this.tick();
    }
  }
  // kick polls now (or right after the poll in flight).
  kick() {
    if (this.busy) this.again = true;
    else this.tick();
  }
}

// ------------------------------------------------------------ router

const ROUTES = [
  [/^$/, "overview"],
  [/^node$/, "node"],
  [/^cluster$/, "cluster"],
  [/^objects$/, "objects"],
  [/^object\/(.+)$/, "object"],
  [/^files(?:\/(.*))?$/, "files"],
  [/^activity$/, "activity"],
];

function decodeSegment(s) {
  try {
    return decodeURIComponent(s);
  } catch (_) {
    return s;
  }
}

function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = new URLSearchParams(q < 0 ? "" : raw.slice(q + 1));
  for (const [re, name] of ROUTES) {
    const m = re.exec(path);
    if (!m) continue;
    const route = { name, query, arg: m[1] ? decodeSegment(m[1]) : "" };
    if (name === "files") route.segments = (m[1] || "").split("/").filter(Boolean).map(decodeSegment);
    return route;
  }
  return { name: "notfound", query, arg: path };
}

let current = null; // the mounted page: { route, page, poller, alive, ... }

function navigate() {
  if (current) {
    current.alive = false;
    current.poller.stop();
  }
  for (const k of [...errors.keys()]) if (k !== "upload") errors.delete(k);
  renderErrors();
  const route = parseRoute();
  const page = PAGES[route.name];
  const main = $("#page");
  delete main.dataset.ready;
  main.dataset.page = route.name;
  const navName = route.name === "object" ? "objects" : route.name;
  for (const a of $$("[data-nav]")) a.classList.toggle("active", a.dataset.nav === navName);
  document.title = `${page.title} · FungiStor`;
  const ctx = { route, page, alive: true };
  current = ctx;
  main.innerHTML = page.skeleton(ctx);
  main._html = undefined;
  if (page.mount) page.mount(ctx);
  window.scrollTo(0, 0);
  ctx.poller = new Poller(() => refresh(ctx), POLL_MS);
  ctx.poller.start();
}

async function refresh(ctx) {
  try {
    const data = await ctx.page.load(ctx);
    if (!ctx.alive || data === STALE) return;
    ctx.page.render(ctx, data);
    clearError("page");
    markReady(ctx);
  } catch (err) {
    if (!ctx.alive) return;
    // a page may show a definite failure itself (and be ready with it)
    if (ctx.page.fail && ctx.page.fail(ctx, err)) {
      clearError("page");
      markReady(ctx);
    } else {
      showError("page", err);
    }
  }
}

function markReady(ctx) {
  if (ctx.alive && current === ctx) $("#page").dataset.ready = "1";
}

// ------------------------------------------------------------ cluster data

// clusterMembers merges the pool's members with the raft servers' health.
function clusterMembers(st) {
  const servers = new Map(list(st.servers).map((s) => [s.id, s]));
  const members = new Map(list(st.members).map((m) => [m.id, m]));
  const voters = new Set(list(st.voters));
  const down = new Set([...list(st.repair && st.repair.down), ...list(st.repair && st.repair.lost)]);
  const ids = new Set([...members.keys(), ...servers.keys()]);
  const rows = [...ids].map((id) => {
    const m = members.get(id) || {};
    const s = servers.get(id);
    const voter = voters.has(id) || (s ? s.role === "voter" || s.role === "leader" : !!m.voter);
    return {
      id, voter,
      leader: id === st.leader,
      self: id === st.peer_id,
      healthy: s ? !!s.healthy : !down.has(id),
      lastContact: s ? s.last_contact_ms : -1,
      rtt: s ? s.rtt_ms : null,
      domain: m.domain || "",
      capacity: m.capacity || 0,
      used: m.used || 0,
      addrs: list(m.addrs),
    };
  });
  const rank = (r) => (r.leader ? 0 : r.voter ? 1 : 2);
  return rows.sort((a, b) => rank(a) - rank(b) || a.id.localeCompare(b.id));
}

// canLose: what the cluster can lose now, from the node or, from an older
// node without can_lose, the voters estimated here.
function canLose(st) {
  if (st.can_lose) return st.can_lose;
  const voters = list(st.voters);
  const healthy = list(st.servers).filter((s) => s.healthy && voters.includes(s.id)).length;
  return { voters: Math.max(0, healthy - (Math.floor(voters.length / 2) + 1)), nodes: null };
}

function canLoseHTML(st) {
  const cl = canLose(st);
  const nodes = cl.nodes == null || cl.nodes < 0 ? "—" : plural(cl.nodes, "node");
  const why = cl.nodes != null && cl.nodes < 0 ? "no objects yet (or their health is not known)" : "with every object readable";
  return `<div class="canlose">
    <div><b id="can-lose-voters" class="${cl.voters === 0 ? "warn" : ""}">${esc(plural(cl.voters, "voter"))}</b><small>keeping quorum</small></div>
    <div><b id="can-lose-nodes" class="${cl.nodes === 0 ? "warn" : ""}">${esc(nodes)}</b><small>${why}</small></div>
  </div>`;
}

function peerChips(ids) {
  const xs = list(ids);
  return xs.length ? xs.map((id) => peerHTML(id)).join(" ") : `<span class="muted">none</span>`;
}

function healthWord(st) {
  return `<span class="status ${st.healthy ? "ok" : "bad"}">${st.healthy ? "healthy" : "unhealthy"}</span>`;
}

function scrubSummary(sc) {
  if (!sc) return "—";
  if (sc.running) {
    const pct = sc.total ? sc.scanned / sc.total : 0;
    return `pass ${fmtNum((sc.passes || 0) + 1)} running: ${fmtPct(pct)} (${fmtNum(sc.scanned)} of ${fmtNum(sc.total)} fragments)`;
  }
  if (!sc.rate) return "off";
  const last = sinceIso(sc.last_pass);
  if (last == null) return "idle, no pass yet";
  return `idle; last pass ${fmtDuration(last)} ago: ${fmtNum(sc.last_corrupt)} corrupt, ${fmtNum(sc.last_missing)} missing`;
}

// ------------------------------------------------------------ upload

// One upload at a time, kept across pages: the box on whichever page is
// shown reflects it.
const upload = { state: "idle", name: "", total: 0, sent: 0, stored: 0, parsed: 0, result: null, error: "" };

function uploadBoxHTML() {
  return `<section class="card upload-box">
    <h2>Add a file</h2>
    <label class="file-pick"><input type="file" id="upload"><span>Choose a file…</span></label>
    <progress id="upload-progress" max="1" value="0" hidden></progress>
    <div id="upload-status" class="small muted">The file is stored erasure-coded across the cluster and pinned.</div>
    <div id="upload-result" hidden></div>
  </section>`;
}

function bindUpload() {
  const input = $("#upload");
  if (!input) return;
  input.addEventListener("change", () => {
    const file = input.files && input.files[0];
    if (file) startUpload(file);
  });
  renderUpload();
}

function startUpload(file) {
  if (upload.state === "sending") return;
  Object.assign(upload, { state: "sending", name: file.name, total: file.size, sent: 0, stored: 0, parsed: 0, result: null, error: "" });
  clearError("upload");
  renderUpload();
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/v0/add");
  xhr.upload.onprogress = (e) => {
    upload.sent = e.loaded;
    renderUpload();
  };
  xhr.onprogress = () => readUploadLines(xhr.responseText, false);
  xhr.onload = () => finishUpload(xhr);
  xhr.onerror = () => failUpload("the upload did not reach the node (network error)");
  xhr.onabort = () => failUpload("the upload was aborted");
  const form = new FormData();
  form.append("file", file, file.name);
  xhr.send(form);
}

// readUploadLines takes the newline-delimited JSON answered so far:
// {"bytes": N} while the node stores, then the AddResult (or an error).
function readUploadLines(text, final) {
  const end = final ? text.length : text.lastIndexOf("\n") + 1;
  if (end <= upload.parsed) return;
  for (const line of text.slice(upload.parsed, end).split("\n")) {
    if (!line.trim()) continue;
    let msg;
    try {
      msg = JSON.parse(line);
    } catch (_) {
      continue;
    }
    if (msg.error) upload.error = msg.error;
    else if (msg.root) upload.result = msg;
    else if (typeof msg.bytes === "number") upload.stored = msg.bytes;
  }
  upload.parsed = end;
  renderUpload();
}

function finishUpload(xhr) {
  if (xhr.status >= 400) {
    let msg = `${xhr.status} ${xhr.statusText}`;
    try {
      msg = JSON.parse(xhr.responseText).error || msg;
    } catch (_) { /* keep the status */ }
    failUpload(msg);
    return;
  }
  readUploadLines(xhr.responseText, true);
  if (upload.error || !upload.result) {
    failUpload(upload.error || "the node ended the add without a result (see its log)");
    return;
  }
  upload.state = "done";
  const input = $("#upload");
  if (input) input.value = "";
  renderUpload();
  if (current && current.alive) current.poller.kick();
}

function failUpload(msg) {
  if (upload.state !== "sending") return;
  upload.state = "error";
  upload.error = msg;
  showError("upload", `add ${upload.name}: ${msg}`);
  const input = $("#upload");
  if (input) input.value = "";
  renderUpload();
}

function renderUpload() {
  const prog = $("#upload-progress");
  if (!prog) return;
  const input = $("#upload");
  const status = $("#upload-status");
  const box = $("#upload-result");
  const total = Math.max(upload.total, 1);
  input.disabled = upload.state === "sending";
  prog.hidden = upload.state === "idle";
  if (upload.state === "sending") {
    prog.value = Math.min(1, (Math.min(upload.sent, total) + Math.min(upload.stored, total)) / (2 * total));
    status.textContent = `${upload.name}: sent ${fmtPct(upload.sent / total)}, stored ${fmtPct(upload.stored / total)} of ${fmtBytes(upload.total)}`;
  } else if (upload.state === "done") {
    prog.value = 1;
    status.textContent = `${upload.name}: added.`;
  } else if (upload.state === "error") {
    status.textContent = `${upload.name}: failed.`;
  }
  const r = upload.result;
  if (upload.state === "done" && r) {
    box.hidden = false;
    box.className = "result ok";
    box.dataset.cid = r.root;
    setHTML(box, `Added <b>${esc(r.name || upload.name)}</b>: <a class="mono" href="#/object/${esc(r.root)}">${esc(r.root)}</a>
      <div class="small muted">${fmtBytes(r.size)} in ${plural(r.blocks, "block")}, coding ${esc(r.coding)}${r.nodes ? ` on ${plural(r.nodes, "node")}` : ""}${r.tolerance ? `. ${esc(r.tolerance)}` : ""}</div>`);
  } else if (upload.state === "error") {
    box.hidden = false;
    box.className = "result bad";
    delete box.dataset.cid;
    setHTML(box, esc(upload.error));
  } else {
    box.hidden = true;
  }
}

// ------------------------------------------------------------ overview

const OverviewPage = {
  title: "Overview",
  skeleton: () => `
    <div class="cards cols-4">
      <section class="card">
        <h2>Cluster</h2>
        <div class="headline"><span id="health" class="health-word">…</span> <span id="ov-down" class="warn"></span></div>
        ${kv([["Leader", `<span id="leader" class="mono wrap"></span>`], ["Term", `<span id="ov-term">—</span>`], ["Health from", `<span id="ov-from">—</span>`]])}
      </section>
      <section class="card"><h2>Objects by health</h2><div id="ov-counts" class="tiles"></div></section>
      <section class="card"><h2>Can lose now</h2><div id="ov-canlose"></div></section>
      <section class="card"><h2>Repair</h2><div id="ov-repair"></div></section>
    </div>
    <div class="cards cols-main-side">
      <section class="card"><h2>Members <span class="count" id="ov-member-count"></span></h2><ul id="member-list" class="member-list"></ul></section>
      <div class="stack">
        ${uploadBoxHTML()}
        <section class="card"><h2>Pool</h2><div id="ov-pool"></div></section>
      </div>
    </div>`,
  mount: bindUpload,
  load: async () => api("cluster/status"),
  render(ctx, st) {
    const health = $("#health");
    health.textContent = st.healthy ? "healthy" : "unhealthy";
    health.className = "health-word " + (st.healthy ? "ok" : "bad");
    const down = clusterMembers(st).filter((m) => !m.healthy).length;
    setText("ov-down", down ? `${plural(down, "member")} down` : "");
    setText("leader", st.leader || "none");
    setText("ov-term", fmtNum(st.term));
    setText("ov-from", st.health_from === "local" ? "local view (leader unreachable)" : "the leader");
    const rep = st.repair;
    const counts = (rep && rep.objects) || {};
    setHTML("ov-counts", HEALTHS.map((h) => `<a class="tile h-${h}" href="#/objects?health=${h}" data-health="${h}">
      <b>${fmtNum(counts[h] || 0)}</b><span>${HEALTH_LABEL[h]}</span></a>`).join(""));
    setHTML("ov-canlose", canLoseHTML(st));
    setHTML("ov-repair", rep ? kv([
      ["Backlog", `${plural(rep.backlog_fragments || 0, "fragment")}`],
      ["Stranded", `${plural(rep.stranded_fragments || 0, "fragment")}`],
      ["Down / lost", `${fmtNum(list(rep.down).length)} / ${fmtNum(list(rep.lost).length)}`],
      ["Epochs pending", fmtNum(rep.pending_epochs || 0)],
    ]) + (rep.partition ? `<p class="warn small">${esc(rep.partition)}</p>` : "")
      : `<p class="muted">The repair state is not known right now.</p>`);
    const rows = clusterMembers(st);
    const used = rows.reduce((n, m) => n + m.used, 0), cap = rows.reduce((n, m) => n + m.capacity, 0);
    const md = st.metadata || {};
    setHTML("ov-pool", kv([
      ["Stored", `${bar(cap ? used / cap : 0)}<div class="small">${fmtBytes(used)} of ${fmtBytes(cap)} offered</div>`],
      ["Objects", `${fmtNum(md.manifests)} <span class="muted small">(${fmtNum(md.pins)} pinned)</span>`],
      ["Tree paths", fmtNum(md.paths)],
    ]));
    setText("ov-member-count", rows.length);
    setHTML("member-list", rows.map((m) => `<li data-peer="${esc(m.id)}" class="${m.healthy ? "" : "down"}">
      <span class="dot ${m.healthy ? "ok" : "bad"}" title="${m.healthy ? "healthy" : "down"}"></span>
      <span class="mono" title="${esc(m.id)}">${esc(shortId(m.id))}</span>
      <span class="role">${m.voter ? "voter" : "non-voter"}</span>
      ${m.leader ? `<span class="tag leader">leader</span>` : ""}${m.self ? `<span class="tag">this node</span>` : ""}
      <span class="muted small">${esc(m.domain)}</span>
      <span class="usage small muted" title="used / capacity">${fmtBytes(m.used)}</span></li>`).join(""));
  },
};

// ------------------------------------------------------------ node

const NodePage = {
  title: "Node",
  skeleton: () => `
    <div class="cards cols-2">
      <section class="card"><h2>This node</h2><div id="node-ident"></div></section>
      <section class="card"><h2>Storage</h2><div id="node-storage"></div></section>
    </div>
    <div class="cards cols-2">
      <section class="card"><h2>Scrubber</h2><div id="node-scrub"></div></section>
      <section class="card"><h2>Mounts of the shared tree</h2><div id="node-mounts"></div></section>
    </div>`,
  async load() {
    const [id, repo] = await Promise.all([api("id"), api("repo/stat")]);
    idPromise = Promise.resolve(showWhoami(id));
    return { id, repo };
  },
  render(ctx, { id, repo }) {
    const started = sinceIso(id.started);
    const uptime = started != null ? started : id.uptime_s;
    const gw = gatewayURL(id);
    setHTML("node-ident", kv([
      ["Peer ID", `<span class="mono wrap" id="peer-id">${esc(id.peer_id)}</span>`],
      ["Version", esc(id.version || "—")],
      ["Uptime", `<span id="uptime">${esc(fmtDuration(uptime))}</span>${id.started ? ` <span class="muted small">since ${esc(fmtWhen(id.started))}</span>` : ""}`],
      ["Failure domain", esc(id.domain || "—")],
      ["Gateway", gw ? `<a id="gateway" href="${esc(gw)}/" target="_blank" rel="noopener">${esc(gw)}/</a>` : `<span class="muted">none</span>`],
      ["Addresses", `<ul class="plain mono small wrap">${list(id.addrs).map((a) => `<li>${esc(a)}</li>`).join("") || "<li>—</li>"}</ul>`],
    ]));
    const total = repo.disk_total || 0, free = repo.disk_free || 0;
    const used = Math.max(0, total - free);
    const rows = [
      ["ZDB data", `${fmtBytes(repo.data_bytes)} <span class="muted small">(fragments and metadata on disk)</span>`],
      ["Fragment bytes", fmtBytes(repo.fragment_bytes)],
      ["Fragments held", fmtNum(repo.fragments)],
    ];
    if (total > 0) {
      rows.push(["Disk", `${bar(used / total, used / total > 0.9 ? "bad" : "")}
        <div class="small">${fmtBytes(free)} free of ${fmtBytes(total)} (${fmtPct(used / total)} used)</div>`]);
    }
    rows.push(["Capacity offered", repo.capacity > 0
      ? `${bar(repo.data_bytes / repo.capacity)}<div class="small">${fmtBytes(repo.data_bytes)} of ${fmtBytes(repo.capacity)} (${fmtPct(repo.data_bytes / repo.capacity)})</div>`
      : `<span class="muted">not set${total > 0 ? ": the disk's free space" : ""}</span>`]);
    setHTML("node-storage", kv(rows));
    const sc = repo.scrub;
    setHTML("node-scrub", sc ? kv([
      ["State", `<span id="scrub">${esc(scrubSummary(sc))}</span>`],
      ["This pass", sc.running ? `${bar(sc.total ? sc.scanned / sc.total : 0)}<div class="small">${fmtNum(sc.scanned)} of ${fmtNum(sc.total)} fragments, ${fmtBytes(sc.bytes)}</div>` : `<span class="muted">none running</span>`],
      ["Passes", fmtNum(sc.passes)],
      ["Last pass", sc.last_pass ? `${esc(fmtWhen(sc.last_pass))} <span class="muted small">(${(sc.last_duration_s || 0).toFixed(1)} s)</span>` : "—"],
      ["Found since start", `${fmtNum(sc.corrupt)} corrupt, ${fmtNum(sc.missing)} missing; ${fmtBytes(sc.bytes_verified)} verified`],
      ["Rate cap", sc.rate ? fmtRate(sc.rate) : "off"],
    ]) : `<p class="muted">No scrubber on this node.</p>`);
    const mounts = list(id.mounts);
    setHTML("node-mounts", mounts.length
      ? `<ul class="plain mono">${mounts.map((m) => `<li>${esc(typeof m === "string" ? m : m.dir)}</li>`).join("")}</ul>`
      : `<p class="muted">None. <code>fungi mount DIR</code> mounts the shared tree read-only.</p>`);
  },
};

// ------------------------------------------------------------ cluster

const ClusterPage = {
  title: "Cluster",
  skeleton: () => `
    <div class="cards cols-3">
      <section class="card"><h2>Consensus</h2><div id="cl-summary"></div></section>
      <section class="card"><h2>Can lose now</h2><div id="cl-canlose"></div><p class="small muted" id="cl-policy"></p></section>
      <section class="card"><h2>Repair</h2><div id="cl-repair"></div></section>
    </div>
    <section class="card">
      <h2>Members <span class="count" id="cl-count"></span></h2>
      <div class="table-wrap"><table id="members" class="table">
        <thead><tr><th>Peer</th><th>Role</th><th>Domain</th><th>Status</th><th class="num">Last contact</th>
        <th class="num">RTT</th><th>Used / capacity</th><th>Address</th></tr></thead>
        <tbody id="members-body"></tbody>
      </table></div>
    </section>`,
  load: async () => api("cluster/status"),
  render(ctx, st) {
    setHTML("cl-summary", kv([
      ["Leader", `<span id="leader" class="mono wrap">${esc(st.leader || "none")}</span>`],
      ["Health", `<span id="health" class="health-word small-word ${st.healthy ? "ok" : "bad"}">${st.healthy ? "healthy" : "unhealthy"}</span>`],
      ["Health from", st.health_from === "local" ? "local view (the leader did not answer)" : "the leader"],
      ["Term", fmtNum(st.term)],
      ["Applied index", fmtNum(st.applied_index)],
      ["This node", `${peerHTML(st.peer_id)} <span class="muted">${esc(st.role || "")}</span>`],
    ]));
    setHTML("cl-canlose", canLoseHTML(st));
    setText("cl-policy", st.policy ? "Promotion policy: " + st.policy : "");
    const rep = st.repair;
    setHTML("cl-repair", rep ? kv([
      ["Down", peerChips(rep.down)],
      ["Lost", peerChips(rep.lost)],
      ["Replaced", peerChips(rep.replaced)],
      ["Partition", rep.partition ? `<span class="warn">${esc(rep.partition)}</span>` : `<span class="muted">no</span>`],
      ["Backlog", `${plural(rep.backlog_fragments || 0, "fragment")}, ${fmtNum(rep.stranded_fragments || 0)} stranded`],
      ["Epochs", `${fmtNum(rep.epochs || 0)} (${fmtNum(rep.pending_epochs || 0)} pending)`],
    ]) : `<p class="muted">The repair state is not known right now.</p>`);
    const rows = clusterMembers(st);
    setText("cl-count", rows.length);
    setHTML("members-body", rows.map(memberRowHTML).join("")
      || `<tr class="empty"><td colspan="8">No members yet.</td></tr>`);
  },
};

function memberRowHTML(m) {
  const cap = m.capacity > 0 ? m.used / m.capacity : 0;
  return `<tr data-peer="${esc(m.id)}" data-healthy="${m.healthy ? 1 : 0}"${m.leader ? ` data-leader="1"` : ""} class="${m.healthy ? "" : "down"}">
    <td><span class="mono" title="${esc(m.id)}">${esc(shortId(m.id, 8, 10))}</span>${m.self ? ` <span class="tag">this node</span>` : ""}</td>
    <td>${m.voter ? "voter" : "non-voter"}${m.leader ? ` <span class="tag leader">leader</span>` : ""}</td>
    <td>${esc(m.domain || "—")}</td>
    <td><span class="dot ${m.healthy ? "ok" : "bad"}"></span>${m.healthy ? "healthy" : "down"}</td>
    <td class="num">${m.leader ? "—" : esc(fmtMillisAgo(m.lastContact))}</td>
    <td class="num">${m.rtt ? `${m.rtt.toFixed(m.rtt < 10 ? 2 : 0)} ms` : "—"}</td>
    <td class="usage">${bar(cap)}<span class="small">${fmtBytes(m.used)} / ${m.capacity ? fmtBytes(m.capacity) : "—"}</span></td>
    <td class="mono small" title="${esc(m.addrs.join("\n"))}">${esc(m.addrs[0] || "—")}</td>
  </tr>`;
}

// ------------------------------------------------------------ objects

function objectsState(query) {
  const health = query.get("health") || "all";
  return {
    q: query.get("q") || "",
    health: HEALTHS.includes(health) ? health : "all",
    offset: Math.max(0, parseInt(query.get("offset") || "0", 10) || 0),
  };
}

// saveObjectsState keeps the search in the URL (without a hashchange), so
// a reload or the back button returns to it.
function saveObjectsState(s) {
  const q = new URLSearchParams();
  if (s.q) q.set("q", s.q);
  if (s.health !== "all") q.set("health", s.health);
  if (s.offset) q.set("offset", String(s.offset));
  const qs = q.toString();
  history.replaceState(null, "", "#/objects" + (qs ? "?" + qs : ""));
}

const ObjectsPage = {
  title: "Objects",
  skeleton: () => `
    <div class="cards cols-main-side">
      <section class="card">
        <div class="toolbar">
          <input id="search" type="search" placeholder="Search by CID…" autocomplete="off" spellcheck="false">
          <select id="health-filter" title="Health">
            <option value="all">all</option>${HEALTHS.map((h) => `<option value="${h}">${HEALTH_LABEL[h]}</option>`).join("")}
          </select>
          <span id="obj-counts" class="chips"></span>
          <span class="spacer"></span>
          <span id="page-info" class="muted"></span>
          <button id="prev" class="btn" title="Previous page">‹</button>
          <button id="next" class="btn" title="Next page">›</button>
        </div>
        <table id="objects" class="table">
          <thead><tr><th>Root</th><th class="num">Size</th><th class="num">Blocks</th><th>Coding</th>
          <th class="num">Holders</th><th>Health</th><th>Tolerance</th></tr></thead>
          <tbody id="objects-body"></tbody>
        </table>
      </section>
      ${uploadBoxHTML()}
    </div>`,
  mount(ctx) {
    const s = (ctx.state = objectsState(ctx.route.query));
    const search = $("#search"), filter = $("#health-filter");
    search.value = s.q;
    filter.value = s.health;
    const changed = () => {
      saveObjectsState(s);
      ctx.poller.kick();
    };
    let timer = null;
    search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (!ctx.alive || search.value === s.q) return;
        s.q = search.value;
        s.offset = 0;
        changed();
      }, SEARCH_DEBOUNCE_MS);
    });
    filter.addEventListener("change", () => {
      s.health = filter.value;
      s.offset = 0;
      changed();
    });
    $("#prev").addEventListener("click", () => {
      s.offset = Math.max(0, s.offset - OBJECTS_PER_PAGE);
      changed();
    });
    $("#next").addEventListener("click", () => {
      s.offset += OBJECTS_PER_PAGE;
      changed();
    });
    $("#obj-counts").addEventListener("click", (e) => {
      const chip = e.target.closest("[data-health]");
      if (!chip) return;
      s.health = filter.value = s.health === chip.dataset.health ? "all" : chip.dataset.health;
      s.offset = 0;
      changed();
    });
    bindUpload();
  },
  async load(ctx) {
    const s = ctx.state;
    const asked = JSON.stringify(s);
    const res = await api("objects", { q: s.q, health: s.health === "all" ? "" : s.health, offset: s.offset, limit: OBJECTS_PER_PAGE });
    return JSON.stringify(s) === asked ? res : STALE;
  },
  render(ctx, res) {
    const s = ctx.state;
    const objs = list(res.objects);
    const matched = res.matched ?? res.total ?? objs.length;
    if (s.offset > 0 && s.offset >= matched) {
      // the list shrank under the page shown: go to its last page
      s.offset = Math.max(0, Math.floor((matched - 1) / OBJECTS_PER_PAGE) * OBJECTS_PER_PAGE);
      saveObjectsState(s);
      ctx.poller.kick();
      return;
    }
    const counts = res.counts || {};
    setHTML("obj-counts", HEALTHS.map((h) => `<button class="chip h-${h}${s.health === h ? " on" : ""}" data-health="${h}"
      title="show ${HEALTH_LABEL[h]} only">${HEALTH_LABEL[h]} <b>${fmtNum(counts[h] || 0)}</b></button>`).join(""));
    setText("page-info", matched === 0 ? "0 of 0"
      : `${fmtNum(s.offset + 1)}–${fmtNum(s.offset + objs.length)} of ${fmtNum(matched)}`);
    $("#prev").disabled = s.offset === 0;
    $("#next").disabled = s.offset + objs.length >= matched;
    const empty = res.total === 0 ? "No objects yet: add a file." : "No object matches.";
    setHTML("objects-body", objs.map(objectRowHTML).join("") || `<tr class="empty"><td colspan="7">${empty}</td></tr>`);
  },
};

function objectRowHTML(o) {
  const tol = o.health === "lost" || o.tolerance == null || o.tolerance < 0 ? "—" : `can lose ${plural(o.tolerance, "node")}`;
  return `<tr data-cid="${esc(o.root)}" data-health="${esc(o.health)}">
    <td class="mono"><a href="#/object/${esc(o.root)}">${esc(o.root)}</a></td>
    <td class="num">${fmtBytes(o.size)}</td><td class="num">${fmtNum(o.blocks)}</td><td>${esc(o.coding || "—")}</td>
    <td class="num">${fmtNum(o.holders)}</td><td>${healthBadge(o.health)}</td><td>${tol}</td></tr>`;
}

// ------------------------------------------------------------ object

// Holder colours: the palette in the order peers are first seen (each
// stat's holders sorted), kept for the session, so a peer keeps its
// colour while fragments move and the first colours, the most distinct,
// go to a small cluster's holders.
const holderColors = new Map();
function holderColor(id) {
  if (!holderColors.has(id)) {
    const i = holderColors.size;
    holderColors.set(id, i < HOLDER_PALETTE.length ? HOLDER_PALETTE[i]
      : `hsl(${(30 + ((i * 137.508) % 300)).toFixed(0)} 55% ${i % 2 ? 42 : 58}%)`);
  }
  return holderColors.get(id);
}

const ObjectPage = {
  title: "Object",
  skeleton: (ctx) => `
    <section class="card object-head">
      <div class="object-title"><h1 class="mono wrap">${esc(ctx.route.arg)}</h1><span id="obj-health"></span></div>
      <div id="obj-summary" class="facts"></div>
      <div class="object-actions">
        <code id="get-cmd">fungi get ${esc(ctx.route.arg)}</code><button id="copy-get" class="btn small">Copy</button>
        <a id="gateway-link" class="btn small" target="_blank" rel="noopener" hidden>Open in the gateway ↗</a>
        <span class="spacer"></span>
        <span id="verify-status" class="small muted"></span>
        <button id="verify" class="btn" title="Fetch and check every fragment (slower)">Verify</button>
      </div>
    </section>
    <div id="obj-error"></div>
    <div class="cards cols-side-main">
      <section class="card">
        <h2>Holders</h2>
        <table id="holders" class="table compact">
          <thead><tr><th></th><th>Peer</th><th class="num">Frags</th><th class="num">Missing</th><th class="num">Corrupt</th><th>State</th></tr></thead>
          <tbody id="holders-body"></tbody>
        </table>
        <h2 class="sub">Fragment states</h2>
        <ul class="legend">
          <li><span class="cell present-sample"></span>present (holder's colour)</li>
          <li><span class="cell" data-state="missing"></span>missing</li>
          <li><span class="cell" data-state="corrupt"></span>corrupt</li>
          <li><span class="cell" data-state="unreachable"></span>unreachable holder</li>
        </ul>
      </section>
      <section class="card">
        <div class="toolbar"><h2>Fragments <span class="muted small" id="grid-note"></span></h2><span class="spacer"></span>
          <span id="grid-pager" hidden><button id="grid-prev" class="btn small">‹</button>
          <span id="grid-info" class="small muted"></span><button id="grid-next" class="btn small">›</button></span></div>
        <div id="grid" class="grid"></div>
        <p id="damaged" class="small muted"></p>
      </section>
    </div>`,
  mount(ctx) {
    ctx.cid = ctx.route.arg;
    ctx.gridPage = 0;
    ctx.verified = null; // { at, corrupt: Set("block cid/index/holder") }
    $("#copy-get").addEventListener("click", () => copyText($("#get-cmd").textContent, $("#copy-get")));
    $("#verify").addEventListener("click", () => verifyObject(ctx));
    $("#grid-prev").addEventListener("click", () => moveGridPage(ctx, -1));
    $("#grid-next").addEventListener("click", () => moveGridPage(ctx, +1));
  },
  async load(ctx) {
    const [st, id] = await Promise.all([api("stat", { arg: ctx.cid }), nodeId().catch(() => null)]);
    return { st, id };
  },
  render: renderObject,
  fail(ctx, err) {
    if (!(err instanceof ApiError) || err.status < 400 || err.status >= 500) return false;
    setHTML("obj-error", `<p class="page-error card">${esc(err.message)}</p>`);
    return true;
  },
};

function renderObject(ctx, { st, id }) {
  ctx.last = { st, id };
  setHTML("obj-error", "");
  setHTML("obj-health", healthBadge(st.health));
  const tol = st.health === "lost" ? "none: unreadable" : `can lose ${plural(st.tolerable_node_losses || 0, "node")}`;
  setHTML("obj-summary", [
    ["Size", fmtBytes(st.size)], ["Coding", esc(st.coding)], ["Blocks", fmtNum(st.blocks)],
    ["Health", esc(HEALTH_LABEL[st.health] || st.health)], ["Tolerance", `<span id="tolerance">${tol}</span>`],
    ["Spare fragments", fmtNum(st.spare_fragments)], ["Holders", fmtNum(list(st.holders).length)],
  ].map(([k, v]) => `<div><span>${k}</span><b>${v}</b></div>`).join(""));
  const gw = gatewayURL(id);
  const link = $("#gateway-link");
  link.hidden = !gw;
  if (gw) link.href = `${gw}/ipfs/${st.root || ctx.cid}`;

  const corruptBy = new Map(); // holder → fragments marked corrupt by the last verify
  if (ctx.verified) {
    for (const key of ctx.verified.corrupt) {
      const h = key.split("/")[2];
      corruptBy.set(h, (corruptBy.get(h) || 0) + 1);
    }
  }
  const holders = list(st.holders).slice().sort((a, b) => a.id.localeCompare(b.id));
  for (const h of holders) holderColor(h.id);
  setHTML("holders-body", holders.map((h) => {
    const corrupt = Math.max(h.corrupt || 0, corruptBy.get(h.id) || 0);
    return `<tr data-holder="${esc(h.id)}" class="${h.reachable ? "" : "down"}">
      <td><span class="swatch" data-color="${esc(holderColor(h.id))}"></span></td>
      <td><span class="mono" title="${esc(h.id)}">${esc(shortId(h.id, 6, 8))}</span></td>
      <td class="num">${fmtNum(h.fragments)}</td>
      <td class="num">${h.reachable ? fmtNum(h.missing) : "—"}</td><td class="num">${h.reachable ? fmtNum(corrupt) : "—"}</td>
      <td>${h.reachable ? `<span class="dot ok"></span>reachable` : `<span class="dot bad"></span>unreachable`}</td></tr>`;
  }).join("") || `<tr class="empty"><td colspan="6">No holders.</td></tr>`);
  renderGrid(ctx, st);
  const damaged = list(st.damaged);
  setText("damaged", damaged.length ? `Blocks short of fragments: ${damaged.slice(0, 12).map((d) => `#${d.index} (${d.valid} valid)`).join(", ")}${damaged.length > 12 ? ` and ${fmtNum(damaged.length - 12)} more` : ""}.` : "");
}

// cellState is a fragment's state: corrupt, else unreachable (its holder
// did not answer), else missing, else present.
function cellStates(ctx, st, block) {
  const unreachable = new Set(list(st.unreachable));
  const corrupt = new Set(list(block.corrupt));
  const missing = new Set(list(block.missing));
  return list(block.holders).map((holder, i) => {
    if (corrupt.has(i) || (ctx.verified && ctx.verified.corrupt.has(`${block.cid}/${i}/${holder}`))) return "corrupt";
    if (unreachable.has(holder)) return "unreachable";
    if (missing.has(i)) return "missing";
    return "present";
  });
}

function renderGrid(ctx, st) {
  const grid = $("#grid");
  const layout = list(st.layout);
  const distinct = layout.length < (st.blocks || 0) ? ` (${fmtNum(layout.length)} distinct of ${fmtNum(st.blocks)})` : "";
  setText("grid-note", layout.length ? `${plural(layout.length, "block")}${distinct} × fragments` : "");
  if (layout.length === 0) {
    $("#grid-pager").hidden = true;
    ctx.gridKey = "";
    setHTML(grid, `<p class="muted whole">Stored whole on this node: no fragments are spread for this object.</p>`);
    return;
  }
  const pages = Math.ceil(layout.length / GRID_ROWS_PER_PAGE);
  ctx.gridPage = Math.min(ctx.gridPage, pages - 1);
  const first = ctx.gridPage * GRID_ROWS_PER_PAGE;
  const rows = layout.slice(first, first + GRID_ROWS_PER_PAGE);
  const cols = Math.max(...rows.map((b) => list(b.holders).length));
  $("#grid-pager").hidden = pages < 2;
  setText("grid-info", `blocks ${fmtNum(first + 1)}–${fmtNum(first + rows.length)} of ${fmtNum(layout.length)}`);
  $("#grid-prev").disabled = ctx.gridPage === 0;
  $("#grid-next").disabled = ctx.gridPage >= pages - 1;

  const key = `${first}:${rows.length}:${cols}:${rows.map((b) => b.index).join(",")}`;
  if (ctx.gridKey !== key) {
    // the shape changed: build the cells again (one page only)
    const cw = Math.max(8, Math.min(30, Math.floor(700 / cols)));
    grid.style.setProperty("--cw", cw + "px");
    grid.style.setProperty("--ch", (rows.length <= 32 ? 22 : 16) + "px");
    grid.style.gridTemplateColumns = `3.2em repeat(${cols}, var(--cw))`;
    let html = `<div class="gh corner" title="block \\ fragment">#</div>`;
    for (let c = 0; c < cols; c++) html += `<div class="gh">${cw >= 14 || c % 5 === 0 ? c : ""}</div>`;
    for (const b of rows) {
      html += `<div class="rh">${b.index}</div>`;
      for (let c = 0; c < cols; c++) html += `<div class="cell" data-block="${b.index}" data-frag="${c}"></div>`;
    }
    grid.innerHTML = html;
    grid._html = undefined;
    ctx.gridKey = key;
    ctx.gridCells = $$(".cell", grid);
  }
  // update the cells in place
  let k = 0;
  for (const b of rows) {
    const states = cellStates(ctx, st, b);
    for (let c = 0; c < cols; c++) {
      const cell = ctx.gridCells[k++];
      const holder = list(b.holders)[c] || "";
      const state = c < states.length ? states[c] : "missing";
      if (cell.dataset.holder !== holder) cell.dataset.holder = holder;
      if (cell.dataset.state !== state) cell.dataset.state = state;
      const color = state === "present" ? holderColor(holder) : "";
      if (cell._color !== color) {
        cell.style.background = color;
        cell._color = color;
      }
      const title = `block ${b.index}, fragment ${c}\nholder ${holder}\n${state}`;
      if (cell.title !== title) cell.title = title;
    }
  }
}

function moveGridPage(ctx, delta) {
  ctx.gridPage = Math.max(0, ctx.gridPage + delta);
  if (ctx.last) renderObject(ctx, ctx.last);
}

// verifyObject fetches the stat once with verify=true: every fragment is
// fetched and checked. Corrupt fragments stay marked until the next verify.
async function verifyObject(ctx) {
  const btn = $("#verify");
  btn.disabled = true;
  btn.textContent = "Verifying…";
  setText("verify-status", "fetching and checking every fragment…");
  try {
    const st = await api("stat", { arg: ctx.cid, verify: "true" });
    if (!ctx.alive) return;
    const corrupt = new Set();
    for (const b of list(st.layout)) {
      for (const i of list(b.corrupt)) corrupt.add(`${b.cid}/${i}/${list(b.holders)[i]}`);
    }
    const at = new Date();
    ctx.verified = { at, corrupt };
    clearError("verify");
    const nCorrupt = list(st.holders).reduce((n, h) => n + (h.corrupt || 0), 0);
    const nMissing = list(st.holders).reduce((n, h) => n + (h.missing || 0), 0) - nCorrupt;
    setText("verify-status", `verified at ${at.toLocaleTimeString("en-GB")}: ` + (nCorrupt + nMissing === 0
      ? "every fragment valid" : `${fmtNum(nCorrupt)} corrupt, ${fmtNum(Math.max(0, nMissing))} missing or unreachable`));
    renderObject(ctx, { st, id: ctx.last ? ctx.last.id : null });
  } catch (err) {
    if (!ctx.alive) return;
    setText("verify-status", "verify failed");
    showError("verify", err);
  } finally {
    if (ctx.alive) {
      btn.disabled = false;
      btn.textContent = "Verify again";
    }
  }
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch (_) {
    const sel = window.getSelection();
    sel.selectAllChildren($("#get-cmd"));
    button.textContent = "Press Ctrl+C";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
}

// ------------------------------------------------------------ files

function filesHref(segments) {
  return "#/files/" + segments.map(encodeURIComponent).join("/");
}

const FilesPage = {
  title: "Files",
  skeleton: (ctx) => {
    const segs = ctx.route.segments;
    const crumbs = [`<a href="#/files/">shared tree</a>`].concat(segs.map((s, i) =>
      i === segs.length - 1 ? `<span>${esc(s)}</span>` : `<a href="${filesHref(segs.slice(0, i + 1))}">${esc(s)}</a>`));
    return `<section class="card">
      <nav id="crumbs" class="crumbs">${crumbs.join(`<span class="sep">/</span>`)}</nav>
      <div id="files-error"></div>
      <table id="tree" class="table">
        <thead><tr><th>Name</th><th>Type</th><th class="num">Size</th><th>CID</th></tr></thead>
        <tbody id="tree-body"></tbody>
      </table>
      <p id="tree-empty" class="empty-note" hidden>The shared tree is empty.</p>
      <p class="small muted">The shared tree (QSFS) is the cluster's file system: <code>fungi files</code> changes it,
        <code>fungi add --to-files /DIR/</code> links what you add.</p>
    </section>`;
  },
  async load(ctx) {
    const arg = "/" + ctx.route.segments.join("/");
    const [ls, id] = await Promise.all([api("files/ls", { arg }), nodeId().catch(() => null)]);
    return { ls, id };
  },
  render(ctx, { ls, id }) {
    const segs = ctx.route.segments;
    const entries = list(ls.entries);
    const gw = gatewayURL(id);
    setHTML("files-error", "");
    $("#tree").hidden = false;
    const empty = $("#tree-empty");
    empty.hidden = entries.length > 0;
    empty.textContent = segs.length ? "This directory is empty." : "The shared tree is empty.";
    setHTML("tree-body", entries.map((e) => {
      const dir = e.type === "directory";
      const href = filesHref(segs.concat(e.name));
      const name = dir ? `<a href="${href}">${esc(e.name)}/</a>` : esc(e.name);
      const size = dir && e.tree ? plural(e.children || 0, "entry").replace(/entrys$/, "entries") : fmtBytes(e.cumulative_size || e.size);
      const cid = e.cid ? `<a class="mono" href="#/object/${esc(e.cid)}" title="${esc(e.cid)}">${esc(shortId(e.cid, 10, 10))}</a>`
        + (gw ? ` <a class="small" href="${esc(gw)}/ipfs/${esc(e.cid)}" target="_blank" rel="noopener" title="open in the gateway">gateway ↗</a>` : "")
        : `<span class="muted">—</span>`;
      const type = dir ? (e.tree ? "directory" : "directory (linked)") : e.type;
      return `<tr data-name="${esc(e.name)}"><td><span class="ficon ${dir ? "dir" : "file"}"></span>${name}</td>
        <td>${esc(type)}</td><td class="num">${size}</td><td>${cid}</td></tr>`;
    }).join(""));
  },
  fail(ctx, err) {
    if (err instanceof ApiError && err.status === 0 && !err.message.startsWith("the node answered")) return false;
    $("#tree").hidden = true;
    $("#tree-empty").hidden = true;
    setHTML("files-error", `<p class="page-error">${esc(err.message)}</p>`);
    return true;
  },
};

// ------------------------------------------------------------ activity

const SERIES = [
  { key: "added", title: "Added", metric: "fungi_added_bytes_total", color: "#1e88e5" },
  { key: "read", title: "Read (cat, get)", metric: "fungi_read_bytes_total", color: "#43a047" },
  { key: "gateway", title: "Gateway", metric: "fungi_gateway_bytes_total", color: "#8e24aa" },
  { key: "repair", title: "Repair writes", metric: "fungi_repair_done_total", match: (l) => l.what === "bytes", color: "#ef6c00" },
  { key: "bitswap", title: "Bitswap sent", metric: "fungi_bitswap_bytes_sent_total", color: "#00897b" },
];

// Samples of the counters, kept while this browser page is open.
const activity = { samples: [] }; // [{ t, v: { key: counter or null } }]

function promNumber(s) {
  if (s === "+Inf" || s === "Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  return Number(s);
}

// parsePrometheus reads the text exposition format into
// [{ name, labels, value }].
function parsePrometheus(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    let i = 0;
    while (i < line.length && line[i] !== "{" && line[i] !== " ") i++;
    const sample = { name: line.slice(0, i), labels: {}, value: NaN };
    if (line[i] === "{") {
      i++;
      while (i < line.length && line[i] !== "}") {
        const eq = line.indexOf("=", i);
        if (eq < 0) break;
        const key = line.slice(i, eq).trim();
        let val = "";
        for (i = eq + 2; i < line.length && line[i] !== '"'; i++) {
          if (line[i] === "\\") {
            i++;
            val += line[i] === "n" ? "\n" : line[i];
          } else val += line[i];
        }
        sample.labels[key] = val;
        i++;
        while (line[i] === "," || line[i] === " ") i++;
      }
      i++;
    }
    sample.value = promNumber(line.slice(i).trim().split(/\s+/)[0]);
    out.push(sample);
  }
  return out;
}

function sumSeries(samples, name, match) {
  let found = false, sum = 0;
  for (const s of samples) {
    if (s.name === name && (!match || match(s.labels)) && Number.isFinite(s.value)) {
      found = true;
      sum += s.value;
    }
  }
  return found ? sum : null;
}

// rates turns counter samples into bytes/s between neighbours; a gap (the
// page was elsewhere) or a counter reset breaks the line.
function rates(key) {
  const out = [];
  const xs = activity.samples;
  for (let i = 1; i < xs.length; i++) {
    const a = xs[i - 1], b = xs[i];
    const dt = (b.t - a.t) / 1000;
    const va = a.v[key], vb = b.v[key];
    const ok = va != null && vb != null && dt > 0 && dt < 3 * POLL_MS / 1000 && vb >= va;
    out.push({ t: b.t, r: ok ? (vb - va) / dt : null });
  }
  return out;
}

const ActivityPage = {
  title: "Activity",
  skeleton: () => `
    <div class="cards cols-3">
      ${SERIES.map((s) => `<section class="card chart-card">
        <h2>${esc(s.title)} <span class="rate" id="rate-${s.key}">—</span></h2>
        <canvas data-series="${s.key}"></canvas></section>`).join("")}
      <section class="card">
        <h2>Repair and scrub</h2>
        ${kv([["Repair backlog", `<span id="backlog">—</span>`], ["Stranded", `<span id="stranded">—</span>`],
          ["Repair rate cap", `<span id="repair-rate">—</span>`], ["Scrub", `<span id="scrub">—</span>`]])}
        <div id="scrub-bar"></div>
        <p class="small muted">Rates are computed here from this node's <a href="/metrics" target="_blank">/metrics</a>
          every 2 s; the last 5 minutes are kept only while this page is open.</p>
      </section>
    </div>`,
  mount(ctx) {
    ctx.onResize = () => drawCharts();
  },
  async load() {
    const [text, repo, rep] = await Promise.all([metricsText(), api("repo/stat"), api("repair/status")]);
    return { metrics: parsePrometheus(text), repo, rep };
  },
  render(ctx, { metrics, repo, rep }) {
    const now = Date.now();
    const v = {};
    for (const s of SERIES) v[s.key] = sumSeries(metrics, s.metric, s.match);
    activity.samples.push({ t: now, v });
    while (activity.samples.length && activity.samples[0].t < now - ACTIVITY_WINDOW_MS) activity.samples.shift();
    for (const s of SERIES) {
      const rs = rates(s.key);
      const last = rs.length ? rs[rs.length - 1].r : null;
      setText(`rate-${s.key}`, v[s.key] == null ? "not served here" : last == null ? "…" : fmtRate(last));
    }
    drawCharts();
    setText("backlog", plural(rep.backlog_fragments || 0, "fragment"));
    setText("stranded", plural(rep.stranded_fragments || 0, "fragment") + " on members down");
    setText("repair-rate", rep.rate ? fmtRate(rep.rate) : "none");
    const sc = repo.scrub || rep.scrub;
    setText("scrub", scrubSummary(sc));
    setHTML("scrub-bar", sc && sc.running ? bar(sc.total ? sc.scanned / sc.total : 0) : "");
  },
};

function drawCharts() {
  const now = Date.now();
  for (const s of SERIES) {
    const canvas = $(`canvas[data-series="${s.key}"]`);
    if (canvas) drawChart(canvas, rates(s.key), s.color, now);
  }
}

function niceMax(v) {
  if (!(v > 0)) return 1024;
  const p = Math.pow(1024, Math.floor(Math.log(v) / Math.log(1024)));
  for (const m of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1024]) if (v <= m * p) return m * p;
  return v;
}

// drawChart draws one rate series (the last 5 minutes) as an area chart.
function drawChart(canvas, points, color, now) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (!w || !h) return;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const left = 62, right = 6, top = 6, bottom = 16;
  const pw = w - left - right, ph = h - top - bottom;
  const max = niceMax(Math.max(0, ...points.map((p) => p.r || 0)));
  const x = (t) => left + pw * (1 - (now - t) / ACTIVITY_WINDOW_MS);
  const y = (r) => top + ph * (1 - r / max);
  g.font = "10px system-ui, sans-serif";
  g.fillStyle = "#6b7280";
  g.strokeStyle = "#e5e7eb";
  g.lineWidth = 1;
  g.textAlign = "right";
  g.textBaseline = "middle";
  for (let i = 0; i <= 2; i++) {
    const r = (max * i) / 2;
    g.beginPath();
    g.moveTo(left, Math.round(y(r)) + 0.5);
    g.lineTo(w - right, Math.round(y(r)) + 0.5);
    g.stroke();
    g.fillText(fmtRate(r), left - 4, y(r));
  }
  g.textBaseline = "alphabetic";
  g.textAlign = "left";
  g.fillText("5 min ago", left, h - 3);
  g.textAlign = "right";
  g.fillText("now", w - right, h - 3);
  // runs of known rates, each drawn as a filled line
  const runs = [];
  let run = [];
  for (const p of points) {
    if (p.r == null) {
      if (run.length) runs.push(run);
      run = [];
    } else run.push(p);
  }
  if (run.length) runs.push(run);
  for (const r of runs) {
    g.beginPath();
    r.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p.r)) : g.moveTo(x(p.t), y(p.r))));
    g.strokeStyle = color;
    g.lineWidth = 1.5;
    g.stroke();
    g.lineTo(x(r[r.length - 1].t), y(0));
    g.lineTo(x(r[0].t), y(0));
    g.closePath();
    g.globalAlpha = 0.15;
    g.fillStyle = color;
    g.fill();
    g.globalAlpha = 1;
  }
}

// ------------------------------------------------------------ not found

const NotFoundPage = {
  title: "Not found",
  skeleton: (ctx) => `<section class="card"><h2>No such page</h2>
    <p>Nothing lives at <code>#/${esc(ctx.route.arg)}</code>. <a href="#/">Back to the overview</a>.</p></section>`,
  load: async () => null,
  render() {},
};

// ------------------------------------------------------------ boot

const PAGES = {
  overview: OverviewPage, node: NodePage, cluster: ClusterPage, objects: ObjectsPage,
  object: ObjectPage, files: FilesPage, activity: ActivityPage, notfound: NotFoundPage,
};

window.addEventListener("hashchange", navigate);
window.addEventListener("resize", () => {
  if (current && current.onResize) current.onResize();
});
nodeId().catch(() => { /* the pages show their own errors */ });
navigate();
