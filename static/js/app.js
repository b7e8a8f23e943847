// Times are rendered in UTC on the server; show them in the viewer's own zone.
(function () {
  function localise(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) return;
      var options = { hour: "2-digit", minute: "2-digit" };
      var today = new Date().toDateString() === when.toDateString();
      if (!today) { options.day = "numeric"; options.month = "short"; }
      el.textContent = when.toLocaleString([], options);
      el.title = when.toString();
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localise(document); });
  document.addEventListener("htmx:afterSwap", function (event) { localise(event.target); });
})();
