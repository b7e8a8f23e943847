// Applying what the server sends. The websocket's messages (dashboard/realtime/publish.py,
// templates/live/parts.html) are pieces, each a root element with hx-swap-oob: a row, a table
// body, a portal's meta, an alert, a drawer's head, an action's outcome, a chat's new transcript
// lines, or a delete by id. They are parsed once, by the browser (a <template>), and each is put
// in place here: swapped by id, added to its container when new, or dropped quietly when this
// page does not show its target (a drawer that is not open). HTTP answers to clicks under #live
// go through the same rules (the siq-live extension) before htmx swaps them.
//
// Then each module hears what changed, in this order: "live:metas-changed", "live:rows-touched"
// (the tables place the rows and say "live:rows-changed"), "live:queues-changed",
// "live:message-applied" { any },
// "live:drawer-changed", "live:alerts-changed", "live:drawer-alerts-changed". A transcript's
// lines go out as "live:lines" { chat, lines }; a piece nothing on this page shows as
// "live:unplaced" { piece } (an action's outcome for another tab, say).
import { emit, stats } from "./page.js";
import { localise } from "./clock.js";

const TRANSCRIPT = "beforeend:#transcript-";
const HTMX_ATTRIBUTES = "[hx-get],[hx-post],[hx-put],[hx-patch],[hx-delete],[hx-trigger]";
// Rows and table bodies: no htmx attributes and no times of day inside (their clocks tick).
const ROWS = { "chats-body": true, "operators-body": true, "queues-body": true };

function fresh() {
  return { chats: new Set(), operators: new Set(), chatsAll: false, operatorsAll: false, metas: false, alerts: false, drawerAlerts: false, drawer: false, queues: false };
}
let touched = fresh(), pending = false;

// What an element that came or went means for the page.
function note(el) {
  if (!el || !el.id) return;
  const id = el.id, container = el.dataset && el.dataset.container;
  if (id === "chats-body") touched.chatsAll = true;
  else if (id === "operators-body") touched.operatorsAll = true;
  else if (id === "portal-metas" || container === "portal-metas") touched.metas = true;
  else if (id === "alerts-list" || container === "alerts-list") touched.alerts = true;
  else if (id.indexOf("drawer-alert") === 0 || (container && container.indexOf("drawer-alerts-") === 0)) touched.drawerAlerts = true;
  else if (id === "queues-body" || container === "queues-body") touched.queues = true;
  else if (container === "chats-body") touched.chats.add(id);
  else if (container === "operators-body") touched.operators.add(id);
  else if (id.indexOf("drawer-head-") === 0) touched.drawer = true;
  if (!pending) { pending = true; queueMicrotask(flush); }
}

export function flush() {
  pending = false;
  const t = touched, any = t.chatsAll || t.operatorsAll || t.metas || t.chats.size > 0 || t.operators.size > 0;
  touched = fresh();
  if (t.metas) emit("metas-changed");
  if (t.queues) emit("queues-changed");
  emit("rows-touched", t);
  emit("message-applied", { any, chats: t.chatsAll || t.chats.size > 0, operators: t.operatorsAll || t.operators.size > 0, touched: t });
  if (t.drawer) emit("drawer-changed");
  if (t.alerts) emit("alerts-changed");
  if (t.drawerAlerts) emit("drawer-alerts-changed");
}

// A piece the page has no target for: a new row goes in its container (false when the page
// has no such container).
function addRow(piece) {
  const container = piece.dataset && piece.dataset.container && document.getElementById(piece.dataset.container);
  if (!container) return false;
  piece.removeAttribute("hx-swap-oob");
  container.appendChild(piece);
  // Chat and operator rows hold no htmx attributes; an alert's buttons do.
  if (piece.querySelector(HTMX_ATTRIBUTES)) htmx.process(piece);
  note(piece);
  return true;
}

function transcriptOf(piece) {
  const oob = piece.getAttribute("hx-swap-oob") || "";
  return oob.indexOf(TRANSCRIPT) === 0 ? oob.slice(TRANSCRIPT.length) : null;
}

