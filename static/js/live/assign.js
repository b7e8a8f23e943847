// A waiting row's one-click assign. The chat row is cached on the chat's own facts, so it never
// names an operator; its department's queue row does (templates/figures/parts.html: data-assign-to,
// -name, -why, -since; the best operator by dashboard/actions/assign.py, published with the queue
// row whenever the department's chats or operators change). Here every waiting row's button is
// labelled from its department's queue row: "Assign to Ana" (why in its title) when someone is
// free, "Assign…" (its drawer, with the transfer picker: static/js/live/drawer.js) when nobody is.
//
// A click on "Assign to Ana" posts the assign (the transfer path: CSRF, this page's id, an
// idempotency key kept for the chat and operator until SalesIQ's answer, so a double click or a
// retry never sends twice). The server looks again before sending: a choice gone stale is refused
// in words, and the answer shows as a toast (static/js/live/toasts.js).
import { WALLBOARD, on, root } from "./page.js";
import { PAGE_ID } from "./socket.js";
import { showOutcome } from "./toasts.js";

const sending = new Set(); // chats whose assign is on its way
// chat → { name, seen }: sent to that operator; `seen` once the row showed the transfer under
// way. A row pushed without it after that: declined (or withdrawn), so the chat may be
// assigned again, with new keys.
const sent = new Map();
const keys = new Map(); // "chat:operator" → the idempotency key of that attempt
function underWay(row) { return !!row.querySelector(".c-status .transfer"); }
function forget(chat) {
  sent.delete(chat);
  Array.from(keys.keys()).forEach((slot) => { if (slot.startsWith(chat + ":")) keys.delete(slot); });
}

