"use strict";

// The activity page: throughput from /metrics, drawn on canvases.

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
