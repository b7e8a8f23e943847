// The supervisor actions' small behaviours (templates/actions/parts.html): the pending state,
// a failed request in words, the transfer picker's order, and this page's id on every htmx
// request (X-Live-Page), so the server does not push back to it the outcome its answer carried.
import { PAGE_ID } from "./socket.js";

function showProblem(scope, text) {
  let holder = scope.querySelector("[data-form-problem]");
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

// The transfer picker: which operators belong to the department picked (and so are suggested),
// best choices first for that department. The rank is the server's
// (dashboard.selectors.Choice.rank_for): each pick carries its place in the department picked
// and elsewhere.
function markDepartment(select) {
  const department = select.value || select.dataset.chatDepartment || "";
  const picks = Array.from(select.form.querySelectorAll(".pick[data-departments]"));
  picks.forEach((pick) => {
    const inside = !department || pick.dataset.departments.split(" ").indexOf(department) >= 0 ? "1" : "0";
    if (pick.dataset.inDepartment !== inside) pick.dataset.inDepartment = inside;
    const suggested = inside === "1" && pick.dataset.status === "available" && pick.dataset.room !== "0";
    if (suggested) pick.dataset.suggested = "1"; else delete pick.dataset.suggested;
    pick._place = Number(inside === "1" ? pick.dataset.placeInside : pick.dataset.placeOutside);
  });
  if (!picks.length) return;
  picks.sort((a, b) => a._place - b._place);
  const list = picks[0].parentNode;
  picks.forEach((pick) => list.appendChild(pick)); // "Anyone free" stays first
  // A form that picks the best operator for the supervisor (reference dialect) picks the best
  // one for this department, until the supervisor picks someone.
  if (!select.form.dataset.picked) {
    const checked = list.querySelector(".pick[data-departments] input:checked");
    const best = list.querySelector(".pick[data-departments] input:not(:disabled)");
    if (checked && best && checked !== best) best.checked = true;
  }
}

export function init() {
  document.addEventListener("htmx:configRequest", (event) => {
    event.detail.headers["X-Live-Page"] = PAGE_ID;
  });
  // Pending at once: htmx puts `htmx-request` on the form and disables its fieldset as it sends
  // (hx-disabled-elt) and drops a second submit while the first is under way (hx-sync); the
  // button that was clicked says "Sending to SalesIQ…" (CSS, from the mark set here).
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.matches || !form.matches(".action-form")) return;
    if (!event.defaultPrevented) {
      // htmx takes a new form over when it settles (~20 ms after the swap); a submit before
      // that would leave the page as a plain GET. Hand it to htmx instead.
      event.preventDefault();
      htmx.process(form);
      const submitter = event.submitter;
      setTimeout(() => { if (document.contains(form)) form.requestSubmit(submitter || undefined); }, 0);
      return;
    }
    const button = event.submitter || form.querySelector("button[type=submit]");
    form.querySelectorAll(".is-sending").forEach((el) => { if (el !== button) el.classList.remove("is-sending"); });
    if (button) button.classList.add("is-sending");
    showProblem(form, "");
  });
  // The request itself failed (the outcome of an action that ran always comes back as 200).
  // The form keeps its idempotency key, so trying again can never act twice.
  document.addEventListener("htmx:responseError", (event) => {
    const elt = event.detail.elt, target = event.detail.target, xhr = event.detail.xhr;
    const scope = elt && elt.matches && elt.matches(".action-form") ? elt
      : target && target.matches && target.matches("[data-action-area]") ? target : null;
    if (!scope) return;
    const status = xhr ? xhr.status : 0, body = xhr ? (xhr.responseText || "").trim() : "";
    let text;
    // 400 out of date, 409 a form used for something else, 429 too many refused tries: words.
    if ((status === 400 || status === 409 || status === 429) && body && body.length < 300 && body.indexOf("<") < 0) text = body;
    else if (status === 403) text = "Your role may not act on this portal; nothing was sent to SalesIQ.";
    else if (status === 404) text = "This chat or operator is no longer here; nothing was sent to SalesIQ.";
    else text = "The dashboard could not finish this (error " + status + "). Trying again is safe: the same form never acts twice.";
    showProblem(scope, text);
  });
  document.addEventListener("htmx:sendError", (event) => {
    const elt = event.detail.elt;
    if (!elt || !elt.matches) return;
    const scope = elt.matches(".action-form") ? elt : elt.closest("#drawer") && elt.closest(".drawer-tools, .drain-box") ? elt.parentNode : null;
    if (scope) showProblem(scope, "No answer from the dashboard: check the connection. Trying again is safe: the same form never acts twice.");
  });
  // A canned line fills the message box (the supervisor may still edit it before sending).
  document.addEventListener("click", (event) => {
    const line = event.target.closest && event.target.closest("[data-canned]");
    const box = line && line.closest(".message-form");
    const text = box && box.querySelector("textarea[name=text]");
    if (!text) return;
    text.value = line.textContent.trim();
    text.focus();
  });
  // A line sent: the box empties for the next one (its outcome and a fresh key came back).
  document.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt;
    if (!event.detail.successful || !form.matches || !form.matches(".message-form")) return;
    const answer = event.detail.xhr && event.detail.xhr.responseText || "";
    if (answer.indexOf('data-outcome="done"') >= 0) form.querySelector("textarea[name=text]").value = "";
  });
  document.addEventListener("change", (event) => {
    const select = event.target;
    if (select.matches("[data-transfer-department]")) markDepartment(select);
    else if (select.matches(".transfer-form input[name=operator_id]")) select.form.dataset.picked = "1";
  });
}
