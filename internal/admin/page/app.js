// ldapmux status page: polls /api/status every second and draws it.
"use strict";

const POLL_MS = 1000;
const PALETTE = ["#38bdf8", "#a78bfa", "#f472b6", "#34d399", "#fbbf24", "#fb923c", "#60a5fa", "#e879f9", "#2dd4bf", "#f87171"];

// el builds an element: el("div", {class: "x"}, child, "text", ...).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k === "title") e.title = v;
    else if (k === "style") Object.assign(e.style, v); // CSSOM: allowed by the page's CSP
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fmtNum(n, digits = 0) {
  if (n === undefined || n === null || isNaN(n)) return "–";
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function fmtMs(ms) {
  if (!ms) return "–";
  if (ms < 1) return ms.toFixed(2) + " ms";
  if (ms < 100) return ms.toFixed(1) + " ms";
  return Math.round(ms) + " ms";
}

function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function fmtAge(from, now) {
  let s = Math.max(0, Math.round((now - from) / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
}

function colorOf(st) {
  const colors = {};
  st.servers.forEach((s, i) => { colors[s.name] = PALETTE[i % PALETTE.length]; });
  return colors;
}

// ---- header and key figures ----

function renderHeader(st, now) {
  document.body.dataset.ready = st.ready ? "true" : "false";
  const badge = document.getElementById("ready");
  if (st.draining) { badge.className = "badge badge-draining"; badge.textContent = "draining"; }
  else if (st.ready) { badge.className = "badge badge-ready"; badge.textContent = "ready"; }
  else { badge.className = "badge badge-notready"; badge.textContent = "not ready"; }
  badge.title = (st.notReady || []).join("\n");
  const build = st.build || {};
  const version = document.getElementById("version");
  version.textContent = build.version || "";
  version.title = build.version ? "revision " + (build.revision || "unknown") + ", " + (build.goVersion || "") : "";
  document.getElementById("uptime").textContent = "up " + fmtAge(new Date(st.started), now);
  document.getElementById("refreshed").textContent = "updated " + new Date(st.time).toLocaleTimeString();
  const where = st.location ? " · location " + st.location : "";
  document.getElementById("listeners").textContent = "LDAP on " + (st.listeners || []).join(", ") + where;
  const r = st.reload || {};
  document.getElementById("reload").textContent = r.time ? "· last reload " + new Date(r.time).toLocaleTimeString() + (r.ok ? " ok" : " refused: " + r.error) : "";
}

function kpi(label, value, sub) {
  return el("div", { class: "kpi" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value), el("div", { class: "sub" }, sub || "\u00a0"));
}

function renderKPIs(st) {
  const ops = st.servers.reduce((a, s) => a + (s.opsPerSec || 0), 0);
  const weighted = st.servers.reduce((a, s) => a + (s.opsPerSec || 0) * (s.latencyMs || 0), 0);
  const usable = st.servers.filter(s => s.state !== "unavailable").length;
  const failed = st.servers.reduce((a, s) => a + s.failed, 0);
  const failovers = st.algorithms.reduce((a, x) => a + x.failovers, 0);
  document.getElementById("kpis").replaceChildren(
    kpi("Throughput", fmtNum(ops, 1), "operations / s"),
    kpi("Response time", ops ? fmtMs(weighted / ops) : "–", "mean, last second"),
    kpi("Servers usable", usable + " / " + st.servers.length, st.servers.filter(s => s.state === "degraded").length + " degraded"),
    kpi("Clients", fmtNum(st.clients.current), fmtNum(st.clients.accepted) + " accepted · " + fmtNum(st.clients.rejected) + " rejected"),
    kpi("In flight", fmtNum(st.clients.inflight), fmtBytes(st.clients.receivedBytes) + " in · " + fmtBytes(st.clients.sentBytes) + " out"),
    kpi("Failovers", fmtNum(failovers), fmtNum(failed) + " failed attempts"),
  );
}

// ---- server cards ----

function metric(label, value) {
  return el("div", { class: "metric" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value));
}

function scoreBar(score) {
  const bar = el("div", { class: "bar" });
  for (let i = 1; i <= 10; i++) bar.append(el("i", { class: i <= score ? "on" : "" }));
  return bar;
}

function serverCard(s, color, now) {
  const since = s.since ? " for " + fmtAge(new Date(s.since), now) : "";
  return el("article", { class: "server", "data-server": s.name, "data-state": s.state },
    el("div", { class: "server-head" },
      el("span", { class: "server-name" }, el("span", { class: "swatch", style: { background: color } }), s.name),
      el("span", { class: "state", title: s.state + since }, s.state)),
    el("div", { class: "addr" }, s.address, s.serverType ? " · " + s.serverType + ", " + s.identityMode : "",
      s.passwordPolicy ? ", password policy" : "", s.vendor ? " (" + s.vendor + ")" : ""),
    el("div", { class: "score" }, "score", scoreBar(s.score), el("b", {}, String(s.score))),
    el("div", { class: "metrics" },
      metric("ops/s", fmtNum(s.opsPerSec, 1)),
      metric("latency", fmtMs(s.latencyMs)),
      metric("outstanding", fmtNum(s.outstanding)),
      metric("completed", fmtNum(s.completed)),
      metric("failed", fmtNum(s.failed)),
      metric("in state", s.since ? fmtAge(new Date(s.since), now) : "–")),
    el("div", { class: "pool" },
      el("span", {}, "pool ", el("b", {}, String(s.pool.openOperation)), s.pool.maxOperation ? "/" + s.pool.maxOperation : "", " operation · ", el("b", {}, String(s.pool.openAnonymous || 0)), " anonymous · ", el("b", {}, String(s.pool.openBound || 0)), " bound · ", el("b", {}, String(s.pool.openBind)), s.pool.maxBind ? "/" + s.pool.maxBind : "", " bind (", String(s.pool.idleBind), " idle) · ", el("b", {}, String(s.pool.leased || 0)), " leased", s.pool.leasesRefused ? " (" + s.pool.leasesRefused + " refused)" : ""),
      el("span", { title: "connections opened, recycled by age, failed; grown under load and shrunk when idle, above the minimum" }, fmtNum(s.pool.opened), " opened · ", fmtNum(s.pool.recycled), " recycled · ", fmtNum(s.pool.failed), " failed · ", fmtNum(s.pool.grown || 0), " grown · ", fmtNum(s.pool.shrunk || 0), " shrunk")),
    el("div", { class: "reason", title: s.reason }, s.check ? el("b", {}, s.check + ": ") : null, s.reason || "—"));
}

function renderServers(st, colors, now) {
  const groups = new Map();
  for (const s of st.servers) {
    const loc = s.location || "no location";
    if (!groups.has(loc)) groups.set(loc, []);
    groups.get(loc).push(s);
  }
  const sections = [];
  for (const [loc, list] of groups) {
    const up = list.filter(s => s.state !== "unavailable").length;
    sections.push(el("div", { class: "location", "data-location": loc },
      el("h3", {}, loc, el("span", { class: "count" }, up + " of " + list.length + " usable")),
      el("div", { class: "grid" }, list.map(s => serverCard(s, colors[s.name], now)))));
  }
  document.getElementById("servers").replaceChildren(...sections);
}

// ---- tables ----

function renderAlgorithms(st) {
  const rows = st.algorithms.map(a => el("tr", {},
    el("td", {}, a.name), el("td", {}, a.type), el("td", {}, a.servers.join(", ")),
    el("td", { class: "num" }, a.usable + " / " + a.servers.length),
    el("td", { class: "num" }, fmtNum(a.selections)), el("td", { class: "num" }, fmtNum(a.failovers))));
  document.querySelector("#algorithms tbody").replaceChildren(...rows);
}

function renderTransitions(st, now) {
  const list = (st.transitions || []).slice(0, 12);
  const rows = list.map(t => el("tr", {},
    el("td", { title: new Date(t.time).toLocaleString() }, fmtAge(new Date(t.time), now) + " ago"),
    el("td", {}, t.server),
    el("td", {}, el("span", { class: "pill", "data-state": t.from }, t.from), el("span", { class: "arrow" }, "→"), el("span", { class: "pill", "data-state": t.to }, t.to)),
    el("td", {}, t.check),
    el("td", { class: "reason-cell", title: t.reason }, t.reason)));
  if (!rows.length) rows.push(el("tr", {}, el("td", { class: "empty", "data-colspan": "5" }, "no state change since ldapmux started")));
  const body = document.querySelector("#transitions tbody");
  body.replaceChildren(...rows);
  const empty = body.querySelector("td.empty");
  if (empty) empty.colSpan = 5;
}

// ---- charts ----

// niceMax rounds v up to 1, 2 or 5 times a power of ten, so that the five
// grid steps fall on round values.
function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function setupCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

// drawChart plots one value per server over time. With stacked, the
// servers' areas pile up; otherwise each is a line, broken where value
// returns null (no operation in that second), and a sample alone between
// gaps (one second of answers in a stall) is a dot, since a line needs two.
// The canvas's data-lone-samples says how many dots it drew.
function drawChart(canvas, history, names, colors, value, opts) {
  const { ctx, w, h } = setupCanvas(canvas);
  const pad = { l: 46, r: 10, t: 8, b: 22 };
  const cw = w - pad.l - pad.r, ch = h - pad.t - pad.b;
  ctx.font = "11px ui-sans-serif, system-ui, sans-serif";
  if (history.length < 2) {
    ctx.fillStyle = "#8a9ab5";
    ctx.fillText("collecting samples…", pad.l + 8, pad.t + ch / 2);
    return;
  }
  const times = history.map(s => new Date(s.time).getTime());
  const t0 = times[0], t1 = times[times.length - 1];
  const x = t => pad.l + ((t - t0) / (t1 - t0)) * cw;
  const series = names.map(n => history.map(s => (s.servers[n] ? value(s.servers[n]) : null)));
  const tops = history.map((_, i) => {
    const vals = series.map(s => s[i] || 0);
    return opts.stacked ? vals.reduce((a, v) => a + v, 0) : Math.max(0, ...vals);
  });
  const ymax = niceMax(Math.max(...tops) * 1.1);
  const y = v => pad.t + ch - (v / ymax) * ch;
  drawAxes(ctx, { w, h, pad, ymax, y, x, t0, t1, fmt: opts.fmt });

  const base = history.map(() => 0);
  let lone = 0;
  names.forEach((n, k) => {
    const vals = series[k];
    const top = vals.map((v, i) => base[i] + (v || 0));
    if (opts.stacked) {
      ctx.beginPath();
      top.forEach((v, i) => (i ? ctx.lineTo(x(times[i]), y(v)) : ctx.moveTo(x(times[i]), y(v))));
      for (let i = top.length - 1; i >= 0; i--) ctx.lineTo(x(times[i]), y(base[i]));
      ctx.closePath();
      ctx.fillStyle = colors[n] + "38";
      ctx.fill();
    }
    ctx.beginPath();
    let pen = false;
    vals.forEach((v, i) => {
      const draw = opts.stacked ? (v > 0 || (vals[i - 1] || 0) > 0 || (vals[i + 1] || 0) > 0) : v !== null;
      if (!draw) { pen = false; return; }
      const px = x(times[i]), py = y(opts.stacked ? top[i] : v);
      pen ? ctx.lineTo(px, py) : ctx.moveTo(px, py);
      pen = true;
    });
    ctx.strokeStyle = colors[n]; ctx.lineWidth = 1.8; ctx.lineJoin = "round";
    ctx.stroke();
    if (!opts.stacked) {
      ctx.fillStyle = colors[n];
      vals.forEach((v, i) => {
        if (v === null || (i > 0 && vals[i - 1] !== null) || (i + 1 < vals.length && vals[i + 1] !== null)) return;
        ctx.beginPath();
        ctx.arc(x(times[i]), y(v), 3, 0, 2 * Math.PI);
        ctx.fill();
        lone++;
      });
    }
    if (opts.stacked) top.forEach((v, i) => { base[i] = v; });
  });
  canvas.dataset.loneSamples = lone;
}

// drawAxes draws the horizontal grid with values and the time labels.
function drawAxes(ctx, a) {
  ctx.strokeStyle = "#24314a"; ctx.fillStyle = "#8a9ab5"; ctx.lineWidth = 1;
  for (let i = 0; i <= 5; i++) {
    const v = (a.ymax * i) / 5, yy = Math.round(a.y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(a.pad.l, yy); ctx.lineTo(a.w - a.pad.r, yy); ctx.stroke();
    ctx.textAlign = "right"; ctx.fillText(a.fmt(v), a.pad.l - 6, yy + 4);
  }
  ctx.textAlign = "center";
  const span = (a.t1 - a.t0) / 1000;
  const step = [5, 10, 15, 30, 60, 120, 300, 600].find(st => span / st <= 5) || 1200;
  for (let ago = 0; ago <= span; ago += step) {
    const label = ago === 0 ? "now" : "−" + (ago >= 60 ? Math.floor(ago / 60) + "m" + (ago % 60 ? (ago % 60) + "s" : "") : ago + "s");
    ctx.fillText(label, a.x(a.t1 - ago * 1000), a.h - 6);
  }
}

function renderCharts(st, colors) {
  const names = st.servers.map(s => s.name);
  const hist = st.history || [];
  drawChart(document.getElementById("throughput"), hist, names, colors, r => r.ops, { stacked: true, fmt: v => fmtNum(v) });
  drawChart(document.getElementById("latency"), hist, names, colors, r => (r.ops > 0 ? r.latencyMs : null),
    { stacked: false, fmt: v => (v === 0 ? "0" : v < 1 ? v.toFixed(2) : v < 10 ? v.toFixed(1) : Math.round(v)) });
  document.getElementById("legend").replaceChildren(...st.servers.map(s =>
    el("span", {}, el("span", { class: "swatch", style: { background: colors[s.name] } }), s.name)));
}

// ---- polling ----

let last = null;

function render(st) {
  const now = new Date(st.time);
  const colors = colorOf(st);
  renderHeader(st, now);
  renderKPIs(st);
  renderServers(st, colors, now);
  renderAlgorithms(st);
  renderTransitions(st, now);
  renderCharts(st, colors);
}

async function refresh() {
  try {
    const r = await fetch("api/status", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    last = await r.json();
    render(last);
  } catch (e) {
    const badge = document.getElementById("ready");
    badge.className = "badge badge-unknown";
    badge.textContent = "no answer";
    badge.title = String(e);
    document.body.dataset.ready = "unknown";
  } finally {
    setTimeout(refresh, POLL_MS);
  }
}

window.addEventListener("resize", () => { if (last) renderCharts(last, colorOf(last)); });
refresh();
