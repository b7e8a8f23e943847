// The websocket: the page's own id in its address, the connection's state in words, access
// ended, reconnecting with backoff (the htmx ws extension retries some closes itself).
import { root, on } from "./page.js";
import { ago } from "./clock.js";

// This page's id: the server leaves out of this page's pushes the outcome its own HTTP answer
// already carried (every htmx request says X-Live-Page, static/js/live/actions.js).
function makeId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
export const PAGE_ID = makeId();

const RECONNECT_CODES = [1006, 1011, 1012, 1013]; // the ws extension retries these itself
const ACCESS_ENDED = {
  4430: { text: "Your access to this page has ended — sign in again.", link: "Sign in again", login: true },
  4431: { text: "Your access to a portal on this page has ended.", link: "Load the page again", login: false },
};
let lastMessageAt = 0, connection = "connecting", retry = 0, retryTimer = null, lastWrapper = null;

function setConnection(state) {
  connection = state;
  const el = document.getElementById("connection");
  if (!el) return;
  el.dataset.state = state;
  const words = state === "open" ? "Live" : state === "closed" ? "Reconnecting…" : state === "ended" ? "Access ended" : "Connecting…";
  const holder = el.querySelector(".connection-state");
  if (holder.textContent !== words) holder.textContent = words;
  tickConnection(Date.now());
}
function tickConnection(t) {
  const el = document.querySelector("[data-connection-age]");
  if (!el) return;
  const text = lastMessageAt ? "· " + ago((t - lastMessageAt) / 1000) : "";
  if (el.textContent !== text) el.textContent = text;
  el.title = lastMessageAt ? "Last message from the server " + ago((t - lastMessageAt) / 1000) : "";
}
function endAccess(why) {
  clearTimeout(retryTimer);
  setConnection("ended");
  root.dataset.access = "ended";
  const note = document.getElementById("access-ended");
  if (!note) return;
  const here = window.location.pathname + window.location.search;
  const link = note.querySelector("[data-access-ended-link]");
  note.querySelector("[data-access-ended-text]").textContent = why.text;
  link.textContent = why.link;
  link.href = why.login ? note.dataset.loginUrl + "?next=" + encodeURIComponent(here) : here;
  note.hidden = false;
}
function reloadOnce() {
  const key = "siq-live-reloaded";
  let last = 0;
  try { last = Number(sessionStorage.getItem(key)) || 0; sessionStorage.setItem(key, String(Date.now())); } catch (e) {}
  if (Date.now() - last > 30000) window.location.reload();
}

export function init() {
  // Before htmx reads it (it connects when the document is ready; module scripts run before).
  const address = root.getAttribute("ws-connect");
  if (address) root.setAttribute("ws-connect", address + (address.indexOf("?") < 0 ? "?" : "&") + "page=" + encodeURIComponent(PAGE_ID));
  document.addEventListener("htmx:wsConnecting", () => { if (connection !== "closed" && connection !== "ended") setConnection("connecting"); });
  document.addEventListener("htmx:wsOpen", () => { retry = 0; setConnection("open"); });
  document.addEventListener("htmx:wsClose", (event) => {
    if (connection === "ended") return;
    lastWrapper = event.detail.socketWrapper;
    const code = event.detail.event && event.detail.event.code;
    // Access ended while the page was open (dashboard/realtime/consumers.py): stop here and say so.
    if (ACCESS_ENDED[code]) { endAccess(ACCESS_ENDED[code]); return; }
    setConnection("closed");
    if (code === 4401 || code === 4403 || code === 4410) { reloadOnce(); return; } // signed out, access changed, a portal deleted
    if (RECONNECT_CODES.indexOf(code) >= 0) return;
    // Any other close (a server restart sends 1001, a proxy 1000): try again with backoff.
    const delay = Math.min(30000, 500 * Math.pow(2, retry++)) * (0.5 + Math.random() / 2);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => lastWrapper.reconnect(), delay);
  });
  window.addEventListener("online", () => {
    if (connection === "closed" && lastWrapper) { clearTimeout(retryTimer); lastWrapper.reconnect(); }
  });
  on("socket-message", () => { lastMessageAt = Date.now(); tickConnection(Date.now()); });
  on("tick", () => tickConnection(Date.now()));
}
