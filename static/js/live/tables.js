// The chats and operators tables: kept sorted and filtered by the rows' data-* attributes alone
// (templates/live/parts.html chat_row, operator_row), never their text.
//
// Cost at 2,000 chats: a message touches a handful of rows, and each is placed by binary
// insertion into the kept order (no full re-sort); a full sort happens only on a snapshot or
// when the user picks another sort. Clocks tick only in rows on screen.
//
// Says "live:rows-changed" { table, els } after it adopted rows (els: the rows it read).
import { collator, emit, on, stats } from "./page.js";
import { now, num, when } from "./clock.js";
import { fillPortalTag } from "./portals.js";
import { tickRow } from "./ticks.js";

// --- filters and sorts, kept in the address so a wallboard link can carry them ---------------
export const FILTERS = ["department", "operator", "status", "presence"];
const params = new URLSearchParams(window.location.search);
export const filters = {};
FILTERS.forEach((name) => { filters[name] = params.get(name) || ""; });

const operatorNames = {}; // "portal:SalesIQ id" -> name, from the operator rows

class Table {
  constructor(options) {
    Object.assign(this, options);
    this.dir = 1;
    this.records = new Map(); // row id -> record
    this.order = []; // records in display order (hidden rows included)
    this.visible = 0;
    this.headers = document.querySelectorAll("#" + options.tableId + " th[data-sort]");
  }
  body() { return document.getElementById(this.bodyId); }
  keyOf(rec) { return this.sorts[this.sort].key(rec); }
  // A sort may say which parts of its key the direction turns round (`turns`, default all):
  // the column's own figure turns, the rows without one stay after those with one.
  compare(a, b) {
    const ka = a.key, kb = b.key, turns = this.sorts[this.sort].turns;
    for (let i = 0; i < ka.length; i++) {
      const x = ka[i], y = kb[i];
      let c;
      if (typeof x === "string") c = collator.compare(x, y);
      else c = x === y ? 0 : x < y ? -1 : 1; // Infinity (unknown times) sorts last
      if (c) return turns && turns.indexOf(i) < 0 ? c : c * this.dir;
    }
    return a.pk - b.pk;
  }
  // The rows inside the panel's scrolled view: a binary search over the shown rows by their
  // boxes (read before anything is written in a tick, so no forced layout), then a short walk.
  onScreen() {
    const body = this.body(), wrap = body && body.closest(".table-wrap");
    if (!wrap) return [];
    const view = wrap.getBoundingClientRect();
    const top = Math.max(view.top, 0), bottom = Math.min(view.bottom, window.innerHeight);
    const shown = [];
    for (const rec of this.order) if (rec.visible) shown.push(rec.el);
    let lo = 0, hi = shown.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (shown[mid].getBoundingClientRect().bottom <= top) lo = mid + 1;
      else hi = mid;
    }
    const rows = [];
    for (let i = lo; i < shown.length; i++) {
      if (shown[i].getBoundingClientRect().top >= bottom) break;
      rows.push(shown[i]);
    }
    return rows;
  }
  show(rec) {
    rec.visible = this.passes(rec);
    if (rec.el.hidden === rec.visible) rec.el.hidden = !rec.visible;
  }
  adopt(el) {
    const rec = this.parse(el);
    rec.el = el;
    rec.id = el.id;
    rec.key = this.keyOf(rec);
    fillPortalTag(el, rec.portal);
    if (this.name === "operators") {
      operatorNames[rec.portal + ":" + rec.remote] = rec.name;
    } else {
      const fill = rec.operator && !rec.operatorName && el.querySelector("[data-operator-fill]");
      if (fill && operatorNames[rec.operator]) {
        // Some SalesIQ dialects name only the operator's id on a chat: show the name the page knows.
        rec.operatorName = operatorNames[rec.operator];
        fill.textContent = rec.operatorName;
        fill.classList.remove("muted");
        rec.key = this.keyOf(rec);
      }
    }
    return rec;
  }
  // Every row again: after a snapshot replaced the body.
  rebuild() {
    const body = this.body();
    if (!body) return;
    this.records.clear();
    const recs = [];
    for (const row of Array.from(body.children)) {
      if (!row.id) continue;
      const rec = this.adopt(row);
      recs.push(rec);
      this.records.set(rec.id, rec);
    }
    this.order = recs;
    this.resort();
    for (const rec of recs) this.show(rec);
    emit("rows-changed", { table: this.name, els: recs.map((rec) => rec.el) });
  }
  // A full sort: on a snapshot, or when the user picks another sort.
  resort() {
    const body = this.body();
    this.order.forEach((rec) => { rec.key = this.keyOf(rec); });
    this.order.sort((a, b) => this.compare(a, b));
    stats.fullSorts++;
    const rows = body.children;
    let same = rows.length === this.order.length;
    for (let i = 0; same && i < rows.length; i++) same = rows[i] === this.order[i].el;
    if (!same) {
      const fragment = document.createDocumentFragment();
      this.order.forEach((rec) => fragment.appendChild(rec.el));
      body.appendChild(fragment);
    }
    this.headers.forEach((th) => {
      const picks = headerSorts(th), active = picks.indexOf(this.sort) >= 0, sort = this.sorts[this.sort];
      const says = this.sorts[active ? this.sort : picks[0]]; // what the order is, or would be
      if (says && says.title && th.title !== says.title) th.title = says.title;
      if (!active || !sort) { th.removeAttribute("aria-sort"); delete th.dataset.dir; return; }
      th.dataset.dir = this.dir < 0 ? "reverse" : "natural";
      let aria = sort.aria;
      if (this.dir < 0 && aria !== "other") aria = aria === "ascending" ? "descending" : "ascending";
      th.setAttribute("aria-sort", aria);
    });
  }
  // First index whose record sorts after rec (binary search over the kept order).
  slotFor(rec) {
    let lo = 0, hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.compare(this.order[mid], rec) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  // The rows a message replaced, added or deleted: take them all out of the kept order first
  // (a row deleted by the same message must not serve as anyone's neighbour), then put each
  // one back where it belongs, filtered and ticking.
  placeAll(ids) {
    ids.forEach((id) => {
      const old = this.records.get(id);
      if (!old) return;
      const at = this.order.indexOf(old);
      if (at >= 0) this.order.splice(at, 1);
      this.records.delete(id);
    });
    const els = [];
    ids.forEach((id) => { const el = this.place(id); if (el) els.push(el); });
    emit("rows-changed", { table: this.name, els });
  }
  place(id) {
    const el = document.getElementById(id), body = this.body();
    if (!el || !body || el.parentNode !== body) return null; // deleted
    const rec = this.adopt(el);
    const slot = this.slotFor(rec), next = this.order[slot];
    this.order.splice(slot, 0, rec);
    this.records.set(id, rec);
    const nextEl = next ? next.el : null;
    if (el.nextElementSibling !== nextEl) body.insertBefore(el, nextEl);
    stats.rowsPlaced++;
    this.show(rec);
    if (rec.visible) tickRow(el, now());
    return el;
  }
  refilter() {
    for (const rec of this.order) this.show(rec);
  }
  count() {
    let n = 0;
    for (const rec of this.order) if (rec.visible) n++;
    this.visible = n;
    return n;
  }
}
// The sorts a header's button picks: one (clicking again reverses it), or several that a
// click goes through in turn (data-sorts).
export function headerSorts(th) { return (th.dataset.sorts || th.dataset.sort).split(" "); }

