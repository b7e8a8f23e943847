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

// --- Screen sizes ---------------------------------------------------------------------------
// On a phone a table's rows become cards (app.css, "Screen sizes"): each cell shows its
// column's header as a label, copied here from the table's head (rowspan and colspan
// included), so a column added to a template is labelled without more work.
(function () {
  function headers(table) {
    var grid = [];
    Array.prototype.forEach.call(table.tHead ? table.tHead.rows : [], function (row, r) {
      grid[r] = grid[r] || [];
      var c = 0;
      Array.prototype.forEach.call(row.cells, function (cell) {
        while (grid[r][c] !== undefined) c++;
        var text = cell.textContent.replace(/\s+/g, " ").trim();
        for (var dr = 0; dr < cell.rowSpan; dr++) {
          grid[r + dr] = grid[r + dr] || [];
          for (var dc = 0; dc < cell.colSpan; dc++) grid[r + dr][c + dc] = text;
        }
        c += cell.colSpan;
      });
    });
    var labels = [];
    grid.forEach(function (row) {
      row.forEach(function (text, c) {
        labels[c] = labels[c] || [];
        if (text && labels[c].indexOf(text) < 0) labels[c].push(text);
      });
    });
    return labels.map(function (parts) { return parts.join(" · "); });
  }
  function label(table) {
    var names = headers(table);
    Array.prototype.forEach.call(table.tBodies, function (body) { labelRows(body.rows, names); });
    if (table.tFoot) labelRows(table.tFoot.rows, names);
  }
  function labelRows(rows, names) {
    Array.prototype.forEach.call(rows, function (row) {
      var c = 0;
      Array.prototype.forEach.call(row.cells, function (cell) {
        // A cell across several columns says what it says without a label.
        var name = cell.colSpan === 1 ? names[c] || "" : "";
        if (!cell.hasAttribute("data-label")) cell.setAttribute("data-label", name);
        c += cell.colSpan;
      });
    });
  }
  function labelAll(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("table.table").forEach(label);
  }
  document.addEventListener("DOMContentLoaded", function () { labelAll(document); });
  document.addEventListener("htmx:afterSwap", function (event) { labelAll(event.target); });

  // Text cut short with an ellipsis (or after its last allowed line) shows in full on hover
  // and on keyboard focus, as the element's title.
  function cut(el) {
    return el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1;
  }
  function clipsText(el) {
    var style = getComputedStyle(el);
    return style.textOverflow === "ellipsis" || style.webkitLineClamp !== "none" && style.webkitLineClamp !== "";
  }
  function reveal(event) {
    var el = event.target;
    for (var depth = 0; el && el.nodeType === 1 && depth < 4; depth++, el = el.parentElement) {
      if (!clipsText(el)) continue;
      var text = el.textContent.replace(/\s+/g, " ").trim();
      if (!text || !cut(el)) return;
      // The element's own title (an operator's e-mail) stays, after the full text.
      var own = el.hasAttribute("data-own-title") ? el.getAttribute("data-own-title") : el.getAttribute("title") || "";
      if (own.indexOf(text) >= 0) return;
      el.setAttribute("data-own-title", own);
      el.setAttribute("title", own ? text + "\n" + own : text);
      return;
    }
  }
  document.addEventListener("mouseover", reveal);
  document.addEventListener("focusin", reveal);
})();
