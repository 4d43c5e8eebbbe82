"use strict";

// The upload box and the overview, node, cluster and objects pages.

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