function csrf() {
  try { return JSON.parse(root.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (e) { return ""; }
}
function newKey() {
  const bytes = new Uint8Array(24);
  crypto.getRandomValues(bytes);
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// The queue rows by "portal:department", read once per labelling.
function queueRows() {
  const found = new Map();
  document.querySelectorAll("#queues-body > tr[data-portal]").forEach((row) => {
    found.set(row.dataset.portal + ":" + (row.dataset.department || ""), row);
  });
  return found;
}
function idle(since) {
  const at = since ? Date.parse(since) : NaN;
  if (!Number.isFinite(at)) return "";
  const minutes = Math.floor((Date.now() - at) / 60000);
  return minutes > 0 ? ", available for " + minutes + " min" : ", just became available";
}

function label(button, queues) {
  const row = button.closest("tr[data-chat]");
  if (!row) return;
  if (button.dataset.pickerTitle === undefined) button.dataset.pickerTitle = button.title;
  const chat = row.dataset.chat;
  const queue = queues.get(row.dataset.portal + ":" + (row.dataset.department || ""));
  const q = queue ? queue.dataset : {};
  let mode, text, title, to = "";
  if (sending.has(chat)) {
    mode = "busy"; text = "Sending to SalesIQ…"; title = "The assign is on its way to SalesIQ.";
  } else if (sent.has(chat) || underWay(row)) {
    mode = "busy"; text = sent.has(chat) ? "Sent to " + sent.get(chat).name : "Transfer under way";
    title = "The transfer was sent; the operator accepts or declines it in SalesIQ.";
  } else if (q.assignTo) {
    mode = "one"; to = q.assignTo; text = "Assign to " + q.assignName;
    title = "Best choice: " + q.assignWhy + idle(q.assignSince) + ". One click sends the transfer to "
      + q.assignName + " in " + (row.dataset.departmentName || "their department") + ".";
  } else {
    mode = "picker"; text = "Assign…"; title = button.dataset.pickerTitle;
  }
  if (button.dataset.assignMode !== mode) button.dataset.assignMode = mode;
  if ((button.dataset.assignTo || "") !== to) {
    if (to) button.dataset.assignTo = to; else delete button.dataset.assignTo;
  }
  if (button.textContent !== text) button.textContent = text;
  if (button.title !== title) button.title = title;
  const busy = mode === "busy";
  if (button.disabled !== busy) button.disabled = busy;
}

function labelAll(buttons) {
  if (WALLBOARD) return;
  const queues = queueRows();
  (buttons || document.querySelectorAll("#chats-body [data-assign-chat]")).forEach((button) => label(button, queues));
}

function problem(status, body) {
  // 400 out of date, 409 a key used for something else, 429 too many refused tries: the server's words.
  if ((status === 400 || status === 409 || status === 429) && body && body.length < 300 && body.indexOf("<") < 0) return body;
  if (status === 403) return "Your role may not act on this portal; nothing was sent to SalesIQ.";
  if (status === 404) return "This chat is no longer here; nothing was sent to SalesIQ.";
  if (!status) return "No answer from the dashboard: check the connection. Trying again is safe: the same click never acts twice.";
  return "The dashboard could not finish this (error " + status + "). Trying again is safe: the same click never acts twice.";
}
// A refusal of the request itself (no action ran) shows as an outcome would.
function refusal(chat, visitor, text) {
  const outcome = document.createElement("div"), state = document.createElement("span"), line = document.createElement("p");
  outcome.dataset.state = "refused";
  outcome.dataset.chat = chat;
  outcome.dataset.subject = visitor;
  state.className = "outcome-state";
  state.textContent = "refused";
  line.className = "outcome-line";
  line.textContent = text;
  outcome.append(state, line);
  return outcome;
}

function assign(button) {
  const row = button.closest("tr[data-chat]"), chat = row && row.dataset.chat, to = button.dataset.assignTo;
  if (!chat || !to || sending.has(chat) || sent.has(chat)) return; // a second click sends nothing
  const name = button.textContent.replace(/^Assign to /, ""), visitor = row.dataset.visitor || "a visitor";
  const slot = chat + ":" + to;
  if (!keys.has(slot)) keys.set(slot, newKey());
  sending.add(chat);
  labelAll([button]);
  const body = new URLSearchParams({ idempotency_key: keys.get(slot), operator_id: to });
  fetch("/live/chats/" + encodeURIComponent(chat) + "/assign/", {
    method: "POST", credentials: "same-origin", body,
    headers: { "X-CSRFToken": csrf(), "X-Live-Page": PAGE_ID, "HX-Request": "true" },
  }).then((answer) => answer.text().then((text) => [answer.status, text]), () => [0, ""]).then(([status, text]) => {
    sending.delete(chat);
    let outcome = null;
    if (status === 200) {
      // The server's own autoescaped outcome, parsed inert.
      const holder = document.createElement("template");
      holder.innerHTML = text;
      outcome = holder.content.querySelector(".action-outcome");
    }
    if (outcome) {
      const state = outcome.dataset.state;
      // Refused (a stale choice, a chat picked up meanwhile) or held back: the next click is a
      // new attempt. Anything else keeps its key: a retry gets the same answer, never a resend.
      if (state === "refused" || state === "not_sent") keys.delete(slot);
      else sent.set(chat, { name, seen: false });
      showOutcome(outcome, "Assign");
    } else {
      if (status === 403 || status === 409) keys.delete(slot);
      showOutcome(refusal(chat, visitor, problem(status, (text || "").trim())), "Assign");
    }
    const now = document.getElementById("chat-" + chat);
    const shown = now && now.querySelector("[data-assign-chat]");
    if (shown) labelAll([shown]);
  });
}

export function init() {
  if (WALLBOARD) return;
  labelAll();
  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("[data-assign-chat]");
    if (button && button.dataset.assignMode === "one") assign(button);
  });
  on("rows-changed", ({ table, els }) => {
    if (table === "operators" || !els) return;
    const buttons = [];
    els.forEach((row) => {
      // A row pushed again shows where the chat is now: the transfer under way, then gone
      // (declined, or the chat left the queue).
      const mark = row.dataset && sent.get(row.dataset.chat);
      if (mark && underWay(row)) mark.seen = true;
      else if (mark && mark.seen) forget(row.dataset.chat);
      const button = row.querySelector && row.querySelector("[data-assign-chat]");
      if (button) buttons.push(button);
    });
    if (buttons.length) labelAll(buttons);
  });
  on("queues-changed", () => labelAll());
  // "available for 12 min" in the titles moves on.
  let minute = -1;
  on("tick", () => {
    const m = Math.floor(Date.now() / 60000);
    if (m !== minute) { minute = m; labelAll(); }
  });
}
