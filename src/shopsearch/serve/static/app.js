// shopsearch web page: a search box over GET /search, no framework, no build step.
// All product text is inserted with textContent, never as HTML: catalogue data is not trusted.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("search-form");
  const statusLine = $("status");
  const list = $("results");
  const template = $("hit-template");
  let inFlight = null; // AbortController of the search in progress: a newer one cancels it
  let asTyped = false; // "search instead for": the next search skips spelling correction

  // ---------------------------------------------------------------------------------------
  // Extension point for the experiment parts of the page (events.js, sbs.js). They read
  // window.shopsearch.features (from GET /info; `ready` resolves once it is read), subscribe to
  // every result list shown with onResults, and send shopper events with emit()/emitMany(),
  // which post to /events only when features.events is on.
  // ---------------------------------------------------------------------------------------
  const EVENT_CHUNK = 20; // events per request: a batch stays well under the service's body limit

  function randomId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // A shopper id kept by this browser and a session id kept by this tab: with an experiment
  // running, the service assigns the variant from one of them (sticky), and events carry both.
  function storedId(storage, key) {
    try {
      let id = storage().getItem(key);
      if (!id) { id = randomId(); storage().setItem(key, id); }
      return id;
    } catch (err) {
      return randomId(); // storage disabled: an id for this page only
    }
  }

  const shopsearch = {
    features: {},
    info: null,
    last: null, // the last SearchResponse shown
    listeners: [],
    ready: null, // a Promise, resolved once GET /info has been read
    userId: storedId(() => window.localStorage, "shopsearch.user"),
    sessionId: storedId(() => window.sessionStorage, "shopsearch.session"),
    onResults(fn) { this.listeners.push(fn); },
    // One event: emit("click", {query_id, object_id, position, ...}).
    emit(type, payload) { return this.emitMany([{ action_name: type, ...payload }]); },
    // A batch, in chunks; resolves true when the service stored every chunk (acknowledged =
    // durable). keepalive lets a click's event finish while the link opens.
    emitMany(events) {
      if (!this.features.events || !events.length) return Promise.resolve(false);
      const ids = { user_id: this.userId, session_id: this.sessionId };
      const posts = [];
      for (let i = 0; i < events.length; i += EVENT_CHUNK) {
        const chunk = events.slice(i, i + EVENT_CHUNK).map((e) => ({ ...ids, ...e }));
        posts.push(fetch("/events", {
          method: "POST", keepalive: true, headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ events: chunk }),
        }).then((res) => {
          if (!res.ok) res.text().then((t) => console.warn("events refused:", res.status, t));
          return res.ok;
        }, (err) => { console.warn("events not sent:", err); return false; }));
      }
      return Promise.all(posts).then((oks) => oks.every(Boolean));
    },
  };
  window.shopsearch = shopsearch;

  function setStatus(text, isError) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", Boolean(isError));
  }

  function currentParams() {
    const params = new URLSearchParams();
    params.set("q", $("q").value.trim());
    params.set("mode", form.querySelector("input[name=mode]:checked").value);
    params.set("k", $("k").value);
    if ($("vertical").value) params.set("vertical", $("vertical").value);
    if ($("brand").value.trim()) params.set("brand", $("brand").value.trim());
    if (asTyped) params.set("spell", "false");
    if (!$("rerank-label").hidden) params.set("rerank", $("rerank").checked ? "true" : "false");
    return params;
  }

  function gradeBadge(el, hit, judged, scheme) {
    if (hit.grade !== null && hit.grade !== undefined) {
      el.textContent = `grade ${hit.grade}`;
      el.classList.add(hit.grade === 0 ? "g-zero" : (scheme && hit.grade >= scheme.relevant_min ? "g-high" : "g-mid"));
      el.hidden = false;
    } else if (judged) {
      el.textContent = "unjudged";
      el.classList.add("unjudged");
      el.hidden = false;
    }
  }

  function showSpelling(response) {
    $("spelling").hidden = !response.corrected_query;
    if (!response.corrected_query) return;
    $("spelling-corrected").textContent = response.corrected_query;
    $("spelling-typed").textContent = response.query;
  }

  function render(response) {
    list.replaceChildren();
    showSpelling(response);
    const scheme = shopsearch.info && shopsearch.info.judgments ? shopsearch.info.judgments.scheme : null;
    for (const hit of response.results) {
      const node = template.content.firstElementChild.cloneNode(true);
      node.dataset.productId = hit.product_id;
      const title = node.querySelector(".title");
      title.textContent = hit.title || hit.product_id;
      title.href = `/products/${encodeURIComponent(hit.product_id)}`;
      const attrs = [hit.brand, hit.color, hit.category, hit.vertical].filter((x) => x);
      node.querySelector(".attrs").textContent = `${hit.product_id}${attrs.length ? " · " + attrs.join(" · ") : ""}`;
      node.querySelector(".score").textContent = hit.score.toFixed(4);
      gradeBadge(node.querySelector(".grade"), hit, response.judged, scheme);
      list.appendChild(node);
    }
    const n = response.results.length;
    const extra = [response.cached ? "cached" : null, response.judged ? "judged query" : null,
      response.experiment ? `experiment ${response.experiment}: ${response.variant}` : null].filter((x) => x);
    const mode = response.reranked ? `${response.mode} + re-rank` : response.mode;
    setStatus(`${n} result${n === 1 ? "" : "s"} · ${mode} · ${response.took_ms.toFixed(1)} ms` +
      (extra.length ? ` · ${extra.join(", ")}` : ""));
  }

  async function search() {
    const params = currentParams();
    if (!params.get("q")) { setStatus("Type a query."); return; }
    history.replaceState(null, "", `?${params}`);
    if (inFlight) inFlight.abort();
    inFlight = new AbortController();
    setStatus("Searching…");
    try {
      const headers = { Accept: "application/json", "X-User-Id": shopsearch.userId, "X-Session-Id": shopsearch.sessionId };
      const res = await fetch(`/search?${params}`, { signal: inFlight.signal, headers });
      const body = await res.json();
      if (!res.ok) {
        list.replaceChildren();
        setStatus(body.error ? body.error.message : `error ${res.status}`, true);
        return;
      }
      shopsearch.last = body;
      render(body);
      for (const fn of shopsearch.listeners) {
        try { fn(body); } catch (err) { console.error(err); }
      }
    } catch (err) {
      if (err.name !== "AbortError") setStatus(`The service did not answer: ${err.message}`, true);
    }
  }

  function fillOptions(select, values) {
    for (const [value, count] of values) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = select.tagName === "SELECT" ? `${value} (${count})` : value;
      select.appendChild(option);
    }
  }

  async function loadInfo() {
    try {
      const res = await fetch("/info");
      if (!res.ok) throw new Error((await res.json()).error.message);
      const info = await res.json();
      shopsearch.info = info;
      shopsearch.features = info.features || {};
      for (const input of form.querySelectorAll("input[name=mode]")) {
        input.disabled = !info.modes.includes(input.value);
      }
      const checked = form.querySelector("input[name=mode]:checked");
      if (checked.disabled) form.querySelector("input[name=mode]:not(:disabled)").checked = true;
      $("q").maxLength = info.max_query_chars;
      for (const option of [...$("k").options]) option.disabled = Number(option.value) > info.k_max;
      if ([...$("k").options].some((o) => Number(o.value) === info.k_default)) $("k").value = String(info.k_default);
      fillOptions($("vertical"), (info.facets && info.facets.vertical) || []);
      fillOptions($("brands"), (info.facets && info.facets.brand) || []);
      const idx = info.index;
      const enc = idx.encoder ? ` · encoder ${idx.encoder}` : "";
      const judged = info.judgments ? ` · ${info.judgments.queries} judged queries (${info.judgments.scheme.name})` : "";
      const exp = info.experiment ? ` · experiment ${info.experiment.name} (${info.experiment.design}): ` +
        "your variant decides the mode" : "";
      $("index-info").textContent =
        `${idx.n_products.toLocaleString()} products · index generation ${idx.generation}${enc}${judged}${exp}`;
      $("sbs").hidden = !shopsearch.features.sbs;
      $("rerank-label").hidden = !idx.reranker;
      $("rerank").checked = Boolean(info.rerank_default);
    } catch (err) {
      setStatus(`Could not read the index description: ${err.message}`, true);
    }
  }

  function restoreFromUrl() {
    const params = new URLSearchParams(location.search);
    if (params.get("q")) $("q").value = params.get("q");
    const mode = form.querySelector(`input[name=mode][value="${CSS.escape(params.get("mode") || "")}"]`);
    if (mode && !mode.disabled) mode.checked = true;
    if ([...$("k").options].some((o) => o.value === params.get("k"))) $("k").value = params.get("k");
    if (params.get("vertical")) $("vertical").value = params.get("vertical");
    if (params.get("brand")) $("brand").value = params.get("brand");
    asTyped = params.get("spell") === "false";
    if (params.has("rerank")) $("rerank").checked = params.get("rerank") === "true";
    return Boolean(params.get("q"));
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); asTyped = false; search(); });
  $("spelling-typed").addEventListener("click", (event) => { event.preventDefault(); asTyped = true; search(); });
  for (const input of form.querySelectorAll("input[name=mode], #k, #vertical, #rerank")) {
    input.addEventListener("change", () => { if ($("q").value.trim()) search(); });
  }

  shopsearch.ready = loadInfo();
  shopsearch.ready.then(() => { if (restoreFromUrl()) search(); });
})();
