// The fleet page: fills itself from the JSON API and stays live through server-sent
// events (/api/stream). No library, no CDN. Text is set with textContent only, so
// nothing a message carries is ever parsed as HTML.
"use strict";

const state = { site: null, gates: new Map(), sites: [], chartAt: 0, newest: 0 };
const STALE_SOON_S = 48 * 3600;  // the trust cell warns this long before a bundle goes stale
const REASONS_SHOWN = 4;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function bi(id, en) {
  return el("span", {}, id + " ", el("span", { class: "en" }, "/ " + en));
}

function ago(iso) {
  if (!iso) return "—";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 90) return s + " d/s";
  if (s < 5400) return Math.round(s / 60) + " mnt/min";
  return Math.round(s / 3600) + " jam/h";
}

async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin" });
  if (r.status === 401) { location.href = "/login"; throw new Error("401"); }
  return r.json();
}

function renderAlarms(alarms) {
  const list = document.getElementById("alarms");
  const count = document.getElementById("alarm-count");
  count.textContent = alarms.length;
  count.className = "badge" + (alarms.length ? " hot" : "");
  list.replaceChildren();
  if (!alarms.length) {
    list.append(el("li", { class: "none" }, "Tidak ada alarm / No alarms"));
    return;
  }
  for (const a of alarms) {
    list.append(el("li", { "data-kind": a.kind, "data-gate": a.site + "/" + a.gate },
      el("span", { class: "kind" }, a.label_id + " / " + a.label_en), " — ",
      a.site + "/" + a.gate + " (" + a.detail + ") ",
      el("span", { class: "en" }, "sejak/since " + new Date(a.raised).toLocaleTimeString())));
  }
}

function renderSites(sites) {
  state.sites = sites;
  const box = document.getElementById("sites");
  box.replaceChildren();
  for (const s of sites) {
    const t = s.today;
    const denied = Object.entries(t).filter(([k]) => k.startsWith("denied."))
      .sort((a, b) => b[1] - a[1]).slice(0, REASONS_SHOWN);
    const dl = el("dl", {},
      el("dt", {}, bi("Daring", "Online")), el("dd", {}, s.online + " / " + s.gates),
      el("dt", {}, bi("Masuk", "Allowed")), el("dd", { "data-k": "allowed" }, t.allowed || 0),
      el("dt", {}, bi("Ditolak", "Denied")), el("dd", { "data-k": "denied" }, t.denied || 0),
      el("dt", {}, bi("Lewat", "Passages")), el("dd", {}, t.passage || 0),
      el("dt", {}, bi("Terobos", "Tailgates")), el("dd", {}, t.tailgate || 0),
      el("dt", {}, "QR / NIK"), el("dd", {}, (t["input.qr"] || 0) + " / " + (t["input.nik"] || 0)));
    for (const [k, v] of denied) dl.append(el("dt", { class: "en" }, "· " + k.slice(7)), el("dd", {}, v));
    const card = el("button", { class: "card" + (s.site === state.site ? " sel" : ""), "data-site": s.site, type: "button" },
      el("h3", {}, s.site), el("span", { class: "en" }, bi("Hari ini", "Today") ), " " + (t.date || ""), dl);
    card.addEventListener("click", () => selectSite(s.site));
    box.append(card);
  }
}

function cell(text, cls) { return el("td", cls ? { class: cls } : {}, text == null ? "—" : text); }

// Each cell carries its column's bilingual label (data-id, data-en), read once from the
// table head, so the narrow-screen CSS can show a row as a card of label/value lines
// with the one markup (fleet.css, @media max-width: 640px).
let columnLabels = null;
function labels() {
  if (!columnLabels) {
    columnLabels = [...document.querySelectorAll("#gates thead th")].map((th) => {
      const en = th.querySelector(".en");
      const id = [...th.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE)
        .map((n) => n.textContent).join(" ").trim();
      return { id, en: en && en.textContent.trim() !== id ? "/ " + en.textContent.trim() : "" };
    });
  }
  return columnLabels;
}

function labelled(tr) {
  const names = labels();
  [...tr.children].forEach((td, i) => {
    if (!names[i]) return;
    td.dataset.id = names[i].id;
    td.dataset.en = names[i].en;
  });
  return tr;
}

