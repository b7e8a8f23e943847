// Alerts (templates/alerts/parts.html). The panel lists the open alerts, what needs someone
// first; chat and operator rows carry a badge; the page title counts the alerts nobody has
// acknowledged or snoozed. Buttons show only where the user may act (the server checks again).
// Says "live:alerts-synced" { rows, initial } for the signals (static/js/live/notifications.js).
import { WALLBOARD, emit, on, root } from "./page.js";
import { localise, now, num, when } from "./clock.js";
import { fillPortalTag } from "./portals.js";
import { tickRow } from "./ticks.js";

const ACT_PORTALS = (root ? root.dataset.actPortals || "" : "").split(",").filter(Boolean);
const SEVERITY_ORDER = { critical: 0, warning: 1, info: 2 };
const BASE_TITLE = document.title;
let alertIndex = {}; // row id ("chat-<pk>", "op-<pk>") -> [{ severity, attention, el }]
function alertList() { return document.getElementById("alerts-list"); }

// Open, snoozed (until its time is up) or acknowledged, as of now.
function effective(el, t) {
  const d = el.dataset;
  if (d.state === "acknowledged") return "acknowledged";
  if (d.state === "snoozed" && when(d.snoozedUntil) > t) return "snoozed";
  return "open";
}
function fitAlertRow(el, t) {
  const state = effective(el, t);
  if (el.dataset.effective !== state) el.dataset.effective = state;
  const may = !WALLBOARD && ACT_PORTALS.indexOf(el.dataset.portal) >= 0 ? "1" : "0";
  if (el.dataset.canAct !== may) el.dataset.canAct = may;
  if (!el._localised) { localise(el); el._localised = true; }
  fillPortalTag(el, el.dataset.portal);
  tickRow(el, t);
}
function compareAlerts(a, b) {
  const order = { open: 0, snoozed: 1, acknowledged: 2 };
  return (order[a.dataset.effective] - order[b.dataset.effective])
    || (num(SEVERITY_ORDER[a.dataset.severity]) - num(SEVERITY_ORDER[b.dataset.severity]))
    || (when(a.dataset.raised) - when(b.dataset.raised))
    || (Number(a.dataset.alert) - Number(b.dataset.alert));
}
export function syncAlerts(initial) {
  const list = alertList();
  if (!list) return;
  const t = now(), rows = Array.from(list.children).filter((el) => el.dataset.alert);
  rows.forEach((el) => fitAlertRow(el, t));
  const sorted = rows.slice().sort(compareAlerts);
  let same = sorted.length === list.children.length;
  for (let i = 0; same && i < sorted.length; i++) same = list.children[i] === sorted[i];
  if (!same) sorted.forEach((el) => list.appendChild(el));
  // Badges: for every row that has or had an alert.
  const index = {}, counts = { open: 0, snoozed: 0, acknowledged: 0 };
  sorted.forEach((el) => {
    const d = el.dataset, entry = { severity: d.severity, attention: d.effective === "open", el };
    counts[d.effective]++;
    if (d.chat) (index["chat-" + d.chat] = index["chat-" + d.chat] || []).push(entry);
    if (d.operatorRow) (index["op-" + d.operatorRow] = index["op-" + d.operatorRow] || []).push(entry);
  });
  const before = alertIndex;
  alertIndex = index;
  Object.keys(before).concat(Object.keys(index)).forEach((id) => {
    const row = document.getElementById(id);
    if (row) badge(row);
  });
  // The panel's words, its count and the page title.
  const panel = document.getElementById("alerts-panel");
  if (panel) {
    panel.dataset.empty = sorted.length ? "0" : "1";
    // The panel's edge: the worst severity still needing someone.
    const worst = sorted.filter((el) => el.dataset.effective === "open")[0];
    panel.dataset.attention = worst ? worst.dataset.severity : "";
    const parts = [];
    if (counts.open) parts.push(counts.open + (counts.open === 1 ? " needs" : " need") + " attention");
    if (counts.snoozed) parts.push(counts.snoozed + " snoozed");
    if (counts.acknowledged) parts.push(counts.acknowledged + " acknowledged");
    const words = parts.length ? parts.join(" · ") : "No open alerts.";
    const summary = panel.querySelector("[data-alerts-summary]");
    if (summary && summary.textContent !== words) summary.textContent = words;
    const count = panel.querySelector("[data-count='alerts']");
    const total = sorted.length ? String(sorted.length) : "";
    if (count && count.textContent !== total) count.textContent = total;
  }
  const title = counts.open ? "(" + counts.open + ") " + BASE_TITLE : BASE_TITLE;
  if (document.title !== title) document.title = title;
  emit("alerts-synced", { rows: sorted, initial });
  fitAlertList();
}
export function alertsShown() {
  return Array.from(document.querySelectorAll("#alerts-list > li[data-alert]"), (el) => el.id + ":" + el.dataset.effective);
}

