// The queues panel (templates/figures/parts.html): one row per department, kept in the server's
// order (data-rank, dashboard/figures/queues.py QueueRow.rank: worst first, a key that sorts as
// text, so nothing here decides what "worst" means), their longest waits ticking, and a click on
// a department showing only its chats and operators below (the department filter).
import { on, root } from "./page.js";
import { now } from "./clock.js";
import { fillPortalTag } from "./portals.js";
import { tickRow } from "./ticks.js";
import { filters } from "./tables.js";
import { filterBy } from "./filters.js";

function body() { return document.getElementById("queues-body"); }
function rows() { const tbody = body(); return tbody ? Array.from(tbody.children) : []; }

function place() {
  const tbody = body();
  if (!tbody) return;
  const current = rows();
  const sorted = current.slice().sort((a, b) => (a.dataset.rank < b.dataset.rank ? -1 : a.dataset.rank > b.dataset.rank ? 1 : 0));
  if (sorted.some((row, i) => row !== current[i])) tbody.append(...sorted); // moves them, in order
  const t = now();
  for (const row of sorted) {
    fillPortalTag(row, row.dataset.portal);
    tickRow(row, t);
  }
  markSelected();
  if (root) root.querySelectorAll("[data-count='queues']").forEach((count) => {
    if (count.textContent !== String(sorted.length)) count.textContent = String(sorted.length);
  });
  const empty = root && root.querySelector("[data-empty='queues']");
  if (empty) empty.hidden = sorted.length > 0;
}

function markSelected() {
  for (const row of rows()) {
    const selected = filters.department === row.dataset.portal + ":" + row.dataset.department;
    row.classList.toggle("selected", selected);
    const button = row.querySelector("[data-queue-filter]");
    if (button) button.setAttribute("aria-pressed", selected ? "true" : "false");
  }
}

export function init() {
  place();
  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("[data-queue-filter]");
    if (!button) return;
    const row = button.closest("tr"), value = row.dataset.portal + ":" + row.dataset.department;
    // A second click on the department shown shows every department again.
    filterBy("department", filters.department === value ? "" : value);
  });
}

on("queues-changed", place);
on("filters-changed", markSelected);
on("tick", ({ t }) => { for (const row of rows()) tickRow(row, t); });
