"use strict";

// FungiStor web console: the shared parts (constants, helpers, the API,
// the error banner, polling, the router, cluster data). No dependencies,
// no build step: the console is a few classic scripts loaded in order
// (index.html), sharing their top-level names; app.js, last, boots it.
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

// Poller runs fn every ms, one run at a time. A run that takes long (the
// stat of an object of many gigabytes) spaces the next one out: the
// page waits at least 10 times as long as its last load took, so an
// open page never keeps the node busy more than about a tenth of the time.
class Poller {
  constructor(fn, ms) {
    this.fn = fn;
    this.ms = ms;
    this.busy = false;
    this.again = false;
    this.running = false;
    this.timer = null;
  }
  start() {
    this.running = true;
    this.tick();
  }
  stop() {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = null;
  }
  async tick() {
    if (this.busy || !this.running) return; // a run in flight: kick() queues one
    clearTimeout(this.timer);
    this.busy = true;
    const began = performance.now();
    try {
      await this.fn();
    } finally {
      this.busy = false;
    }
    if (!this.running) return;
    if (this.again) {
      this.again = false;
      this.tick();
      return;
    }
    const took = performance.now() - began;
    this.timer = setTimeout(() => this.tick(), Math.max(this.ms, 10 * took));
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
