// The drawer: a chat (its head and transcript) or an operator's panel, opened from a row, a
// toast or a notification ("live:open-chat" / "live:open-operator" { pk }).
import { WALLBOARD, emit, on, root } from "./page.js";
import { localise, now, num, when } from "./clock.js";
import { forget, tickRow } from "./ticks.js";

let openChat = null, openOperator = null, returnFocus = null;
// A waiting row's "Assign…" (nobody free when the page last heard: static/js/live/assign.js
// labels it "Assign to Ana" and sends on one click otherwise): the drawer opens on the choice
// (the server's dashboard/actions/assign.py), or on the transfer picker when nobody is free.
// Shown only where the viewer may act (the server refuses anyone else anyway).
const ACT_PORTALS = (root ? root.dataset.actPortals || "" : "").split(",").filter(Boolean);
let assigning = null;
function showAssign(rows) {
  if (WALLBOARD) return;
  for (const row of rows) {
    const button = row.querySelector && row.querySelector("[data-assign-chat]");
    if (button && button.hidden && ACT_PORTALS.indexOf(row.dataset.portal) >= 0) button.hidden = false;
  }
}
function offerAssign(drawer) {
  const pk = assigning;
  assigning = null;
  if (!pk || drawer.dataset.chat !== String(pk)) return;
  const best = drawer.querySelector("[data-assign-best]");
  if (best) { best.focus({ preventScroll: true }); return; }
  // The picker's own request, not a click on its button: htmx takes the drawer's new buttons
  // over only when it settles, so a click now would do nothing.
  const picker = drawer.querySelector("[data-action-button=transfer]");
  if (picker) htmx.ajax("GET", picker.getAttribute("hx-get"), { target: picker.getAttribute("hx-target"), swap: "innerHTML" });
}
function drawerSlot() { return document.getElementById("drawer-slot"); }
function drawerOpen() { const slot = drawerSlot(); return !!(slot && slot.firstElementChild); }
function markOpen(pk) {
  const before = openChat && document.getElementById("chat-" + openChat);
  if (before) before.classList.remove("selected");
  openChat = pk;
  const row = pk && document.getElementById("chat-" + pk);
  if (row) row.classList.add("selected");
}
function markOperator(pk) {
  const before = openOperator && document.getElementById("op-" + openOperator);
  if (before) before.classList.remove("selected");
  openOperator = pk;
  const row = pk && document.getElementById("op-" + pk);
  if (row) row.classList.add("selected");
}
function loadDrawer(url) {
  if (!drawerOpen()) returnFocus = document.activeElement;
  htmx.ajax("GET", url, { target: "#drawer-slot", swap: "innerHTML" });
}
function openDrawer(pk) {
  if (WALLBOARD || !drawerSlot()) return;
  markOperator(null);
  markOpen(pk);
  loadDrawer("/live/chats/" + encodeURIComponent(pk) + "/");
}
function openOperatorPanel(pk) {
  if (WALLBOARD || !drawerSlot()) return;
  markOpen(null);
  markOperator(pk);
  loadDrawer("/live/operators/" + encodeURIComponent(pk) + "/");
}
function closeDrawer() {
  const slot = drawerSlot();
  if (!slot || !slot.firstElementChild) return;
  slot.replaceChildren();
  markOpen(null);
  markOperator(null);
  if (returnFocus && document.contains(returnFocus)) returnFocus.focus();
  returnFocus = null;
}

// The drawer's bar names the visitor, so the name stays in view while the transcript scrolls.
function nameDrawer() {
  const drawer = document.getElementById("drawer"), kicker = drawer && drawer.querySelector(".drawer-kicker");
  const name = drawer && drawer.querySelector(".drawer-head h2");
  if (kicker && name && kicker.textContent !== name.textContent) kicker.textContent = name.textContent;
}

// "Latest message ↓" shows while the transcript's end is out of view.
function atTranscriptEnd(scroller) {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
}
function fitLatest(scroller) {
  const button = scroller && scroller.querySelector("[data-jump-latest]");
  if (!button) return;
  const hide = !scroller.querySelector(".transcript > li[id]") || atTranscriptEnd(scroller);
  if (button.hidden !== hide) button.hidden = hide;
}

