// The wallboard (templates/live/page.html with ?wallboard=1; static/css/live.css "Wallboard, rebuilt
// for a wall"): one screen read from across the room, made of the live page's own pieces as the
// websocket pushes them. This module only decides what fits on the screen and says what does not:
//
//   departments  the queue rows are tiles, worst first (queues.js keeps the server's order); when
//                they do not all fit, they show a page at a time, turning every 10 s, and the
//                panel says "page 2 of 3". Everything fits: no pages, no turning.
//   waits        the waiting visitors, longest first (tables.js keeps the order), as many as fit
//                whole, then "and 34 more waiting" (or that nobody else is).
//   alerts       those needing attention, worst first (alerts.js keeps the order), as many as fit
//                on one strip, then "+3 more".
//   day          today's service level per quarter hour against the same weekday last week, for
//                the first portal shown (dashboard/views/day.py series.json), loaded again when
//                the websocket brings a message, at most once every 30 s; never on a timer.
//
// A tile, a visitor or an alert left out for now carries data-wall-off (live.css hides it); the
// counts are of the rows the page holds, never estimated. Imported by main.js on a wallboard only.
import uPlot from "../../vendor/uplot/uPlot.esm.js";
import { on } from "./page.js";
import { now } from "./clock.js";
import { tickRow } from "./ticks.js";
import { chats } from "./tables.js";

const TURN_EVERY = 10000; // ms a page of departments stays before the next one
const DAY_LOAD_EVERY = 30000; // ms: at most one series.json a window, the last change trailing

const stats = { turns: 0, fits: 0, dayLoads: 0, dayDraws: 0 };

function off(el, left) {
  if (left) { if (!el.hasAttribute("data-wall-off")) el.setAttribute("data-wall-off", ""); }
  else if (el.hasAttribute("data-wall-off")) el.removeAttribute("data-wall-off");
}
function say(el, text) { if (el && el.textContent !== text) el.textContent = text; }
// The bottom edge of what a box shows (its border box less the border and a scroll bar).
function shownBottom(box) { return box.getBoundingClientRect().top + box.clientTop + box.clientHeight; }

// --- departments: pages of tiles -------------------------------------------------------------

// Below this width the wallboard is a page that scrolls (live.css): tiles keep their usual size.
const WIDE = window.matchMedia("(min-width: 981px)");
const LARGE_AT_MOST = 6; // departments: more than this never fit at the larger size
const departments = { page: 0, pages: 1, perPage: 0, count: 0, turnedAt: Date.now() };

