// The theme every page wears: the user's choice (light or dark, kept in this browser), else
// the system's. Loaded in <head> without defer, so the choice is on <html> before the first
// paint: a dark room never sees a white flash. The wallboard keeps a choice of its own and is
// dark until someone chooses otherwise (its <script> tag says so in data-theme-key and
// data-theme-default). Any [data-theme-toggle] button on the page switches it.
(function () {
  var script = document.currentScript;
  var KEY = (script && script.getAttribute("data-theme-key")) || "siq-theme";
  var FALLBACK = (script && script.getAttribute("data-theme-default")) || "";
  var root = document.documentElement;

  function stored() {
    var theme = null;
    try { theme = localStorage.getItem(KEY); } catch (e) {}
    return theme === "light" || theme === "dark" ? theme : null;
  }
  function wear(theme) {
    // No choice and no default: no attribute, so the system's preference decides (app.css).
    if (theme) root.setAttribute("data-theme", theme); else root.removeAttribute("data-theme");
  }
  wear(stored() || FALLBACK || null);

  function current() {
    var chosen = root.getAttribute("data-theme");
    if (chosen) return chosen;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  function show() {
    var pressed = current() === "dark" ? "true" : "false";
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      button.setAttribute("aria-pressed", pressed);
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-theme-toggle]");
    if (!button) return;
    var next = current() === "dark" ? "light" : "dark";
    wear(next);
    try { localStorage.setItem(KEY, next); } catch (e) {}
    show();
  });
  // Another tab of this browser changed the theme: follow it.
  window.addEventListener("storage", function (event) {
    if (event.key !== KEY) return;
    wear(stored() || FALLBACK || null);
    show();
  });
  if (window.matchMedia) {
    var scheme = window.matchMedia("(prefers-color-scheme: dark)");
    if (scheme.addEventListener) scheme.addEventListener("change", show);
  }
  document.addEventListener("DOMContentLoaded", show);
})();