// A chat's transcript lines: each line once (the drawer's own load and the push of the same
// lines race), in time order. Lines for a drawer still loading wait for it.
let waitingLines = { chat: null, lines: [] };
function sentAt(line) {
  const time = line.querySelector("time[datetime]");
  return time ? num(when(time.getAttribute("datetime"))) : Infinity;
}
function addLines(list, lines) {
  const scroller = list.closest("[data-drawer-scroll]");
  const atEnd = scroller && scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
  let added = 0;
  lines.forEach((line) => {
    if (!line.id || document.getElementById(line.id)) return;
    const at = sentAt(line);
    let before = null;
    for (let node = list.lastElementChild; node && node.id && sentAt(node) > at; node = node.previousElementSibling) before = node;
    list.insertBefore(line, before);
    added++;
  });
  if (!added) return;
  localise(list);
  // New lines are followed only by a reader already at the end.
  if (atEnd) scroller.scrollTop = scroller.scrollHeight;
  fitLatest(scroller);
}
function takeLines(pk, lines) {
  const list = document.getElementById("transcript-" + pk);
  if (list) addLines(list, lines);
  else if (String(openChat) === pk) {
    if (waitingLines.chat !== pk) waitingLines = { chat: pk, lines: [] };
    waitingLines.lines = waitingLines.lines.concat(lines);
  }
}
function drawerShown(pk) {
  const held = waitingLines;
  waitingLines = { chat: null, lines: [] };
  const list = document.getElementById("transcript-" + pk);
  if (list && held.chat === String(pk)) addLines(list, held.lines);
}

// The operator panel follows the operator's row: status, time in it, and load.
function syncOperatorPanel() {
  const panel = document.querySelector("#drawer.operator-drawer");
  const row = openOperator && document.getElementById("op-" + openOperator);
  if (!panel || !row || panel.dataset.operator !== String(openOperator)) return;
  const presence = panel.querySelector("[data-panel-presence]"), status = row.querySelector(".o-status");
  if (presence && status && presence.dataset.status !== row.dataset.status + "@" + row.dataset.since) {
    presence.dataset.status = row.dataset.status + "@" + row.dataset.since;
    presence.replaceChildren(...Array.from(status.childNodes, (node) => node.cloneNode(true)));
    forget(panel);
    tickRow(panel, now());
    // "Now Available" under the buttons is old news once the status changed again (a drain,
    // SalesIQ itself); a refusal stays: its advice still holds.
    const answer = panel.querySelector("[data-status-outcome] .status-answer");
    if (answer && answer.dataset.sets !== row.dataset.status && answer.querySelector("[data-state=done]")) answer.remove();
  }
  // The status buttons too: the current one is marked and cannot be sent again.
  const form = panel.querySelector(".status-form");
  if (form && !form.classList.contains("htmx-request")) {
    form.querySelectorAll("button[name=status]").forEach((button) => {
      const current = button.value === row.dataset.status;
      button.disabled = current;
      if (current) button.setAttribute("aria-current", "true"); else button.removeAttribute("aria-current");
    });
  }
  const load = panel.querySelector("[data-panel-load]"), d = row.dataset;
  if (load) {
    const text = d.load + (d.capacity ? " of " + d.capacity : "");
    if (load.textContent !== text) load.textContent = text;
  }
  syncPanelChats(panel);
}
// The panel's open chats follow the chats table: a chat moved away (a drain, a transfer) or
// ended leaves the list, one picked up joins it. Built from the rows' own data, as text.
function syncPanelChats(panel) {
  const section = panel.querySelector("[data-panel-chats]");
  if (!section) return;
  const remote = section.dataset.remote, portal = section.dataset.portal;
  const rows = Array.from(document.querySelectorAll("#chats-body > tr[data-chat]")).filter(
    (row) => row.dataset.operator === remote && row.dataset.portal === portal);
  const key = rows.map((row) => row.dataset.chat + ":" + row.dataset.status).join(",");
  if (section.dataset.chats === key) return;
  section.dataset.chats = key;
  const list = section.querySelector(".op-chats"), none = section.querySelector("[data-panel-no-chats]");
  const count = section.querySelector("[data-panel-chat-count]");
  list.replaceChildren(...rows.map(panelChat));
  list.hidden = !rows.length;
  if (none) none.hidden = !!rows.length;
  if (count) count.textContent = String(rows.length);
  // Nothing left to drain: the preview says so only when asked, so the button goes quiet.
  const preview = panel.querySelector("[data-drain-preview]");
  if (preview) {
    preview.disabled = !rows.length;
    if (rows.length) preview.removeAttribute("title"); else preview.title = "No open chats to move";
  }
  forget(panel);
  tickRow(panel, now());
}
function panelChat(row) {
  const item = document.createElement("li"), button = document.createElement("button");
  const visitor = document.createElement("span"), pill = document.createElement("span");
  const department = document.createElement("span"), time = document.createElement("time");
  const status = row.querySelector(".c-status .pill");
  button.type = "button";
  button.className = "op-chat";
  button.setAttribute("data-open-chat", row.dataset.chat);
  visitor.className = "op-chat-visitor";
  visitor.textContent = row.dataset.visitor || "Visitor";
  pill.className = "pill chat-" + row.dataset.status;
  pill.textContent = status ? status.textContent : row.dataset.status;
  department.className = "op-chat-department";
  department.textContent = row.dataset.departmentName || "";
  time.setAttribute("data-tick", "elapsed");
  time.setAttribute("datetime", row.dataset.started || "");
  time.title = "Open for";
  button.append(visitor, pill, department, time);
  item.appendChild(button);
  return item;
}