function tiles() {
  const body = document.getElementById("queues-body");
  return body ? Array.from(body.children).filter((row) => row.id) : [];
}
// Tiles are alike (one line of each thing, whatever the department), so one tile laid out and the
// grid's columns tell how many make a page: no need to lay out 50 of them at every change.
function capacity(body, wrap) {
  const sample = Array.from(body.children).find((row) => row.id && !row.hasAttribute("data-wall-off"));
  if (!sample) return 1;
  const style = getComputedStyle(body), inner = getComputedStyle(wrap);
  const columns = style.gridTemplateColumns.split(" ").filter(Boolean).length || 1;
  const gap = parseFloat(style.rowGap) || 0;
  const room = shownBottom(wrap) - (parseFloat(inner.paddingBottom) || 0) - body.getBoundingClientRect().top;
  const rows = Math.max(1, Math.floor((room + gap + 0.5) / (sample.getBoundingClientRect().height + gap)));
  return columns * rows;
}
function setSize(body, size) {
  if ((body.dataset.size || "") === size) return;
  if (size) body.dataset.size = size;
  else delete body.dataset.size;
}
function fitDepartments() {
  const rows = tiles(), wrap = document.querySelector("#queues-panel .queues-wrap");
  const label = document.querySelector("[data-wall-pages]");
  const body = document.getElementById("queues-body");
  if (!body) return;
  // A tile the server just replaced comes without its mark: the page shown stays as it was.
  if (departments.perPage) showPage(rows, null);
  if (rows.length && !rows.some((row) => !row.hasAttribute("data-wall-off"))) off(rows[0], false);
  let perPage = rows.length;
  // Larger tiles while they all fit so (a wall of a few departments), else the usual size.
  for (const size of WIDE.matches && rows.length <= LARGE_AT_MOST ? ["large", ""] : [""]) {
    setSize(body, size);
    if (!wrap || !rows.length) break;
    perPage = capacity(body, wrap);
    if (perPage >= rows.length) break;
  }
  const pages = Math.max(1, Math.ceil(rows.length / Math.max(1, perPage)));
  if (pages > 1 && departments.pages === 1) departments.turnedAt = Date.now();
  Object.assign(departments, { perPage, pages, count: rows.length, page: Math.min(departments.page, pages - 1) });
  showPage(rows, label);
  // Should a tile be taller than the one measured, fewer a page rather than one cut.
  const edge = wrap ? shownBottom(wrap) + 0.5 : Infinity;
  while (departments.perPage > 1 && rows.some((row) => !row.hasAttribute("data-wall-off") && row.getBoundingClientRect().bottom > edge)) {
    departments.perPage--;
    departments.pages = Math.ceil(rows.length / departments.perPage);
    departments.page = Math.min(departments.page, departments.pages - 1);
    showPage(rows, label);
  }
}
function showPage(rows, label) {
  const { page, pages, perPage } = departments, first = page * perPage;
  rows.forEach((row, i) => off(row, pages > 1 && (i < first || i >= first + perPage)));
  say(label, pages > 1 ? "page " + (page + 1) + " of " + pages : "");
  if (label) label.title = pages > 1
    ? "Departments " + (first + 1) + " to " + Math.min(rows.length, first + perPage) + " of " + rows.length + ", worst first; the next page in 10 seconds"
    : "";
}
export function turn() {
  if (departments.pages < 2) return;
  departments.page = (departments.page + 1) % departments.pages;
  departments.turnedAt = Date.now();
  stats.turns++;
  showPage(tiles(), document.querySelector("[data-wall-pages]"));
}

// --- the longest waits ----------------------------------------------------------------------

const waits = { waiting: 0, shown: 0, rows: [], lowest: 0 };

function fitWaits() {
  const body = document.getElementById("chats-body"), wrap = body && body.closest(".table-wrap");
  const more = document.querySelector("[data-wall-more='chats']");
  if (!body || !wrap) return;
  // In the page's order (longest wait first, tables.js); rows the filters hide do not count.
  const rows = [];
  for (const rec of chats.order) if (rec.visible && rec.status === "waiting") rows.push(rec.el);
  // As many as fitted last time, then fewer or more, a row at a time: a message changes one or
  // two rows, so this lays out one or two (at 2,000 visitors the rest stay out of layout).
  let shown = Math.min(Math.max(1, waits.shown), rows.length);
  rows.forEach((row, i) => off(row, i >= shown));
  const edge = shownBottom(wrap) + 0.5;
  const bottom = (i) => (i < 0 ? body.getBoundingClientRect().top : rows[i].getBoundingClientRect().bottom);
  while (shown > 0 && bottom(shown - 1) > edge) off(rows[--shown], true);
  for (let i = 0; i < shown; i++) {
    const height = rows[i].offsetHeight;
    if (height && (!waits.lowest || height < waits.lowest)) waits.lowest = height;
  }
  // No row is lower than the lowest seen: with less room than that left, none more fits.
  while (shown < rows.length && edge - bottom(shown - 1) >= (waits.lowest || 1)) {
    off(rows[shown], false);
    if (bottom(shown) > edge) { off(rows[shown], true); break; }
    shown++;
  }
  waits.waiting = rows.length;
  waits.shown = shown;
  waits.rows = rows.slice(0, shown);
  const left = rows.length - shown;
  let text;
  if (!rows.length) text = "Nobody is waiting.";
  else if (left) text = "and " + left.toLocaleString() + " more waiting";
  else text = rows.length === 1 ? "The only visitor waiting." : "All " + rows.length + " waiting visitors are shown.";
  say(more, text);
  if (more) more.dataset.more = String(left);
  tickWaits(now());
}
function tickWaits(t) {
  for (const row of waits.rows) if (row.isConnected) tickRow(row, t);
}

// --- the alerts strip -----------------------------------------------------------------------

const strip = { open: 0, shown: 0 };

