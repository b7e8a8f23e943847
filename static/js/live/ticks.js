// Clocks in rows. Kinds (the server's row cache knows the same, templatetags/supervisor.py
// TICK_KINDS): "wait" (a visitor waiting for pickup), "unanswered" (a connected visitor's last
// message without a reply), "elapsed" (time open, time in a status), and "ago" (in words).
import { WAIT_BAD, WAIT_WARN } from "./page.js";
import { ago, clock, when } from "./clock.js";
import { unansweredAfter } from "./portals.js";

export function waitTone(seconds) {
  return seconds >= WAIT_BAD ? "bad" : seconds >= WAIT_WARN ? "warn" : "";
}
function level(kind, seconds, portal) {
  if (kind === "wait") return waitTone(seconds);
  // Red once the portal's "unanswered" alert is due, amber from half of that; without the rule
  // (turned off, or not known yet), as a wait.
  const due = unansweredAfter[portal];
  const warn = due ? due / 2 : WAIT_WARN, bad = due || WAIT_BAD;
  return seconds >= bad ? "bad" : seconds >= warn ? "warn" : "";
}
// The clocks of an element are found once (el._ticks); forget() makes them be found again.
export function forget(el) { el._ticks = null; }
export function tickRow(el, t) {
  let ticks = el._ticks;
  if (!ticks) {
    ticks = el._ticks = [];
    const holder = el.closest("[data-portal]"), portal = holder ? holder.dataset.portal : "";
    el.querySelectorAll("time[data-tick]").forEach((time) => {
      const kind = time.dataset.tick;
      ticks.push({ el: time, at: when(time.getAttribute("datetime")), kind, toned: kind === "wait" || kind === "unanswered", portal });
    });
  }
  for (const tick of ticks) {
    if (isNaN(tick.at)) continue;
    const seconds = (t - tick.at) / 1000, text = tick.kind === "ago" ? ago(seconds) : clock(seconds);
    if (tick.el.textContent !== text) tick.el.textContent = text;
    if (tick.toned) {
      const tone = level(tick.kind, seconds, tick.portal);
      if ((tick.el.dataset.level || "") !== tone) tick.el.dataset.level = tone;
    }
  }
}
