// SalesIQ's answer to a transfer (accepted or declined) comes after the supervisor has moved
// on: pushed over the websocket for an action this page does not show (the drawer was closed,
// or the action was taken in another tab), it shows as a toast. Not on a wallboard: a screen
// across the room is no place for one supervisor's news. The rest (an immediate result the
// acting form shows itself, an end SalesIQ confirms) goes quietly.
import { WALLBOARD, on } from "./page.js";

const TOAST_LIMIT = 4, TOAST_MS = 20000;
function toasts() {
  let holder = document.getElementById("toasts");
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
function toast(outcome, heading) {
  const d = outcome.dataset, holder = toasts();
  const card = document.createElement("div"), body = document.createElement("div"), title = document.createElement("p");
  const line = document.createElement("p"), close = document.createElement("button"), mark = document.createElement("span");
  card.className = "toast";
  card.dataset.state = d.state || d.outcome || "";
  card.dataset.action = d.action || "";
  mark.className = "outcome-mark";
  mark.setAttribute("aria-hidden", "true");
  body.className = "toast-body";
  title.className = "toast-title";
  // The state in the server's words (dashboard.models.ActionState), as the drawer has it.
  const state = outcome.querySelector(".outcome-state");
  title.textContent = (heading || "Transfer of") + " " + (d.subject || "a visitor") + " " + (state ? state.textContent.trim().toLowerCase() : d.state);
  line.className = "toast-line";
  const said = outcome.querySelector(".outcome-line");
  line.textContent = said ? said.textContent.trim() : "";
  body.appendChild(title);
  body.appendChild(line);
  if (d.chat && document.getElementById("chat-" + d.chat)) {
    const open = document.createElement("button");
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
  close.addEventListener("click", () => card.remove());
  card.append(mark, body, close);
  holder.appendChild(card);
  while (holder.children.length > TOAST_LIMIT) holder.firstElementChild.remove();
  // A declined transfer or a refusal needs the supervisor: it stays until dismissed.
  if (card.dataset.state !== "declined" && card.dataset.state !== "refused") {
    const fade = () => {
      if (card.matches(":hover, :focus-within")) setTimeout(fade, 4000);
      else card.remove();
    };
    setTimeout(fade, TOAST_MS);
  }
}

// The answer to an action taken outside the drawer (a waiting row's "Assign to Ana",
// static/js/live/assign.js): the page has no form to show it in.
export function showOutcome(outcome, heading) {
  if (!WALLBOARD) toast(outcome, heading);
}

on("unplaced", ({ piece }) => {
  const outcome = piece.matches(".action-outcome") ? piece : piece.querySelector(".action-outcome");
  if (!WALLBOARD && outcome && outcome.dataset.kind === "transfer" && outcome.dataset.confirmed === "1") toast(outcome);
});
