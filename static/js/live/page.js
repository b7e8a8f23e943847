// What every module of the live page reads from the page itself: its root element, what kind of
// page it is, the thresholds the server defined (dashboard.selectors.thresholds, rendered as
// data-* attributes on #live by templates/live/page.html), and the two small ways modules
// talk: emit() and on(), DOM events on `document` named "live:…".
export const root = document.getElementById("live");
const data = root ? root.dataset : {};

export const WALLBOARD = data.wallboard === "1";
export const MULTI = Number(data.portalCount) > 1;
// A threshold as the server defined it. There is no number of the script's own to fall back
// on (it would be a second definition): a page without one says so, and nothing takes that
// tone. Only a page with #live has thresholds at all.
function threshold(name) {
  const value = data[name], n = Number(value);
  if (value !== undefined && value !== "" && Number.isFinite(n) && n > 0) return n;
  if (root) console.error("The live page has no " + name + " threshold from the server (data-* on #live).");
  return Infinity;
}
// Seconds: data older than this is stale; a visitor waiting this long shows amber, then red.
export const STALE_AFTER = threshold("staleAfter");
export const WAIT_WARN = threshold("waitWarn");
export const WAIT_BAD = threshold("waitBad");
// Open chats against the seats of available operators at which the utilisation figure shows
// amber, then red: the server gives percent, the figures compare shares.
export const UTILISATION_WARN = threshold("utilisationWarn") / 100;
export const UTILISATION_BAD = threshold("utilisationBad") / 100;

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
