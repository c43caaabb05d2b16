// Side-by-side judging (GET /sbs/pair, POST /sbs/verdict; on when the service has --sbs-db).
// The rater picks two systems; the service returns both result lists blinded to "left" and
// "right" with a pair token; the rater's verdict goes back with the token. The page never
// learns which system is on which side, and shows no scores (their scale would tell).
"use strict";

(function () {
  const shopsearch = window.shopsearch;
  const $ = (id) => document.getElementById(id);
  const statusLine = $("sbs-status");
  const pairBox = $("sbs-pair");
  const buttons = pairBox.querySelectorAll("button[data-verdict]");
  const results = $("results"); // the ordinary result list, hidden while a pair is judged
  let token = null; // the pair on screen; null once judged
  const RATER_KEY = "shopsearch.rater";

  function setStatus(text, isError) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", Boolean(isError));
  }

  function fillList(ol, hits) {
    ol.replaceChildren();
    for (const hit of hits) {
      const li = document.createElement("li");
      li.dataset.productId = hit.product_id;
      const title = document.createElement("span");
      title.className = "sbs-title";
      title.textContent = hit.title || hit.product_id;
      const attrs = document.createElement("span");
      attrs.className = "attrs";
      attrs.textContent = [hit.brand, hit.color, hit.category].filter((x) => x).join(" · ");
      li.append(title, attrs);
      ol.appendChild(li);
    }
    if (!hits.length) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "(no results)";
      ol.appendChild(li);
    }
  }

  function setButtons(enabled) { for (const b of buttons) b.disabled = !enabled; }

  async function errorText(res) {
    try { const body = await res.json(); return body.error ? body.error.message : `error ${res.status}`; }
    catch (err) { return `error ${res.status}`; }
  }

  async function loadSystems() {
    const res = await fetch("/sbs/systems");
    if (!res.ok) throw new Error(await errorText(res));
    const body = await res.json();
    for (const [select, chosen] of [[$("sbs-a"), body.default_a], [$("sbs-b"), body.default_b]]) {
      select.replaceChildren();
      for (const name of body.systems) {
        const option = document.createElement("option");
        option.value = name;
        option.textContent = name;
        select.appendChild(option);
      }
      if (chosen) select.value = chosen;
    }
  }

  async function compare() {
    const q = $("q").value.trim();
    if (!q) { setStatus("Type a query above first."); return; }
    const params = new URLSearchParams({ q, a: $("sbs-a").value, b: $("sbs-b").value, k: $("k").value });
    if ($("vertical").value) params.set("vertical", $("vertical").value);
    if ($("brand").value.trim()) params.set("brand", $("brand").value.trim());
    token = null;
    setButtons(false);
    setStatus("Loading the pair…");
    const res = await fetch(`/sbs/pair?${params}`, { headers: { Accept: "application/json" } });
    if (!res.ok) { pairBox.hidden = true; setStatus(await errorText(res), true); return; }
    const pair = await res.json();
    fillList($("sbs-left"), pair.left);
    fillList($("sbs-right"), pair.right);
    token = pair.token;
    // The list above shows one system's ranking under its mode's name: left visible, it would
    // tell the rater which side that system is on.
    results.hidden = true;
    pairBox.hidden = false;
    setButtons(true);
    setStatus(`“${pair.query}”: which side answers it better?`);
  }

  async function judge(verdict) {
    if (!token) return;
    const rater = $("sbs-rater").value.trim();
    try { if (rater) localStorage.setItem(RATER_KEY, rater); } catch (err) { /* storage off: fine */ }
    setButtons(false);
    const body = { token, verdict };
    if (rater) body.rater = rater;
    const res = await fetch("/sbs/verdict", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (!res.ok) { setButtons(true); setStatus(await errorText(res), true); return; }
    const answer = await res.json();
    token = null;
    const said = { left: "left is better", same: "about the same", right: "right is better" }[verdict];
    setStatus(answer.recorded
      ? `Verdict recorded: ${said} (rater ${answer.rater}). Search again or compare another query.`
      : `You had already judged this pair (rater ${answer.rater}); the first verdict stands.`);
  }

  $("sbs-form").addEventListener("submit", (event) => { event.preventDefault(); compare().catch((err) => setStatus(err.message, true)); });
  for (const b of buttons) b.addEventListener("click", () => judge(b.dataset.verdict).catch((err) => setStatus(err.message, true)));

  // A new search ends the judging: its results come back, the pair goes.
  shopsearch.onResults(() => {
    results.hidden = false;
    pairBox.hidden = true;
    token = null;
    setStatus("");
  });

  shopsearch.ready.then(() => {
    if (!shopsearch.features.sbs) return;
    try { $("sbs-rater").value = localStorage.getItem(RATER_KEY) || ""; } catch (err) { /* storage off */ }
    loadSystems().catch((err) => setStatus(`Could not list the systems: ${err.message}`, true));
  });
})();
