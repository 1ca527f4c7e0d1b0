// The System page (admins only): alerts, per-pool charts of the last hour, the services.
// Reads /api/system every REFRESH_MS and redraws; charts are uPlot (static/vendor/uplot,
// loaded as the global `uPlot` by system.html). DOM built with el(), never innerHTML.
import { loadSession } from "/static/js/session.js";

const REFRESH_MS = 5000;
const CHARTS = [  // one small chart per quantity, per pool
  { key: "clients", title: "clients", series: ["clients"] },
  { key: "queue", title: "queue and busy workers", series: ["queue", "busy", "workers"] },
  { key: "rps", title: "requests/s", series: ["rps"] },
  { key: "latency", title: "latency p50 / p99 (ms)", series: ["p50", "p99"] },
];
const COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700"];
const plots = new Map();  // "pool/chart" -> uPlot

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function showAlerts(alerts) {
  const list = document.getElementById("alerts");
  list.replaceChildren(...(alerts.length
    ? alerts.map((text) => el("li", { class: "alert" }, text))
    : [el("li", { class: "ok" }, "No alerts: every pool has workers and brokers, every " +
                                  "heartbeat is fresh.")]));
}

function showServices(services) {
  const body = document.querySelector("#services tbody");
  body.replaceChildren(...services.map((s) => el("tr", { dataset: { kind: s.kind } },
    el("td", {}, s.host), el("td", {}, s.kind), el("td", {}, s.pool || "-"),
    el("td", {}, s.kind === "worker" ? "-" : String(s.load)), el("td", {}, `${s.age} s ago`))));
}

function chartData(series, chart) {
  return [series.t, ...chart.series.map((name) => series[name])];
}

function drawPool(container, pool, series) {
  let box = container.querySelector(`[data-pool="${CSS.escape(pool)}"]`);
  if (!box) {
    box = el("div", { class: "pool", dataset: { pool } }, el("h3", {}, `pool ${pool}`));
    container.append(box);
  }
  for (const chart of CHARTS) {
    const id = `${pool}/${chart.key}`;
    const data = chartData(series, chart);
    const existing = plots.get(id);
    if (existing) { existing.setData(data); continue; }
    const holder = el("div", { class: "chart", dataset: { chart: chart.key } });
    box.append(holder);
    plots.set(id, new uPlot({
      title: chart.title, width: 400, height: 160,
      scales: { x: { time: true } },
      series: [{}, ...chart.series.map((label, i) => ({ label, stroke: COLORS[i] }))],
    }, data, holder));
  }
}

async function refresh() {
  const status = document.getElementById("system-status");
  try {
    const response = await fetch("/api/system", { credentials: "same-origin" });
    if (!response.ok) throw new Error(`main_server answered ${response.status}`);
    const data = await response.json();
    showAlerts(data.alerts);
    showServices(data.services);
    const pools = document.getElementById("pools");
    for (const [pool, series] of Object.entries(data.pools)) drawPool(pools, pool, series);
    status.textContent = `Updated ${new Date(data.now * 1000).toLocaleTimeString()}`;
    document.body.dataset.ready = "true";
  } catch (error) {
    status.textContent = `Cannot refresh: ${error.message}`;
  }
}

loadSession().then(() => {
  refresh();
  setInterval(refresh, REFRESH_MS);
});
