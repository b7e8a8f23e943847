// Signals for new alerts: a sound and a desktop notification, each the user's choice (kept on
// the server), the desktop one also the browser's permission. Once per alert (and once more
// when its snooze runs out) for this user, whichever tab; never for what a page load shows.
import { MULTI, WALLBOARD, emit, on, root } from "./page.js";
import { portalNames } from "./portals.js";
import { alertTitle } from "./alerts.js";

const data = root ? root.dataset : {};
const signals = { desktop: data.signalDesktop === "1", sound: data.signalSound === "1" };
const SIGNALLED_KEY = "siq-signalled-" + (data.user || ""), ASKED_KEY = "siq-signals-asked-" + (data.user || "");
let chime = null;
function csrf() {
  try { return JSON.parse(root.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (e) { return ""; }
}
function notificationsAllowed() { return "Notification" in window && Notification.permission === "granted"; }
function showSignals() {
  document.querySelectorAll("[data-signal]").forEach((button) => {
    let on = !!signals[button.dataset.signal];
    if (button.dataset.signal === "desktop" && on && "Notification" in window && Notification.permission !== "granted") on = false;
    button.setAttribute("aria-pressed", on ? "true" : "false");
    const state = button.querySelector(".signal-state");
    if (state) state.textContent = on ? "on" : "off";
  });
  const ask = document.querySelector("[data-signal-ask]");
  if (ask) {
    let asked = false;
    try { asked = !!localStorage.getItem(ASKED_KEY); } catch (e) {}
    ask.hidden = asked || signals.desktop || signals.sound;
  }
}
function signalProblem(text) {
  const holder = document.querySelector("[data-signal-problem]");
  if (!holder) return;
  holder.textContent = text;
  holder.hidden = !text;
}
function saveSignals(changes) {
  Object.keys(changes).forEach((name) => { signals[name] = changes[name]; });
  showSignals();
  const body = new URLSearchParams();
  Object.keys(changes).forEach((name) => body.set(name, changes[name] ? "1" : "0"));
  return fetch(root.dataset.signalsUrl, {
    method: "POST", credentials: "same-origin", body,
    headers: { "X-CSRFToken": csrf(), "Content-Type": "application/x-www-form-urlencoded" },
  }).then((response) => {
    if (!response.ok) throw new Error(String(response.status));
    signalProblem("");
  }).catch(() => {
    signalProblem("Your choice could not be saved; it holds on this page until you reload it.");
  });
}
// Turning notifications on asks the browser first (it only asks after a click).
function wantDesktop(on) {
  if (!on) return saveSignals({ desktop: false });
  if (!("Notification" in window)) { signalProblem("This browser cannot show desktop notifications."); return Promise.resolve(); }
  if (Notification.permission === "denied") {
    signalProblem("This browser blocks notifications from this site. Allow them in the site's settings (the icon left of the address), then turn them on here.");
    return Promise.resolve();
  }
  const asked = Notification.permission === "granted" ? Promise.resolve("granted") : Notification.requestPermission();
  return asked.then((permission) => {
    if (permission !== "granted") {
      signalProblem("Notifications stay off: the browser was not allowed to show them.");
      showSignals();
      return;
    }
    signalProblem("");
    return saveSignals({ desktop: true });
  });
}
function wantSound(on) {
  if (on) playChime(); // a sample, and browsers let a page play sound only after a click
  return saveSignals({ sound: on });
}
function playChime() {
  if (!root.dataset.soundUrl) return;
  if (!chime) { chime = new Audio(root.dataset.soundUrl); chime.preload = "auto"; }
  try {
    chime.currentTime = 0;
    const played = chime.play();
    if (played && played.catch) played.catch(() => {});
  } catch (e) {}
}
function claim(key) {
  let seen = {};
  const t = Date.now();
  try { seen = JSON.parse(localStorage.getItem(SIGNALLED_KEY) || "{}") || {}; } catch (e) {}
  if (seen[key]) return false;
  Object.keys(seen).forEach((k) => { if (t - seen[k] > 86400000) delete seen[k]; });
  seen[key] = t;
  try { localStorage.setItem(SIGNALLED_KEY, JSON.stringify(seen)); } catch (e) {}
  return true;
}
let known = null; // alert keys this page has seen, so a page load never rings for old news
function signalNew(rows, initial) {
  let fresh = [];
  const keys = {};
  rows.forEach((el) => {
    if (el.dataset.effective !== "open") return;
    const key = el.dataset.alert + (el.dataset.snoozedUntil ? "@" + el.dataset.snoozedUntil : "");
    keys[key] = true;
    if (known && !known[key]) fresh.push({ el, key });
  });
  if (initial || !known) {
    known = keys;
    Object.keys(keys).forEach(claim); // already on screen: nothing to ring for later either
    return;
  }
  Object.keys(keys).forEach((key) => { known[key] = true; });
  if (WALLBOARD) return;
  fresh = fresh.filter((entry) => claim(entry.key));
  if (!fresh.length) return;
  if (signals.sound) playChime();
  if (signals.desktop && notificationsAllowed() && (document.hidden || !document.hasFocus())) {
    fresh.slice(0, 3).forEach((entry) => notify(entry.el));
  }
}
function notify(el) {
  const d = el.dataset, detail = el.querySelector(".alert-detail");
  const portal = MULTI && portalNames[d.portal] ? portalNames[d.portal] + " · " : "";
  try {
    const icon = document.querySelector("link[rel=icon]");
    const note = new Notification((d.severity === "critical" ? "Critical: " : "") + alertTitle(el), {
      body: portal + (detail ? detail.textContent.trim() : "Open the dashboard to see it."),
      tag: "siq-alert-" + d.alert,
      icon: icon ? icon.href : undefined,
    });
    note.onclick = () => {
      window.focus();
      if (d.chat) emit("open-chat", { pk: d.chat });
      else if (d.operatorRow) emit("open-operator", { pk: d.operatorRow });
      note.close();
    };
  } catch (e) {}
}

export function init() {
  document.addEventListener("click", (event) => {
    const toggle = event.target.closest("[data-signal]");
    if (toggle) {
      const on = toggle.getAttribute("aria-pressed") !== "true";
      if (toggle.dataset.signal === "desktop") wantDesktop(on); else wantSound(on);
      return;
    }
    if (event.target.closest("[data-signal-ask-yes]")) {
      try { localStorage.setItem(ASKED_KEY, "1"); } catch (e) {}
      wantSound(true);
      wantDesktop(true);
      return;
    }
    if (event.target.closest("[data-signal-ask-no]")) {
      try { localStorage.setItem(ASKED_KEY, "1"); } catch (e) {}
      showSignals();
    }
  });
  on("alerts-synced", ({ rows, initial }) => signalNew(rows, initial));
  showSignals();
}