function showLoadError(event) {
  const aside = document.createElement("aside"), bar = document.createElement("div"), close = document.createElement("button"), text = document.createElement("p");
  aside.id = "drawer";
  aside.className = "drawer";
  bar.className = "drawer-bar";
  close.type = "button";
  close.className = "drawer-close";
  close.setAttribute("data-close-drawer", "");
  close.setAttribute("aria-label", "Close");
  close.textContent = "×";
  bar.appendChild(document.createElement("span"));
  bar.appendChild(close);
  text.className = "drawer-scroll";
  const what = openOperator ? "operator" : "chat";
  text.textContent = event.detail.xhr && event.detail.xhr.status === 404
    ? (openOperator ? "This operator is no longer here." : "This chat is no longer here: it may have ended, or you no longer have access to its portal.")
    : "The " + what + " could not be loaded. Try again in a moment.";
  aside.appendChild(bar);
  aside.appendChild(text);
  drawerSlot().replaceChildren(aside);
}

export function init() {
  // A link back from Zoho CRM (a lead made from a chat) opens that chat: ?chat=<id>.
  const linked = new URLSearchParams(window.location.search).get("chat");
  if (linked && /^\d+$/.test(linked)) openDrawer(linked);
  document.addEventListener("click", (event) => {
    const target = event.target;
    if (target.closest("[data-close-drawer]")) { closeDrawer(); return; }
    // An action form's Cancel: the form goes, the drawer stays.
    const cancel = target.closest("[data-cancel-action]");
    if (cancel) {
      const area = cancel.closest("[data-action-area]");
      if (area) area.replaceChildren();
      return;
    }
    const assign = target.closest("[data-assign-chat]");
    if (assign) {
      // "Assign to Ana" sends at once (static/js/live/assign.js); only "Assign…" opens the drawer.
      const mode = assign.dataset.assignMode;
      if (!mode || mode === "picker") { assigning = assign.dataset.assignChat; openDrawer(assigning); }
      return;
    }
    const chatLink = target.closest("[data-open-chat]");
    if (chatLink) { openDrawer(chatLink.dataset.openChat); return; }
    const operatorLink = target.closest("[data-open-operator]");
    if (operatorLink) { openOperatorPanel(operatorLink.dataset.openOperator); return; }
    if (target.closest("#alerts-panel")) return;
    if (target.closest("#toasts")) return;
    const row = target.closest("#chats-body > tr[data-chat]");
    if (row && !target.closest("a")) { openDrawer(row.dataset.chat); return; }
    const operatorRow = target.closest("#operators-body > tr[id^='op-']");
    if (operatorRow && !target.closest("a")) { openOperatorPanel(operatorRow.id.slice(3)); return; }
    if (drawerOpen() && !target.closest("#drawer-slot") && document.contains(target)) closeDrawer();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || !drawerOpen()) return;
    // Escape peels one layer: an open action form first (what was typed goes with it), then the drawer.
    const form = document.querySelector("#drawer [data-action-area] > .action-form");
    if (form && !form.classList.contains("htmx-request")) {
      form.parentNode.replaceChildren();
      const drawer = document.getElementById("drawer");
      if (drawer) drawer.focus({ preventScroll: true });
      return;
    }
    closeDrawer();
  });
  document.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (target && target.matches && target.matches("[data-action-area]")) {
      // A form just opened: in view, and the first field ready for the keyboard.
      target.scrollIntoView({ block: "nearest" });
      const field = target.querySelector(".action-form select, .action-form textarea");
      if (field) field.focus({ preventScroll: true });
      return;
    }
    if (target !== drawerSlot()) return;
    const drawer = document.getElementById("drawer");
    if (!drawer) return;
    nameDrawer();
    localise(drawer);
    // A chat opens at its head: who, where, what they asked. "Latest message" goes to the end.
    const scroller = drawer.dataset.chat && drawer.querySelector("[data-drawer-scroll]");
    if (scroller) scroller.scrollTop = 0;
    if (drawer.dataset.chat) drawerShown(drawer.dataset.chat); // lines pushed while it loaded
    fitLatest(scroller);
    if (drawer.matches(".operator-drawer")) tickRow(drawer, now());
    emit("drawer-alerts-changed");
    drawer.focus({ preventScroll: true });
    if (assigning) offerAssign(drawer);
  });
  document.addEventListener("scroll", (event) => {
    const scroller = event.target;
    if (scroller.matches && scroller.matches("#drawer [data-drawer-scroll]")) fitLatest(scroller);
  }, true);
  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("[data-jump-latest]");
    const scroller = button && button.closest("[data-drawer-scroll]");
    if (!scroller) return;
    scroller.scrollTop = scroller.scrollHeight;
    fitLatest(scroller);
  });
  document.addEventListener("htmx:responseError", (event) => {
    if (event.detail.target === drawerSlot()) showLoadError(event);
  });
  // The status buttons stay after a change (its outcome shows below them): once the answer is
  // in, mark the status the operator's row has now (a push during the request was skipped).
  document.addEventListener("htmx:afterSettle", (event) => {
    if (event.detail.target && event.detail.target.matches && event.detail.target.matches("[data-status-outcome]")) syncOperatorPanel();
  });

  on("open-chat", ({ pk }) => openDrawer(pk));
  on("open-operator", ({ pk }) => openOperatorPanel(pk));
  on("lines", ({ chat, lines }) => takeLines(chat, lines));
  // Rows are replaced whole by the server: the open one is marked again.
  showAssign(document.querySelectorAll("#chats-body > tr[data-chat]"));
  on("rows-changed", ({ table, els }) => {
    if (table !== "operators" && els) showAssign(els);
    const id = table === "operators" ? openOperator && "op-" + openOperator : openChat && "chat-" + openChat;
    const row = id && document.getElementById(id);
    if (row) row.classList.add("selected");
  });
  // A chat moving to or away from the open operator changes their panel's list of chats.
  on("message-applied", ({ touched }) => {
    if (openOperator && (touched.operatorsAll || touched.operators.has("op-" + openOperator) || touched.chatsAll || touched.chats.size)) syncOperatorPanel();
  });
  on("drawer-changed", () => {
    const drawer = document.getElementById("drawer");
    if (drawer) localise(drawer);
    nameDrawer();
  });
  on("tick", ({ t }) => {
    const panel = openOperator && document.querySelector("#drawer.operator-drawer");
    if (panel) tickRow(panel, t);
    const head = openChat && document.querySelector("#drawer .drawer-head"); // replaced on each change
    if (head) tickRow(head, t);
  });
}