function fitAlerts() {
  const list = document.getElementById("alerts-list"), more = document.querySelector("[data-wall-more='alerts']");
  if (!list) return;
  const open = Array.from(list.children).filter((el) => el.dataset.alert && el.dataset.effective === "open");
  // Counted at their natural width (live.css lets those shown share the strip afterwards).
  list.removeAttribute("data-fitted");
  open.forEach((el) => off(el, false));
  say(more, "");
  // Again once the "+N more" at the strip's end took its room (a pass or two).
  let shown = open.length;
  for (let pass = 0; pass < 3; pass++) {
    const edge = list.getBoundingClientRect().right + 0.5;
    let fit = 0;
    for (const el of open) {
      if (el.hasAttribute("data-wall-off") || el.getBoundingClientRect().right > edge) break;
      fit++;
    }
    // An alert wider than the whole strip still shows (its title is cut short, not left out).
    if (!fit && open.length && !open[0].hasAttribute("data-wall-off")) fit = 1;
    open.forEach((el, i) => off(el, i >= fit));
    const left = open.length - fit;
    say(more, left ? "+" + left + " more" : "");
    if (more) more.title = left ? left + " more alert" + (left === 1 ? " needs" : "s need") + " attention" : "";
    if (fit === shown) break;
    shown = fit;
  }
  list.setAttribute("data-fitted", "");
  strip.open = open.length;
  strip.shown = Math.min(shown, open.length);
}

// --- the day's service level ----------------------------------------------------------------

const dayPanel = document.getElementById("wall-day");
const day = { series: null, chart: null, lastLoad: 0, timer: null, problem: "" };