// --- chats ---------------------------------------------------------------------------------
// The Waiting column shows a waiting chat's wait for pickup; the Unanswered column a connected
// chat's last visitor message without a reply. Each sorts by exactly that, the longest first,
// and puts the rows with an empty cell after, in the order of the other. Where each starts is
// the server's (data-waiting-since, data-unanswered-since: dashboard.models.Chat.waited_since,
// Chat.unanswered_since), the same moment the row's clocks count from.
function waitPart(rec) { return rec.status === "waiting" ? [0, num(rec.waitingSince)] : [1, 0]; }
function unansweredPart(rec) { return isNaN(rec.unansweredSince) ? [1, 0] : [0, rec.unansweredSince]; }
// The page's own order: waiting visitors, then unanswered ones, then the oldest chats.
function waitKey(rec) { return waitPart(rec).concat(unansweredPart(rec), [num(rec.started)]); }
const CHAT_SORTS = {
  wait: { aria: "descending", turns: [1], key: waitKey },
  unanswered: { aria: "descending", turns: [1], key: (r) => unansweredPart(r).concat(waitPart(r), [num(r.started)]) },
  visitor: { aria: "ascending", key: (r) => [r.visitor].concat(waitKey(r)) },
  operator: { aria: "ascending", key: (r) => [r.status === "waiting" ? 0 : 1, r.operatorName].concat(waitKey(r)) },
  department: { aria: "ascending", key: (r) => [r.departmentName].concat(waitKey(r)) },
  status: { aria: "other", key: (r) => [r.status === "waiting" ? 0 : 1, r.awaiting ? 0 : 1].concat(waitKey(r)) },
  duration: { aria: "descending", key: (r) => [num(r.started)] },
  last: { aria: "other", key: (r) => [r.awaiting ? 0 : 1, num(r.lastAt)] },
};
function parseChat(el) {
  const d = el.dataset;
  return {
    pk: Number(d.chat),
    portal: d.portal,
    status: d.status,
    department: d.portal + ":" + d.department,
    departmentName: d.departmentName || "",
    operator: d.operator ? d.portal + ":" + d.operator : "",
    operatorName: d.operatorName || "",
    visitor: d.visitor || "",
    started: when(d.started),
    // Since when the visitor has waited for pickup; empty unless the chat waits (the server's
    // Chat.waited_since, which selectors.kpis counts too).
    waitingSince: when(d.waitingSince),
    lastAt: when(d.lastAt),
    awaiting: d.awaitingReply === "1", // the server's Chat.awaiting_reply
    matters: d.matters === "1", // the server's Chat.crm_marker: a big open deal or a customer
    // Since when the visitor's last message has had no reply (the server's Chat.unanswered_since).
    unansweredSince: when(d.unansweredSince),
  };
}
function chatPasses(rec) {
  if (filters.department && rec.department !== filters.department) return false;
  if (filters.operator && rec.operator !== filters.operator) return false;
  if (filters.status === "awaiting") return rec.awaiting;
  if (filters.status === "matters") return rec.matters;
  if (filters.status && rec.status !== filters.status) return false;
  return true;
}

