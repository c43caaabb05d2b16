// Shopper events for the event store (POST /events, on when the service has --events-db):
// an impression for every result shown and a click for every result link opened.
// Each event names the search response it belongs to (query_id) and copies its experiment,
// variant and interleaving team, so the A/B analysis can attribute it.
"use strict";

(function () {
  const shopsearch = window.shopsearch;
  const list = document.getElementById("results");

  function eventOf(action, response, hit, position) {
    return {
      action_name: action,
      query_id: response.query_id,
      query: response.query,
      object_id: hit.product_id,
      position,
      experiment: response.experiment,
      variant: response.variant,
      team: hit.team,
    };
  }

  shopsearch.onResults((response) => {
    shopsearch.emitMany(response.results.map((hit, i) => eventOf("impression", response, hit, i)));
  });

  // One listener for every result link: left click, middle click (auxclick) and keyboard
  // activation (which fires "click") all open the product.
  function onOpen(event) {
    const link = event.target.closest("a.title");
    const response = shopsearch.last;
    if (!link || !response || (event.type === "auxclick" && event.button !== 1)) return;
    const item = link.closest("li.hit");
    const position = Array.prototype.indexOf.call(list.children, item);
    const hit = response.results[position];
    if (hit && hit.product_id === item.dataset.productId) shopsearch.emit("click", eventOf("click", response, hit, position));
  }
  list.addEventListener("click", onOpen);
  list.addEventListener("auxclick", onOpen);
})();
