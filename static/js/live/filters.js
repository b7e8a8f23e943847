// The filters and sorts the user picks: kept in the address (so a wallboard link carries them),
// shown in the controls (templates/live/_controls.html). Says "live:filters-changed" and
// "live:sorted" so the figures and clocks follow.
import { MULTI, collator, emit, on } from "./page.js";
import { portalNames } from "./portals.js";
import { FILTERS, SORT_PARAMS, chats, filters, headerSorts, operators } from "./tables.js";

function writeAddress() {
  const next = new URLSearchParams(window.location.search);
  FILTERS.forEach((name) => { if (filters[name]) next.set(name, filters[name]); else next.delete(name); });
  SORT_PARAMS.forEach(([table, sortName, dirName, natural]) => {
    if (table.sort !== natural) next.set(sortName, table.sort); else next.delete(sortName);
    if (table.dir < 0) next.set(dirName, "reverse"); else next.delete(dirName);
  });
  const query = next.toString();
  history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
  updateWallboardLink(next);
}
export function updateWallboardLink(current) {
  const link = document.querySelector("[data-wallboard-link]");
  if (!link) return;
  const target = new URLSearchParams(current || window.location.search);
  if (link.dataset.wallboardLink === "enter") target.set("wallboard", "1");
  else target.delete("wallboard");
  const query = target.toString();
  link.setAttribute("href", window.location.pathname + (query ? "?" + query : ""));
}

export function syncControls() {
  document.querySelectorAll("[data-filter]").forEach((select) => {
    const value = filters[select.dataset.filter] || "";
    if (value && !Array.prototype.some.call(select.options, (o) => o.value === value)) {
      const option = document.createElement("option"); // a filter from the address the page does not list (yet)
      option.value = value;
      option.textContent = "(not here now)";
      select.appendChild(option);
    }
    select.value = value;
    select.classList.toggle("filtered", !!value);
  });
  const clear = document.querySelector("[data-clear-filters]");
  if (clear) clear.hidden = !FILTERS.some((name) => filters[name]);
  const summary = document.querySelector("[data-filter-summary]");
  if (summary) {
    const parts = [];
    document.querySelectorAll("[data-filter]").forEach((select) => {
      if (select.value && select.selectedIndex >= 0) parts.push(select.options[select.selectedIndex].textContent);
    });
    summary.textContent = parts.length ? "Showing " + parts.join(" · ") : "";
    summary.hidden = !parts.length;
  }
}

// The operator filter lists the operators the page has, so it is rebuilt when they change.
let operatorOptionsStale = true;
export function buildOperatorOptions() {
  const select = document.querySelector("select[data-filter='operator']");
  if (!select || !operatorOptionsStale || document.activeElement === select) return;
  operatorOptionsStale = false;
  const seen = {}, items = [];
  operators.order.forEach((rec) => {
    const value = rec.portal + ":" + rec.remote;
    if (seen[value]) return;
    seen[value] = true;
    items.push({ value, label: rec.name + (MULTI ? " · " + (portalNames[rec.portal] || "") : "") });
  });
  items.sort((a, b) => collator.compare(a.label, b.label));
  const fragment = document.createDocumentFragment(), first = document.createElement("option");
  first.value = "";
  first.textContent = "Any operator";
  fragment.appendChild(first);
  items.forEach((item) => {
    const option = document.createElement("option");
    option.value = item.value;
    option.textContent = item.label;
    fragment.appendChild(option);
  });
  select.replaceChildren(fragment);
  syncControls();
}
on("rows-changed", ({ table }) => {
  if (table !== "operators") return;
  operatorOptionsStale = true;
  buildOperatorOptions();
});

// Show only what matches ``value`` for one filter (the queues panel's department click).
export function filterBy(name, value) {
  filters[name] = value;
  applyFilters();
}

function applyFilters() {
  chats.refilter();
  operators.refilter();
  syncControls();
  writeAddress();
  emit("filters-changed");
}

// The filter form filters as one types; Enter must not submit it (no inline handler: CSP).
const controls = document.getElementById("controls");
if (controls) controls.addEventListener("submit", (event) => event.preventDefault());

export function init() {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("th[data-sort] .sort");
    if (!button) return;
    const th = button.closest("th"), table = th.closest("#chats-table") ? chats : operators;
    const sorts = headerSorts(th), at = sorts.indexOf(table.sort);
    if (at >= 0 && sorts.length === 1) table.dir = -table.dir;
    else { table.sort = sorts[(at + 1) % sorts.length]; table.dir = 1; }
    table.resort();
    writeAddress();
    emit("sorted");
  });
  document.addEventListener("change", (event) => {
    const select = event.target;
    if (select.matches("[data-portal-select]")) {
      const next = new URLSearchParams(window.location.search);
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
  document.addEventListener("focusin", (event) => {
    if (event.target.matches && event.target.matches("select[data-filter='operator']") && operatorOptionsStale) {
      event.target.blur(); // rebuilding a focused select would close it under the pointer
      buildOperatorOptions();
      event.target.focus();
    }
  });
  const clearButton = document.querySelector("[data-clear-filters]");
  if (clearButton) clearButton.addEventListener("click", () => {
    FILTERS.forEach((name) => { filters[name] = ""; });
    applyFilters();
  });
}
