// The live page (templates/live/page.html), in small modules that talk through DOM events
// ("live:…", static/js/live/page.js emit/on) rather than shared variables:
//
//   messages.js       applies the server's pieces, says what changed
//   tables.js         the chats and operators tables: sorted, filtered, placed row by row
//   filters.js        the filter controls and sorts, kept in the address
//   figures.js        the key figures and the tables' counts
//   queues.js         the queues panel: departments worst first, a click filters by one
//   freshness.js      how old the data is, stale past the server's threshold
//   socket.js         the connection, this page's id, access ended
//   drawer.js         a chat or an operator's panel, transcripts
//   actions.js        the supervisor actions' forms, X-Live-Page on every request
//   assign.js         a waiting row's "Assign to Ana", labelled from its department's queue row
//   toasts.js         a transfer's answer for an action this page does not show
//   alerts.js         the alerts panel, row badges, the title's count
//   notifications.js  sound and desktop notifications for new alerts
//   wallboard.js      on a wallboard only (loaded then, with its chart library): what fits on
//                     the wall, pages of departments, "and 34 more waiting", the day's chart
//
// They read only data-* attributes and write only textContent: visitor text never goes
// through innerHTML here (the server's own autoescaped output is parsed inert, in a <template>).
import { WALLBOARD, emit, on, root, stats } from "./page.js";
import { TIME, now } from "./clock.js";
import { readPortalNames } from "./portals.js";
import { chats, operators } from "./tables.js";
import * as filters from "./filters.js";
import { countKpis, kpis } from "./figures.js";
import "./freshness.js";
import * as socket from "./socket.js";
import * as messages from "./messages.js";
import * as drawer from "./drawer.js";
import * as actions from "./actions.js";
import "./toasts.js";
import * as alerts from "./alerts.js";
import * as queues from "./queues.js";
import * as assign from "./assign.js";
import * as notifications from "./notifications.js";

function tick() {
  emit("tick", { t: now() });
  const wall = document.querySelector("[data-wall-clock]");
  if (wall) {
    const text = TIME.timeOfDay(new Date(), TIME.viewer());
    if (wall.textContent !== text) wall.textContent = text;
  }
}

function start() {
  if (performance.mark) performance.mark("live-start");
  socket.init();
  messages.init();
  filters.init();
  drawer.init();
  actions.init();
  alerts.init();
  notifications.init();
  on("sorted", tick);
  on("filters-changed", tick);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) tick(); });

  readPortalNames();
  filters.syncControls();
  operators.rebuild();
  alerts.syncAlerts(true);
  chats.rebuild();
  queues.init();
  assign.init();
  filters.buildOperatorOptions();
  countKpis();
  filters.updateWallboardLink();
  tick();
  setInterval(tick, 1000);
  if (performance.mark) performance.mark("live-ready");
  // After everything above: the wallboard fits what the other modules placed.
  if (WALLBOARD) import("./wallboard.js").catch((failure) => console.error("The wallboard could not start:", failure));

  // For the browser tests and for measuring: read-only views of what the page keeps.
  const table = (name) => (name === "operators" ? operators : chats);
  window.SupervisorLive = {
    stats,
    kpis,
    order: (name) => table(name).order.map((rec) => rec.id),
    visible: (name) => table(name).order.filter((rec) => rec.visible).map((rec) => rec.id),
    alerts: alerts.alertsShown,
  };
}

if (root && window.htmx && window.SupervisorTime) start();
