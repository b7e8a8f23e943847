// The key figures of what the tables show, and the tables' counts. They follow the filters, so
// they are sums over the rows shown; what a row counts as is the server's (a chat row's status
// and data-waiting-since, dashboard.models.Chat.waited_since; an operator row's data-figure and
// data-seats, dashboard.selectors.operator_figure), the average wait is the portals' own sum
// (data-wait-sum, data-wait-count on each portal's meta), and the tones are the server's
// thresholds (dashboard.selectors.thresholds, read by page.js).
import { root, on, UTILISATION_BAD, UTILISATION_WARN } from "./page.js";
import { clock, now, num } from "./clock.js";
import { liveMetas } from "./portals.js";
import { chats, operators } from "./tables.js";
import { waitTone } from "./ticks.js";

let kpi = { open: 0, waiting: 0, oldestWait: Infinity, waitSum: 0, waitCount: 0, available: 0, busy: 0, offline: 0, capacity: 0 };
export function kpis() { return Object.assign({}, kpi); }

function setText(name, text) {
  const el = root.querySelector("[data-kpi='" + name + "']");
  if (el && el.textContent !== text) el.textContent = text;
}
function setTone(name, tone) {
  const tile = root.querySelector("[data-kpi-tile='" + name + "']");
  if (tile && (tile.dataset.tone || "") !== tone) tile.dataset.tone = tone;
}
export function countKpis() {
  let open = 0, waiting = 0, oldest = Infinity;
  for (const rec of chats.order) {
    if (!rec.visible) continue;
    open++;
    if (rec.status === "waiting") {
      waiting++;
      // Since when the server says the visitor waits (Chat.waited_since): no rule of the page's own.
      if (num(rec.waitingSince) < oldest) oldest = rec.waitingSince;
    }
  }
  // Each operator row says what it counts as (data-figure: the server's definition).
  const figures = { available: 0, busy: 0, offline: 0 };
  let capacity = 0;
  for (const rec of operators.order) {
    if (!rec.visible) continue;
    if (rec.figure in figures) figures[rec.figure]++;
    capacity += rec.seats;
  }
  const { available, busy, offline } = figures;
  let sum = 0, count = 0;
  liveMetas().forEach((meta) => { sum += Number(meta.dataset.waitSum) || 0; count += Number(meta.dataset.waitCount) || 0; });
  kpi = { open, waiting, oldestWait: oldest, waitSum: sum, waitCount: count, available, busy, offline, capacity };
  setText("open", open.toLocaleString());
  setText("waiting", waiting.toLocaleString());
  setTone("waiting", waiting ? "warn" : "");
  setText("average-wait", count ? clock(sum / count) : "–");
  setText("available", String(available));
  setText("busy", String(busy));
  setText("offline", String(offline));
  if (capacity) {
    const share = open / capacity;
    setText("utilisation", Math.round(share * 100) + "%");
    setText("capacity", open + " of " + capacity + " seats");
    setTone("utilisation", share >= UTILISATION_BAD ? "bad" : share >= UTILISATION_WARN ? "warn" : "");
  } else {
    setText("utilisation", "–");
    setText("capacity", open ? "nobody available" : "no seats open");
    setTone("utilisation", open ? "bad" : "");
  }
  setCounts();
  tickKpis(now());
}
function tickKpis(t) {
  if (kpi.oldestWait === Infinity) {
    setText("longest-wait", "–");
    setText("longest-note", "nobody waiting");
    setTone("longest-wait", "");
    return;
  }
  setText("longest-note", kpi.waiting === 1 ? "1 visitor waiting" : kpi.waiting + " visitors waiting");
  const seconds = (t - kpi.oldestWait) / 1000;
  setText("longest-wait", clock(seconds));
  setTone("longest-wait", waitTone(seconds));
}
function setCounts() {
  [[chats, "chats", "No open chats right now.", "No chats match these filters."],
   [operators, "operators", "No operators yet.", "No operators match these filters."]].forEach(([table, name, none, unmatched]) => {
    const total = table.order.length, shown = table.count();
    const count = root.querySelector("[data-count='" + name + "']");
    const text = shown === total ? total.toLocaleString() : shown.toLocaleString() + " of " + total.toLocaleString();
    if (count && count.textContent !== text) count.textContent = text;
    const empty = root.querySelector("[data-empty='" + name + "']");
    if (empty) {
      empty.hidden = shown > 0;
      empty.textContent = total ? unmatched : none;
    }
  });
}

on("message-applied", ({ any }) => { if (any) countKpis(); });
on("filters-changed", countKpis);
on("tick", ({ t }) => tickKpis(t));
