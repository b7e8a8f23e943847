// How old each panel's data is, and stale when it is older than the server's threshold
// (data-stale-after on #live, dashboard.selectors.STALE_AFTER).
import { NONCE, STALE_AFTER, on } from "./page.js";
import { ago, now, when } from "./clock.js";
import { liveMetas, metas } from "./portals.js";

let staleStyle = null;
export function freshness(t) {
  if (!staleStyle) {
    staleStyle = document.createElement("style");
    staleStyle.nonce = NONCE;
    document.head.appendChild(staleStyle);
  }
  const list = liveMetas(), staleRules = [], quiet = {};
  [["chats", "chatsAsOf"], ["operators", "operatorsAsOf"]].forEach(([name, field]) => {
    let oldest = Infinity, missing = false;
    const stale = [];
    list.forEach((meta) => {
      const at = when(meta.dataset[field]);
      if (isNaN(at)) missing = true;
      else if (at < oldest) oldest = at;
      const age = isNaN(at) ? Infinity : (t - at) / 1000;
      if (meta.dataset.stale === "1" || age > STALE_AFTER) stale.push(meta);
      if (age > STALE_AFTER && age !== Infinity && !meta.querySelector(".banner") && meta.dataset.needsAdmin !== "1") {
        const late = quiet[meta.dataset.portal] || (quiet[meta.dataset.portal] = { name: meta.dataset.name || "SalesIQ", kinds: [], age: 0 });
        late.kinds.push(name);
        late.age = Math.max(late.age, age);
      }
    });
    const panel = document.getElementById(name + "-panel");
    if (!panel) return;
    const text = !list.length && metas().length ? "no portal is live"
      : !list.length || (missing && oldest === Infinity) ? "no data yet"
      : "updated " + ago((t - oldest) / 1000) + (missing ? " (some portals: no data yet)" : "");
    const age = panel.querySelector(".age-text");
    if (age && age.textContent !== text) age.textContent = text;
    const state = !stale.length ? "" : stale.length === list.length ? "all" : "some";
    if ((panel.dataset.stale || "") !== state) {
      if (state) panel.dataset.stale = state; else delete panel.dataset.stale;
    }
    const pill = panel.querySelector(".stale-pill");
    if (pill) {
      const label = state === "some" ? "stale: " + stale.map((m) => m.dataset.name).join(", ") : "stale";
      if (pill.textContent !== label) pill.textContent = label;
      pill.hidden = !state;
    }
    if (state === "some") {
      stale.forEach((meta) => {
        if (/^[0-9a-f-]+$/i.test(meta.dataset.portal)) staleRules.push("#" + name + "-body > tr[data-portal='" + meta.dataset.portal + "']");
      });
    }
  });
  const chatsPanel = document.getElementById("chats-panel"), kpiTiles = document.getElementById("kpis");
  if (kpiTiles && chatsPanel) {
    // The key figures come from the chats and operators shown: as stale as they are.
    const staleAll = chatsPanel.dataset.stale === "all";
    if ((kpiTiles.dataset.stale === "all") !== staleAll) {
      if (staleAll) kpiTiles.dataset.stale = "all"; else delete kpiTiles.dataset.stale;
    }
  }
  const css = staleRules.length ? staleRules.join(",\n") + " { opacity: .45; filter: grayscale(.7); }" : "";
  if (staleStyle.textContent !== css) staleStyle.textContent = css;
  const banner = document.getElementById("stale-note");
  if (banner) {
    // Said once a portal: the server's banner covers what it knows; this covers silence.
    const words = Object.keys(quiet).map((portal) => {
      const late = quiet[portal];
      return "No fresh " + late.kinds.join(" or ") + " from " + late.name + " for " + ago(late.age).replace(" ago", "") + "; what you see may be out of date.";
    }).join(" ");
    const holder = banner.querySelector("[data-stale-text]");
    if (holder.textContent !== words) holder.textContent = words;
    banner.hidden = !words;
  }
}
on("message-applied", ({ any }) => { if (any) freshness(now()); });
on("tick", ({ t }) => freshness(t));
