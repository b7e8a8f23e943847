// What every module of the live page reads from the page itself: its root element, what kind of
// page it is, the thresholds the server defined (dashboard/selectors.py, rendered as data-*
// attributes on #live), and the two small ways modules talk: emit() and on(), DOM events on
// `document` named "live:…".
export const root = document.getElementById("live");
const data = root ? root.dataset : {};

export const WALLBOARD = data.wallboard === "1";
export const MULTI = Number(data.portalCount) > 1;
function seconds(value, fallback) {
  const n = Number(value);
  return value !== undefined && value !== "" && Number.isFinite(n) && n > 0 ? n : fallback;
}
// Seconds: data older than this is stale; a visitor waiting this long shows amber, then red.
export const STALE_AFTER = seconds(data.staleAfter, 120);
export const WAIT_WARN = seconds(data.waitWarn, 60);
export const WAIT_BAD = seconds(data.waitBad, 180);

// The nonce this page's scripts carry: the one <style> the page writes carries it too (a module
// script has no document.currentScript).
const script = document.querySelector("script[data-live-main]");
export const NONCE = (script && script.nonce) || "";

export const collator = new Intl.Collator(undefined, { sensitivity: "base", numeric: true });
// For the browser tests and for measuring (window.SupervisorLive.stats).
export const stats = { messages: 0, lastMs: 0, maxMs: 0, totalMs: 0, rowsPlaced: 0, fullSorts: 0 };

export function emit(name, detail) {
  document.dispatchEvent(new CustomEvent("live:" + name, { detail: detail || {} }));
}
export function on(name, handler) {
  document.addEventListener("live:" + name, (event) => handler(event.detail));
}
