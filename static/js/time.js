// Durations and times of day, each written one way: the twin of dashboard/times.py (the two
// write the same text for the same moment and clock; tests/test_times.py runs both).
//
// A duration carries its units: "45s", "6m 07s", "1h 02m", "2d 3h". A time of day follows the
// viewer's clock, "13:51" or "1:51 PM", in the viewer's zone, after the date when it is not
// today there ("2 Dec, 13:51"). The viewer's choice is on <body data-time-format
// data-time-zone> ("" = as this browser has it). This file also tells the server what this
// browser has (two cookies), so pages rendered there are written the same way.
(function (global) {
  "use strict";
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var WEEKDAYS = { Mon: "Mon", Tue: "Tue", Wed: "Wed", Thu: "Thu", Fri: "Fri", Sat: "Sat", Sun: "Sun" };
  var ZONE_COOKIE = "siq_tz", HOUR_CYCLE_COOKIE = "siq_hc"; // dashboard/times.py reads them

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (!isFinite(seconds)) seconds = 0;
    if (seconds < 60) return seconds + "s";
    if (seconds < 3600) return Math.floor(seconds / 60) + "m " + pad(seconds % 60) + "s";
    if (seconds < 86400) return Math.floor(seconds / 3600) + "h " + pad(Math.floor((seconds % 3600) / 60)) + "m";
    return Math.floor(seconds / 86400) + "d " + Math.floor((seconds % 86400) / 3600) + "h";
  }

  // The calendar and clock readings of a moment in a zone ("" = this browser's).
  var readers = {};
  function reader(zone) {
    if (!readers[zone]) {
      readers[zone] = new Intl.DateTimeFormat("en-US", {
        timeZone: zone || undefined, hourCycle: "h23", weekday: "short",
        year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric",
      });
    }
    return readers[zone];
  }
  function partsOf(date, zone) {
    var out = {};
    reader(zone).formatToParts(date).forEach(function (part) { out[part.type] = part.value; });
    return {
      year: Number(out.year), month: Number(out.month), day: Number(out.day),
      hour: Number(out.hour) % 24, minute: Number(out.minute), second: Number(out.second),
      weekday: WEEKDAYS[out.weekday] || out.weekday,
    };
  }
  function knownZone(zone) {
    if (!zone) return false;
    try { reader(zone); return true; } catch (e) { return false; }
  }

  function timeOfDay(date, clock, seconds) {
    var p = partsOf(date, clock.zone), tail = seconds ? ":" + pad(p.second) : "";
    if (clock.hour12) return ((p.hour % 12) || 12) + ":" + pad(p.minute) + tail + (p.hour < 12 ? " AM" : " PM");
    return pad(p.hour) + ":" + pad(p.minute) + tail;
  }
  function when(date, clock, now, seconds) {
    var p = partsOf(date, clock.zone), today = partsOf(now || new Date(), clock.zone);
    var text = timeOfDay(date, clock, seconds);
    if (p.year !== today.year || p.month !== today.month || p.day !== today.day) {
      text = p.day + " " + MONTHS[p.month - 1] + (p.year !== today.year ? " " + p.year : "") + ", " + text;
    }
    return text;
  }
  function inFull(date, clock) {
    var p = partsOf(date, clock.zone);
    return p.weekday + " " + p.day + " " + MONTHS[p.month - 1] + " " + p.year + ", " + timeOfDay(date, clock, true) + " (" + (clock.zone || "UTC") + ")";
  }

  // --- this browser, and the viewer's choice --------------------------------------------------
  function browserZone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return ""; }
  }
  function browserHourCycle() {
    try {
      var options = new Intl.DateTimeFormat([], { hour: "numeric" }).resolvedOptions();
      return options.hourCycle || (options.hour12 ? "h12" : "h23");
    } catch (e) { return "h23"; }
  }
  var viewerClock = null;
  function viewer() {
    if (viewerClock) return viewerClock;
    var d = (typeof document !== "undefined" && document.body && document.body.dataset) || {};
    var zone = knownZone(d.timeZone) ? d.timeZone : browserZone();
    var cycle = browserHourCycle();
    var hour12 = d.timeFormat === "12h" || (d.timeFormat !== "24h" && (cycle === "h12" || cycle === "h11"));
    viewerClock = { zone: knownZone(zone) ? zone : "UTC", hour12: hour12 };
    return viewerClock;
  }

  // Every <time data-local> in scope: "time" (its time of day), "seconds" (with seconds),
  // "title" (only the tooltip: the text says something else, like "4 minutes ago").
  function localise(scope) {
    if (!scope || !scope.querySelectorAll) return;
    var clock = viewer(), now = new Date();
    var found = Array.prototype.slice.call(scope.querySelectorAll("time[data-local]"));
    if (scope.matches && scope.matches("time[data-local]")) found.push(scope);
    found.forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      var kind = el.getAttribute("data-local");
      if (kind !== "title") {
        var text = when(at, clock, now, kind === "seconds");
        if (el.textContent !== text) el.textContent = text;
      }
      el.title = (el.getAttribute("data-local-label") || "") + inFull(at, clock);
    });
  }

  // The server writes times in this browser's zone and clock when it knows them.
  function tellServer() {
    if (typeof document === "undefined") return;
    var wanted = {}, have = {};
    wanted[ZONE_COOKIE] = browserZone();
    wanted[HOUR_CYCLE_COOKIE] = browserHourCycle();
    document.cookie.split(";").forEach(function (pair) {
      var at = pair.indexOf("=");
      if (at > 0) have[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
    });
    Object.keys(wanted).forEach(function (name) {
      // Zone names and hour cycles are letters, digits and / _ + - : safe in a cookie as they are.
      if (/^[A-Za-z0-9\/_+-]+$/.test(wanted[name]) && have[name] !== wanted[name]) {
        document.cookie = name + "=" + wanted[name] + "; path=/; max-age=31536000; SameSite=Lax";
      }
    });
  }

  var api = {
    duration: duration, timeOfDay: timeOfDay, when: when, inFull: inFull,
    viewer: viewer, localise: localise, browserZone: browserZone, tellServer: tellServer,
  };
  global.SupervisorTime = api;
  if (typeof module === "object" && module.exports) module.exports = api;
  tellServer();
})(typeof window !== "undefined" ? window : globalThis);