// --- operators -----------------------------------------------------------------------------
const PRESENCE_ORDER = { available: 0, busy: 1, away: 2, offline: 3 };
function presenceKey(r) { return [r.enabled ? 0 : 1, num(PRESENCE_ORDER[r.status]), r.name]; }
// The Status header switches between the first two (a reversed "needs attention" would only
// hide the problems again); the address keeps the choice (osort).
const OPERATOR_SORTS = {
  // Who needs a supervisor (data-attention, dashboard.selectors.OperatorView.needs_attention)
  // first, longest in that state first; then everyone else as "status" orders them.
  attention: {
    aria: "other",
    title: "Needs attention first: over capacity, or busy, away or offline with open chats (longest in that state first); then available, busy, away, offline. Click again for available first.",
    key: (r) => (r.attention ? [0, num(r.since), r.name] : [1].concat(presenceKey(r))),
  },
  status: { aria: "other", title: "Available first, then busy, away, offline. Click again for needs attention first.", key: presenceKey },
  name: { aria: "ascending", key: (r) => [r.name] },
  load: { aria: "descending", key: (r) => [r.capacity ? -r.load / r.capacity : 0, -r.load, r.name] },
};
function parseOperator(el) {
  const d = el.dataset;
  return {
    pk: Number(el.id.slice(3)),
    portal: d.portal,
    remote: d.operator,
    name: d.name || "",
    status: d.status,
    load: Number(d.load) || 0,
    capacity: d.capacity ? Number(d.capacity) : 0,
    departments: (d.departments || "").split(" ").filter(Boolean),
    enabled: d.enabled !== "0",
    attention: d.attention === "1",
    since: when(d.since),
    // What the operator counts as in the key figures, and the seats they add (the server's
    // dashboard.selectors.operator_figure, operator_seats).
    figure: d.figure || "",
    seats: Number(d.seats) || 0,
  };
}
function operatorPasses(rec) {
  if (filters.department) {
    const split = filters.department.indexOf(":");
    if (rec.portal !== filters.department.slice(0, split)) return false;
    if (rec.departments.indexOf(filters.department.slice(split + 1)) < 0) return false;
  }
  switch (filters.presence) {
    case "online": return rec.status !== "offline";
    case "available": return rec.status === "available";
    case "busy": return rec.status === "busy" || rec.status === "away";
    case "offline": return rec.status === "offline";
  }
  return true;
}

export const chats = new Table({ name: "chats", bodyId: "chats-body", tableId: "chats-table", parse: parseChat, sorts: CHAT_SORTS, passes: chatPasses, sort: "wait" });
export const operators = new Table({ name: "operators", bodyId: "operators-body", tableId: "operators-table", parse: parseOperator, sorts: OPERATOR_SORTS, passes: operatorPasses, sort: "attention" });
export const SORT_PARAMS = [[chats, "sort", "dir", "wait"], [operators, "osort", "odir", "attention"]];
SORT_PARAMS.forEach(([table, sortName, dirName]) => {
  const sort = params.get(sortName);
  if (sort && table.sorts[sort]) table.sort = sort;
  if (params.get(dirName) === "reverse") table.dir = -1;
});

// A message touched rows (static/js/live/messages.js): place them, operators first (a chat
// may take its operator's name from theirs).
on("rows-touched", (t) => {
  if (t.operatorsAll) operators.rebuild();
  else if (t.operators.size) operators.placeAll(t.operators);
  if (t.chatsAll) chats.rebuild();
  else if (t.chats.size) chats.placeAll(t.chats);
});
// The clocks in the rows on screen: every box is read before anything is written.
on("tick", ({ t }) => {
  const rows = chats.onScreen().concat(operators.onScreen());
  for (const row of rows) tickRow(row, t);
});