// One piece of a websocket message, parsed.
function put(piece) {
  const chat = transcriptOf(piece);
  if (chat !== null) { emit("lines", { chat, lines: Array.from(piece.children) }); return; }
  const oob = piece.getAttribute("hx-swap-oob") || "true";
  const target = piece.id ? document.getElementById(piece.id) : null;
  if (oob === "delete") {
    if (target) { target.remove(); note(target); }
    return;
  }
  if (!target) {
    if (!addRow(piece)) emit("unplaced", { piece });
    return;
  }
  piece.removeAttribute("hx-swap-oob");
  target.replaceWith(piece);
  const row = ROWS[piece.id] || ROWS[piece.dataset.container];
  if (!row) {
    if (piece.matches(HTMX_ATTRIBUTES) || piece.querySelector(HTMX_ATTRIBUTES)) htmx.process(piece);
    localise(piece);
  }
  note(piece);
}

export function init() {
  // A websocket message: the page takes it from the ws extension and applies it itself.
  document.addEventListener("htmx:wsBeforeMessage", (event) => {
    const message = event.detail.message;
    if (typeof message !== "string") return;
    event.preventDefault();
    const start = performance.now();
    const holder = document.createElement("template");
    holder.innerHTML = message; // the server's own template output (autoescaped), parsed inert
    for (const piece of Array.from(holder.content.children)) put(piece);
    flush();
    const spent = performance.now() - start;
    stats.messages++;
    stats.lastMs = spent;
    stats.totalMs += spent;
    if (spent > stats.maxMs) stats.maxMs = spent;
    emit("socket-message");
  });

  // An HTTP answer to a click under #live (an action, an alert's acknowledge): htmx swaps it,
  // after the pieces this page has no target for were taken out (htmx would log an error for
  // each) and new rows put in their containers.
  htmx.defineExtension("siq-live", {
    transformResponse(text) {
      if (typeof text !== "string" || text.indexOf("hx-swap-oob") < 0) return text;
      const holder = document.createElement("template");
      holder.innerHTML = text;
      let changed = false;
      for (const piece of Array.from(holder.content.children)) {
        const oob = piece.getAttribute("hx-swap-oob");
        if (oob === null) continue;
        const chat = transcriptOf(piece);
        if (chat !== null) {
          emit("lines", { chat, lines: Array.from(piece.children) });
        } else if (oob === "true" || oob === "delete") {
          if (piece.id && document.getElementById(piece.id)) continue;
          if (oob === "true") addRow(piece);
        } else {
          continue; // no other kind is sent; htmx knows what to do with it
        }
        piece.remove();
        changed = true;
      }
      return changed ? holder.innerHTML : text;
    },
  });
  // Rows swapped by htmx in an HTTP answer: noted, so the tables place them. A row or a table
  // body holds no htmx attributes: swapped directly (htmx's own swap settles every element one
  // by one).
  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    const target = event.detail.target, fragment = event.detail.fragment;
    if (target && fragment && fragment.nodeType === 11 && (ROWS[target.id] || ROWS[target.dataset.container])) {
      const replacement = fragment.firstElementChild;
      if (replacement && replacement.id === target.id) {
        event.detail.shouldSwap = false;
        target.replaceWith(replacement);
      }
    }
    note(target);
  });
  // A piece whose target went missing after the siq-live extension looked (a click's answer).
  document.addEventListener("htmx:oobErrorNoTarget", (event) => {
    const content = event.detail.content;
    // htmx looks for targets under the requesting element's root: a button that the websocket's
    // copy of the same change replaced first is no longer in the page, and so neither is
    // anything else "there". The page has the row already.
    if (content && content.id && document.getElementById(content.id)) return;
    if (content) addRow(content); // else a drawer line or head for a chat that is not open
  });
  // The answer to a click (acknowledge, snooze) whose button the websocket's copy of the same
  // change replaced while the request was under way: the page shows that change already, and
  // htmx would look for the answer's targets around the detached button, find none and log an
  // error for each. Its events still reach the button itself.
  document.addEventListener("htmx:beforeRequest", (event) => {
    const elt = event.detail.elt;
    if (!elt || !elt.addEventListener || !elt.closest || !elt.closest("#live")) return;
    elt.addEventListener("htmx:beforeOnLoad", (loaded) => {
      if (!document.contains(elt)) loaded.preventDefault();
    }, { once: true });
  });
}
