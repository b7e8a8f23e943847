// Times are sent in UTC (or in the viewer's zone where the server knows it); write each one
// the viewer's way (static/js/time.js), on every page and in every piece htmx swaps in.
(function () {
  var time = window.SupervisorTime;
  if (!time) return;
  document.addEventListener("DOMContentLoaded", function () { time.localise(document); });
  document.addEventListener("htmx:afterSwap", function (event) { time.localise(event.target); });
  // Pieces the websocket swaps by id (an action's outcome, an alert): htmx fires this on
  // each new element.
  document.addEventListener("htmx:oobAfterSwap", function (event) { time.localise(event.target); });
})();