function renderGates() {
  const body = document.querySelector("#gates tbody");
  body.replaceChildren();
  const rows = [...state.gates.values()].sort((a, b) => a.gate.localeCompare(b.gate));
  for (const g of rows) {
    const t = g.today || {}, tot = g.totals || {};
    let trust = (g.mode || "—") + (g.bundle_version != null ? " v" + g.bundle_version : "") +
      (g.bundle_age_s != null ? " · " + Math.round(g.bundle_age_s / 3600) + " jam/h" : "");
    const staleIn = g.stale_at == null ? null : g.stale_at - Date.now() / 1000;
    let trustClass = "";
    if (g.behind != null) {
      trust += " · tertinggal/behind v" + g.behind;
      trustClass = "warn";
    }
    if (staleIn != null && staleIn > 0 && staleIn < STALE_SOON_S && g.mode === "fresh") {
      trust += " · basi dlm/stale in " + Math.floor(staleIn / 3600) + " jam/h";
      trustClass = "warn";
    }
    const problem = g.dist_error || g.pull_error;
    if (problem) trust += " · " + problem;
    const tr = el("tr", { "data-gate": g.gate, class: g.alarms.length ? "alarm" : "" },
      cell(g.gate),
      el("td", { class: g.online ? "on" : "offline" }, g.online ? "daring / online" : "luring / offline"),
      cell(ago(g.last_seen)),
      cell(g.gate_mode), cell(trust, trustClass), cell(g.clock_state),
      cell(t.allowed || 0, "n allowed"), cell(t.denied || 0, "n denied"),
      cell((t.passage || 0) + " / " + (t.tailgate || 0), "n"),
      cell((t["input.qr"] || 0) + " / " + (t["input.nik"] || 0), "n"),
      cell(g.outbox_pending, "n"), cell(g.version),
      cell((g.decoder || "—") + " · " + (g.camera_fps == null ? "—" : g.camera_fps)),
      cell(g.last_error));
    tr.title = "Total: masuk/allowed " + (tot.allowed || 0) + ", ditolak/denied " + (tot.denied || 0);
    body.append(labelled(tr));
  }
}

function renderCommands(commands) {
  const list = document.getElementById("commands");
  list.replaceChildren();
  if (!commands.length) {
    list.append(el("li", { class: "none" }, "Belum ada perintah / No commands yet"));
    return;
  }
  for (const c of commands) {
    const refused = c.outcome.startsWith("refused");
    list.append(el("li", { "data-event": c.event, class: refused || c.outcome !== "ok" ? "bad" : "" },
      el("span", { class: "kind" }, c.action || "ditolak / refused"), " — " + c.site + "/" + c.gate + ": ",
      refused ? c.outcome : c.outcome === "ok" ? "dijalankan / done" : c.outcome, " ",
      el("span", { class: "en" }, new Date(c.at).toLocaleString())));
  }
}

function renderDiagnostics() {
  const list = document.getElementById("diagnostics");
  list.replaceChildren();
  const reports = [...state.gates.values()].filter((g) => g.diagnostics)
    .sort((a, b) => b.diagnostics.at.localeCompare(a.diagnostics.at));
  if (!reports.length) {
    list.append(el("li", { class: "none" }, "Belum ada laporan / No reports yet"));
    return;
  }
  for (const g of reports) {
    const d = g.diagnostics;
    const checks = el("ul", {});
    for (const [name, c] of Object.entries(d.checks)) {
      checks.append(el("li", { class: c.status }, name + ": " + c.status + " — " + c.detail));
    }
    list.append(el("li", { "data-gate": g.gate, class: d.result },
      el("span", { class: "kind" }, g.gate + ": " + d.result), " ",
      el("span", { class: "en" }, new Date(d.at).toLocaleString()), checks));
  }
}

function refreshChart(force) {
  if (!state.site) return;
  const now = Date.now();
  if (!force && now - state.chartAt < 10000) return;
  state.chartAt = now;
  document.getElementById("chart").src = "/chart/" + encodeURIComponent(state.site) + ".svg?t=" + now;
}

let stream = null;
function connect() {
  if (stream) stream.close();
  const live = document.getElementById("live");
  const url = "/api/stream" + (state.site ? "?site=" + encodeURIComponent(state.site) : "");
  stream = new EventSource(url);
  stream.addEventListener("open", () => { live.className = "live on"; });
  stream.addEventListener("error", () => { live.className = "live off"; });
  stream.addEventListener("update", (ev) => {
    const data = JSON.parse(ev.data);
    renderAlarms(data.alarms);
    if (!state.site && data.sites.length) { selectSite(data.sites[0].site); return; }
    renderSites(data.sites);
    for (const g of data.gates) if (g.site === state.site) state.gates.set(g.gate, g);
    renderGates();
    renderDiagnostics();
    renderCommands(data.commands || []);
    refreshChart(false);
    document.body.dataset.version = data.version;
  });
}

async function selectSite(site) {
  state.site = site;
  location.hash = encodeURIComponent(site);
  document.getElementById("site-name").textContent = site;
  const gates = await getJSON("/api/gates?site=" + encodeURIComponent(site));
  state.gates = new Map(gates.map((g) => [g.gate, g]));
  renderSites(state.sites);
  renderGates();
  renderDiagnostics();
  renderCommands(await getJSON("/api/commands?limit=20&site=" + encodeURIComponent(site)));
  refreshChart(true);
  connect();
}

async function start() {
  const sites = await getJSON("/api/sites");
  renderSites(sites);
  renderAlarms(await getJSON("/api/alarms"));
  const wanted = decodeURIComponent(location.hash.slice(1));
  const first = sites.find((s) => s.site === wanted) || sites[0];
  if (first) await selectSite(first.site); else connect();
  setInterval(renderGates, 15000);  // "last seen" keeps ageing without messages
}

document.addEventListener("DOMContentLoaded", start);
