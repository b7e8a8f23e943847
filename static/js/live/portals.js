// The portals the page shows (templates/live/parts.html portal_meta): names, the "unanswered"
// alert's threshold, and the short coloured tag each row carries when several are shown.
import { MULTI, on } from "./page.js";

export function metas() { return document.querySelectorAll("#portal-metas > [data-container='portal-metas']"); }
// Portals the dashboard keeps live (connected): only these have rows, ages and figures.
export function liveMetas() { return document.querySelectorAll("#portal-metas > [data-container='portal-metas']:not([data-live='0'])"); }
export const portalNames = {};
// Seconds after which a visitor's unanswered message raises the portal's alert (its rule).
export const unansweredAfter = {};
export function readPortalNames() {
  metas().forEach((meta) => {
    portalNames[meta.dataset.portal] = meta.dataset.name || "";
    unansweredAfter[meta.dataset.portal] = Number(meta.dataset.unansweredAfter) || 0;
  });
}
on("metas-changed", readPortalNames);

const portalHues = {};
function portalHue(portal) {
  if (!(portal in portalHues)) portalHues[portal] = (Object.keys(portalHues).length * 137 + 210) % 360;
  return portalHues[portal];
}
function shortName(name) {
  const first = (name || "").split(/[\s(]+/).filter(Boolean)[0] || "";
  return first.length > 10 ? first.slice(0, 9) + "…" : first;
}
// Several portals: each row carries a short tag (the portal name's first word) in a colour of
// its own, with the full name on hover.
export function fillPortalTag(el, portal) {
  if (!MULTI) return;
  const tag = el.querySelector("[data-portal-tag]");
  if (!tag) return;
  const name = portalNames[portal] || "", text = shortName(name);
  if (tag.textContent !== text) {
    tag.textContent = text;
    tag.title = name;
    tag.style.setProperty("--tag-hue", portalHue(portal));
  }
}