function palette() {
  const style = getComputedStyle(document.documentElement);
  const read = (name, fallback) => (style.getPropertyValue(name) || "").trim() || fallback;
  return {
    ink: read("--ink", "#1c2430"), muted: read("--muted", "#5d6b7e"), line: read("--line", "#dde3ea"),
    brand: read("--brand", "#1f6feb"), warn: read("--warn", "#9a6700"),
    font: getComputedStyle(document.body).fontFamily || "system-ui, sans-serif",
    size: Math.round(parseFloat(getComputedStyle(document.documentElement).fontSize) * 0.8),
  };
}
function dayColumns(series) {
  const quarters = series.quarters;
  const level = (side) => quarters.map((q) => (q[side] && q[side].service_level !== undefined ? q[side].service_level : null));
  return [quarters.map((_, i) => i), level("figures"), level("last_week"), quarters.map(() => series.target.share)];
}
function dayOptions(series, box, colours) {
  const labels = series.labels;
  const axis = { stroke: colours.muted, font: `${colours.size}px ${colours.font}`, grid: { stroke: colours.line, width: 1 }, ticks: { stroke: colours.line, width: 1, size: 4 } };
  const width = box.clientWidth, height = box.clientHeight;
  return {
    width, height, padding: [colours.size, 12, 0, 0],
    legend: { show: false }, cursor: { show: false },
    scales: { x: { time: false, range: [0, Math.max(1, labels.length - 1)] }, y: { range: [0, 100] } },
    series: [
      {},
      // Points as well as the line: a quarter between two unjudged ones is a point alone.
      { stroke: colours.brand, width: 3, spanGaps: false, points: { show: true, size: 7, fill: colours.brand, stroke: colours.brand } },
      { stroke: colours.muted, width: 1.5, dash: [6, 5], spanGaps: false, points: { show: false } },
      { stroke: colours.warn, width: 1.5, dash: [2, 4], points: { show: false } },
    ],
    axes: [
      {
        ...axis, size: colours.size * 2,
        // Every 3, 4 or 6 hours, as the width allows.
        splits: (u) => {
          const wide = u.bbox.width / (window.devicePixelRatio || 1);
          const hours = labels.filter((l) => l.endsWith(":00")).length || 24;
          const step = [3, 4, 6, 12].find((s) => wide / (hours / s) >= colours.size * 5) || 12;
          const at = [];
          labels.forEach((l, i) => { if (l.endsWith(":00") && Number(l.slice(0, 2)) % step === 0) at.push(i); });
          return at;
        },
        values: (u, splits) => splits.map((i) => labels[i] || ""),
      },
      { ...axis, size: colours.size * 4.4, incrs: [25, 50], values: (u, splits) => splits.map((v) => v + " %") },
    ],
  };
}
function drawDay() {
  const box = dayPanel && dayPanel.querySelector("[data-wall-day-chart]");
  if (!box || !day.series || !box.clientWidth || !box.clientHeight) return;
  if (day.chart) day.chart.destroy();
  day.chart = new uPlot(dayOptions(day.series, box, palette()), dayColumns(day.series), box);
  stats.dayDraws++;
}
function writeDay() {
  const series = day.series, note = dayPanel.querySelector("[data-wall-day-note]");
  const target = dayPanel.querySelector("[data-wall-day-target]");
  if (!series) { say(note, day.problem || "Loading the day's figures…"); return; }
  // No total of the day here: the tiles' "service today" counts the visitors waiting past the
  // target now as well, and a second figure for the same words would read as a contradiction.
  say(target, "target " + series.target.share + " %");
  say(note, day.problem || (series.has_figures ? "" : "No chats yet today or on the same day last week."));
}
async function loadDay() {
  day.lastLoad = Date.now();
  stats.dayLoads++;
  let response;
  try {
    response = await fetch(dayPanel.dataset.seriesUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
  } catch (failure) {
    day.problem = "The day's figures could not be loaded; trying again with the next change.";
    writeDay();
    return;
  }
  if (!response.ok || response.redirected) {
    day.problem = "The day's figures could not be loaded (the server answered " + response.status + "); trying again with the next change.";
    writeDay();
    return;
  }
  const fresh = await response.json();
  const reshaped = !day.series || day.series.labels.length !== fresh.labels.length || day.series.day !== fresh.day;
  day.series = fresh;
  day.problem = "";
  writeDay();
  if (reshaped || !day.chart) drawDay();
  else day.chart.setData(dayColumns(fresh));
}
// A message arrived: load again now, or when the 30 s since the last load are over.
function dayHeard() {
  if (!dayPanel || day.timer) return;
  day.timer = setTimeout(() => { day.timer = null; loadDay(); }, Math.max(0, day.lastLoad + DAY_LOAD_EVERY - Date.now()));
}

// --- all of it ------------------------------------------------------------------------------

function fitAll() {
  stats.fits++;
  fitDepartments();
  fitWaits();
  fitAlerts();
}
let pending = 0;
function fitSoon() {
  cancelAnimationFrame(pending);
  pending = requestAnimationFrame(() => {
    waits.lowest = 0; // the type may have changed size with the window
    fitAll();
    const box = dayPanel && dayPanel.querySelector("[data-wall-day-chart]");
    if (day.chart && box && (day.chart.width !== box.clientWidth || day.chart.height !== box.clientHeight)) {
      drawDay(); // afresh: its type follows the window's size too
    }
  });
}

// Placed in order by the modules that keep it (their handlers ran first: they were registered
// when main.js loaded), then fitted here before the browser paints.
on("queues-changed", fitDepartments);
on("message-applied", fitWaits);
on("filters-changed", fitWaits);
on("alerts-synced", fitAlerts);
on("socket-message", dayHeard);
on("tick", ({ t }) => {
  tickWaits(t);
  if (departments.pages > 1 && Date.now() - departments.turnedAt >= TURN_EVERY) turn();
});
// A banner that comes or goes, a window resized: the room changed.
const wall = document.getElementById("wall");
if (wall && window.ResizeObserver) {
  const watched = new ResizeObserver(fitSoon);
  watched.observe(wall);
  ["#queues-panel .queues-wrap", "#chats-panel .table-wrap", "#alerts-list"].forEach((selector) => {
    const el = document.querySelector(selector);
    if (el) watched.observe(el);
  });
}
// "Longest waits" whatever sort the address carries (a wallboard link made from a sorted page).
if (chats.sort !== "wait" || chats.dir !== 1) {
  chats.sort = "wait";
  chats.dir = 1;
  chats.resort();
}
if (dayPanel) {
  new MutationObserver(drawDay).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  writeDay();
  loadDay();
}
fitAll();

// For the browser tests and for a curious person at the console: read-only views, and a turn.
window.SupervisorWall = {
  stats,
  departments: () => Object.assign({}, departments),
  waits: () => ({ waiting: waits.waiting, shown: waits.shown }),
  alerts: () => Object.assign({}, strip),
  day: () => ({ loaded: !!day.series, drawn: !!day.chart, problem: day.problem }),
  turn,
};
