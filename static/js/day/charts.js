// The "Through the day" page (templates/figures/day.html): five charts per quarter hour, this
// day against the same weekday last week, drawn with the vendored uPlot from the JSON the page
// carries (dashboard/figures/day.py says what it holds), and the table of the day's totals.
//
// Live without a timer: the page listens to the live page's websocket for its portal
// (dashboard/realtime/consumers.py) and, when anything arrives, loads series.json again, at
// most once every 5 s (the last message of a burst is always followed by a load). The charts
// follow the theme (app.css's custom properties, read again when <html data-theme> or the
// system's scheme changes) and the width of their box.
import uPlot from "../../vendor/uplot/uPlot.esm.js";

const root = document.getElementById("day");
const source = document.getElementById("day-series");
const LOAD_EVERY = 5000; // ms: at most one series.json a window, the last one trailing
const NOTHING = "—";
const RECONNECT_CODES_STOP = {
  4401: "Live updates stopped: you are signed out. Load the page again.",
  4403: "Live updates stopped: this portal is not yours to see any more.",
  4410: "Live updates stopped: this portal was deleted.",
  4430: "Your access to this page has ended — sign in again.",
  4431: "Your access to this portal has ended.",
};

// What the tests (and a curious supervisor in the console) can read.
const stats = { messages: 0, loads: 0, draws: 0, state: "connecting" };
window.SupervisorDay = { stats, charts: {} };

let series = source ? JSON.parse(source.textContent) : null;
const charts = window.SupervisorDay.charts; // name -> uPlot

// --- words and numbers, written as the server writes them (dashboard/views/day.py) ---------

