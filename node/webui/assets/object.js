"use strict";

// An object's page (holders and the fragment grid) and the shared tree.

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
          <li><span class="cell" data-state="inline"></span>inline: in the replicated metadata, no fragments</li>
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
    let msg = esc(err.message);
    if (err.status === 404) {
      // a CID inside another object (a file of a linked directory, a
      // block) has no manifest of its own; the gateway still serves it
      msg = `No object of the cluster has this CID as its root: it may be a file or block inside another object.`;
      nodeId().then((id) => {
        const gw = gatewayURL(id);
        if (gw) setHTML("obj-error", `<p class="page-error card">${msg} <a href="${esc(gw)}/ipfs/${esc(ctx.cid)}" target="_blank" rel="noopener">Open it in the gateway ↗</a></p>`);
      }).catch(() => {});
    }
    setHTML("obj-error", `<p class="page-error card">${msg}</p>`);
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
  const inline = st.inline_blocks ? `, ${fmtNum(st.inline_blocks)} inline` : "";
  const note = st.inline_blocks === layout.length ? `${plural(layout.length, "block")}${distinct}, inline: no fragments`
    : `${plural(layout.length, "block")}${distinct}${inline} × fragments`;
  setText("grid-note", layout.length ? note : "");
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
  // an inline block (small: kept in the replicated metadata) is one cell
  // across the row: it has no fragments
  const spread = Math.max(0, ...rows.map((b) => list(b.holders).length));
  const cols = Math.max(1, spread);
  $("#grid-pager").hidden = pages < 2;
  setText("grid-info", `blocks ${fmtNum(first + 1)}–${fmtNum(first + rows.length)} of ${fmtNum(layout.length)}`);
  $("#grid-prev").disabled = ctx.gridPage === 0;
  $("#grid-next").disabled = ctx.gridPage >= pages - 1;

  const key = `${first}:${rows.length}:${cols}:${rows.map((b) => b.index + (b.inline ? "i" : "")).join(",")}`;
  if (ctx.gridKey !== key) {
    // the shape changed: build the cells again (one page only)
    const cw = Math.max(8, Math.min(30, Math.floor(700 / cols)));
    grid.style.setProperty("--cw", cw + "px");
    grid.style.setProperty("--ch", (rows.length <= 32 ? 22 : 16) + "px");
    grid.style.gridTemplateColumns = spread ? `3.2em repeat(${cols}, var(--cw))` : "3.2em 14em";
    let html = `<div class="gh corner" title="block \\ fragment">#</div>`;
    for (let c = 0; c < cols; c++) html += `<div class="gh">${spread && (cw >= 14 || c % 5 === 0) ? c : ""}</div>`;
    for (const b of rows) {
      html += `<div class="rh">${b.index}</div>`;
      if (b.inline) {
        html += `<div class="cell inline-row" data-block="${b.index}" data-state="inline" title="block ${b.index}: inline, in the replicated metadata (every member holds it, no fragments)">inline</div>`;
        continue;
      }
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
    if (b.inline) {
      k++;
      continue;
    }
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
