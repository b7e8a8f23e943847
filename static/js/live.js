// The live page: keeps the websocket alive, puts new rows where they belong, ticks clocks.
(function () {
  "use strict";
  var RECONNECT_CODES = [1006, 1011, 1012, 1013]; // the ws extension retries these itself
  var retry = 0;

  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function clock(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return h ? h + ":" + pad(m) + ":" + pad(s) : m + ":" + pad(s);
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-tick=elapsed]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(t)) el.textContent = clock((now - t) / 1000);
    });
  }
  function setConnection(state, text) {
    var el = document.getElementById("connection");
    if (!el) return;
    el.dataset.state = state;
    el.textContent = text;
  }

  // An update for a row the page does not have yet: put it in its container.
  document.addEventListener("htmx:oobErrorNoTarget", function (event) {
    var content = event.detail.content;
    var container = content && content.dataset && document.getElementById(content.dataset.container);
    if (container) {
      content.removeAttribute("hx-swap-oob");
      container.appendChild(content);
      if (window.htmx) htmx.process(content);
    }
  });

  document.addEventListener("htmx:wsOpen", function () { retry = 0; setConnection("open", "Live"); });
  document.addEventListener("htmx:wsClose", function (event) {
    setConnection("closed", "Reconnecting…");
    var code = event.detail.event && event.detail.event.code;
    if (RECONNECT_CODES.indexOf(code) >= 0) return;
    if (code === 4401) { window.location.reload(); return; } // signed out: back to the login page
    var delay = Math.min(30000, 500 * Math.pow(2, retry++)) * (0.5 + Math.random() / 2);
    setTimeout(function () { event.detail.socketWrapper.reconnect(); }, delay);
  });
  document.addEventListener("htmx:wsAfterMessage", function () { tick(); });

  // The drawer.
  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-open-chat]");
    if (opener) {
      htmx.ajax("GET", "/live/chats/" + opener.dataset.openChat + "/", { target: "#drawer-slot", swap: "innerHTML" });
      return;
    }
    if (event.target.closest("[data-close-drawer]")) {
      document.getElementById("drawer-slot").innerHTML = "";
    }
  });

  document.addEventListener("DOMContentLoaded", function () { tick(); setInterval(tick, 1000); });
})();