// --- the alert panel's height: whole rows only, and how many more below (issue 12) ----------
// live.css gives the list a share of the window's height; it shows as many whole rows as fit in
// that share, so no row is cut at its edge and the chats and operators stay in view, and the
// panel's head says how many rows are below the edge (a click scrolls to them).
function fitAlertList() {
  const list = alertList(), more = document.querySelector("[data-alerts-more]");
  if (!list) return;
  list.style.maxHeight = "";
  const share = list.getBoundingClientRect().height;
  if (list.scrollHeight > list.clientHeight + 1) {
    const top = list.getBoundingClientRect().top - list.scrollTop;
    let fit = 0;
    for (const row of Array.from(list.children)) {
      if (!row.offsetHeight) continue;
      const bottom = row.getBoundingClientRect().bottom - top;
      if (bottom > share + 0.5) break;
      fit = bottom;
    }
    if (fit) list.style.maxHeight = Math.floor(fit) + "px";
  }
  countAlertsBelow(list, more);
}
function countAlertsBelow(list, more) {
  if (!more) return;
  const edge = list.getBoundingClientRect().bottom - 1;
  let below = 0;
  Array.from(list.children).forEach((row) => {
    if (row.offsetHeight && row.getBoundingClientRect().top >= edge) below++;
  });
  const words = below ? below + " more below ↓" : "";
  if (more.textContent !== words) more.textContent = words;
  more.hidden = !below;
}
// Every second: a snooze that ran out puts its alert back in front (and signals it again).
function tickAlerts(t) {
  const list = alertList();
  if (!list) return;
  let changed = false;
  Array.from(list.children).forEach((el) => {
    if (!el.dataset.alert) return;
    if (effective(el, t) !== el.dataset.effective) changed = true;
    tickRow(el, t);
  });
  if (changed) syncAlerts(false);
  document.querySelectorAll("#drawer .drawer-alerts-list > li[data-alert]").forEach((el) => fitAlertRow(el, t));
}
function fitDrawerAlerts() {
  const t = now();
  document.querySelectorAll("#drawer .drawer-alerts-list > li[data-alert]").forEach((el) => {
    el._localised = false;
    fitAlertRow(el, t);
  });
}
// An alert's title as its row reads now (the server renders it from the chat or operator as
// they are, with a clock that ticks here); data-title is the same words as rendered.
export function alertTitle(el) {
  const title = el.querySelector(".alert-title");
  return title ? title.textContent.replace(/\s+/g, " ").trim() : el.dataset.title || "";
}
function badgeTitle(entries) {
  return entries.map((e) => alertTitle(e.el)).join("\n");
}
// A chat's or an operator's row: a mark for its open alerts, in the worst one's tone; muted
// when each of them is acknowledged or snoozed.
function badge(row) {
  const entries = alertIndex[row.id];
  let mark = row.querySelector(".row-alert");
  if (!entries || !entries.length) {
    if (mark) mark.remove();
    if (row.dataset.alertLevel) delete row.dataset.alertLevel;
    return;
  }
  const worst = entries.slice().sort((a, b) =>
    (b.attention - a.attention) || (num(SEVERITY_ORDER[a.severity]) - num(SEVERITY_ORDER[b.severity])))[0];
  const level = worst.attention ? worst.severity : "quiet";
  if (row.dataset.alertLevel !== level) row.dataset.alertLevel = level;
  if (!mark) {
    mark = document.createElement("span");
    mark.className = "row-alert";
    const cell = row.querySelector(".c-visitor, .o-name");
    if (cell) cell.insertBefore(mark, cell.firstChild);
  }
  const text = entries.length > 1 ? String(entries.length) : "!";
  if (mark.textContent !== text) mark.textContent = text;
  mark.title = badgeTitle(entries);
  mark.setAttribute("aria-label", entries.length === 1 ? "1 open alert" : entries.length + " open alerts");
}

export function init() {
  document.addEventListener("scroll", (event) => {
    if (event.target && event.target.id === "alerts-list") countAlertsBelow(event.target, document.querySelector("[data-alerts-more]"));
  }, true);
  document.addEventListener("click", (event) => {
    if (!event.target.closest || !event.target.closest("[data-alerts-more]")) return;
    const list = alertList();
    if (list) list.scrollBy({ top: list.clientHeight, behavior: "smooth" });
  });
  let refitAlerts = 0;
  window.addEventListener("resize", () => {
    cancelAnimationFrame(refitAlerts);
    refitAlerts = requestAnimationFrame(fitAlertList);
  });
  // A badge's tooltip is read when the pointer reaches it: the figures in it are those of now.
  document.addEventListener("mouseover", (event) => {
    const mark = event.target.closest && event.target.closest(".row-alert");
    const row = mark && mark.closest("tr[id]"), entries = row && alertIndex[row.id];
    if (entries && entries.length) mark.title = badgeTitle(entries);
  });
  // Rows are replaced whole by the server: each adopted row gets its badge again.
  on("rows-changed", ({ els }) => { for (const el of els) badge(el); });
  on("alerts-changed", () => syncAlerts(false));
  on("drawer-alerts-changed", fitDrawerAlerts);
  on("tick", ({ t }) => tickAlerts(t));
}
