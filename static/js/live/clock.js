// Times: "45s", "6m 07s", "1h 02m", "2d 3h" (static/js/time.js, as dashboard/times.py writes
// them), "3 min ago", and the server's clock (the browser's may be off).
import { root } from "./page.js";

export const TIME = window.SupervisorTime;
export const clock = (seconds) => TIME.duration(seconds);
export function ago(seconds) {
  if (seconds < 5) return "just now";
  if (seconds < 60) return Math.floor(seconds) + " s ago";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
  if (seconds < 172800) return Math.floor(seconds / 3600) + " h ago";
  return Math.floor(seconds / 86400) + " days ago";
}
export function when(value) { return value ? Date.parse(value) : NaN; }
export function num(t) { return isNaN(t) ? Infinity : t; }
// The page says what the server's clock read when it rendered.
let skew = 0;
const server = root ? when(root.dataset.serverNow) : NaN;
if (!isNaN(server) && Math.abs(Date.now() - server) > 2000) skew = Date.now() - server;
export function now() { return Date.now() - skew; }
// Times of day the viewer's way (their clock and zone), as on every page.
export function localise(scope) { TIME.localise(scope); }