function duration(seconds) {
  return window.SupervisorTime ? window.SupervisorTime.duration(seconds) : Math.floor(seconds) + "s";
}
function shown(name, value) {
  if (value === null || value === undefined) return NOTHING;
  if (name === "service_level") return Math.floor(value) + " %";
  if (name === "answer_average" || name === "answer_p90") return duration(value);
  return String(value);
}
function shortDay(iso) {
  // "2026-12-03" -> "Thu 3 Dec", whatever the browser's zone (the day is the portal's).
  const [y, m, d] = iso.split("-").map(Number);
  const date = new Date(Date.UTC(y, m - 1, d));
  return date.toLocaleDateString("en-GB", { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" });
}

// --- the theme -----------------------------------------------------------------------------

function palette() {
  const style = getComputedStyle(document.documentElement);
  const read = (name, fallback) => (style.getPropertyValue(name) || "").trim() || fallback;
  return {
    ink: read("--ink", "#1c2430"),
    muted: read("--muted", "#5d6b7e"),
    line: read("--line", "#dde3ea"),
    brand: read("--brand", "#1f6feb"),
    ok: read("--ok", "#1a7f37"),
    warn: read("--warn", "#9a6700"),
    bad: read("--bad", "#c62828"),
    surface: read("--surface", "#ffffff"),
    font: getComputedStyle(document.body).fontFamily || "system-ui, sans-serif",
  };
}
// A colour at part strength (last week's lines sit back). app.css writes these as #rrggbb;
// anything else is used as it is.
function faded(colour, percent) {
  const hex = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(colour);
  if (!hex) return colour;
  const digits = hex[1].length === 3 ? hex[1].replace(/./g, "$&$&") : hex[1];
  const [r, g, b] = [0, 2, 4].map((i) => parseInt(digits.slice(i, i + 2), 16));
  return `rgba(${r}, ${g}, ${b}, ${percent / 100})`;
}

// --- the charts ----------------------------------------------------------------------------

const COUNT = (v) => String(Math.round(v));
const CHARTS = {
  offered: { kind: "count", lines: [["offered", "brand"]] },
  answered: { kind: "count", lines: [["answered", "ok"]] },
  missed: { kind: "count", lines: [["missed", "bad"], ["abandoned", "warn"]] },
  service_level: { kind: "level", lines: [["service_level", "brand"]] },
  answer_average: { kind: "seconds", lines: [["answer_average", "brand"]] },
};
const NAMES = { offered: "Offered", answered: "Answered", missed: "Missed", abandoned: "Abandoned", service_level: "Service level", answer_average: "Average answer time" };

function columns(name) {
  const quarters = series.quarters;
  const data = [quarters.map((_, i) => i)];
  for (const [figure] of CHARTS[name].lines) {
    data.push(quarters.map((q) => (q.figures ? q.figures[figure] : null)));
    data.push(quarters.map((q) => (q.last_week ? q.last_week[figure] : null)));
  }
  if (name === "service_level") data.push(quarters.map(() => series.target.share));
  if (name === "answer_average") data.push(quarters.map(() => series.target.seconds));
  return data;
}

// The hours to write under the x axis: every 1, 2, 3, 4, 6 or 12 hours, as the width allows.
function hourSplits(u) {
  const labels = series.labels;
  const width = u.bbox.width / (window.devicePixelRatio || 1);
  const hours = labels.filter((l) => l.endsWith(":00")).length || 24;
  const step = [1, 2, 3, 4, 6, 12].find((s) => width / (hours / s) >= 44) || 12;
  const splits = [];
  labels.forEach((label, i) => {
    if (label.endsWith(":00") && Number(label.slice(0, 2)) % step === 0) splits.push(i);
  });
  return splits;
}

function yRange(kind) {
  return (u, min, max) => {
    if (kind === "level") return [0, 100];
    const top = Math.max(max || 0, kind === "seconds" ? series.target.seconds : 0);
    if (kind === "seconds") return [0, Math.max(30, Math.ceil((top * 1.15) / 30) * 30)];
    return [0, Math.max(4, Math.ceil(top * 1.15))];
  };
}

function options(name, width, colours) {
  const chart = CHARTS[name];
  const thisDay = shortDay(series.day), before = shortDay(series.last_week_day);
  const value = chart.kind === "level" ? (u, v) => shown("service_level", v)
    : chart.kind === "seconds" ? (u, v) => shown("answer_average", v)
    : (u, v) => (v === null || v === undefined ? NOTHING : COUNT(v));
  const sparse = chart.kind !== "count"; // gaps between judged quarters: show each point
  const lines = [];
  for (const [figure, hue] of chart.lines) {
    const many = chart.lines.length > 1;
    lines.push({
      label: many ? `${NAMES[figure]}, ${thisDay}` : thisDay,
      stroke: colours[hue], width: 2, value, spanGaps: false,
      points: { show: sparse, size: 5, fill: colours[hue], stroke: colours[hue] },
    });
    lines.push({
      label: many ? `${NAMES[figure]}, ${before}` : before,
      stroke: faded(many ? colours[hue] : colours.muted, 75), width: 1.5, dash: [5, 4], value, spanGaps: false,
      points: { show: sparse, size: 4, fill: colours.surface, stroke: faded(many ? colours[hue] : colours.muted, 75) },
    });
  }
  if (chart.kind === "level" || chart.kind === "seconds") {
    lines.push({
      label: chart.kind === "level" ? `Target ${series.target.share} %` : `Target ${duration(series.target.seconds)}`,
      stroke: colours.warn, width: 1, dash: [2, 3], value, points: { show: false },
    });
  }
  const axis = { stroke: colours.muted, font: `11px ${colours.font}`, grid: { stroke: colours.line, width: 1 }, ticks: { stroke: colours.line, width: 1, size: 4 } };
  const narrow = width < 480;
  return {
    width,
    height: narrow ? 170 : 200,
    padding: [8, 8, 0, 0],
    cursor: { points: { size: 6 }, drag: { x: false, y: false } },
    legend: { live: true },
    scales: { x: { time: false, range: [0, Math.max(1, series.quarters.length - 1)] }, y: { range: yRange(chart.kind) } },
    series: [{ label: "Time", value: (u, i) => (i === null || i === undefined ? NOTHING : series.labels[i] || NOTHING) }, ...lines],
    axes: [
      { ...axis, size: 26, splits: hourSplits, values: (u, splits) => splits.map((i) => series.labels[i] || ""), grid: { ...axis.grid, show: true } },
      {
        ...axis,
        size: chart.kind === "seconds" ? 56 : 44,
        incrs: chart.kind === "level" ? [20, 25, 50] : chart.kind === "seconds" ? [15, 30, 60, 120, 300, 600, 900, 1800, 3600] : [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000],
        values: (u, splits) => splits.map((v) => (chart.kind === "level" ? v + " %" : chart.kind === "seconds" ? duration(v) : COUNT(v))),
      },
    ],
  };
}

function boxOf(name) { return root.querySelector(`[data-chart="${name}"]`); }

function draw(name, colours) {
  const box = boxOf(name);
  if (!box || !box.clientWidth) return;
  if (charts[name]) charts[name].destroy();
  colours = colours || palette();
  window.SupervisorDay.palette = colours;
  charts[name] = new uPlot(options(name, box.clientWidth, colours), columns(name), box);
  stats.draws++;
}
function drawAll() {
  const colours = palette();
  Object.keys(CHARTS).forEach((name) => draw(name, colours));
}
function update() {
  Object.keys(CHARTS).forEach((name) => {
    if (charts[name] && charts[name].data[0].length === series.quarters.length) charts[name].setData(columns(name));
    else draw(name);
  });
}

// --- the table and the words ---------------------------------------------------------------

function writeTotals() {
  root.querySelectorAll("[data-total]").forEach((row) => {
    const name = row.dataset.total;
    for (const side of ["figures", "last_week"]) {
      const cell = row.querySelector(`[data-side="${side}"]`);
      const totals = series.totals[side];
      const text = totals ? shown(name, totals[name]) : NOTHING;
      if (cell && cell.textContent !== text) cell.textContent = text;
    }
  });
}
function showOrHide() {
  const body = root.querySelector("[data-day-body]"), empty = root.querySelector("[data-day-empty]");
  if (!body) return false;
  body.hidden = !series.has_figures;
  if (empty) empty.hidden = series.has_figures;
  return series.has_figures;
}

// --- loading again when the portal changes ------------------------------------------------

// The server's time of the figures shown (epoch ms): the websocket's "since".
let lastLoad = 0, loadTimer = null, shownAt = series ? Date.parse(series.now) : 0;
function soon() {
  if (loadTimer) return; // a load is due already: it will read this change too
  loadTimer = setTimeout(() => { loadTimer = null; load(); }, Math.max(0, lastLoad + LOAD_EVERY - Date.now()));
}
async function load() {
  lastLoad = Date.now();
  stats.loads++;
  let response;
  try {
    response = await fetch(root.dataset.seriesUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
  } catch (e) {
    setLive("closed", "The figures could not be loaded; trying again with the next change.");
    return;
  }
  if (response.status === 401 || response.status === 403 || response.status === 404 || response.redirected) {
    stop("The figures can no longer be loaded here. Load the page again.");
    return;
  }
  if (!response.ok) return;
  const fresh = await response.json();
  shownAt = Date.parse(fresh.now) || shownAt;
  if (fresh.day !== series.day) { window.location.reload(); return; } // past midnight: a new day
  series = fresh;
  writeTotals();
  const wasHidden = Object.keys(charts).length === 0;
  if (showOrHide()) (wasHidden ? drawAll() : update());
  setLive("open");
}

// Something changed for the portal: load the figures again (soon, not at every message).
function heard() {
  stats.messages++;
  soon();
}
window.SupervisorDay.heard = heard;

// --- the websocket -------------------------------------------------------------------------

let socket = null, retry = 0, stopped = false;
function setLive(state, words) {
  stats.state = state;
  const el = root.querySelector("[data-day-live]");
  if (!el) return;
  el.dataset.state = state;
  const text = words || (state === "open" ? "Live" : state === "closed" ? "Reconnecting…" : state === "ended" ? "Not live" : "Connecting…");
  const holder = el.querySelector("[data-day-live-words]");
  if (holder.textContent !== text) holder.textContent = text;
}
function stop(words) {
  stopped = true;
  setLive("ended", words);
  if (socket) socket.close();
}
function connect() {
  const address = new URL(root.dataset.ws, window.location.href);
  address.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
  // Since the last load: the server sends the live page's snapshot only if anything changed.
  if (shownAt) address.searchParams.set("since", String(shownAt));
  socket = new WebSocket(address.href);
  socket.addEventListener("open", () => { retry = 0; setLive("open"); });
  socket.addEventListener("message", heard);
  socket.addEventListener("close", (event) => {
    if (stopped) return;
    if (RECONNECT_CODES_STOP[event.code]) { stop(RECONNECT_CODES_STOP[event.code]); return; }
    setLive("closed");
    const delay = Math.min(30000, 500 * Math.pow(2, retry++)) * (0.5 + Math.random() / 2);
    setTimeout(connect, delay);
  });
}

// --- start ---------------------------------------------------------------------------------

function watchTheme() {
  new MutationObserver(() => drawAll()).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  if (window.matchMedia) {
    const scheme = window.matchMedia("(prefers-color-scheme: dark)");
    if (scheme.addEventListener) scheme.addEventListener("change", () => drawAll());
  }
}
function watchWidth() {
  let pending = null;
  const sized = new ResizeObserver(() => {
    if (pending) return;
    pending = requestAnimationFrame(() => {
      pending = null;
      Object.keys(CHARTS).forEach((name) => {
        const box = boxOf(name), chart = charts[name];
        if (!box || !box.clientWidth) return;
        if (!chart) { draw(name); return; }
        if (chart.width !== box.clientWidth) chart.setSize({ width: box.clientWidth, height: box.clientWidth < 480 ? 170 : 200 });
      });
    });
  });
  Object.keys(CHARTS).forEach((name) => { const box = boxOf(name); if (box) sized.observe(box); });
}

if (root && series) {
  if (showOrHide()) drawAll();
  watchTheme();
  watchWidth();
  if (root.dataset.ws) connect();
}
