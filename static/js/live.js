// The live page. The server sends rows (templates/live/parts.html) over the websocket and the
// htmx ws extension swaps them by id; this file keeps both tables sorted and filtered, counts the
// key figures, ticks the clocks, says how fresh the data is, runs the drawer (a chat, or an
// operator's panel) and the supervisor actions' small behaviours (templates/actions/parts.html),
// and keeps the socket alive. It reads only data-* attributes and writes only textContent:
// visitor text never goes through innerHTML here.
//
// Cost at 2,000 chats: a message touches a handful of rows, and each is placed by binary
// insertion into the kept order (no full re-sort); a full sort happens only on a snapshot or
// when the user picks another sort. Clocks tick only in rows on screen.
(function () {
  "use strict";
  // This script's CSP nonce: the one <style> it writes carries it (dashboard/settings.py).
  var NONCE = (document.currentScript && document.currentScript.nonce) || "";
  // The filter form filters as one types; Enter must not submit it (no inline handler: CSP).
  var controls = document.getElementById("controls");
  if (controls) controls.addEventListener("submit", function (event) { event.preventDefault(); });
  var root = document.getElementById("live");
  if (!root || !window.htmx || !window.SupervisorTime) return;
  if (performance.mark) performance.mark("live-start");

  var WALLBOARD = root.dataset.wallboard === "1";
  var MULTI = Number(root.dataset.portalCount) > 1;
  var STALE_AFTER = 120; // seconds; dashboard.selectors.STALE_AFTER
  var WAIT_WARN = 60, WAIT_BAD = 180; // seconds a visitor has waited: amber, then red
  var TIME = window.SupervisorTime; // static/js/time.js: durations and times of day, one way
  var RECONNECT_CODES = [1006, 1011, 1012, 1013]; // the ws extension retries these itself
  var collator = new Intl.Collator(undefined, { sensitivity: "base", numeric: true });
  var stats = { messages: 0, lastMs: 0, maxMs: 0, totalMs: 0, rowsPlaced: 0, fullSorts: 0 };

  // --- time ------------------------------------------------------------------------------
  // "45s", "6m 07s", "1h 02m", "2d 3h": the server writes clocks the same way (dashboard/times.py).
  var clock = TIME.duration;
  function ago(seconds) {
    if (seconds < 5) return "just now";
    if (seconds < 60) return Math.floor(seconds) + " s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 172800) return Math.floor(seconds / 3600) + " h ago";
    return Math.floor(seconds / 86400) + " days ago";
  }
  function when(value) { return value ? Date.parse(value) : NaN; }
  // The browser's clock may be off; the page says what the server's clock read when it rendered.
  var skew = 0;
  (function () {
    var server = when(root.dataset.serverNow);
    if (!isNaN(server) && Math.abs(Date.now() - server) > 2000) skew = Date.now() - server;
  })();
  function now() { return Date.now() - skew; }

  // --- portals --------------------------------------------------------------------------------
  function metas() { return document.querySelectorAll("#portal-metas > [data-container='portal-metas']"); }
  // Portals the dashboard keeps live (connected): only these have rows, ages and figures.
  function liveMetas() { return document.querySelectorAll("#portal-metas > [data-container='portal-metas']:not([data-live='0'])"); }
  var portalNames = {};
  // Seconds after which a visitor's unanswered message raises the portal's alert (its rule).
  var unansweredAfter = {};
  function readPortalNames() {
    metas().forEach(function (meta) {
      portalNames[meta.dataset.portal] = meta.dataset.name || "";
      unansweredAfter[meta.dataset.portal] = Number(meta.dataset.unansweredAfter) || 0;
    });
  }
  // Several portals: each row carries a short tag (the portal name's first word) in a colour
  // of its own, with the full name on hover.
  var portalHues = {};
  function portalHue(portal) {
    if (!(portal in portalHues)) portalHues[portal] = (Object.keys(portalHues).length * 137 + 210) % 360;
    return portalHues[portal];
  }
  function shortName(name) {
    var first = (name || "").split(/[\s(]+/).filter(Boolean)[0] || "";
    return first.length > 10 ? first.slice(0, 9) + "…" : first;
  }
  function fillPortalTag(el, portal) {
    if (!MULTI) return;
    var tag = el.querySelector("[data-portal-tag]");
    if (!tag) return;
    var name = portalNames[portal] || "", text = shortName(name);
    if (tag.textContent !== text) {
      tag.textContent = text;
      tag.title = name;
      tag.style.setProperty("--tag-hue", portalHue(portal));
    }
  }

  var operatorNames = {}; // "portal:SalesIQ id" -> name, from the operator rows

  // --- clocks, ticking only in rows on screen -------------------------------------------------
  // Kinds (the server's row cache knows the same, templatetags/supervisor.py TICK_KINDS):
  // "wait" (a visitor waiting for pickup), "unanswered" (a connected visitor's last message
  // without a reply), "elapsed" (time open, time in a status), and "ago" (in words).
  function level(kind, seconds, portal) {
    if (kind === "wait") return seconds >= WAIT_BAD ? "bad" : seconds >= WAIT_WARN ? "warn" : "";
    // Red once the portal's "unanswered" alert is due, amber from half of that; without
    // the rule (turned off, or not known yet), as a wait.
    var due = unansweredAfter[portal];
    var warn = due ? due / 2 : WAIT_WARN, bad = due || WAIT_BAD;
    return seconds >= bad ? "bad" : seconds >= warn ? "warn" : "";
  }
  function tickRow(el, t) {
    var ticks = el._ticks;
    if (!ticks) {
      ticks = el._ticks = [];
      var holder = el.closest("[data-portal]"), portal = holder ? holder.dataset.portal : "";
      el.querySelectorAll("time[data-tick]").forEach(function (time) {
        var kind = time.dataset.tick;
        ticks.push({ el: time, at: when(time.getAttribute("datetime")), kind: kind, toned: kind === "wait" || kind === "unanswered", portal: portal });
      });
    }
    for (var i = 0; i < ticks.length; i++) {
      var tick = ticks[i];
      if (isNaN(tick.at)) continue;
      var seconds = (t - tick.at) / 1000, text = tick.kind === "ago" ? ago(seconds) : clock(seconds);
      if (tick.el.textContent !== text) tick.el.textContent = text;
      if (tick.toned) {
        var tone = level(tick.kind, seconds, tick.portal);
        if ((tick.el.dataset.level || "") !== tone) tick.el.dataset.level = tone;
      }
    }
  }

  // --- a sorted, filtered table ---------------------------------------------------------------
  function Table(options) {
    this.name = options.name;
    this.bodyId = options.bodyId;
    this.parse = options.parse;
    this.sorts = options.sorts;
    this.passes = options.passes;
    this.sort = options.sort;
    this.dir = 1;
    this.records = new Map(); // row id -> record
    this.order = []; // records in display order (hidden rows included)
    this.visible = 0;
    this.headers = document.querySelectorAll("#" + options.tableId + " th[data-sort]");
  }
  Table.prototype.body = function () { return document.getElementById(this.bodyId); };
  Table.prototype.keyOf = function (rec) { return this.sorts[this.sort].key(rec); };
  // A sort may say which parts of its key the direction turns round (`turns`, default all):
  // the column's own figure turns, the rows without one stay after those with one.
  Table.prototype.compare = function (a, b) {
    var ka = a.key, kb = b.key, turns = this.sorts[this.sort].turns;
    for (var i = 0; i < ka.length; i++) {
      var x = ka[i], y = kb[i], c;
      if (typeof x === "string") c = collator.compare(x, y);
      else c = x === y ? 0 : x < y ? -1 : 1; // Infinity (unknown times) sorts last
      if (c) return turns && turns.indexOf(i) < 0 ? c : c * this.dir;
    }
    return a.pk - b.pk;
  };
  // The rows inside the panel's scrolled view: a binary search over the shown rows by their
  // boxes (read before anything is written in a tick, so no forced layout), then a short walk.
  Table.prototype.onScreen = function () {
    var body = this.body(), wrap = body && body.closest(".table-wrap");
    if (!wrap) return [];
    var view = wrap.getBoundingClientRect();
    var top = Math.max(view.top, 0), bottom = Math.min(view.bottom, window.innerHeight);
    var shown = [], i;
    for (i = 0; i < this.order.length; i++) if (this.order[i].visible) shown.push(this.order[i].el);
    var lo = 0, hi = shown.length;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (shown[mid].getBoundingClientRect().bottom <= top) lo = mid + 1;
      else hi = mid;
    }
    var rows = [];
    for (i = lo; i < shown.length; i++) {
      if (shown[i].getBoundingClientRect().top >= bottom) break;
      rows.push(shown[i]);
    }
    return rows;
  };
  Table.prototype.show = function (rec) {
    rec.visible = this.passes(rec);
    if (rec.el.hidden === rec.visible) rec.el.hidden = !rec.visible;
  };
  Table.prototype.adopt = function (el) {
    var rec = this.parse(el);
    rec.el = el;
    rec.id = el.id;
    rec.key = this.keyOf(rec);
    fillPortalTag(el, rec.portal);
    badge(el);
    if (this.name === "operators") {
      operatorNames[rec.portal + ":" + rec.remote] = rec.name;
      if (openOperator && el.id === "op-" + openOperator) el.classList.add("selected");
    } else {
      if (openChat && el.id === "chat-" + openChat) el.classList.add("selected");
      var fill = rec.operator && !rec.operatorName && el.querySelector("[data-operator-fill]");
      if (fill && operatorNames[rec.operator]) {
        // Some SalesIQ dialects name only the operator's id on a chat: show the name the page knows.
        rec.operatorName = operatorNames[rec.operator];
        fill.textContent = rec.operatorName;
        fill.classList.remove("muted");
        rec.key = this.keyOf(rec);
      }
    }
    return rec;
  };
  // Every row again: after a snapshot replaced the body.
  Table.prototype.rebuild = function () {
    var body = this.body();
    if (!body) return;
    this.records.clear();
    var rows = Array.prototype.slice.call(body.children), recs = [];
    for (var i = 0; i < rows.length; i++) {
      if (!rows[i].id) continue;
      var rec = this.adopt(rows[i]);
      recs.push(rec);
      this.records.set(rec.id, rec);
    }
    this.order = recs;
    this.resort();
    for (i = 0; i < recs.length; i++) this.show(recs[i]);
  };
  // A full sort: on a snapshot, or when the user picks another sort.
  Table.prototype.resort = function () {
    var self = this, body = this.body();
    this.order.forEach(function (rec) { rec.key = self.keyOf(rec); });
    this.order.sort(function (a, b) { return self.compare(a, b); });
    stats.fullSorts++;
    var rows = body.children, same = rows.length === this.order.length;
    for (var i = 0; same && i < rows.length; i++) same = rows[i] === this.order[i].el;
    if (!same) {
      var fragment = document.createDocumentFragment();
      this.order.forEach(function (rec) { fragment.appendChild(rec.el); });
      body.appendChild(fragment);
    }
    this.headers.forEach(function (th) {
      var picks = headerSorts(th), active = picks.indexOf(self.sort) >= 0, sort = self.sorts[self.sort];
      var says = self.sorts[active ? self.sort : picks[0]]; // what the order is, or would be
      if (says && says.title && th.title !== says.title) th.title = says.title;
      if (!active || !sort) { th.removeAttribute("aria-sort"); delete th.dataset.dir; return; }
      th.dataset.dir = self.dir < 0 ? "reverse" : "natural";
      var aria = sort.aria;
      if (self.dir < 0 && aria !== "other") aria = aria === "ascending" ? "descending" : "ascending";
      th.setAttribute("aria-sort", aria);
    });
  };
  // The sorts a header's button picks: one (clicking again reverses it), or several that a
  // click goes through in turn (data-sorts).
  function headerSorts(th) { return (th.dataset.sorts || th.dataset.sort).split(" "); }
  // First index whose record sorts after rec (binary search over the kept order).
  Table.prototype.slotFor = function (rec) {
    var lo = 0, hi = this.order.length;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (this.compare(this.order[mid], rec) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  // The rows a message replaced, added or deleted: take them all out of the kept order first
  // (a row deleted by the same message must not serve as anyone's neighbour), then put each
  // one back where it belongs, filtered and ticking.
  Table.prototype.placeAll = function (ids) {
    var self = this;
    ids.forEach(function (id) {
      var old = self.records.get(id);
      if (!old) return;
      var at = self.order.indexOf(old);
      if (at >= 0) self.order.splice(at, 1);
      self.records.delete(id);
    });
    ids.forEach(function (id) { self.place(id); });
  };
  Table.prototype.place = function (id) {
    var el = document.getElementById(id), body = this.body();
    if (!el || !body || el.parentNode !== body) return; // deleted
    var rec = this.adopt(el);
    var slot = this.slotFor(rec), next = this.order[slot];
    this.order.splice(slot, 0, rec);
    this.records.set(id, rec);
    var nextEl = next ? next.el : null;
    if (el.nextElementSibling !== nextEl) body.insertBefore(el, nextEl);
    stats.rowsPlaced++;
    this.show(rec);
    if (rec.visible) tickRow(el, now());
  };
  Table.prototype.refilter = function () {
    for (var i = 0; i < this.order.length; i++) this.show(this.order[i]);
  };
  Table.prototype.count = function () {
    var n = 0;
    for (var i = 0; i < this.order.length; i++) if (this.order[i].visible) n++;
    this.visible = n;
    return n;
  };

  // --- chats ---------------------------------------------------------------------------------
  function num(t) { return isNaN(t) ? Infinity : t; }
  // The Waiting column shows a waiting chat's wait for pickup; the Unanswered column a
  // connected chat's last visitor message without a reply. Each sorts by exactly that, the
  // longest first, and puts the rows with an empty cell after, in the order of the other.
  function waitPart(rec) { return rec.status === "waiting" ? [0, num(rec.waitingSince)] : [1, 0]; }
  function unansweredPart(rec) { return isNaN(rec.unansweredSince) ? [1, 0] : [0, rec.unansweredSince]; }
  // The page's own order: waiting visitors, then unanswered ones, then the oldest chats.
  function waitKey(rec) { return waitPart(rec).concat(unansweredPart(rec), [num(rec.started)]); }
  var CHAT_SORTS = {
    wait: { aria: "descending", turns: [1], key: waitKey },
    unanswered: { aria: "descending", turns: [1], key: function (r) { return unansweredPart(r).concat(waitPart(r), [num(r.started)]); } },
    visitor: { aria: "ascending", key: function (r) { return [r.visitor].concat(waitKey(r)); } },
    operator: { aria: "ascending", key: function (r) { return [r.status === "waiting" ? 0 : 1, r.operatorName].concat(waitKey(r)); } },
    department: { aria: "ascending", key: function (r) { return [r.departmentName].concat(waitKey(r)); } },
    status: { aria: "other", key: function (r) { return [r.status === "waiting" ? 0 : 1, r.awaiting ? 0 : 1].concat(waitKey(r)); } },
    duration: { aria: "descending", key: function (r) { return [num(r.started)]; } },
    last: { aria: "other", key: function (r) { return [r.awaiting ? 0 : 1, num(r.lastAt)]; } },
  };
  function parseChat(el) {
    var d = el.dataset, started = when(d.started), waitingSince = when(d.waitingSince);
    var awaiting = d.awaitingReply === "1", lastAt = when(d.lastAt);
    return {
      pk: Number(d.chat),
      portal: d.portal,
      status: d.status,
      department: d.portal + ":" + d.department,
      departmentName: d.departmentName || "",
      operator: d.operator ? d.portal + ":" + d.operator : "",
      operatorName: d.operatorName || "",
      visitor: d.visitor || "",
      started: started,
      // As selectors.kpis: a waiting chat without its own mark has waited since it started.
      waitingSince: isNaN(waitingSince) ? started : waitingSince,
      lastAt: lastAt,
      awaiting: awaiting,
      // As the row's Unanswered cell (templates/live/parts.html chat_row).
      unansweredSince: d.status === "connected" && awaiting ? lastAt : NaN,
    };
  }
  function chatPasses(rec) {
    if (filters.department && rec.department !== filters.department) return false;
    if (filters.operator && rec.operator !== filters.operator) return false;
    if (filters.status === "awaiting") return rec.awaiting;
    if (filters.status && rec.status !== filters.status) return false;
    return true;
  }

  // --- operators -----------------------------------------------------------------------------
  var PRESENCE_ORDER = { available: 0, busy: 1, away: 2, offline: 3 };
  function presenceKey(r) { return [r.enabled ? 0 : 1, num(PRESENCE_ORDER[r.status]), r.name]; }
  // The Status header switches between the first two (a reversed "needs attention" would
  // only hide the problems again); the address keeps the choice (osort).
  var OPERATOR_SORTS = {
    // Who needs a supervisor (data-attention, dashboard.selectors.OperatorView.needs_attention)
    // first, longest in that state first; then everyone else as "status" orders them.
    attention: {
      aria: "other",
      title: "Needs attention first: over capacity, or busy, away or offline with open chats (longest in that state first); then available, busy, away, offline. Click again for available first.",
      key: function (r) { return r.attention ? [0, num(r.since), r.name] : [1].concat(presenceKey(r)); },
    },
    status: { aria: "other", title: "Available first, then busy, away, offline. Click again for needs attention first.", key: presenceKey },
    name: { aria: "ascending", key: function (r) { return [r.name]; } },
    load: { aria: "descending", key: function (r) { return [r.capacity ? -r.load / r.capacity : 0, -r.load, r.name]; } },
  };
  function parseOperator(el) {
    var d = el.dataset;
    return {
      pk: Number(el.id.slice(3)),
      portal: d.portal,
      remote: d.operator,
      name: d.name || "",
      status: d.status,
      load: Number(d.load) || 0,
      capacity: d.capacity ? Number(d.capacity) : 0,
      departments: (d.departments || "").split(" ").filter(Boolean),
      enabled: d.enabled !== "0",
      attention: d.attention === "1",
      since: when(d.since),
    };
  }
  function operatorPasses(rec) {
    if (filters.department) {
      var split = filters.department.indexOf(":");
      if (rec.portal !== filters.department.slice(0, split)) return false;
      if (rec.departments.indexOf(filters.department.slice(split + 1)) < 0) return false;
    }
    switch (filters.presence) {
      case "online": return rec.status !== "offline";
      case "available": return rec.status === "available";
      case "busy": return rec.status === "busy" || rec.status === "away";
      case "offline": return rec.status === "offline";
    }
    return true;
  }

  // --- filters and sorts, kept in the address so a wallboard link can carry them ---------------
  var FILTERS = ["department", "operator", "status", "presence"];
  var params = new URLSearchParams(window.location.search);
  var filters = {};
  FILTERS.forEach(function (name) { filters[name] = params.get(name) || ""; });

  var chats = new Table({ name: "chats", bodyId: "chats-body", tableId: "chats-table", parse: parseChat, sorts: CHAT_SORTS, passes: chatPasses, sort: "wait" });
  var operators = new Table({ name: "operators", bodyId: "operators-body", tableId: "operators-table", parse: parseOperator, sorts: OPERATOR_SORTS, passes: operatorPasses, sort: "attention" });
  [[chats, "sort", "dir"], [operators, "osort", "odir"]].forEach(function (spec) {
    var table = spec[0], sort = params.get(spec[1]);
    if (sort && table.sorts[sort]) table.sort = sort;
    if (params.get(spec[2]) === "reverse") table.dir = -1;
  });

  function writeAddress() {
    var next = new URLSearchParams(window.location.search);
    FILTERS.forEach(function (name) { if (filters[name]) next.set(name, filters[name]); else next.delete(name); });
    [[chats, "sort", "dir", "wait"], [operators, "osort", "odir", "attention"]].forEach(function (spec) {
      var table = spec[0];
      if (table.sort !== spec[3]) next.set(spec[1], table.sort); else next.delete(spec[1]);
      if (table.dir < 0) next.set(spec[2], "reverse"); else next.delete(spec[2]);
    });
    var query = next.toString();
    history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
    updateWallboardLink(next);
  }
  function updateWallboardLink(current) {
    var link = document.querySelector("[data-wallboard-link]");
    if (!link) return;
    var target = new URLSearchParams(current || window.location.search);
    if (link.dataset.wallboardLink === "enter") target.set("wallboard", "1");
    else target.delete("wallboard");
    var query = target.toString();
    link.setAttribute("href", window.location.pathname + (query ? "?" + query : ""));
  }

  function syncControls() {
    document.querySelectorAll("[data-filter]").forEach(function (select) {
      var value = filters[select.dataset.filter] || "";
      if (value && !Array.prototype.some.call(select.options, function (o) { return o.value === value; })) {
        var option = document.createElement("option"); // a filter from the address the page does not list (yet)
        option.value = value;
        option.textContent = "(not here now)";
        select.appendChild(option);
      }
      select.value = value;
      select.classList.toggle("filtered", !!value);
    });
    var clear = document.querySelector("[data-clear-filters]");
    if (clear) clear.hidden = !FILTERS.some(function (name) { return filters[name]; });
    var summary = document.querySelector("[data-filter-summary]");
    if (summary) {
      var parts = [];
      document.querySelectorAll("[data-filter]").forEach(function (select) {
        if (select.value && select.selectedIndex >= 0) parts.push(select.options[select.selectedIndex].textContent);
      });
      summary.textContent = parts.length ? "Showing " + parts.join(" · ") : "";
      summary.hidden = !parts.length;
    }
  }

  // The operator filter lists the operators the page has, so it is rebuilt when they change.
  var operatorOptionsStale = true;
  function buildOperatorOptions() {
    var select = document.querySelector("select[data-filter='operator']");
    if (!select || !operatorOptionsStale || document.activeElement === select) return;
    operatorOptionsStale = false;
    var seen = {}, items = [];
    operators.order.forEach(function (rec) {
      var value = rec.portal + ":" + rec.remote;
      if (seen[value]) return;
      seen[value] = true;
      items.push({ value: value, label: rec.name + (MULTI ? " · " + (portalNames[rec.portal] || "") : "") });
    });
    items.sort(function (a, b) { return collator.compare(a.label, b.label); });
    var fragment = document.createDocumentFragment(), first = document.createElement("option");
    first.value = "";
    first.textContent = "Any operator";
    fragment.appendChild(first);
    items.forEach(function (item) {
      var option = document.createElement("option");
      option.value = item.value;
      option.textContent = item.label;
      fragment.appendChild(option);
    });
    select.replaceChildren(fragment);
    syncControls();
  }

  // --- key figures (the same definitions as dashboard.selectors.kpis) --------------------------
  var kpi = { open: 0, waiting: 0, oldestWait: Infinity, waitSum: 0, waitCount: 0, available: 0, busy: 0, offline: 0, capacity: 0 };
  function setText(name, text) {
    var el = root.querySelector("[data-kpi='" + name + "']");
    if (el && el.textContent !== text) el.textContent = text;
  }
  function setTone(name, tone) {
    var tile = root.querySelector("[data-kpi-tile='" + name + "']");
    if (tile && (tile.dataset.tone || "") !== tone) tile.dataset.tone = tone;
  }
  function countKpis() {
    var open = 0, waiting = 0, oldest = Infinity, i, rec;
    for (i = 0; i < chats.order.length; i++) {
      rec = chats.order[i];
      if (!rec.visible) continue;
      open++;
      if (rec.status === "waiting") {
        waiting++;
        if (num(rec.waitingSince) < oldest) oldest = rec.waitingSince;
      }
    }
    var available = 0, busy = 0, offline = 0, capacity = 0;
    for (i = 0; i < operators.order.length; i++) {
      rec = operators.order[i];
      if (!rec.visible || !rec.enabled) continue;
      if (rec.status === "available") { available++; capacity += rec.capacity; }
      else if (rec.status === "busy" || rec.status === "away") busy++; // away counts as busy
      else if (rec.status === "offline") offline++;
    }
    var sum = 0, count = 0;
    liveMetas().forEach(function (meta) { sum += Number(meta.dataset.waitSum) || 0; count += Number(meta.dataset.waitCount) || 0; });
    kpi = { open: open, waiting: waiting, oldestWait: oldest, waitSum: sum, waitCount: count, available: available, busy: busy, offline: offline, capacity: capacity };
    setText("open", open.toLocaleString());
    setText("waiting", waiting.toLocaleString());
    setTone("waiting", waiting ? "warn" : "");
    setText("average-wait", count ? clock(sum / count) : "–");
    setText("available", String(available));
    setText("busy", String(busy));
    setText("offline", String(offline));
    if (capacity) {
      var share = open / capacity;
      setText("utilisation", Math.round(share * 100) + "%");
      setText("capacity", open + " of " + capacity + " seats");
      setTone("utilisation", share >= 1 ? "bad" : share >= 0.85 ? "warn" : "");
    } else {
      setText("utilisation", "–");
      setText("capacity", open ? "nobody available" : "no seats open");
      setTone("utilisation", open ? "bad" : "");
    }
    setCounts();
    tickKpis(now());
  }
  function tickKpis(t) {
    if (kpi.oldestWait === Infinity) {
      setText("longest-wait", "–");
      setText("longest-note", "nobody waiting");
      setTone("longest-wait", "");
      return;
    }
    setText("longest-note", kpi.waiting === 1 ? "1 visitor waiting" : kpi.waiting + " visitors waiting");
    var seconds = (t - kpi.oldestWait) / 1000;
    setText("longest-wait", clock(seconds));
    setTone("longest-wait", seconds >= WAIT_BAD ? "bad" : seconds >= WAIT_WARN ? "warn" : "");
  }
  function setCounts() {
    [[chats, "chats", "No open chats right now.", "No chats match these filters."],
     [operators, "operators", "No operators yet.", "No operators match these filters."]].forEach(function (spec) {
      var table = spec[0], total = table.order.length, shown = table.count();
      var count = root.querySelector("[data-count='" + spec[1] + "']");
      var text = shown === total ? total.toLocaleString() : shown.toLocaleString() + " of " + total.toLocaleString();
      if (count && count.textContent !== text) count.textContent = text;
      var empty = root.querySelector("[data-empty='" + spec[1] + "']");
      if (empty) {
        empty.hidden = shown > 0;
        empty.textContent = total ? spec[3] : spec[2];
      }
    });
  }

  // --- freshness: how old each panel's data is, and stale when it is too old ------------------
  var staleStyle = document.createElement("style");
  staleStyle.nonce = NONCE;
  document.head.appendChild(staleStyle);
  function freshness(t) {
    var list = liveMetas(), staleRules = [], quiet = {};
    [["chats", "chatsAsOf"], ["operators", "operatorsAsOf"]].forEach(function (spec) {
      var oldest = Infinity, missing = false, stale = [];
      list.forEach(function (meta) {
        var at = when(meta.dataset[spec[1]]);
        if (isNaN(at)) missing = true;
        else if (at < oldest) oldest = at;
        var age = isNaN(at) ? Infinity : (t - at) / 1000;
        if (meta.dataset.stale === "1" || age > STALE_AFTER) stale.push(meta);
        if (age > STALE_AFTER && age !== Infinity && !meta.querySelector(".banner") && meta.dataset.needsAdmin !== "1") {
          var late = quiet[meta.dataset.portal] || (quiet[meta.dataset.portal] = { name: meta.dataset.name || "SalesIQ", kinds: [], age: 0 });
          late.kinds.push(spec[0]);
          late.age = Math.max(late.age, age);
        }
      });
      var panel = document.getElementById(spec[0] + "-panel");
      if (!panel) return;
      var text = !list.length && metas().length ? "no portal is live"
        : !list.length || (missing && oldest === Infinity) ? "no data yet"
        : "updated " + ago((t - oldest) / 1000) + (missing ? " (some portals: no data yet)" : "");
      var age = panel.querySelector(".age-text");
      if (age && age.textContent !== text) age.textContent = text;
      var state = !stale.length ? "" : stale.length === list.length ? "all" : "some";
      if ((panel.dataset.stale || "") !== state) {
        if (state) panel.dataset.stale = state; else delete panel.dataset.stale;
      }
      var pill = panel.querySelector(".stale-pill");
      if (pill) {
        var label = state === "some" ? "stale: " + stale.map(function (m) { return m.dataset.name; }).join(", ") : "stale";
        if (pill.textContent !== label) pill.textContent = label;
        pill.hidden = !state;
      }
      if (state === "some") {
        stale.forEach(function (meta) {
          if (/^[0-9a-f-]+$/i.test(meta.dataset.portal)) staleRules.push("#" + spec[0] + "-body > tr[data-portal='" + meta.dataset.portal + "']");
        });
      }
    });
    var chatsPanel = document.getElementById("chats-panel"), kpis = document.getElementById("kpis");
    if (kpis && chatsPanel) {
      // The key figures come from the chats and operators shown: as stale as they are.
      var staleAll = chatsPanel.dataset.stale === "all";
      if ((kpis.dataset.stale === "all") !== staleAll) {
        if (staleAll) kpis.dataset.stale = "all"; else delete kpis.dataset.stale;
      }
    }
    var css = staleRules.length ? staleRules.join(",\n") + " { opacity: .45; filter: grayscale(.7); }" : "";
    if (staleStyle.textContent !== css) staleStyle.textContent = css;
    var banner = document.getElementById("stale-note");
    if (banner) {
      // Said once a portal: the server's banner covers what it knows; this covers silence.
      var words = Object.keys(quiet).map(function (portal) {
        var late = quiet[portal];
        return "No fresh " + late.kinds.join(" or ") + " from " + late.name + " for " + ago(late.age).replace(" ago", "") + "; what you see may be out of date.";
      }).join(" ");
      var holder = banner.querySelector("[data-stale-text]");
      if (holder.textContent !== words) holder.textContent = words;
      banner.hidden = !words;
    }
  }

  // --- the connection ---------------------------------------------------------------------------
  var lastMessageAt = 0, connection = "connecting", retry = 0, retryTimer = null, lastWrapper = null;
  function setConnection(state) {
    connection = state;
    var el = document.getElementById("connection");
    if (!el) return;
    el.dataset.state = state;
    var words = state === "open" ? "Live" : state === "closed" ? "Reconnecting…" : state === "ended" ? "Access ended" : "Connecting…";
    var holder = el.querySelector(".connection-state");
    if (holder.textContent !== words) holder.textContent = words;
    tickConnection(Date.now());
  }
  function tickConnection(t) {
    var el = document.querySelector("[data-connection-age]");
    if (!el) return;
    var text = lastMessageAt ? "· " + ago((t - lastMessageAt) / 1000) : "";
    if (el.textContent !== text) el.textContent = text;
    el.title = lastMessageAt ? "Last message from the server " + ago((t - lastMessageAt) / 1000) : "";
  }
  document.addEventListener("htmx:wsConnecting", function () { if (connection !== "closed" && connection !== "ended") setConnection("connecting"); });
  document.addEventListener("htmx:wsOpen", function () { retry = 0; setConnection("open"); });
  document.addEventListener("htmx:wsClose", function (event) {
    if (connection === "ended") return;
    lastWrapper = event.detail.socketWrapper;
    var code = event.detail.event && event.detail.event.code;
    // Access ended while the page was open (dashboard/realtime/consumers.py): stop here and say so.
    if (ACCESS_ENDED[code]) { endAccess(ACCESS_ENDED[code]); return; }
    setConnection("closed");
    if (code === 4401 || code === 4403 || code === 4410) { reloadOnce(); return; } // signed out, access changed, a portal deleted
    if (RECONNECT_CODES.indexOf(code) >= 0) return;
    // Any other close (a server restart sends 1001, a proxy 1000): try again with backoff.
    var delay = Math.min(30000, 500 * Math.pow(2, retry++)) * (0.5 + Math.random() / 2);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(function () { lastWrapper.reconnect(); }, delay);
  });
  window.addEventListener("online", function () {
    if (connection === "closed" && lastWrapper) { clearTimeout(retryTimer); lastWrapper.reconnect(); }
  });
  var ACCESS_ENDED = {
    4430: { text: "Your access to this page has ended — sign in again.", link: "Sign in again", login: true },
    4431: { text: "Your access to a portal on this page has ended.", link: "Load the page again", login: false },
  };
  function endAccess(why) {
    clearTimeout(retryTimer);
    setConnection("ended");
    var live = document.getElementById("live");
    if (live) live.dataset.access = "ended";
    var note = document.getElementById("access-ended");
    if (!note) return;
    var here = window.location.pathname + window.location.search;
    var link = note.querySelector("[data-access-ended-link]");
    note.querySelector("[data-access-ended-text]").textContent = why.text;
    link.textContent = why.link;
    link.href = why.login ? note.dataset.loginUrl + "?next=" + encodeURIComponent(here) : here;
    note.hidden = false;
  }
  function reloadOnce() {
    var key = "siq-live-reloaded", last = 0;
    try { last = Number(sessionStorage.getItem(key)) || 0; sessionStorage.setItem(key, String(Date.now())); } catch (e) {}
    if (Date.now() - last > 30000) window.location.reload();
  }

  // --- applying a message: note what it touched, then place only those rows --------------------
  var touched = { chats: new Set(), operators: new Set(), chatsAll: false, operatorsAll: false, metas: false, transcripts: [] };
  var pending = false, messageStart = 0;
  function note(target) {
    if (!target || !target.id) return;
    var id = target.id, container = target.dataset && target.dataset.container;
    if (id === "chats-body") touched.chatsAll = true;
    else if (id === "operators-body") touched.operatorsAll = true;
    else if (id === "portal-metas" || container === "portal-metas") touched.metas = true;
    else if (id === "alerts-list" || container === "alerts-list") touched.alerts = true;
    else if (id.indexOf("drawer-alert") === 0 || (container && container.indexOf("drawer-alerts-") === 0)) touched.drawerAlerts = true;
    else if (container === "chats-body") touched.chats.add(id);
    else if (container === "operators-body") touched.operators.add(id);
    else if (id.indexOf("drawer-head-") === 0) touched.drawer = true;
    if (!pending) { pending = true; queueMicrotask(flush); }
  }
  var DIRECT = { "chats-body": true, "operators-body": true };
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target, fragment = event.detail.fragment;
    // A row or a whole table body (an outerHTML swap hands over a document fragment; a delete
    // does not): these hold no htmx attributes, so swap them directly. htmx's own swap cleans
    // up and settles every element one by one: ~145,000 events for a 2,000-chat snapshot.
    if (target && fragment && fragment.nodeType === 11 && (DIRECT[target.id] || DIRECT[target.dataset.container])) {
      var fresh = fragment.firstElementChild;
      if (fresh && fresh.id === target.id) {
        event.detail.shouldSwap = false;
        target.replaceWith(fresh);
      }
    }
    note(target);
  });
  // A row the page does not have yet (a chat, an operator, an alert): put it in its container,
  // flush() places it. False when the page has no such container.
  function addRow(content) {
    var container = content && content.dataset && content.dataset.container && document.getElementById(content.dataset.container);
    if (!container) return false;
    content.removeAttribute("hx-swap-oob");
    container.appendChild(content);
    // Chat and operator rows hold no htmx attributes; an alert's buttons do.
    if (content.querySelector("[hx-post]")) htmx.process(content);
    note(content);
    return true;
  }
  // A piece whose target went missing after the siq-live extension looked (a click's answer).
  document.addEventListener("htmx:oobErrorNoTarget", function (event) {
    var content = event.detail.content;
    // htmx looks for targets under the requesting element's root: a button that the websocket's
    // copy of the same change replaced first is no longer in the page, and so neither is anything
    // else "there". The page has the row already.
    if (content && content.id && document.getElementById(content.id)) return;
    addRow(content); // else a drawer line or head for a chat that is not open: nothing to do
  });
  document.addEventListener("htmx:wsBeforeMessage", function () { messageStart = performance.now(); });
  document.addEventListener("htmx:wsAfterMessage", function () {
    lastMessageAt = Date.now();
    flush();
    var spent = performance.now() - messageStart;
    stats.messages++;
    stats.lastMs = spent;
    stats.totalMs += spent;
    if (spent > stats.maxMs) stats.maxMs = spent;
    tickConnection(Date.now());
  });

  function flush() {
    pending = false;
    var t = touched, any = t.chatsAll || t.operatorsAll || t.metas || t.chats.size || t.operators.size;
    touched = { chats: new Set(), operators: new Set(), chatsAll: false, operatorsAll: false, metas: false, transcripts: [] };
    if (t.metas) readPortalNames();
    if (t.operatorsAll) operators.rebuild();
    else if (t.operators.size) operators.placeAll(t.operators);
    if (t.chatsAll) chats.rebuild();
    else if (t.chats.size) chats.placeAll(t.chats);
    if (t.operatorsAll || t.operators.size) { operatorOptionsStale = true; buildOperatorOptions(); }
    // A chat moving to or away from the open operator changes their panel's list of chats.
    if (openOperator && (t.operatorsAll || t.operators.has("op-" + openOperator) || t.chatsAll || t.chats.size)) syncOperatorPanel();
    if (any) {
      countKpis();
      freshness(now());
    }
    t.transcripts.forEach(function (entry) {
      localise(entry.list);
      // New lines are followed only by a reader already at the end.
      if (entry.follow) entry.scroller.scrollTop = entry.scroller.scrollHeight;
      fitLatest(entry.scroller);
    });
    if (t.drawer) { localise(document.getElementById("drawer")); nameDrawer(); }
    if (t.alerts) syncAlerts(false);
    if (t.drawerAlerts) fitDrawerAlerts();
  }

  // --- sorting and filtering by hand -----------------------------------------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest("th[data-sort] .sort");
    if (!button) return;
    var th = button.closest("th"), table = th.closest("#chats-table") ? chats : operators;
    var sorts = headerSorts(th), at = sorts.indexOf(table.sort);
    if (at >= 0 && sorts.length === 1) table.dir = -table.dir;
    else { table.sort = sorts[(at + 1) % sorts.length]; table.dir = 1; }
    table.resort();
    writeAddress();
    tick();
  });
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select.matches("[data-transfer-department]")) { markDepartment(select); return; }
    if (select.matches(".transfer-form input[name=operator_id]")) { select.form.dataset.picked = "1"; return; }
    if (select.matches("[data-portal-select]")) {
      var next = new URLSearchParams(window.location.search);
      if (select.value) next.set("portal", select.value); else next.delete("portal");
      next.delete("department"); // departments and operators belong to a portal
      next.delete("operator");
      window.location.search = next.toString();
      return;
    }
    if (!select.matches("[data-filter]")) return;
    filters[select.dataset.filter] = select.value;
    applyFilters();
  });
  function applyFilters() {
    chats.refilter();
    operators.refilter();
    countKpis();
    syncControls();
    writeAddress();
    tick();
  }
  document.addEventListener("focusin", function (event) {
    if (event.target.matches && event.target.matches("select[data-filter='operator']") && operatorOptionsStale) {
      event.target.blur(); // rebuilding a focused select would close it under the pointer
      buildOperatorOptions();
      event.target.focus();
    }
  });
  var clearButton = document.querySelector("[data-clear-filters]");
  if (clearButton) clearButton.addEventListener("click", function () {
    FILTERS.forEach(function (name) { filters[name] = ""; });
    applyFilters();
  });

  // --- the drawer: a chat, or an operator's panel ---------------------------------------------------
  var openChat = null, openOperator = null, returnFocus = null;
  function drawerSlot() { return document.getElementById("drawer-slot"); }
  function drawerOpen() { var slot = drawerSlot(); return !!(slot && slot.firstElementChild); }
  function markOpen(pk) {
    var before = openChat && document.getElementById("chat-" + openChat);
    if (before) before.classList.remove("selected");
    openChat = pk;
    var row = pk && document.getElementById("chat-" + pk);
    if (row) row.classList.add("selected");
  }
  function markOperator(pk) {
    var before = openOperator && document.getElementById("op-" + openOperator);
    if (before) before.classList.remove("selected");
    openOperator = pk;
    var row = pk && document.getElementById("op-" + pk);
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
    var slot = drawerSlot();
    if (!slot || !slot.firstElementChild) return;
    slot.replaceChildren();
    markOpen(null);
    markOperator(null);
    if (returnFocus && document.contains(returnFocus)) returnFocus.focus();
    returnFocus = null;
  }
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target.closest("[data-close-drawer]")) { closeDrawer(); return; }
    // An action form's Cancel: the form goes, the drawer stays.
    var cancel = target.closest("[data-cancel-action]");
    if (cancel) {
      var area = cancel.closest("[data-action-area]");
      if (area) area.replaceChildren();
      return;
    }
    var chatLink = target.closest("[data-open-chat]");
    if (chatLink) { openDrawer(chatLink.dataset.openChat); return; }
    var operatorLink = target.closest("[data-open-operator]");
    if (operatorLink) { openOperatorPanel(operatorLink.dataset.openOperator); return; }
    if (target.closest("#alerts-panel")) return;
    if (target.closest("#toasts")) return;
    var row = target.closest("#chats-body > tr[data-chat]");
    if (row && !target.closest("a")) { openDrawer(row.dataset.chat); return; }
    var operatorRow = target.closest("#operators-body > tr[id^='op-']");
    if (operatorRow && !target.closest("a")) { openOperatorPanel(operatorRow.id.slice(3)); return; }
    if (drawerOpen() && !target.closest("#drawer-slot") && document.contains(target)) closeDrawer();
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !drawerOpen()) return;
    // Escape peels one layer: an open action form first (what was typed goes with it), then the drawer.
    var form = document.querySelector("#drawer [data-action-area] > .action-form");
    if (form && !form.classList.contains("htmx-request")) {
      form.parentNode.replaceChildren();
      var drawer = document.getElementById("drawer");
      if (drawer) drawer.focus({ preventScroll: true });
      return;
    }
    closeDrawer();
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.matches && target.matches("[data-action-area]")) {
      // A form just opened: in view, and the first field ready for the keyboard.
      target.scrollIntoView({ block: "nearest" });
      var field = target.querySelector(".action-form select, .action-form textarea");
      if (field) field.focus({ preventScroll: true });
      return;
    }
    if (target !== drawerSlot()) return;
    var drawer = document.getElementById("drawer");
    if (!drawer) return;
    nameDrawer();
    localise(drawer);
    // A chat opens at its head: who, where, what they asked. "Latest message" goes to the end.
    var scroller = drawer.dataset.chat && drawer.querySelector("[data-drawer-scroll]");
    if (scroller) scroller.scrollTop = 0;
    if (drawer.dataset.chat) drawerShown(drawer.dataset.chat); // lines pushed while it loaded
    fitLatest(scroller);
    if (drawer.matches(".operator-drawer")) tickRow(drawer, now());
    fitDrawerAlerts();
    drawer.focus({ preventScroll: true });
  });
  // "Latest message ↓" shows while the transcript's end is out of view.
  function atTranscriptEnd(scroller) {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
  }
  function fitLatest(scroller) {
    var button = scroller && scroller.querySelector("[data-jump-latest]");
    if (!button) return;
    var hide = !scroller.querySelector(".transcript > li[id]") || atTranscriptEnd(scroller);
    if (button.hidden !== hide) button.hidden = hide;
  }
  document.addEventListener("scroll", function (event) {
    var scroller = event.target;
    if (scroller.matches && scroller.matches("#drawer [data-drawer-scroll]")) fitLatest(scroller);
  }, true);
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-jump-latest]");
    var scroller = button && button.closest("[data-drawer-scroll]");
    if (!scroller) return;
    scroller.scrollTop = scroller.scrollHeight;
    fitLatest(scroller);
  });
  document.addEventListener("htmx:responseError", function (event) {
    if (event.detail.target !== drawerSlot()) return;
    var aside = document.createElement("aside"), bar = document.createElement("div"), close = document.createElement("button"), text = document.createElement("p");
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
    var what = openOperator ? "operator" : "chat";
    text.textContent = event.detail.xhr && event.detail.xhr.status === 404
      ? (openOperator ? "This operator is no longer here." : "This chat is no longer here: it may have ended, or you no longer have access to its portal.")
      : "The " + what + " could not be loaded. Try again in a moment.";
    aside.appendChild(bar);
    aside.appendChild(text);
    drawerSlot().replaceChildren(aside);
  });

  // The operator panel follows the operator's row: status, time in it, and load.
  function syncOperatorPanel() {
    var panel = document.querySelector("#drawer.operator-drawer");
    var row = openOperator && document.getElementById("op-" + openOperator);
    if (!panel || !row || panel.dataset.operator !== String(openOperator)) return;
    var presence = panel.querySelector("[data-panel-presence]"), status = row.querySelector(".o-status");
    if (presence && status && presence.dataset.status !== row.dataset.status + "@" + row.dataset.since) {
      presence.dataset.status = row.dataset.status + "@" + row.dataset.since;
      presence.replaceChildren.apply(presence, Array.prototype.map.call(status.childNodes, function (node) { return node.cloneNode(true); }));
      panel._ticks = null;
      tickRow(panel, now());
      // "Now Available" under the buttons is old news once the status changed again (a drain,
      // SalesIQ itself); a refusal stays: its advice still holds.
      var answer = panel.querySelector("[data-status-outcome] .status-answer");
      if (answer && answer.dataset.sets !== row.dataset.status && answer.querySelector("[data-state=done]")) answer.remove();
    }
    // The status buttons too: the current one is marked and cannot be sent again.
    var form = panel.querySelector(".status-form");
    if (form && !form.classList.contains("htmx-request")) {
      form.querySelectorAll("button[name=status]").forEach(function (button) {
        var current = button.value === row.dataset.status;
        button.disabled = current;
        if (current) button.setAttribute("aria-current", "true"); else button.removeAttribute("aria-current");
      });
    }
    var load = panel.querySelector("[data-panel-load]"), d = row.dataset;
    if (load) {
      var text = d.load + (d.capacity ? " of " + d.capacity : "");
      if (load.textContent !== text) load.textContent = text;
    }
    syncPanelChats(panel);
  }
  // The panel's open chats follow the chats table: a chat moved away (a drain, a transfer) or
  // ended leaves the list, one picked up joins it. Built from the rows' own data, as text.
  function syncPanelChats(panel) {
    var section = panel.querySelector("[data-panel-chats]");
    if (!section) return;
    var remote = section.dataset.remote, portal = section.dataset.portal;
    var rows = Array.prototype.filter.call(document.querySelectorAll("#chats-body > tr[data-chat]"), function (row) {
      return row.dataset.operator === remote && row.dataset.portal === portal;
    });
    var key = rows.map(function (row) { return row.dataset.chat + ":" + row.dataset.status; }).join(",");
    if (section.dataset.chats === key) return;
    section.dataset.chats = key;
    var list = section.querySelector(".op-chats"), none = section.querySelector("[data-panel-no-chats]");
    var count = section.querySelector("[data-panel-chat-count]");
    list.replaceChildren.apply(list, rows.map(panelChat));
    list.hidden = !rows.length;
    if (none) none.hidden = !!rows.length;
    if (count) count.textContent = String(rows.length);
    // Nothing left to drain: the preview says so only when asked, so the button goes quiet.
    var preview = panel.querySelector("[data-drain-preview]");
    if (preview) {
      preview.disabled = !rows.length;
      if (rows.length) preview.removeAttribute("title"); else preview.title = "No open chats to move";
    }
    panel._ticks = null;
    tickRow(panel, now());
  }
  function panelChat(row) {
    var item = document.createElement("li"), button = document.createElement("button");
    var visitor = document.createElement("span"), pill = document.createElement("span");
    var department = document.createElement("span"), time = document.createElement("time");
    var status = row.querySelector(".c-status .pill");
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
    button.appendChild(visitor);
    button.appendChild(pill);
    button.appendChild(department);
    button.appendChild(time);
    item.appendChild(button);
    return item;
  }
  // The status buttons stay after a change (its outcome shows below them): once the answer is
  // in, mark the status the operator's row has now (a push during the request was skipped).
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.detail.target && event.detail.target.matches && event.detail.target.matches("[data-status-outcome]")) syncOperatorPanel();
  });

  // --- supervisor actions (templates/actions/parts.html) --------------------------------------------
  // Pending at once: htmx puts `htmx-request` on the form and disables its fieldset as it sends
  // (hx-disabled-elt) and drops a second submit while the first is under way (hx-sync); the
  // button that was clicked says "Sending to SalesIQ…" (CSS, from the mark set here).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches(".action-form")) return;
    if (!event.defaultPrevented) {
      // htmx takes a new form over when it settles (~20 ms after the swap); a submit before
      // that would leave the page as a plain GET. Hand it to htmx instead.
      event.preventDefault();
      htmx.process(form);
      var submitter = event.submitter;
      setTimeout(function () { if (document.contains(form)) form.requestSubmit(submitter || undefined); }, 0);
      return;
    }
    var button = event.submitter || form.querySelector("button[type=submit]");
    form.querySelectorAll(".is-sending").forEach(function (el) { if (el !== button) el.classList.remove("is-sending"); });
    if (button) button.classList.add("is-sending");
    showProblem(form, "");
  });
  function showProblem(scope, text) {
    var holder = scope.querySelector("[data-form-problem]");
    if (!holder) {
      if (!text) return;
      holder = document.createElement("p");
      holder.className = "form-problem";
      holder.setAttribute("role", "alert");
      holder.setAttribute("data-form-problem", "");
      scope.appendChild(holder);
    }
    holder.textContent = text;
    holder.hidden = !text;
  }
  // The request itself failed (the outcome of an action that ran always comes back as 200).
  // The form keeps its idempotency key, so trying again can never act twice.
  document.addEventListener("htmx:responseError", function (event) {
    var elt = event.detail.elt, target = event.detail.target, xhr = event.detail.xhr;
    var scope = elt && elt.matches && elt.matches(".action-form") ? elt
      : target && target.matches && target.matches("[data-action-area]") ? target : null;
    if (!scope) return;
    var status = xhr ? xhr.status : 0, body = xhr ? (xhr.responseText || "").trim() : "", text;
    // 400 out of date, 409 a form used for something else, 429 too many refused tries: words.
    if ((status === 400 || status === 409 || status === 429) && body && body.length < 300 && body.indexOf("<") < 0) text = body;
    else if (status === 403) text = "Your role may not act on this portal; nothing was sent to SalesIQ.";
    else if (status === 404) text = "This chat or operator is no longer here; nothing was sent to SalesIQ.";
    else text = "The dashboard could not finish this (error " + status + "). Trying again is safe: the same form never acts twice.";
    showProblem(scope, text);
  });
  document.addEventListener("htmx:sendError", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.matches) return;
    var scope = elt.matches(".action-form") ? elt : elt.closest("#drawer") && elt.closest(".drawer-tools, .drain-box") ? elt.parentNode : null;
    if (scope) showProblem(scope, "No answer from the dashboard: check the connection. Trying again is safe: the same form never acts twice.");
  });

  // The transfer picker: which operators belong to the department picked (and so are
  // suggested), best choices first for that department. The rank is the server's
  // (dashboard.selectors.Choice.rank_for): each pick carries its place in the department
  // picked and elsewhere.
  function markDepartment(select) {
    var department = select.value || select.dataset.chatDepartment || "";
    var picks = Array.prototype.slice.call(select.form.querySelectorAll(".pick[data-departments]"));
    picks.forEach(function (pick) {
      var inside = !department || pick.dataset.departments.split(" ").indexOf(department) >= 0 ? "1" : "0";
      if (pick.dataset.inDepartment !== inside) pick.dataset.inDepartment = inside;
      var suggested = inside === "1" && pick.dataset.status === "available" && pick.dataset.room !== "0";
      if (suggested) pick.dataset.suggested = "1"; else delete pick.dataset.suggested;
      pick._place = Number(inside === "1" ? pick.dataset.placeInside : pick.dataset.placeOutside);
    });
    if (!picks.length) return;
    picks.sort(function (a, b) { return a._place - b._place; });
    var list = picks[0].parentNode;
    picks.forEach(function (pick) { list.appendChild(pick); }); // "Anyone free" stays first
    // A form that picks the best operator for the supervisor (reference dialect) picks the
    // best one for this department, until the supervisor picks someone.
    if (!select.form.dataset.picked) {
      var checked = list.querySelector(".pick[data-departments] input:checked");
      var best = list.querySelector(".pick[data-departments] input:not(:disabled)");
      if (checked && best && checked !== best) best.checked = true;
    }
  }

  // An outcome pushed over the websocket (SalesIQ's answer arrived, or its confirming webhook)
  // replaces the outcome on the page by id. When the page no longer shows it (the drawer was
  // closed, or the action was taken in another tab), htmx would log an error for the missing
  // target: take the message before htmx does. SalesIQ's answer to a transfer (accepted or
  // declined) is worth a toast, since it comes after the supervisor has moved on; the rest
  // (an immediate result the acting form shows itself, an end SalesIQ confirms) goes quietly.
  var OUTCOME = /^\s*<div id="action-(\d+)"/;
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    var message = event.detail.message;
    if (typeof message !== "string" || message.length > 20000) return;
    var match = OUTCOME.exec(message.slice(0, 60));
    if (!match || document.getElementById("action-" + match[1])) return;
    event.preventDefault();
    lastMessageAt = Date.now();
    // The server's own template output (autoescaped), parsed inert; only its text is used.
    var outcome = new DOMParser().parseFromString(message, "text/html").querySelector(".action-outcome");
    // Not on a wallboard: a screen across the room is no place for one supervisor's news.
    if (!WALLBOARD && outcome && outcome.dataset.kind === "transfer" && outcome.dataset.confirmed === "1") toast(outcome);
  });

  // Every change to a chat also carries its drawer's head and new transcript lines, and an
  // alert its row in a drawer, for the pages that have that drawer open; a resolved alert or an
  // ended chat is deleted by id. Pages without the target would make htmx log an error for each
  // (a first poll of 250 chats: 750 of them): drop such pieces before htmx swaps. A new row (a
  // chat, an operator, an alert) has no target yet either: put it in its container here, where
  // htmx would only log that it found none.
  //
  // The server gives hx-swap-oob to each top-level piece of a message and to nothing inside
  // one (templates/live/parts.html), so a message of any size splits at those marks without
  // being parsed; only a piece that needs handling is parsed, on its own.
  var OOB_MARK = 'hx-swap-oob="', SPACE = /\s/;
  function pieces(text) {
    var found = [], from = 0;
    for (;;) {
      var mark = text.indexOf(OOB_MARK, from);
      if (mark < 0) break;
      if (!SPACE.test(text.charAt(mark - 1))) { from = mark + OOB_MARK.length; continue; }
      var start = text.lastIndexOf("<", mark), close = text.indexOf(">", mark);
      if (start < 0 || close < 0) break;
      var head = text.slice(start, close + 1), tag = /^<([a-zA-Z]+)/.exec(head);
      var oob = text.slice(mark + OOB_MARK.length, text.indexOf('"', mark + OOB_MARK.length));
      var id = /\sid="([^"]*)"/.exec(head);
      found.push({ start: start, tag: tag ? tag[1].toLowerCase() : "", oob: oob, id: id ? id[1] : "", container: /\sdata-container=/.test(head) });
      from = close + 1;
    }
    // A piece ends with its own closing tag before the next piece begins.
    for (var i = 0; i < found.length; i++) {
      var limit = i + 1 < found.length ? found[i + 1].start : text.length;
      var closing = "</" + found[i].tag + ">", at = text.lastIndexOf(closing, limit - closing.length);
      found[i].end = at >= found[i].start ? at + closing.length : limit;
    }
    return found;
  }
  function parsePiece(html) {
    var holder = document.createElement("template");
    holder.innerHTML = html; // the server's own template output (autoescaped), parsed inert
    return holder.content.firstElementChild;
  }
  // A chat's transcript lines: each line once (the drawer's own load and the push of the same
  // lines race), in time order. Lines for a drawer still loading wait for it.
  var TRANSCRIPT = "beforeend:#transcript-";
  var waitingLines = { chat: null, lines: [] };
  function sentAt(line) {
    var time = line.querySelector("time[datetime]");
    return time ? num(when(time.getAttribute("datetime"))) : Infinity;
  }
  function addLines(list, lines) {
    var scroller = list.closest("[data-drawer-scroll]");
    var atEnd = scroller && scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
    var added = 0;
    lines.forEach(function (line) {
      if (!line.id || document.getElementById(line.id)) return;
      var at = sentAt(line), before = null;
      for (var node = list.lastElementChild; node && node.id && sentAt(node) > at; node = node.previousElementSibling) before = node;
      list.insertBefore(line, before);
      added++;
    });
    if (!added) return;
    touched.transcripts.push({ list: list, scroller: scroller, follow: atEnd });
    if (!pending) { pending = true; queueMicrotask(flush); }
  }
  function takeLines(pk, html) {
    var ol = parsePiece(html), lines = ol ? Array.prototype.slice.call(ol.children) : [];
    var list = document.getElementById("transcript-" + pk);
    if (list) addLines(list, lines);
    else if (String(openChat) === pk) {
      if (waitingLines.chat !== pk) waitingLines = { chat: pk, lines: [] };
      waitingLines.lines = waitingLines.lines.concat(lines);
    }
  }
  function drawerShown(pk) {
    var held = waitingLines;
    waitingLines = { chat: null, lines: [] };
    var list = document.getElementById("transcript-" + pk);
    if (list && held.chat === String(pk)) addLines(list, held.lines);
  }
  // What of ``text`` htmx may swap: pieces whose target the page has (transcript lines are
  // placed here, once each).
  function forThisPage(text) {
    var found = pieces(text);
    if (!found.length) return text;
    var kept = [], at = 0, changed = false;
    found.forEach(function (piece) {
      var html = text.slice(piece.start, piece.end), keep;
      if (piece.oob.indexOf(TRANSCRIPT) === 0) {
        takeLines(piece.oob.slice(TRANSCRIPT.length), html);
        keep = false;
      } else if (piece.oob === "true" || piece.oob === "delete") {
        keep = !!piece.id && !!document.getElementById(piece.id);
        if (!keep && piece.oob === "true" && piece.container) addRow(parsePiece(html));
      } else {
        keep = true; // no other kind is sent; htmx knows what to do with it
      }
      if (keep) return;
      kept.push(text.slice(at, piece.start));
      at = piece.end;
      changed = true;
    });
    if (!changed) return text;
    kept.push(text.slice(at));
    return kept.join("");
  }
  htmx.defineExtension("siq-live", {
    transformResponse: function (text) {
      return typeof text === "string" ? forThisPage(text) : text;
    },
  });
  // The answer to a click (acknowledge, snooze) whose button the websocket's copy of the same
  // change replaced while the request was under way: the page shows that change already, and
  // htmx would look for the answer's targets around the detached button (this extension no
  // longer applies there), find none and log an error for each. Its events still reach the
  // button itself.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.addEventListener || !elt.closest || !elt.closest("#live")) return;
    elt.addEventListener("htmx:beforeOnLoad", function (loaded) {
      if (!document.contains(elt)) loaded.preventDefault();
    }, { once: true });
  });

  var TOAST_LIMIT = 4, TOAST_MS = 20000;
  function toasts() {
    var holder = document.getElementById("toasts");
    if (!holder) {
      holder = document.createElement("div");
      holder.id = "toasts";
      holder.className = "toasts";
      holder.setAttribute("role", "status");
      holder.setAttribute("aria-live", "polite");
      document.body.appendChild(holder);
    }
    return holder;
  }
  function toast(outcome) {
    var d = outcome.dataset, holder = toasts();
    var card = document.createElement("div"), body = document.createElement("div"), title = document.createElement("p");
    var line = document.createElement("p"), close = document.createElement("button"), mark = document.createElement("span");
    card.className = "toast";
    card.dataset.state = d.state || d.outcome || "";
    card.dataset.action = d.action || "";
    mark.className = "outcome-mark";
    mark.setAttribute("aria-hidden", "true");
    body.className = "toast-body";
    title.className = "toast-title";
    // The state in the server's words (dashboard.models.ActionState), as the drawer has it.
    var state = outcome.querySelector(".outcome-state");
    title.textContent = "Transfer of " + (d.subject || "a visitor") + " " + (state ? state.textContent.trim().toLowerCase() : d.state);
    line.className = "toast-line";
    var said = outcome.querySelector(".outcome-line");
    line.textContent = said ? said.textContent.trim() : "";
    body.appendChild(title);
    body.appendChild(line);
    if (d.chat && document.getElementById("chat-" + d.chat)) {
      var open = document.createElement("button");
      open.type = "button";
      open.className = "toast-open";
      open.setAttribute("data-open-chat", d.chat);
      open.textContent = "Open the chat";
      body.appendChild(open);
    }
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", function () { card.remove(); });
    card.appendChild(mark);
    card.appendChild(body);
    card.appendChild(close);
    holder.appendChild(card);
    while (holder.children.length > TOAST_LIMIT) holder.firstElementChild.remove();
    // A declined transfer needs the supervisor: it stays until dismissed.
    if (card.dataset.state !== "declined") {
      var fade = function () {
        if (card.matches(":hover, :focus-within")) setTimeout(fade, 4000);
        else card.remove();
      };
      setTimeout(fade, TOAST_MS);
    }
  }

  // --- alerts (templates/alerts/parts.html) ---------------------------------------------------------
  // The panel lists the open alerts, what needs someone first; chat and operator rows carry a
  // badge; the page title counts the alerts nobody has acknowledged or snoozed. A new one of
  // those sounds and, while the page is not in front, shows a desktop notification, once per
  // alert across this user's tabs and reloads. Buttons show only where the user may act (the
  // server checks again).
  var ACT_PORTALS = (root.dataset.actPortals || "").split(",").filter(Boolean);
  var SEVERITY_ORDER = { critical: 0, warning: 1, info: 2 };
  var BASE_TITLE = document.title;
  var alertIndex = {}; // row id ("chat-<pk>", "op-<pk>") -> [{ severity, attention, title }]
  function alertList() { return document.getElementById("alerts-list"); }
  // Open, snoozed (until its time is up) or acknowledged, as of now.
  function effective(el, t) {
    var d = el.dataset;
    if (d.state === "acknowledged") return "acknowledged";
    if (d.state === "snoozed" && when(d.snoozedUntil) > t) return "snoozed";
    return "open";
  }
  function fitAlertRow(el, t) {
    var state = effective(el, t);
    if (el.dataset.effective !== state) el.dataset.effective = state;
    var may = !WALLBOARD && ACT_PORTALS.indexOf(el.dataset.portal) >= 0 ? "1" : "0";
    if (el.dataset.canAct !== may) el.dataset.canAct = may;
    if (!el._localised) { localise(el); el._localised = true; }
    fillPortalTag(el, el.dataset.portal);
    tickRow(el, t);
  }
  function compareAlerts(a, b) {
    var order = { open: 0, snoozed: 1, acknowledged: 2 };
    return (order[a.dataset.effective] - order[b.dataset.effective])
      || (num(SEVERITY_ORDER[a.dataset.severity]) - num(SEVERITY_ORDER[b.dataset.severity]))
      || (when(a.dataset.raised) - when(b.dataset.raised))
      || (Number(a.dataset.alert) - Number(b.dataset.alert));
  }
  function syncAlerts(initial) {
    var list = alertList();
    if (!list) return;
    var t = now(), rows = Array.prototype.filter.call(list.children, function (el) { return el.dataset.alert; });
    rows.forEach(function (el) { fitAlertRow(el, t); });
    var sorted = rows.slice().sort(compareAlerts), same = sorted.length === list.children.length;
    for (var i = 0; same && i < sorted.length; i++) same = list.children[i] === sorted[i];
    if (!same) sorted.forEach(function (el) { list.appendChild(el); });
    // Badges: for every row that has or had an alert.
    var index = {}, counts = { open: 0, snoozed: 0, acknowledged: 0 };
    sorted.forEach(function (el) {
      var d = el.dataset, entry = { severity: d.severity, attention: d.effective === "open", el: el };
      counts[d.effective]++;
      if (d.chat) (index["chat-" + d.chat] = index["chat-" + d.chat] || []).push(entry);
      if (d.operatorRow) (index["op-" + d.operatorRow] = index["op-" + d.operatorRow] || []).push(entry);
    });
    var before = alertIndex;
    alertIndex = index;
    Object.keys(before).concat(Object.keys(index)).forEach(function (id) {
      var row = document.getElementById(id);
      if (row) badge(row);
    });
    // The panel's words, its count and the page title.
    var panel = document.getElementById("alerts-panel");
    if (panel) {
      panel.dataset.empty = sorted.length ? "0" : "1";
      // The panel's edge: the worst severity still needing someone.
      var worst = sorted.filter(function (el) { return el.dataset.effective === "open"; })[0];
      panel.dataset.attention = worst ? worst.dataset.severity : "";
      var parts = [];
      if (counts.open) parts.push(counts.open + (counts.open === 1 ? " needs" : " need") + " attention");
      if (counts.snoozed) parts.push(counts.snoozed + " snoozed");
      if (counts.acknowledged) parts.push(counts.acknowledged + " acknowledged");
      var words = parts.length ? parts.join(" · ") : "No open alerts.";
      var summary = panel.querySelector("[data-alerts-summary]");
      if (summary && summary.textContent !== words) summary.textContent = words;
      var count = panel.querySelector("[data-count='alerts']");
      var total = sorted.length ? String(sorted.length) : "";
      if (count && count.textContent !== total) count.textContent = total;
    }
    var title = counts.open ? "(" + counts.open + ") " + BASE_TITLE : BASE_TITLE;
    if (document.title !== title) document.title = title;
    signalNew(sorted, initial);
    fitAlertList();
  }

  // --- the alert panel's height: whole rows only, and how many more below (issue 12) ----------
  // live.css gives the list a share of the window's height; it shows as many whole rows as fit
  // in that share, so no row is cut at its edge and the chats and operators stay in view, and
  // the panel's head says how many rows are below the edge (a click scrolls to them).
  function fitAlertList() {
    var list = alertList(), more = document.querySelector("[data-alerts-more]");
    if (!list) return;
    list.style.maxHeight = "";
    var share = list.getBoundingClientRect().height;
    if (list.scrollHeight > list.clientHeight + 1) {
      var top = list.getBoundingClientRect().top - list.scrollTop, fit = 0;
      for (var i = 0; i < list.children.length; i++) {
        var row = list.children[i];
        if (!row.offsetHeight) continue;
        var bottom = row.getBoundingClientRect().bottom - top;
        if (bottom > share + 0.5) break;
        fit = bottom;
      }
      if (fit) list.style.maxHeight = Math.floor(fit) + "px";
    }
    countAlertsBelow(list, more);
  }
  function countAlertsBelow(list, more) {
    if (!more) return;
    var edge = list.getBoundingClientRect().bottom - 1, below = 0;
    Array.prototype.forEach.call(list.children, function (row) {
      if (row.offsetHeight && row.getBoundingClientRect().top >= edge) below++;
    });
    var words = below ? below + " more below ↓" : "";
    if (more.textContent !== words) more.textContent = words;
    more.hidden = !below;
  }
  document.addEventListener("scroll", function (event) {
    if (event.target && event.target.id === "alerts-list") countAlertsBelow(event.target, document.querySelector("[data-alerts-more]"));
  }, true);
  document.addEventListener("click", function (event) {
    if (!event.target.closest || !event.target.closest("[data-alerts-more]")) return;
    var list = alertList();
    if (list) list.scrollBy({ top: list.clientHeight, behavior: "smooth" });
  });
  var refitAlerts = 0;
  window.addEventListener("resize", function () {
    cancelAnimationFrame(refitAlerts);
    refitAlerts = requestAnimationFrame(fitAlertList);
  });
  // Every second: a snooze that ran out puts its alert back in front (and signals it again).
  function tickAlerts(t) {
    var list = alertList();
    if (!list) return;
    var changed = false;
    Array.prototype.forEach.call(list.children, function (el) {
      if (!el.dataset.alert) return;
      if (effective(el, t) !== el.dataset.effective) changed = true;
      tickRow(el, t);
    });
    if (changed) syncAlerts(false);
    document.querySelectorAll("#drawer .drawer-alerts-list > li[data-alert]").forEach(function (el) { fitAlertRow(el, t); });
  }
  function fitDrawerAlerts() {
    var t = now();
    document.querySelectorAll("#drawer .drawer-alerts-list > li[data-alert]").forEach(function (el) {
      el._localised = false;
      fitAlertRow(el, t);
    });
  }
  // An alert's title as its row reads now (the server renders it from the chat or operator as
  // they are, with a clock that ticks here); data-title is the same words as rendered.
  function alertTitle(el) {
    var title = el.querySelector(".alert-title");
    return title ? title.textContent.replace(/\s+/g, " ").trim() : el.dataset.title || "";
  }
  function badgeTitle(entries) {
    return entries.map(function (e) { return alertTitle(e.el); }).join("\n");
  }
  // A badge's tooltip is read when the pointer reaches it: the figures in it are those of now.
  document.addEventListener("mouseover", function (event) {
    var mark = event.target.closest && event.target.closest(".row-alert");
    var row = mark && mark.closest("tr[id]"), entries = row && alertIndex[row.id];
    if (entries && entries.length) mark.title = badgeTitle(entries);
  });
  // A chat's or an operator's row: a mark for its open alerts, in the worst one's tone; muted
  // when each of them is acknowledged or snoozed.
  function badge(row) {
    var entries = alertIndex[row.id], mark = row.querySelector(".row-alert");
    if (!entries || !entries.length) {
      if (mark) mark.remove();
      if (row.dataset.alertLevel) delete row.dataset.alertLevel;
      return;
    }
    var worst = entries.slice().sort(function (a, b) {
      return (b.attention - a.attention) || (num(SEVERITY_ORDER[a.severity]) - num(SEVERITY_ORDER[b.severity]));
    })[0];
    var level = worst.attention ? worst.severity : "quiet";
    if (row.dataset.alertLevel !== level) row.dataset.alertLevel = level;
    if (!mark) {
      mark = document.createElement("span");
      mark.className = "row-alert";
      var cell = row.querySelector(".c-visitor, .o-name");
      if (cell) cell.insertBefore(mark, cell.firstChild);
    }
    var text = entries.length > 1 ? String(entries.length) : "!";
    if (mark.textContent !== text) mark.textContent = text;
    mark.title = badgeTitle(entries);
    mark.setAttribute("aria-label", entries.length === 1 ? "1 open alert" : entries.length + " open alerts");
  }

  // Signals: the user's choice, kept on the server; the browser's permission for notifications.
  var signals = { desktop: root.dataset.signalDesktop === "1", sound: root.dataset.signalSound === "1" };
  var SIGNALLED_KEY = "siq-signalled-" + (root.dataset.user || ""), ASKED_KEY = "siq-signals-asked-" + (root.dataset.user || "");
  var chime = null;
  function csrf() {
    try { return JSON.parse(root.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (e) { return ""; }
  }
  function notificationsAllowed() { return "Notification" in window && Notification.permission === "granted"; }
  function showSignals() {
    document.querySelectorAll("[data-signal]").forEach(function (button) {
      var on = !!signals[button.dataset.signal];
      if (button.dataset.signal === "desktop" && on && "Notification" in window && Notification.permission !== "granted") on = false;
      button.setAttribute("aria-pressed", on ? "true" : "false");
      var state = button.querySelector(".signal-state");
      if (state) state.textContent = on ? "on" : "off";
    });
    var ask = document.querySelector("[data-signal-ask]");
    if (ask) {
      var asked = false;
      try { asked = !!localStorage.getItem(ASKED_KEY); } catch (e) {}
      ask.hidden = asked || signals.desktop || signals.sound;
    }
  }
  function signalProblem(text) {
    var holder = document.querySelector("[data-signal-problem]");
    if (!holder) return;
    holder.textContent = text;
    holder.hidden = !text;
  }
  function saveSignals(changes) {
    Object.keys(changes).forEach(function (name) { signals[name] = changes[name]; });
    showSignals();
    var body = new URLSearchParams();
    Object.keys(changes).forEach(function (name) { body.set(name, changes[name] ? "1" : "0"); });
    return fetch(root.dataset.signalsUrl, {
      method: "POST", credentials: "same-origin", body: body,
      headers: { "X-CSRFToken": csrf(), "Content-Type": "application/x-www-form-urlencoded" },
    }).then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
      signalProblem("");
    }).catch(function () {
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
    var asked = Notification.permission === "granted" ? Promise.resolve("granted") : Notification.requestPermission();
    return asked.then(function (permission) {
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
      var played = chime.play();
      if (played && played.catch) played.catch(function () {});
    } catch (e) {}
  }
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("[data-signal]");
    if (toggle) {
      var on = toggle.getAttribute("aria-pressed") !== "true";
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
  // Once per alert (and once more when its snooze runs out) for this user, whichever tab.
  function claim(key) {
    var seen = {}, t = Date.now();
    try { seen = JSON.parse(localStorage.getItem(SIGNALLED_KEY) || "{}") || {}; } catch (e) {}
    if (seen[key]) return false;
    Object.keys(seen).forEach(function (k) { if (t - seen[k] > 86400000) delete seen[k]; });
    seen[key] = t;
    try { localStorage.setItem(SIGNALLED_KEY, JSON.stringify(seen)); } catch (e) {}
    return true;
  }
  var known = null; // alert keys this page has seen, so a page load never rings for old news
  function signalNew(rows, initial) {
    var fresh = [];
    var keys = {};
    rows.forEach(function (el) {
      if (el.dataset.effective !== "open") return;
      var key = el.dataset.alert + (el.dataset.snoozedUntil ? "@" + el.dataset.snoozedUntil : "");
      keys[key] = true;
      if (known && !known[key]) fresh.push({ el: el, key: key });
    });
    if (initial || !known) {
      known = keys;
      Object.keys(keys).forEach(claim); // already on screen: nothing to ring for later either
      return;
    }
    Object.keys(keys).forEach(function (key) { known[key] = true; });
    if (WALLBOARD) return;
    fresh = fresh.filter(function (entry) { return claim(entry.key); });
    if (!fresh.length) return;
    if (signals.sound) playChime();
    if (signals.desktop && notificationsAllowed() && (document.hidden || !document.hasFocus())) {
      fresh.slice(0, 3).forEach(function (entry) { notify(entry.el); });
    }
  }
  function notify(el) {
    var d = el.dataset, detail = el.querySelector(".alert-detail");
    var portal = MULTI && portalNames[d.portal] ? portalNames[d.portal] + " · " : "";
    try {
      var note = new Notification((d.severity === "critical" ? "Critical: " : "") + alertTitle(el), {
        body: portal + (detail ? detail.textContent.trim() : "Open the dashboard to see it."),
        tag: "siq-alert-" + d.alert,
        icon: document.querySelector("link[rel=icon]") ? document.querySelector("link[rel=icon]").href : undefined,
      });
      note.onclick = function () {
        window.focus();
        if (d.chat) openDrawer(d.chat);
        else if (d.operatorRow) openOperatorPanel(d.operatorRow);
        note.close();
      };
    } catch (e) {}
  }
  showSignals();

  // The drawer's bar names the visitor, so the name stays in view while the transcript scrolls.
  function nameDrawer() {
    var drawer = document.getElementById("drawer"), kicker = drawer && drawer.querySelector(".drawer-kicker");
    var name = drawer && drawer.querySelector(".drawer-head h2");
    if (kicker && name && kicker.textContent !== name.textContent) kicker.textContent = name.textContent;
  }

  // Times of day the viewer's way (their clock and zone), as on every page.
  function localise(scope) { TIME.localise(scope); }

  // --- every second ----------------------------------------------------------------------------------
  function tick() {
    var t = now(), rows = chats.onScreen().concat(operators.onScreen()); // read boxes first
    for (var i = 0; i < rows.length; i++) tickRow(rows[i], t);
    var panel = openOperator && document.querySelector("#drawer.operator-drawer");
    if (panel) tickRow(panel, t);
    var head = openChat && document.querySelector("#drawer .drawer-head"); // replaced on each change
    if (head) tickRow(head, t);
    tickKpis(t);
    freshness(t);
    tickAlerts(t);
    tickConnection(Date.now());
    var wall = document.querySelector("[data-wall-clock]");
    if (wall) {
      var text = TIME.timeOfDay(new Date(), TIME.viewer());
      if (wall.textContent !== text) wall.textContent = text;
    }
  }
  document.addEventListener("visibilitychange", function () { if (!document.hidden) tick(); });

  // --- start -------------------------------------------------------------------------------------------
  readPortalNames();
  syncControls();
  operators.rebuild();
  syncAlerts(true);
  chats.rebuild();
  buildOperatorOptions();
  countKpis();
  updateWallboardLink();
  tick();
  setInterval(tick, 1000);
  if (performance.mark) performance.mark("live-ready");

  // For the browser tests and for measuring: read-only views of what the page keeps.
  window.SupervisorLive = {
    stats: stats,
    kpis: function () { return Object.assign({}, kpi); },
    order: function (name) { return (name === "operators" ? operators : chats).order.map(function (rec) { return rec.id; }); },
    visible: function (name) { return (name === "operators" ? operators : chats).order.filter(function (rec) { return rec.visible; }).map(function (rec) { return rec.id; }); },
    alerts: function () { return Array.prototype.map.call(document.querySelectorAll("#alerts-list > li[data-alert]"), function (el) { return el.id + ":" + el.dataset.effective; }); },
  };
})();
