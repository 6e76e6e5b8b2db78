// verdict console: the only script. It refreshes the canaries table in place every
// 5 s (the server renders the rows; everything is readable without this script).
"use strict";

(function () {
  const rows = document.getElementById("canary-rows");
  if (!rows) return;
  const note = document.getElementById("refreshed");
  const url = "/ui/canaries/rows" + window.location.search;
  async function refresh() {
    try {
      const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (answer.redirected || !answer.ok) {
        note.textContent = "Could not refresh (" + answer.status + "); showing the last rows.";
        return;
      }
      const doc = new DOMParser().parseFromString(
        "<table>" + (await answer.text()) + "</table>", "text/html");
      const fresh = doc.getElementById("canary-rows");
      if (fresh) {
        rows.replaceChildren(...fresh.childNodes);
        note.textContent = "Refreshed at " + new Date().toLocaleTimeString() + ".";
      }
    } catch (e) {
      note.textContent = "Could not refresh (" + e.message + "); showing the last rows.";
    }
  }
  window.setInterval(refresh, 5000);
})();
